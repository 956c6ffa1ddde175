//! The fleet store: reachable, schema current, this host's fleet key the fleet's.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use twofa_core::config::{Config, OnStoreError, StoreKind};

use super::Finding;

/// How long `twofa-store check` may take (connect, TLS, two queries).
const CHECK_DEADLINE: Duration = Duration::from_secs(15);

/// Runs `helper check` and reports its line; says what `on_store_error = "local"` gives up.
pub(super) fn check_fleet(config: &Config) -> Vec<Finding> {
    if config.store.kind != StoreKind::Postgres {
        return Vec::new();
    }
    let mut findings = vec![run_check(config)];
    if config.on_store_error == OnStoreError::Local {
        findings.push(Finding::warning(
            "store",
            "on_store_error = \"local\": while the store is unreachable, logins are decided on this host's files, without fleet-wide replay protection or lockout",
            "keep it only if a login during a database outage matters more than those; otherwise on_store_error = \"deny\"",
        ));
    }
    findings
}

fn run_check(config: &Config) -> Finding {
    let helper = &config.store.helper;
    let child = Command::new(helper)
        .arg("check")
        .arg("--settings")
        .arg(&config.store.settings)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            return Finding::error(
                "store",
                format!("could not run the store helper {}: {e}", helper.display()),
                "[store] helper must name twofa-store (the package installs /usr/lib/twofa/twofa-store)",
            )
        }
    };
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if start.elapsed() < CHECK_DEADLINE => {
                std::thread::sleep(Duration::from_millis(20))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let line = |s: &str| s.lines().next().unwrap_or("").trim().to_string();
    match status {
        Some(s) if s.success() => Finding::ok("store", line(&out)),
        Some(_) => Finding::error(
            "store",
            format!("the fleet store fails its check: {}", line(&err)),
            "every login is denied (or decided locally) until this is fixed; see docs/fleet.md, then: twofa-enroll store check",
        ),
        None => Finding::error(
            "store",
            format!(
                "the fleet store did not answer within {} s",
                CHECK_DEADLINE.as_secs()
            ),
            "is the database up and reachable from this host? every login waits store.timeout_ms and is then denied",
        ),
    }
}
