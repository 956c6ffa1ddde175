//! The PAM module's arguments: `config=PATH`, `debug`, and one mode word.
//!
//! Policy lives in the config file, not here; arguments only say which line of the stack this
//! is. An unknown or doubled word is an error (the module logs it and fails closed), never
//! ignored: a typo such as `pubkey_don` must not turn a line into a plain code check.

use std::fmt;
use std::path::PathBuf;

/// Which job this line of the stack does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Ask for the code and check it (or, if the password failed, ask and deny).
    Verify,
    /// Mark the transaction "password failed" and fail, prompting nothing.
    PasswordFailed,
    /// Succeed when sshd's PAM environment shows a verified public key, else PAM_IGNORE.
    PubkeyDone,
    /// Split "password followed by code" from one field: keep the code for the `Verify` line,
    /// hand the password on as PAM_AUTHTOK.
    Concat,
}

/// Parsed module arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleArgs {
    /// `config=PATH`; `None`: the default path.
    pub config: Option<PathBuf>,
    /// `debug`: extra log lines (never secrets either).
    pub debug: bool,
    /// The mode word.
    pub mode: Mode,
}

/// A bad argument, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgsError(pub String);

impl fmt::Display for ArgsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad module argument: {}", self.0)
    }
}

impl std::error::Error for ArgsError {}

/// Parses the words after the module's name in a PAM service file.
pub fn parse<'a>(words: impl IntoIterator<Item = &'a str>) -> Result<ModuleArgs, ArgsError> {
    let mut out = ModuleArgs {
        config: None,
        debug: false,
        mode: Mode::Verify,
    };
    let mut mode_word: Option<&str> = None;
    for word in words {
        let mode = match word {
            "debug" => {
                out.debug = true;
                continue;
            }
            "password_failed" => Mode::PasswordFailed,
            "pubkey_done" => Mode::PubkeyDone,
            "concat" => Mode::Concat,
            w if w.starts_with("config=") => {
                let path = PathBuf::from(&w["config=".len()..]);
                if !path.is_absolute() {
                    return Err(ArgsError(format!(
                        "`{w}`: the config path must be absolute"
                    )));
                }
                if out.config.replace(path).is_some() {
                    return Err(ArgsError("`config=` given twice".into()));
                }
                continue;
            }
            other => return Err(ArgsError(format!("unknown argument `{other}`"))),
        };
        if let Some(first) = mode_word.replace(word) {
            return Err(ArgsError(format!(
                "`{first}` and `{word}` can't be on one line"
            )));
        }
        out.mode = mode;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_options_are_read() {
        let a = parse(["config=/etc/x.toml", "pubkey_done", "debug"]);
        assert_eq!(
            a,
            Ok(ModuleArgs {
                config: Some("/etc/x.toml".into()),
                debug: true,
                mode: Mode::PubkeyDone
            })
        );
        assert_eq!(parse([]).map(|a| a.mode), Ok(Mode::Verify));
    }

    #[test]
    fn typos_and_contradictions_are_errors_not_ignored() {
        for bad in [
            vec!["pubkey_don"],
            vec!["password_failed", "pubkey_done"],
            vec!["config=relative.toml"],
            vec!["config=/a", "config=/b"],
            vec!["concat", "password_failed"],
        ] {
            assert!(parse(bad.iter().copied()).is_err(), "{bad:?}");
        }
    }
}
