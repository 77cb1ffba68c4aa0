//! The `trialdesk` binary: parse the command line, run the command, map errors to exit codes.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = trialdesk::cli::Cli::parse();
    match trialdesk::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", trialdesk::cli::error_report(&e));
            if e.downcast_ref::<trialdesk::config::ConfigError>().is_some() {
                std::process::ExitCode::from(2)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}
