//! TLS for the IMAP client (rustls): trust roots, and failures explained in words an operator
//! can act on (also used for SMTP, whose TLS lettre drives with the same rustls).

use std::io;
use std::path::Path;
use std::sync::Arc;

/// The rustls configuration: built-in Mozilla roots plus the certificates in `ca_file`.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let pem =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{} is not a PEM certificate file: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("{} holds no PEM certificate", path.display()));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("{}: unusable CA certificate: {e}", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Explains a failed TLS handshake in words an operator can act on.
pub fn explain_error(e: &io::Error, server_name: &str, key: &str) -> String {
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    match inner {
        Some(rustls::Error::InvalidCertificate(cert)) => {
            use rustls::CertificateError as C;
            let hint = match cert {
                C::UnknownIssuer => {
                    format!(" (signed by a CA trialdesk does not know: give it in `{key}.ca_file`)")
                }
                C::NotValidForName | C::NotValidForNameContext { .. } => format!(
                    " (the certificate is not for {server_name:?}: check `{key}.host`, or set \
                     `{key}.tls_server_name` to the name it was issued for)"
                ),
                C::Expired | C::ExpiredContext { .. } => " (expired)".to_string(),
                _ => String::new(),
            };
            format!("server certificate rejected: {cert}{hint}")
        }
        Some(other) => format!("TLS failed: {other}"),
        None => format!("TLS failed: {e}"),
    }
}
