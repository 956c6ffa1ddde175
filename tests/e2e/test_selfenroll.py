"""Self-enrollment (policy unenrolled = "enroll"): after the password, an unenrolled user is
shown a QR code, the key and the recovery codes in the login conversation, types one code from
the app, and is logged in; the module writes the enrollment.

Through a private OpenSSH 9.2 server (keyboard-interactive, paramiko as the client, which sees
each prompt's full text) with conf/pam.d/sshd's auth lines, through real sudo (which always
calls PAM with PAM_SILENT) on a pty, and through the libpam driver (PAM_SILENT, the one-field
stack). Codes come from oathtool.

What sshd does with the module's messages (observed, OpenSSH 9.2p1): PAM_TEXT_INFO before a
prompt is prepended to that prompt's text; messages at the end of a successful authentication
are kept for the session and printed only when a login shell starts on a pty (`ssh host cmd`
never shows them); messages at the end of a failed one come back as the instruction of a last, prompt-less round.
"""

from __future__ import annotations

import os
import pwd
import re
import stat
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import paramiko
import pexpect
import pytest

from conftest import prompts
from daemons import (  # noqa: F401  (fixtures)
    CODE_PROMPT, PASSWORD_PROMPT, SSH_TIMEOUT, SUDO_PASSPROMPT_RE, SUDO_TIMEOUT, _as_user,
    ssh_connect, start_sshd, sudoers, twofa_sudo,
)
from test_pam_module import CODE, PASSWORD, stack

ENROLL_INTRO = "Two-factor authentication is required for {user}. Scan this QR code with an authenticator app:"
KEY_RE = re.compile(r"or enter this key: ([A-Z2-7]+)")
RECOVERY_LINE_RE = re.compile(r"(?m)^\s*([0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4})\s*$")
QR_BLOCKS = set("█▀▄")
NOT_RIGHT = "That code is not right; nothing was saved."


@pytest.fixture
def enroll_sshd(twofa, start_sshd):
    """A private sshd with conf/pam.d/sshd's auth lines under a self-enrollment policy."""
    twofa.write_config(unenrolled="enroll")
    return start_sshd(twofa.auth_lines("sshd"))


@dataclass
class Conversation:
    rounds: list = field(default_factory=list)   # (instruction, [prompt texts]) per INFO_REQUEST
    authenticated: bool = False
    key: Optional[str] = None                      # the key shown in the conversation, if any
    answered_code: Optional[str] = None
    shell_output: str = ""                         # what a login shell on a pty printed first

    @property
    def prompt_texts(self) -> list[str]:
        return [p for _, ps in self.rounds for p in ps]

    @property
    def instructions(self) -> list[str]:
        return [i for i, _ in self.rounds if i]


def ssh_enroll_login(server, user, password: str, code_for: Callable[[Optional[str]], str],
                     shell: bool = True) -> Conversation:
    """keyboard-interactive as `user`: the password at "Password: ", and at the prompt ending
    in "Verification code: " the reply of code_for(key shown in that prompt, or None). If
    authenticated and `shell`, starts a login shell on a pty and collects what it printed
    before the shell prompt (where sshd shows the module's last messages)."""
    conv = Conversation()
    t = ssh_connect(server.port)
    try:
        def handler(title, instructions, prompt_list):
            conv.rounds.append(("\n".join(x for x in (title, instructions) if x), [p for p, _ in prompt_list]))
            replies = []
            for text, _echo in prompt_list:
                if text == PASSWORD_PROMPT:
                    replies.append(password)
                elif text.endswith(CODE_PROMPT):
                    m = KEY_RE.search(text)
                    conv.key = m.group(1) if m else conv.key
                    conv.answered_code = code_for(m.group(1) if m else None)
                    replies.append(conv.answered_code)
                else:
                    replies.append("")
            return replies

        try:
            t.auth_interactive(user.name, handler)
        except paramiko.AuthenticationException:
            pass
        conv.authenticated = t.is_authenticated()
        if conv.authenticated and shell:
            chan = t.open_session(timeout=SSH_TIMEOUT)
            chan.get_pty(term="dumb", width=200)
            chan.invoke_shell()
            chan.settimeout(1)
            buf = b""
            deadline = time.monotonic() + SSH_TIMEOUT
            while time.monotonic() < deadline and not re.search(rb"\$ ", buf):
                try:
                    data = chan.recv(65536)
                except OSError:  # socket.timeout
                    continue
                if not data:
                    break
                buf += data
            conv.shell_output = buf.decode(errors="replace").replace("\r\n", "\n")
            chan.close()
    finally:
        t.close()
    return conv


def enrollment_path(twofa, user):
    return twofa.storage / "users" / f"{user.name}.toml"


def wrong_for(twofa, key: Optional[str]) -> str:
    """A 6-digit code the shown key does not produce anywhere near now."""
    assert key, "no key was shown"
    near = {twofa.code(key, at=time.time() + k * 30) for k in range(-3, 4)}
    c = 123456
    while f"{c:06d}" in near:
        c += 1
    return f"{c:06d}"


# ----------------------------------------------------------------------------------------------
# sshd


def test_ssh_user_without_enrollment_scans_the_qr_code_confirms_a_code_and_is_logged_in(
        twofa, make_user, enroll_sshd):
    user = make_user()
    # No login shell: an `ssh host command` user must see the recovery codes too, so they come
    # with the QR code, before the confirmation (sshd shows later messages only to a shell).
    conv = ssh_enroll_login(enroll_sshd, user, user.password, lambda key: twofa.code(key), shell=False)
    assert conv.prompt_texts[0] == PASSWORD_PROMPT
    offer = conv.prompt_texts[1]
    assert offer.startswith(ENROLL_INTRO.format(user=user.name)), offer[:300]
    assert QR_BLOCKS & set(offer), "no QR code in the conversation"
    assert conv.key and len(conv.key) >= 32, "no key (>= 160 bits) to type into an app"
    assert offer.endswith("\n" + CODE_PROMPT)
    assert conv.authenticated, (conv.rounds, enroll_sshd.log()[-3000:])
    assert "these recovery codes each work once" in offer, offer
    shown = RECOVERY_LINE_RE.findall(offer)
    assert len(shown) == 10, offer

    path = enrollment_path(twofa, user)
    st = os.stat(path)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o600)
    assert conv.key in path.read_text(), "the enrollment holds another secret than the one shown"

    # The next login asks for a code as usual; the confirmation code is spent.
    replay = ssh_enroll_login(enroll_sshd, user, user.password, lambda key: conv.answered_code, shell=False)
    assert replay.prompt_texts == [PASSWORD_PROMPT, CODE_PROMPT], "enrollment was offered again"
    assert not replay.authenticated, "the confirmation code was accepted a second time"
    nxt = ssh_enroll_login(enroll_sshd, user, user.password,
                           lambda key: twofa.code(conv.key, at=time.time() + 30), shell=False)
    assert nxt.prompt_texts == [PASSWORD_PROMPT, CODE_PROMPT]
    assert nxt.authenticated

    # A recovery code shown at enrollment works (once) at the code prompt.
    sudo = stack(twofa, "sudo")
    assert sudo.login(user.name, [user.password, shown[0]])["result"] == "PAM_SUCCESS"
    assert sudo.login(user.name, [user.password, shown[0]])["result"] == "PAM_AUTH_ERR"


def test_ssh_wrong_confirmation_code_is_refused_and_nothing_is_saved(twofa, make_user, enroll_sshd):
    user = make_user()
    conv = ssh_enroll_login(enroll_sshd, user, user.password, lambda key: wrong_for(twofa, key))
    assert conv.prompt_texts[1].startswith(ENROLL_INTRO.format(user=user.name))
    assert not conv.authenticated
    assert any(NOT_RIGHT in i for i in conv.instructions), conv.rounds
    assert not enrollment_path(twofa, user).exists(), "an unconfirmed enrollment was written"

    # The next login offers enrollment again, with a new key.
    again = ssh_enroll_login(enroll_sshd, user, user.password, lambda key: wrong_for(twofa, key))
    assert len(again.prompt_texts) == 2
    assert again.prompt_texts[1].startswith(ENROLL_INTRO.format(user=user.name))
    assert again.key and again.key != conv.key
    assert not enrollment_path(twofa, user).exists()


def test_ssh_wrong_password_gets_no_enrollment_offer(twofa, make_user, enroll_sshd):
    user = make_user()
    conv = ssh_enroll_login(enroll_sshd, user, "not-" + user.password, lambda key: "123456")
    assert conv.prompt_texts == [PASSWORD_PROMPT, CODE_PROMPT], "a QR code was shown before the password was right"
    assert conv.key is None
    assert not conv.authenticated
    assert not enrollment_path(twofa, user).exists()


# ----------------------------------------------------------------------------------------------
# the driver


def test_qr_code_is_shown_even_to_a_silent_login(twofa, make_user, driver):
    twofa.write_config(unenrolled="enroll")
    user = make_user()
    st = stack(twofa, "sudo")
    first = st.login(user.name, [user.password, "000000"], silent=True)
    msgs = prompts(first)
    assert msgs[0] == PASSWORD and msgs[1][0] == "info", msgs
    assert msgs[1][1].startswith(ENROLL_INTRO.format(user=user.name))
    assert QR_BLOCKS & set(msgs[1][1])
    assert KEY_RE.search(msgs[1][1])
    assert msgs[2] == CODE
    assert first["result"] == "PAM_AUTH_ERR"
    # Each offer is a new secret: a code of the key shown before enrolls nobody.
    old_key = KEY_RE.search(msgs[1][1]).group(1)
    stale = st.login(user.name, [user.password, twofa.code(old_key)], silent=True)
    assert stale["result"] == "PAM_AUTH_ERR", "a code of an earlier offer's key enrolled the user"
    assert KEY_RE.search(prompts(stale)[1][1]).group(1) != old_key
    assert not enrollment_path(twofa, user).exists()


def test_sudo_user_enrolls_at_the_sudo_prompt_and_sees_the_recovery_codes(twofa, make_user, twofa_sudo):
    """sudo calls PAM with PAM_SILENT: the QR code, the key and the recovery codes must be shown
    all the same (the codes are shown only once), before the confirmation code."""
    twofa.write_config(unenrolled="enroll")
    user = make_user()
    twofa_sudo(user.name)
    pw = pwd.getpwnam(user.name)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": pw.pw_dir, "USER": user.name,
           "LOGNAME": user.name, "LANG": "C.UTF-8", "TERM": "dumb"}
    child = pexpect.spawn("/usr/bin/sudo", ["-k", "--", "id", "-un"], env=env, cwd="/",
                          preexec_fn=_as_user(pw), encoding="utf-8", codec_errors="replace",
                          timeout=SUDO_TIMEOUT, echo=False, dimensions=(80, 200))
    try:
        child.expect(SUDO_PASSPROMPT_RE)
        child.sendline(user.password)
        child.expect(re.escape(CODE_PROMPT))
        offer = child.before
        m = KEY_RE.search(offer)
        assert m, f"no key shown before the code prompt:\n{offer}"
        child.sendline(twofa.code(m.group(1)))
        rest = child.read()
    finally:
        child.close(force=True)
    assert ENROLL_INTRO.format(user=user.name) in offer
    assert QR_BLOCKS & set(offer), "no QR code shown by sudo"
    assert "these recovery codes each work once" in offer, offer
    assert len(RECOVERY_LINE_RE.findall(offer.replace("\r\n", "\n"))) == 10, offer
    assert rest.strip().splitlines()[-1].strip() == "root", rest
    assert child.exitstatus == 0
    assert enrollment_path(twofa, user).exists()


def test_one_field_login_cannot_self_enroll(twofa, make_user):
    twofa.write_config(unenrolled="enroll")
    user = make_user()
    ftp = stack(twofa, "vsftpd")
    result = ftp.login(user.name, [user.password + "123456"])
    assert result["result"] != "PAM_SUCCESS", "a one-field login without an enrollment got in"
    assert not any("Scan this QR code" in text for _, text in prompts(result))
    assert not enrollment_path(twofa, user).exists()
