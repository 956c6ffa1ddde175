//! How the CLI talks: one `error: ...` line plus a hint, colour only on a terminal.

use std::io::{IsTerminal, Write};

/// Prints one line on stdout; a reader that went away (`twofa-enroll status | head`) ends
/// the program quietly instead of with a panic, as `println!` would.
pub fn say(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        let _ = writeln!(
            std::io::stderr(),
            "error: could not write to standard output: {e}"
        );
        std::process::exit(1);
    }
}

/// `println!` through [`say`].
macro_rules! say {
    () => {
        $crate::output::say(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::say(format_args!($($arg)*))
    };
}

/// A command's failure: what happened, and what to do about it.
#[derive(Debug)]
pub struct Failure {
    /// What happened, one line.
    pub message: String,
    /// What to do, if there is something to say.
    pub hint: Option<String>,
}

impl Failure {
    /// A failure without a hint.
    pub fn new(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            hint: None,
        }
    }

    /// Adds a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Failure {
        self.hint = Some(hint.into());
        self
    }
}

impl<E: std::error::Error> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::new(e.to_string())
    }
}

fn label(word: &str, colour: &str) -> String {
    if std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none() {
        format!("\x1b[1;{colour}m{word}\x1b[0m")
    } else {
        word.to_string()
    }
}

/// Prints `error: ...` and the hint to stderr.
pub fn print_failure(f: &Failure) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{}: {}", label("error", "31"), f.message);
    if let Some(h) = &f.hint {
        let _ = writeln!(err, "{}: {h}", label("hint", "36"));
    }
}

/// Prints `warning: ...` to stderr.
pub fn warn(message: &str) {
    let _ = writeln!(
        std::io::stderr().lock(),
        "{}: {message}",
        label("warning", "33")
    );
}

/// Refuses to go on unless running as root: the files twofa writes are root's.
pub fn require_root() -> Result<(), Failure> {
    if twofa_core::securefile::running_as_root() {
        Ok(())
    } else {
        Err(
            Failure::new("twofa-enroll must run as root: enrollments are root's files")
                .hint("run it with sudo"),
        )
    }
}

/// A Unix time as `YYYY-MM-DD HH:MM UTC`.
pub fn utc(ts: u64) -> String {
    twofa_core::calendar::utc_minute(ts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(1_111_111_109), "2005-03-18 01:58 UTC");
        assert_eq!(utc(2_000_000_000), "2033-05-18 03:33 UTC");
    }
}
