"""The README's recipe "Try it on a private sshd first", as an admin follows it: the shipped
conf/try-sshd/sshd_config, sshd started through a symlink so that it uses a PAM service of its
own (sshd names the service after its program), `twofa-enroll doctor --sshd-config FILE
--sshd-service NAME` checking that sshd, then a login with password and code through it.

Only what would collide with a real admin's machine differs from the recipe: the port (`-p`, which
replaces the file's `Port 2222`), the pid file, and the service's name (twofa-e2e-*, so the test
never touches an /etc/pam.d/sshd-twofa an admin made).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO
from daemons import (
    CODE_PROMPT, PASSWORD_PROMPT, PAM_DIR, SSHD_BIN, START_TIMEOUT, free_port, installed_file,
    private_dir, ssh_login,
)

TRY_CONFIG = REPO / "conf" / "try-sshd" / "sshd_config"


class TrySshd:
    """sshd with the shipped try-sshd configuration, through a symlink named ``service``."""

    def __init__(self, service: str) -> None:
        self.dir = private_dir("twofa-e2e-try-")
        self.link = self.dir / service
        self.log_path = self.dir / "sshd.log"
        self.port = free_port()
        self.proc = None

    def start(self) -> "TrySshd":
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        os.symlink(SSHD_BIN, self.link)
        argv = [str(self.link), "-f", str(TRY_CONFIG), "-p", str(self.port),
                "-o", f"PidFile={self.dir / 'sshd.pid'}"]
        t = subprocess.run(argv + ["-t"], capture_output=True, text=True, timeout=20)
        assert t.returncode == 0, f"sshd -t refuses the shipped try-sshd config:\n{t.stderr}"
        self.proc = subprocess.Popen(argv + ["-D", "-E", str(self.log_path)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while f"Server listening on 127.0.0.1 port {self.port}" not in self.log():
            assert self.proc.poll() is None, f"sshd exited:\n{self.log()}"
            assert time.monotonic() < deadline, f"sshd did not listen:\n{self.log()}"
            time.sleep(0.05)
        return self

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def host_keys():
    if not SSHD_BIN.exists():
        pytest.skip("sshd is not installed")
    if not any(Path("/etc/ssh").glob("ssh_host_*_key")):
        pytest.fail("no host keys in /etc/ssh (the recipe's sshd uses the machine's): "
                    "dpkg-reconfigure openssh-server")


def test_the_private_sshd_recipe_checks_and_logs_in_through_its_own_pam_service(
        host_keys, twofa, make_user):
    twofa.write_config()
    user = make_user()
    secret = twofa.enroll(user.name)
    service = "twofa-e2e-try-" + secrets.token_hex(4)
    stack = twofa.service_text("sshd")
    # doctor reads a private copy of the PAM directory: the machine's own stacks don't matter.
    pam_dir = twofa.root / "pam.d"
    pam_dir.mkdir()
    (pam_dir / service).write_text(stack)

    def doctor(*extra: str) -> list[dict]:
        proc = twofa.cli("doctor", "--json", "--pam-dir", pam_dir, "--sshd-config", TRY_CONFIG,
                         *extra, check=False)
        return json.loads(proc.stdout)

    # The recipe's doctor line: this sshd's settings are checked against its own service.
    findings = doctor("--sshd-service", service)
    sshd = {f["message"]: f["status"] for f in findings if f["check"] == "sshd"}
    assert sshd.get("UsePAM yes") == "ok", findings
    assert any("every list ends in keyboard-interactive" in m for m in sshd), findings
    assert "error" not in sshd.values(), findings
    assert [f for f in findings if f["check"] == f"pam {service}" and f["status"] == "error"] == []
    # Without --sshd-service, doctor looks for a service named sshd and says it checked nothing.
    plain = [f["message"] for f in doctor() if f["check"] == "sshd"]
    assert plain == [f"{pam_dir / 'sshd'} doesn't load pam_twofa: sshd's settings not checked"]

    server = TrySshd(service)
    with installed_file(PAM_DIR / service, stack):
        try:
            server.start()
            att = ssh_login(server, user.name,
                            answers={PASSWORD_PROMPT: user.password, CODE_PROMPT: twofa.code(secret)})
            assert att.authenticated, (att, server.log()[-3000:])
            assert att.output.strip() == user.name
            # The password alone is not enough through the private sshd either.
            att = ssh_login(server, user.name, answers={PASSWORD_PROMPT: user.password})
            assert not att.authenticated
        finally:
            server.stop()
