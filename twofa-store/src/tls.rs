//! TLS to PostgreSQL: rustls with the ring provider, trusting only the admin's CA file.
//!
//! Never the system bundle: loading /etc/ssl/certs costs 20+ ms on every login, and any public
//! CA could then vouch for a host named like the database. The server's certificate must chain
//! to `ca_file` and name the host connected to (verify-full, as libpq calls it).

use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tokio_postgres_rustls::MakeRustlsConnect;
use twofa_core::securefile::{self, Rules};

/// The connector for `ca_file`, or a one-line reason naming the file.
pub(crate) fn connector(ca_file: &std::path::Path) -> Result<MakeRustlsConnect, String> {
    // Public, but it decides whom we trust: root-owned and writable by root only.
    let text = match securefile::read_file(ca_file, &Rules::POLICY) {
        Ok(Some(text)) => text,
        Ok(None) => return Err(format!("{}: no such file (ca_file)", ca_file.display())),
        Err(e) => return Err(e.to_string()),
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(text.as_bytes()) {
        let cert =
            cert.map_err(|e| format!("{}: not a PEM certificate: {e}", ca_file.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: not a usable CA certificate: {e}", ca_file.display()))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "{}: holds no certificate (BEGIN CERTIFICATE)",
            ca_file.display()
        ));
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}
