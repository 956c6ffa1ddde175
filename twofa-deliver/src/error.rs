//! The one error type: what went wrong, in words for syslog, and which exit status it maps to.

use std::fmt;

/// Why nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    kind: Kind,
    message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Wrong argv: exit 2.
    Usage,
    /// Environment or stdin settings refused before any attempt: exit 2.
    Settings,
    /// The attempt failed (network, TLS, the server said no, the script could not run): exit 1.
    Delivery,
}

/// Longest error line written to stderr (syslog lines are short).
const MAX_LINE: usize = 400;

impl Failure {
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Failure {
            kind: Kind::Usage,
            message: message.into(),
        }
    }

    pub(crate) fn settings(message: impl Into<String>) -> Self {
        Failure {
            kind: Kind::Settings,
            message: message.into(),
        }
    }

    pub(crate) fn delivery(message: impl Into<String>) -> Self {
        Failure {
            kind: Kind::Delivery,
            message: message.into(),
        }
    }

    /// The process exit status for this failure.
    pub fn exit_code(&self) -> i32 {
        match self.kind {
            Kind::Usage | Kind::Settings => 2,
            Kind::Delivery => 1,
        }
    }

    /// The message as one line, every secret replaced and control characters dropped.
    ///
    /// Messages are written never to include a secret; this is the second line of defence
    /// against a server that echoes what it was sent.
    pub fn redacted(&self, secrets: &[String]) -> String {
        let mut line = self.message.clone();
        for secret in secrets.iter().filter(|s| !s.is_empty()) {
            line = line.replace(secret.as_str(), "[redacted]");
        }
        let mut line: String = line
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if line.len() > MAX_LINE {
            let mut end = MAX_LINE;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            line.truncate(end);
            line.push_str("...");
        }
        line
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_echoed_by_a_server_never_reach_the_log_line() {
        let failure =
            Failure::delivery("server said: 535 bad password hunter2 for code 123456\r\nX");
        let line = failure.redacted(&["hunter2".into(), "123456".into(), String::new()]);
        assert!(!line.contains("hunter2"));
        assert!(!line.contains("123456"));
        assert!(!line.contains('\n') && !line.contains('\r'));
        assert!(line.contains("[redacted]"));
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let failure = Failure::delivery("é".repeat(500));
        let line = failure.redacted(&[]);
        assert!(line.len() <= MAX_LINE + 3);
        assert!(line.ends_with("..."));
    }

    #[test]
    fn usage_and_settings_exit_2_delivery_exits_1() {
        assert_eq!(Failure::usage("x").exit_code(), 2);
        assert_eq!(Failure::settings("x").exit_code(), 2);
        assert_eq!(Failure::delivery("x").exit_code(), 1);
    }
}
