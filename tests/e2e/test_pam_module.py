"""pam_twofa through the real libpam (tests/driver), pamtester, and the twofa-enroll CLI.

Each test gets a fresh user, a fresh /tmp/twofa-e2e-* world and, unless it needs /etc/pam.d
(pamtester), a private PAM config dir. The stacks are the `auth` lines of conf/pam.d/sudo and
conf/pam.d/sshd with the module's absolute path. The driver records the fail delay instead of
sleeping, so failures cost no time.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import secrets
import stat
import subprocess
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import pexpect
import pytest

from conftest import ENROLL, prompts, run_driver, run_driver_process

PASSWORD = ("echo_off", "Password: ")
CODE = ("echo_off", "Verification code: ")
#: What a user who typed a TOTP code already used reads (after a verified password only).
REPLAYED = ("error", "That code was already used; wait for the next code from your app, then try again.")
PUBKEY = "publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
TWO_SECONDS = 2_000_000
LINE_RE = re.compile(
    r"pam_twofa\((?P<service>[^:()]+):auth\): user=(?P<user>\S+) account=(?P<account>\S+) "
    r"rhost=(?P<rhost>\S+) factor=(?P<factor>\S+) outcome=(?P<outcome>success|deny|ignore|error) "
    r"reason=(?P<reason>[a-z-]+)(?P<detail>: .*)?$"
)


@dataclass
class Stack:
    name: str
    confdir: str

    def login(self, user: str | None, answers: list, **opts) -> dict:
        """One pam_authenticate: returns the first try (plus the whole report in "report")."""
        report = run_driver(self.name, user, answers, self.confdir, **opts)
        first = dict(report["tries"][0])
        first["report"] = report
        return first


def stack(twofa, conf: str = "sudo", name: str | None = None, **module_args) -> Stack:
    name = name or f"twofa-e2e-{conf}"
    return Stack(name, twofa.pam_confdir(name, twofa.service_text(conf, **module_args)))


def step_of(t: float, period: int = 30) -> int:
    return int(t // period)


def wrong_code(twofa, secret: str, algorithm="SHA1", digits=6, period=30) -> str:
    """A code of the right length that is none of the codes near now."""
    now = time.time()
    near = {twofa.code(secret, algorithm, digits, period, at=now + k * period) for k in range(-4, 5)}
    while True:
        candidate = "".join(random.choice("0123456789") for _ in range(digits))
        if candidate not in near:
            return candidate


def login_at_step(st: Stack, twofa, user, secret, offset: int, **params) -> dict:
    """Logs in with the code of the step `offset` steps from now. If it is refused and the
    step changed during the call (so the module may have seen another "now"), tries again
    with fresh codes: never waits for a step."""
    period = params.get("period", 30)
    for _ in range(3):
        t0 = time.time()
        code = twofa.code(secret, at=t0 + offset * period, **params)
        result = st.login(user.name, [user.password, code])
        if result["result"] == "PAM_SUCCESS" or step_of(t0, period) == step_of(time.time(), period):
            return result
    return result


def enrolled_world(make_user, twofa, **config):
    user = make_user()
    twofa.write_config(**config)
    secret = twofa.enroll(user.name)
    return user, secret


def enroll_colleague(make_user, twofa) -> None:
    """Someone else is enrolled: the storage exists, as on any host using twofa."""
    twofa.enroll(make_user().name)


def parse_lines(lines: list[str]) -> list[dict]:
    out = []
    for line in lines:
        m = LINE_RE.search(line)
        assert m, f"syslog line not in the documented format: {line!r}"
        out.append(m.groupdict())
    return out


def lines_about(syslog, user_name: str) -> list[str]:
    """This test's pam_twofa lines (other tests may be logging to the same /dev/log): waits
    until one arrived and no more arrive for a moment."""
    needle = f"user={user_name} "
    syslog.wait_for(r"pam_twofa\(.*" + re.escape(needle))
    return [line for line in syslog.settle() if "pam_twofa(" in line and needle in line]


def enrollment_files(twofa, user_name: str) -> list[Path]:
    users = twofa.storage / "users"
    if not users.exists():
        return []
    return [p for p in users.iterdir() if p.name.startswith(user_name)]


# ----------------------------------------------------------------------------------------------
# Logging in


def test_right_password_and_right_code_logs_in(make_user, twofa):
    user, secret = enrolled_world(make_user, twofa)
    st = stack(twofa)
    result = st.login(user.name, [user.password, twofa.code(secret)], acct=True)
    assert prompts(result) == [PASSWORD, CODE]
    assert result["result"] == "PAM_SUCCESS"
    assert result["report"]["acct"]["result"] == "PAM_SUCCESS"


def test_wrong_code_is_refused(make_user, twofa):
    user, secret = enrolled_world(make_user, twofa)
    st = stack(twofa)
    result = st.login(user.name, [user.password, wrong_code(twofa, secret)])
    assert prompts(result) == [PASSWORD, CODE]
    assert result["result"] == "PAM_AUTH_ERR"
    # The refusal was about the code: the right one still works.
    assert st.login(user.name, [user.password, twofa.code(secret)])["result"] == "PAM_SUCCESS"


def test_code_typed_with_a_space_is_accepted(make_user, twofa):
    user, secret = enrolled_world(make_user, twofa)
    code = twofa.code(secret)
    result = stack(twofa).login(user.name, [user.password, code[:3] + " " + code[3:]])
    assert result["result"] == "PAM_SUCCESS"


@pytest.mark.parametrize("typed", ["12345", "1234567", "12345a", ""])
def test_code_with_the_wrong_number_of_digits_is_refused(make_user, twofa, typed):
    user, _ = enrolled_world(make_user, twofa)
    result = stack(twofa).login(user.name, [user.password, typed])
    assert prompts(result) == [PASSWORD, CODE]
    assert result["result"] == "PAM_AUTH_ERR"


def test_empty_answers_are_refused_but_never_lock_the_user_out(make_user, twofa, syslog):
    """An ssh client without a terminal answers the code prompt with an empty line: more such
    logins than max_failures (5) are each refused and logged as no-code, none is counted, and
    the right code still logs in."""
    user, secret = enrolled_world(make_user, twofa)
    st = stack(twofa)
    for _ in range(6):
        result = st.login(user.name, [user.password, ""])
        assert prompts(result) == [PASSWORD, CODE]
        assert result["result"] == "PAM_AUTH_ERR"
    status = json.loads(twofa.cli("status", user.name, "--json").stdout)
    assert (status["failures"], status["locked_until"]) == (0, None), status
    lines = parse_lines(lines_about(syslog, user.name))
    assert [(l["outcome"], l["reason"], l["detail"]) for l in lines] == [
        ("deny", "no-code", ": no code typed; not counted toward lockout")
    ] * 6
    assert st.login(user.name, [user.password, twofa.code(secret)])["result"] == "PAM_SUCCESS"


def test_a_wrong_code_is_still_counted_after_empty_answers(make_user, twofa):
    user, secret = enrolled_world(make_user, twofa)
    st = stack(twofa)
    for answer in ["", wrong_code(twofa, secret), ""]:
        assert st.login(user.name, [user.password, answer])["result"] == "PAM_AUTH_ERR"
    status = json.loads(twofa.cli("status", user.name, "--json").stdout)
    assert status["failures"] == 1, status


def test_wrong_password_with_right_code_is_refused_and_the_code_still_works_afterwards(make_user, twofa):
    user, secret = enrolled_world(make_user, twofa)
    st = stack(twofa)
    code = twofa.code(secret)
    refused = st.login(user.name, ["not-" + user.password, code])
    assert prompts(refused) == [PASSWORD, CODE]
    assert refused["result"] == "PAM_AUTH_ERR"
    # The code was not spent by the failed attempt.
    accepted = st.login(user.name, [user.password, code])
    assert accepted["result"] == "PAM_SUCCESS"


def test_replayed_code_is_refused(make_user, twofa):
    user, secret = enrolled_world(make_user, twofa)
    st = stack(twofa)
    code = twofa.code(secret)
    assert st.login(user.name, [user.password, code])["result"] == "PAM_SUCCESS"
    again = st.login(user.name, [user.password, code])
    # The password was right: the user is told why and what to do.
    assert prompts(again) == [PASSWORD, CODE, REPLAYED]
    assert again["result"] == "PAM_AUTH_ERR"
    # After a wrong password, the same attempt says nothing more than any other.
    wrong_pw = st.login(user.name, ["not-" + user.password, code])
    assert prompts(wrong_pw) == [PASSWORD, CODE]
    assert wrong_pw["result"] == "PAM_AUTH_ERR"


def test_replayed_code_is_refused_on_another_service(make_user, twofa):
    user, secret = enrolled_world(make_user, twofa)
    sudo = stack(twofa, "sudo", "twofa-e2e-sudo")
    sshd = stack(twofa, "sshd", "twofa-e2e-sshd")
    code = twofa.code(secret)
    assert sudo.login(user.name, [user.password, code])["result"] == "PAM_SUCCESS"
    replay = sshd.login(user.name, [user.password, code])
    assert prompts(replay) == [PASSWORD, CODE, REPLAYED]
    assert replay["result"] == "PAM_AUTH_ERR"
    # The other service works with a code not used yet (the next step's).
    fresh = sshd.login(user.name, [user.password, twofa.code(secret, at=time.time() + 30)])
    assert fresh["result"] == "PAM_SUCCESS"


@pytest.mark.parametrize(
    "window,offset,accepted",
    [
        (1, -1, True),
        (1, 1, True),
        (1, -2, False),
        (1, 2, False),
        (0, 0, True),
        (0, -1, False),
        (0, 1, False),
        (3, -3, True),
        (3, 3, True),
        (3, 4, False),
    ],
)
def test_codes_within_the_window_are_accepted_and_outside_refused(make_user, twofa, window, offset, accepted):
    twofa.write_config(window=window)
    st = stack(twofa)
    for _ in range(3):
        # A fresh user per attempt: an attempt during which the step changed says nothing.
        user = make_user()
        secret = twofa.enroll(user.name)
        t0 = time.time()
        code = twofa.code(secret, at=t0 + offset * 30)
        result = st.login(user.name, [user.password, code])
        if step_of(t0) == step_of(time.time()):
            break
    assert prompts(result) == [PASSWORD, CODE]
    assert result["result"] == ("PAM_SUCCESS" if accepted else "PAM_AUTH_ERR"), (
        f"code {offset:+d} steps from now with window={window}"
    )


def test_sha256_8_digit_60_second_enrollment_logs_in(make_user, twofa):
    user = make_user()
    twofa.write_config()
    secret = twofa.enroll(user.name, algorithm="SHA256", digits=8, period=60)
    st = stack(twofa)
    # The policy's default parameters do not apply to this user.
    default_code = twofa.code(secret)
    assert st.login(user.name, [user.password, default_code])["result"] == "PAM_AUTH_ERR"
    code = twofa.code(secret, algorithm="SHA256", digits=8, period=60)
    result = st.login(user.name, [user.password, code])
    assert prompts(result) == [PASSWORD, CODE]
    assert result["result"] == "PAM_SUCCESS"


def test_sudo_style_retry_after_a_wrong_password_succeeds_on_the_same_handle(make_user, twofa):
    user, secret = enrolled_world(make_user, twofa)
    code = twofa.code(secret)
    report = run_driver(
        "twofa-e2e-sudo", user.name,
        ["typo-" + user.password, code, user.password, code],
        stack(twofa, name="twofa-e2e-sudo").confdir, tries=2,
    )
    first, second = report["tries"]
    assert prompts(first) == [PASSWORD, CODE]
    assert first["result"] == "PAM_AUTH_ERR"
    assert prompts(second) == [PASSWORD, CODE]
    assert second["result"] == "PAM_SUCCESS"


def test_sudo_style_retry_after_a_wrong_code_succeeds_on_the_same_handle(make_user, twofa):
    user, secret = enrolled_world(make_user, twofa)
    report = run_driver(
        "twofa-e2e-sudo", user.name,
        [user.password, wrong_code(twofa, secret), user.password, twofa.code(secret)],
        stack(twofa, name="twofa-e2e-sudo").confdir, tries=2,
    )
    assert [t["result"] for t in report["tries"]] == ["PAM_AUTH_ERR", "PAM_SUCCESS"]


# ----------------------------------------------------------------------------------------------
# Unenrolled users and unknown names


def comparable(result: dict) -> dict:
    """What a person at the prompt can observe of one try, minus the randomness libpam adds to
    the fail delay (see tests/driver): the prompts and messages, the result and the delay libpam
    applies, which is the largest one requested (how many modules asked is not observable: a
    right password skips the password_failed line)."""
    return {
        "messages": result["messages"],
        "result": result["result"],
        "fail_delay_requested_usec": result["fail_delay_requested_usec"],
    }


def test_unenrolled_user_and_unknown_name_see_exactly_what_an_enrolled_user_with_a_wrong_password_sees(
    make_user, twofa
):
    enrolled, secret = enrolled_world(make_user, twofa, unenrolled="deny")
    unenrolled = make_user()
    unknown = "twofa-e2e-nosuch-" + secrets.token_hex(4)
    st = stack(twofa)
    code = twofa.code(secret)
    transcripts = {
        "enrolled, wrong password": st.login(enrolled.name, ["bad-" + enrolled.password, code]),
        "unenrolled, right password": st.login(unenrolled.name, [unenrolled.password, code]),
        "unenrolled, wrong password": st.login(unenrolled.name, ["bad-" + unenrolled.password, code]),
        "unknown name": st.login(unknown, ["bad-password", code]),
    }
    reference = comparable(transcripts["enrolled, wrong password"])
    assert reference["messages"] == [
        {"style": "echo_off", "text": "Password: "},
        {"style": "echo_off", "text": "Verification code: "},
    ]
    assert reference["result"] == "PAM_AUTH_ERR"
    assert reference["fail_delay_requested_usec"] == TWO_SECONDS
    for what, result in transcripts.items():
        assert comparable(result) == reference, what
        assert result["report"]["unused_answers"] == 0, what
        # What libpam would sleep: within [0.5, 1.5) of the 2 s requested.
        assert TWO_SECONDS // 2 <= result["fail_delay_usec"] < TWO_SECONDS * 3 // 2, what


def test_every_failure_path_requests_the_same_two_second_delay(make_user, twofa):
    user, secret = enrolled_world(make_user, twofa)
    st = stack(twofa)
    cases = {
        "wrong code": [user.password, wrong_code(twofa, secret)],
        "wrong password": ["bad-" + user.password, twofa.code(secret)],
        "short code": [user.password, "1"],
    }
    for what, answers in cases.items():
        result = st.login(user.name, answers)
        assert result["result"] == "PAM_AUTH_ERR", what
        # pam_unix asks 2 s; every pam_twofa line that ran asked 2 s too.
        assert result["fail_delay_requests"], what
        assert set(result["fail_delay_requests"]) == {TWO_SECONDS}, what


def test_unenrolled_user_is_let_in_without_a_code_under_allow(make_user, twofa):
    twofa.write_config(unenrolled="allow")
    enroll_colleague(make_user, twofa)
    user = make_user()
    result = stack(twofa).login(user.name, [user.password, "123456"])
    assert prompts(result) == [PASSWORD]
    assert result["result"] == "PAM_SUCCESS"
    assert result["report"]["unused_answers"] == 1


def test_unenrolled_user_under_allow_with_a_wrong_password_is_asked_for_a_code_and_refused(make_user, twofa):
    twofa.write_config(unenrolled="allow")
    enroll_colleague(make_user, twofa)
    user = make_user()
    result = stack(twofa).login(user.name, ["bad-" + user.password, "123456"])
    assert prompts(result) == [PASSWORD, CODE]
    assert result["result"] == "PAM_AUTH_ERR"


def test_enrolled_user_under_allow_still_needs_the_code(make_user, twofa):
    user, secret = enrolled_world(make_user, twofa, unenrolled="allow")
    st = stack(twofa)
    refused = st.login(user.name, [user.password, wrong_code(twofa, secret)])
    assert prompts(refused) == [PASSWORD, CODE]
    assert refused["result"] == "PAM_AUTH_ERR"


def test_no_file_is_created_in_storage_for_an_unknown_name(make_user, twofa):
    twofa.write_config()
    enroll_colleague(make_user, twofa)
    before = twofa.storage_files()
    st = stack(twofa)
    for name in ["twofa-e2e-nosuch-" + secrets.token_hex(4), "TWOFA-E2E-NOSUCH", "../twofa-e2e-evil"]:
        result = st.login(name, ["some-password", "123456"])
        assert result["result"] == "PAM_AUTH_ERR", name
    assert twofa.storage_files() == before
    assert not list(twofa.root.rglob("*evil*"))


# ----------------------------------------------------------------------------------------------
# sshd's stack: a public key already verified


def test_after_a_public_key_only_the_code_is_asked(make_user, twofa):
    user, secret = enrolled_world(make_user, twofa)
    result = stack(twofa, "sshd").login(
        user.name, [twofa.code(secret)], env={"SSH_AUTH_INFO_0": PUBKEY}
    )
    assert prompts(result) == [CODE]
    assert result["result"] == "PAM_SUCCESS"


def test_after_a_public_key_a_wrong_code_is_refused(make_user, twofa):
    user, secret = enrolled_world(make_user, twofa)
    result = stack(twofa, "sshd").login(
        user.name, [wrong_code(twofa, secret)], env={"SSH_AUTH_INFO_0": PUBKEY}
    )
    assert prompts(result) == [CODE]
    assert result["result"] == "PAM_AUTH_ERR"


def test_without_a_public_key_sshd_asks_password_then_code(make_user, twofa):
    user, secret = enrolled_world(make_user, twofa)
    result = stack(twofa, "sshd").login(user.name, [user.password, twofa.code(secret)])
    assert prompts(result) == [PASSWORD, CODE]
    assert result["result"] == "PAM_SUCCESS"


def test_other_ssh_methods_in_ssh_auth_info_still_need_the_password(make_user, twofa):
    user, secret = enrolled_world(make_user, twofa)
    result = stack(twofa, "sshd").login(
        user.name, [user.password, twofa.code(secret)],
        env={"SSH_AUTH_INFO_0": "keyboard-interactive"},
    )
    assert prompts(result) == [PASSWORD, CODE]
    assert result["result"] == "PAM_SUCCESS"


def test_a_public_key_claimed_only_in_the_process_environment_still_needs_the_password(make_user, twofa):
    user, secret = enrolled_world(make_user, twofa)
    st = stack(twofa, "sshd")
    code = twofa.code(secret)
    # What `SSH_AUTH_INFO_0=... sudo ...` would give: the variable in the process environment.
    result = st.login(user.name, [user.password, code], process_env={"SSH_AUTH_INFO_0": PUBKEY})
    assert prompts(result) == [PASSWORD, CODE]
    assert result["result"] == "PAM_SUCCESS"


# ----------------------------------------------------------------------------------------------
# Broken configuration and files: fail closed, say why in syslog

BROKEN_CONFIGS = {
    "unknown key": ("[policy]\nunenrolled = \"deny\"\ncolour = \"blue\"\n", "policy.colour"),
    "bad value": ("[policy]\nunenrolled = \"deny\"\n", "totp.digits"),
}


def broken_config_text(twofa, kind: str) -> str:
    digits = "12" if kind == "bad value" else "6"
    policy = BROKEN_CONFIGS[kind][0]
    return (
        "version = 1\n[totp]\nissuer = \"twofa\"\nalgorithm = \"SHA1\"\n"
        f"digits = {digits}\nperiod = 30\nwindow = 1\n{policy}"
        f"[storage]\ndir = \"{twofa.storage}\"\n"
    )


@pytest.mark.parametrize("kind", ["unknown key", "bad value", "missing config= file"])
def test_broken_config_fails_closed_with_one_syslog_line_naming_the_file(make_user, twofa, syslog, kind):
    user, secret = enrolled_world(make_user, twofa)
    if kind == "missing config= file":
        path = twofa.root / "missing.toml"
        st = stack(twofa, config=path)
    else:
        path = twofa.config
        twofa.write_config_text(broken_config_text(twofa, kind))
        st = stack(twofa)
    syslog.clear()
    result = st.login(user.name, [user.password, twofa.code(secret)])
    assert result["result"] == "PAM_AUTHINFO_UNAVAIL"
    lines = lines_about(syslog, user.name)
    assert len(lines) == 1, lines
    assert str(path) in lines[0]
    (fields,) = parse_lines(lines)
    assert (fields["outcome"], fields["reason"]) == ("error", "config-error")
    assert fields["user"] == user.name


def test_corrupted_enrollment_fails_closed_with_a_syslog_line(make_user, twofa, syslog):
    user, secret = enrolled_world(make_user, twofa)
    files = enrollment_files(twofa, user.name)
    assert len(files) == 1, f"expected one enrollment file for {user.name} under users/: {files}"
    files[0].write_text("version = 1\n[[[ this is not an enrollment\n")
    syslog.clear()
    result = stack(twofa).login(user.name, [user.password, twofa.code(secret)])
    assert result["result"] == "PAM_AUTHINFO_UNAVAIL"
    lines = lines_about(syslog, user.name)
    assert len(lines) == 1, lines
    line = lines[0]
    (fields,) = parse_lines([line])
    assert (fields["outcome"], fields["reason"]) == ("error", "enrollment-error")
    assert str(files[0]) in line


def test_every_decision_is_logged_once_with_user_outcome_and_reason_and_never_a_secret(
    make_user, twofa, syslog
):
    user, secret = enrolled_world(make_user, twofa)
    unenrolled = make_user()
    unknown = "twofa-e2e-nosuch-" + secrets.token_hex(4)
    st = stack(twofa)
    code = twofa.code(secret)
    bad = wrong_code(twofa, secret)
    typed = {code, bad}
    passwords = {user.password, unenrolled.password, "bad-" + user.password}
    cases = [
        (user.name, [user.password, bad], "deny", {"wrong-code"}),
        (user.name, ["bad-" + user.password, code], "deny", {"password-failed"}),
        (user.name, [user.password, code], "success", {"ok"}),
        (user.name, [user.password, code], "deny", {"replayed-code"}),
        (unenrolled.name, [unenrolled.password, code], "deny", {"not-enrolled"}),
        # The password of a name without an account always fails: either reason is honest.
        (unknown, ["bad-" + user.password, code], "deny", {"unknown-user", "password-failed"}),
    ]
    for name, answers, outcome, reasons in cases:
        syslog.clear()
        st.login(name, answers, rhost="192.0.2.7")
        lines = lines_about(syslog, name)
        assert len(lines) == 1, (name, answers[1:], lines)
        (fields,) = parse_lines(lines)
        assert fields["service"] == st.name
        assert fields["user"] == name
        assert fields["rhost"] == "192.0.2.7"
        assert fields["outcome"] == outcome, lines[0]
        assert fields["reason"] in reasons, lines[0]
        for line in syslog.lines():
            message = line[line.find("pam_twofa("):]
            for c in typed:
                assert c not in message, f"a code in the log: {line!r}"
            for p in passwords:
                assert p not in line, f"a password in the log: {line!r}"
            assert secret.lower() not in line.lower(), f"the secret in the log: {line!r}"
    # Under allow, an unenrolled user let in is logged as ignored.
    twofa.write_config(unenrolled="allow")
    syslog.clear()
    assert st.login(unenrolled.name, [unenrolled.password])["result"] == "PAM_SUCCESS"
    (fields,) = parse_lines(lines_about(syslog, unenrolled.name))
    assert (fields["outcome"], fields["reason"]) == ("ignore", "not-enrolled")


def test_login_works_without_a_syslog_daemon(make_user, twofa):
    if os.path.lexists("/dev/log"):
        pytest.skip("/dev/log exists here: cannot show a login without one")
    user, secret = enrolled_world(make_user, twofa)
    st = stack(twofa)
    assert st.login(user.name, [user.password, twofa.code(secret)])["result"] == "PAM_SUCCESS"
    assert st.login(user.name, [user.password, wrong_code(twofa, secret)])["result"] == "PAM_AUTH_ERR"


def test_the_module_prints_nothing_on_stdout_or_stderr(make_user, twofa):
    user, secret = enrolled_world(make_user, twofa)
    quiet = stack(twofa, name="twofa-e2e-quiet")
    chatty = stack(twofa, name="twofa-e2e-debug", debug=True)
    missing = stack(twofa, name="twofa-e2e-missing", config=twofa.root / "missing.toml")
    runs = [
        (quiet, user.name, [user.password, wrong_code(twofa, secret)], {}),
        (chatty, user.name, ["bad", twofa.code(secret)], {}),
        (chatty, "twofa-e2e-nosuch-x", ["bad", "123456"], {}),
        (missing, user.name, [user.password, "123456"], {}),
        (quiet, user.name, [], {}),  # the conversation fails at the first prompt
        (chatty, user.name, [user.password, twofa.code(secret)], {"acct": True}),
    ]
    for st, name, answers, opts in runs:
        proc = run_driver_process(st.name, name, answers, st.confdir, **opts)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""
        assert proc.stdout.count("\n") == 1 and proc.stdout.endswith("}\n"), proc.stdout
        json.loads(proc.stdout)


# ----------------------------------------------------------------------------------------------
# pamtester (Debian's), through /etc/pam.d


def pamtester(service: str, user, password: str, code: str) -> tuple[int, str]:
    child = pexpect.spawn("pamtester", [service, user.name, "authenticate"], encoding="utf-8", timeout=20)
    try:
        child.expect_exact("Password: ")
        child.sendline(password)
        child.expect_exact("Verification code: ")
        child.sendline(code)
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    return child.exitstatus, child.before


def test_pamtester_logs_in_with_password_and_code(make_user, twofa):
    user, secret = enrolled_world(make_user, twofa)
    service = twofa.pam_service(twofa.service_text("sudo"))
    status, output = pamtester(service, user, user.password, twofa.code(secret))
    assert "successfully authenticated" in output
    assert status == 0


def test_pamtester_is_refused_with_a_wrong_code(make_user, twofa):
    user, secret = enrolled_world(make_user, twofa)
    service = twofa.pam_service(twofa.service_text("sudo"))
    status, output = pamtester(service, user, user.password, wrong_code(twofa, secret))
    assert "Authentication failure" in output
    assert status != 0


# ----------------------------------------------------------------------------------------------
# The CLI


def check_config_errors(twofa, path: Path) -> tuple[int, list[str]]:
    proc = twofa.cli("check-config", str(path), check=False)
    out = (proc.stdout + proc.stderr).splitlines()
    return proc.returncode, [line for line in out if line.startswith("error:")]


def test_check_config_accepts_a_valid_file(twofa):
    twofa.write_config()
    proc = twofa.cli("check-config", str(twofa.config), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("kind", ["unknown key", "bad value"])
def test_check_config_names_file_line_and_key(twofa, kind):
    text = broken_config_text(twofa, kind)
    twofa.write_config_text(text)
    key = BROKEN_CONFIGS[kind][1]
    needle = "colour = " if kind == "unknown key" else "digits = "
    lineno = next(i for i, line in enumerate(text.splitlines(), 1) if line.startswith(needle))
    status, errors = check_config_errors(twofa, twofa.config)
    assert status != 0
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"error: {twofa.config}:{lineno}: key `{key}`"), errors[0]


def test_enroll_refuses_to_overwrite_without_force(make_user, twofa):
    user, first = enrolled_world(make_user, twofa)
    files = enrollment_files(twofa, user.name)
    before = {p: p.read_bytes() for p in files}
    second = base64.b32encode(os.urandom(20)).decode()
    proc = twofa.cli("enroll", user.name, "--secret-file", "-", "--no-verify", input=second + "\n", check=False)
    assert proc.returncode == 1
    assert "error" in (proc.stdout + proc.stderr).lower()
    assert {p: p.read_bytes() for p in enrollment_files(twofa, user.name)} == before
    st = stack(twofa)
    # Still the first secret: its code (one step back) logs in.
    assert login_at_step(st, twofa, user, first, -1)["result"] == "PAM_SUCCESS"
    # With --force, the second secret replaces it.
    twofa.enroll(user.name, secret=second, force=True)
    assert login_at_step(st, twofa, user, second, 0)["result"] == "PAM_SUCCESS"
    assert login_at_step(st, twofa, user, first, 1)["result"] == "PAM_AUTH_ERR"


def test_enrolling_an_unknown_name_fails_clearly_and_creates_nothing(make_user, twofa):
    twofa.write_config()
    enroll_colleague(make_user, twofa)
    before = twofa.storage_files()
    name = "twofa-e2e-nosuch-" + secrets.token_hex(4)
    proc = twofa.cli("enroll", name, "--secret-file", "-", "--no-verify", input="JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n", check=False)
    assert proc.returncode == 1
    assert "error: no account named" in proc.stderr + proc.stdout
    assert twofa.storage_files() == before


def spawn_interactive_enroll(twofa, user_name: str, *extra: str) -> tuple[pexpect.spawn, str]:
    child = pexpect.spawn(
        str(ENROLL), ["--config", str(twofa.config), "enroll", user_name, *extra],
        encoding="utf-8", timeout=20, dimensions=(80, 250), preexec_fn=lambda: os.umask(0),
    )
    child.expect(r"otpauth://totp/[A-Za-z0-9%._~:@!$&'()*+,;=/?#\[\]-]+")
    uri = child.match.group(0)
    child.expect_exact("Verification code: ")
    return child, uri


def uri_params(uri: str) -> dict:
    query = urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)
    return {
        "secret": query["secret"][0],
        "algorithm": query.get("algorithm", ["SHA1"])[0],
        "digits": int(query.get("digits", ["6"])[0]),
        "period": int(query.get("period", ["30"])[0]),
    }


def finish(child: pexpect.spawn) -> int:
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus


def test_interactive_enrollment_then_login_with_the_next_code(make_user, twofa):
    twofa.write_config()
    user = make_user()
    child, uri = spawn_interactive_enroll(twofa, user.name)
    try:
        p = uri_params(uri)
        child.sendline(twofa.code(p["secret"], p["algorithm"], p["digits"], p["period"]))
        assert finish(child) == 0, child.before
    finally:
        child.close(force=True)
    assert user.name in urllib.parse.unquote(uri)
    later = twofa.code(p["secret"], p["algorithm"], p["digits"], p["period"], at=time.time() + p["period"])
    assert stack(twofa).login(user.name, [user.password, later])["result"] == "PAM_SUCCESS"


def test_a_mistyped_code_at_enrollment_gets_three_tries_then_an_error(make_user, twofa):
    twofa.write_config()
    user = make_user()
    child, uri = spawn_interactive_enroll(twofa, user.name)
    try:
        p = uri_params(uri)
        for attempt in range(3):
            child.sendline(wrong_code(twofa, p["secret"], p["algorithm"], p["digits"], p["period"]))
            index = child.expect([pexpect.EOF, "Verification code: "])
            if attempt < 2:
                assert index == 1, f"gave up after {attempt + 1} wrong code(s): {child.before!r}"
                assert "not right" in child.before.lower()
            else:
                assert index == 0, f"asked a fourth time: {child.before!r}"
        child.close()
        assert child.exitstatus == 1
        assert "the code did not match; nothing was saved" in child.before.lower()
    finally:
        child.close(force=True)


def test_a_code_typed_right_on_the_second_try_enrolls(make_user, twofa):
    twofa.write_config()
    user = make_user()
    child, uri = spawn_interactive_enroll(twofa, user.name)
    try:
        p = uri_params(uri)
        child.sendline(wrong_code(twofa, p["secret"], p["algorithm"], p["digits"], p["period"]))
        assert child.expect([pexpect.EOF, "Verification code: "]) == 1
        child.sendline(twofa.code(p["secret"], p["algorithm"], int(p["digits"]), int(p["period"])))
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0, child.before
    finally:
        child.close(force=True)
    assert len(enrollment_files(twofa, user.name)) == 1


def test_a_wrong_verification_code_enrolls_nothing(make_user, twofa):
    twofa.write_config()
    enroll_colleague(make_user, twofa)
    user = make_user()
    before = twofa.storage_files()
    child, uri = spawn_interactive_enroll(twofa, user.name)
    try:
        p = uri_params(uri)
        # Only wrong codes, as often as the CLI asks (bounded).
        for _ in range(5):
            child.sendline(wrong_code(twofa, p["secret"], p["algorithm"], p["digits"], p["period"]))
            if child.expect([pexpect.EOF, "Verification code: "]) == 0:
                break
        else:
            pytest.fail("twofa-enroll kept asking for codes")
        child.close()
        assert child.exitstatus != 0
    finally:
        child.close(force=True)
    assert enrollment_files(twofa, user.name) == []
    assert twofa.storage_files() == before
    # Logging in with the shown secret's code is refused, as for anyone unenrolled...
    result = stack(twofa).login(user.name, [user.password, twofa.code(p["secret"])])
    assert result["result"] == "PAM_AUTH_ERR"
    # ...and enrolling again needs no --force: nothing was written.
    twofa.enroll(user.name)


def test_qr_png_is_private_and_decodes_to_the_printed_uri(make_user, twofa):
    twofa.write_config()
    user = make_user()
    png = twofa.root / "qr.png"
    child, uri = spawn_interactive_enroll(twofa, user.name, "--qr-png", str(png))
    try:
        p = uri_params(uri)
        child.sendline(twofa.code(p["secret"], p["algorithm"], p["digits"], p["period"]))
        assert finish(child) == 0, child.before
    finally:
        child.close(force=True)
    assert stat.S_IMODE(png.stat().st_mode) == 0o600
    decoded = subprocess.run(["zbarimg", "--raw", "-q", str(png)], capture_output=True, text=True, timeout=30)
    assert decoded.returncode == 0, decoded.stderr
    assert decoded.stdout.strip() == uri


def status_json(twofa, user_name: str) -> dict:
    proc = twofa.cli("status", user_name, "--json", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def test_status_shows_the_user_is_enrolled(make_user, twofa):
    user, _ = enrolled_world(make_user, twofa)
    other = make_user()
    text = twofa.cli("status", user.name).stdout
    assert user.name in text
    assert status_json(twofa, user.name).get("enrolled") is True
    assert status_json(twofa, other.name).get("enrolled") is False
    assert twofa.cli("status", other.name, check=False).stdout != text


def test_disable_makes_the_next_login_be_treated_as_unenrolled(make_user, twofa):
    user, secret = enrolled_world(make_user, twofa)
    st = stack(twofa)
    assert st.login(user.name, [user.password, twofa.code(secret)])["result"] == "PAM_SUCCESS"
    twofa.cli("disable", user.name)
    # Under deny: the next step's code no longer helps.
    refused = st.login(user.name, [user.password, twofa.code(secret, at=time.time() + 30)])
    assert prompts(refused) == [PASSWORD, CODE]
    assert refused["result"] == "PAM_AUTH_ERR"
    # Under allow: let in without a code, like anyone unenrolled.
    twofa.write_config(unenrolled="allow")
    allowed = st.login(user.name, [user.password])
    assert prompts(allowed) == [PASSWORD]
    assert allowed["result"] == "PAM_SUCCESS"
    assert status_json(twofa, user.name).get("enrolled") is False
