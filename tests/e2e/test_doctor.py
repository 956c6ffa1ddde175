"""`twofa-enroll doctor` against private setups: a PAM directory and an sshd configuration
built from the shipped conf/ (good), then broken on purpose, one thing at a time.

Nothing outside the test's /tmp/twofa-e2e-XXXXXX directory is written: doctor reads the PAM
directory given with --pam-dir and runs `sshd -T -f` on the given configuration.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import REPO

DROPIN = REPO / "conf" / "sshd_config.d" / "twofa.conf"
SSHD = Path("/usr/sbin/sshd")

# Debian 12's stock sshd_config after its Include (as in daemons.py).
DEBIAN_SSHD = "KbdInteractiveAuthentication no\nUsePAM yes\nX11Forwarding yes\nPrintMotd no\n"


class Setup:
    """A private PAM directory and sshd configuration for one test."""

    def __init__(self, twofa) -> None:
        self.twofa = twofa
        self.pam_dir = twofa.root / "pam.d"
        self.pam_dir.mkdir(mode=0o755)
        self.sshd_config = twofa.root / "sshd_config"
        self.host_key = twofa.root / "ssh_host_ed25519_key"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.host_key)],
            check=True, timeout=30, stdout=subprocess.DEVNULL,
        )

    def service(self, name: str, text: str) -> None:
        (self.pam_dir / name).write_text(text)

    def good(self) -> "Setup":
        """The shipped stacks for sshd and sudo, and sshd with the shipped drop-in."""
        self.twofa.write_config()
        self.service("sshd", self.twofa.service_text("sshd"))
        self.service("sudo", self.twofa.service_text("sudo"))
        self.write_sshd(f"Include {DROPIN}\n")
        return self

    def write_sshd(self, first: str, extra: str = "") -> None:
        self.sshd_config.write_text(
            first
            + f"HostKey {self.host_key}\n"
            + "PermitRootLogin no\n"
            + DEBIAN_SSHD
            + extra  # last: a Match block runs to the end of the file
        )

    def doctor(self, *args: str, json_out: bool = True):
        argv = ["doctor", "--pam-dir", str(self.pam_dir), "--sshd-config", str(self.sshd_config)]
        if json_out:
            argv.append("--json")
        proc = self.twofa.cli(*argv, *args, check=False)
        assert proc.returncode in (0, 1), proc
        if not json_out:
            return proc, None
        findings = json.loads(proc.stdout)
        for f in findings:
            assert set(f) == {"check", "status", "message", "fix"}, f
            assert f["status"] in ("ok", "warning", "error"), f
            assert f["status"] == "ok" or f["fix"], f
        return proc, findings


def errors(findings) -> list[str]:
    return [f"{f['check']}: {f['message']}" for f in findings if f["status"] == "error"]


def find(findings, check: str, needle: str):
    hits = [f for f in findings if f["check"] == check and needle in f["message"]]
    assert hits, f"no {check!r} finding with {needle!r} in:\n" + json.dumps(findings, indent=1)
    return hits[0]


@pytest.fixture
def setup(twofa):
    if not SSHD.exists():
        pytest.skip("sshd is not installed")
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    return Setup(twofa)


def test_the_shipped_setup_with_an_enrolled_user_is_healthy(setup, make_user):
    setup.good()
    setup.twofa.enroll(make_user().name)
    proc, findings = setup.doctor()
    assert proc.returncode == 0, errors(findings)
    assert errors(findings) == []
    find(findings, "sshd", "UsePAM yes")
    find(findings, "sshd", "every list ends in keyboard-interactive")
    find(findings, "pam sshd", "pubkey_done, password_failed, code")
    find(findings, "pam sudo", "password_failed, code")
    find(findings, "config", "valid")
    find(findings, "storage", "mode 0700")
    # No console login in this PAM directory and no Match block: no way in without a code.
    assert find(findings, "break-glass", "no way in")["status"] == "warning"


def test_an_orphaned_enrollment_is_reported_with_its_fix_and_the_inheritance_risk(setup, make_user):
    setup.good()
    alive, gone = make_user(), make_user()
    setup.twofa.enroll(alive.name)
    setup.twofa.enroll(gone.name)
    subprocess.run(["userdel", "-r", "-f", gone.name], check=True, capture_output=True, timeout=60)
    _, findings = setup.doctor()
    f = find(findings, "enrollments", f"{gone.name} is enrolled, but no account of that name exists")
    assert f["status"] == "warning"
    assert f"a new account created with the name {gone.name} would inherit this enrollment" in f["message"]
    assert f["fix"].startswith(f"twofa-enroll disable --orphan {gone.name}"), f
    assert not [x for x in findings if x["check"] == "enrollments" and alive.name in x["message"]]
    # Once removed, doctor is content.
    setup.twofa.cli("disable", "--orphan", gone.name)
    _, findings = setup.doctor()
    assert find(findings, "enrollments", "1 enrolled, each with an account on this host")["status"] == "ok"


def test_human_output_shows_each_finding_and_its_fix(setup):
    setup.good()
    proc, _ = setup.doctor(json_out=False)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert "ok      sshd: UsePAM yes" in lines, proc.stdout
    i = next(i for i, l in enumerate(lines) if l.startswith("error   break-glass: nobody can log in"))
    assert lines[i + 1].startswith("        fix: enroll an admin first"), proc.stdout
    assert "\x1b[" not in proc.stdout  # no colour when stdout is not a terminal
    assert proc.stderr.startswith("error: doctor found 1 error\n"), proc.stderr


def test_nobody_enrolled_under_deny_without_a_way_in_is_an_error(setup):
    setup.good()
    proc, findings = setup.doctor()
    assert proc.returncode == 1
    assert errors(findings) == [
        'break-glass: nobody can log in: every checked service loads pam_twofa, '
        'unenrolled = "deny", and no one is enrolled'
    ]
    find(findings, "storage", "nobody is enrolled yet")


def test_a_console_login_without_the_module_is_a_way_in(setup):
    setup.good()
    setup.service("login", "auth required pam_unix.so\naccount required pam_unix.so\n")
    proc, findings = setup.doctor()
    assert proc.returncode == 0, errors(findings)
    find(findings, "break-glass", "console login (login) does not load pam_twofa")


def test_unenrolled_allow_is_a_way_in(setup):
    setup.good()
    setup.twofa.write_config(unenrolled="allow")
    proc, findings = setup.doctor()
    assert proc.returncode == 0, errors(findings)
    find(findings, "break-glass", 'unenrolled = "allow"')


def test_an_sshd_match_block_without_the_code_is_a_way_in(setup):
    setup.good()
    setup.write_sshd(f"Include {DROPIN}\n", "Match Group twofa-e2e-breakglass\n    AuthenticationMethods publickey\n")
    proc, findings = setup.doctor()
    assert proc.returncode == 0, errors(findings)
    find(findings, "break-glass", "`Match Group twofa-e2e-breakglass` sets AuthenticationMethods")


def test_sshd_without_the_drop_in_skips_the_code(setup, make_user):
    setup.good()
    setup.twofa.enroll(make_user().name)
    setup.write_sshd("")  # Debian's defaults: kbd-int off, any method, passwords on
    proc, findings = setup.doctor()
    assert proc.returncode == 1
    assert errors(findings) == [
        "sshd: KbdInteractiveAuthentication is not yes: the code is asked through "
        "keyboard-interactive, which is off",
        "sshd: AuthenticationMethods any: a key alone logs in, without the code",
        find(findings, "sshd", "PasswordAuthentication yes")["check"] + ": "
        + find(findings, "sshd", "PasswordAuthentication yes")["message"],
    ]


def test_root_under_prohibit_password_is_told_it_cannot_use_the_code(setup, make_user):
    setup.good()
    setup.twofa.enroll(make_user().name)
    setup.sshd_config.write_text(
        setup.sshd_config.read_text().replace("PermitRootLogin no", "PermitRootLogin prohibit-password")
    )
    proc, findings = setup.doctor()
    assert proc.returncode == 0, errors(findings)
    f = find(findings, "sshd", "PermitRootLogin prohibit-password")  # sshd -T: without-password
    assert f["status"] == "warning" and "root can't log in over SSH" in f["message"], f


def test_a_broken_sshd_config_is_reported(setup, make_user):
    setup.good()
    setup.twofa.enroll(make_user().name)
    setup.write_sshd("NoSuchKeyword yes\n")
    proc, findings = setup.doctor()
    assert proc.returncode == 1
    find(findings, "sshd", "sshd -T failed")


def test_a_stack_without_password_failed_lets_a_password_alone_in(setup, make_user):
    setup.good()
    setup.twofa.enroll(make_user().name)
    text = "".join(l + "\n" for l in setup.twofa.service_text("sudo").splitlines() if "password_failed" not in l)
    setup.service("sudo", text)
    proc, findings = setup.doctor()
    assert proc.returncode == 1
    f = find(findings, "pam sudo", "jumps over the code check")
    assert f["status"] == "error" and "password_failed" in f["fix"], f


def test_a_wrong_jump_count_is_reported(setup, make_user):
    setup.good()
    setup.twofa.enroll(make_user().name)
    text = setup.twofa.service_text("sshd").replace("[success=2 default=ignore]", "[success=1 default=ignore]", 1)
    setup.service("sshd", text)
    proc, findings = setup.doctor()
    assert proc.returncode == 1
    assert find(findings, "pam sshd", "pubkey_done's `success=1` lands on sshd:3")["status"] == "error"


def test_concat_without_use_first_pass_is_reported(setup, make_user):
    setup.good()
    setup.twofa.enroll(make_user().name)
    setup.service("vsftpd", setup.twofa.service_text("vsftpd").replace(" use_first_pass", ""))
    proc, findings = setup.doctor()
    assert proc.returncode == 1
    find(findings, "pam vsftpd", "concat must be followed by `pam_unix.so use_first_pass`")


def test_pam_env_reading_user_files_before_pubkey_done_is_reported(setup, make_user):
    setup.good()
    setup.twofa.enroll(make_user().name)
    setup.service("sshd", "auth required pam_env.so user_readenv=1\n" + setup.twofa.service_text("sshd"))
    proc, findings = setup.doctor()
    assert proc.returncode == 1
    find(findings, "pam sshd", "user_readenv=1 before pubkey_done")


def test_a_module_that_does_not_exist_is_reported(setup, make_user):
    setup.good()
    setup.twofa.enroll(make_user().name)
    text = setup.twofa.service_text("sudo").replace("pam_unix.so", "/nonexistent/pam_unix.so", 1)
    setup.service("sudo", text)
    proc, findings = setup.doctor()
    assert proc.returncode == 1
    find(findings, "pam sudo", "module /nonexistent/pam_unix.so not found")


def test_an_invalid_or_unsafe_config_is_reported(setup, make_user):
    setup.good()
    setup.twofa.enroll(make_user().name)
    setup.twofa.write_config_text("version = 1\n[totp]\ndigits = 9\n")
    proc, findings = setup.doctor()
    assert proc.returncode == 1
    find(findings, "config", "key `totp.digits`: must be from 6 to 8, not 9")
    setup.twofa.write_config()
    os.chmod(setup.twofa.config, 0o666)
    proc, findings = setup.doctor()
    assert proc.returncode == 1
    assert find(findings, "config", "refuses every login")["status"] == "error"


def test_open_storage_permissions_are_reported(setup, make_user):
    setup.good()
    setup.twofa.enroll(make_user().name)
    os.chmod(setup.twofa.storage / "users", 0o755)
    proc, findings = setup.doctor()
    assert proc.returncode == 1
    f = find(findings, "storage", "users: mode 0755, open to group or others")
    assert f["fix"] == f"chown root:root {setup.twofa.storage / 'users'} && chmod 0700 {setup.twofa.storage / 'users'}"
