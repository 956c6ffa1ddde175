//! One form POST over HTTPS (or plain HTTP to loopback), through ureq.
//!
//! ureq builds the request, frames the response (length, chunks, interim 1xx) and keeps the
//! whole exchange within one global timeout. This file decides the rest: the URL forms
//! accepted, our roots and the ring provider (never ureq's webpki-roots), no proxy from the
//! environment, no redirects (a 3xx is an answer like any other), a bounded body.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use ureq::http::Uri;
use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};
use ureq::Agent;

use crate::address::{self, Host};
use crate::error::Failure;
use crate::net;
use crate::tls;

/// Largest response body read (the Pushover API answers a few hundred bytes).
const MAX_RESPONSE: u64 = 64 * 1024;

/// An `http://` or `https://` URL without user info or fragment, with the parts the policy
/// looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url {
    pub(crate) https: bool,
    pub(crate) host: Host,
    pub(crate) port: u16,
    uri: Uri,
}

impl Url {
    pub(crate) fn parse(text: &str) -> Option<Url> {
        if text.contains('#') {
            return None;
        }
        let uri: Uri = text.parse().ok()?;
        let https = match uri.scheme_str()? {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        let authority = uri.authority()?;
        if authority.as_str().contains('@') {
            return None;
        }
        let default_port = if https { 443 } else { 80 };
        // `Authority::port` is None for a port out of range too: read it from the text.
        let port = match authority.as_str().strip_prefix(authority.host())? {
            "" => default_port,
            rest => rest
                .strip_prefix(':')?
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)?,
        };
        Some(Url {
            https,
            host: address::parse_host(authority.host())?,
            port,
            uri,
        })
    }
}

/// Status and body of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

/// POSTs `fields` as `application/x-www-form-urlencoded` and reads the response, all within
/// `timeout`. `roots` is `None` only for plain HTTP, which the caller allows for loopback only.
pub(crate) fn post_form(
    url: &Url,
    roots: Option<&Arc<Vec<CertificateDer<'static>>>>,
    fields: &[(&str, &str)],
    timeout: Duration,
) -> Result<Response, Failure> {
    let host = &url.host;
    let tls_config = match (url.https, roots) {
        (true, Some(roots)) => {
            let certs = roots
                .iter()
                .map(|cert| Certificate::from_der(cert.as_ref()).to_owned())
                .collect();
            TlsConfig::builder()
                .provider(TlsProvider::Rustls)
                .root_certs(RootCerts::Specific(Arc::new(certs)))
                .unversioned_rustls_crypto_provider(tls::provider())
                .build()
        }
        (true, None) => return Err(Failure::delivery("https without trusted certificates")),
        (false, _) => {
            // ureq resolves the name itself: every address `localhost` has must be loopback.
            let all = net::addresses(host, url.port, false)?;
            if !all.iter().all(|addr| addr.ip().is_loopback()) {
                return Err(Failure::settings(format!(
                    "{host} resolves to an address that is not loopback: http:// is refused"
                )));
            }
            TlsConfig::default()
        }
    };
    let agent: Agent = Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .proxy(None)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .https_only(url.https)
        .user_agent(format!("twofa-deliver/{}", env!("CARGO_PKG_VERSION")))
        .accept("application/json")
        .tls_config(tls_config)
        .build()
        .into();
    let mut response = agent
        .post(&url.uri)
        .send_form(fields.iter().copied())
        .map_err(|err| failure(host, "sending the request to", err))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_RESPONSE)
        .read_to_vec()
        .map_err(|err| failure(host, "reading the response from", err))?;
    Ok(Response { status, body })
}

fn failure(host: &Host, step: &str, err: ureq::Error) -> Failure {
    match err {
        ureq::Error::Timeout(_) => Failure::delivery(format!("{step} {host} timed out")),
        ureq::Error::BodyExceedsLimit(_) => {
            Failure::delivery(format!("the response from {host} is too large"))
        }
        err => Failure::delivery(format!("{step} {host} failed: {err}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv6Addr};

    #[test]
    fn urls_are_split_into_host_port_and_scheme() {
        let url = Url::parse("https://api.pushover.net/1/messages.json");
        assert_eq!(
            url.as_ref().map(|u| (u.https, &u.host, u.port)),
            Some((true, &Host::Name("api.pushover.net".into()), 443))
        );
        let url = Url::parse("http://[::1]:8080/x?y=1");
        assert_eq!(
            url.as_ref().map(|u| (u.https, &u.host, u.port)),
            Some((false, &Host::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST)), 8080))
        );
        assert!(Url::parse("https://h.example").is_some());
        for bad in [
            "ftp://h/x",
            "https://user@h/x",
            "https://h:0/",
            "https://h:99999/",
            "https://h/a b",
            "https:///x",
            "https://h/x#frag",
            "https://h/x\r\nHost: evil",
            "/relative",
        ] {
            assert_eq!(Url::parse(bad), None, "{bad}");
        }
    }
}
