//! Replays the fuzz corpus on stable: every file of `fuzz/corpus/<target>/` (the seeds; must
//! exist and not be empty) and of `fuzz/regressions/<target>/` (inputs that found a bug, where
//! a target has any) goes through the same checks as the cargo-fuzz target (`fuzz/checks.rs`,
//! shared), so `cargo test` keeps every fixed bug fixed, without nightly.

#[path = "../../fuzz/checks.rs"]
mod checks;

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

fn replay(target: &str) -> Result<(), String> {
    let check = checks::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, check)| *check)
        .ok_or_else(|| format!("no checks for target {target}"))?;
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
fn every_fuzz_target_is_replayed() -> Result<(), String> {
    let names: Vec<&str> = checks::TARGETS.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        names,
        [
            "config",
            "enrollment",
            "state",
            "otpauth_uri",
            "concat_split",
            "store_wire",
            "google_authenticator"
        ]
    );
    // ... and each is a cargo-fuzz target of fuzz/Cargo.toml.
    let manifest = fuzz_dir().join("Cargo.toml");
    let manifest =
        std::fs::read_to_string(&manifest).map_err(|e| format!("{}: {e}", manifest.display()))?;
    for name in names {
        assert!(
            manifest.contains(&format!("path = \"fuzz_targets/{name}.rs\"")),
            "fuzz/Cargo.toml has no target {name}"
        );
    }
    Ok(())
}

#[test]
fn a_missing_or_empty_corpus_fails() -> Result<(), String> {
    assert!(inputs(&fuzz_dir().join("corpus").join("no-such-target")).is_err());
    let empty = std::env::temp_dir().join(format!("twofa-empty-corpus-{}", std::process::id()));
    std::fs::create_dir_all(&empty).map_err(|e| e.to_string())?;
    let result = inputs(&empty);
    std::fs::remove_dir(&empty).map_err(|e| e.to_string())?;
    assert!(result.is_err());
    Ok(())
}

#[test]
fn config_corpus() -> Result<(), String> {
    replay("config")
}

#[test]
fn enrollment_corpus() -> Result<(), String> {
    replay("enrollment")
}

#[test]
fn state_corpus() -> Result<(), String> {
    replay("state")
}

#[test]
fn otpauth_uri_corpus() -> Result<(), String> {
    replay("otpauth_uri")
}

#[test]
fn concat_split_corpus() -> Result<(), String> {
    replay("concat_split")
}

#[test]
fn store_wire_corpus() -> Result<(), String> {
    replay("store_wire")
}

#[test]
fn google_authenticator_corpus() -> Result<(), String> {
    replay("google_authenticator")
}
