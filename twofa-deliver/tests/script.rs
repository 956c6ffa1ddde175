//! The script method: the admin's program gets the TWOFA_* environment, PATH and nothing else,
//! no stdin, no inherited descriptor, and its exit status is the result.

mod common;

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use common::*;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};

/// Held by every test here: a script written by one thread while another forks could still be
/// open for writing in the child ("Text file busy" at exec), and the marker descriptor of
/// `no_descriptor_of_the_caller_reaches_the_script` must not reach other tests' children.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Writes an executable shell script; returns its path.
fn script(dir: &Path, name: &str, body: &str) -> std::io::Result<String> {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n"))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path.display().to_string())
}

fn settings(program: &str) -> String {
    format!("program = \"{program}\"\n")
}

#[test]
fn the_script_gets_the_twofa_environment_and_nothing_else() -> TestResult {
    let _serial = serial();
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("env.txt");
    let stdin_out = dir.path().join("stdin.txt");
    let program = script(
        dir.path(),
        "send.sh",
        &format!(
            "env > '{}'\ncat > '{}'\npwd >> '{}'",
            out.display(),
            stdin_out.display(),
            stdin_out.display()
        ),
    )?;
    let output = deliver_with("script", "+41 79 123 45 67", &settings(&program), |c| {
        c.env("SSH_AUTH_SOCK", "/tmp/leak").current_dir(dir.path());
    })?;
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    let mut env: Vec<String> = std::fs::read_to_string(&out)?
        .lines()
        .map(String::from)
        // Variables the shell itself sets.
        .filter(|l| !l.starts_with("PWD=") && !l.starts_with("OLDPWD=") && !l.starts_with("SHLVL="))
        .collect();
    env.sort();
    assert_eq!(
        env,
        [
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
            format!("TWOFA_CODE={CODE}"),
            "TWOFA_METHOD=script".to_string(),
            "TWOFA_SENDTO=+41 79 123 45 67".to_string(),
            "TWOFA_TTL=300".to_string(),
            "TWOFA_USER=alice".to_string(),
        ]
    );
    // stdin was /dev/null (the settings document is not passed on), working directory /.
    assert_eq!(std::fs::read_to_string(&stdin_out)?, "/\n");
    Ok(())
}

#[test]
fn the_scripts_exit_status_is_the_result() -> TestResult {
    let _serial = serial();
    let dir = tempfile::tempdir()?;
    let program = script(dir.path(), "fail.sh", "echo 'gateway said no' >&2\nexit 7")?;
    let output = deliver("script", "x", &settings(&program))?;
    assert_eq!(output.status.code(), Some(7));
    assert_eq!(stderr(&output), "gateway said no\n");
    Ok(())
}

#[test]
fn a_missing_or_relative_program_is_reported_in_one_line() -> TestResult {
    let _serial = serial();
    let output = deliver("script", "x", &settings("/nonexistent/twofa-sms"))?;
    assert_eq!(output.status.code(), Some(1));
    assert_one_clean_line(&output);
    assert!(stderr(&output).contains("/nonexistent/twofa-sms"));
    let output = deliver("script", "x", &settings("sms.sh"))?;
    assert_eq!(output.status.code(), Some(2));
    assert_one_clean_line(&output);
    Ok(())
}

/// Opens a marker file and clears its close-on-exec flag, as a careless PAM application's
/// descriptor would be; returns the file (keep it alive) and its path.
fn inheritable_marker(dir: &Path) -> std::io::Result<(File, String)> {
    let path = dir.join("inherited-marker");
    let file = File::create(&path)?;
    fcntl(&file, FcntlArg::F_SETFD(FdFlag::empty())).map_err(std::io::Error::from)?;
    Ok((file, path.display().to_string()))
}

#[test]
fn no_descriptor_of_the_caller_reaches_the_script() -> TestResult {
    let _serial = serial();
    let dir = tempfile::tempdir()?;
    let (marker, marker_path) = inheritable_marker(dir.path())?;
    let listing = dir.path().join("fds.txt");
    // The shell's own descriptors (redirections apply to `ls`, not to the shell).
    let program = script(
        dir.path(),
        "fds.sh",
        &format!("ls -l /proc/$$/fd/ > '{}'", listing.display()),
    )?;

    // Control: run directly, the script does see the marker, so the check below can fail.
    let status = Command::new(&program).status()?;
    assert!(status.success());
    let direct = std::fs::read_to_string(&listing)?;
    assert!(direct.contains(&marker_path), "control run: {direct}");

    let output = deliver("script", "x", &settings(&program))?;
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    let through = std::fs::read_to_string(&listing)?;
    assert!(!through.contains(&marker_path), "leaked: {through}");
    assert!(marker.as_raw_fd() > 2);
    Ok(())
}

#[test]
fn usage_errors_exit_2_with_one_line() -> TestResult {
    for args in [&[][..], &["sms"], &["email", "extra"]] {
        let output = Command::new(env!("CARGO_BIN_EXE_twofa-deliver"))
            .args(args)
            .env_clear()
            .output()?;
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert_eq!(stderr(&output).lines().count(), 1);
        assert!(stderr(&output).contains("usage: twofa-deliver email|pushover|script"));
    }
    Ok(())
}

/// Settings with a `destination_pattern`, as pam_twofa writes them for `[delivery.script]`.
fn settings_with_pattern(program: &str, pattern: &str) -> String {
    format!("program = \"{program}\"\ndestination_pattern = '{pattern}'\n")
}

#[test]
fn a_destination_outside_the_pattern_is_refused_and_the_script_never_runs() -> TestResult {
    let _serial = serial();
    let dir = tempfile::tempdir()?;
    let ran = dir.path().join("ran");
    let program = script(dir.path(), "sms.sh", &format!("touch '{}'", ran.display()))?;
    let pattern = r"^\+4178[0-9]{7}$";

    let output = deliver(
        "script",
        "+41791234567",
        &settings_with_pattern(&program, pattern),
    )?;
    assert_eq!(output.status.code(), Some(2), "stderr: {}", stderr(&output));
    assert_one_clean_line(&output);
    assert_eq!(
        stderr(&output),
        "twofa-deliver: destination +41791234567 does not match destination_pattern\n"
    );
    assert!(
        !ran.exists(),
        "the script ran for a destination outside the pattern"
    );

    // Control: a destination inside the pattern reaches the script.
    let output = deliver(
        "script",
        "+41781234567",
        &settings_with_pattern(&program, pattern),
    )?;
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    assert!(ran.exists());
    Ok(())
}

#[test]
fn an_invalid_pattern_refuses_every_send() -> TestResult {
    let _serial = serial();
    let dir = tempfile::tempdir()?;
    let ran = dir.path().join("ran");
    let program = script(dir.path(), "sms.sh", &format!("touch '{}'", ran.display()))?;
    let output = deliver(
        "script",
        "+41781234567",
        &settings_with_pattern(&program, "(+41"),
    )?;
    assert_eq!(output.status.code(), Some(2));
    assert_one_clean_line(&output);
    assert!(
        stderr(&output).contains("`destination_pattern` is not a valid regular expression"),
        "{}",
        stderr(&output)
    );
    assert!(!ran.exists());
    Ok(())
}

#[test]
fn a_pattern_is_a_script_setting_only() -> TestResult {
    let output = deliver(
        "pushover",
        "uQiRzpo4DXghDmr9QzzfQu27cmVRsG",
        "token = \"x\"\ndestination_pattern = \".\"\n",
    )?;
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("unknown setting `destination_pattern`"));
    Ok(())
}
