#!/usr/bin/python3
"""One real sshd keyboard-interactive login per user, timed, for each PAM stack given.

Run by twofa-bench (bench/src/main.rs) inside its private mount namespace, where /etc/passwd
and /etc/shadow are the bench's copies with the twofa-e2e-bNNNNN users: Debian's python3 with
paramiko, reusing tests/e2e/daemons.py's private sshd (127.0.0.1, a temporary
/etc/pam.d/twofa-e2e-sshd-* service removed at stop) and its paramiko login.

stdin: {"password": "...", "logins": N, "stacks": [{"name": "...", "auth": "auth ...\n"}],
        "users": [[name, base32_secret], ...]}   (at least N + 1 users; the first is a warm-up)
stdout: {"<stack name>": [seconds per login, ...], ...}

Each login is timed from the TCP connect to the end of keyboard-interactive authentication
(no session or command). Codes are computed here (RFC 6238, SHA1, 6 digits, 30 s) when the
prompt arrives.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))

import daemons  # noqa: E402  (tests/e2e/daemons.py)


def totp(secret_b32: str, at: float | None = None) -> str:
    key = base64.b32decode(secret_b32)
    counter = int((time.time() if at is None else at) // 30)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    off = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[off:off + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


def login(server: daemons.Sshd, user: str, secret: str, password: str) -> float:
    # ssh_login answers from a dict (prompt text -> reply); the code is computed just before the
    # connection (a login takes well under a step, and every module accepts one step of drift).
    code = totp(secret)
    answers = {
        "Password: ": password,
        "Verification code: ": code,                         # pam_twofa, google-authenticator
        f"One-time password (OATH) for `{user}': ": code,    # pam_oath
    }
    start = time.monotonic()
    att = daemons.ssh_login(server, user, answers=answers, command=None)
    elapsed = time.monotonic() - start
    if not att.authenticated:
        raise RuntimeError(f"ssh login of {user} failed: {att.kbd_result} {att.kbd_error} "
                           f"prompts={att.prompt_texts}\n{server.log()[-3000:]}")
    return elapsed


def main() -> int:
    spec = json.load(sys.stdin)
    n = int(spec["logins"])
    users = spec["users"]
    if len(users) < n + 1:
        raise SystemExit("not enough users")
    out = {}
    for stack in spec["stacks"]:
        server = daemons.Sshd(stack["auth"]).start()
        try:
            name, secret = users[0]
            login(server, name, secret, spec["password"])  # warm-up (page cache, host key)
            times = []
            for name, secret in users[1:n + 1]:
                times.append(login(server, name, secret, spec["password"]))
            out[stack["name"]] = times
        finally:
            server.stop()
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
