//! The SMTP dialogue for one message, through lettre's blocking `SmtpConnection`.
//!
//! lettre speaks the protocol (reply parsing, EHLO capabilities, STARTTLS, AUTH PLAIN/LOGIN,
//! dot-stuffing). This file decides what is allowed and in which order, one step at a time so
//! that a failure names its step: STARTTLS required when configured (never an opportunistic
//! fallback), credentials never in clear text off loopback, the trust from tls.rs only.
//!
//! Known gap, lettre 0.11.23: after the STARTTLS reply it does not check that its read buffer is
//! empty, so reply lines a man in the middle sent in clear text right behind the `220` would be
//! read as if they came over TLS (the response-injection class of CVE-2011-0411). Such an
//! attacker can make this program misread the relay's replies (a failed or a falsely reported
//! delivery, both within reach of anyone who can drop the connection anyway), not read or change
//! anything sent over TLS: the credentials and the message only go after the handshake.
//! `tls = "implicit"` has no clear-text phase at all.

use std::error::Error as _;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    Certificate, CertificateStore, SmtpConnection, TlsParameters,
};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::Error;
use rustls::pki_types::CertificateDer;

use crate::address::Host;
use crate::error::Failure;

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TlsMode {
    /// Plain connection, then STARTTLS, required: a server that does not offer it is refused.
    StartTls,
    /// TLS from the first byte (SMTPS, port 465).
    Implicit,
    /// No TLS: loopback relays only.
    None,
}

/// Where and how to reach the relay.
#[derive(Debug)]
pub(crate) struct Relay<'a> {
    pub(crate) host: &'a Host,
    pub(crate) addrs: &'a [SocketAddr],
    pub(crate) tls: TlsMode,
    /// Set for every mode but `None`.
    pub(crate) roots: Option<&'a Arc<Vec<CertificateDer<'static>>>>,
    pub(crate) credentials: Option<(&'a str, &'a str)>,
    pub(crate) helo: &'a str,
    pub(crate) timeout: Duration,
}

/// Sends `message` (complete, as formatted by lettre) to the envelope's recipients.
pub(crate) fn send(relay: &Relay<'_>, envelope: &Envelope, message: &[u8]) -> Result<(), Failure> {
    let host = relay.host;
    let params = match relay.roots {
        Some(roots) => Some(tls_parameters(host, roots)?),
        None if relay.tls == TlsMode::None => None,
        None => return Err(Failure::delivery("TLS without trusted certificates")),
    };
    let client_id = ClientId::Domain(relay.helo.to_string());
    let wrapper = params.as_ref().filter(|_| relay.tls == TlsMode::Implicit);
    // Greeting and EHLO (after the TLS handshake with `implicit`).
    let mut conn =
        SmtpConnection::connect(relay.addrs, Some(relay.timeout), &client_id, wrapper, None)
            .map_err(|err| failure(host, "the greeting or EHLO", &err))?;
    if let (TlsMode::StartTls, Some(params)) = (relay.tls, &params) {
        if !conn.can_starttls() {
            conn.abort();
            return Err(Failure::delivery(format!(
                "SMTP server {host} does not offer STARTTLS (set tls = \"implicit\" for port 465)"
            )));
        }
        conn.starttls(params, &client_id)
            .map_err(|err| failure(host, "STARTTLS", &err))?;
    }
    if let Some((username, password)) = relay.credentials {
        // Settings already refuse this; checked again where the password would leave.
        if !conn.is_encrypted() && !host.is_loopback() {
            conn.abort();
            return Err(Failure::settings(
                "email: refusing to send credentials without TLS",
            ));
        }
        let info = conn.server_info();
        let (mechanism, shown) = if info.supports_auth_mechanism(Mechanism::Plain) {
            (Mechanism::Plain, "AUTH PLAIN")
        } else if info.supports_auth_mechanism(Mechanism::Login) {
            (Mechanism::Login, "AUTH LOGIN")
        } else {
            conn.abort();
            return Err(Failure::delivery(format!(
                "SMTP server {host} offers neither AUTH PLAIN nor AUTH LOGIN"
            )));
        };
        let credentials = Credentials::new(username.to_string(), password.to_string());
        conn.auth(&[mechanism], &credentials)
            .map_err(|err| failure(host, shown, &err))?;
    }
    conn.command(Mail::new(envelope.from().cloned(), Vec::new()))
        .map_err(|err| failure(host, "the sender", &err))?;
    for recipient in envelope.to() {
        conn.command(Rcpt::new(recipient.clone(), Vec::new()))
            .map_err(|err| failure(host, &format!("recipient {recipient}"), &err))?;
    }
    conn.command(Data)
        .map_err(|err| failure(host, "DATA", &err))?;
    conn.message(message)
        .map_err(|err| failure(host, "the message", &err))?;
    // Best effort: the message is already accepted.
    let _ = conn.quit();
    Ok(())
}

/// lettre's TLS parameters with our roots only (never its default store) and its default
/// minimum of TLS 1.2.
fn tls_parameters(
    host: &Host,
    roots: &Arc<Vec<CertificateDer<'static>>>,
) -> Result<TlsParameters, Failure> {
    let name = match host {
        Host::Ip(ip) => ip.to_string(),
        Host::Name(name) => name.clone(),
    };
    let mut builder = TlsParameters::builder(name).certificate_store(CertificateStore::None);
    for root in roots.iter() {
        let cert = Certificate::from_der(root.to_vec())
            .map_err(|err| Failure::settings(format!("a trusted certificate: {err}")))?;
        builder = builder.add_root_certificate(cert);
    }
    builder
        .build()
        .map_err(|err| Failure::delivery(format!("TLS setup for {host} failed: {}", chain(&err))))
}

/// One line for a failed step: the relay's refusal with its code, a TLS failure, a timeout or
/// a network error. Reply texts are the server's: `Failure::redacted` removes any secret it
/// echoes.
fn failure(host: &Host, step: &str, err: &Error) -> Failure {
    if let Some(code) = err.status() {
        let text = err.source().map(ToString::to_string).unwrap_or_default();
        return Failure::delivery(format!("SMTP server {host} refused {step}: {code} {text}"));
    }
    if is_timeout(err) {
        return Failure::delivery(format!("SMTP {step} with {host} timed out"));
    }
    // lettre has no predicate for its `Connection` kind (TCP connect failed).
    if err.to_string().starts_with("Connection error") {
        let why = err.source().map(ToString::to_string).unwrap_or_default();
        return Failure::delivery(format!("cannot connect to {host}: {why}"));
    }
    if err.is_tls() {
        return Failure::delivery(format!("TLS handshake with {host} failed: {}", chain(err)));
    }
    Failure::delivery(format!("SMTP {step} with {host} failed: {}", chain(err)))
}

/// A socket timeout shows up as WouldBlock on Linux; lettre's own check knows only TimedOut.
fn is_timeout(err: &Error) -> bool {
    let mut source = err.source();
    while let Some(inner) = source {
        if let Some(io_err) = inner.downcast_ref::<io::Error>() {
            return matches!(
                io_err.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            );
        }
        source = inner.source();
    }
    false
}

/// The error and its causes, on one line.
fn chain(err: &dyn std::error::Error) -> String {
    let mut line = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = inner.source();
    }
    line
}
