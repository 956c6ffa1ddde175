"""The failure window, end to end through the real libpam (tests/driver): failures are counted
over the last ``failure_window_seconds`` (a sliding window), so a guesser can't fit his tries
around the boundary of a window that restarts; ``status`` keeps what was counted after a lock;
and the log says "(no lockout)" when lockout is off.

Run: ``cargo build && flock /tmp/twofa-e2e.lock /usr/bin/python3 -m pytest -q -p no:cacheprovider
tests/e2e/test_failure_window.py`` (about 12 s: the module reads the real clock).
"""

from __future__ import annotations

import time

from hardening_support import (
    code,
    enroll,
    lines_about,
    make_stack,
    status_json,
    user_with_password,
    wrong_code,
)
from test_hardening import config_text, fresh_log


def _at(start: int, offset: int) -> None:
    """Sleeps until a tenth of a second into second ``start + offset``."""
    delay = start + offset + 0.1 - time.time()
    if delay > 0:
        time.sleep(delay)


def test_failures_around_a_window_boundary_lock_the_account(make_user, twofa, syslog):
    # Window 6 s, 3 failures lock. Failures at seconds 0, 4, 7 and 9: a window that starts at
    # the first failure (the releases before) would have restarted at 7 and counted 2 at 9;
    # the last 6 seconds at 9 hold 4, 7 and 9, which lock.
    twofa.write_config_text(config_text(twofa, max_failures=3, failure_window_seconds=6, lockout_seconds=300))
    user = user_with_password(make_user)
    secret = enroll(twofa, user.name)
    sudo = make_stack(twofa, "sudo", "twofa-e2e-sudo")
    fresh_log(syslog)

    start = int(time.time()) + 1
    times = []
    results = []
    for offset in (0, 4, 7, 9):
        _at(start, offset)
        results.append(sudo.login(user.name, [user.password, wrong_code(twofa, secret)]))
        times.append(status_json(twofa, user.name)["last_failure_at"])
    # Each failure landed in the second it was meant for (else the machine was too slow for
    # this test to say anything).
    assert times == [start, start + 4, start + 7, start + 9], (start, times)
    assert all(r["result"] == "PAM_AUTH_ERR" for r in results)

    details = [line.split("failure", 1)[-1] for line in lines_about(syslog, user.name, expect=4)]
    assert details[:3] == [" 1 of 3", " 2 of 3", " 3 (fewer than 3 within 6 s)"], details
    assert "too many failures; locked until" in lines_about(syslog, user.name, expect=4)[3]

    # Locked, and status still shows the four failures since the last login.
    status = status_json(twofa, user.name)
    assert status["locked_until"] == start + 9 + 300, status
    assert status["failures"] == 4, status
    text = twofa.cli("status", user.name).stdout
    assert "failures:      4 since the last login" in text, text
    assert "locked until:" in text, text

    # The right code is refused while locked; unlock clears the count.
    assert sudo.login(user.name, [user.password, code(twofa, secret)])["result"] == "PAM_AUTH_ERR"
    twofa.cli("unlock", user.name)
    status = status_json(twofa, user.name)
    assert (status["failures"], status["locked_until"]) == (0, None), status


def test_without_lockout_the_log_says_so_and_counts_every_failure(make_user, twofa, syslog):
    twofa.write_config_text(config_text(twofa, max_failures=0, failure_window_seconds=30))
    user = user_with_password(make_user)
    secret = enroll(twofa, user.name)
    sudo = make_stack(twofa, "sudo", "twofa-e2e-sudo")
    fresh_log(syslog)
    for _ in range(3):
        assert sudo.login(user.name, [user.password, wrong_code(twofa, secret)])["result"] == "PAM_AUTH_ERR"
    lines = lines_about(syslog, user.name, expect=3)
    assert [l.split("failure", 1)[-1] for l in lines] == [
        " 1 (no lockout)", " 2 (no lockout)", " 3 (no lockout)"], lines
    assert not any(" of 0" in l for l in lines), lines
    status = status_json(twofa, user.name)
    assert (status["failures"], status["locked_until"]) == (3, None), status
