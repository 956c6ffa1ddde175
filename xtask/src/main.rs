//! Repository chores, run with `cargo run -p xtask -- COMMAND`.
//!
//! - `gen`: writes the man pages and completions: `docs/man/twofa-enroll.1`,
//!   `completions/twofa-enroll.bash` and `completions/_twofa-enroll` from the clap definition
//!   (through twofa-enroll's own test, `src/reference.rs`, with `TWOFA_GEN_DIR` set), and
//!   `docs/man/pam_twofa.8` and `docs/man/twofa.toml.5` from their markdown sources.
//! - `check`: generates all of it into a temporary directory and fails if anything differs
//!   from what is committed, or if a policy key or module argument is missing from the pages.
//!
//! Plain `cargo test` runs the same checks (the tests below, and twofa-enroll's), so CI needs
//! no extra step.
#![forbid(unsafe_code)]

mod coverage;
mod roff;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The pages written from markdown: (source, output), below the repository.
const MARKDOWN_PAGES: &[(&str, &str)] = &[
    ("docs/man/pam_twofa.8.md", "docs/man/pam_twofa.8"),
    ("docs/man/twofa.toml.5.md", "docs/man/twofa.toml.5"),
];

/// The files twofa-enroll's reference test writes.
const CLAP_FILES: &[&str] = &[
    "docs/man/twofa-enroll.1",
    "completions/twofa-enroll.bash",
    "completions/_twofa-enroll",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Renders the markdown pages from `root`'s sources: (output path, contents).
fn markdown_pages(root: &Path) -> Result<Vec<(&'static str, String)>, String> {
    MARKDOWN_PAGES
        .iter()
        .map(|(src, out)| {
            let text = read(&root.join(src))?;
            let page = roff::render(&text, env!("CARGO_PKG_VERSION"))
                .map_err(|e| format!("{src}: {e}"))?;
            Ok((*out, page))
        })
        .collect()
}

/// What the pages leave out, from `root`'s sources.
fn coverage_problems(root: &Path) -> Result<Vec<String>, String> {
    Ok(coverage::problems(
        &read(&root.join("twofa-core/src/config.rs"))?,
        &read(&root.join("twofa-core/src/args.rs"))?,
        &read(&root.join("docs/man/twofa.toml.5.md"))?,
        &read(&root.join("docs/man/pam_twofa.8.md"))?,
        &twofa_core::delivery::keys(),
    ))
}

/// Writes every generated file below `dir`.
fn generate(dir: &Path) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(repo())
        .args([
            "test",
            "--quiet",
            "-p",
            "twofa-enroll",
            "--bin",
            "twofa-enroll",
            "reference::",
        ])
        .env("TWOFA_GEN_DIR", dir)
        .output()
        .map_err(|e| format!("running cargo: {e}"))?;
    if !status.status.success() {
        return Err(format!(
            "cargo test -p twofa-enroll reference:: failed ({}):\n{}{}",
            status.status,
            String::from_utf8_lossy(&status.stdout),
            String::from_utf8_lossy(&status.stderr)
        ));
    }
    for (out, page) in markdown_pages(&repo())? {
        let target = dir.join(out);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&target, page).map_err(|e| format!("{}: {e}", target.display()))?;
    }
    Ok(())
}

fn gen() -> Result<(), String> {
    generate(&repo())?;
    for p in coverage_problems(&repo())? {
        eprintln!("warning: {p}");
    }
    println!(
        "wrote {} and {}",
        CLAP_FILES.join(", "),
        MARKDOWN_PAGES
            .iter()
            .map(|p| p.1)
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

fn check() -> Result<(), String> {
    let tmp = std::env::temp_dir().join(format!("twofa-xtask-{}", std::process::id()));
    let result = generate(&tmp).and_then(|()| {
        let mut problems = coverage_problems(&repo())?;
        for file in CLAP_FILES.iter().chain(MARKDOWN_PAGES.iter().map(|p| &p.1)) {
            let fresh = std::fs::read(tmp.join(file)).ok();
            if fresh.is_none() || std::fs::read(repo().join(file)).ok() != fresh {
                problems.push(format!("{file}: differs from what its source generates"));
            }
        }
        Ok(problems)
    });
    let _ = std::fs::remove_dir_all(&tmp);
    let problems = result?;
    if problems.is_empty() {
        println!("man pages and completions are up to date");
        return Ok(());
    }
    for p in &problems {
        eprintln!("error: {p}");
    }
    Err("run `cargo run -p xtask -- gen`, document what is missing, and commit the result".into())
}

fn main() -> ExitCode {
    let command = std::env::args().nth(1);
    let result = match command.as_deref() {
        Some("gen") => gen(),
        Some("check") => check(),
        _ => {
            eprintln!("usage: cargo run -p xtask -- gen|check");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_man_pages_match_their_markdown_sources() -> Result<(), String> {
        for (out, page) in markdown_pages(&repo())? {
            let committed = read(&repo().join(out))?;
            assert!(
                committed == page,
                "{out} differs from its markdown source: run `cargo run -p xtask -- gen` and commit the result"
            );
        }
        Ok(())
    }

    #[test]
    fn every_policy_key_and_module_argument_is_documented() -> Result<(), String> {
        let problems = coverage_problems(&repo())?;
        assert!(problems.is_empty(), "{}", problems.join("\n"));
        Ok(())
    }
}
