//! Break-glass: a way in when the second factor can't be given (a lost phone, broken files),
//! and whether anyone can log in at all.

use std::path::Path;

use super::pam::{auth_lines, PamLine};
use super::Finding;

/// The console `login` service, if it exists and asks no code: a way in when twofa breaks.
pub(super) fn console_without_twofa(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("login")).ok()?;
    let read = |n: &str| std::fs::read_to_string(dir.join(n)).ok();
    let lines = auth_lines("login", &text, &read, &mut Vec::new(), 0);
    (!lines.is_empty() && !lines.iter().any(PamLine::is_twofa))
        .then(|| "console login (login) does not load pam_twofa".to_string())
}

/// Is there a way in when the second factor can't be given?
pub(super) fn check_break_glass(
    paths: &[String],
    enrolled: Option<usize>,
    stacks: bool,
) -> Finding {
    if !paths.is_empty() {
        return Finding::ok("break-glass", paths.join("; "));
    }
    if !stacks {
        return Finding::ok(
            "break-glass",
            "no service loads pam_twofa: logins ask no code",
        );
    }
    if enrolled == Some(0) {
        return Finding::error(
            "break-glass",
            "nobody can log in: every checked service loads pam_twofa, unenrolled = \"deny\", and no one is enrolled",
            "enroll an admin first (twofa-enroll USER) from the root shell you still have open, or set unenrolled = \"allow\" while rolling out",
        );
    }
    Finding::warning(
        "break-glass",
        "no way in without a code: if twofa's files break, every login is refused",
        "keep console login (/etc/pam.d/login) without pam_twofa, or an sshd `Match Group breakglass` block with `AuthenticationMethods publickey`",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    #[test]
    fn nobody_can_log_in_without_enrollment_or_break_glass() {
        assert_eq!(check_break_glass(&[], Some(0), true).status, Status::Error);
        assert_eq!(
            check_break_glass(&[], Some(2), true).status,
            Status::Warning
        );
        assert_eq!(
            check_break_glass(&["x".into()], Some(0), true).status,
            Status::Ok
        );
        assert_eq!(check_break_glass(&[], Some(0), false).status, Status::Ok);
    }
}
