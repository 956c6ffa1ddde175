"""Hardening of pam_twofa, end to end through the real libpam (tests/driver):

1. lockout after too many wrong codes, across services, and `twofa-enroll unlock`;
2. parallel logins from many processes released together: one code, one success;
   no failure count lost;
3. logins and enrollments SIGKILLed at random moments: files stay whole, spent codes stay
   spent, no lock stays held;
4. hostile and broken files, names and policy files: denied, one syslog line saying why,
   no hang, no crash;
5. no oracle before the password: enrolled, unenrolled, locked and unknown look the same;
6. no secret, code or password in the logs, the driver's output or the state files.

Run: ``cargo build && /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/e2e/test_hardening.py``.
``TWOFA_KILL_ROUNDS`` (default 200) and ``TWOFA_KILL_SECONDS`` (default 60) bound the kill loop;
``TWOFA_PARALLEL_ROUNDS`` (default 10) and ``TWOFA_PARALLEL`` (default 50) the parallel logins.
"""

from __future__ import annotations

import dataclasses
import fcntl
import glob
import json
import os
import random
import re
import secrets
import signal
import subprocess
import time
import tomllib
from pathlib import Path
from typing import Callable, Optional

import pytest

from conftest import ENROLL, report_figure
from hardening_support import (
    CODE,
    LEAKS,
    LOCKED_RE,
    PASSWORD,
    PUBKEY,
    TWO_SECONDS,
    Leaks,
    Stack,
    code,
    driver_argv,
    enroll,
    find_leaks,
    lines_about,
    make_stack,
    parse_lines,
    prompts,
    record_storage,
    record_syslog,
    record_text,
    remember_password,
    run_together,
    status_json,
    transcript,
    user_with_password,
    wrong_code,
)

PUBKEY_ENV = {"SSH_AUTH_INFO_0": PUBKEY}


def config_text(twofa, storage: Optional[Path] = None, period: int = 30, window: int = 1,
                unenrolled: str = "deny", **policy) -> str:
    """A valid policy file; ``policy`` adds [policy] keys (max_failures=3, ...)."""
    lines = [
        "version = 1", "", "[totp]", 'issuer = "twofa"', 'algorithm = "SHA1"', "digits = 6",
        f"period = {period}", f"window = {window}", "", "[policy]", f'unenrolled = "{unenrolled}"',
    ]
    lines += [f"{k} = {v}" for k, v in policy.items()]
    lines += ["", "[storage]", f'dir = "{storage or twofa.storage}"', ""]
    return "\n".join(lines)


@pytest.fixture
def recorded(request, twofa):
    """After the test: remember its syslog lines and storage files for the leak scan."""
    yield
    if "syslog" in request.fixturenames:
        record_syslog(request.getfixturevalue("syslog").lines())
    record_storage(twofa.storage)


def fresh_log(syslog) -> None:
    """Forgets the lines captured so far, once the listener has caught up."""
    syslog.settle(quiet=0.1)
    syslog.clear()


def unknown_name() -> str:
    return "twofa-e2e-nosuch-" + secrets.token_hex(4)


# ==============================================================================================
# 1. Lockout


def test_too_many_wrong_codes_lock_the_account_until_an_admin_unlocks_it(make_user, twofa, syslog, recorded):
    twofa.write_config_text(config_text(twofa, max_failures=3, failure_window_seconds=900, lockout_seconds=300))
    user = user_with_password(make_user)
    secret = enroll(twofa, user.name)
    sudo = make_stack(twofa, "sudo", "twofa-e2e-sudo")
    sshd = make_stack(twofa, "sshd", "twofa-e2e-sshd")

    # A wrong password before any lockout: the reference for the same mistake while locked.
    wrong_password_unlocked = sudo.login(user.name, ["bad-" + user.password, code(twofa, secret)])
    assert prompts(wrong_password_unlocked) == [PASSWORD, CODE]

    # Failures from two services add up: sudo, sshd, then sudo again reaches 3.
    fresh_log(syslog)
    first = sudo.login(user.name, [user.password, wrong_code(twofa, secret)])
    second = sshd.login(user.name, [user.password, wrong_code(twofa, secret)])
    for r in (first, second):
        assert r["result"] == "PAM_AUTH_ERR"
        assert prompts(r) == [PASSWORD, CODE]      # no lockout message yet
    assert status_json(twofa, user.name)["failures"] == 2
    assert status_json(twofa, user.name)["locked_until"] is None
    before = time.time()
    third = sudo.login(user.name, [user.password, wrong_code(twofa, secret)])
    assert third["result"] == "PAM_AUTH_ERR"
    # The attempt that locks says so, once, after the code.
    assert prompts(third)[:2] == [PASSWORD, CODE]
    assert len(third["messages"]) == 3 and third["messages"][2]["style"] == "error"
    assert LOCKED_RE.match(third["messages"][2]["text"]), third["messages"]
    assert "5 minutes" in third["messages"][2]["text"]
    lines = lines_about(syslog, user.name, expect=3)
    assert [f["reason"] for f in parse_lines(lines)] == ["wrong-code"] * 3, lines
    assert [f["service"] for f in parse_lines(lines)] == ["twofa-e2e-sudo", "twofa-e2e-sshd", "twofa-e2e-sudo"]

    status = status_json(twofa, user.name)
    assert status["locked_until"] is not None
    assert before + 300 - 5 <= status["locked_until"] <= time.time() + 300 + 5
    text = twofa.cli("status", user.name).stdout
    assert "locked until:" in text, text

    # While locked, the right code is refused: the message (once), no code prompt; syslog: locked.
    right = code(twofa, secret)
    for st in (sudo, sshd):
        fresh_log(syslog)
        refused = st.login(user.name, [user.password, right])
        assert refused["result"] == "PAM_AUTH_ERR"
        assert prompts(refused)[0] == PASSWORD
        assert [m["style"] for m in refused["messages"]] == ["echo_off", "error"], refused["messages"]
        assert LOCKED_RE.match(refused["messages"][1]["text"])
        assert refused["report"]["unused_answers"] == 1    # the code was never asked for
        (line,) = lines_about(syslog, user.name)
        (fields,) = parse_lines([line])
        assert (fields["outcome"], fields["reason"]) == ("deny", "locked"), line
        assert "reason=locked" in line

    # Attempts while locked are not counted and do not extend the lock.
    assert status_json(twofa, user.name)["locked_until"] == status["locked_until"]

    # A wrong password while locked looks exactly like one while not locked.
    wrong_password_locked = sudo.login(user.name, ["bad-" + user.password, right])
    assert transcript(wrong_password_locked) == transcript(wrong_password_unlocked)
    assert not any(LOCKED_RE.match(m["text"]) for m in wrong_password_locked["messages"])

    # The admin lifts the lock: the very code refused while locked (never checked, so never
    # spent) now logs in.
    twofa.cli("unlock", user.name)
    assert status_json(twofa, user.name)["locked_until"] is None
    assert "locked until:" not in twofa.cli("status", user.name).stdout
    fresh_log(syslog)
    ok = sudo.login(user.name, [user.password, right])
    assert ok["result"] == "PAM_SUCCESS", ok
    assert prompts(ok) == [PASSWORD, CODE]
    (fields,) = parse_lines(lines_about(syslog, user.name))
    assert fields["reason"] == "ok"


def test_a_successful_login_forgets_earlier_wrong_codes(make_user, twofa, recorded):
    twofa.write_config_text(config_text(twofa, max_failures=3))
    user = user_with_password(make_user)
    secret = enroll(twofa, user.name)
    st = make_stack(twofa)
    for _ in range(2):
        assert st.login(user.name, [user.password, wrong_code(twofa, secret)])["result"] == "PAM_AUTH_ERR"
    assert st.login(user.name, [user.password, code(twofa, secret)])["result"] == "PAM_SUCCESS"
    assert status_json(twofa, user.name)["failures"] == 0
    # Two more wrong codes: 2 of 3, not locked (without the reset it would be 4 of 3).
    for _ in range(2):
        r = st.login(user.name, [user.password, wrong_code(twofa, secret)])
        assert r["result"] == "PAM_AUTH_ERR"
        assert prompts(r) == [PASSWORD, CODE]
    assert status_json(twofa, user.name)["locked_until"] is None
    later = code(twofa, secret, at=time.time() + 30)
    assert st.login(user.name, [user.password, later])["result"] == "PAM_SUCCESS"


def test_wrong_passwords_do_not_count_towards_the_lockout(make_user, twofa, recorded):
    twofa.write_config_text(config_text(twofa, max_failures=2))
    user = user_with_password(make_user)
    secret = enroll(twofa, user.name)
    st = make_stack(twofa)
    for _ in range(4):
        r = st.login(user.name, ["bad-" + user.password, wrong_code(twofa, secret)])
        assert r["result"] == "PAM_AUTH_ERR"
    assert status_json(twofa, user.name)["failures"] == 0
    assert st.login(user.name, [user.password, code(twofa, secret)])["result"] == "PAM_SUCCESS"


# ==============================================================================================
# 5. No oracle before the password is verified


def test_before_the_password_enrolled_unenrolled_locked_and_unknown_users_look_the_same(make_user, twofa, recorded):
    twofa.write_config_text(config_text(twofa, max_failures=2))
    enrolled = user_with_password(make_user)
    secret = enroll(twofa, enrolled.name)
    locked = user_with_password(make_user)
    locked_secret = enroll(twofa, locked.name)
    unenrolled = user_with_password(make_user)
    sudo = make_stack(twofa, "sudo", "twofa-e2e-sudo")
    sshd = make_stack(twofa, "sshd", "twofa-e2e-sshd")
    for _ in range(2):
        sudo.login(locked.name, [locked.password, wrong_code(twofa, locked_secret)])
    assert status_json(twofa, locked.name)["locked_until"] is not None
    # Proof that `locked` is locked: with the right password it is told so.
    told = sudo.login(locked.name, [locked.password, code(twofa, locked_secret)])
    assert any(LOCKED_RE.match(m["text"]) for m in told["messages"])
    # What the lock counted stays shown (status --json keeps the count after a lockout).
    counted = status_json(twofa, locked.name)["failures"]

    for st in (sudo, sshd):
        transcripts = {
            "enrolled": st.login(enrolled.name, ["bad-" + enrolled.password, code(twofa, secret)]),
            "unenrolled": st.login(unenrolled.name, ["bad-" + unenrolled.password, "123456"]),
            "locked": st.login(locked.name, ["bad-" + locked.password, code(twofa, locked_secret)]),
            "unknown": st.login(unknown_name(), ["bad-password", "123456"]),
            "unknown, empty code": st.login(unknown_name(), ["bad-password", ""]),
            "enrolled, empty code": st.login(enrolled.name, ["bad-" + enrolled.password, ""]),
        }
        reference = transcript(transcripts["enrolled"])
        assert reference["messages"] == [
            {"style": "echo_off", "text": "Password: "},
            {"style": "echo_off", "text": "Verification code: "},
        ]
        assert reference["result"] == "PAM_AUTH_ERR"
        assert reference["fail_delay_requested_usec"] == TWO_SECONDS
        assert set(reference["fail_delay_requests"]) == {TWO_SECONDS}
        for who, result in transcripts.items():
            assert transcript(result) == reference, (st.name, who)
    # Nothing more was counted for the locked user by those attempts.
    assert status_json(twofa, locked.name)["failures"] == counted


def password_denied_stack(twofa, conf: str) -> Stack:
    """The shipped ``conf`` stack with pam_deny in pam_unix's auth place: every password fails,
    and pam_unix's own per-name work (it skips hashing for a name with no account) is out."""
    text = twofa.service_text(conf)
    auth = [re.sub(r"\bpam_unix\.so\b", "pam_deny.so", l) if l.startswith("auth") else l
            for l in text.splitlines()]
    assert any("pam_deny.so" in l for l in auth), text
    name = f"twofa-e2e-denied-{conf}-{secrets.token_hex(3)}"
    return Stack(name, twofa.pam_confdir(name, "\n".join(auth) + "\n"))


def traced_files(twofa, st: Stack, user: str, answers: list) -> list[tuple[str, str, bool]]:
    """One login through the driver under strace: every file the process looked at, as
    (system call, full path with ``user`` written NAME, found), in order. Paths relative to a
    directory descriptor (the module's storage is opened that way) are made whole with the
    directory's path (``strace -y``)."""
    out = twofa.root / ("strace-" + secrets.token_hex(3) + ".txt")
    calls = "open,openat,openat2,stat,lstat,newfstatat,statx,access,faccessat,faccessat2,readlink,readlinkat"
    argv = ["strace", "-f", "-qq", "-y", "-e", f"trace={calls}", "-o", str(out), *driver_argv(st, user)]
    proc = subprocess.run(argv, input=json.dumps(answers), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["tries"][0]["result"] == "PAM_AUTH_ERR"
    seen = []
    for line in out.read_text().splitlines():
        m = re.search(r'(\w+)\((?:\d+<([^>]*)>, |AT_FDCWD, )?"([^"]*)".*\)\s+=\s+(-?\d+)', line)
        if not m:
            continue
        call, directory, path, result = m.groups()
        if directory and not path.startswith("/"):
            path = f"{directory}/{path}" if path else directory
        # Pipe and socket inodes and process ids change from run to run; names don't.
        path = re.sub(r"/proc/\d+/", "/proc/PID/", re.sub(r":\[\d+\]", ":[N]", path))
        seen.append((call, path.replace(user, "NAME"), int(result) >= 0))
    assert seen, "strace recorded nothing"
    return seen


def test_after_a_wrong_password_the_module_looks_at_the_same_files_for_every_name(make_user, twofa, syslog):
    """Not timed: the files a login looks at after a wrong password, for an enrolled user, an
    unenrolled one and a name with no account (the benchmark's row "pam_twofa after a failed
    password, by name" times the same three)."""
    twofa.write_config_text(config_text(twofa))
    enrolled = user_with_password(make_user)
    enroll(twofa, enrolled.name)
    unenrolled = user_with_password(make_user)
    names = {"enrolled": enrolled.name, "unenrolled": unenrolled.name, "unknown": unknown_name()}
    # Password, then code: nothing about the name is looked up or read after the wrong password,
    # so the whole trace (libpam, the module, its config) is the same, found or not, call by call.
    sudo = password_denied_stack(twofa, "sudo")
    # (The syslog fixture listens on /dev/log: no line is lost, so no lost-line counter file is
    # written on the way. A first login makes whatever a first login makes.)
    sudo.login(unknown_name(), ["bad-password", "123456"])
    traces = {who: traced_files(twofa, sudo, n, ["bad-password", "123456"]) for who, n in names.items()}
    assert not [t for t in traces["enrolled"] if "NAME" in t[1]], traces["enrolled"]
    for who, trace in traces.items():
        assert trace == traces["enrolled"], who
    # One field: the split before the password needs the account, so every name goes through
    # the same steps: the module opens the same files of its storage (found for the enrolled
    # user only, who then has a file to check and read: the 4 % of the benchmark). The name
    # service's own files differ (a name with no account is a miss in every NSS source): that
    # is NSS's, the lookup pam_unix makes next on the same name.
    ftp = password_denied_stack(twofa, "vsftpd")
    ftp.login(unknown_name(), ["bad-password123456"])
    storage = str(twofa.storage) + "/"
    traces = {who: [t[:2] for t in traced_files(twofa, ftp, n, ["bad-password123456"])
                    if t[1].startswith(storage) and t[0].startswith("open")]
              for who, n in names.items()}
    assert any(t[1].endswith("/NAME.toml") for t in traces["enrolled"]), traces["enrolled"]
    for who, trace in traces.items():
        assert trace == traces["enrolled"], who


# ==============================================================================================
# 2. Parallel logins


PARALLEL = int(os.environ.get("TWOFA_PARALLEL", "50"))
PARALLEL_ROUNDS = int(os.environ.get("TWOFA_PARALLEL_ROUNDS", "10"))


def test_one_code_typed_in_many_parallel_logins_lets_exactly_one_in(make_user, twofa, syslog, recorded):
    twofa.write_config_text(config_text(twofa, max_failures=1000))
    sshd = make_stack(twofa, "sshd", "twofa-e2e-sshd")
    successes_per_round = []
    lateness = []
    started = time.monotonic()
    for round_no in range(PARALLEL_ROUNDS):
        user = user_with_password(make_user)    # fresh user: no waiting for the next step
        secret = enroll(twofa, user.name)
        the_code = code(twofa, secret)
        reports = run_together([(sshd, user.name, [the_code], PUBKEY_ENV)] * PARALLEL)
        results = [r["tries"][0]["result"] for r in reports]
        late = sorted(r["start_late_usec"] for r in reports)
        lateness.append(f"{late[len(late) // 2] // 1000}/{late[-1] // 1000}")
        successes = results.count("PAM_SUCCESS")
        successes_per_round.append(successes)
        assert successes == 1, f"round {round_no}: {successes} successes: {results}"
        lines = lines_about(syslog, user.name, expect=PARALLEL)
        assert results.count("PAM_AUTH_ERR") == PARALLEL - 1, (
            sorted(set(results)), [l for l in lines if "replayed-code" not in l])
        reasons = [f["reason"] for f in parse_lines(lines)]
        assert len(reasons) == PARALLEL, f"{len(reasons)} syslog lines for {PARALLEL} logins"
        assert reasons.count("ok") == 1 and reasons.count("replayed-code") == PARALLEL - 1, reasons
        # Every replay was counted: no lost update under the lock.
        assert status_json(twofa, user.name)["failures"] == PARALLEL - 1
    report_figure(
        f"parallel logins, same code: {PARALLEL_ROUNDS} rounds x {PARALLEL} processes; "
        f"successes per round {successes_per_round}; pam_authenticate called after the release "
        f"(median/last, ms, per round; 2 cores) {lateness}; "
        f"{time.monotonic() - started:.1f} s"
    )


def test_many_parallel_wrong_codes_are_all_counted(make_user, twofa, syslog, recorded):
    twofa.write_config_text(config_text(twofa, max_failures=1000))
    user = user_with_password(make_user)
    secret = enroll(twofa, user.name)
    sshd = make_stack(twofa, "sshd", "twofa-e2e-sshd")
    sudo = make_stack(twofa, "sudo", "twofa-e2e-sudo")
    bad = wrong_code(twofa, secret)
    # Half through sshd after a key (code only), half through sudo (password, then code).
    jobs = [(sshd, user.name, [bad], PUBKEY_ENV)] * (PARALLEL // 2)
    jobs += [(sudo, user.name, [user.password, bad], None)] * (PARALLEL - PARALLEL // 2)
    results = [r["tries"][0]["result"] for r in run_together(jobs)]
    lines = lines_about(syslog, user.name, expect=PARALLEL)
    assert results == ["PAM_AUTH_ERR"] * PARALLEL, (
        sorted(set(results)), [l for l in lines if "reason=wrong-code" not in l])
    assert [f["reason"] for f in parse_lines(lines)] == ["wrong-code"] * PARALLEL
    state = tomllib.loads((twofa.storage / "state" / f"{user.name}.toml").read_text())
    assert state["failures"] == PARALLEL, state
    assert status_json(twofa, user.name)["failures"] == PARALLEL
    report_figure(f"parallel wrong codes: {PARALLEL} processes (2 services) -> failures = {state['failures']}")


# ==============================================================================================
# 3. Crashes: SIGKILL at random moments

KILL_ROUNDS = int(os.environ.get("TWOFA_KILL_ROUNDS", "200"))
KILL_SECONDS = float(os.environ.get("TWOFA_KILL_SECONDS", "60"))
TEMP_GLOB = ".*.tmp"  # one fixed temp name per file: .NAME.tmp


def temps(directory: Path) -> list[str]:
    return sorted(glob.glob(str(directory / TEMP_GLOB)))


def lock_is_free(lock_file: Path) -> bool:
    fd = os.open(lock_file, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_logins_and_enrollments_killed_at_random_moments_leave_whole_files_and_spent_codes_stay_spent(
    make_user, twofa, recorded
):
    # One-second codes, so that many codes are accepted in one run without waiting; no lockout
    # (replays are failures, and this test makes many).
    twofa.write_config_text(config_text(twofa, max_failures=0))
    user = user_with_password(make_user)
    secret = enroll(twofa, user.name, period=1)
    sshd = make_stack(twofa, "sshd", "twofa-e2e-sshd")
    sudo = make_stack(twofa, "sudo", "twofa-e2e-sudo")
    users_dir, state_dir = twofa.storage / "users", twofa.storage / "state"
    lock_file = twofa.storage / "lock" / user.name
    enroll_argv = ["--config", str(twofa.config), "enroll", user.name, "--secret-file", "-",
                   "--no-verify", "--force", "--period", "1"]

    def step_now() -> int:
        return int(time.time())

    def spawn(action: str):
        if action == "enroll":
            argv, stdin = [str(ENROLL), *enroll_argv], secret + "\n"
            return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True), stdin, None
        t = time.time()
        if action == "login-right":
            answer = code(twofa, secret, period=1, at=t)
        else:
            answer = wrong_code(twofa, secret, period=1)
        if action.endswith("-sudo"):
            st, answers, env = sudo, [user.password, answer], None
        else:
            st, answers, env = sshd, [answer], PUBKEY_ENV
        p = subprocess.Popen(driver_argv(st, user.name, env=env), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return p, json.dumps(answers), (answer, int(t))

    def run_victim(action: str, kill_after: Optional[float]):
        p, stdin, typed = spawn(action)
        try:
            try:
                p.stdin.write(stdin)
                p.stdin.close()
            except BrokenPipeError:
                pass
            p.stdin = None
            if kill_after is not None:
                time.sleep(kill_after)
                p.send_signal(signal.SIGKILL)
            out, err = p.communicate(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
        if p.returncode == 0 and action != "enroll":
            record_text("driver stdout", out)
        return p.returncode, out, err, typed

    def check_files_whole():
        proc = twofa.cli("status", user.name, "--json", check=False)
        assert proc.returncode == 0, f"status after a kill: {proc.stdout}{proc.stderr}"
        assert json.loads(proc.stdout)["enrolled"] is True, "a killed enrollment lost the old one"
        tomllib.loads((users_dir / f"{user.name}.toml").read_text())
        state_file = state_dir / f"{user.name}.toml"
        if state_file.exists():
            tomllib.loads(state_file.read_text())
            st = os.lstat(state_file)
            assert (st.st_uid, st.st_mode & 0o777, st.st_nlink) == (0, 0o600, 1)
        assert lock_is_free(lock_file), "a killed process left its lock held"

    actions = ["login-right", "login-right", "login-wrong", "login-right-sudo", "enroll"]
    # How long each action takes when not killed: kill within 0..1.3x that.
    duration = {}
    for action in ["enroll", "login-wrong", "login-right-sudo", "login-right"]:
        times = []
        for _ in range(3):
            t0 = time.monotonic()
            rc, out, err, _ = run_victim(action, None)
            times.append(time.monotonic() - t0)
            assert rc == 0, err
        duration[action] = sorted(times)[1]
        check_files_whole()

    accepted: list[tuple[str, int]] = []     # (code, step) that logged in
    figures = {"rounds": 0, "killed": 0, "finished": 0, "killed_mid_write_users": 0,
               "killed_mid_write_state": 0, "accepted": 0, "replays_refused": 0,
               "temps_removed_by_next_write": 0}
    killed_by_action: dict[str, int] = {}
    seen_temps: set[str] = set()
    deadline = time.monotonic() + KILL_SECONDS
    rng = random.Random(int(os.environ.get("TWOFA_KILL_SEED", str(time.time_ns()))))
    while figures["rounds"] < KILL_ROUNDS and time.monotonic() < deadline:
        figures["rounds"] += 1
        action = rng.choice(actions)
        kill_after = rng.uniform(0, 1.3 * duration[action])
        had_temps = {"users": temps(users_dir), "state": temps(state_dir)}
        rc, out, err, typed = run_victim(action, kill_after)
        if rc == -signal.SIGKILL:
            figures["killed"] += 1
            killed_by_action[action] = killed_by_action.get(action, 0) + 1
            if len(temps(users_dir)) > len(had_temps["users"]):
                figures["killed_mid_write_users"] += 1
            if len(temps(state_dir)) > len(had_temps["state"]):
                figures["killed_mid_write_state"] += 1
        else:
            assert rc == 0, f"{action} exited {rc}: {err}"
            figures["finished"] += 1
            # A finished write removed what killed writers left of the same file.
            if action == "enroll":
                assert temps(users_dir) == [], "temp files survived a successful enrollment"
            else:
                result = json.loads(out)["tries"][0]["result"]
                assert result in ("PAM_SUCCESS", "PAM_AUTH_ERR"), out
                assert temps(state_dir) == [], "temp files survived a successful state write"
                if result == "PAM_SUCCESS":
                    assert action.startswith("login-right")
                    accepted.append(typed)
                    figures["accepted"] += 1
        seen_temps.update(temps(users_dir) + temps(state_dir))
        check_files_whole()
        # The latest accepted code, while still inside the window, is still refused.
        if accepted and step_now() <= accepted[-1][1] + 1:
            again = sshd.login(user.name, [accepted[-1][0]], env=PUBKEY_ENV)
            if step_now() <= accepted[-1][1] + 1:
                assert again["result"] == "PAM_AUTH_ERR", f"spent code accepted again after {action}"
                figures["replays_refused"] += 1

    # Right after: a normal login works (no lock held, files usable) and leaves no temp file.
    fresh = code(twofa, secret, period=1, at=time.time() + 1)
    t0 = time.monotonic()
    ok = sshd.login(user.name, [fresh], env=PUBKEY_ENV)
    assert ok["result"] == "PAM_SUCCESS", ok
    assert time.monotonic() - t0 < 3
    assert temps(state_dir) == []
    again = sshd.login(user.name, [fresh], env=PUBKEY_ENV)
    assert again["result"] == "PAM_AUTH_ERR"
    enroll(twofa, user.name, secret=secret, force=True, period=1)
    assert temps(users_dir) == []
    check_files_whole()
    assert not [t for t in seen_temps if os.path.lexists(t)]
    figures["temps_removed_by_next_write"] = len(seen_temps)
    assert figures["killed"] > 0 and figures["accepted"] > 0, figures
    report_figure(
        f"kill loop: {figures['rounds']} rounds, {figures['killed']} SIGKILLs survived "
        f"(by action {killed_by_action}), {figures['finished']} finished before the kill; "
        f"killed mid-write (temp file left): enrollment {figures['killed_mid_write_users']}, "
        f"state {figures['killed_mid_write_state']}; temp files left by kills, all removed by later "
        f"writes "
        f"{figures['temps_removed_by_next_write']}; codes accepted {figures['accepted']}, "
        f"replays refused afterwards {figures['replays_refused']}"
    )


# ==============================================================================================
# 4. Hostile and broken files


SHADOW = Path("/etc/shadow")


def shadow_untouched_by_twofa(before: os.stat_result) -> None:
    """/etc/shadow is still a root-owned file of the same mode and holds nothing twofa writes.
    (Its content and inode may change meanwhile: other tests on this host add users.)"""
    st = os.lstat(SHADOW)
    assert (st.st_mode, st.st_uid, st.st_gid) == (before.st_mode, before.st_uid, before.st_gid), (
        "/etc/shadow's owner or mode changed")
    data = SHADOW.read_bytes()
    for marker in (b"version =", b"failures =", b"totp_last_step", b"[[factor]]", b".toml.tmp"):
        assert marker not in data, f"twofa wrote into /etc/shadow ({marker!r})"


@dataclasses.dataclass
class World:
    twofa: object
    user: object
    secret: str
    make_user: Callable
    config: Path             # the config= file of the stack under test
    values: dict = dataclasses.field(default_factory=dict)   # for the row's mentions

    @property
    def enrollment(self) -> Path:
        return self.twofa.storage / "users" / f"{self.user.name}.toml"

    @property
    def state(self) -> Path:
        return self.twofa.storage / "state" / f"{self.user.name}.toml"

    @property
    def lock(self) -> Path:
        return self.twofa.storage / "lock" / self.user.name

    def replace(self, path: Path, data: bytes, mode: int = 0o600) -> None:
        if path.is_symlink() or path.exists():
            path.unlink()
        path.write_bytes(data)
        os.chmod(path, mode)

    def edit(self, path: Path, old: str, new: str) -> None:
        text = path.read_text()
        assert old in text, (old, text)
        self.replace(path, text.replace(old, new, 1).encode(), os.lstat(path).st_mode & 0o777)

    def line_of(self, path: Path, needle: str) -> int:
        for i, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if needle in line:
                return i
        raise AssertionError(f"{needle!r} not in {path}")

    def state_text(self, **fields) -> str:
        out = {"version": 1, "failures": 0, **fields}
        return "".join(f"{k} = {v}\n" for k, v in out.items())

    def swap_dir_for_symlink(self, directory: Path) -> None:
        real = directory.with_name(directory.name + ".real")
        os.rename(directory, real)
        os.symlink(real, directory)


def _put(path_attr: str, data: bytes, mode: int = 0o600):
    return lambda w: w.replace(getattr(w, path_attr), data, mode)


def _symlink_to_shadow(path_attr: str):
    def setup(w):
        p = getattr(w, path_attr)
        if p.exists() or p.is_symlink():
            p.unlink()
        os.symlink(SHADOW, p)
    return setup


def _fifo(path_attr: str):
    def setup(w):
        p = getattr(w, path_attr)
        if p.exists():
            p.unlink()
        os.mkfifo(p, 0o600)
    return setup


def _directory(path_attr: str):
    def setup(w):
        p = getattr(w, path_attr)
        if p.exists():
            p.unlink()
        p.mkdir(mode=0o700)
    return setup


def _chown_to_user(path_attr: str):
    return lambda w: os.chown(getattr(w, path_attr), w.user.uid, -1)


def _chmod(path_attr: str, mode: int):
    return lambda w: os.chmod(getattr(w, path_attr), mode)


def _hard_link(path_attr: str):
    def setup(w):
        os.link(getattr(w, path_attr), w.twofa.root / "second-name.toml")
    return setup


def _edit_enrollment(old: str, new: str, key_needle: Optional[str] = None):
    def setup(w):
        w.edit(w.enrollment, old, new)
        if key_needle:
            w.values["line"] = w.line_of(w.enrollment, key_needle)
    return setup


def _enrollment_of_someone_else(w):
    other = w.make_user()
    enroll(w.twofa, other.name)
    data = (w.twofa.storage / "users" / f"{other.name}.toml").read_bytes()
    w.replace(w.enrollment, data)
    w.values["other"] = other.name


def _truncated_enrollment(w):
    data = w.enrollment.read_bytes()
    w.replace(w.enrollment, data[: data.index(b"secret = ") + 15])


def _short_secret(w):
    import base64
    short = base64.b32encode(os.urandom(8)).decode().rstrip("=")
    w.edit(w.enrollment, w.secret, short)


def _state_with(**fields):
    return lambda w: w.replace(w.state, w.state_text(**fields).encode())


def _state_from_the_future(w):
    step = int(time.time() // 30) + 1_000_000
    w.replace(w.state, w.state_text(totp_last_step=step).encode())


def _storage_root_symlink(w):
    w.swap_dir_for_symlink(w.twofa.storage)


def _bad_config(old: str, new: str, needle: Optional[str] = None):
    def setup(w):
        text = w.config.read_text()
        assert old in text
        text = text.replace(old, new, 1)
        w.replace(w.config, text.encode(), 0o644)
        if needle:
            w.values["line"] = w.line_of(w.config, needle)
    return setup


def _config_symlink(w):
    real = w.config.with_name("real-policy.toml")
    os.rename(w.config, real)
    os.symlink(real, w.config)


def _config_special(kind: str):
    def setup(w):
        w.config.unlink()
        if kind == "fifo":
            os.mkfifo(w.config, 0o644)
        else:
            w.config.mkdir(mode=0o755)
    return setup


@dataclasses.dataclass
class Case:
    id: str
    broken: str                    # what is wrong, in words
    setup: Callable[[World], None]
    reason: str                    # the syslog reason word
    mentions: tuple                # what the syslog line must name ({enrollment}, {state}, {lock},
                                   # ...); a tuple inside: any one of these
    result: str = "PAM_AUTHINFO_UNAVAIL"
    asked: tuple = (PASSWORD,)     # the prompts the user saw


E, S, L, C = "enrollment-error", "state-error", "state-error", "config-error"
ASKED_CODE = (PASSWORD, CODE)

HOSTILE = [
    # -- the enrollment file: users/<account>.toml --
    Case("enrollment-symlink-to-shadow", "the enrollment is a symlink to /etc/shadow",
         _symlink_to_shadow("enrollment"), E, ("{enrollment}", "symbolic link")),
    Case("enrollment-hard-link", "the enrollment has a second hard link",
         _hard_link("enrollment"), E, ("{enrollment}", "2 hard links")),
    Case("enrollment-fifo", "a FIFO where the enrollment should be (must not hang)",
         _fifo("enrollment"), E, ("{enrollment}", "not a regular file")),
    Case("enrollment-directory", "a directory where the enrollment should be",
         _directory("enrollment"), E, ("{enrollment}", "not a regular file")),
    Case("enrollment-owned-by-user", "the enrollment belongs to the user, not root",
         _chown_to_user("enrollment"), E, ("{enrollment}", "owned by uid {uid}")),
    Case("enrollment-group-readable", "the enrollment is mode 0640",
         _chmod("enrollment", 0o640), E, ("{enrollment}", "mode 0640")),
    Case("enrollment-world-writable", "the enrollment is mode 0602",
         _chmod("enrollment", 0o602), E, ("{enrollment}", "mode 0602")),
    Case("enrollment-over-64k", "the enrollment is over 64 KiB",
         lambda w: w.replace(w.enrollment, w.enrollment.read_bytes() + b"#" + b"x" * 65536 + b"\n"),
         E, ("{enrollment}", "larger than 65536 bytes")),
    Case("enrollment-empty", "the enrollment is empty",
         _put("enrollment", b""), E, ("{enrollment}", "version")),
    Case("enrollment-truncated", "the enrollment is cut in the middle of the secret",
         _truncated_enrollment, E, ("{enrollment}", "not valid TOML")),
    Case("enrollment-not-utf8", "the enrollment has non-UTF-8 bytes",
         lambda w: w.replace(w.enrollment, b"# \xff\xfe\n" + w.enrollment.read_bytes()),
         E, ("{enrollment}", "not UTF-8")),
    Case("enrollment-bad-base32", "the secret is not base32",
         lambda w: w.edit(w.enrollment, w.secret, "NOT-BASE32!!1890"), E,
         ("{enrollment}", "factor.secret", "base32")),
    Case("enrollment-secret-64-bits", "the secret has 64 bits (under 80)",
         _short_secret, E, ("{enrollment}", "factor.secret", "80")),
    Case("enrollment-unknown-algorithm", "algorithm = \"MD5\"",
         _edit_enrollment('algorithm = "SHA1"', 'algorithm = "MD5"', "algorithm"), E,
         ("{enrollment}:{line}:", "factor.algorithm", "MD5")),
    Case("enrollment-digits-9", "digits = 9",
         _edit_enrollment("digits = 6", "digits = 9", "digits"), E,
         ("{enrollment}:{line}:", "factor.digits")),
    Case("enrollment-digits-5", "digits = 5",
         _edit_enrollment("digits = 6", "digits = 5", "digits"), E,
         ("{enrollment}:{line}:", "factor.digits")),
    Case("enrollment-period-0", "period = 0",
         _edit_enrollment("period = 30", "period = 0", "period"), E,
         ("{enrollment}:{line}:", "factor.period")),
    Case("enrollment-number-overflow", "period = 99999999999999999999",
         _edit_enrollment("period = 30", "period = 99999999999999999999", "period"), E,
         ("{enrollment}:{line}:", "too large")),
    Case("enrollment-unknown-version", "version = 2",
         _edit_enrollment("version = 1", "version = 2", "version"), E,
         ("{enrollment}:{line}:", "version 2")),
    Case("enrollment-of-another-user", "another user's enrollment copied over this one",
         _enrollment_of_someone_else, E, ("{enrollment}", "account", "{other}")),
    Case("users-dir-symlink", "users/ is a symlink to a copy of it",
         lambda w: w.swap_dir_for_symlink(w.twofa.storage / "users"), E,
         ("{storage}/users:", "symbolic link")),
    Case("users-dir-group-writable", "users/ is mode 0770",
         lambda w: os.chmod(w.twofa.storage / "users", 0o770), E, ("{storage}/users", "mode 0770")),
    # The storage directory itself is opened by path with O_DIRECTORY|O_NOFOLLOW, which fails
    # with ENOTDIR on a symlink: the line may say "is not a directory" there.
    Case("storage-dir-symlink", "the storage directory is a symlink",
         _storage_root_symlink, E, ("{storage}:", "symbolic link")),
    Case("storage-dir-owned-by-user", "the storage directory belongs to the user",
         lambda w: os.chown(w.twofa.storage, w.user.uid, -1), E, ("{storage}", "owned by uid {uid}")),
    # -- the state file: state/<account>.toml --
    Case("state-symlink-to-shadow", "the state is a symlink to /etc/shadow",
         _symlink_to_shadow("state"), S, ("{state}", "symbolic link")),
    Case("state-hard-link", "the state has a second hard link",
         lambda w: (_state_with()(w), _hard_link("state")(w)), S, ("{state}", "2 hard links")),
    Case("state-fifo", "a FIFO where the state should be (must not hang)",
         _fifo("state"), S, ("{state}", "not a regular file")),
    Case("state-directory", "a directory where the state should be",
         _directory("state"), S, ("{state}", "not a regular file")),
    Case("state-owned-by-user", "the state belongs to the user",
         lambda w: (_state_with()(w), _chown_to_user("state")(w)), S, ("{state}", "owned by uid {uid}")),
    Case("state-world-readable", "the state is mode 0644",
         lambda w: (_state_with()(w), _chmod("state", 0o644)(w)), S, ("{state}", "mode 0644")),
    Case("state-watermark-overflow", "totp_last_step = 99999999999999999999",
         _state_with(totp_last_step="99999999999999999999"), S, ("{state}:3:", "too large")),
    Case("state-negative-failures", "failures = -1",
         _state_with(failures=-1), S, ("{state}:2:", "failures")),
    Case("state-unknown-version", "version = 3",
         _state_with(version=3), S, ("{state}:1:", "version 3")),
    Case("state-not-toml", "the state is garbage",
         _put("state", b"version = 1\nfailures = [[[\n"), S, ("{state}", "not valid TOML")),
    Case("state-not-utf8", "the state has non-UTF-8 bytes",
         _put("state", b"version = 1\nfailures = 0\n# \xff\n"), S, ("{state}", "not UTF-8")),
    Case("state-dir-symlink", "state/ is a symlink to a copy of it",
         lambda w: w.swap_dir_for_symlink(w.twofa.storage / "state"), S,
         ("{storage}/state:", "symbolic link")),
    # The watermark far ahead (a clock that once ran years fast): every code is "already used".
    # The module refuses, says why in the log (reason=watermark-ahead-of-clock, so an admin
    # looks at the clock rather than for an attacker), and counts it as a failure.
    Case("state-from-the-future", "totp_last_step a million steps ahead",
         _state_from_the_future, "watermark-ahead-of-clock", ("failure 1 of",),
         result="PAM_AUTH_ERR", asked=ASKED_CODE),
    # -- the lock file: lock/<account> (taken after the code is typed) --
    Case("lock-symlink-to-shadow", "the lock is a symlink to /etc/shadow",
         _symlink_to_shadow("lock"), L, ("{lock}", "symbolic link"), asked=ASKED_CODE),
    Case("lock-fifo", "a FIFO where the lock should be (must not hang)",
         _fifo("lock"), L, ("{lock}", "not a regular file"), asked=ASKED_CODE),
    Case("lock-directory", "a directory where the lock should be",
         _directory("lock"), L, ("{lock}:", "directory"), asked=ASKED_CODE),
    Case("lock-owned-by-user", "the lock belongs to the user",
         _chown_to_user("lock"), L, ("{lock}", "owned by uid {uid}"), asked=ASKED_CODE),
    Case("lock-dir-symlink", "lock/ is a symlink to a copy of it",
         lambda w: w.swap_dir_for_symlink(w.twofa.storage / "lock"), L,
         ("{storage}/lock:", "symbolic link"),
         asked=ASKED_CODE),
    # -- the policy file named by config= --
    Case("config-symlink", "the policy file is a symlink",
         _config_symlink, C, ("{config}", "symbolic link")),
    Case("config-owned-by-user", "the policy file belongs to the user",
         lambda w: os.chown(w.config, w.user.uid, -1), C, ("{config}", "owned by uid {uid}")),
    Case("config-world-writable", "the policy file is mode 0666",
         lambda w: os.chmod(w.config, 0o666), C, ("{config}", "mode 0666")),
    Case("config-group-writable", "the policy file is mode 0664",
         lambda w: os.chmod(w.config, 0o664), C, ("{config}", "mode 0664")),
    Case("config-fifo", "a FIFO where the policy file should be (must not hang)",
         _config_special("fifo"), C, ("{config}", "not a regular file")),
    Case("config-directory", "a directory where the policy file should be",
         _config_special("dir"), C, ("{config}", "not a regular file")),
    Case("config-empty", "the policy file is empty",
         lambda w: w.replace(w.config, b"", 0o644), C, ("{config}", "version")),
    Case("config-not-utf8", "the policy file has non-UTF-8 bytes",
         lambda w: w.replace(w.config, w.config.read_bytes() + b"# \xff\n", 0o644), C,
         ("{config}", "not UTF-8")),
    Case("config-over-256k", "the policy file is over 256 KiB",
         lambda w: w.replace(w.config, w.config.read_bytes() + b"#" + b"x" * 262144 + b"\n", 0o644),
         C, ("{config}", "larger than")),
    Case("config-digits-12", "digits = 12",
         _bad_config("digits = 6", "digits = 12", "digits"), C, ("{config}:{line}:", "totp.digits")),
    Case("config-window-11", "window = 11",
         _bad_config("window = 1", "window = 11", "window"), C, ("{config}:{line}:", "totp.window")),
    Case("config-algorithm-md5", "algorithm = \"MD5\"",
         _bad_config('"SHA1"', '"MD5"', "algorithm"), C, ("{config}:{line}:", "totp.algorithm")),
    Case("config-period-0", "period = 0",
         _bad_config("period = 30", "period = 0", "period"), C, ("{config}:{line}:", "totp.period")),
    Case("config-unenrolled-maybe", "unenrolled = \"maybe\"",
         _bad_config('"deny"', '"maybe"', "unenrolled"), C, ("{config}:{line}:", "policy.unenrolled")),
    Case("config-max-failures-negative", "max_failures = -1",
         _bad_config('unenrolled = "deny"', 'unenrolled = "deny"\nmax_failures = -1', "max_failures"),
         C, ("{config}:{line}:", "policy.max_failures")),
    Case("config-unknown-key", "colour = \"blue\" in [policy]",
         _bad_config('unenrolled = "deny"', 'unenrolled = "deny"\ncolour = "blue"', "colour"),
         C, ("{config}:{line}:", "policy.colour")),
    Case("config-unknown-version", "version = 2",
         _bad_config("version = 1", "version = 2", "version"), C, ("{config}:{line}:", "version")),
    Case("config-relative-storage", "storage dir = \"lib\"",
         lambda w: _bad_config(f'dir = "{w.twofa.storage}"', 'dir = "lib"', "dir =")(w), C,
         ("{config}:{line}:", "storage.dir")),
    Case("config-number-overflow", "period = 99999999999999999999",
         _bad_config("period = 30", "period = 99999999999999999999", "period"), C,
         ("{config}:{line}:", "too large")),
]


@pytest.mark.parametrize("case", HOSTILE, ids=[c.id for c in HOSTILE])
def test_hostile_or_broken_file_denies_the_login_and_says_why_in_one_syslog_line(
    make_user, twofa, syslog, hostile_tally, case
):
    hostile_tally["run"] += 1
    twofa.write_config_text(config_text(twofa))
    user = user_with_password(make_user)
    secret = enroll(twofa, user.name)
    config = twofa.root / "policy.toml"
    config.write_text(config_text(twofa))
    os.chmod(config, 0o644)
    # The service under test reads its own copy of the policy (so the CLI's stays usable).
    st = make_stack(twofa, "sudo", "twofa-e2e-hostile", config=config)
    # The right password and the right code: without the defence, this login would succeed.
    right = code(twofa, secret)
    world = World(twofa, user, secret, make_user, config)
    shadow_before = os.lstat(SHADOW)
    case.setup(world)
    fresh_log(syslog)
    t0 = time.monotonic()
    result = st.login(user.name, [user.password, right], timeout=20)
    elapsed = time.monotonic() - t0
    assert elapsed < 4.5, f"the login took {elapsed:.1f} s (hung on a special file or a lock?)"
    assert result["result"] == case.result, (case.broken, result)
    assert tuple(prompts(result)) == case.asked, (case.broken, prompts(result))
    lines = lines_about(syslog, user.name)
    assert len(lines) == 1, (case.broken, lines)
    (fields,) = parse_lines(lines)
    assert fields["reason"] == case.reason, (case.broken, lines[0])
    values = {"enrollment": world.enrollment, "state": world.state, "lock": world.lock,
              "storage": twofa.storage, "config": config, "uid": user.uid, **world.values}
    for needle in case.mentions:
        options = [n.format(**values) for n in (needle if isinstance(needle, tuple) else (needle,))]
        assert any(o in lines[0] for o in options), (case.broken, options, lines[0])
    # No caught panic ("internal error" / reason=internal-error); the driver did not crash.
    assert not re.search(r"panic|internal", "\n".join(lines)), lines
    everything = "\n".join(lines) + json.dumps(result["report"])
    shadow_untouched_by_twofa(shadow_before)
    for entry in SHADOW.read_text().splitlines():
        assert entry.strip() not in everything, "/etc/shadow's content reached the log or the user"
    record_syslog(lines)
    hostile_tally["passed"] += 1


@pytest.fixture(scope="module")
def hostile_tally():
    tally = {"run": 0, "passed": 0}
    yield tally
    if tally["run"]:
        report_figure(
            f"hostile/broken files: {tally['passed']} of {tally['run']} cases passed "
            f"(table: {len(HOSTILE)} rows, {sum(c.id.startswith('config-') for c in HOSTILE)} "
            "of them policy files)"
        )


# ----------------------------------------------------------------------------------------------
# Hostile account names given to PAM

HOSTILE_NAMES = {
    "slash": "twofa-e2e-evil/../../etc/passwd",
    "dot-dot": "..",
    "control-character": "twofa-e2e-evil\x01",
    "newline (log injection)": "twofa-e2e-evil\npam_twofa(sshd:auth): user=root outcome=success reason=ok",
    "300 characters": "twofa-e2e-evil" + "a" * 286,
}


@pytest.mark.parametrize("what", list(HOSTILE_NAMES))
def test_hostile_user_names_are_refused_like_unknown_users_and_create_no_file(make_user, twofa, syslog, recorded, what):
    name = HOSTILE_NAMES[what]
    twofa.write_config_text(config_text(twofa))
    colleague = user_with_password(make_user)
    enroll(twofa, colleague.name)
    tag = secrets.token_hex(3)
    sudo = make_stack(twofa, "sudo", f"twofa-e2e-names-a{tag}")
    sshd = make_stack(twofa, "sshd", f"twofa-e2e-names-b{tag}")
    before = twofa.storage_files()
    for st, answers, env, asked, reasons in [
        (sudo, ["some-password", "123456"], None, [PASSWORD, CODE], {"password-failed", "unknown-user"}),
        (sshd, ["123456"], PUBKEY_ENV, [CODE], {"unknown-user"}),
    ]:
        reference_name = unknown_name()
        reference = st.login(reference_name, answers, env=env)
        lines_about(syslog, reference_name)      # its line has arrived: not counted below
        fresh_log(syslog)
        result = st.login(name, answers, env=env, timeout=20)
        assert result["result"] == "PAM_AUTH_ERR"
        assert prompts(result) == asked
        assert transcript(result) == transcript(reference)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            ours = [l for l in syslog.lines() if f"pam_twofa({st.name}:auth)" in l]
            if ours:
                break
            time.sleep(0.02)
        ours = [l for l in syslog.settle(quiet=0.1) if f"pam_twofa({st.name}:auth)" in l]
        assert len(ours) == 1, ours                       # one line, however the name looks
        line = ours[0]
        assert all(c.isprintable() for c in line), f"control character logged raw: {line!r}"
        (fields,) = parse_lines([line])
        assert fields["reason"] in reasons and fields["account"] == "-", line
        assert "reason=ok" not in line.split(" reason=")[0]
    assert twofa.storage_files() == before
    assert not [p for p in twofa.root.rglob("*") if "evil" in p.name]
    assert not glob.glob("/etc/twofa-e2e-evil*") and not glob.glob("/tmp/twofa-e2e-evil*")


# ==============================================================================================
# 6. Secrets never leak (last: it scans what the tests above captured)


def test_no_secret_code_or_password_shows_up_in_logs_driver_output_or_state_files(make_user, twofa, syslog, recorded):
    # Its own run too, so that the scan is never empty when this test runs alone.
    twofa.write_config_text(config_text(twofa, max_failures=2))
    user = user_with_password(make_user)
    secret = enroll(twofa, user.name)
    st = make_stack(twofa)
    assert st.login(user.name, [user.password, code(twofa, secret)])["result"] == "PAM_SUCCESS"
    st.login(user.name, [user.password, wrong_code(twofa, secret)])
    st.login(user.name, ["bad-" + remember_password("x" + user.password), code(twofa, secret)])
    st.login(user.name, [user.password, wrong_code(twofa, secret)])      # locks
    st.login(user.name, [user.password, code(twofa, secret)])            # locked
    lines_about(syslog, user.name, expect=5)
    record_syslog(syslog.lines())
    record_storage(twofa.storage)

    assert LEAKS.secrets and LEAKS.codes and LEAKS.passwords and LEAKS.recovery
    assert any(w == "syslog" for w, _ in LEAKS.texts) and any(w == "driver stdout" for w, _ in LEAKS.texts)
    assert any(not by_design for _, _, by_design in LEAKS.files)
    leaks = find_leaks(LEAKS)
    assert leaks == [], "\n".join(leaks[:20])

    # Positive control: the scanner finds each kind of planted value where it looks.
    some_secret, some_code = sorted(LEAKS.secrets)[0], sorted(LEAKS.codes)[0]
    some_password, some_recovery = sorted(LEAKS.passwords)[0], sorted(LEAKS.recovery)[0]
    import base64
    raw_hex = base64.b32decode(some_secret + "=" * (-len(some_secret) % 8)).hex()
    plants = {
        "secret in syslog": Leaks(secrets={some_secret}, texts=[("syslog", f"<85>x[1]: pam_twofa(s:auth): detail {some_secret}")]),
        "raw hex secret in driver output": Leaks(secrets={some_secret}, texts=[("driver stdout", f'{{"text":"{raw_hex}"}}')]),
        "code in syslog": Leaks(codes={some_code}, texts=[("syslog", f"<85>x[1]: pam_twofa(s:auth): code={some_code}")]),
        "password in driver stderr": Leaks(passwords={some_password}, texts=[("driver stderr", f"pw {some_password}")]),
        "secret in a state file": Leaks(secrets={some_secret}, files=[("state/x.toml", f"s = \"{some_secret.lower()}\"".encode(), False)]),
        "recovery code in an enrollment": Leaks(recovery={some_recovery}, files=[("users/x.toml", some_recovery.encode(), True)]),
    }
    for what, planted in plants.items():
        assert find_leaks(planted), f"the scanner missed a planted {what}"
    # ...and is not fooled by look-alikes: a code inside a longer number, a secret in an
    # enrollment (where it belongs).
    assert find_leaks(Leaks(codes={some_code}, texts=[("syslog", f"locked until 9{some_code}9")])) == []
    assert find_leaks(Leaks(secrets={some_secret}, files=[("users/x.toml", some_secret.encode(), True)])) == []
    report_figure(
        f"leak scan: {len(LEAKS.secrets)} secrets, {len(LEAKS.codes)} codes, "
        f"{len(LEAKS.passwords)} passwords, {len(LEAKS.recovery)} recovery codes searched in "
        f"{sum(w == 'syslog' for w, _ in LEAKS.texts)} syslog lines, "
        f"{sum(w != 'syslog' for w, _ in LEAKS.texts)} outputs, {len(LEAKS.files)} files: none found"
    )
