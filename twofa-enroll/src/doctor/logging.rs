//! The log: whether something reads /dev/log fast enough, and how many of pam_twofa's lines
//! were lost since the last one that got through.
//!
//! pam_twofa waits at most a quarter second per login for room on /dev/log, then counts the
//! line in /run/twofa/log-lost (see `twofa_core::syslog`). A queue of 10 datagrams (the
//! kernel's default `net.unix.max_dgram_qlen` without systemd) with a reader that is not a
//! real log daemon is where bursts of denials got lost: doctor says so before it happens.

use twofa_core::lost_lines::{self, Count};
use twofa_core::securefile::FileError;
use twofa_core::syslog::DEV_LOG;

use super::Finding;

/// Where the kernel's queue length for Unix datagram sockets is read (per network namespace).
const QLEN: &str = "/proc/sys/net/unix/max_dgram_qlen";

/// A queue shorter than this overflows in a burst of logins unless a real log daemon empties
/// it quickly (systemd sets 512; the kernel's default is 10).
pub(super) const LOW_QLEN: u32 = 64;

/// Process names (`/proc/*/comm`) of log daemons that read /dev/log.
const LOG_DAEMONS: &[&str] = &[
    "systemd-journal",
    "rsyslogd",
    "syslog-ng",
    "syslogd",
    "metalog",
];

const INSTALL: &str = "apt install rsyslog (or run systemd-journald)";

/// What is at /dev/log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LogSocket {
    /// Nothing: every line is lost (and counted).
    Missing,
    /// Something that is not a socket.
    NotSocket,
    /// A socket.
    Socket,
}

/// Reads what is at /dev/log.
fn log_socket() -> LogSocket {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::metadata(DEV_LOG) {
        Err(_) => LogSocket::Missing,
        Ok(m) if m.file_type().is_socket() => LogSocket::Socket,
        Ok(_) => LogSocket::NotSocket,
    }
}

/// The system's queue length, `None` when it can't be read.
fn queue_length() -> Option<u32> {
    std::fs::read_to_string(QLEN).ok()?.trim().parse().ok()
}

/// Whether /dev/log has a reader, and whether a burst of logins can overflow it (pure).
pub(super) fn check_reader(socket: LogSocket, qlen: Option<u32>, daemon: Option<&str>) -> Finding {
    let qlen_text = qlen.map_or("unknown".to_string(), |q| q.to_string());
    match socket {
        LogSocket::Missing => {
            return Finding::warning(
                "log",
                format!(
                    "{DEV_LOG} does not exist: pam_twofa's log lines are lost (counted in {}/{})",
                    lost_lines::DIR,
                    lost_lines::FILE
                ),
                INSTALL,
            )
        }
        LogSocket::NotSocket => {
            return Finding::warning(
                "log",
                format!(
                    "{DEV_LOG} is not a socket: pam_twofa's log lines are lost (counted in {}/{})",
                    lost_lines::DIR,
                    lost_lines::FILE
                ),
                format!("move {DEV_LOG} away, then {INSTALL}"),
            )
        }
        LogSocket::Socket => {}
    }
    match (daemon, qlen) {
        (Some(d), _) => Finding::ok(
            "log",
            format!("{d} reads {DEV_LOG} (net.unix.max_dgram_qlen = {qlen_text})"),
        ),
        (None, Some(q)) if q < LOW_QLEN => Finding::warning(
            "log",
            format!(
                "net.unix.max_dgram_qlen is {q} and no log daemon (journald, rsyslog, syslog-ng, syslogd) reads {DEV_LOG}: \
                 a burst of logins can fill its queue; each login then waits at most 250 ms and its line is counted as lost"
            ),
            format!(
                "{INSTALL}; or sysctl -w net.unix.max_dgram_qlen=512 (and put it in /etc/sysctl.d/), then restart what reads {DEV_LOG}"
            ),
        ),
        (None, _) => Finding::ok(
            "log",
            format!(
                "{DEV_LOG} is a socket (net.unix.max_dgram_qlen = {qlen_text}); no known log daemon seen, so make sure something reads it"
            ),
        ),
    }
}

/// The lost lines pending in the counter (pure).
pub(super) fn check_lost(pending: &Result<Option<Count>, FileError>) -> Finding {
    let path = format!("{}/{}", lost_lines::DIR, lost_lines::FILE);
    match pending {
        Ok(None) => Finding::ok("log", "no pam_twofa log line lost since the last report"),
        Ok(Some(count)) => Finding::warning(
            "log",
            format!(
                "{count} since the last pam_twofa line that got through ({path}); the next line reports them in the log"
            ),
            format!("make sure a log daemon reads {DEV_LOG} quickly: {INSTALL}"),
        ),
        Err(e) => Finding::warning(
            "log",
            format!("can't read the count of lost log lines: {e}"),
            format!("run doctor as root; if {path} is not root's regular file, remove it (pam_twofa creates it again, 0600)"),
        ),
    }
}

/// Both log checks, reading the system.
pub(super) fn check_logging() -> Vec<Finding> {
    let daemon = super::running_process(LOG_DAEMONS);
    vec![
        check_reader(log_socket(), queue_length(), daemon.as_deref()),
        check_lost(&lost_lines::LostLines::system().peek()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    #[test]
    fn a_short_queue_that_no_log_daemon_reads_is_a_warning_with_both_fixes() {
        let f = check_reader(LogSocket::Socket, Some(10), None);
        assert_eq!(f.status, Status::Warning);
        assert!(f.message.contains("max_dgram_qlen is 10"), "{}", f.message);
        assert!(
            f.fix.contains("sysctl -w net.unix.max_dgram_qlen=512"),
            "{}",
            f.fix
        );
        assert!(f.fix.contains("rsyslog"), "{}", f.fix);
    }

    #[test]
    fn a_log_daemon_or_a_long_queue_is_fine() {
        let f = check_reader(LogSocket::Socket, Some(10), Some("rsyslogd"));
        assert_eq!(f.status, Status::Ok);
        assert!(f.message.contains("rsyslogd"), "{}", f.message);
        assert_eq!(
            check_reader(LogSocket::Socket, Some(512), None).status,
            Status::Ok
        );
    }

    #[test]
    fn no_dev_log_at_all_is_a_warning() {
        for socket in [LogSocket::Missing, LogSocket::NotSocket] {
            let f = check_reader(socket, Some(512), Some("rsyslogd"));
            assert_eq!(f.status, Status::Warning);
            assert!(f.message.contains("lost"), "{}", f.message);
        }
    }

    #[test]
    fn lost_lines_are_shown_with_their_count() {
        let f = check_lost(&Ok(Some(Count::Lines(24))));
        assert_eq!(f.status, Status::Warning);
        assert!(
            f.message.starts_with("24 earlier log lines were lost"),
            "{}",
            f.message
        );
        assert_eq!(check_lost(&Ok(None)).status, Status::Ok);
        let refused = Err(FileError::Owner("/run/twofa/log-lost".into(), 1000));
        let f = check_lost(&refused);
        assert_eq!(f.status, Status::Warning);
        assert!(f.message.contains("uid 1000"), "{}", f.message);
    }
}
