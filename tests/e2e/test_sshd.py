"""End to end: a real OpenSSH 9.2 server on 127.0.0.1 with the shipped PAM stack
(conf/pam.d/sshd's auth lines) and the shipped drop-in (conf/sshd_config.d/twofa.conf).

Clients: paramiko, to see each keyboard-interactive prompt and its echo flag exactly, and the
real `ssh` client through pexpect. One fresh user per test, so no test waits for a TOTP step.
"""

import os
import re

import pexpect
import pytest

from daemons import (  # noqa: F401  (fixtures)
    CODE_PROMPT, PASSWORD_PROMPT, Prompt, give_key, keydir, run_sudo, ssh_client_args,
    ssh_login, ssh_password_method_offered, start_sshd, sudoers, twofa_sshd, twofa_sudo, wrong_code,
)

PASSWORD_THEN_CODE = [Prompt(PASSWORD_PROMPT, False), Prompt(CODE_PROMPT, False)]
CODE_ONLY = [Prompt(CODE_PROMPT, False)]


@pytest.fixture(autouse=True)
def policy(twofa):
    """The default policy (unenrolled = "deny"); a test may rewrite it."""
    twofa.write_config()


@pytest.fixture
def enrolled(make_user, twofa):
    """A fresh user with a password and an enrollment: (user, secret)."""
    user = make_user()
    return user, twofa.enroll(user.name)


def login(server, user, password, code, **kw):
    return ssh_login(server, user.name if hasattr(user, "name") else user,
                     answers={PASSWORD_PROMPT: password, CODE_PROMPT: code}, **kw)


# -- logging in


def test_password_and_code_log_in(twofa_sshd, twofa, enrolled):
    user, secret = enrolled
    att = login(twofa_sshd, user, user.password, twofa.code(secret))
    assert att.prompts == PASSWORD_THEN_CODE
    assert att.authenticated, (att, twofa_sshd.log()[-4000:])
    assert att.exit_status == 0
    assert att.output.strip() == user.name


def test_key_and_code_log_in_asking_only_the_code(twofa_sshd, twofa, enrolled, keydir):
    user, secret = enrolled
    key = give_key(user, keydir)
    att = login(twofa_sshd, user, user.password, twofa.code(secret), key=key)
    assert att.publickey == "partial" and att.publickey_next == ["keyboard-interactive"]
    assert att.prompts == CODE_ONLY, "after a key only the code is asked, no Password prompt"
    assert att.authenticated, (att, twofa_sshd.log()[-4000:])
    assert att.output.strip() == user.name


def test_key_alone_is_refused(twofa_sshd, enrolled, keydir):
    user, _ = enrolled
    key = give_key(user, keydir)
    att = ssh_login(twofa_sshd, user.name, key=key, kbd=False)
    # The key is accepted as a first step only: keyboard-interactive (the code) must follow.
    assert att.publickey == "partial"
    assert att.publickey_next == ["keyboard-interactive"]
    assert not att.authenticated
    # The real client with nothing but the key (BatchMode: it cannot answer a prompt) gets no session.
    child = pexpect.spawn("ssh", ["-o", "BatchMode=yes", *ssh_client_args(twofa_sshd, user.name, key=key),
                                  "echo", "twofa-e2e-session-opened"],
                          encoding="utf-8", timeout=20)
    out = child.read()
    child.close()
    assert "Permission denied" in out
    assert "twofa-e2e-session-opened" not in out
    assert child.exitstatus == 255


def test_key_with_wrong_code_is_refused(twofa_sshd, twofa, enrolled, keydir):
    user, secret = enrolled
    key = give_key(user, keydir)
    att = login(twofa_sshd, user, user.password, wrong_code(twofa, secret), key=key)
    assert att.publickey == "partial"
    assert att.prompts == CODE_ONLY
    assert not att.authenticated


def test_password_method_outside_pam_is_not_offered(twofa_sshd, enrolled):
    """A password through SSH's own "password" method would skip the code: sshd must refuse the
    method and offer only the key and keyboard-interactive (PAM: password and code)."""
    user, _ = enrolled
    allowed = ssh_password_method_offered(twofa_sshd, user.name, user.password)
    assert allowed, "sshd accepted a password alone through the SSH password method"
    assert sorted(allowed) == ["keyboard-interactive", "publickey"]


# -- refusals


def test_wrong_code_is_refused(twofa_sshd, twofa, enrolled):
    user, secret = enrolled
    att = login(twofa_sshd, user, user.password, wrong_code(twofa, secret))
    assert att.prompts == PASSWORD_THEN_CODE
    assert not att.authenticated
    assert att.kbd_result == "failed"


def test_wrong_password_is_refused_and_does_not_spend_the_code(twofa_sshd, twofa, enrolled):
    user, secret = enrolled
    code = twofa.code(secret)
    first = login(twofa_sshd, user, user.password + "x", code)
    assert first.prompts == PASSWORD_THEN_CODE, "the code is asked even after a wrong password"
    assert not first.authenticated
    # The same code, promptly (window=1 keeps it valid into the next step), with the right password.
    second = login(twofa_sshd, user, user.password, code)
    assert second.authenticated, ("the code was spent by a login with a wrong password",
                                  second, twofa_sshd.log()[-4000:])
    assert second.output.strip() == user.name


def test_replayed_code_is_refused(twofa_sshd, twofa, enrolled):
    user, secret = enrolled
    code = twofa.code(secret)
    first = login(twofa_sshd, user, user.password, code)
    assert first.authenticated, (first, twofa_sshd.log()[-4000:])
    again = login(twofa_sshd, user, user.password, code)
    assert again.prompts == PASSWORD_THEN_CODE
    assert not again.authenticated


def test_code_spent_through_sudo_is_refused_by_sshd(twofa_sshd, twofa, twofa_sudo, enrolled):
    user, secret = enrolled
    twofa_sudo(user.name)
    code = twofa.code(secret)
    run = run_sudo(user, [user.password, code])
    assert run.exit_status == 0 and run.output_lines[-1:] == ["root"], run
    att = login(twofa_sshd, user, user.password, code)
    assert att.prompts == PASSWORD_THEN_CODE
    assert not att.authenticated, "a code spent through sudo was accepted again by sshd"


# -- what a stranger can learn


def test_unenrolled_user_is_refused_with_the_same_prompts(twofa_sshd, twofa, make_user, enrolled):
    known, secret = enrolled
    baseline = login(twofa_sshd, known, known.password, wrong_code(twofa, secret))
    stranger = make_user()  # not enrolled; policy unenrolled = "deny"
    att = login(twofa_sshd, stranger, stranger.password, "123456")
    assert not att.authenticated
    assert att.prompts == baseline.prompts == PASSWORD_THEN_CODE
    assert att.messages == baseline.messages
    assert att.kbd_result == baseline.kbd_result == "failed"


def test_unknown_account_gets_the_same_prompts(twofa_sshd, twofa, enrolled):
    known, secret = enrolled
    baseline = login(twofa_sshd, known, known.password + "x", twofa.code(secret))
    ghost = "twofa-e2e-ghost-" + os.urandom(4).hex()
    before = twofa.storage_files()
    att = login(twofa_sshd, ghost, "some-password", "123456")
    assert not att.authenticated
    assert att.prompts == baseline.prompts == PASSWORD_THEN_CODE
    assert att.messages == baseline.messages
    assert att.kbd_result == baseline.kbd_result == "failed"
    assert twofa.storage_files() == before, "a name with no account left a file in storage"


# -- policy


def test_unenrolled_user_logs_in_with_password_alone_when_allowed(twofa_sshd, twofa, make_user):
    twofa.write_config(unenrolled="allow")
    user = make_user()
    att = login(twofa_sshd, user, user.password, "123456")
    assert att.prompts == [Prompt(PASSWORD_PROMPT, False)], "no code asked from an unenrolled user"
    assert att.authenticated, (att, twofa_sshd.log()[-4000:])
    assert att.output.strip() == user.name


def test_unenrolled_user_with_wrong_password_is_refused_when_allowed(twofa_sshd, twofa, make_user):
    twofa.write_config(unenrolled="allow")
    user = make_user()
    att = login(twofa_sshd, user, user.password + "x", "123456")
    assert not att.authenticated


# -- the real OpenSSH client


def _ssh(server, user, key=None):
    return pexpect.spawn("ssh", [*ssh_client_args(server, user.name, key=key), "id", "-un"],
                         encoding="utf-8", timeout=20)


def test_ssh_client_logs_in_with_password_and_code(twofa_sshd, twofa, enrolled):
    user, secret = enrolled
    child = _ssh(twofa_sshd, user)
    try:
        child.expect(r"Password: ")
        shown = child.before + child.after
        child.sendline(user.password)
        child.expect(re.escape(CODE_PROMPT))
        child.sendline(twofa.code(secret))
        rest = child.read()
    finally:
        child.close()
    # OpenSSH's client shows keyboard-interactive prompts as "(user@host) Password: ".
    assert shown.strip().endswith("Password:")
    assert user.name in rest.splitlines()[-1]
    assert child.exitstatus == 0


def test_ssh_client_with_key_is_asked_only_the_code(twofa_sshd, twofa, enrolled, keydir):
    user, secret = enrolled
    key = give_key(user, keydir)
    child = _ssh(twofa_sshd, user, key=key)
    try:
        i = child.expect([re.escape(CODE_PROMPT), r"Password: "])
        assert i == 0, "asked for a password after the key"
        child.sendline(twofa.code(secret))
        rest = child.read()
    finally:
        child.close()
    assert "Password" not in rest
    assert rest.strip().splitlines()[-1].strip() == user.name
    assert child.exitstatus == 0
