//! Embeds the git revision in `trialdesk --version`, so a running binary can be traced to its
//! source. `TRIALDESK_GIT_REV` in the build environment wins (container builds, packagers);
//! otherwise git is asked, and outside a git checkout (a source tarball) it is "unknown".

use std::process::Command;

fn main() {
    // Given from outside (a container build without `.git`, a packager): taken as is.
    if let Some(rev) = std::env::var("TRIALDESK_GIT_REV")
        .ok()
        .map(|r| r.trim().to_string())
        .filter(|r| {
            !r.is_empty()
                && r.len() <= 64
                && r.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._+".contains(&b))
        })
    {
        println!("cargo:rustc-env=TRIALDESK_GIT_REV={rev}");
        println!("cargo:rerun-if-env-changed=TRIALDESK_GIT_REV");
        return;
    }
    let rev = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into());
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .is_some_and(|o| !o.stdout.is_empty());
    let rev = if dirty { format!("{rev}-dirty") } else { rev };
    println!("cargo:rustc-env=TRIALDESK_GIT_REV={rev}");
    // In a worktree `.git` is a file; ask git where HEAD and the index really are.
    let git_dir = Command::new("git")
        .args(["rev-parse", "--git-dir"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string());
    if let Some(dir) = git_dir {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        println!("cargo:rerun-if-changed={dir}/index");
    } else {
        println!("cargo:rerun-if-changed=build.rs");
    }
    println!("cargo:rerun-if-env-changed=TRIALDESK_GIT_REV");
}
