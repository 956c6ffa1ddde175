"""Shared fixtures of twofa's end-to-end tests.

Run as root with Debian's interpreter: ``/usr/bin/python3 -m pytest tests/e2e``, after
``cargo build``. The binaries under test come from ``target/debug`` unless TWOFA_MODULE,
TWOFA_ENROLL or TWOFA_PAM_DRIVER name others.

Everything a test creates lives in a fresh ``/tmp/twofa-e2e-XXXXXX`` directory, in users named
``twofa-e2e-*`` and in files named ``twofa-e2e-*`` under /etc/pam.d; fixtures remove all of it
at teardown, whether the test passed or not. No existing system file is ever edited.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Optional

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULE = Path(os.environ.get("TWOFA_MODULE", REPO / "target" / "debug" / "libpam_twofa.so"))
ENROLL = Path(os.environ.get("TWOFA_ENROLL", REPO / "target" / "debug" / "twofa-enroll"))
DRIVER = Path(os.environ.get("TWOFA_PAM_DRIVER", REPO / "target" / "debug" / "twofa-pam-driver"))

#: Lines every test service gets after the ``auth`` lines taken from conf/pam.d.
ACCOUNT_SESSION = "account required pam_unix.so\nsession required pam_permit.so\n"

#: Bound on every child process a fixture runs.
TIMEOUT = 60


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("the end-to-end tests run as root (they create users and PAM services)")


def _require(path: Path, what: str) -> None:
    if not path.exists():
        pytest.fail(f"{what} not found at {path}: run `cargo build` first (or set the env override)")


# ----------------------------------------------------------------------------------------------
# Users


@dataclasses.dataclass
class User:
    name: str
    password: str
    home: Path
    uid: int


def _pids_of_uid(uid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status", encoding="utf-8", errors="replace") as f:
                for line in f:
                    if line.startswith("Uid:"):
                        if uid in {int(x) for x in line.split()[1:]}:
                            pids.append(int(entry))
                        break
        except OSError:
            continue
    return pids


def _kill_uid(uid: int, timeout: float = 5.0) -> None:
    """Kills, by pid, every process running as ``uid`` (a test user's: no one else's)."""
    deadline = time.monotonic() + timeout
    while True:
        pids = _pids_of_uid(uid)
        if not pids or time.monotonic() > deadline:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)


@pytest.fixture
def make_user() -> Iterable[Callable[..., User]]:
    """Factory: ``make_user(password=None) -> User``, a fresh ``twofa-e2e-*`` account with a
    home and a password (random when None); removed with its processes at teardown."""
    _require_root()
    created: list[User] = []

    def make(password: Optional[str] = None) -> User:
        name = "twofa-e2e-" + secrets.token_hex(5)
        if password is None:
            password = "pw-" + secrets.token_urlsafe(12)
        subprocess.run(
            ["useradd", "-m", "-s", "/bin/bash", name],
            check=True, capture_output=True, timeout=TIMEOUT,
        )
        entry = pwd.getpwnam(name)
        user = User(name=name, password=password, home=Path(entry.pw_dir), uid=entry.pw_uid)
        created.append(user)
        subprocess.run(
            ["chpasswd"], input=f"{name}:{password}\n", text=True,
            check=True, capture_output=True, timeout=TIMEOUT,
        )
        return user

    yield make

    for user in created:
        _kill_uid(user.uid)
        subprocess.run(
            ["userdel", "-r", "-f", user.name], capture_output=True, timeout=TIMEOUT,
        )


# ----------------------------------------------------------------------------------------------
# twofa's world: config, storage, CLI, codes, PAM services


def _module_args(args: dict) -> str:
    words = []
    for key, value in args.items():
        if value is True:
            words.append(key)
        elif value is False or value is None:
            continue
        else:
            words.append(f"{key}={value}")
    return " ".join(words)


class Twofa:
    """One test's twofa installation under a fresh /tmp/twofa-e2e-XXXXXX."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="twofa-e2e-", dir="/tmp"))
        os.chmod(self.root, 0o755)
        self.config = self.root / "twofa.toml"
        self.storage = self.root / "lib"
        self._pam_files: list[Path] = []

    # -- policy ---------------------------------------------------------------------------------

    def write_config(
        self,
        unenrolled: str = "deny",
        algorithm: str = "SHA1",
        digits: int = 6,
        period: int = 30,
        window: int = 1,
        issuer: str = "twofa",
        extra: str = "",
    ) -> Path:
        text = (
            "version = 1\n"
            "\n"
            "[totp]\n"
            f'issuer = "{issuer}"\n'
            f'algorithm = "{algorithm}"\n'
            f"digits = {digits}\n"
            f"period = {period}\n"
            f"window = {window}\n"
            "\n"
            "[policy]\n"
            f'unenrolled = "{unenrolled}"\n'
            "\n"
            "[storage]\n"
            f'dir = "{self.storage}"\n'
        )
        if extra:
            text += "\n" + extra.rstrip("\n") + "\n"
        return self.write_config_text(text)

    def write_config_text(self, text: str) -> Path:
        tmp = self.config.with_suffix(".tmp")
        tmp.write_text(text)
        os.chown(tmp, 0, 0)
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.config)
        return self.config

    # -- CLI ------------------------------------------------------------------------------------

    def cli(self, *args: str, input: Optional[str] = None, check: bool = True) -> subprocess.CompletedProcess:
        _require(ENROLL, "twofa-enroll")
        argv = [str(ENROLL), "--config", str(self.config), *map(str, args)]
        proc = subprocess.run(
            argv, input=input if input is not None else "", text=True,
            capture_output=True, timeout=TIMEOUT,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {proc.returncode}\n"
                f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
            )
        return proc

    def enroll(
        self,
        user_name: str,
        secret: Optional[str] = None,
        algorithm: Optional[str] = None,
        digits: Optional[int] = None,
        period: Optional[int] = None,
        force: bool = False,
    ) -> str:
        """Enrolls ``user_name`` with ``secret`` (a fresh random 160-bit base32 one when None)
        through ``twofa-enroll enroll USER --secret-file - --no-verify``; returns the secret."""
        if secret is None:
            secret = base64.b32encode(os.urandom(20)).decode("ascii")
        args = ["enroll", user_name, "--secret-file", "-", "--no-verify"]
        if algorithm is not None:
            args += ["--algorithm", algorithm]
        if digits is not None:
            args += ["--digits", str(digits)]
        if period is not None:
            args += ["--period", str(period)]
        if force:
            args.append("--force")
        proc = self.cli(*args, input=secret + "\n", check=False)
        assert proc.returncode == 0, (
            f"enrolling {user_name} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
        return secret

    @staticmethod
    def code(
        secret: str,
        algorithm: str = "SHA1",
        digits: int = 6,
        period: int = 30,
        at=None,
    ) -> str:
        """The TOTP code from oathtool; ``at`` is a Unix time (int/float) or an oathtool -N
        string, default now."""
        argv = ["oathtool", f"--totp={algorithm.lower()}", "-d", str(digits), "-s", f"{period}s", "-b"]
        if at is not None:
            argv += ["-N", f"@{int(at)}" if isinstance(at, (int, float)) else str(at)]
        argv.append(secret)
        proc = subprocess.run(argv, text=True, capture_output=True, timeout=TIMEOUT, check=True)
        code = proc.stdout.strip()
        assert re.fullmatch(r"\d{%d}" % digits, code), proc.stdout
        return code

    # -- PAM services ---------------------------------------------------------------------------

    def auth_lines(self, conf_name: str, **module_args) -> str:
        """The ``auth`` lines of REPO/conf/pam.d/<conf_name>, with ``pam_twofa.so`` replaced by
        ``<MODULE> config=<config>`` (``config=`` can be overridden; other keyword arguments are
        added as module arguments: True -> bare word, None/False -> left out, else key=value)."""
        args = {"config": self.config}
        args.update(module_args)
        replacement = f"{MODULE} {_module_args(args)}".rstrip()
        out = []
        for raw in (REPO / "conf" / "pam.d" / conf_name).read_text().splitlines():
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            fields = line.split()
            if fields[0] != "auth":
                continue
            line = re.sub(r"(?<=\s)pam_twofa\.so(?=\s|$)", replacement, line)
            out.append(line)
        assert out, f"no auth lines in conf/pam.d/{conf_name}"
        return "\n".join(out) + "\n"

    def service_text(self, conf_name: str, **module_args) -> str:
        """``auth_lines(...)`` plus ``account required pam_unix.so`` and
        ``session required pam_permit.so``: a complete test service."""
        return self.auth_lines(conf_name, **module_args) + ACCOUNT_SESSION

    def pam_service(self, stack_text: str) -> str:
        """Writes /etc/pam.d/twofa-e2e-<random> (removed at teardown); returns its name."""
        name = "twofa-e2e-" + secrets.token_hex(5)
        path = Path("/etc/pam.d") / name
        self._pam_files.append(path)
        path.write_text(stack_text)
        os.chmod(path, 0o644)
        return name

    def pam_confdir(self, name: str, stack_text: str) -> str:
        """Writes service ``name`` into a private PAM config dir under root (for the driver's
        --confdir); returns the dir."""
        confdir = self.root / "pam.d"
        if not confdir.exists():
            confdir.mkdir(mode=0o755)
            # libpam falls back to "other" (and logs its absence) like in /etc/pam.d.
            (confdir / "other").write_text(
                "".join(f"{t} required pam_deny.so\n" for t in ("auth", "account", "password", "session"))
            )
        path = confdir / name
        path.write_text(stack_text)
        os.chmod(path, 0o644)
        return str(confdir)

    # -- storage --------------------------------------------------------------------------------

    def storage_files(self) -> list[str]:
        """Every path below storage, relative, sorted (directories end with /)."""
        if not self.storage.exists():
            return []
        out = []
        for dirpath, dirnames, filenames in os.walk(self.storage):
            rel = os.path.relpath(dirpath, self.storage)
            for d in dirnames:
                out.append(os.path.normpath(os.path.join(rel, d)) + "/")
            for f in filenames:
                out.append(os.path.normpath(os.path.join(rel, f)))
        return sorted(out)

    def cleanup(self) -> None:
        for path in self._pam_files:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def twofa() -> Iterable[Twofa]:
    _require_root()
    env = Twofa()
    try:
        yield env
    finally:
        env.cleanup()


# ----------------------------------------------------------------------------------------------
# Syslog: a listener at /dev/log


class Syslog:
    PATH = "/dev/log"

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(self.PATH)
        os.chmod(self.PATH, 0o666)
        self._ino = os.lstat(self.PATH).st_ino
        self._sock.settimeout(0.1)
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="syslog-listener", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self._lines.append(data.decode("utf-8", "replace").rstrip("\n\0"))

    def lines(self) -> list[str]:
        with self._lock:
            return list(self._lines)

    def twofa_lines(self) -> list[str]:
        return [line for line in self.lines() if "pam_twofa(" in line]

    def wait_for(self, regex: str, timeout: float = 5) -> str:
        """The first line matching ``regex`` (re.search), waiting up to ``timeout`` seconds."""
        pattern = re.compile(regex)
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines():
                if pattern.search(line):
                    return line
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no syslog line matching {regex!r} within {timeout}s; got:\n"
                    + "\n".join(self.lines())
                )
            time.sleep(0.02)

    def settle(self, quiet: float = 0.2, timeout: float = 3) -> list[str]:
        """Waits until no new line arrived for ``quiet`` seconds; returns all lines."""
        deadline = time.monotonic() + timeout
        count = len(self.lines())
        last_change = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.02)
            now_count = len(self.lines())
            if now_count != count:
                count = now_count
                last_change = time.monotonic()
            elif time.monotonic() - last_change >= quiet:
                break
        return self.lines()

    def clear(self) -> None:
        with self._lock:
            self._lines.clear()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()
        try:
            if os.lstat(self.PATH).st_ino == self._ino:
                os.unlink(self.PATH)
        except FileNotFoundError:
            pass


@pytest.fixture
def syslog() -> Iterable[Syslog]:
    _require_root()
    if os.path.lexists(Syslog.PATH):
        mode = os.lstat(Syslog.PATH).st_mode
        kind = "socket" if stat.S_ISSOCK(mode) else "file"
        pytest.skip(
            f"{Syslog.PATH} already exists (a {kind} not made by this test, e.g. a syslog "
            "daemon's): the syslog tests need to bind their own listener there"
        )
    listener = Syslog()
    try:
        yield listener
    finally:
        listener.close()


# ----------------------------------------------------------------------------------------------
# The libpam driver


def run_driver_process(
    service: str,
    user: Optional[str],
    answers: list,
    confdir=None,
    *,
    rhost: Optional[str] = None,
    tty: Optional[str] = None,
    env=None,
    silent: bool = False,
    tries: int = 1,
    keep_going: bool = False,
    acct: bool = False,
    process_env: Optional[dict] = None,
    timeout: float = TIMEOUT,
) -> subprocess.CompletedProcess:
    """Runs tests/driver (twofa-pam-driver) and returns the finished process (stdout: JSON).

    ``env``: PAM environment (pam_putenv), a dict or a list of "NAME=VALUE";
    ``process_env``: variables added to the driver's own process environment."""
    _require(DRIVER, "twofa-pam-driver")
    argv = [str(DRIVER), "--service", service]
    if user is not None:
        argv += ["--user", user]
    if confdir is not None:
        argv += ["--confdir", str(confdir)]
    if rhost is not None:
        argv += ["--rhost", rhost]
    if tty is not None:
        argv += ["--tty", tty]
    if env:
        items = env.items() if isinstance(env, dict) else (e.split("=", 1) for e in env)
        for name, value in items:
            argv += ["--env", f"{name}={value}"]
    if silent:
        argv.append("--silent")
    if tries != 1:
        argv += ["--tries", str(tries)]
    if keep_going:
        argv.append("--keep-going")
    if acct:
        argv.append("--acct")
    child_env = dict(os.environ)
    if process_env:
        child_env.update(process_env)
    return subprocess.run(
        argv, input=json.dumps(list(answers)), text=True, capture_output=True,
        timeout=timeout, env=child_env,
    )


def run_driver(service: str, user: Optional[str], answers: list, confdir=None, **opts) -> dict:
    """Runs one PAM transaction through the driver; returns its parsed JSON:
    ``{"tries": [{"result", "code", "fail_delay_usec", "fail_delay_requested_usec",
    "fail_delay_requests", "messages": [{"style", "text"}]}], "acct": {...} | None, ...}``."""
    proc = run_driver_process(service, user, answers, confdir, **opts)
    assert proc.returncode == 0, (
        f"driver exited {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    )
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        raise AssertionError(f"driver printed no JSON ({e}): {proc.stdout!r}") from e


@pytest.fixture
def driver() -> Callable[..., dict]:
    """``driver(service, user, answers, confdir=None, **opts) -> dict``: see run_driver."""
    _require(DRIVER, "twofa-pam-driver")
    return run_driver


def prompts(try_result: dict) -> list[tuple[str, str]]:
    """The (style, text) pairs of one try's conversation."""
    return [(m["style"], m["text"]) for m in try_result["messages"]]


# ----------------------------------------------------------------------------------------------
# Figures a test reports (rounds of parallel logins, kill points survived...): printed in a
# "twofa figures" section at the end of the run, whatever the output capture.

FIGURES: list[str] = []


def report_figure(line: str) -> None:
    """Adds one line to the "twofa figures" section printed after the run."""
    FIGURES.append(line)


def pytest_terminal_summary(terminalreporter) -> None:
    if FIGURES:
        terminalreporter.section("twofa figures")
        for line in FIGURES:
            terminalreporter.write_line(line)
