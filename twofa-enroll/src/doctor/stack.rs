//! The rules one PAM stack's auth lines must follow so that every path through it asks the
//! code, and a wrong password or code shows nowhere: jump counts, where each pam_twofa mode
//! sits, and the controls. Pure: the lines come from [`super::pam`]; no file is read here.

use twofa_core::args::Mode;

use super::pam::PamLine;
use super::Finding;

const SHIPPED: &str = "see the matching stack in conf/pam.d (e.g. conf/pam.d/sshd)";

/// Checks one stack's auth lines against the shipped patterns (pure: no file is read).
/// `may_ignore`: the policy lets some logins through without a code (PAM_IGNORE).
///
/// Findings come rule by rule, in this order; a stack that passes every rule gets one `ok`.
pub(super) fn check_stack(service: &str, lines: &[PamLine], may_ignore: bool) -> Vec<Finding> {
    let stack = AuthStack::new(service, lines);
    let mut out = stack.bad_arguments();
    let (Some(&first), Some(&last)) = (stack.verify.first(), stack.verify.last()) else {
        out.extend(stack.no_code_check());
        return out;
    };
    out.extend(stack.jumps());
    out.extend(stack.before_code_check(first));
    out.extend(stack.undecided_code_checks());
    out.extend(stack.password_failed_lines(first));
    out.extend(stack.pubkey_done_lines());
    out.extend(stack.concat_lines());
    if may_ignore {
        out.extend(stack.nothing_succeeds_after(last));
    }
    if out.is_empty() {
        out.push(stack.shipped_order());
    }
    out
}

/// One service's auth lines under check, and where the code is checked.
struct AuthStack<'a> {
    /// The service (the PAM file's name), as messages name it.
    service: &'a str,
    /// `pam SERVICE`: the area of every finding.
    check: String,
    lines: &'a [PamLine],
    /// Indices of the code-checking lines (`pam_twofa.so` without a mode word).
    verify: Vec<usize>,
}

/// A `value=N` action of the line at `from`: on that result, skip the next N lines.
struct Jump<'v> {
    from: usize,
    value: &'v str,
    n: usize,
}

impl Jump<'_> {
    /// The index the jump lands on (the stack's length: just past its end).
    fn target(&self) -> usize {
        self.from + 1 + self.n
    }
}

impl<'a> AuthStack<'a> {
    fn new(service: &'a str, lines: &'a [PamLine]) -> AuthStack<'a> {
        AuthStack {
            service,
            check: format!("pam {service}"),
            lines,
            verify: indices(lines, Mode::Verify),
        }
    }

    fn error(&self, message: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding::error(&self.check, message, fix)
    }

    fn warning(&self, message: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding::warning(&self.check, message, fix)
    }

    /// pam_twofa refuses arguments it doesn't know rather than guess a mode from a typo, so a
    /// line with one fails every login through the service.
    fn bad_arguments(&self) -> Vec<Finding> {
        self.lines
            .iter()
            .filter_map(|l| match l.twofa_mode() {
                Some(Err(e)) => Some(self.error(
                    format!(
                        "{}: {e}: the module fails closed, so no one logs in through {}",
                        l.at(),
                        self.service
                    ),
                    "use only config=/absolute/path, debug, and one of password_failed, pubkey_done, concat",
                )),
                _ => None,
            })
            .collect()
    }

    /// The mode lines only prepare the check: a stack that loads pam_twofa without a
    /// code-checking line never asks the code.
    fn no_code_check(&self) -> Option<Finding> {
        self.lines.iter().any(PamLine::is_twofa).then(|| {
            self.error(
                format!(
                    "no line checks the code (`pam_twofa.so` without a mode word) in the auth stack of {}",
                    self.service
                ),
                format!("add `auth required pam_twofa.so` after the password lines; {SHIPPED}"),
            )
        })
    }

    /// Every `value=N` jump, line by line, through the jump rules; a jump past the end is
    /// reported as that alone (the others would count lines that aren't there).
    fn jumps(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        for (from, l) in self.lines.iter().enumerate() {
            for (value, action) in l.actions() {
                let Ok(n) = action.parse::<usize>() else {
                    continue;
                };
                let jump = Jump {
                    from,
                    value: &value,
                    n,
                };
                if let Some(f) = self.jump_past_end(&jump) {
                    out.push(f);
                    continue;
                }
                out.extend(self.jump_across_include(&jump));
                out.extend(self.jump_over_code_check(&jump));
            }
        }
        out
    }

    /// libpam ends the stack where a jump runs out of lines, with the result so far: the
    /// count is wrong, and whatever it was meant to land on is skipped.
    fn jump_past_end(&self, jump: &Jump) -> Option<Finding> {
        (jump.target() > self.lines.len()).then(|| {
            self.error(
                format!(
                    "{}: `{}={}` jumps past the end of the auth stack",
                    self.lines[jump.from].at(),
                    jump.value,
                    jump.n
                ),
                format!("count the lines again; {SHIPPED}"),
            )
        })
    }

    /// A count that reaches into an `@include`d file depends on that file's length, which
    /// pam-auth-update rewrites: a count right today lands somewhere else after an upgrade.
    fn jump_across_include(&self, jump: &Jump) -> Option<Finding> {
        let l = &self.lines[jump.from];
        let last = jump.target().min(self.lines.len() - 1);
        let other = self.lines[jump.from + 1..last + 1]
            .iter()
            .find(|s| s.file != l.file)?;
        Some(self.error(
            format!(
                "{}: `{}={}` counts lines of `{}` (an @include): the jump depends on that file, which pam-auth-update rewrites",
                l.at(),
                jump.value,
                jump.n,
                other.file
            ),
            format!("write the lines inline instead of the @include; {SHIPPED}"),
        ))
    }

    /// A jump over a code-checking line is a path through the stack that never asks the code.
    fn jump_over_code_check(&self, jump: &Jump) -> Option<Finding> {
        let l = &self.lines[jump.from];
        let skipped = self.lines[jump.from + 1..jump.target().min(self.lines.len())]
            .iter()
            .find(|s| s.is(Mode::Verify))?;
        let how = if l.is_module("pam_unix") {
            "put `auth required pam_twofa.so password_failed` right after pam_unix (its success=1 jumps over that line only)"
        } else {
            "make the jump land on the code-checking line"
        };
        Some(self.error(
            format!(
                "{}: `{}={}` jumps over the code check at {}: that path logs in without the code",
                l.at(),
                jump.value,
                jump.n,
                skipped.at()
            ),
            format!("{how}; {SHIPPED}"),
        ))
    }

    /// The lines before the first code check, each through the rules for that part.
    fn before_code_check(&self, first: usize) -> Vec<Finding> {
        self.lines[..first]
            .iter()
            .flat_map(|l| {
                [
                    self.ends_before_code_check(l),
                    self.requisite_before_prompt(l),
                ]
            })
            .flatten()
            .collect()
    }

    /// `sufficient` or `success=done` ends the stack when that module succeeds: before the
    /// code check, a password alone logs in. (pam_rootok is fine: it only lets root through.)
    fn ends_before_code_check(&self, l: &PamLine) -> Option<Finding> {
        let ends = l.control == "sufficient" || l.action("success").as_deref() == Some("done");
        (ends && !l.is_module("pam_rootok")).then(|| {
            self.error(
                format!(
                    "{}: when {} succeeds the stack ends: the code is never asked",
                    l.at(),
                    l.base()
                ),
                format!("use `[success=1 default=ignore]` and a password_failed line; {SHIPPED}"),
            )
        })
    }

    /// A `requisite` failure before the prompt ends the stack at once: whether the code is
    /// asked then tells a guesser the password was wrong. (concat is requisite on purpose: it
    /// only fails when it can't split the field, and checks nothing.)
    fn requisite_before_prompt(&self, l: &PamLine) -> Option<Finding> {
        (l.control == "requisite" && !l.is(Mode::Concat)).then(|| {
            self.warning(
                format!(
                    "{}: {} is requisite before the code prompt: a wrong password ends the stack at once, so the prompts tell a guesser it was wrong",
                    l.at(),
                    l.base()
                ),
                format!("use `[success=1 default=ignore]` plus a password_failed line; {SHIPPED}"),
            )
        })
    }

    /// A code check that can't fail the login (`sufficient`, `optional`, a `[...]` without
    /// default=bad or die) lets a wrong code through.
    fn undecided_code_checks(&self) -> Vec<Finding> {
        self.verify
            .iter()
            .map(|&v| &self.lines[v])
            .filter(|l| !decides(l))
            .map(|l| {
                self.error(
                    format!(
                        "{}: the code check is `{}`: a wrong code does not fail the login",
                        l.at(),
                        l.control
                    ),
                    "auth required pam_twofa.so",
                )
            })
            .collect()
    }

    /// Every password_failed line through its rules; then, if there is none, whether one is
    /// missing.
    fn password_failed_lines(&self, first: usize) -> Vec<Finding> {
        let pf = indices(self.lines, Mode::PasswordFailed);
        let mut out = Vec::new();
        for &i in &pf {
            out.extend(self.password_failed_not_required(i));
            out.extend(self.password_line_before(i));
            out.extend(self.code_check_after_password_failed(i));
        }
        if pf.is_empty() {
            out.extend(self.no_password_failed(first));
        }
        out
    }

    /// password_failed fails the login while the stack goes on to ask the code: anything but
    /// `required` changes what is asked or the result after a wrong password.
    fn password_failed_not_required(&self, i: usize) -> Option<Finding> {
        let l = &self.lines[i];
        (l.control != "required").then(|| {
            self.error(
                format!(
                    "{}: password_failed is `{}`, not required: the prompts or the result change after a wrong password",
                    l.at(),
                    l.control
                ),
                "auth required pam_twofa.so password_failed",
            )
        })
    }

    /// password_failed must run only after a wrong password: the password line right before
    /// it jumps over it on success (`success=1`), onto the code check; without that jump a
    /// right password fails too.
    fn password_line_before(&self, i: usize) -> Option<Finding> {
        let l = &self.lines[i];
        let Some((p, prev)) = i
            .checked_sub(1)
            .map(|p| (p, &self.lines[p]))
            .filter(|(_, prev)| !prev.is_twofa())
        else {
            return Some(self.error(
                format!(
                    "{}: password_failed does not follow the password line",
                    l.at()
                ),
                format!(
                    "put it right after `auth [success=1 default=ignore] pam_unix.so`; {SHIPPED}"
                ),
            ));
        };
        let fix = format!(
            "auth [success=1 default=ignore] {} ...; {SHIPPED}",
            prev.base()
        );
        match prev.success_jump(p) {
            Some(t) if t == i + 1 => None,
            Some(t) => Some(self.error(
                format!(
                    "{}: {}'s `success={}` lands on {}, not on the code check right after password_failed",
                    prev.at(),
                    prev.base(),
                    t - p - 1,
                    self.lines.get(t).map_or("the end of the stack".to_string(), PamLine::at)
                ),
                fix,
            )),
            None => Some(self.error(
                format!(
                    "{}: {} before password_failed doesn't jump over it: a right password fails too",
                    prev.at(),
                    prev.base()
                ),
                fix,
            )),
        }
    }

    /// After a wrong password the code is still asked, so the prompts look the same either
    /// way: the code-checking line must follow password_failed directly.
    fn code_check_after_password_failed(&self, i: usize) -> Option<Finding> {
        let l = &self.lines[i];
        (!self.lines.get(i + 1).is_some_and(|n| n.is(Mode::Verify))).then(|| {
            self.error(
                format!(
                    "{}: password_failed is not followed by the code-checking line",
                    l.at()
                ),
                format!("put `auth required pam_twofa.so` right after it; {SHIPPED}"),
            )
        })
    }

    /// Without password_failed the code check can't know the password was wrong: it checks
    /// (and spends) a code after a wrong password too.
    fn no_password_failed(&self, first: usize) -> Option<Finding> {
        self.lines[..first]
            .iter()
            .any(|l| l.is_module("pam_unix"))
            .then(|| {
                self.warning(
                    format!(
                        "no password_failed line before the code check at {}: a code may be checked and spent after a wrong password",
                        self.lines[first].at()
                    ),
                    format!("auth [success=1 default=ignore] pam_unix.so, then auth required pam_twofa.so password_failed; {SHIPPED}"),
                )
            })
    }

    /// Every pubkey_done line through its rules.
    fn pubkey_done_lines(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        for i in indices(self.lines, Mode::PubkeyDone) {
            out.extend(self.pubkey_done_landing(i));
            out.extend(self.user_env_before_pubkey_done(i));
        }
        out
    }

    /// After a verified key, pubkey_done's `success=N` skips the password lines: it must land
    /// on the code check, or a key login is asked the password too, or skips the code.
    fn pubkey_done_landing(&self, i: usize) -> Option<Finding> {
        let l = &self.lines[i];
        match l.success_jump(i) {
            Some(t) if self.lines.get(t).is_some_and(|x| x.is(Mode::Verify)) => None,
            Some(t) => Some(self.error(
                format!(
                    "{}: pubkey_done's `success={}` lands on {}, not on the code check",
                    l.at(),
                    t - i - 1,
                    self.lines
                        .get(t)
                        .map_or("the end of the stack".to_string(), |x| format!("{} ({})", x.at(), x.base()))
                ),
                format!("count the lines to `auth required pam_twofa.so`; {SHIPPED}"),
            )),
            None => Some(self.error(
                format!(
                    "{}: pubkey_done has no `success=N` jump: after a key the password is asked too, or the code is skipped",
                    l.at()
                ),
                "auth [success=2 default=ignore] pam_twofa.so pubkey_done (conf/pam.d/sshd)",
            )),
        }
    }

    /// pubkey_done trusts SSH_AUTH_INFO_0 in the PAM environment. pam_env with user_readenv=1
    /// before it lets a user's own ~/.pam_environment set that, and skip the password.
    fn user_env_before_pubkey_done(&self, i: usize) -> Vec<Finding> {
        self.lines[..i]
            .iter()
            .filter(|e| e.is_module("pam_env") && e.args.iter().any(|a| a == "user_readenv=1"))
            .map(|env| {
                self.error(
                    format!(
                        "{}: pam_env with user_readenv=1 before pubkey_done: a user's ~/.pam_environment could set SSH_AUTH_INFO_0 and skip the password",
                        env.at()
                    ),
                    "drop user_readenv=1 from the auth line (or keep pam_env in the session stack only)",
                )
            })
            .collect()
    }

    /// Every concat line through its rules.
    fn concat_lines(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        for i in indices(self.lines, Mode::Concat) {
            out.extend(self.concat_not_requisite(i));
            out.extend(self.concat_without_use_first_pass(i));
        }
        out
    }

    /// concat fails only when it could not split the field (no policy, no field): the stack
    /// must end there, or the next line checks the whole field, code and all, as the password.
    fn concat_not_requisite(&self, i: usize) -> Option<Finding> {
        let l = &self.lines[i];
        (l.control != "requisite").then(|| {
            self.error(
                format!("{}: concat is `{}`, not requisite", l.at(), l.control),
                "auth requisite pam_twofa.so concat (conf/pam.d/vsftpd)",
            )
        })
    }

    /// concat hands the password part on as PAM_AUTHTOK: pam_unix right after it must take
    /// that (use_first_pass) rather than ask again or read the field with the code on it.
    fn concat_without_use_first_pass(&self, i: usize) -> Option<Finding> {
        let l = &self.lines[i];
        let next = self.lines.get(i + 1);
        let takes_password = next.is_some_and(|n| {
            n.is_module("pam_unix") && n.args.iter().any(|a| a == "use_first_pass")
        });
        (!takes_password).then(|| {
            self.error(
                format!(
                    "{}: concat must be followed by `pam_unix.so use_first_pass`{}: otherwise the password is asked again, or checked with the code still on it",
                    l.at(),
                    next.map_or(String::new(), |n| format!(" (found {} at {})", n.base(), n.at()))
                ),
                "auth [success=1 default=ignore] pam_unix.so use_first_pass (conf/pam.d/vsftpd)",
            )
        })
    }

    /// Someone the policy lets in without a code gets PAM_IGNORE from the code check; a stack
    /// in which every line was ignored ends in PAM_PERM_DENIED, so a later line (pam_permit)
    /// must succeed.
    fn nothing_succeeds_after(&self, last: usize) -> Option<Finding> {
        let records = self.lines[last + 1..].iter().any(|l| {
            matches!(l.control.as_str(), "required" | "requisite" | "optional")
                || l.action("success").as_deref() == Some("ok")
        });
        (!records).then(|| {
            self.error(
                format!(
                    "nothing after the code check at {} succeeds: a user the policy lets in without a code (unenrolled = \"allow\" or \"grace\", exempt or not enforced) is refused (PAM_PERM_DENIED)",
                    self.lines[last].at()
                ),
                "add `auth optional pam_permit.so` after the code-checking line",
            )
        })
    }

    /// All well: the `ok` names the modes in order, so the reader sees which pattern it is.
    fn shipped_order(&self) -> Finding {
        let modes: Vec<&str> = self
            .lines
            .iter()
            .filter_map(|l| match l.twofa_mode() {
                Some(Ok(Mode::PubkeyDone)) => Some("pubkey_done"),
                Some(Ok(Mode::PasswordFailed)) => Some("password_failed"),
                Some(Ok(Mode::Concat)) => Some("concat"),
                Some(Ok(Mode::Verify)) => Some("code"),
                _ => None,
            })
            .collect();
        Finding::ok(
            &self.check,
            format!(
                "auth lines in the shipped order ({}); jumps land on the code check",
                modes.join(", ")
            ),
        )
    }
}

/// Indices of the pam_twofa lines in `mode`.
fn indices(lines: &[PamLine], mode: Mode) -> Vec<usize> {
    (0..lines.len()).filter(|&i| lines[i].is(mode)).collect()
}

/// Whether a failure of the line fails the login: `required`, `requisite`, or a `[...]`
/// control with default=bad or die.
fn decides(l: &PamLine) -> bool {
    matches!(l.control.as_str(), "required" | "requisite")
        || matches!(l.action("default").as_deref(), Some("bad" | "die"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::pam::tests::lines;
    use crate::doctor::Status;

    const SSHD: &str = include_str!("../../../conf/pam.d/sshd");
    const SUDO: &str = include_str!("../../../conf/pam.d/sudo");
    const SU: &str = include_str!("../../../conf/pam.d/su");
    const VSFTPD: &str = include_str!("../../../conf/pam.d/vsftpd");
    const PROFTPD: &str = include_str!("../../../conf/pam.d/proftpd");
    const PURE_FTPD: &str = include_str!("../../../conf/pam.d/pure-ftpd");

    fn problems(text: &str, may_ignore: bool) -> Vec<Finding> {
        check_stack("svc", &lines(text), may_ignore)
            .into_iter()
            .filter(|f| f.status != Status::Ok)
            .collect()
    }

    fn errors(text: &str) -> Vec<String> {
        problems(text, false)
            .into_iter()
            .filter(|f| f.status == Status::Error)
            .map(|f| f.message)
            .collect()
    }

    fn has(errors: &[String], needle: &str) -> bool {
        errors.iter().any(|e| e.contains(needle))
    }

    #[test]
    fn every_shipped_stack_passes_under_both_policies() {
        for (name, text) in [
            ("sshd", SSHD),
            ("sudo", SUDO),
            ("su", SU),
            ("vsftpd", VSFTPD),
            ("proftpd", PROFTPD),
            ("pure-ftpd", PURE_FTPD),
        ] {
            for may_ignore in [false, true] {
                assert_eq!(problems(text, may_ignore), vec![], "{name} {may_ignore}");
            }
            let all = check_stack(name, &lines(text), false);
            assert_eq!(all.len(), 1, "{name}: one ok finding");
        }
    }

    #[test]
    fn a_wrong_jump_over_password_failed_is_an_error() {
        let broken = SUDO.replace(
            "[success=1 default=ignore]  pam_unix.so",
            "[success=2 default=ignore]  pam_unix.so",
        );
        let e = errors(&broken);
        assert!(has(&e, "jumps over the code check"), "{e:?}");
        assert!(has(&e, "`success=2` lands on"), "{e:?}");
    }

    #[test]
    fn a_missing_password_failed_line_means_a_password_alone_logs_in() {
        let broken: String = SUDO
            .lines()
            .filter(|l| !l.contains("password_failed"))
            .map(|l| format!("{l}\n"))
            .collect();
        let e = errors(&broken);
        assert!(has(&e, "jumps over the code check"), "{e:?}");
    }

    #[test]
    fn pubkey_done_must_land_on_the_code_check() {
        let broken = SSHD.replace(
            "[success=2 default=ignore]  pam_twofa.so pubkey_done",
            "[success=1 default=ignore]  pam_twofa.so pubkey_done",
        );
        let e = errors(&broken);
        assert!(has(&e, "pubkey_done's `success=1` lands on svc:"), "{e:?}");
        let broken = SSHD.replace(
            "[success=2 default=ignore]  pam_twofa.so pubkey_done",
            "[success=3 default=ignore]  pam_twofa.so pubkey_done",
        );
        assert!(has(&errors(&broken), "jumps over the code check"));
    }

    #[test]
    fn concat_without_use_first_pass_is_an_error() {
        let broken = VSFTPD.replace("pam_unix.so use_first_pass", "pam_unix.so");
        assert!(has(
            &errors(&broken),
            "concat must be followed by `pam_unix.so use_first_pass`"
        ));
        let broken = VSFTPD.replace(
            "requisite                   pam_twofa.so concat",
            "required pam_twofa.so concat",
        );
        assert!(has(&errors(&broken), "concat is `required`, not requisite"));
    }

    #[test]
    fn pam_env_reading_user_files_before_pubkey_done_is_an_error() {
        let broken = SSHD.replace(
            "auth    [success=2 default=ignore]  pam_twofa.so pubkey_done",
            "auth required pam_env.so user_readenv=1\nauth    [success=2 default=ignore]  pam_twofa.so pubkey_done",
        );
        assert!(has(&errors(&broken), "user_readenv=1 before pubkey_done"));
        let fine = SSHD.replace(
            "auth    [success=2 default=ignore]  pam_twofa.so pubkey_done",
            "auth required pam_env.so\nauth    [success=2 default=ignore]  pam_twofa.so pubkey_done",
        );
        assert_eq!(errors(&fine), Vec::<String>::new());
    }

    #[test]
    fn jumps_counted_across_an_include_are_an_error() {
        let text = "auth [success=3 default=ignore] pam_twofa.so pubkey_done\n@include common-auth\nauth required pam_twofa.so\n";
        let e = errors(text);
        assert!(has(&e, "counts lines of `common-auth`"), "{e:?}");
    }

    #[test]
    fn the_code_line_added_after_common_auth_leaks_the_password_check() {
        let text = "@include common-auth\nauth required pam_twofa.so\n";
        let p = problems(text, false);
        assert!(p.iter().all(|f| f.status == Status::Warning), "{p:?}");
        assert!(p
            .iter()
            .any(|f| f.message.contains("pam_deny.so is requisite")));
        assert!(p
            .iter()
            .any(|f| f.message.contains("no password_failed line")));
    }

    #[test]
    fn a_code_check_that_does_not_decide_is_an_error() {
        let broken = SUDO.replace(
            "required                    pam_twofa.so\n",
            "sufficient pam_twofa.so\n",
        );
        assert!(has(&errors(&broken), "the code check is `sufficient`"));
    }

    #[test]
    fn allow_needs_a_line_that_succeeds_after_the_code_check() {
        let broken: String = SUDO
            .lines()
            .filter(|l| !l.contains("pam_permit"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(errors(&broken), Vec::<String>::new());
        let p = problems(&broken, true);
        assert!(
            p.iter().any(|f| f.message.contains("PAM_PERM_DENIED")),
            "{p:?}"
        );
    }

    #[test]
    fn a_module_argument_typo_is_an_error() {
        let broken = SSHD.replace("pam_twofa.so pubkey_done", "pam_twofa.so pubkey_don");
        assert!(has(&errors(&broken), "unknown argument `pubkey_don`"));
    }

    #[test]
    fn a_jump_past_the_end_is_reported_once_not_as_a_skipped_code_check() {
        let e = errors("auth [success=9 default=ignore] pam_unix.so\nauth required pam_twofa.so password_failed\nauth required pam_twofa.so\nauth optional pam_permit.so\n");
        assert!(has(&e, "svc:1: `success=9` jumps past the end"), "{e:?}");
        assert!(!has(&e, "jumps over the code check"), "{e:?}");
        assert!(!has(&e, "counts lines of"), "{e:?}");
    }

    #[test]
    fn a_password_line_that_ends_the_stack_never_asks_the_code() {
        for control in ["sufficient", "[success=done default=ignore]"] {
            let broken = SUDO.replace(
                "[success=1 default=ignore]  pam_unix.so",
                &format!("{control} pam_unix.so"),
            );
            assert!(
                has(&errors(&broken), "when pam_unix.so succeeds the stack ends"),
                "{control}"
            );
        }
        // su's pam_rootok is sufficient on purpose: only root passes it.
        assert_eq!(errors(SU), Vec::<String>::new());
    }

    #[test]
    fn password_failed_must_be_required_and_right_before_the_code_check() {
        let broken = SUDO.replace(
            "required                    pam_twofa.so password_failed",
            "optional pam_twofa.so password_failed",
        );
        assert!(has(
            &errors(&broken),
            "password_failed is `optional`, not required"
        ));
        let e = errors("auth [success=1 default=ignore] pam_unix.so\nauth required pam_twofa.so password_failed\nauth required pam_permit.so\nauth required pam_twofa.so\n");
        assert!(
            has(
                &e,
                "password_failed is not followed by the code-checking line"
            ),
            "{e:?}"
        );
    }

    #[test]
    fn pubkey_done_without_a_jump_asks_the_password_after_a_key() {
        let broken = SSHD.replace(
            "[success=2 default=ignore]  pam_twofa.so pubkey_done",
            "optional pam_twofa.so pubkey_done",
        );
        assert!(has(&errors(&broken), "pubkey_done has no `success=N` jump"));
    }
}
