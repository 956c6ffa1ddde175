//! The count of log lines that could not be sent, kept where the next process sees it.
//!
//! Each sshd child, sudo or su is one login in one process, so a counter in memory would die
//! with the process that lost the line. The count lives in a small root-only file instead,
//! `/run/twofa/log-lost` (tmpfs: it starts again at zero with the machine, like the log daemon
//! does), holding one decimal number. A process that lost lines adds them under the file's
//! `flock`, taken without blocking and retried only within the login's log budget; the next
//! process whose line gets through takes the count (reads it and removes the file under the
//! lock) and reports it in a line of its own. The file exists only while a count is pending,
//! so the common case (nothing lost) costs one failed `open`.
//!
//! Only root writes it: the directory is root's, 0700, opened and checked through
//! [`securefile`](crate::securefile). A module running without root (a program that calls PAM
//! as an ordinary user) cannot count or report; its lost lines stay lost, as before.

use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use crate::securefile::{FileError, SecureDir};

/// Where the count lives: root-only, on tmpfs.
pub const DIR: &str = "/run/twofa";
/// The counter's file name in [`DIR`].
pub const FILE: &str = "log-lost";

/// The largest counter file read: a number and a newline.
const MAX_LEN: u64 = 64;

/// What the counter file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// This many lines were lost.
    Lines(u64),
    /// The file held something other than a number (only root can write it, so this is
    /// damage, not an attack): lines were lost, but how many is unknown.
    Unreadable,
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Count::Lines(1) => write!(f, "1 earlier log line was lost"),
            Count::Lines(n) => write!(f, "{n} earlier log lines were lost"),
            Count::Unreadable => write!(
                f,
                "an unknown number of earlier log lines were lost ({DIR}/{FILE} was not a number)"
            ),
        }
    }
}

/// Reads the file's text: one decimal number, surrounding whitespace allowed.
pub fn parse(text: &str) -> Count {
    text.trim()
        .parse::<u64>()
        .map(Count::Lines)
        .unwrap_or(Count::Unreadable)
}

/// The file's text for `n` lost lines.
pub fn format(n: u64) -> String {
    format!("{n}\n")
}

/// The count after adding `more` to what the file held (an unreadable count starts over from
/// what is known to be lost).
pub fn added(held: Count, more: u64) -> u64 {
    match held {
        Count::Lines(n) => n.saturating_add(more),
        Count::Unreadable => more,
    }
}

/// The lost-lines counter in one directory (the system's: [`LostLines::system`]).
#[derive(Debug, Clone, Copy)]
pub struct LostLines<'a> {
    dir: &'a Path,
}

impl LostLines<'static> {
    /// The counter every pam_twofa of this machine shares: [`DIR`]/[`FILE`].
    pub fn system() -> LostLines<'static> {
        LostLines {
            dir: Path::new(DIR),
        }
    }
}

impl<'a> LostLines<'a> {
    /// A counter in another root-owned directory (the unit tests').
    pub fn at(dir: &'a Path) -> LostLines<'a> {
        LostLines { dir }
    }

    /// The counter file's path, for messages.
    pub fn path(&self) -> std::path::PathBuf {
        self.dir.join(FILE)
    }

    /// Adds `n` lost lines, creating the directory (root's, 0700) and the file (0600) if
    /// needed. Waits for the lock at most `wait`, without blocking.
    pub fn add(&self, n: u64, wait: Duration) -> Result<(), FileError> {
        let Some(dir) = SecureDir::open(self.dir, true)? else {
            return Err(FileError::WrongType(self.dir.to_path_buf(), "directory"));
        };
        let Some(mut file) = dir.open_locked(FILE, true, wait)? else {
            return Err(FileError::WrongType(self.path(), "regular file"));
        };
        let held = read_count(&self.path(), &mut file)?;
        let text = format(added(held, n));
        let path = self.path();
        let io = |e: std::io::Error| FileError::Io(path.clone(), e);
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.set_len(0).map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)
    }

    /// Takes the pending count: reads it and removes the file, under its lock. `Ok(None)`:
    /// nothing is pending, or another process holds the lock right now (one try, no wait: the
    /// next line will report it).
    pub fn take(&self) -> Result<Option<Count>, FileError> {
        let Some(dir) = SecureDir::open(self.dir, false)? else {
            return Ok(None);
        };
        let mut file = match dir.open_locked(FILE, false, Duration::ZERO) {
            Ok(Some(f)) => f,
            Ok(None) | Err(FileError::LockTimeout(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let count = read_count(&self.path(), &mut file)?;
        dir.remove(FILE)?;
        Ok(match count {
            Count::Lines(0) => None,
            c => Some(c),
        })
    }

    /// The pending count without taking it (for `doctor`): `Ok(None)` when there is none.
    pub fn peek(&self) -> Result<Option<Count>, FileError> {
        let Some(dir) = SecureDir::open(self.dir, false)? else {
            return Ok(None);
        };
        let rules = crate::securefile::Rules {
            max_size: MAX_LEN,
            ..crate::securefile::Rules::SECRET
        };
        Ok(dir.read(FILE, &rules)?.map(|text| parse(&text)))
    }

    /// Gives a taken count back (its report could not be sent).
    pub fn give_back(&self, count: Count, wait: Duration) -> Result<(), FileError> {
        match count {
            Count::Lines(n) => self.add(n, wait),
            // Unknown before, unknown again: an unreadable file says so better than a number.
            Count::Unreadable => self.add_unreadable(wait),
        }
    }

    fn add_unreadable(&self, wait: Duration) -> Result<(), FileError> {
        let Some(dir) = SecureDir::open(self.dir, true)? else {
            return Err(FileError::WrongType(self.dir.to_path_buf(), "directory"));
        };
        let Some(mut file) = dir.open_locked(FILE, true, wait)? else {
            return Err(FileError::WrongType(self.path(), "regular file"));
        };
        let path = self.path();
        let io = |e: std::io::Error| FileError::Io(path.clone(), e);
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.set_len(0).map_err(io)?;
        file.write_all(b"unreadable\n").map_err(io)
    }
}

/// The count in an opened, locked counter file (an empty file counts 0: created, not yet
/// written by a process that died in between).
fn read_count(path: &Path, file: &mut File) -> Result<Count, FileError> {
    let mut text = String::new();
    file.take(MAX_LEN + 1)
        .read_to_string(&mut text)
        .map_err(|e| FileError::Io(path.to_path_buf(), e))?;
    if text.len() as u64 > MAX_LEN {
        return Ok(Count::Unreadable);
    }
    if text.trim().is_empty() {
        return Ok(Count::Lines(0));
    }
    Ok(parse(&text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch::is_root;

    fn tempdir() -> std::path::PathBuf {
        crate::scratch::dir("twofa-lost-test")
    }

    #[test]
    fn the_file_holds_one_decimal_number() {
        assert_eq!(parse("12\n"), Count::Lines(12));
        assert_eq!(parse(" 0 "), Count::Lines(0));
        assert_eq!(parse("twelve"), Count::Unreadable);
        assert_eq!(parse("-1"), Count::Unreadable);
        assert_eq!(
            parse(&format(18_446_744_073_709_551_615)),
            Count::Lines(u64::MAX)
        );
    }

    #[test]
    fn adding_to_a_count_never_wraps_and_an_unreadable_count_starts_over() {
        assert_eq!(added(Count::Lines(2), 3), 5);
        assert_eq!(added(Count::Lines(u64::MAX), 3), u64::MAX);
        assert_eq!(added(Count::Unreadable, 3), 3);
    }

    #[test]
    fn the_report_says_how_many_lines_were_lost() {
        assert_eq!(Count::Lines(1).to_string(), "1 earlier log line was lost");
        assert_eq!(
            Count::Lines(24).to_string(),
            "24 earlier log lines were lost"
        );
        assert!(Count::Unreadable.to_string().contains("unknown number"));
    }

    #[test]
    fn lost_lines_add_up_until_taken_once() -> Result<(), FileError> {
        if !is_root() {
            return Ok(());
        }
        let base = tempdir();
        let dir = base.join("run-twofa");
        let lost = LostLines::at(&dir);
        assert_eq!(lost.take()?, None, "nothing pending before any loss");
        lost.add(2, Duration::from_millis(50))?;
        lost.add(3, Duration::from_millis(50))?;
        assert_eq!(lost.peek()?, Some(Count::Lines(5)));
        assert_eq!(crate::securefile::mode_of(&dir).ok(), Some(0o700));
        assert_eq!(crate::securefile::mode_of(&lost.path()).ok(), Some(0o600));
        assert_eq!(lost.take()?, Some(Count::Lines(5)));
        assert_eq!(lost.take()?, None, "a count is reported once");
        assert!(!lost.path().exists(), "no file while nothing is pending");
        lost.give_back(Count::Lines(5), Duration::from_millis(50))?;
        assert_eq!(lost.take()?, Some(Count::Lines(5)));
        std::fs::remove_dir_all(&base).ok();
        Ok(())
    }

    #[test]
    fn a_busy_lock_is_waited_for_only_within_the_budget() -> Result<(), FileError> {
        if !is_root() {
            return Ok(());
        }
        let base = tempdir();
        let lost = LostLines::at(&base);
        lost.add(1, Duration::from_millis(50))?;
        let dir = SecureDir::open(&base, false)?.ok_or(FileError::WrongType(base.clone(), "d"))?;
        let held = dir.open_locked(FILE, false, Duration::ZERO)?;
        assert!(held.is_some());
        let start = std::time::Instant::now();
        let added = lost.add(1, Duration::from_millis(30));
        assert!(matches!(added, Err(FileError::LockTimeout(_))), "{added:?}");
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(lost.take()?, None, "taking never waits for a held lock");
        drop(held);
        assert_eq!(lost.take()?, Some(Count::Lines(1)));
        std::fs::remove_dir_all(&base).ok();
        Ok(())
    }

    #[test]
    fn parallel_adders_and_takers_lose_no_count() -> Result<(), FileError> {
        if !is_root() {
            return Ok(());
        }
        // Takers remove the file while adders wait for its lock: an adder must never write
        // into the removed inode, or its lines would vanish with it.
        let base = tempdir();
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let base = base.clone();
                std::thread::spawn(move || -> Result<u64, FileError> {
                    let lost = LostLines::at(&base);
                    let mut taken = 0;
                    for _ in 0..200 {
                        if i % 2 == 0 {
                            lost.add(1, Duration::from_secs(5))?;
                        } else if let Some(Count::Lines(n)) = lost.take()? {
                            taken += n;
                        }
                    }
                    Ok(taken)
                })
            })
            .collect();
        let mut taken = 0;
        for t in threads {
            taken += t.join().unwrap_or(Ok(0))?;
        }
        if let Some(Count::Lines(n)) = LostLines::at(&base).take()? {
            taken += n;
        }
        assert_eq!(taken, 4 * 200);
        std::fs::remove_dir_all(&base).ok();
        Ok(())
    }
}
