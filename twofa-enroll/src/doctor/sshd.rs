//! sshd: its effective settings (`sshd -T`, globally and for root) and the `Match` blocks of
//! its configuration. sshd decides whether the PAM stack (and so the code) is asked at all.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::Finding;

/// What `sshd -T` said.
#[derive(Debug)]
pub(super) enum SshdView {
    /// The `sshd` PAM service doesn't load pam_twofa.
    NotUsed,
    /// No sshd binary.
    Missing,
    /// It ran and failed (bad config, no host keys...).
    Failed(String),
    /// The global settings (no Match applied) and root's (Match applied for root on localhost).
    Read {
        global: BTreeMap<String, String>,
        root: BTreeMap<String, String>,
    },
}

fn sshd_binary() -> Option<PathBuf> {
    let fixed = Path::new("/usr/sbin/sshd");
    if fixed.exists() {
        return Some(fixed.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("sshd"))
        .find(|p| p.exists())
}

pub(super) fn read_sshd(config: Option<&Path>) -> SshdView {
    let Some(bin) = sshd_binary() else {
        return SshdView::Missing;
    };
    let run = |connection: Option<&str>| -> Result<BTreeMap<String, String>, String> {
        let mut cmd = Command::new(&bin);
        cmd.arg("-T");
        if let Some(c) = config {
            cmd.arg("-f").arg(c);
        }
        if let Some(c) = connection {
            cmd.arg("-C").arg(c);
        }
        let out = cmd
            .output()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
            return Err(format!("{} ({})", last.trim(), out.status));
        }
        Ok(parse_sshd_t(&String::from_utf8_lossy(&out.stdout)))
    };
    match (
        run(None),
        run(Some("user=root,host=localhost,addr=127.0.0.1")),
    ) {
        (Ok(global), Ok(root)) => SshdView::Read { global, root },
        (Err(e), _) | (_, Err(e)) => SshdView::Failed(e),
    }
}

/// Findings for what `sshd -T` said, or why it said nothing; `service` is the PAM service
/// file of the sshd checked.
pub(super) fn check_view(view: &SshdView, service: &Path) -> Vec<Finding> {
    match view {
        SshdView::Missing => vec![Finding::ok("sshd", "sshd is not installed: skipped")],
        SshdView::NotUsed => vec![Finding::ok(
            "sshd",
            format!(
                "{} doesn't load pam_twofa: sshd's settings not checked",
                service.display()
            ),
        )],
        SshdView::Failed(why) => vec![Finding::error(
            "sshd",
            format!("sshd -T failed: {why}"),
            "run `sshd -t` (as root) and fix what it reports",
        )],
        SshdView::Read { global, root } => check_sshd(global, root),
    }
}

/// `sshd -T` output: lowercase keyword -> value (the first line of each keyword).
fn parse_sshd_t(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        if !key.is_empty() {
            out.entry(key.to_ascii_lowercase())
                .or_insert_with(|| value.trim().to_string());
        }
    }
    out
}

/// `AuthenticationMethods`: `None` for `any`, else each list's methods (submethods dropped).
fn method_lists(value: &str) -> Option<Vec<Vec<String>>> {
    if value.is_empty() || value == "any" {
        return None;
    }
    Some(
        value
            .split_whitespace()
            .map(|list| {
                list.split(',')
                    .map(|m| m.split(':').next().unwrap_or(m).to_string())
                    .collect()
            })
            .collect(),
    )
}

const KBD: &str = "keyboard-interactive";
const SSHD_METHODS: &str =
    "AuthenticationMethods publickey,keyboard-interactive keyboard-interactive";

fn setting<'a>(map: &'a BTreeMap<String, String>, key: &str) -> &'a str {
    map.get(key).map(String::as_str).unwrap_or("")
}

/// Lists of `AuthenticationMethods` that don't ask for the code, `None` for `any`.
fn lists_without_kbd(map: &BTreeMap<String, String>) -> Option<Vec<String>> {
    method_lists(setting(map, "authenticationmethods")).map(|lists| {
        lists
            .into_iter()
            .filter(|l| !l.iter().any(|m| m == KBD))
            .map(|l| l.join(","))
            .collect()
    })
}

/// Every finding from sshd's settings, global ones first, root's last.
fn check_sshd(global: &BTreeMap<String, String>, root: &BTreeMap<String, String>) -> Vec<Finding> {
    let mut out = vec![check_use_pam(global), check_kbd_interactive(global)];
    let missing = lists_without_kbd(global);
    out.push(check_methods(missing.as_deref()));
    let kbd_everywhere = matches!(&missing, Some(l) if l.is_empty());
    out.extend(check_password_authentication(global, kbd_everywhere));
    out.push(check_root_login(root));
    out
}

/// Without UsePAM sshd never runs the stack that asks the code.
fn check_use_pam(global: &BTreeMap<String, String>) -> Finding {
    if setting(global, "usepam") == "yes" {
        Finding::ok("sshd", "UsePAM yes")
    } else {
        Finding::error(
            "sshd",
            "UsePAM is not yes: sshd never runs the PAM stack, so no code is asked",
            "UsePAM yes (conf/sshd_config.d/twofa.conf)",
        )
    }
}

/// The code is a keyboard-interactive prompt: with that method off, it can't be asked.
fn check_kbd_interactive(global: &BTreeMap<String, String>) -> Finding {
    // OpenSSH < 8.7 prints the old name.
    let kbd = global
        .get("kbdinteractiveauthentication")
        .or_else(|| global.get("challengeresponseauthentication"))
        .map(String::as_str)
        .unwrap_or("");
    if kbd == "yes" {
        Finding::ok("sshd", "KbdInteractiveAuthentication yes")
    } else {
        Finding::error(
            "sshd",
            "KbdInteractiveAuthentication is not yes: the code is asked through keyboard-interactive, which is off",
            "KbdInteractiveAuthentication yes (Debian's sshd_config sets no: a drop-in in sshd_config.d wins, being read first)",
        )
    }
}

/// A method list without keyboard-interactive logs in without the code. `missing`: those
/// lists (from [`lists_without_kbd`]), `None` for `any`.
fn check_methods(missing: Option<&[String]>) -> Finding {
    match missing {
        None => Finding::error(
            "sshd",
            "AuthenticationMethods any: a key alone logs in, without the code",
            SSHD_METHODS,
        ),
        Some(lists) if !lists.is_empty() => Finding::error(
            "sshd",
            format!(
                "AuthenticationMethods: {} never ask{} for the code (no keyboard-interactive)",
                lists
                    .iter()
                    .map(|l| format!("`{l}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if lists.len() == 1 { "s" } else { "" }
            ),
            format!("add keyboard-interactive to every list: {SSHD_METHODS}"),
        ),
        Some(_) => Finding::ok(
            "sshd",
            "AuthenticationMethods: every list ends in keyboard-interactive (the code)",
        ),
    }
}

/// sshd's own password method skips the PAM prompts, unless every list still needs
/// keyboard-interactive after it.
fn check_password_authentication(
    global: &BTreeMap<String, String>,
    kbd_everywhere: bool,
) -> Option<Finding> {
    (setting(global, "passwordauthentication") == "yes" && !kbd_everywhere).then(|| {
        Finding::error(
            "sshd",
            "PasswordAuthentication yes and a method list without keyboard-interactive: a password login skips the code prompt (UsePAM no) or fails and counts a wrong code (UsePAM yes: sshd answers every prompt with the password)",
            format!("PasswordAuthentication no, and {SSHD_METHODS}"),
        )
    })
}

/// PermitRootLogin, from root's point of view (Match blocks applied).
fn check_root_login(root: &BTreeMap<String, String>) -> Finding {
    // sshd -T shows prohibit-password under its old name.
    let permit = match setting(root, "permitrootlogin") {
        "without-password" => "prohibit-password",
        other => other,
    };
    let root_lists = lists_without_kbd(root);
    let kbd_everywhere = matches!(&root_lists, Some(l) if l.is_empty());
    match permit {
        "prohibit-password" if kbd_everywhere => Finding::warning(
            "sshd",
            format!(
                "PermitRootLogin {permit}: sshd refuses keyboard-interactive for root, and every method list needs it, so root can't log in over SSH (not even key + code)"
            ),
            "keep it so and use sudo (its stack asks the code); or `PermitRootLogin yes` for root's key + code (and password + code); or a `Match User root` block with `AuthenticationMethods publickey` as a break-glass key",
        ),
        "prohibit-password" => Finding::ok(
            "sshd",
            format!("PermitRootLogin {permit}: root logs in with a key only"),
        ),
        "no" => Finding::ok("sshd", "PermitRootLogin no: root can't log in over SSH"),
        "" => Finding::ok("sshd", "PermitRootLogin not shown by sshd -T"),
        other => Finding::ok(
            "sshd",
            format!("PermitRootLogin {other}: root logs in like everyone (key + code, or password + code)"),
        ),
    }
}

/// Ways sshd lets someone in without the code: root's own Match, or `Match` blocks in the
/// configuration that set AuthenticationMethods without keyboard-interactive.
pub(super) fn sshd_bypasses(
    global: &BTreeMap<String, String>,
    root: &BTreeMap<String, String>,
    config: Option<&Path>,
) -> Vec<String> {
    let mut out = Vec::new();
    let global_ok = matches!(lists_without_kbd(global), Some(l) if l.is_empty());
    let root_permit = setting(root, "permitrootlogin");
    if global_ok && root_permit != "no" {
        if let Some(lists) = lists_without_kbd(root) {
            if !lists.is_empty() {
                out.push(format!(
                    "sshd lets root in with `{}` (a Match block)",
                    lists.join(" ")
                ));
            }
        }
    }
    let main = config.unwrap_or(Path::new("/etc/ssh/sshd_config"));
    let mut text = String::new();
    read_sshd_config(main, &mut text, 0);
    for m in match_bypasses(&text) {
        let line = format!("sshd `{m}` sets AuthenticationMethods without keyboard-interactive");
        if !out.contains(&line) {
            out.push(line);
        }
    }
    out
}

/// Reads an sshd configuration and the files it `Include`s, in order (a `*` in the last
/// path component is expanded; relative paths are under /etc/ssh).
fn read_sshd_config(path: &Path, out: &mut String, depth: usize) {
    if depth > 8 {
        return;
    }
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words
            .first()
            .is_some_and(|w| w.eq_ignore_ascii_case("include"))
        {
            for pattern in &words[1..] {
                let p = Path::new("/etc/ssh").join(pattern);
                for file in expand_glob(&p) {
                    read_sshd_config(&file, out, depth + 1);
                }
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
}

fn expand_glob(p: &Path) -> Vec<PathBuf> {
    let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
    let Some(name) = name.filter(|n| n.contains('*')) else {
        return vec![p.to_path_buf()];
    };
    let (prefix, suffix) = name.split_once('*').unwrap_or((&name, ""));
    let dir = p.parent().unwrap_or(Path::new("/"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|f| {
            f.file_name().map(|n| n.to_string_lossy()).is_some_and(|n| {
                n.starts_with(prefix)
                    && n.ends_with(suffix)
                    && n.len() >= prefix.len() + suffix.len()
            })
        })
        .collect();
    files.sort();
    files
}

/// `Match` lines whose block sets AuthenticationMethods without keyboard-interactive.
fn match_bypasses(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        let Some(key) = words.next() else { continue };
        let rest: Vec<&str> = words.collect();
        if key.eq_ignore_ascii_case("match") {
            current = Some(format!("Match {}", rest.join(" ")));
        } else if key.eq_ignore_ascii_case("authenticationmethods") {
            if let Some(m) = &current {
                let lists = method_lists(&rest.join(" "));
                let bypass = lists.is_none_or(|ls| ls.iter().any(|l| !l.iter().any(|x| x == KBD)));
                if bypass && !out.contains(m) {
                    out.push(m.clone());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    fn sshd_t(text: &str) -> BTreeMap<String, String> {
        parse_sshd_t(text)
    }

    const SHIPPED_SSHD_T: &str = "port 22\nusepam yes\nkbdinteractiveauthentication yes\npasswordauthentication no\npermitrootlogin no\nauthenticationmethods publickey,keyboard-interactive keyboard-interactive\n";

    fn sshd_status(global: &str, root: &str) -> Vec<(Status, String)> {
        check_sshd(&sshd_t(global), &sshd_t(root))
            .into_iter()
            .map(|f| (f.status, f.message))
            .collect()
    }

    #[test]
    fn sshd_t_output_is_parsed() {
        let m = sshd_t(
            "UsePAM yes\nauthenticationmethods publickey,keyboard-interactive:pam password\n\n",
        );
        assert_eq!(m.get("usepam").map(String::as_str), Some("yes"));
        assert_eq!(
            method_lists(setting(&m, "authenticationmethods")),
            Some(vec![
                vec!["publickey".to_string(), KBD.to_string()],
                vec!["password".to_string()]
            ])
        );
        assert_eq!(method_lists("any"), None);
    }

    #[test]
    fn the_shipped_sshd_settings_pass() {
        let s = sshd_status(SHIPPED_SSHD_T, SHIPPED_SSHD_T);
        assert!(s.iter().all(|(st, _)| *st == Status::Ok), "{s:?}");
    }

    #[test]
    fn sshd_paths_that_skip_the_code_are_errors() {
        let broken = SHIPPED_SSHD_T
            .replace("passwordauthentication no", "passwordauthentication yes")
            .replace(
                "publickey,keyboard-interactive keyboard-interactive",
                "publickey,keyboard-interactive password",
            );
        let s = sshd_status(&broken, &broken);
        let errs: Vec<&String> = s
            .iter()
            .filter(|(st, _)| *st == Status::Error)
            .map(|(_, m)| m)
            .collect();
        assert_eq!(errs.len(), 2, "{s:?}");
        assert!(errs[0].contains("`password` never asks for the code"));
        assert!(errs[1].contains("PasswordAuthentication yes"));
        let any =
            SHIPPED_SSHD_T.replace("publickey,keyboard-interactive keyboard-interactive", "any");
        assert!(sshd_status(&any, &any)
            .iter()
            .any(|(st, m)| *st == Status::Error && m.contains("a key alone logs in")));
        let nopam = SHIPPED_SSHD_T.replace("usepam yes", "usepam no").replace(
            "kbdinteractiveauthentication yes",
            "kbdinteractiveauthentication no",
        );
        assert_eq!(
            sshd_status(&nopam, &nopam)
                .iter()
                .filter(|(st, _)| *st == Status::Error)
                .count(),
            2
        );
    }

    #[test]
    fn root_under_prohibit_password_cannot_use_keyboard_interactive() {
        let root = SHIPPED_SSHD_T.replace("permitrootlogin no", "permitrootlogin without-password");
        let f = check_root_login(&sshd_t(&root));
        assert_eq!(f.status, Status::Warning);
        let breakglass = root.replace(
            "publickey,keyboard-interactive keyboard-interactive",
            "publickey",
        );
        assert_eq!(check_root_login(&sshd_t(&breakglass)).status, Status::Ok);
        let paths = sshd_bypasses(
            &sshd_t(SHIPPED_SSHD_T),
            &sshd_t(&breakglass),
            Some(Path::new("/nonexistent")),
        );
        assert_eq!(
            paths,
            vec!["sshd lets root in with `publickey` (a Match block)".to_string()]
        );
    }

    #[test]
    fn match_blocks_without_keyboard_interactive_are_break_glass_paths() {
        let text = include_str!("../../../conf/sshd_config.d/twofa.conf");
        assert_eq!(match_bypasses(text), Vec::<String>::new());
        let uncommented = text
            .replace("# Match Group breakglass", "Match Group breakglass")
            .replace(
                "#     AuthenticationMethods publickey",
                "    AuthenticationMethods publickey",
            );
        assert_eq!(
            match_bypasses(&uncommented),
            vec!["Match Group breakglass".to_string()]
        );
    }
}
