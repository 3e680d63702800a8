//! TLS for cordon's own outbound clients (the alerts webhook, the recordings bucket): the
//! roots of a configured CA file, else the system's bundle; no client certificate. One place,
//! so that every client trusts the same way and says the same thing when it cannot.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where Linux distributions keep their bundle of root certificates.
const SYSTEM_ROOTS: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// A client configuration trusting `ca_file`'s roots (or the system's); `key` names the
/// configuration key to set when there is no bundle (e.g. `[objects] ca_file`).
pub fn client_config(
    ca_file: Option<&Path>,
    key: &str,
) -> Result<Arc<tokio_rustls::rustls::ClientConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let path = match ca_file {
        Some(p) => p.to_path_buf(),
        None => SYSTEM_ROOTS
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .ok_or_else(|| format!("no system bundle of root certificates; set {key}"))?,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .filter_map(|c| c.ok())
        .collect();
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!("{} holds no root certificate", path.display()));
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let c = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(c))
}
