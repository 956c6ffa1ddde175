"""A slow /dev/log reader in private namespaces, for tests/e2e/test_syslog_loss.py.

Run as ``unshare -m -n /usr/bin/python3 slow_syslog.py WORKDIR OUTFILE DELAY_MS QLEN`` (a
private mount namespace, private propagation: util-linux's default, and a private network
namespace). It sets ``net.unix.max_dgram_qlen`` to QLEN in its own network namespace (the
queue length of a Unix socket is taken from its creator's namespace when it is created), gives
its mount namespace a tmpfs on /run (pam_twofa's lost-line counter lands there, not on the
host's /run) and a /dev of its own (a tmpfs of symlinks into the host's /dev, bind-mounted
under WORKDIR, plus this reader's socket as /dev/log), then reads one datagram every DELAY_MS
milliseconds, appending each as one line to OUTFILE. Processes started in its mount namespace
(``nsenter -t PID -m``) log to it; the host's /dev, /run and sysctls are never touched.

It prints ``ready`` on stdout once the socket is bound, and stops on SIGTERM.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time


def private_dev(workdir: str) -> None:
    hostdev = os.path.join(workdir, "hostdev")
    os.makedirs(hostdev, exist_ok=True)
    subprocess.run(["mount", "--rbind", "/dev", hostdev], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "twofa-e2e-dev", "/dev"], check=True)
    for name in os.listdir(hostdev):
        if name != "log":
            os.symlink(os.path.join(hostdev, name), os.path.join("/dev", name))


def main() -> None:
    workdir, outfile, delay_ms, qlen = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    with open("/proc/sys/net/unix/max_dgram_qlen", "w") as f:
        f.write(str(qlen))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "twofa-e2e-run", "/run"], check=True)
    private_dev(workdir)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("/dev/log")
    os.chmod("/dev/log", 0o666)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("ready", flush=True)
    with open(outfile, "a", encoding="utf-8") as out:
        while True:
            data = sock.recv(65536)
            out.write(data.decode("utf-8", "replace").replace("\n", " ").rstrip("\0") + "\n")
            out.flush()
            time.sleep(delay_ms / 1000)


if __name__ == "__main__":
    main()
