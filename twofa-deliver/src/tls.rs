//! TLS client setup: whose certificates are trusted, and the handshake under the deadline.

use std::path::Path;
use std::sync::Arc;

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
/// otherwise the system's (Debian: /etc/ssl/certs).
pub(crate) fn load_roots(ca_file: Option<&Path>) -> Result<Arc<RootCertStore>, Failure> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let shown = path.display();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|err| Failure::settings(format!("cannot read ca_file {shown}: {err}")))?
                .take(MAX_CA_CERTS)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|err| Failure::settings(format!("ca_file {shown}: {err}")))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(Failure::settings(format!(
                    "ca_file {shown} holds no usable PEM certificate"
                )));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(Failure::settings(
                    "no system CA certificates found (install ca-certificates, or set ca_file)",
                ));
            }
        }
    }
    Ok(Arc::new(roots))
}

/// TLS 1.2 and 1.3 with rustls' safe defaults and the ring provider; no client certificate.
pub(crate) fn client_config(roots: Arc<RootCertStore>) -> Result<Arc<ClientConfig>, Failure> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| Failure::delivery(format!("TLS setup failed: {err}")))?
        .with_root_certificates(roots)
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
