"""FTP daemons for the end-to-end tests: a private vsftpd (and helpers shared by FTP tests).

vsftpd
    Debian's /usr/sbin/vsftpd, run in the foreground (``listen=YES``, ``background=NO``) as a
    child of the test with its own config file in a temp dir, on 127.0.0.1 and a free port, with
    ``pam_service_name=twofa-e2e-ftp-<random>``. This module writes /etc/pam.d/<that name>
    (removed at teardown, also on failure). vsftpd forks one process per connection; teardown
    kills the listener and every descendant of it, by pid.

Clients
    ``raw_login`` speaks FTP over a plain socket and returns every byte the server sent, so a
    test can check that nothing but vsftpd's own replies reaches the control connection (vsftpd
    runs PAM with that socket on fds 0-2). ``ftp_client`` is ftplib for everything else.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ftplib
import os
import random
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterable, Optional

from daemons import _descendants

VSFTPD_BIN = Path("/usr/sbin/vsftpd")
PAM_DIR = Path("/etc/pam.d")
SECURE_CHROOT_DIR = Path("/run/vsftpd/empty")

FTP_TIMEOUT = 20      # seconds, any single FTP exchange (a failed login: PAM's ~2 s + vsftpd's 1 s)
START_TIMEOUT = 10    # seconds, for a daemon to accept connections

#: The prompt of the concat line when no earlier module has collected the password.
FIELD_PROMPT = "Password & verification code: "


# --------------------------------------------------------------------------------------------
# small helpers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pasv_range(size: int = 20) -> tuple[int, int]:
    """A random passive-port range (other tests run on this machine at the same time)."""
    low = random.randrange(40000, 60000 - size)
    return low, low + size - 1


def private_dir(prefix: str) -> Path:
    d = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(d, 0o755)
    return d


# The same walk as daemons.py's: one copy.
descendants = _descendants


def kill_pids(pids: Iterable[int]) -> None:
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)


def stop_process_tree(proc: Optional[subprocess.Popen]) -> None:
    """Stops a daemon we started and every process it forked (by pid, nothing else)."""
    if proc is None:
        return
    kids = descendants(proc.pid)
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    kill_pids(kids + descendants(proc.pid))


def install_pam_service(name: str, text: str) -> Path:
    path = PAM_DIR / name
    if path.exists():
        raise FileExistsError(f"{path} exists; refusing to overwrite a file the test did not make")
    tmp = PAM_DIR / ("." + name + ".tmp")
    tmp.write_text(text)
    os.chown(tmp, 0, 0)
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)
    return path


def wait_for_banner(port: int, proc: subprocess.Popen, log, timeout: float = START_TIMEOUT) -> None:
    """Waits until the daemon on 127.0.0.1:port answers with a 220 greeting."""
    deadline = time.monotonic() + timeout
    last_error: Optional[BaseException] = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"daemon exited with {proc.returncode}:\n{log()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.settimeout(5)
                if s.recv(4096).startswith(b"220"):
                    return
        except OSError as e:
            last_error = e
        time.sleep(0.05)
    raise TimeoutError(f"daemon did not greet on port {port} within {timeout}s ({last_error}):\n{log()}")


def wrong_code(twofa, secret: str, **params) -> str:
    """A code of the right length that is not valid anywhere near now."""
    digits = params.get("digits", 6)
    period = params.get("period", 30)
    now = int(time.time())
    near = {twofa.code(secret, at=now + k * period, **params) for k in range(-3, 4)}
    candidate = int(twofa.code(secret, **params))
    while f"{candidate:0{digits}d}" in near:
        candidate = (candidate + 1) % 10**digits
    return f"{candidate:0{digits}d}"


# --------------------------------------------------------------------------------------------
# vsftpd


class Vsftpd:
    """A private vsftpd on 127.0.0.1 whose PAM service is /etc/pam.d/<self.service>."""

    def __init__(self, stack_text: str, extra_config: str = ""):
        self.stack_text = stack_text
        self.extra_config = extra_config
        self.dir = private_dir("twofa-e2e-vsftpd-")
        self.service = "twofa-e2e-ftp-" + secrets.token_hex(4)
        self.config = self.dir / "vsftpd.conf"
        self.log_path = self.dir / "vsftpd.log"
        self.stderr_path = self.dir / "vsftpd.stderr"
        self.port: Optional[int] = None
        self.proc: Optional[subprocess.Popen] = None
        self.pam_file: Optional[Path] = None

    def config_text(self) -> str:
        pasv_min, pasv_max = pasv_range()
        return (
            "listen=YES\n"
            "listen_ipv6=NO\n"
            "listen_address=127.0.0.1\n"
            f"listen_port={self.port}\n"
            "background=NO\n"
            "local_enable=YES\n"
            "anonymous_enable=NO\n"
            f"pam_service_name={self.service}\n"
            "seccomp_sandbox=NO\n"
            f"secure_chroot_dir={SECURE_CHROOT_DIR}\n"
            "pasv_enable=YES\n"
            f"pasv_min_port={pasv_min}\n"
            f"pasv_max_port={pasv_max}\n"
            "xferlog_enable=NO\n"
            f"vsftpd_log_file={self.log_path}\n"
            f"{self.extra_config}"
        )

    def start(self) -> "Vsftpd":
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        SECURE_CHROOT_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
        self.pam_file = install_pam_service(self.service, self.stack_text)
        for _attempt in range(3):  # another test may grab the free port first
            self.port = free_port()
            self.config.write_text(self.config_text())
            os.chmod(self.config, 0o600)
            self.proc = subprocess.Popen(
                [str(VSFTPD_BIN), str(self.config)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=open(self.stderr_path, "wb"),
            )
            try:
                wait_for_banner(self.port, self.proc, self.log)
                return
            except RuntimeError:
                if "could not bind" not in self.log():
                    raise
                stop_process_tree(self.proc)
        raise RuntimeError(f"vsftpd could not bind a free port:\n{self.log()}")

    def stop(self) -> None:
        try:
            stop_process_tree(self.proc)
        finally:
            if self.pam_file is not None:
                with contextlib.suppress(FileNotFoundError):
                    self.pam_file.unlink()
            shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        out = ""
        for p in (self.stderr_path, self.log_path):
            with contextlib.suppress(FileNotFoundError):
                out += p.read_text(errors="replace")
        return out


# --------------------------------------------------------------------------------------------
# clients


def ftp_client(port: int) -> ftplib.FTP:
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", port, timeout=FTP_TIMEOUT)
    return ftp


def ftp_login(port: int, user: str, field: str) -> str:
    """One connection, USER + PASS; returns the reply to PASS ("230 ..." or "530 ...")."""
    ftp = ftp_client(port)
    try:
        try:
            return ftp.login(user, field)
        except ftplib.error_perm as e:
            return str(e)
    finally:
        with contextlib.suppress(Exception):
            ftp.quit()
        ftp.close()


def ftp_list_home(port: int, user: str, field: str) -> list[str]:
    """Logs in (raising ftplib.error_perm if refused) and returns NLST of the start directory."""
    ftp = ftp_client(port)
    try:
        ftp.login(user, field)
        ftp.set_pasv(True)
        return ftp.nlst()
    finally:
        with contextlib.suppress(Exception):
            ftp.quit()
        ftp.close()


def _read_reply(sock: socket.socket, buf: bytearray, transcript: bytearray) -> str:
    """Reads one complete (possibly multi-line) FTP reply; returns it as text."""
    deadline = time.monotonic() + FTP_TIMEOUT
    while True:
        text = buf.decode("latin-1")
        lines = text.split("\r\n")
        # A reply ends with a line "NNN text" (space after the code) matching its first line.
        if len(lines) > 1:
            first = lines[0]
            code = first[:3]
            multi = len(first) > 3 and first[3] == "-"
            for i, line in enumerate(lines[:-1]):
                if (not multi and i == 0) or (multi and i > 0 and line.startswith(code + " ")):
                    end = len("\r\n".join(lines[: i + 1])) + 2
                    reply = bytes(buf[:end]).decode("latin-1")
                    del buf[:end]
                    return reply
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no complete FTP reply within {FTP_TIMEOUT}s: {bytes(buf)!r}")
        sock.settimeout(remaining)
        data = sock.recv(4096)
        if not data:
            raise ConnectionError(f"connection closed mid-reply: {bytes(buf)!r}")
        buf.extend(data)
        transcript.extend(data)


def raw_login(port: int, user: str, field: str) -> tuple[str, bytes]:
    """Greeting, USER, PASS, QUIT over a plain socket, then reads to EOF.

    Returns (the reply to PASS, every byte the server sent on the control connection)."""
    transcript = bytearray()
    buf = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=FTP_TIMEOUT) as sock:
        _read_reply(sock, buf, transcript)
        sock.sendall(f"USER {user}\r\n".encode())
        _read_reply(sock, buf, transcript)
        sock.sendall(f"PASS {field}\r\n".encode())
        pass_reply = _read_reply(sock, buf, transcript)
        sock.sendall(b"QUIT\r\n")
        deadline = time.monotonic() + FTP_TIMEOUT
        while time.monotonic() < deadline:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                data = sock.recv(4096)
            except (ConnectionResetError, socket.timeout):
                break
            if not data:
                break
            transcript.extend(data)
    return pass_reply.rstrip("\r\n"), bytes(transcript)


REPLY_LINE = re.compile(r"\d{3} [ -~]*")


def reply_lines(transcript: bytes) -> list[str]:
    """The transcript as lines; asserts it is nothing but CRLF-terminated printable lines."""
    assert transcript.endswith(b"\r\n"), transcript
    text = transcript.decode("ascii")  # raises on any non-ASCII stray byte
    lines = text[:-2].split("\r\n")
    for line in lines:
        assert REPLY_LINE.fullmatch(line), f"not an FTP reply line: {line!r} in {transcript!r}"
    return lines


# --------------------------------------------------------------------------------------------
# ProFTPD and pure-ftpd, unpacked from Debian's packages
#
# Debian's proftpd-core and pure-ftpd both declare `Conflicts: ftp-server`, and so does vsftpd:
# apt can't install either next to vsftpd. So, unless the daemon is already installed, the
# tests fetch Debian's own .deb with `apt-get download` (the ordinary apt client, the
# configured Debian archive), unpack it with `dpkg-deb -x` into a temp dir and run the binary
# from there; shared libraries the package needs that are not installed are fetched and
# unpacked the same way and found through LD_LIBRARY_PATH. Nothing is installed or changed on
# the system.

#: Libraries (Debian packages) each daemon links against that a minimal Debian 12 may lack.
DAEMON_LIBS = {
    "proftpd-core": ["libhiredis0.14", "libmemcached11", "libmemcachedutil2", "libpcre2-posix3", "libhashkit2"],
    "pure-ftpd": ["libsodium23"],
}
DAEMON_BINARY = {"proftpd-core": "usr/sbin/proftpd", "pure-ftpd": "usr/sbin/pure-ftpd"}
APT_TIMEOUT = 180


class UnpackError(Exception):
    """The daemon can't be had on this machine (no archive access, package missing...)."""


def _installed(package: str) -> bool:
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package],
        capture_output=True, text=True, timeout=30,
    )
    return proc.returncode == 0 and "install ok installed" in proc.stdout


@dataclasses.dataclass
class Unpacked:
    binary: Path
    env: dict  # LD_LIBRARY_PATH for libraries unpacked next to it ({} if none)


def unpack_daemon(package: str, workdir: Path) -> Unpacked:
    """The daemon of Debian package ``package``: the installed binary if the package is
    installed, else one unpacked from the downloaded .deb under ``workdir``."""
    rel = DAEMON_BINARY[package]
    if _installed(package):
        return Unpacked(Path("/") / rel, {})
    missing = [lib for lib in DAEMON_LIBS[package] if not _installed(lib)]
    debs = workdir / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    root = workdir / "root"
    root.mkdir(exist_ok=True)
    try:
        proc = subprocess.run(
            ["apt-get", "download", package, *missing], cwd=debs,
            capture_output=True, text=True, timeout=APT_TIMEOUT,
        )
    except subprocess.TimeoutExpired as e:
        raise UnpackError(f"apt-get download {package} timed out") from e
    if proc.returncode != 0:
        raise UnpackError(f"apt-get download {package} {' '.join(missing)} failed:\n{proc.stderr}")
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True, timeout=60)
    binary = root / rel
    if not binary.is_file():
        raise UnpackError(f"{package} has no {rel}")
    env = {}
    libdir = root / "usr" / "lib" / "x86_64-linux-gnu"
    if missing and libdir.is_dir():
        env["LD_LIBRARY_PATH"] = str(libdir)
    ldd = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, timeout=30,
                         env={**os.environ, **env})
    if "not found" in ldd.stdout:
        raise UnpackError(f"{binary} lacks libraries:\n{ldd.stdout}")
    return Unpacked(binary, env)


class ProFtpd:
    """A private ProFTPD on 127.0.0.1 (mod_auth_pam) whose PAM service is
    /etc/pam.d/<self.service>, with the settings conf/pam.d/proftpd's comments give."""

    def __init__(self, daemon: Unpacked, stack_text: str):
        self.daemon = daemon
        self.stack_text = stack_text
        self.dir = private_dir("twofa-e2e-proftpd-")
        self.service = "twofa-e2e-ftp-" + secrets.token_hex(4)
        self.config = self.dir / "proftpd.conf"
        self.log_path = self.dir / "proftpd.log"
        self.stderr_path = self.dir / "proftpd.stderr"
        self.port: Optional[int] = None
        self.proc: Optional[subprocess.Popen] = None
        self.pam_file: Optional[Path] = None

    def config_text(self) -> str:
        pasv_min, pasv_max = pasv_range()
        return (
            'ServerName "twofa-e2e"\n'
            "ServerType standalone\n"
            "DefaultServer on\n"
            "UseIPv6 off\n"
            "DefaultAddress 127.0.0.1\n"
            "SocketBindTight on\n"
            f"Port {self.port}\n"
            f"PassivePorts {pasv_min} {pasv_max}\n"
            "User nobody\n"
            "Group nogroup\n"
            "Umask 022\n"
            "UseReverseDNS off\n"
            "WtmpLog off\n"
            "DelayEngine off\n"
            f"PidFile {self.dir / 'proftpd.pid'}\n"
            f"ScoreboardFile {self.dir / 'proftpd.scoreboard'}\n"
            f"SystemLog {self.log_path}\n"
            "TransferLog none\n"
            # What conf/pam.d/proftpd says to put in proftpd.conf. Debian's proftpd has
            # mod_auth_pam built in: the LoadModule line only logs "already loaded".
            "LoadModule mod_auth_pam.c\n"
            "AuthPAM on\n"
            f"AuthPAMConfig {self.service}\n"
            "AuthOrder mod_auth_pam.c* mod_auth_unix.c\n"
        )

    def start(self) -> "ProFtpd":
        try:
            self.pam_file = install_pam_service(self.service, self.stack_text)
            self.port = free_port()
            self.config.write_text(self.config_text())
            check = subprocess.run(
                [str(self.daemon.binary), "-t", "-c", str(self.config)],
                capture_output=True, text=True, timeout=30, env={**os.environ, **self.daemon.env},
            )
            if check.returncode != 0:
                raise RuntimeError(f"proftpd -t failed:\n{check.stdout}{check.stderr}\n{self.config_text()}")
            self.proc = subprocess.Popen(
                [str(self.daemon.binary), "-n", "-c", str(self.config)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=open(self.stderr_path, "wb"), env={**os.environ, **self.daemon.env},
            )
            wait_for_banner(self.port, self.proc, self.log)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        try:
            stop_process_tree(self.proc)
        finally:
            if self.pam_file is not None:
                with contextlib.suppress(FileNotFoundError):
                    self.pam_file.unlink()
            shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        out = ""
        for p in (self.stderr_path, self.log_path):
            with contextlib.suppress(FileNotFoundError):
                out += p.read_text(errors="replace")
        return out


class PureFtpd:
    """A private pure-ftpd on 127.0.0.1.

    pure-ftpd hard-codes its PAM service name (`pure-ftpd`) and there is no such file on this
    machine to bind a private one over, so it runs under ``unshare -m`` with a private PAM dir
    (the service file ``pure-ftpd`` plus ``other`` denying everything) bind-mounted over
    /etc/pam.d in that mount namespace only. Options are given as command-line flags, as
    Debian's pure-ftpd-wrapper would make them from /etc/pure-ftpd/conf/: PAMAuthentication yes
    (``-l pam``), UnixAuthentication no (no ``-l unix``), NoAnonymous yes (``-E``)."""

    SERVICE = "pure-ftpd"

    def __init__(self, daemon: Unpacked, stack_text: str):
        self.daemon = daemon
        self.stack_text = stack_text
        self.dir = private_dir("twofa-e2e-pureftpd-")
        self.pam_dir = self.dir / "pam.d"
        self.stderr_path = self.dir / "pure-ftpd.stderr"
        self.port: Optional[int] = None
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> "PureFtpd":
        try:
            self.pam_dir.mkdir(mode=0o755)
            (self.pam_dir / self.SERVICE).write_text(self.stack_text)
            (self.pam_dir / "other").write_text(
                "".join(f"{t} required pam_deny.so\n" for t in ("auth", "account", "password", "session"))
            )
            self.port = free_port()
            pasv_min, pasv_max = pasv_range()
            argv = [
                str(self.daemon.binary), "-l", "pam", "-E", "-H", "-4",
                "-S", f"127.0.0.1,{self.port}", "-p", f"{pasv_min}:{pasv_max}",
            ]
            script = (
                f"mount --bind {shlex.quote(str(self.pam_dir))} /etc/pam.d && exec "
                + " ".join(shlex.quote(a) for a in argv)
            )
            self.proc = subprocess.Popen(
                ["unshare", "-m", "sh", "-c", script],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=open(self.stderr_path, "wb"), env={**os.environ, **self.daemon.env},
            )
            wait_for_banner(self.port, self.proc, self.log)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        try:
            stop_process_tree(self.proc)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        with contextlib.suppress(FileNotFoundError):
            return self.stderr_path.read_text(errors="replace")
        return ""
