"""Network namespaces of the fleet tier: one for the databases, one per host.

    twofa-e2e-db   bridge br0 (up), 10.231.0.1/24 (primary) and 10.231.0.2/24 (standby) on it;
                   vh1..vh3: host ends of the veth pairs, enslaved to br0
    twofa-e2e-hN   eth0 (the other end of vhN), 10.231.0.1N/24

Every address lives only inside these namespaces: the veth pairs are created with both ends
already in their namespaces (``ip -n twofa-e2e-db link add vhN type veth peer name eth0 netns
twofa-e2e-hN``), so nothing ever appears in the root namespace. The namespaces have no default
route and no link to the outside: traffic flows only between 10.231.0.0/24 addresses.

Removing a namespace removes its veth ends and bridge. Processes still inside one (a frozen
postmaster, a helper) are ours: they are killed by pid first, as ``ip netns pids`` lists them.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import threading
import subprocess
import time
from typing import Iterable, Optional, Sequence

PREFIX = "twofa-e2e-"
DB_NS = PREFIX + "db"
HOST_NS = [f"{PREFIX}h{i}" for i in (1, 2, 3)]
SUBNET = "10.231.0"
PRIMARY_ADDR = f"{SUBNET}.1"
STANDBY_ADDR = f"{SUBNET}.2"
HOST_ADDRS = [f"{SUBNET}.1{i}" for i in (1, 2, 3)]

TIMEOUT = 60
LOG_QUEUE = 1024
CLONE_NEWNET = 0x40000000


def sh(argv: Sequence[str], *, check: bool = True, input: Optional[str] = None,
       timeout: float = TIMEOUT, env: Optional[dict] = None) -> subprocess.CompletedProcess:
    """Runs argv; with check, a non-zero exit is an AssertionError showing the output."""
    proc = subprocess.run(
        list(map(str, argv)), input=input if input is not None else "", text=True,
        capture_output=True, timeout=timeout, env=env,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"`{' '.join(map(str, argv))}` exited {proc.returncode}\n"
            f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
        )
    return proc


def in_ns(ns: str, argv: Sequence[str]) -> list[str]:
    """argv run inside network namespace ``ns``."""
    return ["ip", "netns", "exec", ns, *map(str, argv)]


def namespaces() -> list[str]:
    out = sh(["ip", "netns", "list"]).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def ns_pids(ns: str) -> list[int]:
    proc = sh(["ip", "netns", "pids", ns], check=False)
    return [int(p) for p in proc.stdout.split() if p.isdigit()]


def kill_ns_processes(ns: str, timeout: float = 10.0) -> None:
    """SIGCONT (a frozen postmaster) then SIGKILL, by pid, every process inside ``ns`` (all
    started by this tier: servers, helpers, drivers); waits until none is left."""
    deadline = time.monotonic() + timeout
    while True:
        pids = ns_pids(ns)
        if not pids:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"processes still in namespace {ns} after {timeout}s: {pids}")
        for pid in pids:
            for sig in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        time.sleep(0.05)


def remove_all(names: Optional[Iterable[str]] = None) -> list[str]:
    """Removes our namespaces (all of this tier's fixed names when ``names`` is None, e.g.
    leftovers of a crashed run; never another suite's ``twofa-e2e-*``), killing what runs inside
    first. Returns the names removed."""
    existing = namespaces()
    targets = [n for n in (names if names is not None else [DB_NS, *HOST_NS]) if n in existing]
    for ns in targets:
        kill_ns_processes(ns)
        sh(["ip", "netns", "del", ns])
    return targets


class Network:
    """The namespaces, bridge and veth pairs; ``down()`` removes all of it."""

    def __init__(self) -> None:
        self.created: list[str] = []

    def up(self) -> None:
        remove_all()  # leftovers of an earlier crashed run
        for ns in [DB_NS, *HOST_NS]:
            sh(["ip", "netns", "add", ns])
            self.created.append(ns)
            sh(["ip", "-n", ns, "link", "set", "lo", "up"])
        sh(["ip", "-n", DB_NS, "link", "add", "br0", "type", "bridge"])
        sh(["ip", "-n", DB_NS, "addr", "add", f"{PRIMARY_ADDR}/24", "dev", "br0"])
        sh(["ip", "-n", DB_NS, "addr", "add", f"{STANDBY_ADDR}/24", "dev", "br0"])
        sh(["ip", "-n", DB_NS, "link", "set", "br0", "up"])
        for i, (ns, addr) in enumerate(zip(HOST_NS, HOST_ADDRS), start=1):
            sh(["ip", "-n", DB_NS, "link", "add", f"vh{i}", "type", "veth",
                "peer", "name", "eth0", "netns", ns])
            sh(["ip", "-n", DB_NS, "link", "set", f"vh{i}", "master", "br0"])
            sh(["ip", "-n", DB_NS, "link", "set", f"vh{i}", "up"])
            sh(["ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0"])
            sh(["ip", "-n", ns, "link", "set", "eth0", "up"])
        # The syslog listener's socket is made in here (see socket_in_namespace): room for a
        # burst of 24 logins' lines, where the root namespace's default is 10 datagrams and the
        # module (never blocking) drops a line that finds the queue full.
        sh(in_ns(DB_NS, ["sysctl", "-q", "-w", f"net.unix.max_dgram_qlen={LOG_QUEUE}"]))
        self.wait_forwarding()

    @staticmethod
    def wait_forwarding(timeout: float = 10.0) -> None:
        """Waits until every host's eth0 is up and every bridge port forwards."""
        deadline = time.monotonic() + timeout
        while True:
            ports = json.loads(sh(["bridge", "-n", DB_NS, "-j", "link", "show"]).stdout or "[]")
            states = {p["ifname"]: p.get("state") for p in ports}
            links = {
                ns: json.loads(sh(["ip", "-n", ns, "-j", "link", "show", "eth0"]).stdout)[0]
                .get("operstate")
                for ns in HOST_NS
            }
            if all(states.get(f"vh{i}") == "forwarding" for i in (1, 2, 3)) and all(
                s == "UP" for s in links.values()
            ):
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"network not up within {timeout}s: bridge ports {states}, host links {links}"
                )
            time.sleep(0.05)

    def down(self) -> None:
        remove_all(self.created)
        self.created.clear()


def root_namespace_addresses() -> str:
    """`ip -o addr` of the root namespace (for asserting no private address leaked there)."""
    return sh(["ip", "-o", "addr"]).stdout


def socket_in_namespace(ns: str, family: int, kind: int) -> socket.socket:
    """A socket created inside network namespace ``ns`` (it keeps that namespace's settings,
    e.g. net.unix.max_dgram_qlen), by a short-lived thread that setns()es itself there: the
    rest of the process stays where it is."""
    libc = ctypes.CDLL(None, use_errno=True)
    out: dict = {}

    def run() -> None:
        try:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns into {ns}: {os.strerror(err)}")
            finally:
                os.close(fd)
            out["sock"] = socket.socket(family, kind)
        except BaseException as e:  # handed to the caller
            out["error"] = e

    thread = threading.Thread(target=run, name=f"setns-{ns}")
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["sock"]
