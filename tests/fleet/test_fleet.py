"""Fleet mode end to end: three hosts (network namespaces) share enrollments, replay protection
and lockout through one PostgreSQL (TLS, synchronous standby), each login going through real
libpam, pam_twofa, the twofa-store helper and the network.

Each test makes fresh users (one per round where codes are reused), so no test waits for a TOTP
step: a code already used is reused on purpose only to check replay protection, and "a fresh
code" is the next step's (accepted with window = 1).
"""

from __future__ import annotations

import base64
import os
import re
import signal
import stat
import statistics
import subprocess
import time

import pytest

from conftest import (
    CERTIFICATE_RE,
    CLI_STATUS_ALL,
    CLI_STORE_CHECK,
    CLI_STORE_IMPORT,
    CODE_PROMPT,
    FELL_BACK_LOCAL_RE,
    IMPORT_NOTHING_NEW_RE,
    IMPORTED_USER_RE,
    LOCKED_MESSAGE_RE,
    PASSWORD_PROMPT,
    REASON_LOCKED,
    REASON_OK,
    REASON_REPLAY,
    REASON_STORE_DOWN,
    REASON_STORE_ERROR,
    REASON_WRONG,
    STORE_DOWN_MESSAGE_RE,
    code,
    outcome_of,
    reason_of,
    report_figure,
    unlock_args,
    write_secret,
    wrong_code,
)
from fleet_net import PRIMARY_ADDR, STANDBY_ADDR

NEXT_STEP = 30  # seconds: the next TOTP step's code, unused yet, accepted with window = 1


def describe(login) -> str:
    return f"[{login.host}] {login.result} after {login.elapsed:.2f}s, shown {login.shown()}"


# ----------------------------------------------------------------------------------------------
# One enrollment, every host


def test_enrolled_once_on_h1_logs_in_on_h2_and_h3_and_h3_lists_it(fleet):
    user = fleet.user()
    secret = fleet.h1.enroll(user)

    on_h2 = fleet.h2.login(user, code(secret))
    assert on_h2.messages == [PASSWORD_PROMPT, CODE_PROMPT], describe(on_h2)
    assert on_h2.ok, f"enrolled on h1, refused on h2: {describe(on_h2)}"

    on_h3 = fleet.h3.login(user, code(secret, time.time() + NEXT_STEP))
    assert on_h3.ok, f"enrolled on h1, refused on h3: {describe(on_h3)}"

    status = fleet.h3.cli(*CLI_STATUS_ALL)
    assert re.search(rf"(?m)\b{re.escape(user.name)}\b", status.stdout), (
        f"`status --all` on h3 does not list {user.name}:\n{status.stdout}"
    )
    reasons = [reason_of(line) for line in fleet.syslog.wait_about(user.name, 2)]
    assert reasons == [REASON_OK, REASON_OK], reasons
    report_figure(f"enroll-once: h2 login {on_h2.elapsed:.2f}s, h3 login {on_h3.elapsed:.2f}s")


def test_pamtester_on_two_hosts_the_code_works_once_fleet_wide(fleet):
    """Debian's pamtester (not our driver) in two host namespaces, through their
    /etc/pam.d services: the same code gets in on h2 and is refused on h3."""
    import pexpect

    from fleet_net import in_ns

    user = fleet.user()
    secret = fleet.h1.enroll(user)
    right = code(secret)

    def pamtester(host) -> tuple[int, str]:
        argv = in_ns(host.ns, host.syslog.wrap(["pamtester", host.service, user.name, "authenticate"]))
        child = pexpect.spawn(argv[0], argv[1:], encoding="utf-8", timeout=30)
        try:
            child.expect_exact("Password: ")
            child.sendline(user.password)
            child.expect_exact("Verification code: ")
            child.sendline(right)
            child.expect(pexpect.EOF)
        finally:
            child.close(force=True)
        return child.exitstatus, child.before

    status, out = pamtester(fleet.h2)
    assert status == 0 and "successfully authenticated" in out, f"h2: {status} {out}"
    status, out = pamtester(fleet.h3)
    assert status != 0 and "successfully authenticated" not in out, (
        f"h3 let the code h2 just used in again: {status} {out}"
    )
    reasons = [reason_of(line) for line in fleet.syslog.wait_about(user.name, 2)]
    assert reasons == [REASON_OK, REASON_REPLAY], reasons
    report_figure("pamtester: the same code -> h2 in, h3 refused as a replay")


# ----------------------------------------------------------------------------------------------
# Replay protection across hosts, under contention

ROUNDS = 20
PARALLEL = 24


def test_one_code_in_24_parallel_logins_over_3_hosts_is_accepted_exactly_once(fleet):
    # What is under test here is that accepting a step is atomic across hosts, not latency:
    # 24 logins at once on a 2-core machine (each with its helper, TLS and SCRAM, and a debug
    # build's crypto) can keep the CPU busy for seconds, so the deadlines are generous (the
    # frozen-database test holds them tight). Replays count as failures: with the default
    # max_failures a lockout would turn later replays into "locked".
    roomy = fleet.settings_file("roomy.toml", connect_timeout_ms=10_000)
    for host in fleet.hosts:
        host.configure(settings=roomy, timeout_ms=20_000, max_failures=1000)
    round_times, slowest = [], []
    t_start = time.monotonic()
    for rnd in range(1, ROUNDS + 1):
        user = fleet.user()
        secret = fleet.hosts[rnd % 3].enroll(user)
        the_code = code(secret)
        start_at = time.time_ns() + 1_000_000_000  # all 24 started by then
        procs = [(host, host.spawn_login(user, the_code, start_at))
                 for host in (fleet.hosts[i % 3] for i in range(PARALLEL))]
        done = wait_all([p for _, p in procs], timeout=60)
        round_s = max(done) - start_at / 1e9
        logins = [host.finish_login(proc) for host, proc in procs]
        winners = [l.host for l in logins if l.ok]
        refused = [l for l in logins if not l.ok]
        lines = fleet.syslog.wait_about(user.name, PARALLEL)
        assert len(winners) == 1, (
            f"round {rnd}: {len(winners)} of {PARALLEL} logins with one code succeeded "
            f"(on {winners}); results: {[(l.host, l.result) for l in logins]}\n" + "\n".join(lines)
        )
        assert all(l.result == "PAM_AUTH_ERR" for l in refused), (
            f"round {rnd}: refused otherwise than as a wrong code: "
            f"{[describe(l) for l in refused if l.result != 'PAM_AUTH_ERR']}\n" + "\n".join(lines)
        )
        reasons = sorted(reason_of(line) for line in lines)
        assert reasons == sorted([REASON_OK] + [REASON_REPLAY] * (PARALLEL - 1)), (
            f"round {rnd}: syslog reasons {reasons}:\n" + "\n".join(lines)
        )
        late = [l.report.get("start_late_usec", 0) / 1000 for l in logins]
        round_times.append(round_s)
        report_figure(
            f"parallel round {rnd:2d}: 1/{PARALLEL} accepted (on {winners[0]}), "
            f"{len(refused)} refused as replays; start spread {max(late) - min(late):.0f} ms, "
            f"all done {round_s:.2f}s after the start"
        )
    report_figure(
        f"parallel: {ROUNDS} rounds x {PARALLEL} logins over 3 hosts: {ROUNDS} accepted, "
        f"{ROUNDS * (PARALLEL - 1)} replays refused; slowest login {max(round_times):.2f}s, "
        f"median round {statistics.median(round_times):.2f}s; test {time.monotonic() - t_start:.1f}s"
    )


def wait_all(procs, timeout: float) -> list[float]:
    """Waits for every process; returns the wall-clock time (time.time()) each one ended."""
    ended = [None] * len(procs)
    deadline = time.monotonic() + timeout
    while None in ended:
        for i, p in enumerate(procs):
            if ended[i] is None and p.poll() is not None:
                ended[i] = time.time()
        if time.monotonic() > deadline:
            for p in procs:
                if p.poll() is None:
                    p.kill()
            raise AssertionError(f"{ended.count(None)} logins still running after {timeout}s")
        time.sleep(0.01)
    return ended


# ----------------------------------------------------------------------------------------------
# Lockout across hosts


def test_wrong_codes_on_three_hosts_add_up_to_one_lockout_and_unlock_on_one_clears_it_everywhere(fleet):
    for host in fleet.hosts:
        host.configure(max_failures=5)
    user = fleet.user()
    secret = fleet.h1.enroll(user)

    plan = [fleet.h1, fleet.h1, fleet.h2, fleet.h2, fleet.h3]
    for i, host in enumerate(plan, start=1):
        wrong = host.login(user, wrong_code(secret))
        assert wrong.result == "PAM_AUTH_ERR", f"wrong code {i}: {describe(wrong)}"
    reasons = [reason_of(line) for line in fleet.syslog.wait_about(user.name, len(plan))]
    assert reasons == [REASON_WRONG] * len(plan), f"2+2+1 wrong codes on h1, h2, h3 logged as {reasons}"

    locked = fleet.h2.login(user, code(secret))
    assert locked.result == "PAM_AUTH_ERR", f"right code after 5 failures over 3 hosts: {describe(locked)}"
    assert any(re.search(LOCKED_MESSAGE_RE, text) for _, text in locked.shown()), (
        f"the locked-out user was not told so: {describe(locked)}"
    )
    assert reason_of(fleet.syslog.wait_about(user.name, len(plan) + 1)[-1]) == REASON_LOCKED

    fleet.h1.cli(*unlock_args(user.name))
    after = fleet.h3.login(user, code(secret, time.time() + NEXT_STEP))
    assert after.ok, f"unlocked on h1, still refused on h3: {describe(after)}"
    report_figure("lockout: 2+2+1 wrong codes on h1,h2,h3 -> locked on h2; unlock on h1 -> h3 logs in")


# ----------------------------------------------------------------------------------------------
# A frozen database


def wait_no_processes(host, timeout: float = 1.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        left = host.leftover_processes()
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.02)


def test_frozen_database_denies_within_the_deadline_or_falls_back_to_local_files(fleet):
    timeout_ms = 3000
    margin = 1.5
    # h1: deny; its helper would wait 10 s for a connection, so the module's own deadline has
    # to end the login. h3: on_store_error = "local".
    slow_connect = fleet.settings_file("slow-connect.toml", connect_timeout_ms=10_000)
    fleet.h1.configure(settings=slow_connect, timeout_ms=timeout_ms, on_store_error="deny")
    fleet.h3.configure(timeout_ms=timeout_ms, on_store_error="local")
    user = fleet.user()
    # Enrolled in h3's local files (h3 before fleet mode), then imported into the store.
    secret = fleet.h3.enroll(user, policy=fleet.h3.files_policy)
    fleet.h3.cli(*CLI_STORE_IMPORT)
    warm = fleet.h1.login(user, code(secret, time.time() - NEXT_STEP))
    assert warm.ok, f"with the store up, h1 refused the previous step's code: {describe(warm)}"
    fleet.syslog.wait_about(user.name, 1)

    right = code(secret)
    pids = fleet.cluster.primary.signal_all(signal.SIGSTOP)
    try:
        denied = fleet.h1.login(user, right)
        left_on_h1 = wait_no_processes(fleet.h1)
        fallback = fleet.h3.login(user, right)
    finally:
        fleet.cluster.primary.signal_all(signal.SIGCONT)

    assert not denied.ok, f"h1 let the user in with the store frozen: {describe(denied)}"
    assert denied.elapsed < timeout_ms / 1000 + margin, (
        f"h1's login took {denied.elapsed:.2f}s with timeout_ms = {timeout_ms}: {describe(denied)}"
    )
    assert denied.elapsed >= 0.9 * timeout_ms / 1000, (
        f"h1's login returned after {denied.elapsed:.2f}s, before timeout_ms = {timeout_ms}: "
        f"it gave up on the store early (its helper would have waited 10 s to connect)"
    )
    shown = denied.shown()
    assert len(shown) == 1 and re.search(STORE_DOWN_MESSAGE_RE, shown[0][1]), (
        f"the user should see one message that the service can't be reached: {describe(denied)}"
    )
    assert not left_on_h1, f"processes left in h1 after the login returned: {left_on_h1}"

    assert fallback.ok, f"h3 (on_store_error = \"local\") refused the right code: {describe(fallback)}"
    assert fallback.elapsed < timeout_ms / 1000 + margin, describe(fallback)

    lines = fleet.syslog.wait_about(user.name, 3)[1:]
    assert len(lines) == 2, lines
    h1_line, h3_line = lines
    assert reason_of(h1_line) == REASON_STORE_DOWN, h1_line
    assert "outcome=success" in h3_line and re.search(FELL_BACK_LOCAL_RE, h3_line), (
        f"h3's line should say it fell back to local files: {h3_line}"
    )

    # Thawed: the store answers again, and h1's denied attempt spent nothing there.
    again = fleet.h1.login(user, right)
    assert again.ok, f"after SIGCONT, h1 refused a code the store never accepted: {describe(again)}"
    report_figure(
        f"frozen store ({len(pids)} postgres processes stopped): h1 denied after "
        f"{denied.elapsed:.2f}s (timeout_ms {timeout_ms}), h3 fell back to local in {fallback.elapsed:.2f}s"
    )


# What a store helper of protocol 1 (the releases before operations were values) answers to any
# line it does not know, the protocol line included: what a host whose package upgrade is half
# done may run beside a newer module.
OLD_HELPER_REFUSAL = "malformed request (is the helper the same version as the module?)"


def test_a_helper_of_an_older_release_denies_the_login_and_never_falls_back_to_local_files(fleet):
    user = fleet.user()
    # Enrolled in h3's local files and imported: a fallback would find the user and let them in.
    secret = fleet.h3.enroll(user, policy=fleet.h3.files_policy)
    fleet.h3.cli(*CLI_STORE_IMPORT)
    old_helper = fleet.root / "twofa-store-protocol-1"
    write_secret(
        old_helper,
        "#!/bin/sh\nwhile read line; do echo 'err backend x%s'; done\n"
        % OLD_HELPER_REFUSAL.encode().hex(),
        0o755,
    )
    fleet.h3.configure(on_store_error="local", helper=old_helper)
    right = code(secret)
    denied = fleet.h3.login(user, right)
    assert not denied.ok, f"h3 let the user in past a helper of another release: {describe(denied)}"
    (line,) = fleet.syslog.wait_about(user.name, 1)
    assert reason_of(line) == REASON_STORE_ERROR, line
    assert "store protocol 1" in line and "this module 2" in line, (
        f"the log line should name both protocol versions: {line}"
    )
    assert "upgrading the twofa package" in line, line
    assert not re.search(FELL_BACK_LOCAL_RE, line), f"a version mismatch fell back: {line}"
    assert not (fleet.h3.storage / "state" / f"{user.name}.toml").exists(), (
        "the denied login wrote state to h3's local files"
    )

    # With the helper of its own release, the same code logs in: the mismatch spent nothing.
    fleet.h3.configure(on_store_error="local")
    again = fleet.h3.login(user, right)
    assert again.ok, f"the matching helper refused the unspent code: {describe(again)}"
    line = fleet.syslog.wait_about(user.name, 2)[-1]
    assert reason_of(line) == REASON_OK and not re.search(FELL_BACK_LOCAL_RE, line), line


# ----------------------------------------------------------------------------------------------
# Secrets at rest, TLS


def test_the_database_never_holds_a_secret_in_clear(fleet):
    before = fleet.cluster.dump()
    user = fleet.user()
    secret = fleet.h1.enroll(user)
    assert fleet.h2.login(user, code(secret)).ok, "the enrollment does not work on h2"
    dump = fleet.cluster.dump()
    assert dump != before, "pg_dump shows no change after an enrollment: wrong database?"

    raw = base64.b32decode(secret)
    forms = {
        "base32": secret.rstrip("="),
        "base32 lower-case": secret.rstrip("=").lower(),
        "hex": raw.hex(),
        "HEX": raw.hex().upper(),
        "base64": base64.b64encode(raw).decode().rstrip("="),
    }
    found = [what for what, text in forms.items() if text in dump]
    assert not found, f"the secret is in pg_dump of the store in clear ({', '.join(found)})"

    # The fleet key that seals them stays on the hosts: root's, 0600, and not in the database.
    key = fleet.infra.key_file
    st = key.stat()
    assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o600, (
        f"{key}: owner {st.st_uid}, mode {oct(stat.S_IMODE(st.st_mode))}")
    key_hex = key.read_text().strip()
    assert re.fullmatch(r"[0-9a-fA-F]{64}", key_hex), f"{key} does not hold 64 hex digits"
    for text in (key_hex.lower(), key_hex.upper()):
        assert text not in dump, "the fleet key is in pg_dump of the store"
    report_figure(f"secrets: pg_dump of {len(dump)} bytes holds none of {len(forms)} forms of the "
                  "secret, nor the fleet key")


def test_store_tls_is_pinned_to_its_ca_and_never_off(fleet):
    other_ca = fleet.settings_file("other-ca.toml", ca_file=fleet.infra.pki.other_ca)
    clear = fleet.settings_file("tls-off.toml", tls="off")
    fleet.h2.configure(settings=other_ca)
    fleet.h3.configure(settings=clear)
    user = fleet.user()
    secret = fleet.h1.enroll(user)
    right = code(secret)

    pinned = fleet.h2.login(user, right)
    assert not pinned.ok, f"h2 trusted a server its CA did not sign: {describe(pinned)}"
    plain = fleet.h3.login(user, right)
    assert not plain.ok, f"h3 got through to a hostssl-only server without TLS: {describe(plain)}"
    h2_line, h3_line = fleet.syslog.wait_about(user.name, 2)
    assert re.search(CERTIFICATE_RE, h2_line), f"h2's line does not say certificate: {h2_line}"
    # Both are store errors (fail closed), not a code the user got wrong, and the user is told.
    for line in (h2_line, h3_line):
        assert outcome_of(line) == "error", f"a refused store connection logged as: {line}"
    # The database refused the clear-text login: it answered, so it is an error, not "down".
    assert reason_of(h3_line) == REASON_STORE_ERROR, h3_line
    for result in (pinned, plain):
        shown = result.shown()
        assert len(shown) == 1 and re.search(STORE_DOWN_MESSAGE_RE, shown[0][1]), (
            f"the user should see one message that the service can't be reached: {describe(result)}"
        )

    check_h2 = fleet.h2.cli(*CLI_STORE_CHECK, check=False)
    assert check_h2.returncode != 0, f"store check on h2 passed with the wrong CA:\n{check_h2.stdout}"
    assert re.search(CERTIFICATE_RE, check_h2.stdout + check_h2.stderr), check_h2.stderr
    check_h3 = fleet.h3.cli(*CLI_STORE_CHECK, check=False)
    assert check_h3.returncode != 0, f"store check on h3 passed without TLS:\n{check_h3.stdout}"
    fleet.h1.cli(*CLI_STORE_CHECK)  # and with the right CA it passes

    ok = fleet.h1.login(user, right)
    assert ok.ok, f"the same code on h1 (right CA) was refused: {describe(ok)}"
    report_figure("tls: other CA -> denied (certificate), tls off -> denied; right CA -> accepted")


# ----------------------------------------------------------------------------------------------
# store import


def test_store_import_makes_local_enrollments_usable_on_every_host_once(fleet):
    alice, bob = fleet.user(), fleet.user()
    # h1 before fleet mode: kind = "files", the same [storage] dir.
    sa = fleet.h1.enroll(alice, policy=fleet.h1.files_policy)
    sb = fleet.h1.enroll(bob, policy=fleet.h1.files_policy)

    before = fleet.h2.login(alice, code(sa))
    assert not before.ok, f"alice logged in on h2 before the import: {describe(before)}"

    first = fleet.h1.cli(*CLI_STORE_IMPORT)
    for u in (alice, bob):
        assert u.name in first.stdout, f"the import does not mention {u.name}:\n{first.stdout}"

    a_code = code(sa)
    a_login = fleet.h2.login(alice, a_code)
    assert a_login.ok, f"imported alice refused on h2: {describe(a_login)}"
    b_login = fleet.h3.login(bob, code(sb))
    assert b_login.ok, f"imported bob refused on h3: {describe(b_login)}"

    second = fleet.h1.cli(*CLI_STORE_IMPORT)
    out = second.stdout + second.stderr
    assert not re.search(IMPORTED_USER_RE.format(user=re.escape(alice.name)), out), (
        f"a second import imported alice again:\n{out}")
    assert re.search(IMPORT_NOTHING_NEW_RE, out), f"a second import should say nothing is new:\n{out}"
    # Importing again reset nothing: alice's code used on h2 is still spent everywhere.
    replay = fleet.h3.login(alice, a_code)
    assert not replay.ok, f"after a second import, h3 accepted alice's spent code: {describe(replay)}"
    assert reason_of(fleet.syslog.wait_about(alice.name, 3)[-1]) == REASON_REPLAY
    report_figure("import: 2 local enrollments imported and usable on h2/h3; second import imported nothing")


# ----------------------------------------------------------------------------------------------
# Failover to the synchronous standby (last: the cluster is rebuilt for any test after it)


def test_code_accepted_just_before_the_primary_dies_is_a_replay_on_the_promoted_standby(fleet):
    hold = 1.0  # seconds the standby does not confirm while h1 logs in
    user = fleet.user()
    secret = fleet.h1.enroll(user)
    the_code = code(secret)

    # The standby stops confirming for a moment: a store that acknowledged a step before the
    # standby had it (synchronous_commit off or local) would let h1's login return at once,
    # and a failover would then forget the step. A synchronous one makes h1 wait.
    receiver = fleet.cluster.standby.walreceiver()
    fleet.cluster.standby.signal_pids([receiver], signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        proc = fleet.h1.spawn_login(user, the_code, time.time_ns())
        try:
            proc.wait(timeout=hold)
            returned_early = True
        except subprocess.TimeoutExpired:
            returned_early = False
    finally:
        fleet.cluster.standby.signal_pids([receiver], signal.SIGCONT)
    accepted = fleet.h1.finish_login(proc)
    waited = time.monotonic() - t0
    assert not returned_early, (
        f"h1's login returned ({accepted.result}) while the standby could not confirm: the store "
        f"acknowledged a code before it was replicated, and a failover would forget it"
    )
    assert accepted.ok, f"h1 refused the right code: {accepted.result} {accepted.shown()}"

    t1 = time.monotonic()
    fleet.cluster.primary.kill()  # right after the login returned
    fleet.cluster.promote_standby()
    failover_s = time.monotonic() - t1

    replay = fleet.h2.login(user, the_code)
    assert not replay.ok, (
        f"the code accepted on h1 (primary {PRIMARY_ADDR}) was accepted again on h2 after the "
        f"failover to {STANDBY_ADDR}: {describe(replay)}")
    fresh = fleet.h2.login(user, code(secret, time.time() + NEXT_STEP))
    assert fresh.ok, f"a fresh code on h2 after the failover was refused: {describe(fresh)}"
    reasons = [reason_of(line) for line in fleet.syslog.wait_about(user.name, 3)]
    assert reasons == [REASON_OK, REASON_REPLAY, REASON_OK], reasons
    report_figure(
        f"failover: h1's login waited {waited:.2f}s for the held standby; primary killed, standby "
        f"promoted in {failover_s:.2f}s; replay refused on h2 in {replay.elapsed:.2f}s, fresh code "
        f"accepted in {fresh.elapsed:.2f}s"
    )


# ----------------------------------------------------------------------------------------------
# The helper inside sshd/sudo


def test_the_store_helper_closes_what_the_host_process_left_open():
    """sshd and sudo may hold descriptors that are not close-on-exec (sockets, the PAM
    application's files): the helper, which talks to the network, must not keep them."""
    from conftest import HELPER

    if os.geteuid() != 0:
        pytest.skip("runs as root like the module")
    r, w = os.pipe()  # not close-on-exec once passed: the stand-in for sshd's socket
    proc = subprocess.Popen(
        [str(HELPER), "serve", "--settings", "/nonexistent/store.toml"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        pass_fds=(r, w),
    )
    try:
        deadline = time.monotonic() + 10
        fds: list[str] = []
        while time.monotonic() < deadline:
            fds = sorted(os.listdir(f"/proc/{proc.pid}/fd"), key=int)
            if fds == ["0", "1", "2"]:
                break
            time.sleep(0.02)
        assert fds == ["0", "1", "2"], f"the helper kept inherited descriptors: {fds}"
        # And it still answers: a broken settings file is the answer, not a silent exit.
        out, _ = proc.communicate(b"state x61 1 1\n", timeout=10)
        assert out.startswith(b"err backend "), out
    finally:
        os.close(r)
        os.close(w)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
