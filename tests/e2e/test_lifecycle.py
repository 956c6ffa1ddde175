"""An enrollment's life after the first login: recovery codes, HOTP tokens, the admin CLI
(status, reset, disable, age), the rollout policy (grace, groups, services, remembered hosts)
and moving users over from google-authenticator.

Logins go through the real libpam (tests/driver) with the auth lines of conf/pam.d/sudo, and,
for the one-field login, a private vsftpd with conf/pam.d/vsftpd's. Codes come from oathtool.
One fresh user per test, so replay protection never forces a wait for the next TOTP step.
Self-enrollment (QR code in the login conversation) is in test_selfenroll.py.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import pwd
import re
import secrets
import shlex
import subprocess
import time
from pathlib import Path

import pexpect
import pytest

from conftest import ENROLL, prompts
from ftp import Vsftpd, ftp_login
from test_pam_module import CODE, PASSWORD, REPLAYED, lines_about, parse_lines, stack, wrong_code

LOGGED_IN = "230 Login successful."
REFUSED = "530 Login incorrect."
RECOVERY_RE = re.compile(r"^[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}$")
LAST_FEW = " Ask your administrator for new ones (twofa-enroll recovery)."


# ----------------------------------------------------------------------------------------------
# helpers


def write_policy(twofa, unenrolled: str = "deny", policy: str = "", window: int = 1, extra: str = ""):
    """The whole policy file: conftest's write_config can't add keys to [policy]."""
    text = (
        "version = 1\n\n"
        "[totp]\n"
        'issuer = "twofa"\n'
        'algorithm = "SHA1"\n'
        "digits = 6\n"
        "period = 30\n"
        f"window = {window}\n\n"
        "[policy]\n"
        f'unenrolled = "{unenrolled}"\n'
        f"{policy.rstrip()}\n\n"
        "[storage]\n"
        f'dir = "{twofa.storage}"\n'
    )
    if extra:
        text += "\n" + extra.rstrip("\n") + "\n"
    twofa.write_config_text(text)
    check = twofa.cli("check-config", str(twofa.config), check=False)
    assert check.returncode == 0, f"the test's own policy is refused:\n{text}\n{check.stdout}{check.stderr}"


def new_secret() -> str:
    return base64.b32encode(os.urandom(20)).decode("ascii")


def enroll_json(twofa, user_name: str, *extra: str, secret: str | None = None) -> dict:
    secret = secret or new_secret()
    proc = twofa.cli("enroll", user_name, "--secret-file", "-", "--no-verify", "--json", *extra,
                     input=secret + "\n")
    out = json.loads(proc.stdout)
    assert out["secret"] == secret
    return out


def hotp(secret: str, counter: int) -> str:
    out = subprocess.run(["oathtool", "--hotp", "-b", secret, "-c", str(counter)],
                         text=True, capture_output=True, timeout=30, check=True).stdout.strip()
    assert re.fullmatch(r"\d{6}", out), out
    return out


def wrong_hotp(secret: str, n: int = 1) -> list[str]:
    """n distinct 6-digit codes that none of the token's first 200 presses shows."""
    used = set(subprocess.run(["oathtool", "--hotp", "-b", secret, "-c", "0", "-w", "199"], text=True,
                              capture_output=True, timeout=30, check=True).stdout.split())
    assert len(used) > 150
    out, c = [], 123456
    while len(out) < n:
        if f"{c:06d}" not in used:
            out.append(f"{c:06d}")
        c += 1
    return out


def infos(result: dict) -> list[str]:
    return [text for style, text in prompts(result) if style == "info"]


def status_json(twofa, user_name: str) -> dict:
    return json.loads(twofa.cli("status", user_name, "--json").stdout)


def enrollment_file(twofa, user_name: str) -> Path:
    return twofa.storage / "users" / f"{user_name}.toml"


def error_line(proc: subprocess.CompletedProcess) -> str:
    """The "error: ..." line of stderr (interactive prompts may precede it on the same line)."""
    m = re.search(r"error: .*", proc.stderr)
    return m.group(0) if m else ""


@pytest.fixture
def make_group():
    """Factory: make_group(*members) -> a fresh twofa-e2e-grp-XXXX group; removed at teardown."""
    made: list[str] = []

    def make(*members: str) -> str:
        name = "twofa-e2e-grp-" + secrets.token_hex(4)
        subprocess.run(["groupadd", name], check=True, capture_output=True, timeout=30)
        made.append(name)
        for member in members:
            subprocess.run(["usermod", "-a", "-G", name, member], check=True, capture_output=True, timeout=30)
        return name

    yield make
    for name in made:
        subprocess.run(["groupdel", "-f", name], capture_output=True, timeout=30)


# ----------------------------------------------------------------------------------------------
# 1. Recovery codes


def test_recovery_code_logs_in_once_and_says_how_many_are_left(make_user, twofa):
    write_policy(twofa, policy="recovery_codes = 5")
    user = make_user()
    codes = enroll_json(twofa, user.name)["recovery_codes"]
    assert len(codes) == 5 and all(RECOVERY_RE.match(c) for c in codes), codes
    st = stack(twofa, "sudo")

    first = st.login(user.name, [user.password, codes[0]])
    assert prompts(first)[:2] == [PASSWORD, CODE]
    assert first["result"] == "PAM_SUCCESS"
    assert infos(first) == ["Recovery code accepted; 4 left."]

    again = st.login(user.name, [user.password, codes[0]])
    assert prompts(again) == [PASSWORD, CODE, ("error", "That recovery code was already used; each one works once.")]
    assert again["result"] == "PAM_AUTH_ERR", "a used recovery code worked a second time"


def test_recovery_code_typed_in_upper_case_with_spaces_logs_in(make_user, twofa):
    write_policy(twofa, policy="recovery_codes = 5")
    user = make_user()
    code = enroll_json(twofa, user.name)["recovery_codes"][2]
    typed = code.upper().replace("-", " ")
    result = stack(twofa, "sudo").login(user.name, [user.password, typed])
    assert result["result"] == "PAM_SUCCESS"
    assert infos(result) == ["Recovery code accepted; 4 left."]
    # ...and it was that code that got spent: typed the usual way it is now refused.
    again = stack(twofa, "sudo").login(user.name, [user.password, code])
    assert again["result"] == "PAM_AUTH_ERR"


def test_ask_your_administrator_hint_appears_when_three_codes_are_left(make_user, twofa):
    write_policy(twofa, policy="recovery_codes = 5")
    user = make_user()
    codes = enroll_json(twofa, user.name)["recovery_codes"]
    st = stack(twofa, "sudo")
    seen = []
    for code in codes[:3]:
        result = st.login(user.name, [user.password, code])
        assert result["result"] == "PAM_SUCCESS"
        seen += infos(result)
    assert seen == [
        "Recovery code accepted; 4 left.",
        "Recovery code accepted; 3 left." + LAST_FEW,
        "Recovery code accepted; 2 left." + LAST_FEW,
    ]


def test_silent_login_with_a_recovery_code_shows_no_info_line(make_user, twofa):
    write_policy(twofa, policy="recovery_codes = 5")
    user = make_user()
    codes = enroll_json(twofa, user.name)["recovery_codes"]
    result = stack(twofa, "sudo").login(user.name, [user.password, codes[0]], silent=True)
    assert result["result"] == "PAM_SUCCESS"
    assert prompts(result) == [PASSWORD, CODE], "an advisory line was shown under PAM_SILENT"
    # It was spent all the same: the count went down.
    assert status_json(twofa, user.name)["recovery_codes_left"] == 4


def test_new_recovery_codes_replace_the_old_ones(make_user, twofa):
    write_policy(twofa, policy="recovery_codes = 5")
    user = make_user()
    old = enroll_json(twofa, user.name)["recovery_codes"]
    proc = twofa.cli("recovery", user.name, "--json")
    out = json.loads(proc.stdout)
    new = out["recovery_codes"] if isinstance(out, dict) else out
    assert len(new) == 5 and not set(new) & set(old), (old, new)
    st = stack(twofa, "sudo")
    for code in old[:2]:
        assert st.login(user.name, [user.password, code])["result"] == "PAM_AUTH_ERR", \
            "a recovery code of the replaced set still works"
    fresh = st.login(user.name, [user.password, new[0]])
    assert fresh["result"] == "PAM_SUCCESS"
    assert infos(fresh) == ["Recovery code accepted; 4 left."]


def test_recovery_code_with_dashes_after_the_password_logs_in_to_ftp_once(make_user, twofa):
    write_policy(twofa, policy="recovery_codes = 5")
    user = make_user()
    codes = enroll_json(twofa, user.name)["recovery_codes"]
    server = Vsftpd(twofa.service_text("vsftpd"))
    server.start()
    try:
        assert ftp_login(server.port, user.name, user.password + codes[1]) == LOGGED_IN
        assert ftp_login(server.port, user.name, user.password + codes[1]) == REFUSED, \
            "a used recovery code logged in to FTP again"
    finally:
        server.stop()
    assert status_json(twofa, user.name)["recovery_codes_left"] == 4


def test_status_shows_how_many_recovery_codes_are_left(make_user, twofa):
    write_policy(twofa, policy="recovery_codes = 5")
    user = make_user()
    codes = enroll_json(twofa, user.name)["recovery_codes"]
    assert "recovery:      5 of 5 codes left" in twofa.cli("status", user.name).stdout
    assert stack(twofa, "sudo").login(user.name, [user.password, codes[4]])["result"] == "PAM_SUCCESS"
    text = twofa.cli("status", user.name).stdout
    assert "recovery:      4 of 5 codes left" in text, text
    assert status_json(twofa, user.name)["recovery_codes_left"] == 4


# ----------------------------------------------------------------------------------------------
# 2. HOTP tokens


def enroll_hotp(twofa, user_name: str) -> str:
    """Enrolls an HOTP token, confirmed with the code of press 0 (as an admin would)."""
    secret = new_secret()
    twofa.cli("enroll", user_name, "--hotp", "--secret-file", "-", "--no-qr",
              input=f"{secret}\n{hotp(secret, 0)}\n")
    return secret


def test_hotp_token_logs_in_within_the_look_ahead_and_each_press_works_once(make_user, twofa):
    write_policy(twofa)
    user = make_user()
    secret = enroll_hotp(twofa, user.name)
    st = stack(twofa, "sudo")
    ok = st.login(user.name, [user.password, hotp(secret, 3)])
    assert prompts(ok) == [PASSWORD, CODE]
    assert ok["result"] == "PAM_SUCCESS", "press 3 (two presses skipped) was refused"
    assert st.login(user.name, [user.password, hotp(secret, 3)])["result"] == "PAM_AUTH_ERR", \
        "press 3 worked twice"
    assert st.login(user.name, [user.password, hotp(secret, 2)])["result"] == "PAM_AUTH_ERR", \
        "a press older than the last accepted one worked"
    assert st.login(user.name, [user.password, hotp(secret, 50)])["result"] == "PAM_AUTH_ERR", \
        "press 50 is beyond the look-ahead of 10 from press 4"
    # The refusals moved nothing: the next press still works.
    assert st.login(user.name, [user.password, hotp(secret, 4)])["result"] == "PAM_SUCCESS"


def test_hotp_status_shows_the_next_press(make_user, twofa):
    write_policy(twofa)
    user = make_user()
    secret = enroll_hotp(twofa, user.name)
    assert "next press 1" in twofa.cli("status", user.name).stdout
    assert stack(twofa, "sudo").login(user.name, [user.password, hotp(secret, 6)])["result"] == "PAM_SUCCESS"
    text = twofa.cli("status", user.name).stdout
    assert "next press 7" in text, text


def test_hotp_resync_with_two_consecutive_codes_brings_a_drifted_token_back(make_user, twofa):
    write_policy(twofa)
    user = make_user()
    secret = enroll_hotp(twofa, user.name)
    st = stack(twofa, "sudo")
    assert st.login(user.name, [user.password, hotp(secret, 102)])["result"] == "PAM_AUTH_ERR"
    proc = twofa.cli("resync", user.name, input=f"{hotp(secret, 100)}\n{hotp(secret, 101)}\n")
    assert "First code: " in proc.stderr and "Next code: " in proc.stderr, proc.stderr
    assert "next press 102" in twofa.cli("status", user.name).stdout
    assert st.login(user.name, [user.password, hotp(secret, 102)])["result"] == "PAM_SUCCESS"
    assert st.login(user.name, [user.password, hotp(secret, 101)])["result"] == "PAM_AUTH_ERR", \
        "a code typed for the resync logged in afterwards"


def test_hotp_resync_with_a_wrong_pair_changes_nothing(make_user, twofa):
    write_policy(twofa)
    user = make_user()
    secret = enroll_hotp(twofa, user.name)
    before_status = twofa.cli("status", user.name).stdout
    before_file = enrollment_file(twofa, user.name).read_bytes()
    proc = twofa.cli("resync", user.name, input=f"{hotp(secret, 100)}\n{hotp(secret, 105)}\n", check=False)
    assert proc.returncode == 1, proc
    assert error_line(proc).startswith("error: "), proc.stderr
    assert twofa.cli("status", user.name).stdout == before_status
    assert enrollment_file(twofa, user.name).read_bytes() == before_file
    # Neither the token's place nor the look-ahead moved: press 1 still logs in, 100 doesn't.
    st = stack(twofa, "sudo")
    assert st.login(user.name, [user.password, hotp(secret, 100)])["result"] == "PAM_AUTH_ERR"
    assert st.login(user.name, [user.password, hotp(secret, 1)])["result"] == "PAM_SUCCESS"


def test_a_replaced_hotp_token_starts_at_its_own_counter(make_user, twofa):
    """An admin gives a user a new token (reset --hotp): the new token's first presses work,
    whatever the old token's counter was."""
    write_policy(twofa)
    user = make_user()
    old = enroll_hotp(twofa, user.name)
    st = stack(twofa, "sudo")
    assert st.login(user.name, [user.password, hotp(old, 8)])["result"] == "PAM_SUCCESS"
    new = new_secret()
    twofa.cli("reset", user.name, "--hotp", "--secret-file", "-", "--no-verify", "--no-qr", input=new + "\n")
    assert "next press 0" in twofa.cli("status", user.name).stdout
    assert st.login(user.name, [user.password, hotp(new, 1)])["result"] == "PAM_SUCCESS"


# ----------------------------------------------------------------------------------------------
# 3. The lifecycle CLI: status --all, reset, disable, age


def test_status_all_lists_every_enrolled_user_with_method_failures_and_codes_left(make_user, twofa):
    write_policy(twofa, policy="recovery_codes = 5")
    alice, bob, carol = make_user(), make_user(), make_user()
    a = enroll_json(twofa, alice.name)
    b_secret = enroll_hotp(twofa, bob.name)
    st = stack(twofa, "sudo")
    assert st.login(alice.name, [alice.password, a["recovery_codes"][0]])["result"] == "PAM_SUCCESS"
    for wrong in wrong_hotp(b_secret, 2):
        assert st.login(bob.name, [bob.password, wrong])["result"] == "PAM_AUTH_ERR"
    # carol is not enrolled: not listed.

    table = twofa.cli("status", "--all").stdout
    lines = table.splitlines()
    assert lines[0].split() == ["ACCOUNT", "METHOD", "AGE", "EXPIRED", "LAST", "LOGIN", "FAILURES",
                                "LOCKED", "UNTIL", "RECOVERY", "NOTE"], table
    rows = {line.split()[0]: line.split() for line in lines[1:] if line.strip()}
    assert set(rows) == {alice.name, bob.name}, table
    assert "totp" in rows[alice.name][1] and "hotp" not in rows[alice.name][1]
    assert "hotp" in rows[bob.name][1]
    assert rows[alice.name][-1] == "4" and rows[bob.name][-1] == "5", table
    # FAILURES is the column before LOCKED UNTIL ("-" when not locked).
    assert rows[alice.name][-3:-1] == ["0", "-"], table
    assert rows[bob.name][-3:-1] == ["2", "-"], table

    listed = json.loads(twofa.cli("status", "--all", "--json").stdout)
    assert isinstance(listed, list)
    by_name = {entry["account"]: entry for entry in listed}
    assert set(by_name) == {alice.name, bob.name}
    assert [f["type"] for f in by_name[alice.name]["factors"] if f["type"] != "recovery"] == ["totp"]
    assert [f["type"] for f in by_name[bob.name]["factors"] if f["type"] != "recovery"] == ["hotp"]
    assert (by_name[alice.name]["failures"], by_name[alice.name]["recovery_codes_left"]) == (0, 4)
    assert (by_name[bob.name]["failures"], by_name[bob.name]["recovery_codes_left"]) == (2, 5)
    assert carol.name not in table


def test_reset_gives_a_new_secret_and_the_old_one_stops_working(make_user, twofa):
    write_policy(twofa)
    user = make_user()
    old = twofa.enroll(user.name)
    new = new_secret()
    twofa.cli("reset", user.name, "--secret-file", "-", "--no-verify", "--no-qr", input=new + "\n")
    st = stack(twofa, "sudo")
    assert st.login(user.name, [user.password, twofa.code(old)])["result"] == "PAM_AUTH_ERR", \
        "the old secret still works after reset"
    assert st.login(user.name, [user.password, twofa.code(new)])["result"] == "PAM_SUCCESS"


def test_interactive_reset_shows_a_new_qr_code_and_asks_one_code(make_user, twofa):
    write_policy(twofa)
    user = make_user()
    old = twofa.enroll(user.name)
    child = pexpect.spawn(str(ENROLL), ["--config", str(twofa.config), "reset", user.name],
                          encoding="utf-8", timeout=30, dimensions=(60, 200))
    try:
        child.expect(r"otpauth://totp/\S+")
        uri = child.after
        shown = child.before
        child.expect("Verification code: ")
        new = re.search(r"[?&]secret=([A-Z2-7]+)", uri).group(1)
        child.sendline(twofa.code(new))
        rest = child.read()
    finally:
        child.close()
    assert child.exitstatus == 0, rest
    assert "█" in shown or "▀" in shown or "▄" in shown, "no QR code drawn in the terminal"
    assert new != old
    st = stack(twofa, "sudo")
    assert st.login(user.name, [user.password, twofa.code(old)])["result"] == "PAM_AUTH_ERR"
    # The confirmation code was spent; the next step's code logs in.
    assert st.login(user.name, [user.password, twofa.code(new, at=time.time() + 30)])["result"] == "PAM_SUCCESS"


def test_reset_of_a_user_who_is_not_enrolled_is_an_error(make_user, twofa):
    write_policy(twofa)
    user = make_user()
    proc = twofa.cli("reset", user.name, "--secret-file", "-", "--no-verify", input=new_secret() + "\n",
                     check=False)
    assert proc.returncode == 1, proc
    assert error_line(proc).startswith("error: ") and user.name in proc.stderr, proc.stderr
    assert not enrollment_file(twofa, user.name).exists(), "reset enrolled a user who was not enrolled"


def test_reset_to_self_enroll_is_refused_unless_the_policy_lets_users_enroll(make_user, twofa):
    write_policy(twofa, unenrolled="deny")
    user = make_user()
    secret = twofa.enroll(user.name)
    proc = twofa.cli("reset", "--self-enroll", user.name, check=False)
    assert proc.returncode == 1, proc
    assert error_line(proc).startswith("error: "), proc.stderr
    assert "unenrolled" in proc.stderr
    # Nothing changed: the user still logs in with their app.
    assert stack(twofa, "sudo").login(user.name, [user.password, twofa.code(secret)])["result"] == "PAM_SUCCESS"


def test_reset_to_self_enroll_shows_a_qr_code_at_the_next_login(make_user, twofa):
    write_policy(twofa, unenrolled="enroll")
    user = make_user()
    old = twofa.enroll(user.name)
    twofa.cli("reset", "--self-enroll", user.name)
    result = stack(twofa, "sudo").login(user.name, [user.password, twofa.code(old)])
    texts = infos(result)
    assert texts and texts[0].startswith(
        f"Two-factor authentication is required for {user.name}. Scan this QR code"), prompts(result)
    assert "or enter this key: " in texts[0]
    assert result["result"] == "PAM_AUTH_ERR", "the old secret's code confirmed a new enrollment"


def cli_with_pam_dir(twofa, pam_dir: Path, *args: str, input: str = "") -> subprocess.CompletedProcess:
    """twofa-enroll as twofa.cli runs it, but in a private mount namespace where ``pam_dir``
    is bind-mounted over /etc/pam.d (the real one is never touched)."""
    argv = " ".join(shlex.quote(str(a)) for a in [ENROLL, "--config", twofa.config, *args])
    script = f"mount --bind {shlex.quote(str(pam_dir))} /etc/pam.d && exec {argv}"
    return subprocess.run(["unshare", "-m", "sh", "-c", script], input=input, text=True,
                          capture_output=True, timeout=60)


def pam_dir_with(twofa, name: str, **services: str) -> Path:
    d = twofa.root / name
    d.mkdir(mode=0o755)
    for service, text in services.items():
        (d / service).write_text(text)
    return d


def test_a_verified_enrollment_spends_its_code_says_so_and_is_no_login(make_user, twofa):
    write_policy(twofa)
    user = make_user()
    secret = new_secret()
    pam_dir = pam_dir_with(twofa, "pam.d-with-twofa", sudo=twofa.service_text("sudo"))
    code = twofa.code(secret)
    proc = cli_with_pam_dir(twofa, pam_dir, "enroll", user.name, "--secret-file", "-", "--no-qr",
                            input=f"{secret}\n{code}\n")
    assert proc.returncode == 0, proc
    out = proc.stdout
    assert "The code just typed is used up: for the first login, use the next code the app shows." in out, out
    assert "From now on a verification code is asked at login (PAM services: sudo)." in out, out
    # The confirmation is the enrollment, not a login.
    assert "last login:    never" in twofa.cli("status", user.name).stdout
    status = status_json(twofa, user.name)
    assert status["last_login_at"] is None and status["enrolled_at"], status
    # The first login within the same 30 s: that code is spent, and the user is told why.
    st = stack(twofa, "sudo")
    replay = st.login(user.name, [user.password, code])
    assert replay["result"] == "PAM_AUTH_ERR"
    assert prompts(replay) == [PASSWORD, CODE, REPLAYED]
    fresh = st.login(user.name, [user.password, twofa.code(secret, at=time.time() + 30)])
    assert fresh["result"] == "PAM_SUCCESS"
    assert status_json(twofa, user.name)["last_login_at"] is not None


def test_enrolling_where_no_pam_service_asks_for_the_code_says_so(make_user, twofa):
    write_policy(twofa)
    user = make_user()
    # A PAM directory with stacks, none of which loads pam_twofa (a comment naming it is no line).
    pam_dir = pam_dir_with(twofa, "pam.d-without-twofa",
                           sudo="# auth required pam_twofa.so\nauth required pam_unix.so\n")
    proc = cli_with_pam_dir(twofa, pam_dir, "enroll", user.name, "--secret-file", "-", "--no-verify",
                            input=new_secret() + "\n")
    assert proc.returncode == 0, proc
    assert ("No PAM service on this host asks for the code yet: add pam_twofa to the stacks "
            '(README, "Add it to sshd and sudo"), then check them with: twofa-enroll doctor') in proc.stdout
    assert "From now on" not in proc.stdout
    # --no-verify typed no code: nothing was spent, so nothing is said about it.
    assert "used up" not in proc.stdout
    assert enrollment_file(twofa, user.name).exists()


def test_an_orphaned_enrollment_is_marked_reachable_and_removable_by_its_name(make_user, twofa):
    write_policy(twofa)
    alive, gone = make_user(), make_user()
    twofa.enroll(alive.name)
    twofa.enroll(gone.name)
    subprocess.run(["userdel", "-r", "-f", gone.name], check=True, capture_output=True, timeout=60)

    listed = {e["account"]: e for e in json.loads(twofa.cli("status", "--all", "--json").stdout)}
    assert (listed[gone.name]["orphan"], listed[gone.name]["account_here"]) == (True, False)
    assert (listed[alive.name]["orphan"], listed[alive.name]["account_here"]) == (False, True)
    table = twofa.cli("status", "--all").stdout
    rows = {line.split()[0]: line.split() for line in table.splitlines() if line.startswith("twofa-e2e-")}
    assert rows[gone.name][-1] == "orphan", table
    assert rows[alive.name][-1] != "orphan", table
    assert "Remove each one: twofa-enroll disable --orphan NAME" in table

    # status NAME reaches it by its stored name.
    detail = twofa.cli("status", gone.name).stdout
    assert f"account:       {gone.name} (orphan: no account of that name exists)" in detail, detail
    assert f"would inherit this enrollment" in detail and f"twofa-enroll disable --orphan {gone.name}" in detail

    # Plain disable can't look the account up, and says what can.
    refused = twofa.cli("disable", gone.name, check=False)
    assert refused.returncode == 1
    assert f"hint: remove it with: twofa-enroll disable --orphan {gone.name}" in refused.stderr, refused.stderr
    # --orphan never removes the enrollment of an account that exists.
    kept = twofa.cli("disable", "--orphan", alive.name, check=False)
    assert kept.returncode == 1
    assert f"`{alive.name}` is an account on this host" in kept.stderr, kept.stderr
    assert enrollment_file(twofa, alive.name).exists()

    removed = twofa.cli("disable", "--orphan", gone.name)
    assert f"Removed the enrollment of {gone.name}, whose account no longer exists" in removed.stdout
    assert not enrollment_file(twofa, gone.name).exists()
    assert [p.name for p in (twofa.storage / "disabled").iterdir() if p.name.startswith(gone.name + ".")]
    assert [e["account"] for e in json.loads(twofa.cli("status", "--all", "--json").stdout)] == [alive.name]
    again = twofa.cli("status", gone.name, check=False)
    assert again.returncode == 1 and f"error: no account named `{gone.name}`" in again.stderr


def test_disabled_user_is_treated_as_unenrolled(make_user, twofa):
    write_policy(twofa, unenrolled="allow")
    user = make_user()
    secret = twofa.enroll(user.name)
    st = stack(twofa, "sudo")
    before = st.login(user.name, [user.password, wrong_code(twofa, secret)])
    assert prompts(before) == [PASSWORD, CODE], "an enrolled user was not asked for a code"
    twofa.cli("disable", user.name)
    after = st.login(user.name, [user.password])
    assert prompts(after) == [PASSWORD], "a disabled user was still asked for a code (allow policy)"
    assert after["result"] == "PAM_SUCCESS"
    assert status_json(twofa, user.name)["enrolled"] is False
    backups = list((twofa.storage / "disabled").iterdir())
    assert any(p.name.startswith(user.name) for p in backups), backups
    # Under deny, the old secret's codes don't get the disabled user in.
    write_policy(twofa, unenrolled="deny")
    denied = st.login(user.name, [user.password, twofa.code(secret)])
    assert prompts(denied) == [PASSWORD, CODE]
    assert denied["result"] == "PAM_AUTH_ERR"


def age_enrollment(twofa, user_name: str, days: int) -> None:
    """Pretends the enrollment was made `days` ago: rewrites enrolled_at in place, keeping the
    file root's and 0600."""
    path = enrollment_file(twofa, user_name)
    text = path.read_text()
    old = int(time.time()) - days * 86400
    new_text, n = re.subn(r"(?m)^enrolled_at = \d+$", f"enrolled_at = {old}", text)
    assert n >= 1, text
    tmp = path.with_name("." + path.name + ".e2e")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(new_text)
    os.chown(tmp, 0, 0)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def test_old_enrollment_still_logs_in_and_says_how_old_it_is(make_user, twofa):
    write_policy(twofa, policy="enrollment_max_age_days = 30")
    user = make_user()
    secret = twofa.enroll(user.name)
    st = stack(twofa, "sudo")
    young = st.login(user.name, [user.password, twofa.code(secret)])
    assert young["result"] == "PAM_SUCCESS" and infos(young) == []
    age_enrollment(twofa, user.name, 100)
    old = st.login(user.name, [user.password, twofa.code(secret, at=time.time() + 30)])
    assert old["result"] == "PAM_SUCCESS", "an expired enrollment no longer logs in"
    assert infos(old) == [
        "Your 2FA enrollment is 100 days old; re-enroll with twofa-enroll (ask your administrator)."]


def test_status_says_an_old_enrollment_expired(make_user, twofa):
    write_policy(twofa, policy="enrollment_max_age_days = 30")
    user = make_user()
    twofa.enroll(user.name)
    assert status_json(twofa, user.name)["expired"] is False
    age_enrollment(twofa, user.name, 45)
    st = status_json(twofa, user.name)
    assert (st["expired"], st["age_days"]) == (True, 45)
    text = twofa.cli("status", user.name).stdout
    assert re.search(r"(?m)^age:\s+45 days, expired", text), text
    row = [l for l in twofa.cli("status", "--all").stdout.splitlines() if l.startswith(user.name)]
    assert len(row) == 1 and row[0].split()[2:4] == ["45d", "yes"], row


# ----------------------------------------------------------------------------------------------
# 4. Rollout policy: grace, groups, services, remembered hosts


def utc_day(offset: int) -> str:
    return (datetime.datetime.now(datetime.timezone.utc).date() + datetime.timedelta(days=offset)).isoformat()


def test_unenrolled_user_is_let_in_during_grace_with_a_notice(make_user, twofa):
    tomorrow = utc_day(1)
    write_policy(twofa, unenrolled="grace", policy=f"grace_until = {tomorrow}")
    user = make_user()
    result = stack(twofa, "sudo").login(user.name, [user.password])
    assert prompts(result) == [PASSWORD, (
        "info", f"Two-factor authentication will be required from {tomorrow}: "
                "ask your administrator to enroll you (twofa-enroll).")]
    assert result["result"] == "PAM_SUCCESS"


def test_after_grace_an_unenrolled_user_is_asked_for_a_code_and_refused(make_user, twofa):
    write_policy(twofa, unenrolled="grace", policy=f'grace_until = "{utc_day(-1)}"')
    user = make_user()
    result = stack(twofa, "sudo").login(user.name, [user.password, "123456"])
    assert prompts(result) == [PASSWORD, CODE]
    assert result["result"] == "PAM_AUTH_ERR"


def test_login_after_grace_is_logged_as_grace_expired(make_user, twofa, syslog):
    write_policy(twofa, unenrolled="grace", policy=f'grace_until = "{utc_day(-1)}"')
    user = make_user()
    assert stack(twofa, "sudo").login(user.name, [user.password, "123456"])["result"] == "PAM_AUTH_ERR"
    events = parse_lines(lines_about(syslog, user.name))
    assert [(e["outcome"], e["reason"]) for e in events] == [("deny", "grace-expired")], events


def test_member_of_an_exempt_group_is_not_asked_for_a_code(make_user, twofa, make_group):
    user = make_user()
    group = make_group(user.name)
    write_policy(twofa, policy=f'exempt_groups = ["{group}"]')
    twofa.enroll(user.name)
    result = stack(twofa, "sudo").login(user.name, [user.password])
    assert prompts(result) == [PASSWORD], "an exempt user was asked for a code"
    assert result["result"] == "PAM_SUCCESS"


def test_exempt_login_is_logged_as_exempt_group(make_user, twofa, make_group, syslog):
    user = make_user()
    group = make_group(user.name)
    write_policy(twofa, policy=f'exempt_groups = ["{group}"]')
    twofa.enroll(user.name)
    assert stack(twofa, "sudo").login(user.name, [user.password])["result"] == "PAM_SUCCESS"
    events = parse_lines(lines_about(syslog, user.name))
    assert [(e["outcome"], e["reason"]) for e in events] == [("ignore", "exempt-group")], events


def test_exempt_user_with_a_wrong_password_is_refused_after_the_code_prompt(make_user, twofa, make_group):
    user = make_user()
    group = make_group(user.name)
    write_policy(twofa, policy=f'exempt_groups = ["{group}"]')
    secret = twofa.enroll(user.name)
    result = stack(twofa, "sudo").login(user.name, ["not-" + user.password, twofa.code(secret)])
    assert prompts(result) == [PASSWORD, CODE], "a wrong password revealed the exemption"
    assert result["result"] == "PAM_AUTH_ERR"


def test_enforce_groups_let_non_members_in_without_a_code(make_user, twofa, make_group):
    outsider, member = make_user(), make_user()
    group = make_group(member.name)
    write_policy(twofa, policy=f'enforce_groups = ["{group}"]')
    twofa.enroll(outsider.name)
    m_secret = twofa.enroll(member.name)
    st = stack(twofa, "sudo")
    free = st.login(outsider.name, [outsider.password])
    assert prompts(free) == [PASSWORD], "a user outside enforce_groups was asked for a code"
    assert free["result"] == "PAM_SUCCESS"
    asked = st.login(member.name, [member.password, wrong_code(twofa, m_secret)])
    assert prompts(asked) == [PASSWORD, CODE]
    assert asked["result"] == "PAM_AUTH_ERR"


def test_exempt_service_skips_the_code_and_other_services_ask(make_user, twofa):
    user = make_user()
    write_policy(twofa, policy='exempt_services = ["twofa-e2e-exempt"]')
    secret = twofa.enroll(user.name)
    exempt = stack(twofa, "sudo", "twofa-e2e-exempt")
    other = stack(twofa, "sudo", "twofa-e2e-other")
    free = exempt.login(user.name, [user.password])
    assert prompts(free) == [PASSWORD]
    assert free["result"] == "PAM_SUCCESS"
    asked = other.login(user.name, [user.password, wrong_code(twofa, secret)])
    assert prompts(asked) == [PASSWORD, CODE]
    assert asked["result"] == "PAM_AUTH_ERR"


def test_remembered_host_needs_no_code_but_another_host_does(make_user, twofa):
    # window = 3: the three code logins below use three steps without waiting for one.
    write_policy(twofa, window=3, policy="remember_host_seconds = 3600")
    user = make_user()
    secret = twofa.enroll(user.name)
    st = stack(twofa, "sudo")
    now = time.time()
    first = st.login(user.name, [user.password, twofa.code(secret, at=now - 30)], rhost="192.0.2.10")
    assert first["result"] == "PAM_SUCCESS"
    second = st.login(user.name, [user.password], rhost="192.0.2.10")
    assert prompts(second) == [PASSWORD], "the same host was asked for a code again"
    assert second["result"] == "PAM_SUCCESS"
    other = st.login(user.name, [user.password, twofa.code(secret, at=now)], rhost="192.0.2.11")
    assert prompts(other) == [PASSWORD, CODE], "another host was let in without a code"
    assert other["result"] == "PAM_SUCCESS"
    # A wrong password from the remembered host is still refused.
    wrong = st.login(user.name, ["not-" + user.password, "000000"], rhost="192.0.2.10")
    assert wrong["result"] == "PAM_AUTH_ERR"


def test_login_without_a_remote_host_is_always_asked_for_a_code(make_user, twofa):
    write_policy(twofa, window=3, policy="remember_host_seconds = 3600")
    user = make_user()
    secret = twofa.enroll(user.name)
    st = stack(twofa, "sudo")
    now = time.time()
    assert st.login(user.name, [user.password, twofa.code(secret, at=now - 30)], rhost="")["result"] == "PAM_SUCCESS"
    again = st.login(user.name, [user.password, wrong_code(twofa, secret)], rhost="")
    assert prompts(again) == [PASSWORD, CODE], "an empty remote host was remembered"
    assert again["result"] == "PAM_AUTH_ERR"
    unset = st.login(user.name, [user.password, twofa.code(secret, at=now)])
    assert prompts(unset) == [PASSWORD, CODE]
    assert unset["result"] == "PAM_SUCCESS"


# ----------------------------------------------------------------------------------------------
# 6. import-google-authenticator


def as_user(user, argv: list[str]) -> subprocess.CompletedProcess:
    entry = pwd.getpwnam(user.name)

    def drop():
        os.setgroups([])
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)

    return subprocess.run(argv, cwd=entry.pw_dir, preexec_fn=drop, capture_output=True, text=True,
                          timeout=30, env={"HOME": entry.pw_dir, "USER": user.name, "PATH": "/usr/bin:/bin"})


def google_authenticator(user, *mode: str) -> tuple[str, list[str], str]:
    """Runs the real google-authenticator as the user; returns (secret, scratch codes, text)."""
    proc = as_user(user, ["google-authenticator", *mode, "-f", "-r", "3", "-R", "30", "-w", "3",
                          "-Q", "NONE", "-q"])
    assert proc.returncode == 0, proc
    text = (user.home / ".google_authenticator").read_text()
    lines = text.splitlines()
    scratch = [l for l in lines if re.fullmatch(r"\d{8}", l)]
    assert scratch, text
    return lines[0], scratch, text


def test_imported_google_authenticator_secret_and_scratch_codes_log_in(make_user, twofa):
    write_policy(twofa)
    user = make_user()
    secret, scratch, _ = google_authenticator(user, "-t", "-d")
    twofa.cli("import-google-authenticator", user.name)
    st = stack(twofa, "sudo")
    assert st.login(user.name, [user.password, twofa.code(secret)])["result"] == "PAM_SUCCESS", \
        "the app's TOTP code doesn't log in after the import"
    assert st.login(user.name, [user.password, scratch[0]])["result"] == "PAM_SUCCESS", \
        "a google-authenticator scratch code doesn't log in after the import"
    assert st.login(user.name, [user.password, scratch[0]])["result"] == "PAM_AUTH_ERR", \
        "a scratch code worked twice"


def test_imported_hotp_file_keeps_its_counter(make_user, twofa):
    write_policy(twofa)
    user = make_user()
    secret, _, text = google_authenticator(user, "-c")
    counter = int(re.search(r'(?m)^" HOTP_COUNTER (\d+)$', text).group(1))
    twofa.cli("import-google-authenticator", user.name)
    assert f"next press {counter}" in twofa.cli("status", user.name).stdout
    st = stack(twofa, "sudo")
    assert st.login(user.name, [user.password, hotp(secret, counter)])["result"] == "PAM_SUCCESS"
    assert st.login(user.name, [user.password, hotp(secret, counter)])["result"] == "PAM_AUTH_ERR"


def run_traced(twofa, *args: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    out = twofa.root / ("strace-" + secrets.token_hex(3) + ".txt")
    argv = ["strace", "-f", "-qq", "-e", "trace=open,openat,openat2", "-o", str(out),
            str(ENROLL), "--config", str(twofa.config), *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    trace = out.read_text().splitlines()
    assert any("openat(" in l for l in trace), f"strace recorded nothing: {proc.stderr}"
    return proc, trace


def opened_shadow(trace: list[str]) -> list[str]:
    """Trace lines where an open of a path ending in "shadow" succeeded."""
    return [l for l in trace if re.search(r'open(at2?)?\(.*"[^"]*shadow"', l) and re.search(r"\)\s+=\s+\d+", l)]


def test_import_refuses_a_google_authenticator_file_that_is_a_symlink_to_shadow(make_user, twofa):
    write_policy(twofa)
    user = make_user()
    link = user.home / ".google_authenticator"
    os.symlink("/etc/shadow", link)
    os.lchown(link, user.uid, pwd.getpwnam(user.name).pw_gid)
    proc, trace = run_traced(twofa, "import-google-authenticator", user.name)
    assert proc.returncode == 1, proc
    assert error_line(proc).startswith("error: ") and str(link) in error_line(proc), proc.stderr
    assert any(".google_authenticator" in l for l in trace), "the import never tried the file"
    assert opened_shadow(trace) == [], "the import opened /etc/shadow"
    assert not enrollment_file(twofa, user.name).exists()


def test_import_refuses_a_path_through_a_symlinked_directory(make_user, twofa):
    write_policy(twofa)
    user = make_user()
    # Not under /tmp: the import refuses a world-writable parent (/tmp itself) before anything.
    link = user.home / "lnk"
    os.symlink("/etc", link)
    proc, trace = run_traced(twofa, "import-google-authenticator", user.name, "--file", str(link / "shadow"))
    assert proc.returncode == 1, proc
    assert error_line(proc).startswith(f"error: {link}"), proc.stderr
    assert opened_shadow(trace) == [], "the import opened /etc/shadow through the symlink"
    assert not enrollment_file(twofa, user.name).exists()


def test_import_all_enrolls_every_user_with_a_google_authenticator_file(make_user, twofa):
    write_policy(twofa)
    totp_user, hotp_user, plain = make_user(), make_user(), make_user()
    t_secret, _, _ = google_authenticator(totp_user, "-t", "-d")
    h_secret, _, h_text = google_authenticator(hotp_user, "-c")
    counter = int(re.search(r'(?m)^" HOTP_COUNTER (\d+)$', h_text).group(1))
    proc = twofa.cli("import-google-authenticator", "--all", check=False)
    mine = "\n".join(l for l in (proc.stdout + proc.stderr).splitlines()
                     if totp_user.name in l or hotp_user.name in l or plain.name in l)
    # Other users on this machine (other tests) may make --all report errors; ours must import.
    assert enrollment_file(twofa, totp_user.name).exists(), proc
    assert enrollment_file(twofa, hotp_user.name).exists(), proc
    assert not enrollment_file(twofa, plain.name).exists(), "a user without a file was enrolled"
    assert "error" not in mine.lower(), mine
    st = stack(twofa, "sudo")
    assert st.login(totp_user.name, [totp_user.password, twofa.code(t_secret)])["result"] == "PAM_SUCCESS"
    assert st.login(hotp_user.name, [hotp_user.password, hotp(h_secret, counter)])["result"] == "PAM_SUCCESS"
