//! The `~/.google_authenticator` file of google-authenticator-libpam, read for migration.
//!
//! ```text
//! JBSWY3DPEHPK3PXP            the secret (base32)
//! " RATE_LIMIT 3 30           options, one per line, after a `"`
//! " WINDOW_SIZE 17
//! " DISALLOW_REUSE
//! " TOTP_AUTH                 or " HOTP_COUNTER 1 for a counter-based token
//! " STEP_SIZE 30
//! 12345678                    scratch codes: 8 digits, single use
//! ```
//! The file is in the user's keeping: it is read with
//! [`crate::securefile::read_user_file`], never by a plain path.

use std::fmt;

use crate::secret::{Secret, SecretError};

/// What twofa takes from the file.
#[derive(Debug, Clone)]
pub struct GoogleAuthenticator {
    /// The shared key.
    pub secret: Secret,
    /// `Some(counter)` for an HOTP token (`" HOTP_COUNTER`), `None` for TOTP.
    pub hotp_counter: Option<u64>,
    /// `" STEP_SIZE` (TOTP period), if given.
    pub step_size: Option<u64>,
    /// `" WINDOW_SIZE` (codes accepted in all, e.g. 3 = now +-1), if given.
    pub window_size: Option<u64>,
    /// The unused scratch codes (8 digits), to become recovery codes.
    pub scratch_codes: Vec<String>,
}

/// Why the file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The file is empty.
    Empty,
    /// The secret line is not acceptable.
    Secret(SecretError),
    /// Line N is neither an option nor a scratch code.
    Line(usize, String),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Empty => write!(f, "the file is empty"),
            ParseError::Secret(e) => write!(f, "line 1: {e}"),
            ParseError::Line(n, why) => write!(f, "line {n}: {why}"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Parses the file's text.
pub fn parse(text: &str) -> Result<GoogleAuthenticator, ParseError> {
    let mut lines = text.lines().enumerate();
    let (_, first) = lines.next().ok_or(ParseError::Empty)?;
    let secret = Secret::from_base32(first.trim()).map_err(ParseError::Secret)?;
    let mut out = GoogleAuthenticator {
        secret,
        hotp_counter: None,
        step_size: None,
        window_size: None,
        scratch_codes: Vec::new(),
    };
    let number = |n: usize, v: Option<&str>, what: &str| -> Result<u64, ParseError> {
        v.and_then(|v| v.parse().ok())
            .ok_or_else(|| ParseError::Line(n, format!("{what} needs a number")))
    };
    for (i, line) in lines {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(option) = line.strip_prefix('"') {
            let mut words = option.split_whitespace();
            match words.next() {
                Some("HOTP_COUNTER") => {
                    out.hotp_counter = Some(number(n, words.next(), "HOTP_COUNTER")?)
                }
                Some("STEP_SIZE") => {
                    let s = number(n, words.next(), "STEP_SIZE")?;
                    if !(1..=3600).contains(&s) {
                        return Err(ParseError::Line(
                            n,
                            format!("STEP_SIZE {s} is out of range (1 to 3600)"),
                        ));
                    }
                    out.step_size = Some(s);
                }
                Some("WINDOW_SIZE") => {
                    out.window_size = Some(number(n, words.next(), "WINDOW_SIZE")?)
                }
                // Options twofa always applies its own way (replay, lockout) or that don't
                // concern the secret.
                _ => {}
            }
        } else if line.len() == 8 && line.bytes().all(|b| b.is_ascii_digit()) {
            out.scratch_codes.push(line.to_string());
        } else {
            return Err(ParseError::Line(
                n,
                "neither an option nor an 8-digit scratch code".into(),
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typical_totp_file_is_read() -> Result<(), ParseError> {
        let g = parse(
            "JBSWY3DPEHPK3PXPJBSWY3DPEH\n\" RATE_LIMIT 3 30 1700000000\n\" WINDOW_SIZE 3\n\
             \" DISALLOW_REUSE 56666666\n\" TOTP_AUTH\n12345678\n87654321\n",
        )?;
        assert_eq!(g.secret.bits(), 128);
        assert_eq!((g.hotp_counter, g.window_size), (None, Some(3)));
        assert_eq!(g.scratch_codes, vec!["12345678", "87654321"]);
        Ok(())
    }

    #[test]
    fn an_hotp_file_keeps_its_counter() -> Result<(), ParseError> {
        let g = parse("JBSWY3DPEHPK3PXP\n\" HOTP_COUNTER 42\n")?;
        assert_eq!(g.hotp_counter, Some(42));
        assert_eq!(g.secret.bits(), 80);
        Ok(())
    }

    #[test]
    fn broken_files_say_which_line() {
        assert_eq!(parse("").err(), Some(ParseError::Empty));
        assert!(matches!(parse("NOTBASE32!!\n"), Err(ParseError::Secret(_))));
        assert!(matches!(
            parse("JBSWY3DP\n"),
            Err(ParseError::Secret(SecretError::TooShort(40)))
        ));
        assert_eq!(
            parse("JBSWY3DPEHPK3PXP\nhello\n").err(),
            Some(ParseError::Line(
                2,
                "neither an option nor an 8-digit scratch code".into()
            ))
        );
        assert!(matches!(
            parse("JBSWY3DPEHPK3PXP\n\" HOTP_COUNTER x\n"),
            Err(ParseError::Line(2, _))
        ));
    }
}
