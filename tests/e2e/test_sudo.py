"""End to end: the real sudo (1.9.13) with the auth lines of conf/pam.d/sudo.

Each test's user gets a sudoers drop-in /etc/sudoers.d/twofa-e2e-* pointing sudo at a private PAM
service (`pam_service=`), with `timestamp_timeout=0`; sudo runs as that user on a real pty and the
prompts are answered as a person would. One fresh user per test, so no test waits for a TOTP step.

What the user sees: sudo replaces PAM's "Password: " by its own "[sudo] password for USER: ",
shows "Verification code: " as the module sends it, and after a refused try prints
"Sorry, try again." and starts again (up to 3 tries, on the same PAM handle).
"""


import pytest

from daemons import CODE_PROMPT, run_sudo, sudoers, twofa_sudo, wrong_code  # noqa: F401  (fixtures)


def sudo_prompt(user):
    return f"[sudo] password for {user.name}: "


@pytest.fixture(autouse=True)
def policy(twofa):
    """The default policy (unenrolled = "deny"); a test may rewrite it."""
    twofa.write_config()


@pytest.fixture
def enrolled(make_user, twofa, twofa_sudo):
    """A fresh user with a password, an enrollment and sudo rights: (user, secret)."""
    user = make_user()
    secret = twofa.enroll(user.name)
    twofa_sudo(user.name)
    return user, secret


def ran_as_root(run):
    return run.exit_status == 0 and run.output_lines[-1:] == ["root"]


def test_right_password_and_code_run_the_command(twofa, enrolled):
    user, secret = enrolled
    run = run_sudo(user, [user.password, twofa.code(secret)])
    assert run.prompts == [sudo_prompt(user), CODE_PROMPT], run
    assert ran_as_root(run), run


def test_wrong_code_is_refused(twofa, enrolled):
    user, secret = enrolled
    run = run_sudo(user, [user.password, wrong_code(twofa, secret)])  # then ^C at the next prompt
    assert run.events[:3] == [sudo_prompt(user), CODE_PROMPT, "Sorry, try again."], run
    assert not ran_as_root(run)
    assert run.exit_status != 0 or run.signal_status is not None


def test_wrong_password_with_right_code_is_refused_and_does_not_spend_the_code(twofa, enrolled):
    user, secret = enrolled
    code = twofa.code(secret)
    run = run_sudo(user, [user.password + "x", code])
    # The code is asked even after a wrong password (the prompts tell a guesser nothing) ...
    assert run.events[:3] == [sudo_prompt(user), CODE_PROMPT, "Sorry, try again."], run
    assert not ran_as_root(run)
    # ... and not spent: the same code, promptly, with the right password works.
    again = run_sudo(user, [user.password, code])
    assert again.prompts == [sudo_prompt(user), CODE_PROMPT], again
    assert ran_as_root(again), ("the code was spent by a try with a wrong password", again)


def test_replayed_code_is_refused(twofa, enrolled):
    user, secret = enrolled
    code = twofa.code(secret)
    first = run_sudo(user, [user.password, code])
    assert ran_as_root(first), first
    again = run_sudo(user, [user.password, code])
    assert again.events[:3] == [sudo_prompt(user), CODE_PROMPT, "Sorry, try again."], again
    assert not ran_as_root(again)
    # sudo sets PAM_SILENT: the user is told all the same why, and what to do.
    assert "That code was already used; wait for the next code from your app" in again.transcript, again


def test_mistyped_password_then_right_password_and_code_succeed_in_one_sudo_run(twofa, enrolled):
    """sudo retries on the same PAM handle: the "password failed" mark of the first try must not
    fail the second."""
    user, secret = enrolled
    code = twofa.code(secret)
    run = run_sudo(user, [user.password + "x", code, user.password, code])
    assert run.events == [sudo_prompt(user), CODE_PROMPT, "Sorry, try again.",
                          sudo_prompt(user), CODE_PROMPT], run
    assert ran_as_root(run), run


def test_mistyped_password_and_wrong_code_then_right_ones_succeed_in_one_sudo_run(twofa, enrolled):
    user, secret = enrolled
    run = run_sudo(user, [user.password + "x", wrong_code(twofa, secret),
                          user.password, twofa.code(secret)])
    assert run.tries_refused == 1, run
    assert ran_as_root(run), run


def test_unenrolled_user_is_refused_when_policy_denies(make_user, twofa_sudo):
    user = make_user()
    twofa_sudo(user.name)
    run = run_sudo(user, [user.password, "123456"])
    # Asked for a code like everyone else, then refused.
    assert run.events[:3] == [sudo_prompt(user), CODE_PROMPT, "Sorry, try again."], run
    assert not ran_as_root(run)


def test_unenrolled_user_runs_the_command_with_password_alone_when_policy_allows(twofa, make_user, twofa_sudo):
    twofa.write_config(unenrolled="allow")
    user = make_user()
    twofa_sudo(user.name)
    run = run_sudo(user, [user.password])
    assert run.prompts == [sudo_prompt(user)], "no code asked from an unenrolled user under allow"
    assert ran_as_root(run), run


def test_unenrolled_user_with_wrong_password_is_refused_when_policy_allows(twofa, make_user, twofa_sudo):
    twofa.write_config(unenrolled="allow")
    user = make_user()
    twofa_sudo(user.name)
    run = run_sudo(user, [user.password + "x", "123456"])  # then ^C at the next prompt
    assert "Sorry, try again." in run.events, run
    assert not ran_as_root(run)
