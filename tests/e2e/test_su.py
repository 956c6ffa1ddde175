"""su (util-linux) with the shipped conf/pam.d/su: the target's password, then a code.

util-linux su hard-codes its PAM service name (`su`; `su -` uses `su-l`, which Debian's file
makes `include su`). So each run happens under ``unshare -m`` (a private mount namespace, with
private propagation: util-linux unshare's default) where a private service file -- the auth
lines of conf/pam.d/su plus the contract's account/session lines -- is bind-mounted over
/etc/pam.d/su. The real /etc/pam.d/su is never touched; every test checks that it is unchanged
and that no bind mount over it is visible outside.
"""

from __future__ import annotations

import hashlib
import os
import shlex
from pathlib import Path

import pexpect
import pytest

from conftest import ACCOUNT_SESSION
from ftp import wrong_code

REAL_SU = Path("/etc/pam.d/su")
PASSWORD_PROMPT = "Password: "
CODE_PROMPT = "Verification code: "
FAILURE = "su: Authentication failure"
SU_TIMEOUT = 20  # seconds, any single wait for su output (a failure includes PAM's ~2 s delay)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _su_mounted_here() -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == str(REAL_SU) for line in f)


@pytest.fixture
def real_su_untouched():
    before = (_digest(REAL_SU), os.stat(REAL_SU).st_ino)
    yield
    assert not _su_mounted_here(), "a bind mount over /etc/pam.d/su leaked out of the namespace"
    assert (_digest(REAL_SU), os.stat(REAL_SU).st_ino) == before, "/etc/pam.d/su changed"


@pytest.fixture
def su_stack(twofa, real_su_untouched) -> Path:
    """The private su service file (the policy is written first)."""
    twofa.write_config()
    path = twofa.root / "pam.d-su"
    path.write_text(twofa.auth_lines("su") + ACCOUNT_SESSION)
    os.chmod(path, 0o644)
    return path


@pytest.fixture
def users(make_user, twofa, su_stack):
    caller = make_user()
    target = make_user()
    secret = twofa.enroll(target.name)
    return caller, target, secret


def spawn_su(stack: Path, target: str, caller=None) -> pexpect.spawn:
    """`su - TARGET -c "id -un"` with `stack` as /etc/pam.d/su, run as `caller` (None: root)."""
    su = f"su - {shlex.quote(target)} -c 'id -un'"
    if caller is not None:
        su = f"setpriv --reuid={caller.uid} --regid={caller.uid} --init-groups {su}"
    script = f"mount --bind {shlex.quote(str(stack))} {REAL_SU} && exec {su}"
    child = pexpect.spawn(
        "unshare", ["-m", "sh", "-c", script],
        encoding="utf-8", timeout=SU_TIMEOUT, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"},
    )
    return child


def finish(child: pexpect.spawn) -> tuple[str, int]:
    """Everything printed until su exits, and its exit status."""
    out = child.read()  # to EOF, bounded by the spawn timeout
    child.close()
    status = child.exitstatus if child.exitstatus is not None else 128 + (child.signalstatus or 0)
    return out, status


def run_su(stack: Path, target, caller, password: str, code: str) -> tuple[str, int]:
    child = spawn_su(stack, target.name, caller)
    try:
        child.expect_exact(PASSWORD_PROMPT)
        child.sendline(password)
        child.expect_exact(CODE_PROMPT)
        child.sendline(code)
        return finish(child)
    finally:
        child.close(force=True)


def ran_as(out: str, name: str) -> bool:
    return name in [line.strip() for line in out.splitlines()]


def test_password_then_code_runs_the_command_as_the_target(twofa, su_stack, users):
    caller, target, secret = users
    out, status = run_su(su_stack, target, caller, target.password, twofa.code(secret))
    assert status == 0, out
    assert ran_as(out, target.name), out


def test_prompts_are_password_then_verification_code(twofa, su_stack, users):
    caller, target, secret = users
    child = spawn_su(su_stack, target.name, caller)
    try:
        child.expect_exact(PASSWORD_PROMPT)
        assert child.before.strip() == "", child.before  # nothing before the first prompt
        child.sendline(target.password)
        child.expect_exact(CODE_PROMPT)
        assert child.before.strip() == "", child.before  # nothing between the prompts
        child.sendline(twofa.code(secret))
        out, status = finish(child)
    finally:
        child.close(force=True)
    assert status == 0 and ran_as(out, target.name), out


def test_wrong_code_is_refused(twofa, su_stack, users):
    caller, target, secret = users
    out, status = run_su(su_stack, target, caller, target.password, wrong_code(twofa, secret))
    assert status != 0
    assert FAILURE in out, out
    assert not ran_as(out, target.name), out


def test_wrong_password_with_right_code_is_refused_and_does_not_spend_the_code(twofa, su_stack, users):
    caller, target, secret = users
    code = twofa.code(secret)
    out, status = run_su(su_stack, target, caller, "not-" + target.password, code)
    assert status != 0 and FAILURE in out, out
    assert not ran_as(out, target.name), out
    out, status = run_su(su_stack, target, caller, target.password, code)
    assert status == 0 and ran_as(out, target.name), out


def test_root_su_asks_nothing_and_runs_the_command(twofa, su_stack, users):
    _caller, target, _secret = users
    child = spawn_su(su_stack, target.name, caller=None)
    try:
        out, status = finish(child)
    finally:
        child.close(force=True)
    assert status == 0, out
    assert ran_as(out, target.name), out
    assert PASSWORD_PROMPT.strip() not in out and CODE_PROMPT.strip() not in out, out
