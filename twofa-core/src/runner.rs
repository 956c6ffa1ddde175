//! Child processes with a hard deadline: how the module runs the delivery program.
//!
//! A client library's own timeouts don't cover a frozen peer, and a login must never hang, so
//! the deadline is enforced here: wait without blocking until it, then SIGKILL the child's
//! whole process group (an admin's script may have started others) and reap it. The child
//! gets an empty environment but for what it is given, stdin from us, stdout discarded,
//! stderr captured (at most 4 KiB, for the log), its own process group, and, when `run_as`
//! is set, an unprivileged uid and gid (std drops supplementary groups when leaving root).
//! The delivery program closes every other inherited fd itself before doing anything.

use std::fmt;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::sys::socket::{send, MsgFlags};
use nix::unistd::{Pid, User};

/// Most stderr kept.
const STDERR_LIMIT: u64 = 4096;
/// Most stdin written (less than a socket's buffer, so writing never waits for the child).
pub const STDIN_LIMIT: usize = 16 * 1024;

/// The unprivileged identity a child runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

impl RunAs {
    /// The identity of system user `name`; root is refused.
    pub fn user(name: &str) -> Result<RunAs, String> {
        match User::from_name(name) {
            Ok(Some(u)) if !u.uid.is_root() => Ok(RunAs {
                uid: u.uid.as_raw(),
                gid: u.gid.as_raw(),
            }),
            Ok(Some(_)) => Err(format!("run_as user {name} is root; refused")),
            Ok(None) => Err(format!(
                "run_as user {name} does not exist (the package creates it)"
            )),
            Err(e) => Err(format!("run_as user {name}: {e}")),
        }
    }
}

/// How a child ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    /// Exit status 0.
    pub success: bool,
    /// The exit code, if it exited (not killed).
    pub status: Option<i32>,
    /// What it wrote on stderr (at most 4 KiB, lossy UTF-8).
    pub stderr: String,
}

/// Why a child could not be run to its end.
#[derive(Debug)]
pub enum RunError {
    /// It could not be started.
    Spawn(String),
    /// It was still running at the deadline and was killed.
    Timeout(Duration),
    /// Its stdin was larger than [`STDIN_LIMIT`].
    InputTooLarge,
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Spawn(e) => write!(f, "could not start: {e}"),
            RunError::Timeout(d) => write!(f, "did not finish within {} s; killed", d.as_secs()),
            RunError::InputTooLarge => write!(f, "input larger than {STDIN_LIMIT} bytes"),
        }
    }
}

impl std::error::Error for RunError {}

/// For a helper program the module runs (the fleet store helper): closes every descriptor
/// above stderr it inherited, so nothing sshd or sudo had open (sockets, the PAM application's
/// files) reaches its network code. std opens its own descriptors close-on-exec, but the host
/// application's need not be. Call it first thing in `main`.
pub fn close_inherited_fds() {
    let listed = std::fs::read_dir("/proc/self/fd").map(|dir| {
        dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|fd| *fd > 2)
            .collect::<Vec<_>>()
    });
    // The directory's own descriptor is in the list, already closed: EBADF, ignored. Without
    // /proc, every descriptor up to a bound.
    let fds = listed.unwrap_or_else(|_| (3..4096).collect());
    for fd in fds {
        let _ = nix::unistd::close(fd);
    }
}

/// Runs `program args...` with exactly `env`, `input` on stdin, until it ends or `deadline`
/// passes (then it and its process group are killed, and `RunError::Timeout` returned).
pub fn run(
    program: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    input: &[u8],
    run_as: Option<RunAs>,
    deadline: Duration,
) -> Result<Ran, RunError> {
    if input.len() > STDIN_LIMIT {
        return Err(RunError::InputTooLarge);
    }
    // stdin is a socket, not a pipe: writing to a child that died would raise SIGPIPE in the
    // host (sshd, sudo), whose disposition is not ours to change; send(MSG_NOSIGNAL) can't.
    let (ours, theirs) =
        UnixStream::pair().map_err(|e| RunError::Spawn(format!("socketpair: {e}")))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .envs(env.iter().copied())
        .current_dir("/")
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(r) = run_as {
        cmd.gid(r.gid).uid(r.uid);
    }
    let start = Instant::now();
    let spawned = cmd.spawn();
    // Our copy of the child's end must go, or the child never sees the end of its input.
    drop(cmd);
    let mut child = spawned.map_err(|e| RunError::Spawn(format!("{}: {e}", program.display())))?;
    let pgid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
    // Fits in the socket buffer, so it never waits for the child; a child that exits early
    // makes it fail with EPIPE, never a signal.
    let mut sent = 0;
    while sent < input.len() {
        match send(
            ours.as_raw_fd(),
            &input[sent..],
            MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(0) | Err(_) => break,
            Ok(n) => sent += n,
        }
    }
    let _ = ours.shutdown(std::net::Shutdown::Write);
    let (tx, rx) = mpsc::channel();
    if let Some(stderr) = child.stderr.take() {
        // A reader thread, so that a child filling its stderr pipe can't block on us; it ends
        // when the last holder of the pipe (the child, or a grandchild) exits or is killed.
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stderr.take(STDERR_LIMIT).read_to_end(&mut buf);
            let _ = tx.send(buf);
        });
    }
    let mut pause = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() >= deadline => break None,
            Ok(None) => {
                std::thread::sleep(pause.min(deadline.saturating_sub(start.elapsed())));
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(_) => break None,
        }
    };
    let Some(status) = status else {
        let _ = killpg(pgid, Signal::SIGKILL);
        let _ = child.kill();
        let _ = child.wait();
        return Err(RunError::Timeout(deadline));
    };
    // Whatever the child left running in its group goes too: nothing outlives a delivery.
    let _ = killpg(pgid, Signal::SIGKILL);
    let stderr = rx
        .recv_timeout(Duration::from_millis(200))
        .unwrap_or_default();
    Ok(Ran {
        success: status.success(),
        status: status.code(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, env: &[(&str, &str)], deadline: Duration) -> Result<Ran, RunError> {
        run(
            Path::new("/bin/sh"),
            &["-c", script],
            env,
            b"from stdin\n",
            None,
            deadline,
        )
    }

    #[test]
    fn a_child_gets_its_env_and_stdin_and_its_status_and_stderr_come_back() -> Result<(), RunError>
    {
        let r = sh(
            "read line; echo \"$line $TWOFA_X ${HOME:-nohome}\" >&2; exit 3",
            &[("TWOFA_X", "y")],
            Duration::from_secs(5),
        )?;
        assert_eq!((r.success, r.status), (false, Some(3)));
        assert_eq!(r.stderr.trim(), "from stdin y nohome");
        Ok(())
    }

    #[test]
    fn a_child_that_hangs_is_killed_at_the_deadline_with_its_children() {
        let start = Instant::now();
        let r = sh("sleep 30 & sleep 30", &[], Duration::from_millis(300));
        assert!(matches!(r, Err(RunError::Timeout(_))), "{r:?}");
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn a_child_that_ignores_its_input_does_not_signal_us() -> Result<(), RunError> {
        // If this raised SIGPIPE, the test process would die here.
        let big = vec![b'x'; STDIN_LIMIT];
        let r = run(
            Path::new("/bin/sh"),
            &["-c", "exit 0"],
            &[],
            &big,
            None,
            Duration::from_secs(5),
        )?;
        assert!(r.success);
        Ok(())
    }

    #[test]
    fn a_missing_program_is_an_error_not_a_hang() {
        let r = run(
            Path::new("/nonexistent/deliver"),
            &[],
            &[],
            b"",
            None,
            Duration::from_secs(1),
        );
        assert!(matches!(r, Err(RunError::Spawn(_))));
    }

    #[test]
    fn a_child_runs_as_the_user_it_is_given() -> Result<(), RunError> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(());
        }
        let nobody = RunAs::user("nobody").map_err(RunError::Spawn)?;
        let r = run(
            Path::new("/bin/sh"),
            &["-c", "id -u >&2; id -G >&2"],
            &[],
            b"",
            Some(nobody),
            Duration::from_secs(5),
        )?;
        let mut lines = r.stderr.lines();
        assert_eq!(lines.next(), Some(nobody.uid.to_string().as_str()));
        assert_eq!(
            lines.next(),
            Some(nobody.gid.to_string().as_str()),
            "supplementary groups were kept"
        );
        Ok(())
    }

    #[test]
    fn root_is_refused_as_a_run_as_user() {
        assert!(RunAs::user("root").is_err());
        assert!(RunAs::user("twofa-no-such-user").is_err());
    }
}
