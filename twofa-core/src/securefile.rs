//! The one way twofa opens, writes and locks its files.
//!
//! Everything under the storage directory is reached from an open directory descriptor with
//! `openat(O_NOFOLLOW)`, and every check (type, owner, mode, link count, size) is made with
//! `fstat` on what was opened, never on a path that could change in between (sudo-rs'
//! `secure_open` is the model). Writes go to a temp file in the same directory that is fsynced
//! and renamed over the old one, then the directory is fsynced: a reader never sees half a file,
//! and a crash leaves the old or the new file, never a truncated one. Locks are `flock` on a
//! lock file that is never renamed, so a waiter never holds a lock on a dead inode, and the
//! kernel drops a lock when its holder dies: no stale lock files.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{openat, renameat, OFlag};
use nix::sys::stat::{fchmod, mkdirat, Mode};
use nix::unistd::{unlinkat, UnlinkatFlags};
use zeroize::Zeroizing;

/// The owner every twofa file and directory must have.
pub const ROOT_UID: u32 = 0;

/// What a file must look like before twofa believes it.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// Mode bits that must be clear (0o077 for secrets, 0o022 for the policy file).
    pub forbidden_mode: u32,
    /// Largest size read; a larger file is refused rather than truncated.
    pub max_size: u64,
    /// Whether more than one hard link is refused (a second name could be outside our tree).
    pub single_link: bool,
}

impl Rules {
    /// Enrollment and state files: root only, 0600 at most, one link, 64 KiB.
    pub const SECRET: Rules = Rules {
        forbidden_mode: 0o077,
        max_size: 64 * 1024,
        single_link: true,
    };
    /// The policy file: root-owned, not group- or world-writable (0644 is fine).
    pub const POLICY: Rules = Rules {
        forbidden_mode: 0o022,
        max_size: 256 * 1024,
        single_link: false,
    };
}

/// Why a file or directory was refused or could not be used.
#[derive(Debug)]
pub enum FileError {
    /// A symbolic link where a file or directory must be.
    Symlink(PathBuf),
    /// Not a regular file (a directory, FIFO, device...), or not a directory where one must be.
    WrongType(PathBuf, &'static str),
    /// Owned by someone other than root.
    Owner(PathBuf, u32),
    /// Group or others may read or write it.
    Mode(PathBuf, u32),
    /// More than one hard link.
    HardLinked(PathBuf, u64),
    /// Larger than the limit.
    TooLarge(PathBuf, u64),
    /// Not UTF-8 text.
    NotText(PathBuf),
    /// The lock stayed taken until the deadline.
    LockTimeout(PathBuf),
    /// Any other system error.
    Io(PathBuf, io::Error),
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileError::Symlink(p) => write!(f, "{}: is a symbolic link; refused", p.display()),
            FileError::WrongType(p, want) => write!(f, "{}: is not a {want}", p.display()),
            FileError::Owner(p, uid) => {
                write!(
                    f,
                    "{}: owned by uid {uid}, must be owned by root",
                    p.display()
                )
            }
            FileError::Mode(p, mode) => write!(
                f,
                "{}: mode {:04o} lets others read or write it",
                p.display(),
                mode & 0o7777
            ),
            FileError::HardLinked(p, n) => {
                write!(
                    f,
                    "{}: has {n} hard links, must have exactly one",
                    p.display()
                )
            }
            FileError::TooLarge(p, max) => {
                write!(f, "{}: larger than {max} bytes; refused", p.display())
            }
            FileError::NotText(p) => write!(f, "{}: is not UTF-8 text", p.display()),
            FileError::LockTimeout(p) => {
                write!(f, "{}: still locked by another login; gave up", p.display())
            }
            FileError::Io(p, e) => write!(f, "{}: {e}", p.display()),
        }
    }
}

impl std::error::Error for FileError {}

fn io_err(path: &Path, e: impl Into<io::Error>) -> FileError {
    FileError::Io(path.to_path_buf(), e.into())
}

fn check_meta(path: &Path, meta: &std::fs::Metadata, rules: &Rules) -> Result<(), FileError> {
    if !meta.file_type().is_file() {
        return Err(FileError::WrongType(path.to_path_buf(), "regular file"));
    }
    if meta.uid() != ROOT_UID {
        return Err(FileError::Owner(path.to_path_buf(), meta.uid()));
    }
    if meta.mode() & rules.forbidden_mode != 0 {
        return Err(FileError::Mode(path.to_path_buf(), meta.mode()));
    }
    if rules.single_link && meta.nlink() != 1 {
        return Err(FileError::HardLinked(path.to_path_buf(), meta.nlink()));
    }
    if meta.len() > rules.max_size {
        return Err(FileError::TooLarge(path.to_path_buf(), rules.max_size));
    }
    Ok(())
}

/// Reads an opened file within `rules`, checking the opened descriptor, not the path.
fn read_checked(
    path: &Path,
    mut file: File,
    rules: &Rules,
) -> Result<Zeroizing<String>, FileError> {
    let meta = file.metadata().map_err(|e| io_err(path, e))?;
    check_meta(path, &meta, rules)?;
    let mut buf = Zeroizing::new(Vec::with_capacity(meta.len() as usize));
    // Read one byte past the limit: a file that grew after fstat is refused, not cut short.
    (&mut file)
        .take(rules.max_size + 1)
        .read_to_end(&mut buf)
        .map_err(|e| io_err(path, e))?;
    if buf.len() as u64 > rules.max_size {
        return Err(FileError::TooLarge(path.to_path_buf(), rules.max_size));
    }
    match std::str::from_utf8(&buf) {
        Ok(s) => Ok(Zeroizing::new(s.to_string())),
        Err(_) => Err(FileError::NotText(path.to_path_buf())),
    }
}

fn open_error(path: &Path, e: Errno) -> FileError {
    match e {
        Errno::ELOOP => FileError::Symlink(path.to_path_buf()),
        Errno::ENOTDIR => FileError::WrongType(path.to_path_buf(), "directory"),
        Errno::ENXIO => FileError::WrongType(path.to_path_buf(), "regular file"),
        other => io_err(path, other),
    }
}

/// `open_error` for a directory entry opened with `O_DIRECTORY|O_NOFOLLOW`: the kernel says
/// "not a directory" for a symbolic link, so look at the entry itself to say what it is.
fn dir_open_error(dir: &File, name: &std::ffi::OsStr, path: &Path, e: Errno) -> FileError {
    if e == Errno::ENOTDIR {
        let is_link =
            nix::sys::stat::fstatat(dir.as_fd(), name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
                .map(|st| {
                    st.st_mode & nix::sys::stat::SFlag::S_IFMT.bits()
                        == nix::sys::stat::SFlag::S_IFLNK.bits()
                })
                .unwrap_or(false);
        if is_link {
            return FileError::Symlink(path.to_path_buf());
        }
    }
    open_error(path, e)
}

/// How many times a read is tried when the file it opened was replaced before it was checked.
const REPLACED_TRIES: usize = 8;

/// Runs `read` again while it finds its file replaced under it: a file opened just before a
/// writer renamed a new one over its name has no link left (`nlink` 0) when fstat looks, and
/// refusing it would fail a login for a write that went as designed (the state file is read
/// without the lock before the prompt, while other logins of the account write it; an admin's
/// tool may rename a new policy into place). Opening the name again finds the new file. Zero
/// links on every try, or two links or more, are refused as before.
fn retry_replaced<T>(mut read: impl FnMut() -> Result<T, FileError>) -> Result<T, FileError> {
    let mut tries = 1;
    loop {
        match read() {
            Err(FileError::HardLinked(_, 0)) if tries < REPLACED_TRIES => tries += 1,
            other => return other,
        }
    }
}

/// Reads a file by absolute path (the policy file): `O_NOFOLLOW`, then the opened file checked.
/// `Ok(None)` when it does not exist.
pub fn read_file(path: &Path, rules: &Rules) -> Result<Option<Zeroizing<String>>, FileError> {
    retry_replaced(|| read_file_once(path, rules))
}

fn read_file_once(path: &Path, rules: &Rules) -> Result<Option<Zeroizing<String>>, FileError> {
    let opened = File::options()
        .read(true)
        .custom_flags(libc_flags(
            OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY,
        ))
        .open(path);
    match opened {
        Ok(file) => read_checked(path, file, rules).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(open_error(
            path,
            Errno::from_raw(e.raw_os_error().unwrap_or(0)),
        )),
    }
}

fn libc_flags(flags: OFlag) -> i32 {
    flags.bits()
}

/// A directory of twofa's storage, held open so that files are reached relative to it.
#[derive(Debug)]
pub struct SecureDir {
    dir: File,
    path: PathBuf,
}

/// How long a login waits for other logins of the same user to finish their writes. Each
/// holds the lock for one read and one fsynced write; fifty at once on a busy two-core host
/// took seconds in the parallel tests, so this leaves room, while a stopped holder still
/// can't hang logins for longer than this.
pub const LOCK_DEADLINE: Duration = Duration::from_secs(10);

impl SecureDir {
    /// Opens the directory at an absolute `path`, which must be root's and not writable by
    /// others. With `create`, a missing directory is made (0700). `Ok(None)`: it does not
    /// exist and `create` is false.
    pub fn open(path: &Path, create: bool) -> Result<Option<SecureDir>, FileError> {
        let opened = File::options()
            .read(true)
            .custom_flags(libc_flags(OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW))
            .open(path);
        let dir = match opened {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                std::fs::DirBuilder::new()
                    .mode(0o700)
                    .recursive(true)
                    .create(path)
                    .map_err(|e| io_err(path, e))?;
                File::options()
                    .read(true)
                    .custom_flags(libc_flags(OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW))
                    .open(path)
                    .map_err(|e| open_error(path, Errno::from_raw(e.raw_os_error().unwrap_or(0))))?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            // O_DIRECTORY|O_NOFOLLOW on a symlink says "not a directory": say what it is.
            Err(_) if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) => {
                return Err(FileError::Symlink(path.to_path_buf()))
            }
            Err(e) => {
                return Err(open_error(
                    path,
                    Errno::from_raw(e.raw_os_error().unwrap_or(0)),
                ))
            }
        };
        let d = SecureDir {
            dir,
            path: path.to_path_buf(),
        };
        d.check()?;
        Ok(Some(d))
    }

    /// Checks the opened directory (one fstat): a directory of root's, not writable by group
    /// or others. Returns its mode for stricter callers.
    fn check(&self) -> Result<u32, FileError> {
        let meta = self.dir.metadata().map_err(|e| io_err(&self.path, e))?;
        if !meta.is_dir() {
            return Err(FileError::WrongType(self.path.clone(), "directory"));
        }
        if meta.uid() != ROOT_UID {
            return Err(FileError::Owner(self.path.clone(), meta.uid()));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(FileError::Mode(self.path.clone(), meta.mode()));
        }
        Ok(meta.mode())
    }

    /// The directory's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn child(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Opens the subdirectory `name` (created 0700 with `create`); it must be root's and
    /// closed to group and others.
    pub fn subdir(&self, name: &str, create: bool) -> Result<Option<SecureDir>, FileError> {
        let path = self.child(name);
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = match openat(self.dir.as_fd(), name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) if create => {
                match mkdirat(self.dir.as_fd(), name, Mode::from_bits_truncate(0o700)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(io_err(&path, e)),
                }
                openat(self.dir.as_fd(), name, flags, Mode::empty())
                    .map_err(|e| open_error(&path, e))?
            }
            Err(Errno::ENOENT) => return Ok(None),
            Err(e) => {
                return Err(dir_open_error(
                    &self.dir,
                    std::ffi::OsStr::new(name),
                    &path,
                    e,
                ))
            }
        };
        let d = SecureDir {
            dir: File::from(fd),
            path,
        };
        let mode = d.check()?;
        if mode & 0o077 != 0 {
            return Err(FileError::Mode(d.path.clone(), mode));
        }
        Ok(Some(d))
    }

    /// Reads `name` under `rules`; `Ok(None)` when it does not exist. A file replaced by a
    /// writer between open and fstat is read again ([`retry_replaced`]).
    pub fn read(&self, name: &str, rules: &Rules) -> Result<Option<Zeroizing<String>>, FileError> {
        retry_replaced(|| self.read_once(name, rules))
    }

    fn read_once(&self, name: &str, rules: &Rules) -> Result<Option<Zeroizing<String>>, FileError> {
        let path = self.child(name);
        let flags = OFlag::O_RDONLY
            | OFlag::O_NOFOLLOW
            | OFlag::O_CLOEXEC
            | OFlag::O_NONBLOCK
            | OFlag::O_NOCTTY;
        match openat(self.dir.as_fd(), name, flags, Mode::empty()) {
            Ok(fd) => read_checked(&path, File::from(fd), rules).map(Some),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(open_error(&path, e)),
        }
    }

    /// Replaces `name` with `contents` atomically and durably: temp file `.NAME.tmp` (0600,
    /// `O_EXCL`), write, fsync, rename, fsync of the directory. A temp file that a killed
    /// writer left behind is removed first; call this under the name's lock.
    pub fn write_atomic(&self, name: &str, contents: &[u8]) -> Result<(), FileError> {
        // Every write of `name` happens under its account's lock, so one fixed temp name
        // suffices: whatever a killed writer left there is removed first, and the cost of a
        // write does not grow with the number of files in the directory (a scan for leftovers
        // did: the benchmark's 10,000 users made it half of a login's work).
        let tmp = format!(".{name}.tmp");
        match unlinkat(self.dir.as_fd(), tmp.as_str(), UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(io_err(&self.child(&tmp), e)),
        }
        let tmp_path = self.child(&tmp);
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = openat(
            self.dir.as_fd(),
            tmp.as_str(),
            flags,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| open_error(&tmp_path, e))?;
        let mut file = File::from(fd);
        let written = (|| -> Result<(), FileError> {
            fchmod(file.as_fd(), Mode::from_bits_truncate(0o600))
                .map_err(|e| io_err(&tmp_path, e))?;
            file.write_all(contents).map_err(|e| io_err(&tmp_path, e))?;
            file.sync_all().map_err(|e| io_err(&tmp_path, e))?;
            renameat(self.dir.as_fd(), tmp.as_str(), self.dir.as_fd(), name)
                .map_err(|e| io_err(&self.child(name), e))
        })();
        if let Err(e) = written {
            let _ = unlinkat(self.dir.as_fd(), tmp.as_str(), UnlinkatFlags::NoRemoveDir);
            return Err(e);
        }
        self.dir.sync_all().map_err(|e| io_err(&self.path, e))
    }

    /// Moves `from` to `to` within this directory (durably). `Ok(false)`: `from` did not exist.
    pub fn rename(&self, from: &str, to: &str) -> Result<bool, FileError> {
        match renameat(self.dir.as_fd(), from, self.dir.as_fd(), to) {
            Ok(()) => {}
            Err(Errno::ENOENT) => return Ok(false),
            Err(e) => return Err(io_err(&self.child(from), e)),
        }
        self.dir.sync_all().map_err(|e| io_err(&self.path, e))?;
        Ok(true)
    }

    /// Moves `name` of this directory into `target` (another directory of the same file
    /// system) as `new_name`, durably. `Ok(false)`: `name` did not exist.
    pub fn move_to(
        &self,
        name: &str,
        target: &SecureDir,
        new_name: &str,
    ) -> Result<bool, FileError> {
        match renameat(self.dir.as_fd(), name, target.dir.as_fd(), new_name) {
            Ok(()) => {}
            Err(Errno::ENOENT) => return Ok(false),
            Err(e) => return Err(io_err(&self.child(name), e)),
        }
        target.dir.sync_all().map_err(|e| io_err(&target.path, e))?;
        self.dir.sync_all().map_err(|e| io_err(&self.path, e))?;
        Ok(true)
    }

    /// Takes the exclusive lock of `name` (a file in this directory, created empty 0600 if
    /// missing, never renamed or removed), retrying without blocking until `deadline`, so a
    /// stopped process can't hang every login. The lock ends when the guard is dropped or the
    /// process dies.
    pub fn lock(&self, name: &str, deadline: Duration) -> Result<LockGuard, FileError> {
        match self.open_locked(name, true, deadline)? {
            Some(file) => Ok(LockGuard { _file: file }),
            // Created above and never removed: only a process outside twofa removed it.
            None => Err(FileError::LockTimeout(self.child(name))),
        }
    }

    /// Opens `name` (a root-only file of this directory, created empty 0600 with `create`)
    /// for reading and writing and takes its exclusive lock, retrying without blocking until
    /// `deadline`. For small files that are removed under their own lock (the lost-log-lines
    /// counter): a file removed while we waited for its lock is opened again (created again
    /// with `create`), so nothing is ever written to a name-less inode. `Ok(None)`: it does
    /// not exist (and `create` is false). The lock ends when the file is dropped.
    pub fn open_locked(
        &self,
        name: &str,
        create: bool,
        deadline: Duration,
    ) -> Result<Option<File>, FileError> {
        let path = self.child(name);
        let mut flags = OFlag::O_RDWR
            | OFlag::O_NOFOLLOW
            | OFlag::O_CLOEXEC
            | OFlag::O_NONBLOCK
            | OFlag::O_NOCTTY;
        if create {
            flags |= OFlag::O_CREAT;
        }
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            let fd = match openat(
                self.dir.as_fd(),
                name,
                flags,
                Mode::from_bits_truncate(0o600),
            ) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) if !create => return Ok(None),
                Err(e) => return Err(open_error(&path, e)),
            };
            let file = File::from(fd);
            let meta = file.metadata().map_err(|e| io_err(&path, e))?;
            // The link count is checked once the lock is held: until then a holder may remove it.
            let rules = Rules {
                single_link: false,
                ..Rules::SECRET
            };
            check_meta(&path, &meta, &rules)?;
            loop {
                match file.try_lock() {
                    Ok(()) => break,
                    Err(std::fs::TryLockError::WouldBlock) => {
                        if start.elapsed() >= deadline {
                            return Err(FileError::LockTimeout(path));
                        }
                        std::thread::sleep(pause);
                        pause = (pause * 2).min(Duration::from_millis(20));
                    }
                    Err(std::fs::TryLockError::Error(e)) => return Err(io_err(&path, e)),
                }
            }
            // Removed by the holder we waited for: that inode has no name any more.
            let links = file.metadata().map_err(|e| io_err(&path, e))?.nlink();
            if links == 1 {
                return Ok(Some(file));
            }
            if links != 0 {
                return Err(FileError::HardLinked(path, links));
            }
            if !create {
                return Ok(None);
            }
        }
    }

    /// Removes `name` from this directory (call it under the file's lock, see
    /// [`SecureDir::open_locked`]). `Ok(false)`: it did not exist.
    pub fn remove(&self, name: &str) -> Result<bool, FileError> {
        match unlinkat(self.dir.as_fd(), name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) => Ok(true),
            Err(Errno::ENOENT) => Ok(false),
            Err(e) => Err(io_err(&self.child(name), e)),
        }
    }

    /// Names of the regular entries of this directory (for `status --all`), unsorted.
    pub fn names(&self) -> Result<Vec<String>, FileError> {
        let entries = std::fs::read_dir(&self.path).map_err(|e| io_err(&self.path, e))?;
        Ok(entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| !n.starts_with('.'))
            .collect())
    }
}

/// Reads a file in a user's keeping (their `~/.google_authenticator`) without following a
/// single symlink: every directory from `/` down is opened with
/// `openat(O_NOFOLLOW|O_DIRECTORY)` and must belong to root or `owner` and not be writable by
/// group or others; the file is opened with `O_NOFOLLOW|O_NONBLOCK` and must be a regular file
/// of `owner`, with one link, no group/other permissions, and at most 64 KiB. A path that
/// leads elsewhere (a link to /etc/shadow, say) is refused before anything is read.
pub fn read_user_file(path: &Path, owner: u32) -> Result<Zeroizing<String>, FileError> {
    if !path.is_absolute() {
        return Err(FileError::WrongType(path.to_path_buf(), "absolute path"));
    }
    let dir_flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut dir = File::options()
        .read(true)
        .custom_flags(libc_flags(OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW))
        .open("/")
        .map_err(|e| io_err(Path::new("/"), e))?;
    let mut walked = PathBuf::from("/");
    let components: Vec<_> = path.components().skip(1).collect();
    let Some((file_name, dirs)) = components.split_last() else {
        return Err(FileError::WrongType(path.to_path_buf(), "file"));
    };
    for component in dirs {
        let std::path::Component::Normal(name) = component else {
            return Err(FileError::WrongType(
                path.to_path_buf(),
                "plain path (no . or ..)",
            ));
        };
        walked.push(name);
        let fd = openat(dir.as_fd(), *name, dir_flags, Mode::empty())
            .map_err(|e| dir_open_error(&dir, name, &walked, e))?;
        dir = File::from(fd);
        let meta = dir.metadata().map_err(|e| io_err(&walked, e))?;
        if meta.uid() != ROOT_UID && meta.uid() != owner {
            return Err(FileError::Owner(walked.clone(), meta.uid()));
        }
        // Sticky world-writable directories (/tmp) still let others swap entries of theirs,
        // not ours; but nothing of a user's secret belongs there: refuse any group/other write.
        if meta.mode() & 0o022 != 0 {
            return Err(FileError::Mode(walked.clone(), meta.mode()));
        }
    }
    let std::path::Component::Normal(name) = file_name else {
        return Err(FileError::WrongType(path.to_path_buf(), "file"));
    };
    let flags = OFlag::O_RDONLY
        | OFlag::O_NOFOLLOW
        | OFlag::O_CLOEXEC
        | OFlag::O_NONBLOCK
        | OFlag::O_NOCTTY;
    let fd = openat(dir.as_fd(), *name, flags, Mode::empty()).map_err(|e| open_error(path, e))?;
    let file = File::from(fd);
    let meta = file.metadata().map_err(|e| io_err(path, e))?;
    if !meta.file_type().is_file() {
        return Err(FileError::WrongType(path.to_path_buf(), "regular file"));
    }
    if meta.uid() != owner {
        return Err(FileError::Owner(path.to_path_buf(), meta.uid()));
    }
    // The same checks as for our own secrets, but owned by the user instead of root.
    let rules = Rules::SECRET;
    if meta.mode() & rules.forbidden_mode != 0 {
        return Err(FileError::Mode(path.to_path_buf(), meta.mode()));
    }
    if meta.nlink() != 1 {
        return Err(FileError::HardLinked(path.to_path_buf(), meta.nlink()));
    }
    let mut buf = Zeroizing::new(Vec::new());
    (&file)
        .take(rules.max_size + 1)
        .read_to_end(&mut buf)
        .map_err(|e| io_err(path, e))?;
    if buf.len() as u64 > rules.max_size {
        return Err(FileError::TooLarge(path.to_path_buf(), rules.max_size));
    }
    match std::str::from_utf8(&buf) {
        Ok(s) => Ok(Zeroizing::new(s.to_string())),
        Err(_) => Err(FileError::NotText(path.to_path_buf())),
    }
}

/// Whether this process runs with root's effective uid (the files twofa writes are root's).
pub fn running_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Creates a private file (0600, not following a symlink) for something that holds a secret,
/// such as a QR code image. Refuses to replace an existing file unless `replace`.
pub fn create_private(path: &Path, replace: bool) -> Result<File, FileError> {
    let mut options = File::options();
    options
        .write(true)
        .mode(0o600)
        .custom_flags(libc_flags(OFlag::O_NOFOLLOW));
    if replace {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let file = options
        .open(path)
        .map_err(|e| open_error(path, Errno::from_raw(e.raw_os_error().unwrap_or(0))))?;
    // An existing file kept its old mode: make it private too.
    fchmod(file.as_fd(), Mode::from_bits_truncate(0o600)).map_err(|e| io_err(path, e))?;
    Ok(file)
}

/// Holds a `flock`; dropping it (or the process dying) releases it.
#[derive(Debug)]
pub struct LockGuard {
    _file: File,
}

/// A random number for test directory names.
#[cfg(test)]
fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    let _ = getrandom::getrandom(&mut b);
    u32::from_ne_bytes(b)
}

/// Makes a permission check readable in tests and `doctor` output.
pub fn mode_of(path: &Path) -> io::Result<u32> {
    Ok(std::fs::symlink_metadata(path)?.permissions().mode() & 0o7777)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch::is_root;
    use std::os::unix::fs::symlink;

    fn tempdir() -> std::path::PathBuf {
        crate::scratch::dir("twofa-core-test")
    }

    #[test]
    fn a_file_replaced_while_being_read_is_read_again_not_refused() -> Result<(), FileError> {
        if !is_root() {
            return Ok(());
        }
        // One thread keeps renaming new versions over the name, as logins of one account do
        // while another login reads the state without the lock. Before reads were retried,
        // a read that opened a version just before it was replaced was refused ("0 hard
        // links") within a few thousand reads.
        let p = tempdir();
        let dir = SecureDir::open(&p, false)?.ok_or(FileError::WrongType(p.clone(), "dir"))?;
        dir.write_atomic("s.toml", b"version = 1\n")?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (p, stop) = (p.clone(), stop.clone());
            std::thread::spawn(move || -> Result<(), FileError> {
                let dir =
                    SecureDir::open(&p, false)?.ok_or(FileError::WrongType(p.clone(), "dir"))?;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    dir.write_atomic("s.toml", b"version = 1\n")?;
                }
                Ok(())
            })
        };
        let mut result = Ok(());
        for _ in 0..3000 {
            match dir.read("s.toml", &Rules::SECRET) {
                Ok(Some(text)) if text.as_str() == "version = 1\n" => {}
                Ok(other) => {
                    result = Err(FileError::NotText(p.join(format!("{:?}", other.is_some()))));
                    break;
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let written = writer.join().unwrap_or(Ok(()));
        std::fs::remove_dir_all(&p).ok();
        written?;
        result
    }

    #[test]
    fn written_file_reads_back_and_is_private() -> Result<(), FileError> {
        if !is_root() {
            return Ok(());
        }
        let p = tempdir();
        let d = SecureDir::open(&p, false)?.ok_or_else(|| FileError::WrongType(p.clone(), "x"))?;
        d.write_atomic("a.toml", b"x = 1\n")?;
        let text = d.read("a.toml", &Rules::SECRET)?;
        assert_eq!(text.as_deref().map(String::as_str), Some("x = 1\n"));
        assert_eq!(mode_of(&p.join("a.toml")).ok(), Some(0o600));
        std::fs::remove_dir_all(&p).ok();
        Ok(())
    }

    #[test]
    fn symlinked_file_is_refused() -> Result<(), FileError> {
        if !is_root() {
            return Ok(());
        }
        let p = tempdir();
        symlink("/etc/shadow", p.join("b.toml")).ok();
        let d = SecureDir::open(&p, false)?.ok_or_else(|| FileError::WrongType(p.clone(), "x"))?;
        assert!(matches!(
            d.read("b.toml", &Rules::SECRET),
            Err(FileError::Symlink(_))
        ));
        std::fs::remove_dir_all(&p).ok();
        Ok(())
    }

    #[test]
    fn a_symlinked_directory_is_called_a_symlink() -> Result<(), FileError> {
        if !is_root() {
            return Ok(());
        }
        let p = tempdir();
        symlink("/etc", p.join("users")).ok();
        let d = SecureDir::open(&p, false)?.ok_or_else(|| FileError::WrongType(p.clone(), "x"))?;
        assert!(matches!(
            d.subdir("users", false),
            Err(FileError::Symlink(_))
        ));
        std::fs::remove_dir_all(&p).ok();
        // A user's file is walked from /: the link must sit under directories that pass
        // (not /tmp, which others can write), e.g. /run.
        let base = PathBuf::from(format!("/run/twofa-core-test-{:08x}", random_u32()));
        std::fs::create_dir(&base).ok();
        symlink("/etc", base.join("lnk")).ok();
        let e = read_user_file(&base.join("lnk/shadow"), 0);
        std::fs::remove_dir_all(&base).ok();
        assert!(matches!(e, Err(FileError::Symlink(_))), "{e:?}");
        Ok(())
    }

    #[test]
    fn group_readable_file_is_refused() -> Result<(), FileError> {
        if !is_root() {
            return Ok(());
        }
        let p = tempdir();
        std::fs::write(p.join("c.toml"), "x = 1").ok();
        std::fs::set_permissions(p.join("c.toml"), std::fs::Permissions::from_mode(0o640)).ok();
        let d = SecureDir::open(&p, false)?.ok_or_else(|| FileError::WrongType(p.clone(), "x"))?;
        assert!(matches!(
            d.read("c.toml", &Rules::SECRET),
            Err(FileError::Mode(..))
        ));
        std::fs::remove_dir_all(&p).ok();
        Ok(())
    }

    #[test]
    fn stale_temp_files_are_removed_by_the_next_writer() -> Result<(), FileError> {
        if !is_root() {
            return Ok(());
        }
        let p = tempdir();
        std::fs::write(p.join(".d.toml.tmp"), "half").ok();
        let d = SecureDir::open(&p, false)?.ok_or_else(|| FileError::WrongType(p.clone(), "x"))?;
        d.write_atomic("d.toml", b"whole")?;
        assert!(!p.join(".d.toml.tmp").exists());
        assert_eq!(
            std::fs::read(p.join("d.toml")).ok().as_deref(),
            Some(&b"whole"[..])
        );
        std::fs::remove_dir_all(&p).ok();
        Ok(())
    }

    #[test]
    fn a_held_lock_times_out_instead_of_hanging() -> Result<(), FileError> {
        if !is_root() {
            return Ok(());
        }
        let p = tempdir();
        let d = SecureDir::open(&p, false)?.ok_or_else(|| FileError::WrongType(p.clone(), "x"))?;
        let _held = d.lock("u", LOCK_DEADLINE)?;
        let second = d.lock("u", Duration::from_millis(50));
        assert!(matches!(second, Err(FileError::LockTimeout(_))));
        std::fs::remove_dir_all(&p).ok();
        Ok(())
    }
}
