//! Where enrollments and state live, as a trait of atomic per-user operations.
//!
//! Not load/save of a struct: every change to a user's state is a [`StateOp`] value, applied
//! by the one pure [`UserState::apply`] inside one [`Store::update`], which each backend
//! implements once: under the user's lock (files) or in one transaction with the account's
//! row locked (fleet mode): read, apply, write. Nothing holds a lock across a conversation:
//! the caller converses first, then makes one update.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::enrollment::Enrollment;
use crate::identity::Account;
use crate::securefile::{FileError, Rules, SecureDir, LOCK_DEADLINE};
pub use crate::state::{
    Challenge, ChallengeOutcome, Confirmation, FailureOutcome, Format, Lockout, OpOutcome,
    RecoveryOutcome, SendOutcome, StateOp, StepOutcome, UserState,
};
use crate::tomlfile::FieldError;

/// Why the store could not answer.
#[derive(Debug)]
pub enum StoreError {
    /// A file or directory could not be used safely.
    File(FileError),
    /// A file was read but is not valid.
    Corrupt(PathBuf, FieldError),
    /// `put_enrollment` without `replace` found one already.
    AlreadyEnrolled(String),
    /// The store could not be reached in time (fleet mode: the helper could not start, did not
    /// answer within the deadline, or could not connect to the database). This is the error
    /// `on_store_error = "local"` falls back on; nothing is known to have changed.
    Unavailable(String),
    /// The store was reached but could not do the operation (fleet mode: a row that does not
    /// decrypt with this host's fleet key, a schema that is too old...). Never falls back.
    Backend(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::File(e) => write!(f, "{e}"),
            StoreError::Corrupt(p, e) if e.line.is_some() => write!(f, "{}:{e}", p.display()),
            StoreError::Corrupt(p, e) => write!(f, "{}: {e}", p.display()),
            StoreError::AlreadyEnrolled(a) => write!(f, "{a} is already enrolled"),
            StoreError::Unavailable(e) => write!(f, "store unavailable: {e}"),
            StoreError::Backend(e) => write!(f, "store: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<FileError> for StoreError {
    fn from(e: FileError) -> Self {
        StoreError::File(e)
    }
}

/// The atomic operations twofa needs of its storage.
///
/// A backend implements three kinds of method:
/// - reads, which change nothing: [`Store::enrollment`], [`Store::enrolled_names`],
///   [`Store::state`];
/// - enrollment writes, by admin commands and self-enrollment: [`Store::put_enrollment`]
///   (which also makes the state follow the new enrollment) and
///   [`Store::disable_enrollment`];
/// - every change to a user's state: [`Store::update`], once.
///
/// The typed methods below `update` (`accept_step`, `record_failure`...) are provided: each
/// builds its [`StateOp`] and checks that the [`OpOutcome`] is of its kind. A backend never
/// implements them: a rule lives in [`UserState::apply`], not in six places.
pub trait Store {
    /// The account's enrollment, if any.
    fn enrollment(&self, account: &Account) -> Result<Option<Enrollment>, StoreError>;
    /// Writes the enrollment; refuses to replace an existing one unless `replace`.
    fn put_enrollment(
        &self,
        account: &Account,
        e: &Enrollment,
        replace: bool,
    ) -> Result<(), StoreError>;
    /// Removes the enrollment, keeping a root-only backup; returns where the backup went (a
    /// path, or a table and row), or `None` if there was no enrollment.
    fn disable_enrollment(&self, account: &Account, now: u64)
        -> Result<Option<String>, StoreError>;
    /// The names of every enrolled account, sorted (for `status --all`).
    fn enrolled_names(&self) -> Result<Vec<String>, StoreError>;
    /// The account's state (defaults when none was written yet).
    fn state(&self, account: &Account) -> Result<UserState, StoreError>;
    /// Applies `op` to the account's state atomically ([`UserState::apply`]): with the account
    /// locked against every other writer, read the state, apply, write it back if it changed.
    fn update(&self, account: &Account, op: &StateOp) -> Result<OpOutcome, StoreError>;

    /// [`StateOp::AcceptStep`]: TOTP step `step` is accepted only if the account is not
    /// locked and the step is above the watermark; a success also resets failures and lock.
    fn accept_step(
        &self,
        account: &Account,
        step: u64,
        now: u64,
    ) -> Result<StepOutcome, StoreError> {
        let op = StateOp::AcceptStep { step, now };
        match self.update(account, &op)? {
            OpOutcome::Step(o) => Ok(o),
            other => Err(wrong_kind(&op, other)),
        }
    }
    /// [`StateOp::AcceptHotp`]: HOTP counter `counter` is accepted only if not reached
    /// before; `enrolled_counter` is where the token started.
    fn accept_hotp(
        &self,
        account: &Account,
        counter: u64,
        enrolled_counter: u64,
        now: u64,
    ) -> Result<StepOutcome, StoreError> {
        let op = StateOp::AcceptHotp {
            counter,
            enrolled_counter,
            now,
        };
        match self.update(account, &op)? {
            OpOutcome::Step(o) => Ok(o),
            other => Err(wrong_kind(&op, other)),
        }
    }
    /// [`StateOp::SpendConfirmation`]: the code that confirmed an enrollment can't log in
    /// afterwards, and is no login ([`UserState`]'s last success, failures and lock stay).
    fn spend_confirmation(
        &self,
        account: &Account,
        confirmed: Confirmation,
    ) -> Result<StepOutcome, StoreError> {
        let op = StateOp::SpendConfirmation(confirmed);
        match self.update(account, &op)? {
            OpOutcome::Step(o) => Ok(o),
            other => Err(wrong_kind(&op, other)),
        }
    }
    /// [`StateOp::RememberHost`]: remembers `host` for the account until `until`.
    fn remember_host(
        &self,
        account: &Account,
        host: &str,
        now: u64,
        until: u64,
    ) -> Result<(), StoreError> {
        let host = host.to_string();
        done(self, account, StateOp::RememberHost { host, now, until })
    }
    /// [`StateOp::ConsumeRecovery`]: uses the recovery code with stored hash `hash_hex` once.
    fn consume_recovery(
        &self,
        account: &Account,
        hash_hex: &str,
        now: u64,
    ) -> Result<RecoveryOutcome, StoreError> {
        let hash_hex = hash_hex.to_string();
        let op = StateOp::ConsumeRecovery { hash_hex, now };
        match self.update(account, &op)? {
            OpOutcome::Recovery(o) => Ok(o),
            other => Err(wrong_kind(&op, other)),
        }
    }
    /// [`StateOp::CountSend`]: counts one out-of-band send unless the limit is reached.
    fn count_send(
        &self,
        account: &Account,
        now: u64,
        limit: u32,
        window: u64,
    ) -> Result<SendOutcome, StoreError> {
        let op = StateOp::CountSend { now, limit, window };
        match self.update(account, &op)? {
            OpOutcome::Send(o) => Ok(o),
            other => Err(wrong_kind(&op, other)),
        }
    }
    /// [`StateOp::PutChallenge`]: replaces the pending out-of-band code.
    fn put_challenge(&self, account: &Account, challenge: Challenge) -> Result<(), StoreError> {
        done(self, account, StateOp::PutChallenge(challenge))
    }
    /// [`StateOp::TakeChallenge`]: checks an answer against the pending code, spending it if
    /// right.
    fn take_challenge(
        &self,
        account: &Account,
        answer: &[u8],
        now: u64,
    ) -> Result<ChallengeOutcome, StoreError> {
        let answer = zeroize::Zeroizing::new(answer.to_vec());
        let op = StateOp::TakeChallenge { answer, now };
        match self.update(account, &op)? {
            OpOutcome::Challenge(o) => Ok(o),
            other => Err(wrong_kind(&op, other)),
        }
    }
    /// [`StateOp::RecordFailure`]: counts one failed attempt under `lockout`.
    fn record_failure(
        &self,
        account: &Account,
        now: u64,
        lockout: &Lockout,
    ) -> Result<FailureOutcome, StoreError> {
        let op = StateOp::RecordFailure {
            now,
            lockout: *lockout,
        };
        match self.update(account, &op)? {
            OpOutcome::Failure(o) => Ok(o),
            other => Err(wrong_kind(&op, other)),
        }
    }
    /// [`StateOp::ResetFailures`]: clears the failure count and any lock.
    fn reset_failures(&self, account: &Account) -> Result<(), StoreError> {
        done(self, account, StateOp::ResetFailures)
    }
}

/// Runs an operation whose outcome is [`OpOutcome::Done`].
fn done<S: Store + ?Sized>(store: &S, account: &Account, op: StateOp) -> Result<(), StoreError> {
    match store.update(account, &op)? {
        OpOutcome::Done => Ok(()),
        other => Err(wrong_kind(&op, other)),
    }
}

/// An outcome of another kind than the operation gives: only a store across a wire can
/// answer one (a helper of another release, or a garbled line), and it decides nothing.
fn wrong_kind(op: &StateOp, got: OpOutcome) -> StoreError {
    StoreError::Backend(format!(
        "the store answered `{}` to `{}`",
        got.encode(),
        op.word()
    ))
}

/// The default store: files below one root-owned directory.
///
/// ```text
/// <dir>/users/<account>.toml     enrollment (CLI writes)
/// <dir>/state/<account>.toml     watermark, failures (module writes)
/// <dir>/lock/<account>           empty; flock'ed around every read-modify-write
/// <dir>/disabled/<account>.<unix time>.toml   enrollments removed by `disable`
/// ```
///
/// The directories are opened (and their owner and mode checked) once per `FileStore` and
/// then reached by descriptor: a login makes four store calls, and opening the root and a
/// subdirectory for each was a sixth of its system calls. A `FileStore` lives for one login or
/// one command, so a directory an admin moves meanwhile is seen by the next one.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    /// The root and the subdirectories opened so far, in [`SUBDIRS`] order after the root.
    opened: [OnceLock<SecureDir>; 1 + SUBDIRS.len()],
}

impl Clone for FileStore {
    /// A store at the same directory, which opens its directories afresh.
    fn clone(&self) -> Self {
        FileStore::new(&self.dir)
    }
}

const USERS: &str = "users";
const STATE: &str = "state";
const LOCK: &str = "lock";
const DISABLED: &str = "disabled";
/// The subdirectories whose descriptors a [`FileStore`] keeps.
const SUBDIRS: [&str; 4] = [USERS, STATE, LOCK, DISABLED];

impl FileStore {
    /// A store rooted at `dir` (nothing is touched until an operation runs).
    pub fn new(dir: &Path) -> FileStore {
        FileStore {
            dir: dir.to_path_buf(),
            opened: Default::default(),
        }
    }

    /// The root directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The subdirectory `name` (one of [`SUBDIRS`]), opened and checked at its first use;
    /// `Ok(None)`: it (or the root) does not exist and `create` is false. Only a directory
    /// that was found is kept, so a later call with `create` still makes a missing one.
    fn sub(&self, name: &str, create: bool) -> Result<Option<&SecureDir>, StoreError> {
        let Some(slot) = SUBDIRS.iter().position(|s| *s == name) else {
            return Err(StoreError::File(FileError::WrongType(
                self.dir.join(name),
                "store directory",
            )));
        };
        let cell = &self.opened[1 + slot];
        if let Some(d) = cell.get() {
            return Ok(Some(d));
        }
        let root = match self.opened[0].get() {
            Some(r) => r,
            None => match SecureDir::open(&self.dir, create)? {
                Some(r) => self.opened[0].get_or_init(|| r),
                None => return Ok(None),
            },
        };
        Ok(match root.subdir(name, create)? {
            Some(d) => Some(cell.get_or_init(|| d)),
            None => None,
        })
    }

    fn sub_created(&self, name: &str) -> Result<&SecureDir, StoreError> {
        self.sub(name, true)?
            .ok_or_else(|| StoreError::File(FileError::WrongType(self.dir.join(name), "directory")))
    }

    /// The account's state, in the newest form ([`Format`]): a file of the previous release
    /// is read and written back as version 2 at its next change. Unlike a fleet's database,
    /// only this host reads these files, and every reader on it (the module, this CLI, the
    /// helper) comes in one package, upgraded as a whole: no switch is needed. What can
    /// still meet a version 2 file is a process that loaded the older module before the
    /// upgrade and was not restarted, or a downgrade: it refuses the file, "version 2 is not
    /// known to this twofa", and denies that user (fail closed); docs/design.md says how
    /// to go back.
    fn read_state(
        &self,
        state_dir: &SecureDir,
        account: &Account,
    ) -> Result<UserState, StoreError> {
        let name = format!("{}.toml", account.file_stem());
        let mut state = match state_dir.read(&name, &Rules::SECRET)? {
            None => UserState::empty(Format::V2),
            Some(text) => UserState::parse(&text)
                .map_err(|e| StoreError::Corrupt(state_dir.path().join(&name), e))?,
        };
        state.upgrade_to(Format::V2);
        Ok(state)
    }

    /// Runs `change` on the account's state under its lock and writes the result.
    fn update_state<T>(
        &self,
        account: &Account,
        change: impl FnOnce(&mut UserState) -> T,
    ) -> Result<T, StoreError> {
        let lock_dir = self.sub_created(LOCK)?;
        let _lock = lock_dir.lock(&account.file_stem(), LOCK_DEADLINE)?;
        self.update_state_locked(account, change)
    }

    /// `update_state` for a caller that already holds the account's lock.
    fn update_state_locked<T>(
        &self,
        account: &Account,
        change: impl FnOnce(&mut UserState) -> T,
    ) -> Result<T, StoreError> {
        let state_dir = self.sub_created(STATE)?;
        let mut state = self.read_state(state_dir, account)?;
        let before = state.clone();
        let out = change(&mut state);
        if state != before {
            let name = format!("{}.toml", account.file_stem());
            state_dir.write_atomic(&name, state.to_toml().as_bytes())?;
        }
        Ok(out)
    }
}

impl Store for FileStore {
    fn enrollment(&self, account: &Account) -> Result<Option<Enrollment>, StoreError> {
        let Some(users) = self.sub(USERS, false)? else {
            return Ok(None);
        };
        let name = format!("{}.toml", account.file_stem());
        match users.read(&name, &Rules::SECRET)? {
            None => Ok(None),
            Some(text) => Enrollment::parse(&text, &account.name)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(users.path().join(&name), e)),
        }
    }

    fn put_enrollment(
        &self,
        account: &Account,
        e: &Enrollment,
        replace: bool,
    ) -> Result<(), StoreError> {
        let lock_dir = self.sub_created(LOCK)?;
        let users = self.sub_created(USERS)?;
        let _lock = lock_dir.lock(&account.file_stem(), LOCK_DEADLINE)?;
        let name = format!("{}.toml", account.file_stem());
        // A replaced enrollment that can't be read is replaced all the same (--force).
        let old = match users.read(&name, &Rules::SECRET) {
            Ok(Some(text)) => Some(Enrollment::parse(&text, &account.name).ok()),
            Ok(None) => None,
            Err(_) if replace => Some(None),
            Err(e) => return Err(e.into()),
        };
        if !replace && old.is_some() {
            return Err(StoreError::AlreadyEnrolled(account.name.clone()));
        }
        users.write_atomic(&name, e.to_toml().as_bytes())?;
        // The state follows: counters of a replaced secret and used codes of a replaced
        // recovery set mean nothing any more.
        self.update_state_locked(account, |s| s.follow_enrollment(old.flatten().as_ref(), e))?;
        Ok(())
    }

    fn enrolled_names(&self) -> Result<Vec<String>, StoreError> {
        let Some(users) = self.sub(USERS, false)? else {
            return Ok(Vec::new());
        };
        let mut names: Vec<String> = users
            .names()?
            .iter()
            .filter_map(|n| n.strip_suffix(".toml"))
            .filter_map(crate::identity::name_from_stem)
            .collect();
        names.sort();
        Ok(names)
    }

    fn disable_enrollment(
        &self,
        account: &Account,
        now: u64,
    ) -> Result<Option<String>, StoreError> {
        let lock_dir = self.sub_created(LOCK)?;
        let users = self.sub_created(USERS)?;
        let disabled = self.sub_created(DISABLED)?;
        let _lock = lock_dir.lock(&account.file_stem(), LOCK_DEADLINE)?;
        let name = format!("{}.toml", account.file_stem());
        // Only a file that passes the same checks is moved: never a planted symlink.
        if users.read(&name, &Rules::SECRET)?.is_none() {
            return Ok(None);
        }
        let backup = format!("{}.{now}.toml", account.file_stem());
        if users.move_to(&name, disabled, &backup)? {
            Ok(Some(disabled.path().join(backup).display().to_string()))
        } else {
            Ok(None)
        }
    }

    fn state(&self, account: &Account) -> Result<UserState, StoreError> {
        match self.sub(STATE, false)? {
            None => Ok(UserState::default()),
            Some(dir) => self.read_state(dir, account),
        }
    }

    fn update(&self, account: &Account, op: &StateOp) -> Result<OpOutcome, StoreError> {
        self.update_state(account, |s| s.apply(op))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn root_only() -> bool {
        nix::unistd::geteuid().is_root()
    }

    fn store() -> (FileStore, PathBuf) {
        let mut b = [0u8; 4];
        let _ = getrandom::getrandom(&mut b);
        let p =
            std::env::temp_dir().join(format!("twofa-store-test-{:08x}", u32::from_ne_bytes(b)));
        std::fs::create_dir(&p).ok();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).ok();
        (FileStore::new(&p.join("lib")), p)
    }

    fn alice() -> Account {
        Account {
            name: "alice".into(),
            uid: 1000,
            gid: 1000,
        }
    }

    #[test]
    fn a_step_is_accepted_once_and_older_steps_are_replays() -> Result<(), StoreError> {
        if !root_only() {
            return Ok(());
        }
        let (s, p) = store();
        assert_eq!(s.accept_step(&alice(), 100, 1)?, StepOutcome::Accepted);
        assert_eq!(s.accept_step(&alice(), 100, 2)?, StepOutcome::Replayed);
        assert_eq!(s.accept_step(&alice(), 99, 3)?, StepOutcome::Replayed);
        assert_eq!(s.accept_step(&alice(), 101, 4)?, StepOutcome::Accepted);
        assert_eq!(s.state(&alice())?.totp_last_step, Some(101));
        std::fs::remove_dir_all(p).ok();
        Ok(())
    }

    #[test]
    fn a_spent_confirmation_is_on_disk_and_is_no_login() -> Result<(), StoreError> {
        if !root_only() {
            return Ok(());
        }
        let (s, p) = store();
        let spent = s.spend_confirmation(&alice(), Confirmation::Totp(100))?;
        assert_eq!(spent, StepOutcome::Accepted);
        let state = FileStore::new(&p.join("lib")).state(&alice())?;
        assert_eq!(
            (state.totp_last_step, state.last_success_at),
            (Some(100), None)
        );
        assert_eq!(s.accept_step(&alice(), 100, 2)?, StepOutcome::Replayed);
        std::fs::remove_dir_all(p).ok();
        Ok(())
    }

    #[test]
    fn failures_count_until_a_success_resets_them() -> Result<(), StoreError> {
        if !root_only() {
            return Ok(());
        }
        let (s, p) = store();
        assert_eq!(
            s.record_failure(&alice(), 10, &Lockout::DEFAULT)?,
            FailureOutcome::Counted(1)
        );
        assert_eq!(
            s.record_failure(&alice(), 11, &Lockout::DEFAULT)?,
            FailureOutcome::Counted(2)
        );
        assert_eq!(s.state(&alice())?.last_failure_at, Some(11));
        s.accept_step(&alice(), 5, 12)?;
        assert_eq!(s.state(&alice())?.failures, 0);
        s.record_failure(&alice(), 13, &Lockout::DEFAULT)?;
        s.reset_failures(&alice())?;
        assert_eq!(s.state(&alice())?.failures, 0);
        std::fs::remove_dir_all(p).ok();
        Ok(())
    }

    /// The operations of [`GOLDEN_SEQUENCE_STATE_TEXT`], run through any store, with the
    /// outcome each must give.
    pub(crate) fn run_golden_sequence(
        s: &dyn Store,
        a: &Account,
        format: Format,
    ) -> Result<(), StoreError> {
        let lockout = Lockout {
            max_failures: 3,
            window: 900,
            duration: 300,
        };
        let salt = [7u8; 16];
        let challenge = Challenge {
            salt: crate::recovery::to_hex(&salt),
            hash: crate::recovery::to_hex(&crate::recovery::hash(&salt, b"424242")),
            expires: 2000,
        };
        assert_eq!(s.accept_step(a, 100, 1000)?, StepOutcome::Accepted);
        assert_eq!(s.accept_hotp(a, 12, 10, 1001)?, StepOutcome::Accepted);
        let hash = "ab".repeat(32);
        assert_eq!(
            s.consume_recovery(a, &hash, 1002)?,
            RecoveryOutcome::Consumed
        );
        s.remember_host(a, "192.0.2.7", 1003, 5000)?;
        assert_eq!(s.count_send(a, 1004, 3, 600)?, SendOutcome::Allowed);
        s.put_challenge(a, challenge)?;
        assert_eq!(
            s.take_challenge(a, b"000000", 1005)?,
            ChallengeOutcome::Wrong
        );
        assert_eq!(
            s.record_failure(a, 1006, &lockout)?,
            FailureOutcome::Counted(1)
        );
        assert_eq!(
            s.record_failure(a, 1007, &lockout)?,
            FailureOutcome::Counted(2)
        );
        assert_eq!(
            s.record_failure(a, 1008, &lockout)?,
            FailureOutcome::Locked(1308)
        );
        assert_eq!(s.accept_step(a, 101, 1100)?, StepOutcome::Locked(1308));
        assert_eq!(s.accept_step(a, 99, 1400)?, StepOutcome::Replayed);
        // Version 1 restarts the count at a lock; version 2 shows every failure since the
        // last success.
        let n = if format == Format::V1 { 1 } else { 4 };
        assert_eq!(
            s.record_failure(a, 1401, &lockout)?,
            FailureOutcome::Counted(n)
        );
        Ok(())
    }

    /// The state text the sequence above leaves in the version 1 form, as every release before
    /// version 2 wrote it (the release at 119205a included): hosts of a fleet upgrade one by
    /// one, so this text must never change, and a new twofa must read it.
    pub(crate) const GOLDEN_SEQUENCE_STATE_TEXT: &str =
        include_str!("../tests/fixtures/state-v1-golden.toml");

    /// The same sequence in the version 2 form: the failure since the lock is kept as its
    /// time, and `failures` still counts the three before the lock.
    pub(crate) const GOLDEN_SEQUENCE_STATE_TEXT_V2: &str =
        include_str!("../tests/fixtures/state-v2-golden.toml");

    #[test]
    fn the_state_file_after_every_kind_of_operation_is_the_version_2_form() -> Result<(), StoreError>
    {
        if !root_only() {
            return Ok(());
        }
        let (s, p) = store();
        run_golden_sequence(&s, &alice(), Format::V2)?;
        let text = std::fs::read_to_string(p.join("lib/state/alice.toml"))
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        assert_eq!(text, GOLDEN_SEQUENCE_STATE_TEXT_V2);
        std::fs::remove_dir_all(p).ok();
        Ok(())
    }

    /// The previous release's file (the golden text above is what it wrote) is read as it
    /// is, and its next change writes the version 2 form with the failures still counting.
    #[test]
    fn a_state_file_of_the_previous_release_is_read_and_upgraded_at_its_next_change(
    ) -> Result<(), StoreError> {
        if !root_only() {
            return Ok(());
        }
        let (s, p) = store();
        s.record_failure(&alice(), 1, &Lockout::DEFAULT)?;
        let file = p.join("lib/state/alice.toml");
        let old = GOLDEN_SEQUENCE_STATE_TEXT.replace("1401", "1500");
        std::fs::write(&file, &old).map_err(|e| StoreError::Backend(e.to_string()))?;
        let state = s.state(&alice())?;
        assert_eq!((state.failures, state.totp_last_step), (1, Some(100)));
        let lockout = Lockout {
            max_failures: 3,
            window: 900,
            duration: 300,
        };
        assert_eq!(
            s.record_failure(&alice(), 1600, &lockout)?,
            FailureOutcome::Counted(2)
        );
        assert_eq!(
            s.record_failure(&alice(), 1601, &lockout)?,
            FailureOutcome::Locked(1901)
        );
        let text =
            std::fs::read_to_string(&file).map_err(|e| StoreError::Backend(e.to_string()))?;
        assert!(text.starts_with("# twofa state: written at every login, do not edit by hand.\nversion = 2\nfailures = 3\n"), "{text}");
        assert!(!text.contains("first_failure_at"), "{text}");
        std::fs::remove_dir_all(p).ok();
        Ok(())
    }

    /// A state in the version 1 form, changed by the same operations as a store applies them,
    /// is written byte for byte as the previous release wrote it (the fleet store's form
    /// until its switch is on; twofa-store's tests check the same through PostgreSQL).
    #[test]
    fn the_version_1_form_after_every_kind_of_operation_is_what_twofa_always_wrote(
    ) -> Result<(), StoreError> {
        let s = V1Store::default();
        run_golden_sequence(&s, &alice(), Format::V1)?;
        assert_eq!(s.0.borrow().to_toml(), GOLDEN_SEQUENCE_STATE_TEXT);
        let read = UserState::parse(GOLDEN_SEQUENCE_STATE_TEXT)
            .map_err(|e| StoreError::Corrupt(PathBuf::from("golden"), e))?;
        assert_eq!(read, *s.0.borrow());
        Ok(())
    }

    /// One account's state in memory, kept in the version 1 form.
    struct V1Store(std::cell::RefCell<UserState>);

    impl Default for V1Store {
        fn default() -> Self {
            V1Store(std::cell::RefCell::new(UserState::empty(Format::V1)))
        }
    }

    impl Store for V1Store {
        fn enrollment(&self, _: &Account) -> Result<Option<Enrollment>, StoreError> {
            Ok(None)
        }
        fn put_enrollment(&self, _: &Account, _: &Enrollment, _: bool) -> Result<(), StoreError> {
            Ok(())
        }
        fn disable_enrollment(&self, _: &Account, _: u64) -> Result<Option<String>, StoreError> {
            Ok(None)
        }
        fn enrolled_names(&self) -> Result<Vec<String>, StoreError> {
            Ok(Vec::new())
        }
        fn state(&self, _: &Account) -> Result<UserState, StoreError> {
            Ok(self.0.borrow().clone())
        }
        fn update(&self, _: &Account, op: &StateOp) -> Result<OpOutcome, StoreError> {
            let mut s = self.0.borrow_mut();
            // Through the text, as a store does.
            let mut state = UserState::parse(&s.to_toml())
                .map_err(|e| StoreError::Corrupt(PathBuf::from("memory"), e))?;
            let out = state.apply(op);
            *s = state;
            Ok(out)
        }
    }

    #[test]
    fn storage_directories_are_created_private() -> Result<(), StoreError> {
        if !root_only() {
            return Ok(());
        }
        let (s, p) = store();
        s.record_failure(&alice(), 1, &Lockout::DEFAULT)?;
        for d in ["lib", "lib/state", "lib/lock"] {
            assert_eq!(
                crate::securefile::mode_of(&p.join(d)).ok(),
                Some(0o700),
                "{d}"
            );
        }
        assert_eq!(
            crate::securefile::mode_of(&p.join("lib/state/alice.toml")).ok(),
            Some(0o600)
        );
        std::fs::remove_dir_all(p).ok();
        Ok(())
    }
}
