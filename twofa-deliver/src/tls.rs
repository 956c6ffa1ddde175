//! Whose certificates are trusted, and with which crypto: the one place both our SMTP client
//! (smtp.rs) and the HTTPS client (ureq) take their TLS trust from; and the SMTP side's
//! handshake under the deadline.
//!
//! ureq would pick its own roots if asked (a baked-in webpki-roots snapshot). It is never
//! asked: it gets the certificates loaded here, and the ring provider, so the trust of both
//! clients is exactly what this file says.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::address::Host;
use crate::error::Failure;
use crate::net::DeadlineStream;

/// A TLS session over a deadline-bound TCP stream.
pub(crate) type TlsStream = StreamOwned<ClientConnection, DeadlineStream>;

/// Most CA certificates taken from a `ca_file`.
const MAX_CA_CERTS: usize = 200;

/// The CAs to trust: those of `ca_file` alone when it is set (a private relay's CA must not
/// widen to the whole public web, and the public web must not vouch for a private relay),
/// otherwise the system's (Debian: /etc/ssl/certs). Only certificates rustls can use as trust
/// anchors are kept, so the clients never meet one they would refuse.
pub(crate) fn load_roots(
    ca_file: Option<&Path>,
) -> Result<Arc<Vec<CertificateDer<'static>>>, Failure> {
    let certs = match ca_file {
        Some(path) => {
            let shown = path.display();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|err| Failure::settings(format!("cannot read ca_file {shown}: {err}")))?
                .take(MAX_CA_CERTS)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|err| Failure::settings(format!("ca_file {shown}: {err}")))?;
            let usable = usable(certs);
            if usable.is_empty() {
                return Err(Failure::settings(format!(
                    "ca_file {shown} holds no usable PEM certificate"
                )));
            }
            usable
        }
        None => {
            let usable = usable(rustls_native_certs::load_native_certs().certs);
            if usable.is_empty() {
                return Err(Failure::settings(
                    "no system CA certificates found (install ca-certificates, or set ca_file)",
                ));
            }
            usable
        }
    };
    Ok(Arc::new(certs))
}

fn usable(certs: Vec<CertificateDer<'static>>) -> Vec<CertificateDer<'static>> {
    certs
        .into_iter()
        .filter(|cert| RootCertStore::empty().add(cert.clone()).is_ok())
        .collect()
}

/// ring, not aws-lc-rs (which needs cmake and a large C build). TLS 1.2 and 1.3 are both
/// allowed (SMTP: `client_config`; ureq: rustls' versions).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The SMTP client's configuration: TLS 1.2 and 1.3 with rustls' safe defaults, the roots of
/// `load_roots` only, no client certificate.
pub(crate) fn client_config(
    roots: &[CertificateDer<'static>],
) -> Result<Arc<ClientConfig>, Failure> {
    let mut store = RootCertStore::empty();
    store.add_parsable_certificates(roots.iter().cloned());
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|err| Failure::delivery(format!("TLS setup failed: {err}")))?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Runs the handshake to its end, so certificate errors are reported as such (and not as a
/// failed first write).
pub(crate) fn handshake(
    config: &Arc<ClientConfig>,
    host: &Host,
    mut sock: DeadlineStream,
) -> Result<TlsStream, Failure> {
    let name = match host {
        Host::Ip(ip) => ServerName::IpAddress((*ip).into()),
        Host::Name(name) => ServerName::try_from(name.clone())
            .map_err(|_| Failure::settings(format!("{host} is not a valid TLS server name")))?,
    };
    let mut conn = ClientConnection::new(Arc::clone(config), name)
        .map_err(|err| Failure::delivery(format!("TLS setup for {host} failed: {err}")))?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock)
            .map_err(|err| Failure::delivery(format!("TLS handshake with {host} failed: {err}")))?;
    }
    Ok(StreamOwned::new(conn, sock))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_certificates_is_a_settings_error() -> Result<(), std::io::Error> {
        let dir = std::env::temp_dir().join(format!("twofa-deliver-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("empty.pem");
        std::fs::write(&path, "not a certificate\n")?;
        let err = load_roots(Some(&path))
            .err()
            .map(|e| (e.exit_code(), e.to_string()));
        std::fs::remove_dir_all(&dir)?;
        let (code, line) = err.unwrap_or_default();
        assert_eq!(code, 2);
        assert!(line.contains("no usable PEM certificate"), "{line}");
        Ok(())
    }
}
