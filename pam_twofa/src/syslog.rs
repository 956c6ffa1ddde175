//! The module's log lines: [`twofa_core::syslog`] (bounded wait, lost lines counted and
//! reported), with the login's budget kept on the PAM handle.
//!
//! The budget lives in the handle (pam_set_data), not in the process: one handle is one
//! login, and every pam_twofa line of its stack and every retry on it (sudo asks up to three
//! times) share one [`LOGIN_BUDGET`](twofa_core::syslog::LOGIN_BUDGET), while a process that
//! runs many logins (a PAM-using daemon) gives each its own.

use std::cell::Cell;
use std::ffi::CStr;
use std::time::Duration;

use pam::module::PamHandle;
pub use twofa_core::syslog::Level;
use twofa_core::syslog::{Budget, Syslog};

/// pam_set_data name of the time this login has spent logging.
const SPENT: &CStr = c"twofa.log_spent";

/// What is stored under [`SPENT`].
struct Spent(Cell<Duration>);

/// The host program's name, as syslog(3) would put it (sshd, sudo, su, vsftpd).
fn ident() -> String {
    std::fs::read_to_string("/proc/self/comm")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or_else(|| "pam_twofa".to_string())
}

/// Sends `message` at `level` within what is left of this login's log budget; never fails the
/// login, never waits longer than the budget.
pub fn send(pamh: &mut PamHandle, level: Level, message: &str) {
    let key = SPENT.to_str().unwrap_or_default();
    // SAFETY: the only value ever stored under SPENT is a `Spent`, below.
    let stored = unsafe { pamh.get_data::<Spent>(key) }
        .ok()
        .map(|s| s.0.get());
    let mut budget = Budget::with_spent(stored.unwrap_or_default());
    Syslog::system().send(&mut budget, &ident(), level, message);
    if stored.is_some() {
        // SAFETY: as above; the entry was found a moment ago and nothing replaced it since.
        if let Ok(s) = unsafe { pamh.get_data::<Spent>(key) } {
            s.0.set(budget.spent());
        }
    } else {
        // Without the entry the next line of this login starts a fresh budget: still bounded
        // per line, and pam_set_data fails only when memory runs out.
        let _ = pamh.set_data(key, Box::new(Spent(Cell::new(budget.spent()))));
    }
}
