"""Fixtures of twofa's fleet end-to-end tier (issue 9): several hosts, one PostgreSQL.

Run as root with Debian's interpreter, after ``cargo build``:
``/usr/bin/python3 -m pytest tests/fleet``. The binaries come from ``target/debug`` unless
TWOFA_MODULE, TWOFA_ENROLL, TWOFA_PAM_DRIVER or TWOFA_STORE_HELPER name others.

The world (built once per session, torn down whatever happens):
* network namespaces ``twofa-e2e-db`` (primary 10.231.0.1, standby 10.231.0.2) and
  ``twofa-e2e-h1..h3`` (10.231.0.11-13), see fleet_net.py;
* a TLS-only PostgreSQL (Debian 12: 15) primary with a synchronous standby, see fleet_pg.py; rebuilt before
  the next test when a test failed it over;
* a session directory ``/tmp/twofa-e2e-fleet-XXXXXX`` with the PKI, the clusters' data, the
  fleet key and the shared ``store.toml``.

Per test (in ``test-XXXX/`` under the session directory): three hosts, each with its own
policy file (``hN/twofa.toml``), local storage (``hN/lib``) and PAM service
``/etc/pam.d/twofa-e2e-fl<hex>-hN`` naming the module by absolute path with ``config=`` of that
host; a syslog listener; ``twofa-e2e-fl*`` users made on demand.
A host runs the module (through twofa-pam-driver) and the CLI with ``ip netns exec
twofa-e2e-hN``: the file system is shared, the network is not.

Everything about twofa's fleet interface (policy and store settings keys, CLI words, syslog
reasons, messages) is in the "Interface" section below, and only there.
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
from typing import Iterable, Optional

import pytest

import fleet_net
import fleet_pg
from fleet_net import HOST_ADDRS, HOST_NS, PRIMARY_ADDR, STANDBY_ADDR, in_ns, sh

REPO = Path(__file__).resolve().parents[2]
TARGET = REPO / "target" / "debug"
MODULE = Path(os.environ.get("TWOFA_MODULE", TARGET / "libpam_twofa.so"))
ENROLL = Path(os.environ.get("TWOFA_ENROLL", TARGET / "twofa-enroll"))
DRIVER = Path(os.environ.get("TWOFA_PAM_DRIVER", TARGET / "twofa-pam-driver"))
HELPER = Path(os.environ.get("TWOFA_STORE_HELPER", TARGET / "twofa-store"))

TIMEOUT = 60
IN_CI = bool(os.environ.get("CI"))
USER_PREFIX = "twofa-e2e-fl"  # never a tests/e2e name: those are twofa-e2e-<hex>
SESSION_PREFIX = "twofa-e2e-fleet-"
PAM_PREFIX = "twofa-e2e-fl"

# ==============================================================================================
# Interface: twofa's fleet mode as the tests see it. Adapt here when the code lands differently.

#: The module's stack: the auth lines of conf/pam.d/<STACK> (password, then the code).
STACK = "sudo"

#: Prompts of that stack.
PASSWORD_PROMPT = ("echo_off", "Password: ")
CODE_PROMPT = ("echo_off", "Verification code: ")

#: Syslog reasons (reason=WORD in the module's line).
REASON_OK = "ok"
REASON_REPLAY = "replayed-code"
REASON_WRONG = "wrong-code"
REASON_LOCKED = "locked"
REASON_STORE_DOWN = "store-unavailable"
#: The store answered, but with an error (refused login, wrong key, old schema): never local.
REASON_STORE_ERROR = "store-error"
#: The line of a login that fell back to the host's local files says so (searched in the line).
FELL_BACK_LOCAL_RE = r"(?i)store=local|fell back to local|local files"
#: The line of a login refused for the store's certificate says so.
CERTIFICATE_RE = r"(?i)certificate"

#: What the user is told when the store can't be reached / when locked out.
STORE_DOWN_MESSAGE_RE = r"(?i)can't be reached|unreachable|unavailable"
LOCKED_MESSAGE_RE = r"(?i)too many failed attempts"

#: CLI words.
CLI_STORE_INIT = ("store", "init")
CLI_STORE_CHECK = ("store", "check")
CLI_STORE_IMPORT = ("store", "import")
CLI_STATUS_ALL = ("status", "--all")
#: Said by a second ``store import`` that found nothing new (a key word, case-insensitive).
IMPORT_NOTHING_NEW_RE = r"(?i)already|nothing"
#: A line of ``store import`` saying it imported USER (as opposed to keeping it).
IMPORTED_USER_RE = r"(?im)^imported {user}\b"


def unlock_args(user_name: str) -> list[str]:
    return ["unlock", user_name]


def policy_text(
    *,
    storage: Path,
    kind: str = "postgres",
    settings: Optional[Path] = None,
    on_store_error: str = "deny",
    max_failures: int = 5,
    timeout_ms: int = 3000,
    window: int = 1,
    helper: Path = HELPER,
) -> str:
    """A host's twofa.toml."""
    text = (
        "version = 1\n"
        "\n"
        "[totp]\n"
        'issuer = "twofa-fleet"\n'
        'algorithm = "SHA1"\n'
        "digits = 6\n"
        "period = 30\n"
        f"window = {window}\n"
        "\n"
        "[policy]\n"
        'unenrolled = "deny"\n'
        f"max_failures = {max_failures}\n"
        "failure_window_seconds = 900\n"
        "lockout_seconds = 300\n"
    )
    if kind != "files":
        text += f'on_store_error = "{on_store_error}"\n'
    text += (
        "\n"
        "[storage]\n"
        f'dir = "{storage}"\n'
    )
    if kind != "files":
        text += (
            "\n"
            "[store]\n"
            f'kind = "{kind}"\n'
            f'helper = "{helper}"\n'
            f'settings = "{settings}"\n'
            f"timeout_ms = {timeout_ms}\n"
        )
    return text


def store_settings_text(
    *,
    password: str,
    ca_file: Path,
    key_file: Path,
    hosts: Iterable[str] = (PRIMARY_ADDR, STANDBY_ADDR),
    tls: str = "verify-full",
    connect_timeout_ms: int = 2000,
) -> str:
    """A store.toml: ``hosts`` in the order libpq tries them, read-write session wanted
    (``ca_file`` is left out with tls = "off", where it does not apply)."""
    conn = (
        f"host={','.join(hosts)} port={fleet_pg.PORT} dbname={fleet_pg.DATABASE} "
        f"user={fleet_pg.ROLE} target_session_attrs=read-write"
    )
    return (
        "version = 1\n"
        "\n"
        "[postgres]\n"
        f'connection = "{conn}"\n'
        f'password = "{password}"\n'
        f'tls = "{tls}"\n'
        + (f'ca_file = "{ca_file}"\n' if tls != "off" else "")
        + f"connect_timeout_ms = {connect_timeout_ms}\n"
        f'key_file = "{key_file}"\n'
    )


def enroll_args(user_name: str) -> list[str]:
    """Enrolls with the secret on stdin (as tests/e2e's Twofa.enroll)."""
    return ["enroll", user_name, "--secret-file", "-", "--no-verify"]


# ==============================================================================================
# Prerequisites


def require_root() -> None:
    if os.geteuid() != 0:
        msg = "the fleet tests run as root (network namespaces, PostgreSQL, users, PAM services)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)


#: command -> the Debian package that has it (for tests/apt-packages).
TOOLS = {
    "ip": "iproute2",
    "bridge": "iproute2",
    "openssl": "openssl",
    "oathtool": "oathtool",
    "runuser": "util-linux",
    "useradd": "passwd",
    "chpasswd": "passwd",
    str(fleet_pg.PG_BIN / "initdb"): "postgresql",
    str(fleet_pg.PG_BIN / "pg_ctl"): "postgresql",
    str(fleet_pg.PG_BIN / "psql"): "postgresql",
    str(fleet_pg.PG_BIN / "pg_basebackup"): "postgresql",
    str(fleet_pg.PG_BIN / "pg_dump"): "postgresql",
}


def require_tools() -> None:
    missing = sorted({f"{tool} ({pkg})" for tool, pkg in TOOLS.items() if not shutil.which(tool)})
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        missing.append("the postgres user (postgresql)")
    if missing:
        pytest.fail("fleet tests: missing " + ", ".join(missing) + ": see tests/apt-packages")


def require_built() -> None:
    for path, what in ((MODULE, "pam_twofa module"), (ENROLL, "twofa-enroll"),
                       (DRIVER, "twofa-pam-driver"), (HELPER, "twofa-store helper")):
        if not path.exists():
            pytest.fail(f"{what} not found at {path}: run `cargo build` first (or set the env override)")


# ==============================================================================================
# Figures printed after the run


FIGURES: list[str] = []


def report_figure(line: str) -> None:
    FIGURES.append(line)


def pytest_terminal_summary(terminalreporter) -> None:
    if FIGURES:
        terminalreporter.section("fleet figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


def pytest_collection_modifyitems(session, config, items) -> None:
    """The harness's own checks first: when the world is broken, they say how."""
    items.sort(key=lambda item: 0 if item.module.__name__ == "test_harness" else 1)


def pytest_configure(config) -> None:
    # SIGTERM (a CI timeout, a kill of pytest) runs the fixtures' teardown like Ctrl-C does:
    # namespaces and servers must not outlive the run.
    def _term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _term)


# ==============================================================================================
# Session: network, PKI, database


class Infra:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=SESSION_PREFIX, dir="/tmp"))
        os.chmod(self.root, 0o755)
        self.net = fleet_net.Network()
        self.pki: Optional[fleet_pg.Pki] = None
        self.cluster: Optional[fleet_pg.Cluster] = None
        self.generation = 0
        self.key_file = self.root / "fleet.key"
        self.settings = self.root / "store.toml"
        self.initialized: Optional[int] = None  # generation `store init` ran against

    def up(self) -> None:
        _remove_leftovers(keep=self.root)
        self.net.up()
        self.pki = fleet_pg.Pki(self.root)
        self.build_cluster()

    def build_cluster(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()
        self.generation += 1
        self.cluster = fleet_pg.Cluster(self.root, self.pki, self.generation)
        try:
            self.cluster.build()
        except BaseException:
            self.cluster.stop()
            raise
        write_secret(self.settings, store_settings_text(
            password=self.cluster.password, ca_file=self.pki.ca, key_file=self.key_file))

    def ensure_cluster(self) -> fleet_pg.Cluster:
        """The cluster, rebuilt if an earlier test failed it over or a server died."""
        if not self.cluster.healthy():
            self.build_cluster()
        return self.cluster

    def down(self) -> None:
        try:
            if self.cluster is not None:
                self.cluster.stop()
        finally:
            try:
                self.net.down()
            finally:
                shutil.rmtree(self.root, ignore_errors=True)


def _remove_leftovers(keep: Path) -> None:
    """What an earlier crashed run of this tier left: namespaces (and the servers in them),
    PAM service files and users with this tier's prefix."""
    fleet_net.remove_all()
    for path in Path("/tmp").glob(SESSION_PREFIX + "*"):
        if path != keep:
            shutil.rmtree(path, ignore_errors=True)
    for path in Path("/etc/pam.d").glob(PAM_PREFIX + "*"):
        path.unlink()
    for entry in pwd.getpwall():
        if entry.pw_name.startswith(USER_PREFIX):
            sh(["userdel", "-f", entry.pw_name], check=False)


@pytest.fixture(scope="session")
def infra() -> Iterable[Infra]:
    require_root()
    require_tools()
    world = Infra()
    try:
        world.up()
        yield world
    finally:
        world.down()


def write_secret(path: Path, text: str, mode: int = 0o600) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w") as f:
        f.write(text)
    os.chown(tmp, 0, 0)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return path


# ==============================================================================================
# Syslog


class Syslog:
    """A datagram listener the module's lines reach: at /dev/log when there is none; else at a
    private path that each host command bind-mounts over /dev/log in its own mount namespace
    (``ip netns exec`` gives every command one)."""

    def __init__(self, private_dir: Path) -> None:
        _remove_dead_dev_log()
        if os.path.lexists("/dev/log"):
            self.path = str(private_dir / "log.sock")
            self.bind_mount = True
        else:
            self.path = "/dev/log"
            self.bind_mount = False
        # Made in the database namespace, whose datagram queue holds a burst of lines.
        self._sock = fleet_net.socket_in_namespace(fleet_net.DB_NS, socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(self.path)
        os.chmod(self.path, 0o666)
        self._ino = os.lstat(self.path).st_ino
        self._sock.settimeout(0.1)
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fleet-syslog", daemon=True)
        self._thread.start()

    def wrap(self, argv: list) -> list:
        """argv, made to log into this listener (used inside a host namespace)."""
        if not self.bind_mount:
            return argv
        return ["/bin/sh", "-c", 'mount --bind "$0" /dev/log && exec "$@"', self.path, *argv]

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

    def about(self, user: str) -> list[str]:
        needle = f"user={user} "
        return [line for line in self.lines() if "pam_twofa(" in line and needle in line]

    def wait_about(self, user: str, count: int, timeout: float = 10) -> list[str]:
        """Waits until ``count`` module lines about ``user`` arrived (and no more arrive for a
        moment); returns them all."""
        deadline = time.monotonic() + timeout
        while len(self.about(user)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"expected {count} pam_twofa lines about {user} within {timeout}s, got:\n"
                    + "\n".join(self.about(user))
                )
            time.sleep(0.02)
        # A moment of quiet: a line too many would show up here.
        quiet_until = time.monotonic() + 0.3
        seen = len(self.about(user))
        while time.monotonic() < quiet_until:
            time.sleep(0.02)
            if len(self.about(user)) != seen:
                seen = len(self.about(user))
                quiet_until = time.monotonic() + 0.3
        return self.about(user)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()
        try:
            if os.lstat(self.path).st_ino == self._ino:
                os.unlink(self.path)
        except FileNotFoundError:
            pass


def _remove_dead_dev_log() -> None:
    """Removes /dev/log if it is a socket nobody listens on (a listener's, killed with its run:
    it would keep every later run, and tests/e2e's syslog tests, from binding one)."""
    try:
        if not stat.S_ISSOCK(os.lstat("/dev/log").st_mode):
            return
    except FileNotFoundError:
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        probe.connect("/dev/log")
    except ConnectionRefusedError:
        os.unlink("/dev/log")
    except OSError:
        pass
    finally:
        probe.close()


LINE_RE = re.compile(r"user=(?P<user>\S+) .*outcome=(?P<outcome>\S+) reason=(?P<reason>[a-z-]+)(?P<detail>.*)$")


def outcome_of(line: str) -> str:
    m = LINE_RE.search(line)
    assert m, f"syslog line not in the documented format: {line!r}"
    return m.group("outcome")


def reason_of(line: str) -> str:
    m = LINE_RE.search(line)
    assert m, f"syslog line not in the documented format: {line!r}"
    return m.group("reason")


# ==============================================================================================
# Hosts, users, logins


@dataclasses.dataclass
class User:
    name: str
    password: str


@dataclasses.dataclass
class Login:
    """One pam_authenticate on one host, as the user saw it."""

    host: str
    result: str
    messages: list[tuple[str, str]]
    elapsed: float
    report: dict

    @property
    def ok(self) -> bool:
        return self.result == "PAM_SUCCESS"

    def shown(self) -> list[tuple[str, str]]:
        """What was shown beyond the two prompts (errors, info)."""
        return [m for m in self.messages if m[0] not in ("echo_off", "echo_on")]


def _auth_lines(config: Path) -> str:
    out = []
    for raw in (REPO / "conf" / "pam.d" / STACK).read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.split()[0] != "auth":
            continue
        out.append(re.sub(r"(?<=\s)pam_twofa\.so(?=\s|$)", f"{MODULE} config={config}", line))
    assert out, f"no auth lines in conf/pam.d/{STACK}"
    return "\n".join(out) + "\naccount required pam_unix.so\nsession required pam_permit.so\n"


class Host:
    """One machine of the fleet: a network namespace, its policy, local storage, PAM service."""

    def __init__(self, index: int, root: Path, infra: Infra, syslog: Syslog, tag: str) -> None:
        self.index = index
        self.name = f"h{index}"
        self.ns = HOST_NS[index - 1]
        self.addr = HOST_ADDRS[index - 1]
        self.dir = root / self.name
        self.dir.mkdir(mode=0o755)
        self.policy = self.dir / "twofa.toml"
        self.files_policy = self.dir / "twofa-files.toml"
        self.storage = self.dir / "lib"
        self.settings = infra.settings
        self.infra = infra
        self.syslog = syslog
        self.service = f"{PAM_PREFIX}{tag}-{self.name}"
        self.pam_file = Path("/etc/pam.d") / self.service
        self.configure()
        # The same storage dir, but kind = "files": this host before fleet mode.
        write_secret(self.files_policy, policy_text(storage=self.storage, kind="files"), 0o644)
        self.pam_file.write_text(_auth_lines(self.policy))  # last: removed by cleanup()
        os.chmod(self.pam_file, 0o644)

    def configure(self, *, settings: Optional[Path] = None, **policy) -> None:
        """(Re)writes this host's policy (keyword arguments of policy_text)."""
        if settings is not None:
            self.settings = settings
        write_secret(self.policy, policy_text(storage=self.storage, settings=self.settings, **policy), 0o644)

    def run(self, argv: list, *, input: str = "", timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
        return subprocess.run(
            in_ns(self.ns, self.syslog.wrap(list(map(str, argv)))), input=input, text=True,
            capture_output=True, timeout=timeout,
        )

    # -- the CLI --------------------------------------------------------------------------------

    def cli(self, *args: str, input: str = "", check: bool = True, policy: Optional[Path] = None,
            timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
        argv = [ENROLL, "--config", policy or self.policy, *args]
        proc = self.run(argv, input=input, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"[{self.name}] {' '.join(map(str, argv))} exited {proc.returncode}\n"
                f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
            )
        return proc

    def enroll(self, user: User, secret: Optional[str] = None, *, policy: Optional[Path] = None) -> str:
        """Enrolls ``user`` through this host's CLI; returns the base32 secret."""
        if secret is None:
            secret = base64.b32encode(os.urandom(20)).decode("ascii")
        self.cli(*enroll_args(user.name), input=secret + "\n", policy=policy)
        return secret

    # -- logins ---------------------------------------------------------------------------------

    def driver_argv(self, user: User, start_at_ns: Optional[int] = None) -> list:
        argv = [DRIVER, "--service", self.service, "--user", user.name]
        if start_at_ns is not None:
            argv += ["--start-at", str(start_at_ns)]
        return in_ns(self.ns, self.syslog.wrap(list(map(str, argv))))

    def login(self, user: User, code: str, *, password: Optional[str] = None,
              timeout: float = TIMEOUT) -> Login:
        """One login (password, then code) through twofa-pam-driver in this host's namespace."""
        answers = [user.password if password is None else password, code]
        t0 = time.monotonic()
        proc = subprocess.run(self.driver_argv(user), input=json.dumps(answers), text=True,
                              capture_output=True, timeout=timeout)
        elapsed = time.monotonic() - t0
        return self.parse_login(proc.returncode, proc.stdout, proc.stderr, elapsed)

    def spawn_login(self, user: User, code: str, start_at_ns: int) -> subprocess.Popen:
        """Starts a driver that logs in at ``start_at_ns`` (wall clock); finish with
        ``finish_login``."""
        answers = self.dir / f"answers-{secrets.token_hex(6)}.json"
        answers.write_text(json.dumps([user.password, code]))
        with open(answers) as stdin:
            proc = subprocess.Popen(self.driver_argv(user, start_at_ns), stdin=stdin,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        answers.unlink()
        return proc

    def finish_login(self, proc: subprocess.Popen, timeout: float = TIMEOUT) -> Login:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"[{self.name}] login did not finish within {timeout}s: {out}{err}")
        return self.parse_login(proc.returncode, out, err, float("nan"))

    def parse_login(self, rc: int, out: str, err: str, elapsed: float) -> Login:
        assert rc == 0, f"[{self.name}] driver exited {rc}\nstdout: {out}\nstderr: {err}"
        try:
            report = json.loads(out)
        except json.JSONDecodeError as e:
            raise AssertionError(f"[{self.name}] driver printed no JSON ({e}): {out!r} {err!r}") from e
        first = report["tries"][0]
        return Login(
            host=self.name, result=first["result"],
            messages=[(m["style"], m["text"]) for m in first["messages"]],
            elapsed=elapsed, report=report,
        )

    def leftover_processes(self) -> list[str]:
        """Processes still inside this host's namespace (a helper the module failed to kill)."""
        out = []
        for pid in fleet_net.ns_pids(self.ns):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            out.append(f"{pid}: {cmdline.decode(errors='replace')}")
        return out

    def cleanup(self) -> None:
        try:
            self.pam_file.unlink()
        except FileNotFoundError:
            pass


class Fleet:
    """One test's fleet: three hosts on the session's database."""

    def __init__(self, infra: Infra, syslog: Syslog, root: Path) -> None:
        self.infra = infra
        self.syslog = syslog
        self.root = root
        self.cluster = infra.cluster
        tag = secrets.token_hex(4)
        self.hosts: list[Host] = []
        self._users: list[User] = []
        try:
            for i in (1, 2, 3):
                self.hosts.append(Host(i, root, infra, syslog, tag))
        except BaseException:
            self.cleanup()
            raise
        self.h1, self.h2, self.h3 = self.hosts

    def user(self) -> User:
        """A fresh ``twofa-e2e-fl*`` account with a random password (no home: pam_unix needs
        none); removed at teardown."""
        name = USER_PREFIX + secrets.token_hex(5)
        password = "pw-" + secrets.token_urlsafe(12)
        sh(["useradd", "-M", "-s", "/usr/sbin/nologin", name])
        self._users.append(User(name, password))
        sh(["chpasswd"], input=f"{name}:{password}\n")
        return self._users[-1]

    def settings_file(self, name: str, **kwargs) -> Path:
        """A store.toml in this test's dir (keyword arguments of store_settings_text; password,
        CA and key default to the session's)."""
        kwargs.setdefault("password", self.cluster.password)
        kwargs.setdefault("ca_file", self.infra.pki.ca)
        kwargs.setdefault("key_file", self.infra.key_file)
        return write_secret(self.root / name, store_settings_text(**kwargs))

    def cleanup(self) -> None:
        for host in self.hosts:
            host.cleanup()
        for user in self._users:
            sh(["userdel", "-f", user.name], check=False)


def code(secret: str, at: Optional[float] = None) -> str:
    """The TOTP code (SHA1, 6 digits, 30 s) from oathtool, at Unix time ``at`` (default now)."""
    argv = ["oathtool", "--totp=sha1", "-d", "6", "-s", "30s", "-b"]
    if at is not None:
        argv += ["-N", f"@{int(at)}"]
    argv.append(secret)
    out = sh(argv).stdout.strip()
    assert re.fullmatch(r"\d{6}", out), out
    return out


def wrong_code(secret: str) -> str:
    """Six digits that are none of the codes near now."""
    now = time.time()
    near = {code(secret, now + k * 30) for k in range(-3, 4)}
    while True:
        candidate = f"{secrets.randbelow(10**6):06d}"
        if candidate not in near:
            return candidate


@pytest.fixture
def fleet_net_only(infra) -> Infra:
    """The session's network and database, without twofa (for the harness's own checks)."""
    infra.ensure_cluster()
    return infra


@pytest.fixture
def fleet(infra) -> Iterable[Fleet]:
    """Three hosts with fleet policies on an initialized store."""
    require_built()
    infra.ensure_cluster()
    root = Path(tempfile.mkdtemp(prefix="test-", dir=infra.root))
    os.chmod(root, 0o755)
    syslog = Syslog(root)
    world = None
    try:
        world = Fleet(infra, syslog, root)
        if infra.initialized != infra.generation:
            world.h1.cli(*CLI_STORE_INIT)
            infra.initialized = infra.generation
        yield world
    finally:
        try:
            if world is not None:
                world.cleanup()
        finally:
            syslog.close()
            shutil.rmtree(root, ignore_errors=True)
