"""Real daemons for the end-to-end tests: a private OpenSSH server and sudo.

Everything listens on 127.0.0.1 only, is started and stopped by the test (fixture teardown, also
on failure) and is bounded by timeouts.

sshd
    OpenSSH 9.2 has no option for its PAM service name: it uses the basename of argv[0]. Each
    server is started through a symlink ``twofa-e2e-sshd-<random>`` -> /usr/sbin/sshd in a private
    temp dir, and this module writes ``/etc/pam.d/<that name>`` (removed at teardown). Its
    sshd_config ``Include``s the shipped drop-in conf/sshd_config.d/twofa.conf first (as Debian's
    /etc/ssh/sshd_config does with sshd_config.d/*.conf) and then repeats the settings of
    Debian's stock sshd_config, so a test sees exactly what a Debian host with the drop-in sees.

sudo
    A sudoers drop-in ``/etc/sudoers.d/twofa-e2e-*`` (checked with ``visudo -cf`` first, mode 0440)
    points the user at a private PAM service with ``pam_service=``. sudo runs as the user on a
    real pty (pexpect), and the prompts are answered from a script.

Observed (OpenSSH 9.2p1 Debian, sudo 1.9.13p3):
- sshd sends one keyboard-interactive INFO_REQUEST per PAM prompt, with empty name and
  instruction, then one with no prompts on success; PAM_TEXT_INFO/ERROR_MSG text is not put in
  the instruction field but prepended to the next prompt ("msg\nPassword: ").
- For a name with no account sshd logs "Invalid user" but runs the same PAM conversation under
  that name: the client sees the same prompts and echo flags, then "Authentication failed".
- The real ssh client shows the prompts as "(USER@HOST) Password: ".
- sudo shows its own "[sudo] password for USER: " in place of PAM's "Password: ", other prompts
  verbatim, "Sorry, try again." after a refused try, and calls pam_authenticate with
  PAM_SILENT (a pam_echo.so message is not shown).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

import paramiko
import pexpect
import pytest

REPO = Path(__file__).resolve().parents[2]
SSHD_BIN = Path("/usr/sbin/sshd")
SSHD_DROPIN = REPO / "conf" / "sshd_config.d" / "twofa.conf"
PAM_DIR = Path("/etc/pam.d")
SUDOERS_DIR = Path("/etc/sudoers.d")

# What every test service gets after the auth lines under test (the contract's recipe).
STACK_TAIL = "account  required  pam_unix.so\nsession  required  pam_permit.so\n"

# Debian 12's stock /etc/ssh/sshd_config, after its "Include /etc/ssh/sshd_config.d/*.conf".
DEBIAN_SSHD_DEFAULTS = """\
KbdInteractiveAuthentication no
UsePAM yes
X11Forwarding yes
PrintMotd no
AcceptEnv LANG LC_*
"""

CODE_PROMPT = "Verification code: "
PASSWORD_PROMPT = "Password: "

SSH_TIMEOUT = 20      # seconds, any single SSH exchange (auth includes PAM's ~2 s fail delay)
SUDO_TIMEOUT = 20     # seconds, any single wait for sudo output
START_TIMEOUT = 10    # seconds, for sshd to start listening


# --------------------------------------------------------------------------------------------
# small helpers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def private_dir(prefix: str) -> Path:
    """A fresh root-owned 0755 temp dir (sshd and the users must be able to traverse it)."""
    d = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(d, 0o755)
    return d


def stack(auth_lines: str) -> str:
    """A complete PAM service file: the auth lines under test plus the contract's tail."""
    return auth_lines.rstrip("\n") + "\n" + STACK_TAIL


def _descendants(pid: int) -> list[int]:
    """All live descendants of pid (read from /proc), children first."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _kill_pids(pids: Iterable[int], sig=signal.SIGKILL) -> None:
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, sig)


@contextlib.contextmanager
def installed_file(path: Path, text: str, mode: int = 0o644):
    """Install a root-owned file atomically (temp name with a dot, ignored by PAM and sudo) and
    remove it on exit, even on failure."""
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists; refusing to overwrite a file the test did not make")
    tmp = path.with_name("." + path.name + ".tmp")
    try:
        tmp.write_text(text)
        os.chown(tmp, 0, 0)
        os.chmod(tmp, mode)
        os.rename(tmp, path)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def wrong_code(twofa, secret: str) -> str:
    """A 6-digit code that is right for no step near now (so no window can accept it)."""
    now = int(time.time())
    near = {twofa.code(secret, at=now + k * 30) for k in range(-3, 4)}
    candidate = int(twofa.code(secret))
    while f"{candidate:06d}" in near:
        candidate = (candidate + 1) % 10**6
    return f"{candidate:06d}"


# --------------------------------------------------------------------------------------------
# sshd


class Sshd:
    """A private sshd on 127.0.0.1 whose PAM service is /etc/pam.d/<self.service>."""

    def __init__(self, auth_lines: str, extra_config: str = ""):
        self.auth_lines = auth_lines
        self.extra_config = extra_config
        self.dir = private_dir("twofa-e2e-sshd-")
        self.service = "twofa-e2e-sshd-" + secrets.token_hex(4)
        self.link = self.dir / self.service
        self.config = self.dir / "sshd_config"
        self.host_key = self.dir / "ssh_host_ed25519_key"
        self.log_path = self.dir / "sshd.log"
        self.port: Optional[int] = None
        self.proc: Optional[subprocess.Popen] = None
        self._stack = contextlib.ExitStack()

    # -- lifecycle

    def config_text(self) -> str:
        return (
            "# The shipped drop-in first, as Debian's sshd_config includes sshd_config.d first.\n"
            f"Include {SSHD_DROPIN}\n"
            "# This test server\n"
            "ListenAddress 127.0.0.1\n"
            f"Port {self.port}\n"
            "AddressFamily inet\n"
            f"HostKey {self.host_key}\n"
            f"PidFile {self.dir / 'sshd.pid'}\n"
            "AuthorizedKeysFile .ssh/authorized_keys\n"
            "StrictModes yes\n"
            "LogLevel DEBUG\n"
            "PermitRootLogin no\n"
            "UseDNS no\n"
            "LoginGraceTime 60\n"
            "MaxAuthTries 10\n"
            f"{self.extra_config}\n"
            "# Debian 12's stock sshd_config\n"
            f"{DEBIAN_SSHD_DEFAULTS}"
        )

    def start(self) -> "Sshd":
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        if not SSHD_DROPIN.is_file():
            raise FileNotFoundError(SSHD_DROPIN)
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privsep chroot; Debian's unit makes it
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "twofa-e2e-host", "-f", str(self.host_key)],
            check=True, timeout=20, stdout=subprocess.DEVNULL,
        )
        os.symlink(SSHD_BIN, self.link)
        self.port = free_port()
        self.config.write_text(self.config_text())
        self._stack.enter_context(installed_file(PAM_DIR / self.service, stack(self.auth_lines)))
        # Config test mode: a clear error instead of a daemon that dies at start.
        t = subprocess.run([str(self.link), "-t", "-f", str(self.config)],
                           capture_output=True, text=True, timeout=20)
        if t.returncode != 0:
            raise RuntimeError(f"sshd -t failed:\n{t.stdout}{t.stderr}\n{self.config_text()}")
        # sshd must be run by absolute path (it re-execs itself); argv[0] = the symlink.
        self.proc = subprocess.Popen(
            [str(self.link), "-D", "-E", str(self.log_path), "-f", str(self.config)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "sshd.stderr", "wb"),
        )
        deadline = time.monotonic() + START_TIMEOUT
        needle = f"Server listening on 127.0.0.1 port {self.port}"
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited with {self.proc.returncode}:\n{self.log()}")
            if needle in self.log():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"sshd did not listen within {START_TIMEOUT}s:\n{self.log()}")
            time.sleep(0.05)

    def stop(self) -> None:
        try:
            if self.proc is not None and self.proc.poll() is None:
                kids = _descendants(self.proc.pid)  # per-connection sshd processes, sessions
                _kill_pids(kids, signal.SIGTERM)    # first, so the listener can still reap them
                time.sleep(0.1 if kids else 0)
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=5)
                _kill_pids(kids + _descendants(self.proc.pid))
        finally:
            self._stack.close()  # removes /etc/pam.d/<service>
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- inspection

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def effective_config(self, user: str = "nobody") -> dict[str, str]:
        """`sshd -T` for a connection from 127.0.0.1 as `user`: lower-case keyword -> value."""
        out = subprocess.run(
            [str(self.link), "-T", "-f", str(self.config), "-C", f"user={user},host=localhost,addr=127.0.0.1"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout
        conf: dict[str, str] = {}
        for line in out.splitlines():
            key, _, value = line.partition(" ")
            conf.setdefault(key, value)
        return conf


@pytest.fixture
def start_sshd():
    """Factory: start_sshd(auth_lines, extra_config="") -> a started Sshd; all stopped at teardown."""
    servers: list[Sshd] = []

    def start(auth_lines: str, extra_config: str = "") -> Sshd:
        server = Sshd(auth_lines, extra_config)
        servers.append(server)
        return server.start()

    yield start
    for server in reversed(servers):
        server.stop()


@pytest.fixture
def twofa_sshd(twofa, start_sshd):
    """A private sshd whose PAM auth lines are conf/pam.d/sshd's, with the test's twofa config."""
    return start_sshd(twofa.auth_lines("sshd"))


# -- users' keys


def _pw(user) -> pwd.struct_passwd:
    return pwd.getpwnam(user.name if hasattr(user, "name") else user)


def give_key(user, workdir: Path) -> Path:
    """An ed25519 key pair for `user`: the public half in ~user/.ssh/authorized_keys (owned by
    the user, 0700/0600, as StrictModes wants), the private half at workdir/<name>_ed25519
    (root's, for the client). Returns the private key path."""
    pw = _pw(user)
    key = Path(workdir) / f"{pw.pw_name}_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", pw.pw_name, "-f", str(key)],
                   check=True, timeout=20, stdout=subprocess.DEVNULL)
    ssh_dir = Path(pw.pw_dir) / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    auth = ssh_dir / "authorized_keys"
    auth.write_text(Path(str(key) + ".pub").read_text())
    for p, mode in ((ssh_dir, 0o700), (auth, 0o600)):
        os.chown(p, pw.pw_uid, pw.pw_gid)
        os.chmod(p, mode)
    return key


@pytest.fixture
def keydir():
    d = private_dir("twofa-e2e-keys-")
    os.chmod(d, 0o700)
    yield d
    shutil.rmtree(d, ignore_errors=True)


# -- the paramiko client


@dataclass
class Prompt:
    text: str
    echo: bool


@dataclass
class SshAttempt:
    """What an SSH client saw during one connection."""
    user: str
    publickey: Optional[str] = None            # None (not tried) | "success" | "partial" | "failed"
    publickey_next: Optional[list] = None       # methods the server allows after the key
    kbd_result: Optional[str] = None            # None (not tried) | "success" | "partial" | "failed" | "not-allowed"
    kbd_error: Optional[str] = None
    rounds: list = field(default_factory=list)  # (name, instructions, [Prompt]) per INFO_REQUEST
    authenticated: bool = False
    output: Optional[str] = None                # the command's stdout, if a session was opened
    exit_status: Optional[int] = None

    @property
    def prompts(self) -> list[Prompt]:
        return [p for _, _, ps in self.rounds for p in ps]

    @property
    def prompt_texts(self) -> list[str]:
        return [p.text for p in self.prompts]

    @property
    def messages(self) -> list[str]:
        """Non-empty name/instruction texts the server sent along with the prompts."""
        return [t for n, i, _ in self.rounds for t in (n, i) if t]


def ssh_connect(port: int) -> paramiko.Transport:
    sock = socket.create_connection(("127.0.0.1", port), timeout=SSH_TIMEOUT)
    t = paramiko.Transport(sock)
    t.banner_timeout = SSH_TIMEOUT
    t.auth_timeout = SSH_TIMEOUT
    t.handshake_timeout = SSH_TIMEOUT
    t.start_client(timeout=SSH_TIMEOUT)
    return t


def ssh_login(server: Sshd, user: str, *, answers: Optional[dict] = None, key: Optional[Path] = None,
              kbd: bool = True, command: Optional[str] = "id -un") -> SshAttempt:
    """One connection: optionally a public key, then (if kbd and not yet authenticated)
    keyboard-interactive answering each prompt from `answers` (prompt text -> reply; an
    unexpected prompt gets an empty reply and is recorded), then, if authenticated, `command`."""
    answers = dict(answers or {})
    att = SshAttempt(user=user)
    t = ssh_connect(server.port)
    try:
        if key is not None:
            pkey = paramiko.Ed25519Key.from_private_key_file(str(key))
            try:
                nxt = t.auth_publickey(user, pkey)
                att.publickey_next = list(nxt)
                att.publickey = "partial" if nxt else "success"
            except paramiko.AuthenticationException:
                att.publickey = "failed"
        if kbd and not t.is_authenticated():
            def handler(name, instructions, prompt_list):
                ps = [Prompt(p, bool(e)) for p, e in prompt_list]
                att.rounds.append((name, instructions, ps))
                return [answers.get(p.text, "") for p in ps]
            try:
                nxt = t.auth_interactive(user, handler)
                att.kbd_result = "partial" if nxt else "success"
            except paramiko.BadAuthenticationType as e:
                att.kbd_result, att.kbd_error = "not-allowed", str(e)
            except paramiko.AuthenticationException as e:
                att.kbd_result, att.kbd_error = "failed", str(e)
        att.authenticated = t.is_authenticated()
        if att.authenticated and command is not None:
            chan = t.open_session(timeout=SSH_TIMEOUT)
            chan.settimeout(SSH_TIMEOUT)
            chan.exec_command(command)
            att.output = chan.makefile("r").read().decode(errors="replace")
            att.exit_status = chan.recv_exit_status()
            chan.close()
    finally:
        t.close()
    return att


def ssh_password_method_offered(server: Sshd, user: str, password: str) -> list[str]:
    """Try the SSH "password" method (outside PAM's conversation). Returns the methods the
    server allows instead if it refuses the method, [] if it was accepted (a login!)."""
    t = ssh_connect(server.port)
    try:
        t.auth_password(user, password, fallback=False)
        return []
    except paramiko.BadAuthenticationType as e:
        return list(e.allowed_types)
    finally:
        t.close()


def ssh_client_args(server: Sshd, user: str, *, key: Optional[Path] = None) -> list[str]:
    """argv for the real OpenSSH client, isolated from root's ~/.ssh and any agent."""
    args = ["-F", "/dev/null", "-p", str(server.port),
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-o", "IdentityAgent=none", "-o", "IdentitiesOnly=yes",
            "-o", "NumberOfPasswordPrompts=1", "-o", "ConnectTimeout=10",
            "-o", "KbdInteractiveAuthentication=yes", "-o", "PasswordAuthentication=no"]
    if key is not None:
        args += ["-i", str(key), "-o", "PubkeyAuthentication=yes",
                 "-o", "PreferredAuthentications=publickey,keyboard-interactive"]
    else:
        args += ["-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=keyboard-interactive"]
    return args + ["-l", user, "127.0.0.1"]


# --------------------------------------------------------------------------------------------
# sudo


def sudoers_text(user: str, service: str) -> str:
    return (f"Defaults:{user} pam_service={service}, timestamp_timeout=0, !lecture\n"
            f"{user} ALL=(ALL) ALL\n")


@contextlib.contextmanager
def sudoers_dropin(user: str, service: str):
    """/etc/sudoers.d/twofa-e2e-... letting `user` run anything through PAM service `service`;
    checked with visudo -cf before it is installed; removed on exit."""
    name = user if user.startswith("twofa-e2e-") else "twofa-e2e-" + user
    assert "." not in name and not name.endswith("~"), name  # sudo would skip it
    text = sudoers_text(user, service)
    with tempfile.NamedTemporaryFile("w", prefix="twofa-e2e-sudoers-", dir="/tmp") as f:
        f.write(text)
        f.flush()
        check = subprocess.run(["visudo", "-cf", f.name], capture_output=True, text=True, timeout=20)
        if check.returncode != 0:
            raise RuntimeError(f"visudo -cf refused:\n{text}\n{check.stdout}{check.stderr}")
    with installed_file(SUDOERS_DIR / name, text, mode=0o440) as path:
        yield path


@pytest.fixture
def sudoers():
    """Factory: sudoers(user_name, service) installs a drop-in; all removed at teardown."""
    with contextlib.ExitStack() as es:
        yield lambda user, service: es.enter_context(sudoers_dropin(user, service))


@pytest.fixture
def twofa_sudo(twofa, sudoers):
    """Factory: twofa_sudo(user_name) -> service name; the user's sudo then goes through the auth
    lines of conf/pam.d/sudo with the test's twofa config."""
    def grant(user: str) -> str:
        service = twofa.pam_service(stack(twofa.auth_lines("sudo")))
        sudoers(user, service)
        return service
    return grant


SUDO_PASSPROMPT_RE = r"\[sudo\] password for [^\r\n:]+: "
_SUDO_EVENTS = [
    SUDO_PASSPROMPT_RE,             # 0: sudo's own prompt, replacing PAM's "Password: "
    re.escape(CODE_PROMPT),         # 1
    re.escape(PASSWORD_PROMPT),     # 2: PAM's prompt, should sudo ever show it verbatim
    r"Sorry, try again\.\r?\n",     # 3
    pexpect.EOF,                    # 4
]


@dataclass
class SudoRun:
    prompts: list           # the prompt texts, in order
    events: list            # prompts and "Sorry, try again." in order
    transcript: str
    exit_status: Optional[int]
    signal_status: Optional[int]
    output: str             # what came after the last prompt was answered

    @property
    def output_lines(self) -> list[str]:
        return [l.strip() for l in self.output.splitlines() if l.strip()]

    @property
    def tries_refused(self) -> int:
        return self.events.count("Sorry, try again.")


def _as_user(pw: pwd.struct_passwd) -> Callable[[], None]:
    def drop():
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
    return drop


def run_sudo(user, answers: Iterable[str], command: Iterable[str] = ("id", "-un"),
             timeout: float = SUDO_TIMEOUT) -> SudoRun:
    """Run `sudo -k -- command` as `user` on a pty, answering each prompt (sudo's password
    prompt, "Verification code: ", "Password: ") with the next of `answers`. When the answers
    run out and another prompt comes, sudo is interrupted (Ctrl-C). Bounded by `timeout` per wait."""
    pw = _pw(user)
    answers = list(answers)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": pw.pw_dir, "USER": pw.pw_name,
           "LOGNAME": pw.pw_name, "SHELL": pw.pw_shell, "LANG": "C", "LC_ALL": "C", "TERM": "dumb"}
    child = pexpect.spawn("/usr/bin/sudo", ["-k", "--", *command], env=env, cwd="/",
                          preexec_fn=_as_user(pw), encoding="utf-8", codec_errors="replace",
                          timeout=timeout, echo=False)
    transcript, prompts, events, output = [], [], [], ""
    try:
        while True:
            i = child.expect(_SUDO_EVENTS)
            transcript.append(child.before)
            if i == 4:
                output += child.before
                break
            transcript.append(child.after)
            if i == 3:
                events.append("Sorry, try again.")
                output = ""
                continue
            prompt = child.after
            prompts.append(prompt)
            events.append(prompt)
            output = ""
            if answers:
                child.sendline(answers.pop(0))
            else:
                events.append("^C")
                child.sendintr()
    except pexpect.TIMEOUT:
        raise AssertionError(f"sudo gave no known prompt within {timeout}s; transcript so far:\n"
                             f"{''.join(transcript)}{child.before!s}")
    finally:
        child.close(force=True)
    return SudoRun(prompts=prompts, events=events, transcript="".join(transcript),
                   exit_status=child.exitstatus, signal_status=child.signalstatus, output=output)
