//! Fleet mode, module side: the store as a helper program with a hard deadline, and the
//! fallback to local files when the policy allows it.
//!
//! sshd and sudo load the module, so it carries no database client: the first store operation
//! of a login starts `twofa-store serve` (its own process group, empty environment, one socket
//! as stdin and stdout) and every operation is one line each way ([`crate::wire`]). A login
//! waits for the store at most the deadline in all (the time the user spends typing is not
//! counted, only the time waiting for answers); a helper that runs past it (a frozen database,
//! a hung connect: a client library's own timeouts don't cover those) is SIGKILLed with its
//! group and the store reports [`StoreError::Unavailable`] for the rest of the login, at once.
//! Admin commands give each answer the whole deadline instead ([`HelperStore::per_answer`]).

use std::cell::RefCell;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::sys::socket::{send, MsgFlags};
use nix::unistd::Pid;
use zeroize::Zeroizing;

use crate::config::{Config, OnStoreError, StoreKind};
use crate::enrollment::Enrollment;
use crate::identity::Account;
use crate::state::{OpOutcome, StateOp, UserState};
use crate::store::{FileStore, Store, StoreError};
use crate::wire::{self, Reply, Request, PROTOCOL};

/// A running helper: the child and our end of its socket.
struct Session {
    child: Child,
    sock: UnixStream,
    /// Bytes read past the last reply (the helper never sends any, but a read may end there).
    pending: Vec<u8>,
}

impl Session {
    fn kill(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // End of input tells the helper to close its connection and exit; one that doesn't
        // within a moment is killed. Either way it is reaped: no zombie outlives a login.
        let _ = self.sock.shutdown(std::net::Shutdown::Write);
        let until = Instant::now() + Duration::from_millis(200);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= until => break,
                // It exits about 0.5 ms after its input ends: poll finely, not in 2 ms steps
                // (measured: 1.5-2 ms per fleet login spent waiting here).
                Ok(None) => std::thread::sleep(Duration::from_micros(100)),
            }
        }
        self.kill();
    }
}

/// The store as the fleet helper program, started at the first operation.
pub struct HelperStore {
    program: PathBuf,
    args: Vec<String>,
    deadline: Duration,
    /// Whether the deadline is for every answer (admin commands) or for all of them (a login).
    per_answer: bool,
    /// Time spent waiting for answers so far.
    waited: std::cell::Cell<Duration>,
    session: RefCell<Option<Session>>,
    /// Set once the helper failed (unavailable) or refused this module's protocol (backend):
    /// later operations of this login fail at once with it.
    failed: RefCell<Option<StoreError>>,
}

impl std::fmt::Debug for HelperStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HelperStore")
            .field("program", &self.program)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl HelperStore {
    /// A store served by `program serve --settings settings`; each answer must come within
    /// `deadline`.
    pub fn new(program: &Path, settings: &Path, deadline: Duration) -> HelperStore {
        let args = ["serve", "--settings", &settings.display().to_string()].map(String::from);
        HelperStore::with_args(program, &args, deadline)
    }

    /// A store served by `program args...` (tests, and tools that run the helper their way).
    pub fn with_args(program: &Path, args: &[String], deadline: Duration) -> HelperStore {
        HelperStore {
            program: program.to_path_buf(),
            args: args.to_vec(),
            deadline,
            per_answer: false,
            waited: std::cell::Cell::new(Duration::ZERO),
            session: RefCell::new(None),
            failed: RefCell::new(None),
        }
    }

    /// Gives every answer the whole deadline, instead of one deadline for all answers (an
    /// admin command over many accounts; still never a hang).
    pub fn per_answer(mut self) -> HelperStore {
        self.per_answer = true;
        self
    }

    fn start(&self) -> Result<Session, String> {
        let (ours, theirs) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
        let out = theirs.try_clone().map_err(|e| format!("socket: {e}"))?;
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .current_dir("/")
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
            .stdout(Stdio::from(std::os::fd::OwnedFd::from(out)))
            .stderr(Stdio::null())
            .process_group(0);
        let child = cmd
            .spawn()
            .map_err(|e| format!("could not start {}: {e}", self.program.display()))?;
        // The child's ends were moved into `cmd`, which goes here: only the child holds them.
        drop(cmd);
        Ok(Session {
            child,
            sock: ours,
            pending: Vec::new(),
        })
    }

    /// Sends `line` (one request, or the protocol line and a request) and reads `replies`
    /// reply lines, all within the deadline.
    fn exchange(
        s: &mut Session,
        line: &[u8],
        deadline: Duration,
        replies: usize,
    ) -> Result<Vec<Zeroizing<Vec<u8>>>, String> {
        let start = Instant::now();
        let left = |what: &str| {
            deadline
                .checked_sub(start.elapsed())
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    format!(
                        "no answer within {} ms ({what}); killed",
                        deadline.as_millis()
                    )
                })
        };
        s.sock
            .set_write_timeout(Some(left("writing")?))
            .map_err(|e| e.to_string())?;
        let mut sent = 0;
        while sent < line.len() {
            // MSG_NOSIGNAL: a helper that died must not raise SIGPIPE in sshd or sudo.
            match send(s.sock.as_raw_fd(), &line[sent..], MsgFlags::MSG_NOSIGNAL) {
                Ok(0) => return Err("the store helper closed its input".into()),
                Ok(n) => sent += n,
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EPIPE | nix::errno::Errno::ECONNRESET) => {
                    return Err(Self::ended(s))
                }
                Err(nix::errno::Errno::EAGAIN) => {
                    return Err(format!(
                        "no answer within {} ms (writing); killed",
                        deadline.as_millis()
                    ))
                }
                Err(e) => return Err(format!("writing to the store helper: {e}")),
            }
        }
        let mut buf = Zeroizing::new(std::mem::take(&mut s.pending));
        let mut chunk = Zeroizing::new(vec![0u8; 16 * 1024]);
        let mut lines = Vec::with_capacity(replies);
        loop {
            if let Some(end) = buf.iter().position(|&b| b == b'\n') {
                let rest = Zeroizing::new(buf[end + 1..].to_vec());
                buf.truncate(end);
                lines.push(std::mem::replace(&mut buf, rest));
                if lines.len() == replies {
                    s.pending = buf.to_vec();
                    return Ok(lines);
                }
                continue;
            }
            if buf.len() > wire::MAX_LINE {
                return Err("reply from the store helper too long".into());
            }
            s.sock
                .set_read_timeout(Some(left("reading")?))
                .map_err(|e| e.to_string())?;
            match s.sock.read(&mut chunk) {
                Ok(0) => return Err(Self::ended(s)),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return Err(Self::ended(s))
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(format!(
                        "no answer within {} ms; killed",
                        deadline.as_millis()
                    ))
                }
                Err(e) => return Err(format!("reading from the store helper: {e}")),
            }
        }
    }

    /// Why the helper closed its end: its exit status, if it has one already.
    fn ended(s: &mut Session) -> String {
        for _ in 0..50 {
            if let Ok(Some(status)) = s.child.try_wait() {
                return format!("the store helper exited ({status}) without answering");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        "the store helper closed its socket without answering".into()
    }

    /// One operation: the reply's fields, or the error. Any failure to talk to the helper is
    /// [`StoreError::Unavailable`] and ends the session (the helper is killed). A session
    /// starts with the protocol line, sent with the first request (no round trip of its
    /// own); a helper that does not speak this module's protocol is a
    /// [`StoreError::Backend`] for this and every later operation of the login: a helper of
    /// another release is reached and wrong, which must deny, never fall back.
    fn call(&self, req: &Request) -> Result<Reply, StoreError> {
        if let Some(e) = self.failed.borrow().as_ref() {
            return Err(again(e));
        }
        let mut session = self.session.borrow_mut();
        let budget = if self.per_answer {
            self.deadline
        } else {
            self.deadline.saturating_sub(self.waited.get())
        };
        let started = Instant::now();
        let fresh = session.is_none();
        let result = (|| {
            if budget.is_zero() {
                return Err(format!(
                    "this login waited {} ms for the store already; killed",
                    self.deadline.as_millis()
                ));
            }
            if fresh {
                *session = Some(self.start()?);
            }
            let s = session.as_mut().ok_or("no session")?;
            let mut line = Zeroizing::new(String::new());
            if fresh {
                line.push_str(&Request::Protocol(PROTOCOL).encode());
                line.push('\n');
            }
            line.push_str(&req.encode());
            line.push('\n');
            Self::exchange(s, line.as_bytes(), budget, if fresh { 2 } else { 1 })
        })();
        self.waited.set(self.waited.get() + started.elapsed());
        let give_up = |e: StoreError, session: &mut Option<Session>| {
            if let Some(mut s) = session.take() {
                s.kill();
            }
            *self.failed.borrow_mut() = Some(again(&e));
            Err(e)
        };
        let mut replies = match result {
            Ok(replies) => replies,
            Err(why) => {
                let why = format!("store helper {}: {why}", self.program.display());
                return give_up(StoreError::Unavailable(why), &mut session);
            }
        };
        let reply = replies.pop().unwrap_or_default();
        if let Some(hello) = replies.first() {
            if let Err(why) = self.check_protocol(hello) {
                return give_up(StoreError::Backend(why), &mut session);
            }
        }
        let text = std::str::from_utf8(&reply)
            .map_err(|_| StoreError::Backend("reply from the store helper is not text".into()))?;
        wire::parse_reply(text)
    }

    /// Whether the helper's answer to the protocol line agrees to this module's protocol;
    /// otherwise what to tell the admin.
    fn check_protocol(&self, reply: &[u8]) -> Result<(), String> {
        let program = self.program.display();
        let upgrade = "they come from different twofa releases; finish upgrading the twofa \
                       package on this host so both are the same version";
        let reply = std::str::from_utf8(reply).unwrap_or("");
        match wire::parse_reply(reply).and_then(Reply::protocol) {
            Ok(PROTOCOL) => Ok(()),
            Ok(v) => Err(format!(
                "the store helper {program} speaks store protocol {v} and this module \
                 {PROTOCOL}: {upgrade}"
            )),
            // A helper of protocol 1 knew no `protocol` line: it says so in these words.
            Err(StoreError::Backend(m)) if m.starts_with("malformed request (") => Err(format!(
                "the store helper {program} speaks store protocol 1 (it does not know the \
                 protocol line) and this module {PROTOCOL}: {upgrade}"
            )),
            Err(StoreError::Backend(m)) if m.contains("store protocol") => Err(format!(
                "the store helper {program} refused this module's store protocol \
                 {PROTOCOL}: {m}"
            )),
            Err(_) => Err(format!(
                "the store helper {program} did not answer the protocol line as store \
                 protocol {PROTOCOL} asks: {upgrade}"
            )),
        }
    }
}

/// The same error again, for a later operation of a login that gave up on the helper.
fn again(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Backend(m) => StoreError::Backend(m.clone()),
        other => StoreError::Backend(other.to_string()),
    }
}

impl Store for HelperStore {
    fn enrollment(&self, account: &Account) -> Result<Option<Enrollment>, StoreError> {
        match self
            .call(&Request::Enrollment(account.clone()))?
            .optional_text()?
        {
            None => Ok(None),
            Some(text) => Enrollment::parse(&text, &account.name)
                .map(Some)
                .map_err(|e| {
                    StoreError::Backend(format!("enrollment of {} in the store: {e}", account.name))
                }),
        }
    }

    fn put_enrollment(
        &self,
        account: &Account,
        e: &Enrollment,
        replace: bool,
    ) -> Result<(), StoreError> {
        self.call(&Request::PutEnrollment(
            account.clone(),
            replace,
            e.to_toml(),
        ))?
        .unit()
    }

    fn disable_enrollment(
        &self,
        account: &Account,
        now: u64,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .call(&Request::DisableEnrollment(account.clone(), now))?
            .optional_text()?
            .map(|t| t.to_string()))
    }

    fn enrolled_names(&self) -> Result<Vec<String>, StoreError> {
        self.call(&Request::EnrolledNames)?.texts()
    }

    fn state(&self, account: &Account) -> Result<UserState, StoreError> {
        self.call(&Request::State(account.clone()))?.state()
    }

    fn update(&self, account: &Account, op: &StateOp) -> Result<OpOutcome, StoreError> {
        self.call(&Request::Update(account.clone(), op.clone()))?
            .outcome()
    }
}

/// The store a policy names: the files, or the fleet helper with (under
/// `on_store_error = "local"`) the files as fallback.
#[derive(Debug)]
pub enum Configured {
    /// `[store] kind = "files"`.
    Files(FileStore),
    /// `[store] kind = "postgres"`.
    Fleet {
        /// The helper (boxed: it is much larger than a `FileStore`).
        remote: Box<HelperStore>,
        /// The host's own files, when the policy falls back to them.
        local: Option<FileStore>,
        /// Why the remote store was given up for this login (set at the first fallback).
        fell_back: RefCell<Option<String>>,
    },
}

/// The store `config` names.
pub fn open(config: &Config) -> Configured {
    let files = FileStore::new(&config.storage_dir);
    match &config.store.kind {
        StoreKind::Files => Configured::Files(files),
        StoreKind::Postgres => Configured::Fleet {
            remote: Box::new(HelperStore::new(
                &config.store.helper,
                &config.store.settings,
                config.store.timeout,
            )),
            local: (config.on_store_error == OnStoreError::Local).then_some(files),
            fell_back: RefCell::new(None),
        },
    }
}

/// The store `config` names, for an admin's command: never the local fallback (an enrollment
/// or an unlock that silently went to one host's files would mislead the whole fleet).
pub fn open_admin(config: &Config) -> Configured {
    match open(config) {
        Configured::Fleet { remote, .. } => Configured::Fleet {
            remote: Box::new((*remote).per_answer()),
            local: None,
            fell_back: RefCell::new(None),
        },
        files => files,
    }
}

impl Configured {
    /// Why this login used the local files instead of the fleet store, if it did: the
    /// module adds it to the login's log line (fleet-wide replay and lockout did not apply).
    pub fn fell_back(&self) -> Option<String> {
        match self {
            Configured::Files(_) => None,
            Configured::Fleet { fell_back, .. } => fell_back.borrow().clone(),
        }
    }

    /// Whether this is the fleet store.
    pub fn is_fleet(&self) -> bool {
        matches!(self, Configured::Fleet { .. })
    }

    /// Runs `op` on the store in use: the remote one until it is unavailable, then (if the
    /// policy allows) the local files for this and every later operation of this login.
    fn with<T>(&self, op: impl Fn(&dyn Store) -> Result<T, StoreError>) -> Result<T, StoreError> {
        match self {
            Configured::Files(f) => op(f),
            Configured::Fleet {
                remote,
                local,
                fell_back,
            } => {
                if let (Some(local), Some(_)) = (local, fell_back.borrow().as_ref()) {
                    return op(local);
                }
                match (op(remote.as_ref()), local) {
                    (Err(StoreError::Unavailable(why)), Some(local)) => {
                        *fell_back.borrow_mut() = Some(why);
                        op(local)
                    }
                    (r, _) => r,
                }
            }
        }
    }
}

impl Store for Configured {
    fn enrollment(&self, account: &Account) -> Result<Option<Enrollment>, StoreError> {
        self.with(|s| s.enrollment(account))
    }
    fn put_enrollment(
        &self,
        account: &Account,
        e: &Enrollment,
        replace: bool,
    ) -> Result<(), StoreError> {
        self.with(|s| s.put_enrollment(account, e, replace))
    }
    fn disable_enrollment(
        &self,
        account: &Account,
        now: u64,
    ) -> Result<Option<String>, StoreError> {
        self.with(|s| s.disable_enrollment(account, now))
    }
    fn enrolled_names(&self) -> Result<Vec<String>, StoreError> {
        self.with(|s| s.enrolled_names())
    }
    fn state(&self, account: &Account) -> Result<UserState, StoreError> {
        self.with(|s| s.state(account))
    }
    fn update(&self, account: &Account, op: &StateOp) -> Result<OpOutcome, StoreError> {
        self.with(|s| s.update(account, op))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StepOutcome;

    fn alice() -> Account {
        Account {
            name: "alice".into(),
            uid: 1000,
            gid: 1000,
        }
    }

    /// A helper played by a shell script.
    fn sh(script: &str, deadline_ms: u64) -> HelperStore {
        HelperStore::with_args(
            Path::new("/bin/sh"),
            &["-c".to_string(), script.to_string()],
            Duration::from_millis(deadline_ms),
        )
    }

    /// A helper played by a shell script that first agrees to the protocol line.
    fn helper(script: &str, deadline_ms: u64) -> HelperStore {
        sh(
            &format!(
                r#"read hello; [ "$hello" = "protocol {PROTOCOL}" ] || exit 9; echo "ok protocol {PROTOCOL}"
                   {script}"#
            ),
            deadline_ms,
        )
    }

    /// `text` as a protocol field.
    fn x(text: &str) -> String {
        text.bytes()
            .map(|b| format!("{b:02x}"))
            .fold("x".into(), |s, h| s + &h)
    }

    #[test]
    fn each_operation_is_one_line_each_way() -> Result<(), StoreError> {
        // Answers the first request, then echoes the second's operation back as an error.
        let s = helper(
            r#"read req; case "$req" in "update x616c696365 1000 1000 v1 accept_step 57 1710") echo "ok v1 step accepted";; *) echo "ok v1 step replayed";; esac
               read req; set -- $req; echo "err backend x$(printf '%s' "$6" | od -An -tx1 | tr -d ' \n')""#,
            5000,
        );
        assert_eq!(s.accept_step(&alice(), 57, 1710)?, StepOutcome::Accepted);
        let r = s.reset_failures(&alice());
        assert!(
            matches!(&r, Err(StoreError::Backend(m)) if m == "reset_failures"),
            "{r:?}"
        );
        Ok(())
    }

    #[test]
    fn a_helper_that_does_not_answer_is_killed_at_the_deadline_and_not_asked_again() {
        let start = Instant::now();
        // The helper's own child (a hung connect) must go too: the whole group is killed.
        let s = sh("sleep 30 & sleep 30", 300);
        let r = s.state(&alice());
        let took = start.elapsed();
        assert!(
            matches!(&r, Err(StoreError::Unavailable(m)) if m.contains("no answer within 300 ms")),
            "{r:?}"
        );
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        // Later operations of the same login fail at once.
        let again = Instant::now();
        assert!(matches!(
            s.accept_step(&alice(), 1, 1),
            Err(StoreError::Unavailable(_))
        ));
        assert!(again.elapsed() < Duration::from_millis(100));
    }

    #[test]
    fn a_login_waits_for_the_store_once_not_once_per_operation() {
        // Each answer takes 250 ms: a 600 ms login budget covers two, not three.
        let script = "while read req; do sleep 0.25; echo ok v1 step accepted; done";
        let login = helper(script, 600);
        assert_eq!(
            login.accept_step(&alice(), 1, 1).ok(),
            Some(StepOutcome::Accepted)
        );
        assert_eq!(
            login.accept_step(&alice(), 2, 1).ok(),
            Some(StepOutcome::Accepted)
        );
        let start = Instant::now();
        let third = login.accept_step(&alice(), 3, 1);
        assert!(
            matches!(third, Err(StoreError::Unavailable(_))),
            "{third:?}"
        );
        assert!(
            start.elapsed() < Duration::from_millis(250),
            "{:?}",
            start.elapsed()
        );
        // An admin's command gives each answer the whole deadline.
        let admin = helper(script, 600).per_answer();
        for step in 1..=3 {
            assert_eq!(
                admin.accept_step(&alice(), step, 1).ok(),
                Some(StepOutcome::Accepted)
            );
        }
    }

    #[test]
    fn a_helper_that_exits_or_is_missing_is_unavailable_not_a_hang() {
        let s = sh("exit 3", 5000);
        let r = s.enrollment(&alice());
        assert!(
            matches!(&r, Err(StoreError::Unavailable(m)) if m.contains("exit")),
            "{r:?}"
        );
        let missing = HelperStore::new(
            Path::new("/nonexistent/twofa-store"),
            Path::new("/etc/twofa/store.toml"),
            Duration::from_secs(1),
        );
        let r = missing.enrollment(&alice());
        assert!(
            matches!(&r, Err(StoreError::Unavailable(m)) if m.contains("could not start")),
            "{r:?}"
        );
    }

    #[test]
    fn a_garbled_reply_is_a_backend_error_not_a_decision() {
        for reply in [
            "ok maybe",
            "yes",
            "ok v1 step locked soon",
            "err",
            "ok accepted",
            "ok v2 step accepted",
            "ok v1 step accepted now",
        ] {
            let s = helper(&format!("read req; echo '{reply}'"), 5000);
            let r = s.accept_step(&alice(), 1, 1);
            assert!(matches!(r, Err(StoreError::Backend(_))), "{reply}: {r:?}");
        }
    }

    #[test]
    fn under_local_the_files_answer_once_the_fleet_is_unreachable() -> Result<(), StoreError> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(());
        }
        let mut b = [0u8; 4];
        let _ = getrandom::getrandom(&mut b);
        let dir =
            std::env::temp_dir().join(format!("twofa-fleet-test-{:08x}", u32::from_ne_bytes(b)));
        std::fs::create_dir(&dir).ok();
        let local = FileStore::new(&dir.join("lib"));
        let store = Configured::Fleet {
            remote: Box::new(sh("exit 1", 1000)),
            local: Some(local.clone()),
            fell_back: RefCell::new(None),
        };
        assert_eq!(store.accept_step(&alice(), 9, 1)?, StepOutcome::Accepted);
        assert!(store
            .fell_back()
            .is_some_and(|w| w.contains("store helper")));
        assert_eq!(local.state(&alice())?.totp_last_step, Some(9));
        assert_eq!(store.accept_step(&alice(), 9, 2)?, StepOutcome::Replayed);
        std::fs::remove_dir_all(&dir).ok();

        // Under deny there is nothing to fall back on.
        let deny = Configured::Fleet {
            remote: Box::new(sh("exit 1", 1000)),
            local: None,
            fell_back: RefCell::new(None),
        };
        assert!(matches!(
            deny.accept_step(&alice(), 9, 1),
            Err(StoreError::Unavailable(_))
        ));
        assert_eq!(deny.fell_back(), None);
        Ok(())
    }

    #[test]
    fn a_backend_error_never_falls_back() {
        let store = Configured::Fleet {
            remote: Box::new(helper("read r; echo 'err backend x6b6579'", 1000)),
            local: Some(FileStore::new(Path::new("/nonexistent/twofa"))),
            fell_back: RefCell::new(None),
        };
        assert!(matches!(
            store.state(&alice()),
            Err(StoreError::Backend(m)) if m == "key"
        ));
        assert_eq!(store.fell_back(), None);
    }

    #[test]
    fn an_outcome_of_another_kind_is_a_backend_error_not_a_decision() {
        let s = helper("read req; echo 'ok v1 recovery consumed'", 5000);
        let r = s.accept_step(&alice(), 1, 1);
        assert!(
            matches!(&r, Err(StoreError::Backend(m)) if m.contains("`v1 recovery consumed` to `accept_step`")),
            "{r:?}"
        );
    }

    /// What a helper of protocol 1 (before operations were values) answers any line it
    /// does not know, the protocol line included.
    const OLD_HELPER_REFUSAL: &str =
        "malformed request (is the helper the same version as the module?)";

    #[test]
    fn a_helper_of_an_older_protocol_is_a_store_error_naming_both_versions_and_never_falls_back(
    ) -> Result<(), StoreError> {
        let old = format!(
            "while read req; do echo 'err backend {}'; done",
            x(OLD_HELPER_REFUSAL)
        );
        let store = Configured::Fleet {
            remote: Box::new(sh(&old, 5000)),
            local: Some(FileStore::new(Path::new("/nonexistent/twofa"))),
            fell_back: RefCell::new(None),
        };
        let r = store.accept_step(&alice(), 9, 1);
        let Err(StoreError::Backend(m)) = &r else {
            return Err(StoreError::Backend(format!(
                "expected a backend error, got {r:?}"
            )));
        };
        assert!(
            m.contains("speaks store protocol 1")
                && m.contains(&format!("this module {PROTOCOL}"))
                && m.contains("upgrading the twofa package on this host"),
            "{m}"
        );
        assert_eq!(store.fell_back(), None);
        // The rest of the login gets the same answer at once, without another helper.
        let again = Instant::now();
        assert!(matches!(store.state(&alice()), Err(StoreError::Backend(n)) if &n == m));
        assert!(again.elapsed() < Duration::from_millis(100));
        Ok(())
    }

    #[test]
    fn a_helper_of_a_newer_protocol_is_a_store_error_naming_both_versions() {
        let newer = sh(
            "read hello; echo 'ok protocol 3'; read req; echo 'ok v1 step accepted'",
            5000,
        );
        let r = newer.accept_step(&alice(), 9, 1);
        assert!(
            matches!(&r, Err(StoreError::Backend(m))
                if m.contains("speaks store protocol 3 and this module 2")),
            "{r:?}"
        );
        // A newer helper that refuses the line: its own words, which name both versions.
        let refusal = "twofa-store speaks store protocol 3 and the module (or twofa-enroll) \
                       speaks store protocol 2: ...";
        let refusing = sh(
            &format!("while read req; do echo 'err backend {}'; done", x(refusal)),
            5000,
        );
        let r = refusing.state(&alice());
        assert!(
            matches!(&r, Err(StoreError::Backend(m))
                if m.contains("refused this module's store protocol 2") && m.contains(refusal)),
            "{r:?}"
        );
    }
}
