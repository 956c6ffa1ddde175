//! Log lines to the syslog socket with a bounded wait, and no line lost without a trace.
//!
//! Not syslog(3): glibc's send() blocks for as long as the log daemon does not read, and a
//! stopped journald must not freeze every sshd login. Not a plain non-blocking send either:
//! the kernel queues only `net.unix.max_dgram_qlen` datagrams on /dev/log (10 without systemd,
//! 512 under it), so a burst of denials, just when an admin needs the log, overflowed it and
//! lines vanished (24 of 750 in the issue 16 measurement). So:
//!
//! - each line goes out on a blocking socket with `SO_SNDTIMEO`: it waits for room in the
//!   queue, but one login waits at most [`SOCKET_WAIT`] in all, whatever its number of lines
//!   (a [`Budget`] carried through the login), and never again once that is spent;
//! - a line that still cannot be sent is counted in [`lost_lines`](crate::lost_lines) (a
//!   root-only file under /run, so the next process sees it), whose lock is waited for only
//!   within what is left of [`LOGIN_BUDGET`];
//! - the next line that gets through, from any process, is preceded by one line saying how
//!   many were lost, and the count is reset. A report line that is itself lost goes back into
//!   the count, so the figures stay exact.
//!
//! No openlog: the host program owns the process's syslog settings. Lines never carry a
//! secret, a code or a password.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::lost_lines::{Count, LostLines};

/// Where syslog listens.
pub const DEV_LOG: &str = "/dev/log";

/// All the time one login may spend logging: waiting for room on the socket, then for the
/// counter's lock. A quarter of a second beside a two-second fail delay: a stalled log daemon
/// slows a login a little and hangs none.
pub const LOGIN_BUDGET: Duration = Duration::from_millis(250);

/// Of [`LOGIN_BUDGET`], what waiting on the socket may take; the rest is kept for counting a
/// line that still did not go, so a stalled daemon cannot also cost the count. 50 ms is far
/// more than the lock is held for (one read and one write of a few bytes on tmpfs), even by
/// fifty logins queued for it.
pub const SOCKET_WAIT: Duration = Duration::from_millis(200);

/// Below this a wait is not worth setting up (and SO_SNDTIMEO of 0 would mean "forever"):
/// the send is made non-blocking instead.
const MIN_WAIT: Duration = Duration::from_millis(1);

/// LOG_AUTHPRIV from <syslog.h>.
const LOG_AUTHPRIV: u8 = 10 << 3;

/// Severity of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// LOG_ERR: twofa could not decide (broken config or files).
    Error = 3,
    /// LOG_WARNING: log lines were lost.
    Warning = 4,
    /// LOG_NOTICE: a denial.
    Notice = 5,
    /// LOG_INFO: a success or a pass-through.
    Info = 6,
    /// LOG_DEBUG: only with the `debug` argument.
    Debug = 7,
}

/// What one login has spent on logging so far. The PAM module keeps it on the PAM handle,
/// so the bound holds across every line of every pam_twofa line of one login (and of each
/// retry on the same handle: sudo's three tries share one quarter second).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Budget {
    spent: Duration,
}

impl Budget {
    /// A budget of which `spent` is already gone.
    pub fn with_spent(spent: Duration) -> Budget {
        Budget { spent }
    }

    /// Time spent logging so far.
    pub fn spent(&self) -> Duration {
        self.spent
    }

    /// What waiting on the socket may still take.
    pub fn socket_wait(&self) -> Duration {
        SOCKET_WAIT.saturating_sub(self.spent)
    }

    /// What waiting for the counter's lock may still take.
    pub fn lock_wait(&self) -> Duration {
        LOGIN_BUDGET.saturating_sub(self.spent)
    }

    fn charge(&mut self, since: Instant) {
        self.spent = self.spent.saturating_add(since.elapsed());
    }
}

/// What became of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// The log daemon has it.
    Delivered,
    /// It could not be sent and was counted: the next line through reports it.
    Counted,
    /// It could not be sent, nor counted (not root, or the counter refused or stayed locked).
    Lost,
}

/// Where lines go and where lost ones are counted.
#[derive(Debug, Clone, Copy)]
pub struct Syslog<'a> {
    socket: &'a Path,
    lost: LostLines<'a>,
}

impl Syslog<'static> {
    /// The machine's: /dev/log, counted in /run/twofa/log-lost.
    pub fn system() -> Syslog<'static> {
        Syslog {
            socket: Path::new(DEV_LOG),
            lost: LostLines::system(),
        }
    }
}

impl<'a> Syslog<'a> {
    /// Another socket and counter (the unit tests').
    pub fn at(socket: &'a Path, lost: LostLines<'a>) -> Syslog<'a> {
        Syslog { socket, lost }
    }

    /// Sends `message` at `level` as `ident[pid]` (the host program's name and pid, as
    /// syslog(3) would write them), within what is left of `budget`. A count of earlier lost
    /// lines, if any, goes first in a line of its own.
    pub fn send(&self, budget: &mut Budget, ident: &str, level: Level, message: &str) -> Sent {
        let pending = self.take_pending(budget);
        let mut missing = 0;
        let mut unknown = false;
        if let Some(count) = pending {
            let report = format!("pam_twofa: {count}; see twofa-enroll doctor");
            if !self.deliver(budget, &line(ident, Level::Warning, &report)) {
                match count {
                    Count::Lines(n) => missing += n,
                    Count::Unreadable => unknown = true,
                }
            }
        }
        let delivered = self.deliver(budget, &line(ident, level, message));
        if !delivered {
            missing += 1;
        }
        if missing == 0 && !unknown {
            return Sent::Delivered;
        }
        let start = Instant::now();
        let counted = if unknown {
            // An unknown number was lost and could not be reported: still unknown, whatever
            // this line adds to it.
            self.lost.give_back(Count::Unreadable, budget.lock_wait())
        } else {
            self.lost.add(missing, budget.lock_wait())
        }
        .is_ok();
        budget.charge(start);
        match (delivered, counted) {
            (true, _) => Sent::Delivered,
            (false, true) => Sent::Counted,
            (false, false) => Sent::Lost,
        }
    }

    /// The count that earlier processes left, taken (one try at the lock: no wait).
    fn take_pending(&self, budget: &mut Budget) -> Option<Count> {
        let start = Instant::now();
        let taken = self.lost.take().ok().flatten();
        budget.charge(start);
        taken
    }

    /// One datagram, waiting for room at most what the budget has left for the socket.
    fn deliver(&self, budget: &mut Budget, datagram: &str) -> bool {
        let start = Instant::now();
        let sent = send_datagram(self.socket, datagram.as_bytes(), budget.socket_wait());
        budget.charge(start);
        sent.is_ok()
    }
}

/// `<PRI>ident[pid]: message`, the form syslog(3) sends to /dev/log.
pub fn line(ident: &str, level: Level, message: &str) -> String {
    format!(
        "<{}>{ident}[{}]: {message}",
        LOG_AUTHPRIV | level as u8,
        std::process::id()
    )
}

/// Sends one datagram to `socket` on a fresh unbound socket, waiting at most `wait` for room
/// in the receiver's queue (SO_SNDTIMEO; a signal that interrupts the wait resumes it with
/// what is left). Less than [`MIN_WAIT`]: one non-blocking try.
pub fn send_datagram(socket: &Path, datagram: &[u8], wait: Duration) -> io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left < MIN_WAIT {
            sock.set_nonblocking(true)?;
        } else {
            sock.set_write_timeout(Some(left))?;
        }
        match sock.send_to(datagram, socket) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted && left >= MIN_WAIT => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch::is_root;

    fn tempdir() -> std::path::PathBuf {
        crate::scratch::dir("twofa-syslog-test")
    }

    /// A listener that never reads, its queue filled to the brim.
    fn stalled_listener(path: &Path) -> io::Result<UnixDatagram> {
        let listener = UnixDatagram::bind(path)?;
        while send_datagram(path, b"<13>filler: x", Duration::ZERO).is_ok() {}
        Ok(listener)
    }

    fn drain(listener: &UnixDatagram) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        listener.set_nonblocking(true).ok();
        while let Ok(n) = listener.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        out
    }

    #[test]
    fn the_budget_gives_the_socket_200_ms_and_keeps_the_rest_for_the_count() {
        let mut b = Budget::default();
        assert_eq!(b.socket_wait(), SOCKET_WAIT);
        assert_eq!(b.lock_wait(), LOGIN_BUDGET);
        b = Budget::with_spent(Duration::from_millis(210));
        assert_eq!(b.socket_wait(), Duration::ZERO);
        assert_eq!(b.lock_wait(), Duration::from_millis(40));
        b = Budget::with_spent(Duration::from_secs(9));
        assert_eq!(b.lock_wait(), Duration::ZERO);
    }

    #[test]
    fn a_line_is_in_the_syslog_wire_form() {
        let l = line("sshd", Level::Notice, "pam_twofa(sshd:auth): hello");
        assert_eq!(
            l,
            format!(
                "<85>sshd[{}]: pam_twofa(sshd:auth): hello",
                std::process::id()
            )
        );
    }

    #[test]
    fn a_stalled_reader_costs_one_login_at_most_the_socket_wait_in_all() -> io::Result<()> {
        let base = tempdir();
        let sock = base.join("log");
        let _listener = stalled_listener(&sock)?;
        let log = Syslog::at(&sock, LostLines::at(&base));
        let mut budget = Budget::default();
        let start = Instant::now();
        for _ in 0..5 {
            log.send(&mut budget, "test", Level::Notice, "a decision");
        }
        let took = start.elapsed();
        std::fs::remove_dir_all(&base).ok();
        // It waited (the send did not just give up) ...
        assert!(took >= SOCKET_WAIT, "{took:?}");
        // ... and five lines cost one budget, not five (generous margin for a loaded host).
        assert!(took < LOGIN_BUDGET + Duration::from_millis(500), "{took:?}");
        assert!(budget.spent() >= SOCKET_WAIT);
        Ok(())
    }

    #[test]
    fn a_line_waits_for_room_and_gets_through_when_the_reader_catches_up() -> io::Result<()> {
        let base = tempdir();
        let sock = base.join("log");
        let listener = stalled_listener(&sock)?;
        let reader = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            // What it drains may already hold the waiting line: kept, not thrown away.
            let early = drain(&listener);
            // Kept open until the send is over: a closed socket refuses the waiting sender.
            (listener, early)
        });
        let log = Syslog::at(&sock, LostLines::at(&base));
        let sent = log.send(&mut Budget::default(), "test", Level::Notice, "waited");
        let (listener, mut lines) = reader
            .join()
            .map_err(|_| io::Error::other("the reader thread panicked"))?;
        lines.extend(drain(&listener));
        std::fs::remove_dir_all(&base).ok();
        assert_eq!(sent, Sent::Delivered);
        assert!(lines.iter().any(|l| l.ends_with(": waited")), "{lines:?}");
        Ok(())
    }

    #[test]
    fn lost_lines_are_counted_and_reported_by_the_next_line_through() -> io::Result<()> {
        if !is_root() {
            return Ok(());
        }
        let base = tempdir();
        let sock = base.join("log");
        let counter = base.join("run");
        let listener = stalled_listener(&sock)?;
        let log = Syslog::at(&sock, LostLines::at(&counter));
        // Three logins, each with its own budget (three processes), none gets through.
        for i in 0..3 {
            let sent = log.send(
                &mut Budget::default(),
                "test",
                Level::Notice,
                &format!("lost {i}"),
            );
            assert_eq!(sent, Sent::Counted);
        }
        assert_eq!(
            LostLines::at(&counter).peek().ok().flatten(),
            Some(Count::Lines(3))
        );
        drain(&listener);
        let sent = log.send(&mut Budget::default(), "test", Level::Notice, "through");
        let lines = drain(&listener);
        std::fs::remove_dir_all(&base).ok();
        assert_eq!(sent, Sent::Delivered);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with("<84>test["), "{lines:?}");
        assert!(
            lines[0].ends_with("pam_twofa: 3 earlier log lines were lost; see twofa-enroll doctor"),
            "{lines:?}"
        );
        assert!(lines[1].ends_with(": through"), "{lines:?}");
        Ok(())
    }

    #[test]
    fn without_a_socket_the_line_is_counted_at_once() -> io::Result<()> {
        if !is_root() {
            return Ok(());
        }
        let base = tempdir();
        let counter = base.join("run");
        let log = Syslog::at(Path::new("/nonexistent/twofa/log"), LostLines::at(&counter));
        let start = Instant::now();
        let sent = log.send(
            &mut Budget::default(),
            "test",
            Level::Info,
            "nobody listens",
        );
        let took = start.elapsed();
        let count = LostLines::at(&counter).peek().ok().flatten();
        std::fs::remove_dir_all(&base).ok();
        assert_eq!(sent, Sent::Counted);
        assert_eq!(count, Some(Count::Lines(1)));
        assert!(took < Duration::from_millis(100), "{took:?}");
        Ok(())
    }
}
