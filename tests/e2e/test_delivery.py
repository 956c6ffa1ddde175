"""End to end: codes sent out of band (email, Pushover, an admin's script) after a verified password.

The real delivery program (target/debug/twofa-deliver, or TWOFA_DELIVER) runs as a test-made
unprivileged system user ``twofa-e2e-dlv-*``; it talks to the fake relays of delivery_servers.py
(a real SMTP server with STARTTLS and AUTH, a Pushover API over HTTPS, both with throw-away
self-signed certificates trusted through ``ca_file``). The credentials come from a root-only
secrets file.

Logins go through a real sshd with paramiko when the test must read a freshly sent code before
answering (the code prompt comes after the send), and through the libpam driver otherwise. One
fresh user per test.
"""

from __future__ import annotations

import base64
import json
import os
import pwd
import re
import secrets
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import paramiko
import pexpect
import pytest

from conftest import DRIVER, ENROLL, REPO, TIMEOUT, _kill_uid, _pids_of_uid, prompts, run_driver
from daemons import CODE_PROMPT, PASSWORD_PROMPT, SSH_TIMEOUT, ssh_connect, start_sshd  # noqa: F401
from delivery_servers import PushoverServer, SmtpServer

DELIVER = Path(os.environ.get("TWOFA_DELIVER", REPO / "target" / "debug" / "twofa-deliver"))

FALLBACK_PROMPT = "Verification code (or Enter to get one by email): "
SEND_FAILED = ("Could not send the code; use your authenticator app or a recovery code, "
               "or contact your administrator.")
TOO_MANY = "Too many codes were sent"
SUBJECT = "Your twofa code for {user}"
BODY = "Code: {code}\nValid for {ttl_minutes} minutes.\n"
CODE_IN_MAIL = re.compile(r"^Code: (\d+)$", re.M)
SMTP_LOGIN = "twofa-mailer"
PUSHOVER_TOKEN = "a" + secrets.token_hex(14) + "z"          # 30 letters and digits
PUSHOVER_KEY = "u" + secrets.token_hex(14) + "k"
PHONE = "+41790000042"
PHONE_PATTERN = r"^\+[0-9]{8,15}$"


# ----------------------------------------------------------------------------------------------
# The delivery user, the relays, the policy


@dataclass
class DeliveryUser:
    name: str
    uid: int
    gid: int


@pytest.fixture
def dlv_user():
    """A fresh unprivileged system user the delivery program runs as; removed (with any
    process of it) at teardown."""
    if not DELIVER.exists():
        pytest.fail(f"twofa-deliver not found at {DELIVER}: run `cargo build` first")
    name = "twofa-e2e-dlv-" + secrets.token_hex(4)
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                   check=True, capture_output=True, timeout=TIMEOUT)
    pw = pwd.getpwnam(name)
    try:
        yield DeliveryUser(name, pw.pw_uid, pw.pw_gid)
    finally:
        _kill_uid(pw.pw_uid)
        subprocess.run(["userdel", "-f", name], capture_output=True, timeout=TIMEOUT)


@pytest.fixture
def smtp():
    """A STARTTLS relay on 127.0.0.1 requiring AUTH (user SMTP_LOGIN, a random password)."""
    server = SmtpServer(tls="starttls", username=SMTP_LOGIN, password="pw-" + secrets.token_hex(8))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pushover():
    server = PushoverServer(token=PUSHOVER_TOKEN, user_keys=[PUSHOVER_KEY])
    server.start()
    try:
        yield server
    finally:
        server.stop()


def toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class World:
    """The test's twofa policy with [delivery] tables, its secrets file, and a PAM stack."""

    def __init__(self, twofa, dlv: DeliveryUser):
        self.twofa = twofa
        self.dlv = dlv
        self.secrets = twofa.root / "secrets.toml"
        self.service: Optional[str] = None
        self.confdir: Optional[str] = None
        self.ftp_service: Optional[str] = None

    def configure(self, *, smtp: Optional[SmtpServer] = None, pushover: Optional[PushoverServer] = None,
                  script: Optional[Path] = None, pattern: Optional[str] = PHONE_PATTERN,
                  max_sends: int = 0, ttl: int = 300, timeout: int = 10,
                  smtp_password: Optional[str] = None, smtp_port: Optional[int] = None,
                  recovery_codes: Optional[int] = None) -> None:
        """Writes the policy and the secrets file. ``recovery_codes``: [policy] recovery_codes
        (None: the default, 10 per new enrollment)."""
        common = (f"program = {toml_str(str(DELIVER))}\n"
                  f"run_as = {toml_str(self.dlv.name)}\n"
                  f"timeout_seconds = {timeout}\n"
                  f"code_ttl_seconds = {ttl}\n")
        text = ("[delivery]\n"
                f"max_sends = {max_sends}\n"
                "send_window_seconds = 900\n"
                f"secrets = {toml_str(str(self.secrets))}\n")
        secrets_text = ""
        if smtp is not None:
            text += ("\n[delivery.email]\n" + common
                     + f'smtp_host = "127.0.0.1"\nsmtp_port = {smtp_port or smtp.port}\ntls = "{smtp.tls}"\n'
                     + f"ca_file = {toml_str(str(smtp.cert_path))}\n"
                     + f"username = {toml_str(smtp.username)}\n"
                     + 'from = "twofa-noreply@example.com"\n'
                     + f"subject = {toml_str(SUBJECT)}\nbody = {toml_str(BODY)}\n")
            secrets_text += f"[email]\npassword = {toml_str(smtp_password or smtp.password)}\n"
        if pushover is not None:
            text += ("\n[delivery.pushover]\n" + common
                     + f"api_url = {toml_str(pushover.url)}\n"
                     + f"ca_file = {toml_str(str(pushover.cert_path))}\n"
                     + 'title = "twofa"\nmessage = "Code: {code} (for {user})"\n')
            secrets_text += f"[pushover]\ntoken = {toml_str(pushover.token)}\n"
        if script is not None:
            text += ("\n[delivery.script]\n" + common + f"command = {toml_str(str(script))}\n")
            if pattern is not None:
                text += f"destination_pattern = {toml_str(pattern)}\n"
        self.secrets.write_text(secrets_text)
        os.chown(self.secrets, 0, 0)
        os.chmod(self.secrets, 0o600)
        self.twofa.write_config(extra=text)
        if recovery_codes is not None:
            policy = self.twofa.config.read_text().replace(
                "[policy]\n", f"[policy]\nrecovery_codes = {recovery_codes}\n", 1)
            self.twofa.write_config_text(policy)
        check = self.twofa.cli("check-config", str(self.twofa.config), check=False)
        assert check.returncode == 0, check.stdout + check.stderr

    # -- enrollment

    def enroll_email(self, user, address: str) -> None:
        self.twofa.cli("enroll", user.name, "--method", "email", "--email", address, "--no-verify")

    def enroll_totp_with_email(self, user, address: str) -> str:
        secret = base64.b32encode(os.urandom(20)).decode()
        self.twofa.cli("enroll", user.name, "--method", "totp", "--secret-file", "-", "--no-verify",
                       "--email", address, input=secret + "\n")
        return secret

    # -- logins through libpam (the sudo stack; the vsftpd one-field stack)

    def login(self, user_name: str, answers: list, **opts) -> dict:
        if self.service is None:
            self.service = "twofa-e2e-dlv-" + secrets.token_hex(4)
            self.confdir = self.twofa.pam_confdir(self.service, self.twofa.service_text("sudo"))
        report = run_driver(self.service, user_name, answers, self.confdir, **opts)
        assert len(report["tries"]) == 1, report
        return report["tries"][0]

    def ftp_login(self, user_name: str, field_text: str) -> dict:
        if self.ftp_service is None:
            self.ftp_service = "twofa-e2e-dlvftp-" + secrets.token_hex(4)
            self.confdir = self.twofa.pam_confdir(self.ftp_service, self.twofa.service_text("vsftpd"))
        report = run_driver(self.ftp_service, user_name, [field_text], self.confdir)
        return report["tries"][0]

    def state_file(self, user_name: str) -> Path:
        return self.twofa.storage / "state" / f"{user_name}.toml"


@pytest.fixture
def world(twofa, dlv_user) -> World:
    return World(twofa, dlv_user)


def mail_code(mail) -> str:
    found = CODE_IN_MAIL.findall(mail.body)
    assert len(found) == 1, f"no single code in the mail body: {mail.body!r}"
    return found[0]


def masked(address: str) -> str:
    local, domain = address.split("@")
    return f"{local[0]}***@{domain}"


def texts(try_result: dict, style: Optional[str] = None) -> list[str]:
    return [t for s, t in prompts(try_result) if style is None or s == style]


def twofa_lines_about(syslog, user_name: str, expect: int = 1, timeout: float = 5) -> list[str]:
    needle = f"user={user_name} "
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len([l for l in syslog.lines() if "pam_twofa(" in l and needle in l]) >= expect:
            break
        time.sleep(0.02)
    return [l for l in syslog.settle(quiet=0.1) if "pam_twofa(" in l and needle in l]


def reason_of(line: str) -> str:
    m = re.search(r" reason=([a-z-]+)", line)
    assert m, line
    return m.group(1)


def deciding_line(lines: list[str]) -> str:
    """The code-checking line's decision (the password_failed line logs too, with that reason)."""
    assert lines, "no pam_twofa line in syslog"
    return lines[-1]


# ----------------------------------------------------------------------------------------------
# sshd keyboard-interactive, answering the code prompt with a code read when it is shown


@dataclass
class OobAttempt:
    prompts: list = field(default_factory=list)   # prompt texts, as the client saw them
    authenticated: bool = False
    output: Optional[str] = None
    error: Optional[str] = None


def ssh_oob_login(server, user, password: str, answer_code: Callable[[str], str]) -> OobAttempt:
    """keyboard-interactive as ``user``: "Password: " gets ``password``; a prompt ending with
    "Verification code: " gets ``answer_code(prompt_text)`` (called while the server waits,
    so it can read the code that was just sent). Then `id -un` if logged in."""
    att = OobAttempt()
    t = ssh_connect(server.port)
    try:
        def handler(name, instructions, prompt_list):
            replies = []
            for text, _echo in prompt_list:
                att.prompts.append(text)
                if text == PASSWORD_PROMPT:
                    replies.append(password)
                elif text.endswith(CODE_PROMPT):
                    replies.append(answer_code(text))
                else:
                    replies.append("")
            return replies
        try:
            t.auth_interactive(user.name, handler)
        except paramiko.AuthenticationException as e:
            att.error = str(e)
        att.authenticated = t.is_authenticated()
        if att.authenticated:
            chan = t.open_session(timeout=SSH_TIMEOUT)
            chan.settimeout(SSH_TIMEOUT)
            chan.exec_command("id -un")
            att.output = chan.makefile("r").read().decode(errors="replace")
            chan.recv_exit_status()
            chan.close()
    finally:
        t.close()
    return att


# ----------------------------------------------------------------------------------------------
# scripts


def install_script(world: World, body: str) -> Path:
    """A root-owned 0755 /bin/sh script in a 0755 dir of the test's world."""
    d = world.twofa.root / "scripts"
    d.mkdir(mode=0o755, exist_ok=True)
    os.chmod(d, 0o755)
    path = d / f"twofa-e2e-send-{secrets.token_hex(4)}.sh"
    path.write_text("#!/bin/sh\n" + body)
    os.chown(path, 0, 0)
    os.chmod(path, 0o755)
    return path


def outbox(world: World) -> Path:
    """A dir the delivery user may write in (what the recording script writes to)."""
    d = world.twofa.root / "outbox"
    if not d.exists():
        d.mkdir(mode=0o755)
        os.chown(d, world.dlv.uid, world.dlv.gid)
    return d / "sent"


def recording_script(world: World) -> tuple[Path, Path]:
    out = outbox(world)
    script = install_script(world, f'printf "%s %s\\n" "$TWOFA_SENDTO" "$TWOFA_CODE" >> {out}\n')
    return script, out


def sent_lines(out: Path) -> list[tuple[str, str]]:
    if not out.exists():
        return []
    return [tuple(line.split(" ", 1)) for line in out.read_text().splitlines()]  # type: ignore[misc]


def live_pids_of(uid: int) -> list[int]:
    """Processes of ``uid`` that are not zombies."""
    live = []
    for pid in _pids_of_uid(uid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            live.append(pid)
    return live


# ==============================================================================================
# 1. Email through a real sshd


def test_ssh_login_with_a_mailed_code_works_once(world, smtp, start_sshd, make_user):
    world.configure(smtp=smtp)
    user = make_user()
    address = f"{user.name}@example.com"
    world.enroll_email(user, address)
    server = start_sshd(world.twofa.auth_lines("sshd"))

    def read_new_mail(expect: int) -> Callable[[str], str]:
        def answer(_prompt: str) -> str:
            return mail_code(smtp.wait_for_messages(expect)[expect - 1])
        return answer

    first = ssh_oob_login(server, user, user.password, read_new_mail(1))
    assert first.authenticated, (first, server.log()[-3000:])
    assert first.output.strip() == user.name
    notice = f"A code was sent to {masked(address)}. It is valid for 5 minutes."
    assert first.prompts == [PASSWORD_PROMPT, f"{notice}\n{CODE_PROMPT}"], first.prompts

    [mail] = smtp.messages()
    assert mail.rcpt_tos == [address]
    assert mail.mail_from == "twofa-noreply@example.com"
    assert mail.message["To"] == address
    assert mail.message["From"] == "twofa-noreply@example.com"
    assert mail.subject == f"Your twofa code for {user.name}"
    assert mail.tls and mail.login == SMTP_LOGIN, "sent without STARTTLS or without AUTH"
    assert "Valid for 5 minutes." in mail.body
    code = mail_code(mail)
    assert re.fullmatch(r"\d{6}", code)

    # The same code again: refused; that login sends a new code (which is not typed).
    def old_code_after_new_mail(_prompt: str) -> str:
        smtp.wait_for_messages(2)
        return code
    again = ssh_oob_login(server, user, user.password, old_code_after_new_mail)
    assert not again.authenticated, "a mailed code logged in twice"
    assert again.prompts == [PASSWORD_PROMPT, f"{notice}\n{CODE_PROMPT}"]
    mails = smtp.messages()
    assert len(mails) == 2
    assert mails[1].rcpt_tos == [address]


# ==============================================================================================
# 2. Pushover


def test_ssh_login_with_a_pushover_code_works(world, pushover, start_sshd, make_user):
    world.configure(pushover=pushover)
    user = make_user()
    world.twofa.cli("enroll", user.name, "--method", "pushover", "--pushover", PUSHOVER_KEY, "--no-verify")
    server = start_sshd(world.twofa.auth_lines("sshd"))

    def code_from_api(_prompt: str) -> str:
        deadline = time.monotonic() + 10
        while not pushover.requests() and time.monotonic() < deadline:
            time.sleep(0.05)
        [req] = pushover.requests()
        assert req.status == 200, req.answer
        m = re.fullmatch(r"Code: (\d{6}) \(for (\S+)\)", req.form["message"])
        assert m and m.group(2) == user.name, req.form
        return m.group(1)

    att = ssh_oob_login(server, user, user.password, code_from_api)
    assert att.authenticated, (att, server.log()[-3000:])
    assert att.output.strip() == user.name
    assert att.prompts[1].startswith("A code was sent to "), att.prompts
    [req] = pushover.requests()
    assert req.form["token"] == PUSHOVER_TOKEN
    assert req.form["user"] == PUSHOVER_KEY
    assert req.form["title"] == "twofa"
    assert req.form["ttl"] == "300"


# ==============================================================================================
# 3. An admin's script


def test_ssh_login_with_a_code_from_the_admins_script_works(world, start_sshd, make_user):
    script, out = recording_script(world)
    world.configure(script=script)
    user = make_user()
    world.twofa.cli("enroll", user.name, "--method", "script", "--script-to", PHONE, "--no-verify")
    server = start_sshd(world.twofa.auth_lines("sshd"))

    def code_from_script(_prompt: str) -> str:
        deadline = time.monotonic() + 10
        while not sent_lines(out) and time.monotonic() < deadline:
            time.sleep(0.05)
        [(to, code)] = sent_lines(out)
        assert to == PHONE
        return code

    att = ssh_oob_login(server, user, user.password, code_from_script)
    assert att.authenticated, (att, server.log()[-3000:])
    assert att.output.strip() == user.name


def test_script_destination_outside_the_pattern_is_refused_at_enrollment(world, make_user):
    script, out = recording_script(world)
    world.configure(script=script)
    user = make_user()
    proc = world.twofa.cli("enroll", user.name, "--method", "script", "--script-to", "12345",
                           "--no-verify", check=False)
    assert proc.returncode == 1, proc
    assert "destination_pattern" in proc.stderr
    assert re.search(r"^enrolled:\s+no\b", world.twofa.cli("status", user.name).stdout, re.M)
    assert not (world.twofa.storage / "users" / f"{user.name}.toml").exists()
    assert sent_lines(out) == []


def test_script_destination_outside_a_tightened_pattern_is_not_sent_at_login(world, make_user, syslog):
    script, out = recording_script(world)
    world.configure(script=script, pattern=PHONE_PATTERN, recovery_codes=0)
    user = make_user()
    world.twofa.cli("enroll", user.name, "--method", "script", "--script-to", PHONE, "--no-verify")
    # The admin later allows only numbers starting +4178: this destination is out.
    world.configure(script=script, pattern=r"^\+4178[0-9]{7}$", recovery_codes=0)
    t = world.login(user.name, [user.password, "123456"])
    assert t["result"] == "PAM_AUTH_ERR"
    assert prompts(t) == [("echo_off", PASSWORD_PROMPT), ("error", SEND_FAILED)]
    assert sent_lines(out) == [], "the script ran for a destination outside the pattern"
    line = deciding_line(twofa_lines_about(syslog, user.name))
    assert reason_of(line) == "delivery-failed", line
    assert "destination_pattern" in line


def test_user_with_recovery_codes_whose_send_fails_can_still_use_a_recovery_code(world, make_user):
    """With recovery codes (the default policy) a failed send is told, and the code prompt
    still comes: a recovery code logs in."""
    script, out = recording_script(world)
    world.configure(script=script, pattern=PHONE_PATTERN)
    user = make_user()
    enrolled = json.loads(world.twofa.cli("enroll", user.name, "--method", "script", "--script-to",
                                          PHONE, "--no-verify", "--json").stdout)
    world.configure(script=script, pattern=r"^\+4178[0-9]{7}$")
    t = world.login(user.name, [user.password, enrolled["recovery_codes"][0]])
    assert prompts(t)[:3] == [("echo_off", PASSWORD_PROMPT), ("error", SEND_FAILED),
                              ("echo_off", CODE_PROMPT)]
    assert t["result"] == "PAM_SUCCESS"
    assert sent_lines(out) == []


def test_failed_send_is_logged_as_delivery_failed_for_a_user_with_recovery_codes(world, make_user, syslog):
    script, out = recording_script(world)
    world.configure(script=script, pattern=PHONE_PATTERN)
    user = make_user()
    world.twofa.cli("enroll", user.name, "--method", "script", "--script-to", PHONE, "--no-verify")
    world.configure(script=script, pattern=r"^\+4178[0-9]{7}$")
    t = world.login(user.name, [user.password, "123456"])
    assert t["result"] == "PAM_AUTH_ERR"
    assert ("error", SEND_FAILED) in prompts(t)
    text = "\n".join(twofa_lines_about(syslog, user.name))
    assert "reason=delivery-failed" in text and "destination_pattern" in text, text


# ==============================================================================================
# 4. Expired codes (the state file's expiry moved into the past: no waiting)


def send_fallback_code(world, smtp, user, expect_mails: int = 1) -> tuple[dict, str]:
    """A TOTP user asks for an email code (empty answer) and leaves without typing it."""
    t = world.login(user.name, [user.password, ""])
    assert t["result"] != "PAM_SUCCESS"
    mails = smtp.wait_for_messages(expect_mails)
    assert len(mails) == expect_mails
    return t, mail_code(mails[-1])


def test_emailed_code_typed_at_the_next_login_works_and_never_shows_in_logs(world, smtp, make_user, syslog):
    world.configure(smtp=smtp)
    user = make_user()
    address = f"{user.name}@example.com"
    world.enroll_totp_with_email(user, address)
    first, code = send_fallback_code(world, smtp, user)
    assert prompts(first) == [
        ("echo_off", PASSWORD_PROMPT),
        ("echo_off", FALLBACK_PROMPT),
        ("info", f"A code was sent to {masked(address)}. It is valid for 5 minutes."),
        ("echo_off", CODE_PROMPT),
    ], prompts(first)
    second = world.login(user.name, [user.password, code])
    assert second["result"] == "PAM_SUCCESS", prompts(second)
    assert prompts(second) == [("echo_off", PASSWORD_PROMPT), ("echo_off", FALLBACK_PROMPT)]
    assert len(smtp.messages()) == 1, "typing the pending code sent another one"
    decided = twofa_lines_about(syslog, user.name, expect=2)
    lines = syslog.settle()
    assert "outcome=success" in decided[-1] and "factor=email" in decided[-1], decided
    shown = [m["text"] for t in (first, second) for m in t["messages"]]
    for text in lines + shown:
        assert code not in text, f"the code shows in {text!r}"
        assert smtp.password not in text
    # ... nor does it work a second time.
    third = world.login(user.name, [user.password, code])
    assert third["result"] == "PAM_AUTH_ERR"


def test_expired_emailed_code_is_refused(world, smtp, make_user, syslog):
    world.configure(smtp=smtp, ttl=30)
    user = make_user()
    world.enroll_totp_with_email(user, f"{user.name}@example.com")
    first, code = send_fallback_code(world, smtp, user)
    assert ("info", f"A code was sent to {masked(user.name + '@example.com')}. "
            "It is valid for 1 minute.") in prompts(first), prompts(first)
    state = world.state_file(user.name)
    before = os.stat(state)
    text = state.read_text()
    expires = int(re.search(r"^challenge_expires = (\d+)$", text, re.M).group(1))
    assert 25 <= expires - time.time() <= 31, "code_ttl_seconds = 30 not applied"
    with open(state, "r+") as f:  # in place: owner and mode kept
        f.write(text.replace(f"challenge_expires = {expires}", f"challenge_expires = {int(time.time()) - 1}"))
        f.truncate()
    after = os.stat(state)
    assert (after.st_uid, after.st_mode) == (before.st_uid, before.st_mode)
    syslog.clear()
    t = world.login(user.name, [user.password, code])
    assert t["result"] == "PAM_AUTH_ERR"
    line = deciding_line(twofa_lines_about(syslog, user.name))
    assert reason_of(line) == "expired-code", line
    assert len(smtp.messages()) == 1


# ==============================================================================================
# 5. A delivery that hangs


def test_hanging_delivery_is_killed_and_the_login_refused_within_seconds(world, make_user, syslog):
    marker = outbox(world)
    script = install_script(world, f"sleep 30\necho late > {marker}\n")
    world.configure(script=script, timeout=2, recovery_codes=0)
    user = make_user()
    world.twofa.cli("enroll", user.name, "--method", "script", "--script-to", PHONE, "--no-verify")
    started = time.monotonic()
    t = world.login(user.name, [user.password, "123456"])
    elapsed = time.monotonic() - started
    assert t["result"] == "PAM_AUTH_ERR"
    assert prompts(t) == [("echo_off", PASSWORD_PROMPT), ("error", SEND_FAILED)]
    assert 1.8 <= elapsed <= 4.5, f"the login took {elapsed:.1f} s with timeout_seconds = 2"
    line = deciding_line(twofa_lines_about(syslog, user.name))
    assert reason_of(line) == "delivery-failed", line
    assert "did not finish within 2 s; killed" in line, line
    # Nothing of the script survives: no process of the delivery user, no late write.
    deadline = time.monotonic() + 2
    while live_pids_of(world.dlv.uid) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = live_pids_of(world.dlv.uid)
    assert not left, "still running: " + "; ".join(
        Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace") for p in left)
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, timeout=10).stdout
    assert script.name not in ps
    assert not marker.exists()


# ==============================================================================================
# 6. The send limit


def test_third_login_within_the_window_is_told_too_many_codes_were_sent(world, smtp, make_user, syslog):
    world.configure(smtp=smtp, max_sends=2, recovery_codes=0)
    user = make_user()
    world.enroll_email(user, f"{user.name}@example.com")
    for n in (1, 2):
        t = world.login(user.name, [user.password])
        assert any(text.startswith("A code was sent to ") for text in texts(t, "info")), prompts(t)
        assert len(smtp.messages()) == n
    syslog.clear()
    t = world.login(user.name, [user.password, "123456"])
    assert t["result"] == "PAM_AUTH_ERR"
    assert prompts(t)[0] == ("echo_off", PASSWORD_PROMPT)
    errors = texts(t, "error")
    assert len(errors) == 1 and errors[0].startswith(TOO_MANY), prompts(t)
    line = deciding_line(twofa_lines_about(syslog, user.name))
    assert reason_of(line) == "send-limited", line
    time.sleep(0.3)
    assert len(smtp.messages()) == 2


def test_send_limit_is_logged_as_send_limited_for_a_user_with_recovery_codes(world, smtp, make_user, syslog):
    world.configure(smtp=smtp, max_sends=1)
    user = make_user()
    world.enroll_email(user, f"{user.name}@example.com")
    world.login(user.name, [user.password])
    assert len(smtp.messages()) == 1
    syslog.clear()
    t = world.login(user.name, [user.password, "123456"])
    assert t["result"] == "PAM_AUTH_ERR"
    assert any(e.startswith(TOO_MANY) for e in texts(t, "error")), prompts(t)
    assert len(smtp.messages()) == 1
    line = deciding_line(twofa_lines_about(syslog, user.name))
    assert reason_of(line) == "send-limited", line


def test_ten_parallel_logins_send_no_more_codes_than_the_limit(world, smtp, make_user):
    world.configure(smtp=smtp, max_sends=3, recovery_codes=0)
    user = make_user()
    world.enroll_email(user, f"{user.name}@example.com")
    world.login(user.name, ["x" + user.password, "1"])  # creates the service; sends nothing
    assert smtp.messages() == []
    start_at = time.time_ns() + 1_500_000_000
    procs = []
    try:
        for _ in range(10):
            p = subprocess.Popen(
                [str(DRIVER), "--service", world.service, "--user", user.name, "--confdir",
                 world.confdir, "--start-at", str(start_at)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            procs.append(p)
            p.stdin.write(json.dumps([user.password]))
            p.stdin.close()
            p.stdin = None
        assert time.time_ns() < start_at, "the drivers were not all started before the release"
        reports = []
        for p in procs:
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
            reports.append(json.loads(out)["tries"][0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
    sent = [r for r in reports if any(t.startswith("A code was sent") for t in texts(r, "info"))]
    limited = [r for r in reports if any(t.startswith(TOO_MANY) for t in texts(r, "error"))]
    assert (len(sent), len(limited)) == (3, 7), [prompts(r) for r in reports]
    time.sleep(0.5)
    mails = smtp.messages()
    assert len(mails) == 3, f"{len(mails)} mails sent with max_sends = 3"
    assert len({mail_code(m) for m in mails}) == 3


# ==============================================================================================
# 7. Nothing is sent before the password is verified


def test_wrong_password_sends_no_mail_and_runs_no_script(world, smtp, make_user):
    script, out = recording_script(world)
    world.configure(smtp=smtp, script=script)
    mailer, texter = make_user(), make_user()
    world.enroll_email(mailer, f"{mailer.name}@example.com")
    world.twofa.cli("enroll", texter.name, "--method", "script", "--script-to", PHONE, "--no-verify")
    for user in (mailer, texter):
        t = world.login(user.name, ["not-" + user.password, "123456"])
        assert t["result"] == "PAM_AUTH_ERR"
        assert prompts(t) == [("echo_off", PASSWORD_PROMPT), ("echo_off", CODE_PROMPT)]
    time.sleep(0.3)
    assert smtp.messages() == [], "a mail was sent before the password was verified"
    assert sent_lines(out) == [], "the script ran before the password was verified"
    # The right password does send (so the above could have failed).
    t = world.login(mailer.name, [mailer.password])
    assert len(smtp.messages()) == 1


def test_one_field_ftp_login_never_sends_a_code(world, smtp, make_user):
    world.configure(smtp=smtp)
    mailer, app_user = make_user(), make_user()
    world.enroll_email(mailer, f"{mailer.name}@example.com")
    secret = world.enroll_totp_with_email(app_user, f"{app_user.name}@example.com")
    for user, field_text in ((mailer, mailer.password + "123456"), (mailer, mailer.password),
                             (app_user, app_user.password), (app_user, app_user.password + "000000")):
        t = world.ftp_login(user.name, field_text)
        assert t["result"] == "PAM_AUTH_ERR", (user.name, prompts(t))
        assert [s for s, _ in prompts(t)] == ["echo_off"], prompts(t)
    ok = world.ftp_login(app_user.name, app_user.password + world.twofa.code(secret))
    assert ok["result"] == "PAM_SUCCESS"
    time.sleep(0.3)
    assert smtp.messages() == [], "a one-field login sent a code"


# ==============================================================================================
# 8. The CLI


def test_test_delivery_sends_a_mail_and_reports_a_relay_that_is_down(world, smtp, make_user):
    world.configure(smtp=smtp)
    user = make_user()
    address = f"{user.name}@example.com"
    world.enroll_email(user, address)
    ok = world.twofa.cli("test-delivery", user.name, check=False)
    assert ok.returncode == 0, ok
    [mail] = smtp.wait_for_messages(1)
    assert mail.rcpt_tos == [address]
    assert re.fullmatch(r"\d{6}", mail_code(mail))
    assert f"sent a test code to {masked(address)}" in ok.stdout, ok.stdout
    assert mail_code(mail) not in ok.stdout + ok.stderr
    # Nothing listens on this port: the relay is down.
    with socket_closed_port() as dead:
        world.configure(smtp=smtp, smtp_port=dead)
        down = world.twofa.cli("test-delivery", user.name, check=False)
    assert down.returncode == 1, down
    assert f"not sent to {masked(address)}" in down.stderr, down.stderr
    assert "Connection refused" in down.stderr, down.stderr
    assert smtp.password not in down.stdout + down.stderr
    assert len(smtp.messages()) == 1


class socket_closed_port:
    """A 127.0.0.1 port nobody listens on (bound without listen() for the block's duration, so
    no other process takes it meanwhile)."""

    def __enter__(self) -> int:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc) -> None:
        self.sock.close()


def enroll_interactively(world, user, address: str, type_code: Callable[[str], str]):
    child = pexpect.spawn(str(ENROLL), ["--config", str(world.twofa.config), "enroll", user.name,
                                        "--method", "email", "--email", address],
                          encoding="utf-8", timeout=20)
    try:
        child.expect(r"A code was sent to " + re.escape(masked(address)))
        child.expect(re.escape(CODE_PROMPT))
        child.sendline(type_code(address))
        if child.isalive():
            child.expect(pexpect.EOF)
        transcript = child.before
    finally:
        child.close(force=True)
    return child.exitstatus, transcript


def test_email_enrollment_asks_for_the_mailed_code_before_saving(world, smtp, make_user):
    world.configure(smtp=smtp)
    user = make_user()
    address = f"{user.name}@example.com"
    status, transcript = enroll_interactively(
        world, user, address, lambda _a: mail_code(smtp.wait_for_messages(1)[0]))
    assert status == 0, transcript
    assert "Enrolled" in transcript
    assert (world.twofa.storage / "users" / f"{user.name}.toml").exists()
    assert re.search(r"^sent codes:\s+email to " + re.escape(address) + "$",
                     world.twofa.cli("status", user.name).stdout, re.M)
    assert len(smtp.messages()) == 1


def test_email_enrollment_with_a_wrong_code_saves_nothing(world, smtp, make_user):
    world.configure(smtp=smtp)
    user = make_user()
    address = f"{user.name}@example.com"

    def wrong(_a: str) -> str:
        code = mail_code(smtp.wait_for_messages(1)[0])
        return f"{(int(code) + 1) % 10**6:06d}"
    child = pexpect.spawn(str(ENROLL), ["--config", str(world.twofa.config), "enroll", user.name,
                                        "--method", "email", "--email", address],
                          encoding="utf-8", timeout=20)
    try:
        child.expect(re.escape(CODE_PROMPT))
        for _ in range(3):  # on a terminal the CLI allows three tries
            child.sendline(wrong(address))
            i = child.expect([re.escape(CODE_PROMPT), pexpect.EOF])
            if i == 1:
                break
        else:
            child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 1
    assert not (world.twofa.storage / "users" / f"{user.name}.toml").exists()


# ==============================================================================================
# 9. What reaches syslog when a send fails


def test_relay_refusing_the_login_is_logged_with_the_delivery_programs_reason(world, smtp, make_user, syslog):
    wrong_password = "wrong-" + secrets.token_hex(6)
    world.configure(smtp=smtp, smtp_password=wrong_password, recovery_codes=0)
    user = make_user()
    world.enroll_email(user, f"{user.name}@example.com")
    t = world.login(user.name, [user.password, "123456"])
    assert t["result"] == "PAM_AUTH_ERR"
    assert prompts(t) == [("echo_off", PASSWORD_PROMPT), ("error", SEND_FAILED)]
    assert smtp.messages() == [] and smtp.failed_logins() >= 1
    lines = syslog.settle()
    line = deciding_line(twofa_lines_about(syslog, user.name))
    assert reason_of(line) == "delivery-failed", line
    assert "twofa-deliver:" in line, f"the delivery program's reason is not in {line!r}"
    assert "refused AUTH" in line.split("twofa-deliver:", 1)[1], line
    for text in lines:
        assert wrong_password not in text and smtp.password not in text
