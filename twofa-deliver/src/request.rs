//! The method (argv) and what the code is for (environment).

use std::ffi::{OsStr, OsString};

use crate::error::Failure;

const USAGE: &str = "usage: twofa-deliver email|pushover|script (settings as TOML on stdin, \
                     TWOFA_USER, TWOFA_SENDTO, TWOFA_CODE, TWOFA_TTL in the environment)";

/// Longest `TWOFA_SENDTO` or `TWOFA_USER` accepted.
const MAX_VALUE: usize = 1024;

/// How the code is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Email,
    Pushover,
    Script,
}

impl Method {
    pub(crate) fn from_args(args: &[OsString]) -> Result<Self, Failure> {
        let [word] = args else {
            return Err(Failure::usage(USAGE));
        };
        match word.to_str() {
            Some("email") => Ok(Method::Email),
            Some("pushover") => Ok(Method::Pushover),
            Some("script") => Ok(Method::Script),
            _ => Err(Failure::usage(USAGE)),
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Method::Email => "email",
            Method::Pushover => "pushover",
            Method::Script => "script",
        }
    }
}

/// One code to send: who for, where to, the code and how long it is valid.
#[derive(Debug, Clone)]
pub(crate) struct Invocation {
    pub(crate) method: Method,
    pub(crate) user: String,
    pub(crate) sendto: String,
    pub(crate) code: String,
    pub(crate) ttl_seconds: u32,
}

impl Invocation {
    /// Reads and checks the `TWOFA_*` variables through `var` (the process environment, or a
    /// map in tests).
    pub(crate) fn from_env(
        method: Method,
        var: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Self, Failure> {
        let text = |name: &str| -> Result<String, Failure> {
            let value = var(name)
                .ok_or_else(|| Failure::settings(format!("{name} is not set")))?
                .into_string()
                .map_err(|_| Failure::settings(format!("{name} is not valid UTF-8")))?;
            if value.is_empty() {
                return Err(Failure::settings(format!("{name} is empty")));
            }
            if value.len() > MAX_VALUE {
                return Err(Failure::settings(format!("{name} is too long")));
            }
            if value.chars().any(char::is_control) {
                return Err(Failure::settings(format!(
                    "{name} holds a control character (CR, LF, ...)"
                )));
            }
            Ok(value)
        };
        if let Some(declared) = var("TWOFA_METHOD") {
            if declared.as_os_str() != OsStr::new(method.name()) {
                return Err(Failure::usage(format!(
                    "TWOFA_METHOD does not match the method `{}` in argv",
                    method.name()
                )));
            }
        }
        // The code first, checked without ever echoing it.
        let code = text("TWOFA_CODE")?;
        if !(4..=12).contains(&code.len()) || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Failure::settings("TWOFA_CODE must be 4 to 12 digits"));
        }
        let user = text("TWOFA_USER")?;
        let sendto = text("TWOFA_SENDTO")?;
        let ttl_seconds = text("TWOFA_TTL")?
            .parse::<u32>()
            .ok()
            .filter(|ttl| (1..=86_400).contains(ttl))
            .ok_or_else(|| {
                Failure::settings("TWOFA_TTL must be a number of seconds, 1 to 86400")
            })?;
        Ok(Invocation {
            method,
            user,
            sendto,
            code,
            ttl_seconds,
        })
    }

    /// The variables handed to a script, in a fixed order.
    pub(crate) fn environment(&self) -> [(&'static str, String); 5] {
        [
            ("TWOFA_USER", self.user.clone()),
            ("TWOFA_SENDTO", self.sendto.clone()),
            ("TWOFA_CODE", self.code.clone()),
            ("TWOFA_TTL", self.ttl_seconds.to_string()),
            ("TWOFA_METHOD", self.method.name().to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), OsString::from(v)))
            .collect();
        move |name| map.get(name).cloned()
    }

    const GOOD: &[(&str, &str)] = &[
        ("TWOFA_USER", "alice"),
        ("TWOFA_SENDTO", "alice@example.com"),
        ("TWOFA_CODE", "123456"),
        ("TWOFA_TTL", "300"),
    ];

    #[test]
    fn exactly_one_known_word_is_a_method() {
        let args = |words: &[&str]| words.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(Method::from_args(&args(&["email"])), Ok(Method::Email));
        assert_eq!(Method::from_args(&args(&["script"])), Ok(Method::Script));
        for bad in [&[][..], &["sms"], &["email", "x"], &["--help"], &["EMAIL"]] {
            let err = Method::from_args(&args(bad)).err();
            assert_eq!(err.map(|e| e.exit_code()), Some(2), "{bad:?}");
        }
    }

    #[test]
    fn a_complete_environment_is_read() {
        let inv = Invocation::from_env(Method::Email, env(GOOD)).ok();
        let inv = inv.as_ref();
        assert_eq!(inv.map(|i| i.code.as_str()), Some("123456"));
        assert_eq!(inv.map(|i| i.ttl_seconds), Some(300));
    }

    #[test]
    fn a_bad_code_is_refused_without_being_echoed() {
        for code in ["12a456", "123", "1234567890123", "12345\n6"] {
            let mut pairs = GOOD.to_vec();
            pairs[2] = ("TWOFA_CODE", code);
            let err = Invocation::from_env(Method::Email, env(&pairs)).err();
            let line = err.map(|e| e.to_string()).unwrap_or_default();
            assert!(line.contains("TWOFA_CODE"), "{line}");
            assert!(!line.contains(code), "{line}");
        }
    }

    #[test]
    fn missing_variables_and_bad_ttl_are_refused() {
        for drop in ["TWOFA_USER", "TWOFA_SENDTO", "TWOFA_CODE", "TWOFA_TTL"] {
            let pairs: Vec<_> = GOOD.iter().copied().filter(|(k, _)| *k != drop).collect();
            assert!(Invocation::from_env(Method::Email, env(&pairs)).is_err());
        }
        for ttl in ["0", "-5", "86401", "5m"] {
            let mut pairs = GOOD.to_vec();
            pairs[3] = ("TWOFA_TTL", ttl);
            assert!(Invocation::from_env(Method::Email, env(&pairs)).is_err());
        }
    }

    #[test]
    fn control_characters_in_the_destination_are_refused() {
        let mut pairs = GOOD.to_vec();
        pairs[1] = ("TWOFA_SENDTO", "a@example.com\r\nBcc: evil@example.com");
        assert!(Invocation::from_env(Method::Email, env(&pairs)).is_err());
    }

    #[test]
    fn a_method_variable_that_disagrees_with_argv_is_refused() {
        let mut pairs = GOOD.to_vec();
        pairs.push(("TWOFA_METHOD", "pushover"));
        assert!(Invocation::from_env(Method::Email, env(&pairs)).is_err());
        pairs.pop();
        pairs.push(("TWOFA_METHOD", "email"));
        assert!(Invocation::from_env(Method::Email, env(&pairs)).is_ok());
    }
}
