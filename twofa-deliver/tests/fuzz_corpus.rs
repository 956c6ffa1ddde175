//! Replays the `smtp_reply` fuzz corpus on stable: every file of `fuzz/corpus/smtp_reply/`
//! (the seeds; must exist and not be empty) and of `fuzz/regressions/smtp_reply/` (inputs that
//! found a bug) goes through the same checks as the cargo-fuzz target (`fuzz/checks_smtp.rs`,
//! shared), so `cargo test` keeps every fixed bug fixed, without nightly. twofa-core's
//! `tests/fuzz_corpus.rs` does the same for the other targets.

/// The reply reader the client runs, compiled in the way the fuzz target does (reply.rs says
/// why it is not reached through the library).
#[allow(dead_code)]
#[path = "../src/reply.rs"]
mod reply;

#[path = "../../fuzz/checks_smtp.rs"]
mod checks_smtp;

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files of `dir`, sorted; an error if it is missing or empty, so the replay can't
/// silently test nothing.
fn inputs(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(format!("{}: no inputs", dir.display()));
    }
    Ok(files)
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

#[test]
fn smtp_reply_corpus_and_regressions_pass_the_fuzz_checks() -> Result<(), String> {
    let [(target, check)] = checks_smtp::TARGETS else {
        return Err("checks_smtp.rs has one target".into());
    };
    let mut files = inputs(&fuzz_dir().join("corpus").join(target))?;
    let regressions = fuzz_dir().join("regressions").join(target);
    if regressions.exists() {
        files.extend(inputs(&regressions)?);
    }
    for file in files {
        let data = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        // A failing check panics: name the input first, so the failure says which one.
        eprintln!("replaying {}", file.display());
        check(&data);
    }
    Ok(())
}

#[test]
fn smtp_reply_is_a_cargo_fuzz_target_that_tests_fuzz_sh_runs() -> Result<(), String> {
    let manifest = read(&fuzz_dir().join("Cargo.toml"))?;
    assert!(manifest.contains("path = \"fuzz_targets/smtp_reply.rs\""));
    let script = read(&fuzz_dir().join("../tests/fuzz.sh"))?;
    let all = script
        .lines()
        .find_map(|l| l.strip_prefix("all=("))
        .ok_or("tests/fuzz.sh has no all=(...) list")?;
    assert!(
        all.trim_end_matches(')')
            .split(' ')
            .any(|t| t == "smtp_reply"),
        "tests/fuzz.sh: all=({all}"
    );
    Ok(())
}
