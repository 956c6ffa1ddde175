//! `twofa-store init` and `check` as an admin runs them: what they print, what they create,
//! and one clear line on stderr with exit status 1 when something is wrong.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use common::{TestEnv, TestResult};

fn run(args: &[&str], settings: &Path) -> Result<Output, Box<dyn std::error::Error>> {
    Ok(Command::new(env!("CARGO_BIN_EXE_twofa-store"))
        .args(args)
        .arg("--settings")
        .arg(settings)
        .output()?)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What `init` says while the state format switch is off.
const FORMAT_1: &str = "state format 1: the fixed failure window of earlier releases; once \
                        every host runs this release, `twofa-enroll store init --state-format 2` \
                        turns on the sliding window\n";

#[test]
fn init_creates_the_key_and_schema_and_a_second_init_has_nothing_to_do() -> TestResult {
    let Some(env) = TestEnv::new("cmd_init")? else {
        return Ok(());
    };
    std::fs::remove_file(&env.key_path)?;
    let first = run(&["init"], &env.settings_path)?;
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    assert_eq!(
        text(&first.stdout),
        format!(
            "created fleet key {}: copy it to every host, root-only, 0600\n\
             created schema version 1\n\
             wrote the fleet key check: hosts with another key will be refused\n{FORMAT_1}",
            env.key_path.display()
        )
    );
    let meta = std::fs::metadata(&env.key_path)?;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let key = std::fs::read_to_string(&env.key_path)?;
    assert_eq!(key.len(), 65);
    assert!(key.ends_with('\n'));
    assert!(key.trim_end().bytes().all(|b| b.is_ascii_hexdigit()));

    let second = run(&["init"], &env.settings_path)?;
    assert_eq!(second.status.code(), Some(0), "{}", text(&second.stderr));
    assert_eq!(
        text(&second.stdout),
        format!("schema is at version 1; nothing to do\n{FORMAT_1}")
    );
    assert_eq!(
        std::fs::read_to_string(&env.key_path)?,
        key,
        "the key is never replaced"
    );

    let check = run(&["check"], &env.settings_path)?;
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stderr));
    assert_eq!(
        text(&check.stdout),
        format!(
            "ok: 127.0.0.1:{}, schema version 1, fleet key matches, state format 1\n",
            env.server.port
        )
    );
    Ok(())
}

#[test]
fn the_state_format_switch_turns_on_once_and_does_not_go_back() -> TestResult {
    let Some(env) = TestEnv::new("cmd_state_format")? else {
        return Ok(());
    };
    env.init()?;
    let on = run(&["init", "--state-format", "2"], &env.settings_path)?;
    assert_eq!(on.status.code(), Some(0), "{}", text(&on.stderr));
    assert_eq!(
        text(&on.stdout),
        "schema is at version 1; nothing to do\n\
         switched the state format from 1 to 2: hosts now write login state in version 2 (a \
         sliding failure window); a host older than this release denies the logins of each \
         account written so (\"version 2 is not known to this twofa\")\n"
    );
    let again = run(&["init", "--state-format=2"], &env.settings_path)?;
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert!(
        text(&again.stdout).ends_with(
            "state format 2: every host must run a release that reads it; nothing to do\n"
        ),
        "{}",
        text(&again.stdout)
    );
    let back = run(&["init", "--state-format", "1"], &env.settings_path)?;
    assert_eq!(back.status.code(), Some(1));
    assert_eq!(
        text(&back.stderr),
        "twofa-store: error: store: the store's state format is already 2; it does not go back \
         to 1 (states written in the newer form stay in it)\n"
    );
    let check = run(&["check"], &env.settings_path)?;
    assert!(
        text(&check.stdout).ends_with("fleet key matches, state format 2\n"),
        "{}",
        text(&check.stdout)
    );
    // A switch set by a newer release: this host says it must be upgraded.
    env.admin()?.execute(
        "UPDATE twofa_meta SET value = '3' WHERE key = 'state_format'",
        &[],
    )?;
    let newer = run(&["check"], &env.settings_path)?;
    assert_eq!(newer.status.code(), Some(1));
    assert_eq!(
        text(&newer.stderr),
        "twofa-store: error: store: the store's state format is version 3, newer than this \
         twofa (it writes up to 2): upgrade twofa on this host\n"
    );
    Ok(())
}

#[test]
fn a_host_with_another_key_is_refused_by_init_and_check() -> TestResult {
    let Some(env) = TestEnv::new("cmd_wrong_key")? else {
        return Ok(());
    };
    let first = run(&["init"], &env.settings_path)?;
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    env.dir
        .write("fleet.key", &format!("{}\n", "5a".repeat(32)), 0o600)?;
    for word in ["init", "check"] {
        let out = run(&[word], &env.settings_path)?;
        assert_eq!(out.status.code(), Some(1), "{word}");
        assert_eq!(text(&out.stdout), "", "{word}");
        let err = text(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{word}: {err}");
        assert!(
            err.starts_with("twofa-store: error: store: this host's fleet key is not the store's"),
            "{word}: {err}"
        );
    }
    Ok(())
}

#[test]
fn init_on_a_host_without_the_key_creates_none_for_an_existing_store() -> TestResult {
    let Some(env) = TestEnv::new("cmd_no_key")? else {
        return Ok(());
    };
    let first = run(&["init"], &env.settings_path)?;
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    std::fs::remove_file(&env.key_path)?;
    let out = run(&["init"], &env.settings_path)?;
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("the store already has a fleet key"), "{err}");
    assert!(
        !env.key_path.exists(),
        "a key that can't open the store was left behind"
    );
    let check = run(&["check"], &env.settings_path)?;
    assert_eq!(check.status.code(), Some(1));
    assert!(
        text(&check.stderr).contains("no such file: copy the fleet key"),
        "{}",
        text(&check.stderr)
    );
    Ok(())
}

#[test]
fn an_unknown_settings_key_is_an_error_naming_file_and_line() -> TestResult {
    let Some(env) = TestEnv::new("cmd_bad_settings")? else {
        return Ok(());
    };
    let text_in = std::fs::read_to_string(&env.settings_path)?.replace("tls =", "tsl = 1\ntls =");
    env.dir.write("store.toml", &text_in, 0o600)?;
    for word in ["init", "check"] {
        let out = run(&[word], &env.settings_path)?;
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            text(&out.stderr),
            format!(
                "twofa-store: error: {}:5: key `postgres.tsl`: unknown key\n",
                env.settings_path.display()
            )
        );
    }
    Ok(())
}

#[test]
fn settings_others_can_read_are_refused() -> TestResult {
    let Some(env) = TestEnv::new("cmd_mode")? else {
        return Ok(());
    };
    std::fs::set_permissions(&env.settings_path, std::fs::Permissions::from_mode(0o644))?;
    let out = run(&["check"], &env.settings_path)?;
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("store.toml: mode 0644 lets others read or write it"),
        "{err}"
    );
    assert!(!err.contains(common::STORE_PASSWORD));
    Ok(())
}

#[test]
fn a_usage_error_exits_2_with_the_usage_line() -> TestResult {
    let out = Command::new(env!("CARGO_BIN_EXE_twofa-store"))
        .arg("migrate")
        .output()?;
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "twofa-store: unknown argument \"migrate\"\n\
         usage: twofa-store serve|init|check [--settings FILE] [--state-format 2]\n"
    );
    assert_eq!(text(&out.stdout), "");
    Ok(())
}
