"""The fleet tier's own world, checked before twofa is put in it: if these fail, the fleet tests'
verdicts mean nothing (a "TLS refused" test passes trivially against a server that is down).
"""

from __future__ import annotations

import os
import subprocess

import fleet_net
import fleet_pg
from conftest import report_figure
from fleet_net import HOST_ADDRS, HOST_NS, PRIMARY_ADDR, STANDBY_ADDR, in_ns


def psql_from(ns: str, infra, conninfo: str, sql: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PGPASSWORD=infra.cluster.password, PGCONNECT_TIMEOUT="5")
    return subprocess.run(
        in_ns(ns, [fleet_pg.PG_BIN / "psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql, conninfo]),
        text=True, capture_output=True, timeout=30, env=env,
    )


def conninfo(infra, host: str = PRIMARY_ADDR, ca=None, sslmode: str = "verify-full", extra: str = "") -> str:
    return (f"host={host} port=5432 dbname=twofa user=twofa sslmode={sslmode} "
            f"sslrootcert={ca or infra.pki.ca} {extra}").strip()


def test_every_host_reaches_the_primary_over_verified_tls_from_its_own_address(fleet_net_only):
    infra = fleet_net_only
    for ns, addr in zip(HOST_NS, HOST_ADDRS):
        proc = psql_from(ns, infra, conninfo(infra),
                         "SELECT host(inet_client_addr()), ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert proc.returncode == 0, f"{ns}: {proc.stderr}"
        assert proc.stdout.strip() == f"{addr}|t", f"{ns}: the server saw {proc.stdout.strip()!r}"


def test_the_server_refuses_clear_text_and_an_unrelated_ca_refuses_the_server(fleet_net_only):
    infra = fleet_net_only
    clear = psql_from(HOST_NS[0], infra, conninfo(infra, sslmode="disable"), "SELECT 1")
    assert clear.returncode != 0 and "no encryption" in clear.stderr, clear.stderr
    other = psql_from(HOST_NS[0], infra, conninfo(infra, ca=infra.pki.other_ca), "SELECT 1")
    assert other.returncode != 0 and "certificate verify failed" in other.stderr, other.stderr


def test_two_hosts_connection_string_finds_the_read_write_primary(fleet_net_only):
    infra = fleet_net_only
    both = conninfo(infra, host=f"{STANDBY_ADDR},{PRIMARY_ADDR}", extra="target_session_attrs=read-write")
    proc = psql_from(HOST_NS[1], infra, both, "SELECT host(inet_server_addr()), pg_is_in_recovery()")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{PRIMARY_ADDR}|f", proc.stdout
    standby = psql_from(HOST_NS[1], infra, conninfo(infra, host=STANDBY_ADDR), "SELECT pg_is_in_recovery()")
    assert standby.returncode == 0 and standby.stdout.strip() == "t", standby.stdout + standby.stderr


def test_the_standby_is_synchronous(fleet_net_only):
    cluster = fleet_net_only.cluster
    cluster.wait_sync(timeout=5)
    assert cluster.primary.query("SHOW synchronous_commit") == "on"
    report_figure(f"harness: primary {PRIMARY_ADDR} + synchronous standby {STANDBY_ADDR} "
                  f"(generation {fleet_net_only.generation})")


def test_private_addresses_exist_only_inside_the_namespaces(fleet_net_only):
    root = fleet_net.root_namespace_addresses()
    assert fleet_net.SUBNET + "." not in root, f"a fleet address leaked into the root namespace:\n{root}"
    for ns in HOST_NS:
        routes = fleet_net.sh(["ip", "-n", ns, "route"]).stdout
        assert "default" not in routes, f"{ns} has a way out: {routes}"
