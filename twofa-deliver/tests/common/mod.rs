//! Shared by the integration tests: certificates, a TLS server config, and running the real
//! binary with the environment and stdin the PAM module would give it.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

pub const CODE: &str = "493817";
pub const PASSWORD: &str = "s3cret-hunter2-pass";
pub const TOKEN: &str = "azGDORePK8gMaC0QOYAMyEEuzJnyUi";
pub const USER_KEY: &str = "uQiRzpo4DXghDmr9QzzfQu27cmVRsG";

/// A self-signed certificate for 127.0.0.1 and localhost, its PEM file (for `ca_file`) and a
/// server config presenting it.
pub struct TestCert {
    pub dir: tempfile::TempDir,
    pub pem_path: PathBuf,
    pub server: Arc<ServerConfig>,
}

impl TestCert {
    pub fn new() -> Result<Self, Box<dyn std::error::Error>> {
        let certified =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])?;
        let dir = tempfile::tempdir()?;
        let pem_path = dir.path().join("ca.pem");
        std::fs::write(&pem_path, certified.cert.pem())?;
        let cert: CertificateDer<'static> = certified.cert.der().clone();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            certified.signing_key.serialize_der(),
        ));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)?;
        Ok(TestCert {
            dir,
            pem_path,
            server: Arc::new(server),
        })
    }

    pub fn ca_file(&self) -> String {
        self.pem_path.display().to_string()
    }
}

/// Runs `twofa-deliver METHOD` with the standard test environment (`sendto` as destination)
/// and `settings` on stdin.
pub fn deliver(method: &str, sendto: &str, settings: &str) -> std::io::Result<Output> {
    deliver_with(method, sendto, settings, |_| {})
}

pub fn deliver_with(
    method: &str,
    sendto: &str,
    settings: &str,
    adjust: impl FnOnce(&mut Command),
) -> std::io::Result<Output> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_twofa-deliver"));
    command
        .arg(method)
        .env_clear()
        .env("TWOFA_USER", "alice")
        .env("TWOFA_SENDTO", sendto)
        .env("TWOFA_CODE", CODE)
        .env("TWOFA_TTL", "300")
        .env("TWOFA_METHOD", method)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    adjust(&mut command);
    let mut child = command.spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(settings.as_bytes())?;
    }
    child.wait_with_output()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The failure contract: one line on stderr, no secret in it.
pub fn assert_one_clean_line(output: &Output) {
    let err = stderr(output);
    assert_eq!(err.lines().count(), 1, "stderr: {err:?}");
    for secret in [CODE, PASSWORD, TOKEN] {
        assert!(!err.contains(secret), "secret in stderr: {err:?}");
    }
}
