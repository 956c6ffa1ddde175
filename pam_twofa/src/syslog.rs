//! One authpriv line per decision, sent to /dev/log without ever blocking.
//!
//! Not syslog(3): glibc's send() blocks when the log daemon stops reading, and a stalled
//! journald must not freeze every sshd login. We send one datagram, non-blocking, and drop it
//! silently when there is no /dev/log or its queue is full. No openlog: the host program owns
//! the process's syslog settings. Lines never carry a secret, a code or a password.

use std::os::unix::net::UnixDatagram;

/// LOG_AUTHPRIV from <syslog.h>.
const LOG_AUTHPRIV: u8 = 10 << 3;

/// Severity of a line.
#[derive(Debug, Clone, Copy)]
pub enum Level {
    /// LOG_ERR: twofa could not decide (broken config or files).
    Error = 3,
    /// LOG_NOTICE: a denial.
    Notice = 5,
    /// LOG_INFO: a success or a pass-through.
    Info = 6,
    /// LOG_DEBUG: only with the `debug` argument.
    Debug = 7,
}

/// Where syslog listens. Not configurable: tests bind their own listener here.
const DEV_LOG: &str = "/dev/log";

/// The host program's name, as syslog(3) would put it (sshd, sudo, su, vsftpd).
fn ident() -> String {
    std::fs::read_to_string("/proc/self/comm")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or_else(|| "pam_twofa".to_string())
}

/// Sends `message` at `level`; never blocks, never fails the login.
pub fn send(level: Level, message: &str) {
    let line = format!(
        "<{}>{}[{}]: {}",
        LOG_AUTHPRIV | level as u8,
        ident(),
        std::process::id(),
        message
    );
    let Ok(socket) = UnixDatagram::unbound() else {
        return;
    };
    if socket.set_nonblocking(true).is_err() {
        return;
    }
    let _ = socket.send_to(line.as_bytes(), DEV_LOG);
}
