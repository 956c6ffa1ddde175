//! The clock: TOTP needs it synchronized.

use std::process::Command;

use twofa_core::config::Config;

use super::Finding;

/// Process names (`/proc/*/comm`, 15 characters at most) of time synchronization daemons.
const TIME_DAEMONS: &[&str] = &["chronyd", "ntpd", "systemd-timesyn", "openntpd", "ntpsec"];

/// TOTP codes are tied to the time: a clock that drifts past the window refuses right codes.
pub(super) fn check_clock(config: &Config) -> Finding {
    let slack = config.totp.window * config.totp.params.period;
    let need = format!("TOTP needs a clock within ±{slack} seconds (window × period)");
    let synced = Command::new("timedatectl")
        .args(["show", "-p", "NTPSynchronized", "--value"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match synced.as_deref() {
        Some("yes") => {
            return Finding::ok("clock", "synchronized (timedatectl: NTPSynchronized=yes)")
        }
        Some("no") => {
            return Finding::warning(
                "clock",
                format!("not synchronized (timedatectl: NTPSynchronized=no): {need}"),
                "timedatectl set-ntp true (or install chrony)",
            )
        }
        _ => {}
    }
    match super::running_process(TIME_DAEMONS) {
        Some(d) => Finding::ok("clock", format!("{d} is running")),
        None => Finding::warning(
            "clock",
            format!("can't tell whether the clock is synchronized (no timedatectl answer, no chronyd, ntpd or systemd-timesyncd running): {need}"),
            "apt install systemd-timesyncd (or chrony)",
        ),
    }
}
