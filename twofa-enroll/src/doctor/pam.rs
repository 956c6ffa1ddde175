//! PAM service files: the `auth` lines of those that load pam_twofa, with `@include`s and
//! `auth include|substack` expanded as libpam reads them, and the modules they name.

use std::path::{Path, PathBuf};

use twofa_core::args::{self, Mode};

use super::Finding;

/// One `auth` line, after `@include`s are expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PamLine {
    /// The file it was read from (a service name in the PAM directory).
    pub(super) file: String,
    /// Its line number there.
    pub(super) lineno: usize,
    /// `required`, `requisite`, `sufficient`, `optional`, or the `[...]` text.
    pub(super) control: String,
    /// The module as written (a name or a path).
    pub(super) module: String,
    /// The module's arguments.
    pub(super) args: Vec<String>,
    /// `-auth`: a missing module is silently skipped.
    pub(super) optional_module: bool,
}

impl PamLine {
    pub(super) fn base(&self) -> &str {
        self.module.rsplit('/').next().unwrap_or(&self.module)
    }

    /// pam_twofa, under its installed name or a build's (`libpam_twofa.so`).
    pub(super) fn is_twofa(&self) -> bool {
        let b = self.base();
        b.ends_with(".so") && b.contains("pam_twofa")
    }

    pub(super) fn twofa_mode(&self) -> Option<Result<Mode, String>> {
        self.is_twofa().then(|| {
            args::parse(self.args.iter().map(String::as_str))
                .map(|a| a.mode)
                .map_err(|e| e.to_string())
        })
    }

    pub(super) fn is(&self, mode: Mode) -> bool {
        matches!(self.twofa_mode(), Some(Ok(m)) if m == mode)
    }

    pub(super) fn is_module(&self, name: &str) -> bool {
        self.base() == format!("{name}.so") || self.base() == name
    }

    /// `[...]` actions: value=action pairs (empty for a plain word).
    pub(super) fn actions(&self) -> Vec<(String, String)> {
        let Some(inner) = self
            .control
            .strip_prefix('[')
            .and_then(|c| c.strip_suffix(']'))
        else {
            return Vec::new();
        };
        inner
            .split_whitespace()
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_ascii_lowercase()))
            .collect()
    }

    pub(super) fn action(&self, value: &str) -> Option<String> {
        self.actions()
            .into_iter()
            .find(|(k, _)| k == value)
            .map(|(_, v)| v)
    }

    /// The line `success=N` lands on (index into the stack), if it is a jump.
    pub(super) fn success_jump(&self, index: usize) -> Option<usize> {
        self.action("success")
            .and_then(|v| v.parse::<usize>().ok())
            .map(|n| index + 1 + n)
    }

    pub(super) fn at(&self) -> String {
        format!("{}:{}", self.file, self.lineno)
    }
}

/// A service file that loads pam_twofa, with its auth lines.
#[derive(Debug)]
pub(super) struct Stack {
    /// The service: the file's name.
    pub(super) name: String,
    /// Its auth lines, includes expanded.
    pub(super) lines: Vec<PamLine>,
    /// The first `config=` of its pam_twofa lines.
    pub(super) config_arg: Option<PathBuf>,
    /// Unreadable includes and the like.
    problems: Vec<Finding>,
}

impl Stack {
    /// Whether one of its auth lines loads pam_twofa (not only a comment naming it).
    pub(super) fn loads_twofa(&self) -> bool {
        self.lines.iter().any(PamLine::is_twofa)
    }
}

/// The service files of `dir` that load pam_twofa, by name.
pub(super) fn read_stacks(dir: &Path) -> Vec<Stack> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            !n.starts_with('.')
                && !n.ends_with('~')
                && !n.ends_with(".dpkg-old")
                && !n.ends_with(".dpkg-dist")
        })
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let Ok(text) = std::fs::read_to_string(dir.join(&name)) else {
            continue;
        };
        if !text.contains("pam_twofa") {
            continue;
        }
        let mut problems = Vec::new();
        let read = |n: &str| std::fs::read_to_string(dir.join(n)).ok();
        let lines = auth_lines(&name, &text, &read, &mut problems, 0);
        let config_arg = lines.iter().filter(|l| l.is_twofa()).find_map(|l| {
            l.args
                .iter()
                .find_map(|a| a.strip_prefix("config=").map(PathBuf::from))
        });
        out.push(Stack {
            name,
            lines,
            config_arg,
            problems,
        });
    }
    out
}

/// The `auth` lines of a service file, `@include`s and `auth include|substack` expanded from
/// `read` (files of the same directory).
pub(super) fn auth_lines(
    file: &str,
    text: &str,
    read: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Finding>,
    depth: usize,
) -> Vec<PamLine> {
    let mut out = Vec::new();
    let check = format!("pam {file}");
    // Backslash-newline continues a line, as libpam reads it.
    let joined = text.replace("\\\n", " ");
    for (i, raw) in joined.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        let words = tokens(line);
        let Some(first) = words.first() else { continue };
        let include = if first == "@include" {
            words.get(1).cloned()
        } else if (first == "auth" || first == "-auth")
            && matches!(
                words.get(1).map(String::as_str),
                Some("include" | "substack")
            )
        {
            words.get(2).cloned()
        } else {
            None
        };
        if let Some(name) = include {
            if depth > 8 {
                continue;
            }
            match read(&name) {
                Some(t) => out.extend(auth_lines(&name, &t, read, problems, depth + 1)),
                None => problems.push(Finding::error(
                    &check,
                    format!("{file}:{}: includes `{name}`, which can't be read", i + 1),
                    format!("create {name} in the PAM directory or remove the include"),
                )),
            }
            continue;
        }
        if first != "auth" && first != "-auth" {
            continue;
        }
        if words.len() < 3 {
            continue;
        }
        out.push(PamLine {
            file: file.to_string(),
            lineno: i + 1,
            control: words[1].clone(),
            module: words[2].clone(),
            args: words[3..].to_vec(),
            optional_module: first == "-auth",
        });
    }
    out
}

/// Words of a PAM line; a `[...]` control (which may contain spaces) is one word.
fn tokens(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line.trim();
    while !rest.is_empty() {
        if rest.starts_with('[') && out.len() == 1 {
            let end = rest.find(']').map_or(rest.len(), |e| e + 1);
            out.push(rest[..end].split_whitespace().collect::<Vec<_>>().join(" "));
            rest = rest[end..].trim_start();
            continue;
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        out.push(rest[..end].to_string());
        rest = rest[end..].trim_start();
    }
    out
}

/// Every stack's findings: its unreadable includes, its missing modules, then what `rules`
/// finds in its lines (`stack::check_stack`: this module reads files, it does not judge them).
pub(super) fn check_stacks(
    stacks: &[Stack],
    pam_dir: &Path,
    rules: impl Fn(&Stack) -> Vec<Finding>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    if stacks.is_empty() {
        findings.push(Finding::warning(
            "pam",
            format!(
                "no PAM service in {} loads pam_twofa: no login asks for a code",
                pam_dir.display()
            ),
            "add the auth lines of conf/pam.d/sshd and conf/pam.d/sudo to /etc/pam.d/sshd and /etc/pam.d/sudo",
        ));
    }
    let dirs = module_dirs();
    for stack in stacks {
        findings.extend(stack.problems.iter().cloned());
        findings.extend(check_module_paths(&stack.name, &stack.lines, |m| {
            module_exists(m, &dirs)
        }));
        findings.extend(rules(stack));
    }
    findings
}

/// Directories where libpam finds modules named without a path.
fn module_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![
        PathBuf::from("/lib/security"),
        PathBuf::from("/usr/lib/security"),
    ];
    for base in ["/lib", "/usr/lib", "/lib64", "/usr/lib64"] {
        for e in std::fs::read_dir(base).into_iter().flatten().flatten() {
            let d = e.path().join("security");
            if d.is_dir() && !dirs.contains(&d) {
                dirs.push(d);
            }
        }
        let d = Path::new(base).join("security");
        if d.is_dir() && !dirs.contains(&d) {
            dirs.push(d);
        }
    }
    dirs
}

fn module_exists(module: &str, dirs: &[PathBuf]) -> bool {
    if module.starts_with('/') {
        Path::new(module).exists()
    } else {
        dirs.iter().any(|d| d.join(module).exists())
    }
}

/// Modules that don't exist: libpam fails every login through the service.
fn check_module_paths(
    service: &str,
    lines: &[PamLine],
    exists: impl Fn(&str) -> bool,
) -> Vec<Finding> {
    lines
        .iter()
        .filter(|l| !l.optional_module && !exists(&l.module))
        .map(|l| {
            Finding::error(
                &format!("pam {service}"),
                format!(
                    "{}: module {} not found: every login through {service} fails",
                    l.at(),
                    l.module
                ),
                if l.is_twofa() {
                    "install it (packaging/install.sh) or correct the path".to_string()
                } else {
                    "install the module or correct the path".to_string()
                },
            )
        })
        .collect()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    const COMMON_AUTH: &str = "auth [success=1 default=ignore] pam_unix.so nullok\nauth requisite pam_deny.so\nauth required pam_permit.so\n";

    /// The auth lines of `text`, read as service `svc` next to a Debian-like `common-auth`.
    pub(in crate::doctor) fn lines(text: &str) -> Vec<PamLine> {
        let read = |n: &str| (n == "common-auth").then(|| COMMON_AUTH.to_string());
        auth_lines("svc", text, &read, &mut Vec::new(), 0)
    }

    #[test]
    fn include_lines_are_expanded_and_comments_dropped() {
        let l = lines(
            "# x\nauth required pam_env.so\n@include common-auth\naccount required pam_unix.so\n",
        );
        let mods: Vec<&str> = l.iter().map(|l| l.module.as_str()).collect();
        assert_eq!(
            mods,
            ["pam_env.so", "pam_unix.so", "pam_deny.so", "pam_permit.so"]
        );
        assert_eq!(l[1].file, "common-auth");
        assert_eq!(l[1].control, "[success=1 default=ignore]");
    }

    #[test]
    fn missing_modules_are_found() {
        let l = lines("auth required /nonexistent/pam_twofa.so\n-auth optional pam_gone.so\nauth required pam_unix.so\n");
        let f = check_module_paths("svc", &l, |m| m == "pam_unix.so");
        assert_eq!(f.len(), 1);
        assert!(f[0].message.contains("/nonexistent/pam_twofa.so not found"));
    }
}
