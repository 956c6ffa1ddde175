//! Are the hand-written man pages complete? Every key that twofa-core/src/config.rs reads must
//! be in twofa.toml.5.md, every module argument of twofa-core/src/args.rs in pam_twofa.8.md,
//! and no key may be documented that config.rs doesn't read.
//!
//! Found by scanning the sources' string literals (before their `#[cfg(test)]` module), so a
//! new key or argument fails `cargo test` until its page says what it does.

/// Calls on a table that name a key without reading it.
const NOT_READERS: &[&str] = &["error", "not_supported_yet"];

fn code_part(source: &str) -> &str {
    source.split("#[cfg(test)]").next().unwrap_or(source)
}

fn is_key(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The identifier that ends just before `end` in `code`.
fn ident_before(code: &str, end: usize) -> &str {
    let start = code[..end]
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .map_or(0, |i| i + 1);
    &code[start..end]
}

/// Keys config.rs reads, as the page names them: `version`, `[totp]`, `totp.digits`...
///
/// Tables are the literals of `root.table("NAME")`; a key is the literal of any call
/// `TABLE.reader("KEY"` on `root` or a table (but `error` and `not_supported_yet`), or of a
/// `("KEY", &mut config.FIELD)` pair read in a loop, under the last table opened before it.
pub fn config_keys(config_rs: &str) -> Vec<String> {
    let code = code_part(config_rs);
    let mut out: Vec<String> = Vec::new();
    let mut push = |name: String| {
        if !out.contains(&name) {
            out.push(name);
        }
    };
    let tables: Vec<&str> = code
        .match_indices("root.table(\"")
        .filter_map(|(at, call)| {
            let rest = &code[at + call.len()..];
            rest.find('"').map(|end| &rest[..end])
        })
        .collect();
    let mut current_table: Option<&str> = None;
    for (at, _) in code.match_indices("(\"") {
        let rest = &code[at + 2..];
        let Some(end) = rest.find('"') else { continue };
        let key = &rest[..end];
        if !is_key(key) {
            continue;
        }
        let after = &rest[end + 1..];
        let method = ident_before(code, at);
        let receiver = code[..at]
            .strip_suffix(method)
            .and_then(|r| r.strip_suffix('.'))
            .map(|r| ident_before(r, r.len()));
        match receiver {
            Some("root") if method == "table" => {
                current_table = Some(tables.iter().copied().find(|t| *t == key).unwrap_or(key));
                push(format!("[{key}]"));
            }
            Some("root") if !NOT_READERS.contains(&method) => push(key.to_string()),
            Some(t) if tables.contains(&t) && !NOT_READERS.contains(&method) => {
                push(format!("{t}.{key}"));
            }
            _ if method.is_empty() && after.starts_with(", &mut config.") => {
                if let Some(t) = current_table {
                    push(format!("{t}.{key}"));
                }
            }
            _ => {}
        }
    }
    out
}

/// Module arguments args.rs accepts: its literals that look like one (`debug`, `config=`).
/// Comment lines are dropped first, so a quote in a comment can't shift the pairing.
pub fn module_args(args_rs: &str) -> Vec<String> {
    let code: String = code_part(args_rs)
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut out = Vec::new();
    for (i, piece) in code.split('"').enumerate() {
        let plausible = i % 2 == 1
            && !piece.is_empty()
            && piece
                .trim_end_matches('=')
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_')
            && piece.matches('=').count() <= 1;
        if plausible && !out.iter().any(|o| o == piece) {
            out.push(piece.to_string());
        }
    }
    out
}

/// What's wrong with the pages, one line each (empty: complete).
/// `extra_keys`: keys read outside config.rs, named by their reader (`[delivery]`'s come from
/// `twofa_core::delivery::keys`, built from the tables its reader uses).
pub fn problems(
    config_rs: &str,
    args_rs: &str,
    toml_page: &str,
    pam_page: &str,
    extra_keys: &[String],
) -> Vec<String> {
    let mut out = Vec::new();
    let mut keys = config_keys(config_rs);
    keys.extend(extra_keys.iter().cloned());
    for key in &keys {
        let needle = if key.starts_with('[') {
            format!("## {key}")
        } else {
            format!("`{key}`")
        };
        if !toml_page.contains(&needle) {
            out.push(format!(
                "docs/man/twofa.toml.5.md: key `{key}` (read by twofa-core/src/config.rs) is not documented ({needle})"
            ));
        }
    }
    // Definition terms that name a `table.key`: each must be a key config.rs reads.
    let page: Vec<&str> = toml_page.lines().collect();
    for pair in page.windows(2) {
        if !pair[1].starts_with(":   ") {
            continue;
        }
        let Some(term) = pair[0].strip_prefix('`').and_then(|t| t.split('`').next()) else {
            continue;
        };
        if term.contains('.') && term.split('.').all(is_key) && !keys.iter().any(|k| k == term) {
            out.push(format!(
                "docs/man/twofa.toml.5.md: documents `{term}`, which twofa-core/src/config.rs does not read"
            ));
        }
    }
    for arg in module_args(args_rs) {
        let needle = if arg.ends_with('=') {
            format!("`{arg}")
        } else {
            format!("`{arg}`")
        };
        if !pam_page.contains(&needle) {
            out.push(format!(
                "docs/man/pam_twofa.8.md: module argument `{arg}` (accepted by twofa-core/src/args.rs) is not documented"
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_with_their_table() {
        let src = "fn f() { root.integer(\"version\")?; if let Some(mut totp) = root.table(\"totp\")? { totp.unsigned(\"digits\", 6, 8)?; } }\n#[cfg(test)]\nmod t { x.string(\"nope\") }";
        assert_eq!(config_keys(src), ["version", "[totp]", "totp.digits"]);
        let looped = "let p = root.table(\"policy\"); for (key, list) in [(\"exempt_groups\", &mut config.exempt_groups)] { policy.strings(key)?; policy.error(\"nope\", \"x\"); }";
        assert_eq!(config_keys(looped), ["[policy]", "policy.exempt_groups"]);
    }

    #[test]
    fn module_arguments_are_found() {
        let src = "match w { \"debug\" => 1, \"concat\" => 2, w if w.starts_with(\"config=\") => 3, _ => format!(\"unknown argument `{w}`\") }\n#[cfg(test)]\n\"test_only\"";
        assert_eq!(module_args(src), ["debug", "concat", "config="]);
    }

    #[test]
    fn missing_and_stale_documentation_is_reported() {
        let config = "root.integer(\"version\"); root.table(\"totp\"); totp.unsigned(\"digits\")";
        let page = "`version`\n:   x\n## [totp]\n`totp.colour`\n:   y\n`/etc/x.toml`\n:   z\n";
        let p = problems(config, "\"debug\"", page, "", &[]);
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].contains("`totp.digits`"));
        assert!(p[1].contains("documents `totp.colour`"));
        assert!(p[2].contains("`debug`"));
    }
}
