"""Helpers of test_hardening.py: PAM stacks, logins through the driver that remember what they
typed and saw, parallel drivers released together, and the leak scanner.

Everything a hardening test types (passwords, codes) or enrolls (secrets), every driver output
and every syslog line it captured are remembered in ``LEAKS``; the last test of
test_hardening.py checks that none of the typed or enrolled values appears in what was
captured, and that the scanner does find a planted one.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import random
import re
import subprocess
import time
from pathlib import Path
from typing import Iterable, Optional

from conftest import DRIVER, run_driver_process

PASSWORD = ("echo_off", "Password: ")
CODE = ("echo_off", "Verification code: ")
TWO_SECONDS = 2_000_000
PUBKEY = "publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
LOCKED_RE = re.compile(r"^Too many failed attempts; try again in \d+ minutes?\.$")
LINE_RE = re.compile(
    r"pam_twofa\((?P<service>[^:()]+):auth\): user=(?P<user>\S+) account=(?P<account>\S+) "
    r"rhost=(?P<rhost>\S+) factor=(?P<factor>\S+) outcome=(?P<outcome>success|deny|ignore|error) "
    r"reason=(?P<reason>[a-z-]+)(?P<detail>: .*)?$"
)


# ----------------------------------------------------------------------------------------------
# What the tests typed, enrolled and captured


@dataclasses.dataclass
class Leaks:
    secrets: set = dataclasses.field(default_factory=set)      # base32 secrets
    codes: set = dataclasses.field(default_factory=set)        # TOTP codes typed
    recovery: set = dataclasses.field(default_factory=set)     # recovery codes printed
    passwords: set = dataclasses.field(default_factory=set)
    texts: list = dataclasses.field(default_factory=list)      # (where, text): syslog, driver output
    files: list = dataclasses.field(default_factory=list)      # (path, bytes, holds_secret_by_design)


LEAKS = Leaks()


def remember_secret(secret: str) -> str:
    LEAKS.secrets.add(secret)
    return secret


def remember_code(code: str) -> str:
    if code:
        LEAKS.codes.add(code)
    return code


def remember_password(password: str) -> str:
    LEAKS.passwords.add(password)
    return password


def record_text(where: str, text: str) -> None:
    if text:
        LEAKS.texts.append((where, text))


def record_syslog(lines: Iterable[str]) -> None:
    for line in lines:
        record_text("syslog", line)


def record_storage(storage: Path) -> None:
    """Remembers every regular file below ``storage`` (not following links). Enrollment files
    and their disabled backups hold the secret by design; nothing else may."""
    if not storage.exists():
        return
    for dirpath, dirnames, filenames in os.walk(storage):
        for f in filenames:
            path = Path(dirpath) / f
            try:
                st = os.lstat(path)
                if not (st.st_mode & 0o170000 == 0o100000) or st.st_size > 1 << 20:
                    continue
                data = path.read_bytes()
            except OSError:
                continue
            rel = path.relative_to(storage).parts
            by_design = bool(rel) and rel[0] in ("users", "disabled")
            LEAKS.files.append((str(path), data, by_design))


def secret_forms(secret: str) -> set[str]:
    """The base32 text (any case, with or without padding) and the raw key in hex."""
    clean = secret.replace(" ", "").upper().rstrip("=")
    raw = base64.b32decode(clean + "=" * (-len(clean) % 8))
    return {clean, clean.lower(), raw.hex(), raw.hex().upper()}


_MASKS = [
    re.compile(r"(user|account)=\S+"),      # user names: random hex could look like a code
    re.compile(r"/tmp/\S+"),                # paths of the test worlds
    re.compile(r"\"(start_late_usec|fail_delay_usec|fail_delay_requested_usec)\":\d+"),
    re.compile(r"^<\d+>[^:]*:"),            # syslog header: priority, ident, pid
]


def _masked(text: str) -> str:
    for m in _MASKS:
        text = m.sub("", text)
    return text


def find_leaks(leaks: Leaks) -> list[str]:
    """Every appearance of a remembered secret, code, recovery code or password where it must
    not be: secrets and passwords anywhere captured (files: except enrollments, which hold the
    secret by design); TOTP codes (as whole numbers) in syslog and driver output; recovery codes
    and passwords in every file."""
    found = []
    secret_needles = {form: s for s in leaks.secrets for form in secret_forms(s)}
    code_res = [(c, re.compile(r"(?<!\d)" + re.escape(c) + r"(?!\d)")) for c in leaks.codes]
    for where, text in leaks.texts:
        masked = _masked(text)
        for form, s in secret_needles.items():
            if form in text:
                found.append(f"secret {s} (as {form}) in {where}: {text!r}")
        for p in leaks.passwords:
            if p in text:
                found.append(f"password {p!r} in {where}: {text!r}")
        for r in leaks.recovery:
            if r in text or r.replace("-", "") in text:
                found.append(f"recovery code {r} in {where}: {text!r}")
        for c, rx in code_res:
            if rx.search(masked):
                found.append(f"code {c} in {where}: {text!r}")
    for path, data, by_design in leaks.files:
        text = data.decode("utf-8", "replace")
        if not by_design:
            for form, s in secret_needles.items():
                if form in text:
                    found.append(f"secret {s} (as {form}) in file {path}")
        for p in leaks.passwords:
            if p in text:
                found.append(f"password {p!r} in file {path}")
        for r in leaks.recovery:
            if r in text or r.replace("-", "") in text:
                found.append(f"recovery code {r} in file {path}")
    return found


# ----------------------------------------------------------------------------------------------
# Logins


@dataclasses.dataclass
class Stack:
    name: str
    confdir: str

    def login(self, user: Optional[str], answers: list, **opts) -> dict:
        """One transaction through the driver: its first try (``report``: the whole output).
        The driver must not crash, whatever the files look like."""
        proc = run_driver_process(self.name, user, answers, self.confdir, **opts)
        record_text("driver stdout", proc.stdout)
        record_text("driver stderr", proc.stderr)
        assert proc.returncode == 0, (
            f"driver exited {proc.returncode} (crash?)\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
        )
        assert proc.stderr == "", proc.stderr
        report = json.loads(proc.stdout)
        assert report["conversation_panicked"] is False
        first = dict(report["tries"][0])
        first["report"] = report
        return first


def make_stack(twofa, conf: str = "sudo", name: Optional[str] = None, **module_args) -> Stack:
    name = name or f"twofa-e2e-{conf}"
    return Stack(name, twofa.pam_confdir(name, twofa.service_text(conf, **module_args)))


def prompts(result: dict) -> list[tuple[str, str]]:
    return [(m["style"], m["text"]) for m in result["messages"]]


def transcript(result: dict) -> dict:
    """What a user (and the application) can tell apart: everything but libpam's randomized
    sleep, which depends only on the requested delay and the clock."""
    return {
        "result": result["result"],
        "messages": result["messages"],
        "fail_delay_requests": result["fail_delay_requests"],
        "fail_delay_requested_usec": result["fail_delay_requested_usec"],
        "unused_answers": result["report"]["unused_answers"],
    }


def code(twofa, secret: str, **params) -> str:
    return remember_code(twofa.code(secret, **params))


def wrong_code(twofa, secret: str, digits: int = 6, period: int = 30, algorithm: str = "SHA1") -> str:
    now = time.time()
    near = {twofa.code(secret, algorithm, digits, period, at=now + k * period) for k in range(-3, 4)}
    while True:
        candidate = "".join(random.choice("0123456789") for _ in range(digits))
        if candidate not in near:
            return remember_code(candidate)


def new_secret(nbytes: int = 20) -> str:
    return remember_secret(base64.b32encode(os.urandom(nbytes)).decode("ascii"))


def enroll(twofa, user_name: str, secret: Optional[str] = None, force: bool = False, **params) -> str:
    """Enrolls through the CLI with --json, remembering the secret and the recovery codes."""
    secret = secret or new_secret()
    args = ["enroll", user_name, "--secret-file", "-", "--no-verify", "--json"]
    for key, value in params.items():
        args += [f"--{key}", str(value)]
    if force:
        args.append("--force")
    proc = twofa.cli(*args, input=secret + "\n")
    out = json.loads(proc.stdout)
    LEAKS.recovery.update(out.get("recovery_codes", []))
    assert out["secret"].upper().rstrip("=") == secret.upper().rstrip("=")
    return secret


def user_with_password(make_user):
    user = make_user()
    remember_password(user.password)
    return user


def status_json(twofa, user_name: str) -> dict:
    proc = twofa.cli("status", user_name, "--json", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record_text("status --json", proc.stdout)
    return json.loads(proc.stdout)


def parse_lines(lines: list[str]) -> list[dict]:
    out = []
    for line in lines:
        m = LINE_RE.search(line)
        assert m, f"syslog line not in the documented format: {line!r}"
        out.append(m.groupdict())
    return out


def lines_about(syslog, user_name: str, expect: int = 1, timeout: float = 5) -> list[str]:
    """pam_twofa's lines about ``user_name``: waits for ``expect`` of them, then for quiet."""
    needle = f"user={user_name} "
    deadline = time.monotonic() + timeout
    while True:
        got = [l for l in syslog.lines() if "pam_twofa(" in l and needle in l]
        if len(got) >= expect or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    return [l for l in syslog.settle(quiet=0.1) if "pam_twofa(" in l and needle in l]


# ----------------------------------------------------------------------------------------------
# Many drivers released together


def driver_argv(stack: Stack, user: str, *, start_at_ns: Optional[int] = None, env=None) -> list[str]:
    argv = [str(DRIVER), "--service", stack.name, "--user", user, "--confdir", stack.confdir]
    for name, value in (env or {}).items():
        argv += ["--env", f"{name}={value}"]
    if start_at_ns is not None:
        argv += ["--start-at", str(start_at_ns)]
    return argv


def run_together(jobs: list[tuple[Stack, str, list, Optional[dict]]], *, lead_s: float = 1.0,
                 timeout: float = 60) -> list[dict]:
    """Starts one driver per job ``(stack, user, answers, pam_env)``; each runs pam_start, then
    waits for the same instant (``lead_s`` from now) before pam_authenticate. Returns their
    reports in order. Every child is killed on the way out."""
    start_at = time.time_ns() + int(lead_s * 1e9)
    procs: list[subprocess.Popen] = []
    try:
        for stack, user, answers, env in jobs:
            p = subprocess.Popen(
                driver_argv(stack, user, start_at_ns=start_at, env=env),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            procs.append(p)
            p.stdin.write(json.dumps(answers))
            p.stdin.close()
            p.stdin = None      # so that communicate() does not flush a closed pipe
        spawned_ns = time.time_ns()
        assert spawned_ns < start_at, (
            f"starting {len(jobs)} drivers took longer than {lead_s} s: they were not released together"
        )
        reports = []
        deadline = time.monotonic() + timeout
        for p in procs:
            out, err = p.communicate(timeout=max(0.1, deadline - time.monotonic()))
            record_text("driver stdout", out)
            record_text("driver stderr", err)
            assert p.returncode == 0 and err == "", f"driver exited {p.returncode}: {err}"
            report = json.loads(out)
            assert report["conversation_panicked"] is False
            reports.append(report)
        return reports
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
