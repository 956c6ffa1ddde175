"""No log line of pam_twofa is lost without a trace, and a stalled log daemon hangs no login.

The kernel queues only ``net.unix.max_dgram_qlen`` datagrams on /dev/log (10 without systemd).
pam_twofa waits for room at most 200 ms per login (250 ms with the counter's lock), counts a
line it could not send in /run/twofa/log-lost, and the next line that gets through, from any
process, is preceded by ``pam_twofa: N earlier log lines were lost``. These tests check the
accounting end to end: every login of a test is either a decision line in the log or part of
a reported count, exactly.

Each test runs its logins against a reader in private namespaces (tests/e2e/slow_syslog.py):
its own network namespace with the queue length set to 10, its own /run (a tmpfs: the counter)
and its own /dev/log, reading one datagram per 5 ms, like a busy log daemon. The logins are the
real libpam driver entered into that mount namespace with ``nsenter``; the host's /dev/log,
/run and sysctls are untouched. The exact bound on the wait is proven by the unit tests of
twofa-core's syslog module; here a login with a stopped reader is compared to one with a
running reader, with a margin for a loaded machine.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import DRIVER, ENROLL, REPO, TIMEOUT, report_figure
from test_pam_module import stack, wrong_code

READER = Path(__file__).resolve().parent / "slow_syslog.py"
QLEN = 10
DELAY_MS = 5
#: pam_twofa's bound on one login's log wait (twofa_core::syslog::LOGIN_BUDGET).
BUDGET = 0.25
#: Added to the bound for a loaded two-core machine.
MARGIN = 1.0

REPORT_RE = re.compile(r"pam_twofa: (\d+) earlier log lines? (?:was|were) lost")


class SlowSyslog:
    """The reader, its namespaces, and logins run inside them."""

    def __init__(self, root: Path) -> None:
        self.out = root / "syslog.out"
        self.out.touch()
        self.proc = subprocess.Popen(
            ["unshare", "-m", "-n", "--propagation", "private",
             "/usr/bin/python3", str(READER), str(root), str(self.out), str(DELAY_MS), str(QLEN)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        ready = self.proc.stdout.readline()
        if ready.strip() != "ready":
            self.proc.kill()
            raise AssertionError(f"the reader did not start: {ready!r} {self.proc.stderr.read()}")
        self.pid = self.proc.pid

    def run(self, argv: list[str], **kw) -> subprocess.CompletedProcess:
        """Runs argv in the reader's mount and network namespaces (and its root and working
        directory, -r -w: entering a mount namespace resets the root to the namespace's own,
        which is not the suite's when it runs chrooted in a throwaway root)."""
        return subprocess.run(
            ["nsenter", "-t", str(self.pid), "-m", "-r", "-w", "-n", "--", *argv],
            capture_output=True, text=True, timeout=TIMEOUT, **kw,
        )

    def login_argv(self, st, user: str, start_at: int | None = None) -> list[str]:
        argv = [str(DRIVER), "--service", st.name, "--user", user, "--confdir", st.confdir]
        if start_at is not None:
            argv += ["--start-at", str(start_at)]
        return ["nsenter", "-t", str(self.pid), "-m", "-r", "-w", "--", *argv]

    def login(self, st, user, answers) -> tuple[dict, float]:
        """One login; its report and wall time in seconds."""
        t0 = time.monotonic()
        proc = subprocess.run(
            self.login_argv(st, user.name), input=json.dumps(answers),
            capture_output=True, text=True, timeout=TIMEOUT,
        )
        took = time.monotonic() - t0
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)["tries"][0], took

    def counter(self) -> str | None:
        """The lost-line counter's text as the namespace sees it, None when there is none."""
        try:
            return Path(f"/proc/{self.pid}/root/run/twofa/log-lost").read_text()
        except FileNotFoundError:
            return None

    def lines(self) -> list[str]:
        return self.out.read_text().splitlines()

    def settle(self, quiet: float = 0.3, timeout: float = 10) -> list[str]:
        """The lines read so far, once none arrived for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        size, changed = -1, time.monotonic()
        while time.monotonic() < deadline:
            now = self.out.stat().st_size
            if now != size:
                size, changed = now, time.monotonic()
            elif time.monotonic() - changed >= quiet:
                break
            time.sleep(0.05)
        return self.lines()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def slow_syslog(twofa):
    reader = SlowSyslog(twofa.root)
    try:
        yield reader
    finally:
        reader.stop()


def accounting(lines: list[str], service: str) -> tuple[int, int]:
    """(decision lines of ``service``, lost lines reported)."""
    decisions = [l for l in lines if f"pam_twofa({service}:auth): user=" in l]
    reported = sum(int(m.group(1)) for l in lines for m in [REPORT_RE.search(l)] if m)
    return len(decisions), reported


def enrolled(make_user, twofa):
    user = make_user()
    twofa.write_config()
    return user, twofa.enroll(user.name)


def test_a_burst_of_denials_loses_no_line_without_a_count_in_the_log(make_user, twofa, slow_syslog):
    user, secret = enrolled(make_user, twofa)
    st = stack(twofa)
    answers = json.dumps([user.password, wrong_code(twofa, secret)])
    # 50 drivers started beforehand, released together at one instant.
    start_at = time.time_ns() + 3_000_000_000
    procs = [
        subprocess.Popen(
            slow_syslog.login_argv(st, user.name, start_at), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(50)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(answers, timeout=TIMEOUT)
        assert p.returncode == 0, err
        results.append(json.loads(out)["tries"][0]["result"])
    assert results == ["PAM_AUTH_ERR"] * 50
    burst = slow_syslog.settle()
    pending = slow_syslog.counter()
    burst_decisions, _ = accounting(burst, st.name)
    assert burst_decisions <= 50

    # One more login: its line gets through, with the count of those lost before it.
    result, _ = slow_syslog.login(st, user, [user.password, wrong_code(twofa, secret)])
    assert result["result"] == "PAM_AUTH_ERR"
    lines = slow_syslog.settle()
    decisions, reported = accounting(lines, st.name)
    assert decisions + reported == 51, lines
    assert reported == (int(pending) if pending else 0), (pending, lines)
    assert slow_syslog.counter() is None, "the count is reset once reported"
    report_figure(
        f"syslog burst: 50 parallel denials + 1 into a queue of {QLEN} read every {DELAY_MS} ms: "
        f"{decisions} decision lines, {reported} reported lost"
    )


def test_a_stopped_log_reader_costs_each_login_at_most_the_bound_and_the_count_is_exact(
    make_user, twofa, slow_syslog
):
    user, secret = enrolled(make_user, twofa)
    st = stack(twofa)
    baseline = max(
        slow_syslog.login(st, user, [user.password, wrong_code(twofa, secret)])[1] for _ in range(3)
    )
    slow_syslog.settle()
    os.kill(slow_syslog.pid, signal.SIGSTOP)
    try:
        times = []
        # The queue holds QLEN + 1 datagrams; the logins after that wait, then count.
        for _ in range(QLEN + 5):
            result, took = slow_syslog.login(st, user, [user.password, wrong_code(twofa, secret)])
            assert result["result"] == "PAM_AUTH_ERR"
            times.append(took)
        pending = slow_syslog.counter()
        doctor = slow_syslog.run(
            [str(ENROLL), "--config", str(twofa.config), "doctor", "--json",
             "--pam-dir", str(twofa.root / "pam.d")]
        )
    finally:
        os.kill(slow_syslog.pid, signal.SIGCONT)
    assert pending is not None and int(pending) >= 4, pending
    for took in times:
        assert took < baseline + BUDGET + MARGIN, (baseline, times)
    # The logins that found the queue full waited (at least the socket's 200 ms), then gave up.
    assert sorted(times)[-4] >= 0.2, times

    # doctor, in the same namespaces: the pending count and the short queue nobody reads.
    assert doctor.returncode in (0, 1), doctor.stderr
    logs = [f for f in json.loads(doctor.stdout) if f["check"] == "log"]
    assert any(f["message"].startswith(f"{int(pending)} earlier log lines were lost") for f in logs), logs
    short = [f for f in logs if "max_dgram_qlen is 10" in f["message"]]
    assert short and short[0]["status"] == "warning", logs
    assert "sysctl -w net.unix.max_dgram_qlen=512" in short[0]["fix"], short

    slow_syslog.settle()
    result, _ = slow_syslog.login(st, user, [user.password, wrong_code(twofa, secret)])
    assert result["result"] == "PAM_AUTH_ERR"
    lines = slow_syslog.settle()
    decisions, reported = accounting(lines, st.name)
    total = 3 + QLEN + 5 + 1
    assert reported == int(pending), (pending, lines)
    assert decisions + reported == total, lines
    assert slow_syslog.counter() is None
    report_figure(
        f"syslog stopped reader: login {baseline * 1000:.0f} ms with a running reader, "
        f"{max(times) * 1000:.0f} ms at most with a stopped one; {reported} of {total} lines reported lost"
    )
