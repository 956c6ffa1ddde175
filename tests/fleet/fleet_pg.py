"""A TLS-only PostgreSQL primary with a synchronous streaming standby, for the fleet tier.

Built from Debian's PostgreSQL binaries (/usr/lib/postgresql/15/bin on Debian 12), run as the
``postgres`` user inside the database namespace (fleet_net.DB_NS):

* a private CA and a server certificate with IP SANs for both database addresses (openssl);
  a second, unrelated CA for the pinning tests;
* the primary on 10.231.0.1:5432, the standby on 10.231.0.2:5432 (``pg_basebackup -R`` from
  the primary, streaming over TLS as role ``replicator``), the primary with
  ``synchronous_standby_names = '*'`` and ``synchronous_commit = on``: a commit returns only
  once the standby has the WAL;
* ``pg_hba.conf``: ``hostssl`` + ``scram-sha-256`` only (role ``twofa`` on database ``twofa``,
  ``replicator`` for replication); the only other entry is ``local ... postgres peer``, the
  Unix socket in the cluster's own directory, which the tests use for pg_dump and checks.

``stop()`` always ends with ``pg_ctl stop -m immediate`` and then kills, by pid, anything of the
cluster still alive (a frozen postmaster is sent SIGCONT first).
"""

from __future__ import annotations

import os
import pwd
import secrets
import signal
import subprocess
import time
from pathlib import Path
from typing import Optional

from fleet_net import DB_NS, PRIMARY_ADDR, STANDBY_ADDR, in_ns, sh

def _pg_bin() -> Path:
    """TWOFA_PG_BIN, else the newest /usr/lib/postgresql/N/bin (Debian 12: 15)."""
    if os.environ.get("TWOFA_PG_BIN"):
        return Path(os.environ["TWOFA_PG_BIN"])
    versions = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if p.parent.name.isdigit()),
        key=lambda p: int(p.parent.name),
    )
    return versions[-1] if versions else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _pg_bin()
PORT = 5432
DATABASE = "twofa"
ROLE = "twofa"


# ----------------------------------------------------------------------------------------------
# PKI


class Pki:
    """``ca.pem`` (trusted by the hosts), ``server.{crt,key}`` signed by it for both database
    addresses, and ``other-ca.pem``, a CA that signed nothing the servers use."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "pki"
        self.dir.mkdir(mode=0o755)
        self.ca = self.dir / "ca.pem"
        self.ca_key = self.dir / "ca.key"
        self.server_crt = self.dir / "server.crt"
        self.server_key = self.dir / "server.key"
        self.other_ca = self.dir / "other-ca.pem"
        self.other_ca_key = self.dir / "other-ca.key"
        self._make_ca(self.ca, self.ca_key, "twofa-e2e fleet test CA")
        self._make_ca(self.other_ca, self.other_ca_key, "twofa-e2e unrelated CA")
        self._make_server()
        for p in (self.ca, self.other_ca, self.server_crt):
            os.chmod(p, 0o644)
        for p in (self.ca_key, self.other_ca_key, self.server_key):
            os.chmod(p, 0o600)

    @staticmethod
    def _make_ca(cert: Path, key: Path, cn: str) -> None:
        sh(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={cn}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign"])

    def _make_server(self) -> None:
        csr = self.dir / "server.csr"
        ext = self.dir / "server.ext"
        ext.write_text(
            "basicConstraints = critical,CA:FALSE\n"
            "keyUsage = critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage = serverAuth\n"
            f"subjectAltName = IP:{PRIMARY_ADDR},IP:{STANDBY_ADDR}\n"
        )
        sh(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", self.server_key, "-out", csr, "-subj", "/CN=twofa-e2e-db"])
        sh(["openssl", "x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key,
            "-CAcreateserial", "-out", self.server_crt, "-days", "2", "-extfile", ext])


# ----------------------------------------------------------------------------------------------
# Servers


def _pg(tool: str) -> str:
    return str(PG_BIN / tool)


def as_postgres(argv: list) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *map(str, argv)]


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return "gone"
    return stat[stat.rindex(b")") + 2:].split()[0].decode()


class Server:
    """One postgres instance (data dir, address, socket dir), run inside DB_NS."""

    def __init__(self, name: str, root: Path, addr: str) -> None:
        self.name = name
        self.data = root / name
        self.sockdir = root / f"{name}-sock"
        self.log = root / f"{name}.log"
        self.addr = addr

    # -- control --------------------------------------------------------------------------------

    def pg_ctl(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        return sh(in_ns(DB_NS, as_postgres([_pg("pg_ctl"), "-D", self.data, *args])),
                  check=check, timeout=timeout)

    def start(self) -> None:
        proc = self.pg_ctl("-l", self.log, "-w", "-t", "30", "start", check=False)
        if proc.returncode != 0:
            raise AssertionError(
                f"{self.name} did not start ({proc.returncode}): {proc.stdout}{proc.stderr}\n"
                f"{self.log}:\n{self.log_text()}"
            )

    def postmaster_pid(self) -> Optional[int]:
        try:
            first = (self.data / "postmaster.pid").read_text().splitlines()[0]
        except (FileNotFoundError, IndexError):
            return None
        pid = int(first)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def pids(self) -> list[int]:
        """The postmaster and every process it forked (backends, walsender, checkpointer...).
        Each child of a postmaster calls setsid(), so they are not in its process group: they
        are found by parent pid."""
        pid = self.postmaster_pid()
        if pid is None:
            return []
        out = [pid]
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            # pid (comm) state ppid ...: comm may hold spaces and parentheses
            ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
            if ppid == pid:
                out.append(int(entry))
        return out

    def signal_all(self, sig: int) -> list[int]:
        """Sends ``sig`` to the postmaster and all its children; returns their pids."""
        pids = self.pids()
        assert pids, f"{self.name} is not running"
        for p in pids:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
        return pids

    def walreceiver(self) -> int:
        """The pid of this standby's WAL receiver."""
        for pid in self.pids():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"walreceiver" in cmdline:
                return pid
        raise AssertionError(f"{self.name} has no walreceiver process")

    def signal_pids(self, pids: list[int], sig: int) -> None:
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """SIGKILL of the postmaster and all its processes, as when its machine dies."""
        pids = self.signal_all(signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(os.path.exists(f"/proc/{p}") and _state(p) != "Z" for p in pids):
            assert time.monotonic() < deadline, f"{self.name}'s processes survived SIGKILL"
            time.sleep(0.02)

    def stop(self) -> None:
        """``pg_ctl stop -m immediate``, after SIGCONT in case it was frozen; then SIGKILL of
        whatever is left."""
        pids = self.pids()
        if not pids:
            return
        for p in pids:
            try:
                os.kill(p, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.pg_ctl("stop", "-m", "immediate", "-w", "-t", "10", check=False, timeout=20)
        leftover = [p for p in pids if os.path.exists(f"/proc/{p}")]
        for p in leftover:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass

    # -- SQL over the local socket (as postgres) --------------------------------------------------

    def psql(self, sql: str, db: str = "postgres", check: bool = True,
             timeout: float = 30) -> subprocess.CompletedProcess:
        return sh(as_postgres([_pg("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                               "-h", self.sockdir, "-p", PORT, "-d", db, "-c", sql]),
                  check=check, timeout=timeout)

    def query(self, sql: str, db: str = "postgres", timeout: float = 30) -> str:
        return self.psql(sql, db, timeout=timeout).stdout.strip()

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"


class Cluster:
    """Primary + synchronous standby with TLS; ``build()`` starts both, ``stop()`` ends both."""

    def __init__(self, root: Path, pki: Pki, generation: int) -> None:
        self.root = root / f"pg{generation}"
        self.root.mkdir(mode=0o755)
        os.chown(self.root, pwd.getpwnam("postgres").pw_uid, pwd.getpwnam("postgres").pw_gid)
        self.pki = pki
        self.primary = Server("primary", self.root, PRIMARY_ADDR)
        self.standby = Server("standby", self.root, STANDBY_ADDR)
        self.password = "pw-" + secrets.token_urlsafe(18)
        self.replicator_password = "rp-" + secrets.token_urlsafe(18)
        self.failed_over = False

    # -- build ----------------------------------------------------------------------------------

    def build(self) -> None:
        pg = pwd.getpwnam("postgres")
        p = self.primary
        p.sockdir.mkdir(mode=0o700)
        os.chown(p.sockdir, pg.pw_uid, pg.pw_gid)
        sh(as_postgres([_pg("initdb"), "-D", p.data, "-U", "postgres", "--auth-local=peer",
                        "--auth-host=reject", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"]), timeout=120)
        for src, name, mode in ((self.pki.server_crt, "server.crt", 0o644),
                                (self.pki.server_key, "server.key", 0o600)):
            dst = p.data / name
            dst.write_bytes(src.read_bytes())
            os.chown(dst, pg.pw_uid, pg.pw_gid)
            os.chmod(dst, mode)
        with open(p.data / "postgresql.conf", "a") as f:
            f.write(
                "\n# twofa fleet tests\n"
                f"port = {PORT}\n"
                "ssl = on\n"
                "ssl_cert_file = 'server.crt'\n"
                "ssl_key_file = 'server.key'\n"
                "ssl_min_protocol_version = 'TLSv1.2'\n"
                "password_encryption = 'scram-sha-256'\n"
                "wal_level = replica\n"
                "max_wal_senders = 4\n"
                "hot_standby = on\n"
                "max_connections = 100\n"
                "shared_buffers = 16MB\n"
                "synchronous_commit = on\n"
                "fsync = off\n"  # the tests kill processes, never the machine: the page cache stays
                "log_connections = on\n"
                "log_line_prefix = '%m [%p] %q%u@%d '\n"
                "include 'node.conf'\n"
            )
        self._write_node_conf(p, sync_names="")
        (p.data / "pg_hba.conf").write_text(
            "# twofa fleet tests: TLS + SCRAM only over the network\n"
            "local   all          postgres                 peer\n"
            f"hostssl {DATABASE:<12} {ROLE:<12} 10.231.0.0/24 scram-sha-256\n"
            "hostssl replication  replicator   10.231.0.0/24 scram-sha-256\n"
        )
        p.start()
        p.psql(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{self.password}'")
        p.psql(f"CREATE ROLE replicator LOGIN REPLICATION PASSWORD '{self.replicator_password}'")
        p.psql(f"CREATE DATABASE {DATABASE} OWNER {ROLE}")

        s = self.standby
        s.sockdir.mkdir(mode=0o700)
        os.chown(s.sockdir, pg.pw_uid, pg.pw_gid)
        conninfo = (f"host={PRIMARY_ADDR} port={PORT} user=replicator "
                    f"password={self.replicator_password} sslmode=verify-full "
                    f"sslrootcert={self.pki.ca} application_name=twofa-standby")
        sh(in_ns(DB_NS, as_postgres([_pg("pg_basebackup"), "-D", s.data, "-R", "-X", "stream",
                                     "-c", "fast", "--no-sync", "-d", conninfo])), timeout=120)
        self._write_node_conf(s, sync_names="")
        s.start()
        # Synchronous from now on: every commit on the primary waits for the standby.
        p.psql("ALTER SYSTEM SET synchronous_standby_names = '*'")
        p.psql("SELECT pg_reload_conf()")
        self.wait_sync()

    def _write_node_conf(self, server: Server, sync_names: str) -> None:
        pg = pwd.getpwnam("postgres")
        path = server.data / "node.conf"
        path.write_text(
            f"listen_addresses = '{server.addr}'\n"
            f"unix_socket_directories = '{server.sockdir}'\n"
            f"synchronous_standby_names = '{sync_names}'\n"
        )
        os.chown(path, pg.pw_uid, pg.pw_gid)

    def wait_sync(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            state = self.primary.query(
                "SELECT application_name || ':' || state || ':' || sync_state "
                "FROM pg_stat_replication", timeout=10)
            setting = self.primary.query("SHOW synchronous_standby_names", timeout=10)
            if state == "twofa-standby:streaming:sync" and setting == "*":
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"standby not synchronous within {timeout}s: pg_stat_replication={state!r}, "
                    f"synchronous_standby_names={setting!r}\n"
                    f"standby log:\n{self.standby.log_text()}"
                )
            time.sleep(0.1)

    # -- failover -------------------------------------------------------------------------------

    def promote_standby(self) -> None:
        self.failed_over = True
        self.standby.pg_ctl("promote", "-w", "-t", "30")
        assert self.standby.query("SELECT pg_is_in_recovery()") == "f", "standby still in recovery"

    # -- inspection -----------------------------------------------------------------------------

    def current_primary(self) -> Server:
        return self.standby if self.failed_over else self.primary

    def dump(self) -> str:
        """``pg_dump`` of the twofa database (plain SQL, data included) from the current
        primary."""
        server = self.current_primary()
        return sh(as_postgres([_pg("pg_dump"), "-h", server.sockdir, "-p", PORT, "-d", DATABASE,
                               "--no-owner"]), timeout=120).stdout

    def healthy(self) -> bool:
        if self.failed_over:
            return False
        if self.primary.postmaster_pid() is None or self.standby.postmaster_pid() is None:
            return False
        try:
            self.wait_sync(timeout=5)
            return self.primary.query("SHOW synchronous_commit", timeout=5) == "on"
        except (AssertionError, subprocess.TimeoutExpired):  # e.g. left frozen by a crash
            return False

    def stop(self) -> None:
        for server in (self.primary, self.standby):
            server.stop()
