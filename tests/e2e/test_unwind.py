"""A panic inside pam_twofa is caught and denied in a C program that never loaded libgcc_s.

The module carries GCC's unwinder inside itself (pam_twofa/build.rs links ``libgcc_eh.a``)
rather than depending on ``libgcc_s.so.1``, which none of sshd, sudo, su, vsftpd or pamtester
loads: one less shared library to map and relocate on every login. Unwinding is what catches
a panic at the PAM entry point, so these tests check both halves on the real thing:

- the module under test (``TWOFA_MODULE``: the debug build, or the installed package's) has
  no ``libgcc_s`` dependency;
- a build with the test-only ``panic-probe`` feature, whose ``debug_panic`` argument panics in
  the auth hook, denies through pamtester (Debian's, a C program without libgcc_s): pamtester
  reports an authentication failure instead of dying of SIGABRT, and the module logs the
  caught panic.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import MODULE, REPO, TIMEOUT


def needed_libraries(path: Path) -> list[str]:
    """The DT_NEEDED entries of a shared object (readelf -d)."""
    out = subprocess.run(
        ["readelf", "-d", str(path)], capture_output=True, text=True, check=True, timeout=TIMEOUT
    ).stdout
    return [line.split("[", 1)[1].rstrip("]") for line in out.splitlines() if "(NEEDED)" in line]


def module_file(module: Path) -> Path:
    """The file of the module under test: TWOFA_MODULE as given, or for a bare name (the
    installed package's ``pam_twofa.so``) the file libpam loads, from its security directory."""
    if module.is_absolute():
        return module
    for pattern in ("/lib/*/security", "/usr/lib/*/security", "/lib/security", "/usr/lib/security", "/lib64/security"):
        for directory in sorted(glob.glob(pattern)):
            candidate = Path(directory) / module
            if candidate.is_file():
                return candidate
    raise AssertionError(f"{module} is in no PAM module directory")


def test_the_module_does_not_depend_on_libgcc_s():
    needed = needed_libraries(module_file(MODULE))
    assert "libc.so.6" in needed, needed  # the parse found the entries at all
    assert not [n for n in needed if n.startswith("libgcc_s")], needed


def test_pamtester_does_not_load_libgcc_s_itself():
    # Otherwise the panic test below would not show that the module's own unwinder works.
    out = subprocess.run(
        ["ldd", shutil.which("pamtester") or "/usr/bin/pamtester"],
        capture_output=True,
        text=True,
        check=True,
        timeout=TIMEOUT,
    ).stdout
    assert "libpam.so" in out, out
    assert "libgcc_s" not in out, out


@pytest.fixture(scope="module")
def panic_probe_module() -> Path:
    """pam_twofa built with the panic-probe feature, in a target dir of its own: by cargo as the
    user who builds (packaging/builder.sh: never root's cargo on a sudo user's tree), or
    prebuilt where TWOFA_PANIC_PROBE_MODULE names it (the installed-package run, whose
    throwaway root has no toolchain to offer)."""
    prebuilt = os.environ.get("TWOFA_PANIC_PROBE_MODULE")
    if prebuilt:
        module = Path(prebuilt)
    else:
        target = REPO / "target" / "panic-probe"
        subprocess.run(
            [str(REPO / "packaging" / "builder.sh"), "cargo", "build", "--locked", "-p", "pam_twofa",
             "--features", "panic-probe", "--target-dir", str(target)],
            cwd=REPO,
            check=True,
            timeout=900,
        )
        module = target / "debug" / "libpam_twofa.so"
    assert not [n for n in needed_libraries(module) if n.startswith("libgcc_s")]
    return module


def pamtester_with(module: Path, make_user, twofa) -> subprocess.CompletedProcess:
    """pamtester's `authenticate` of a new user through a service whose auth line is
    ``module debug_panic``."""
    user = make_user()
    service = twofa.pam_service(
        f"auth required {module} debug_panic\n"
        "account required pam_permit.so\n"
        "session required pam_permit.so\n"
    )
    return subprocess.run(
        ["pamtester", service, user.name, "authenticate"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def test_a_panic_in_the_module_is_caught_and_denied_in_a_c_program(
    panic_probe_module, make_user, twofa, syslog
):
    proc = pamtester_with(panic_probe_module, make_user, twofa)
    # Killed by a signal would be a negative return code (an abort: the panic escaped).
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Authentication failure" in proc.stderr + proc.stdout, (proc.stdout, proc.stderr)
    syslog.wait_for(r"pam_twofa: internal error \(caught panic\); access denied")
    # The panic message itself is never printed to the program's terminal.
    assert "debug_panic" not in proc.stderr + proc.stdout


def test_without_the_feature_debug_panic_is_an_unknown_argument(make_user, twofa, syslog):
    # The packaged module has no panic switch: the argument is refused like any typo.
    proc = pamtester_with(MODULE, make_user, twofa)
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    line = syslog.wait_for(r"pam_twofa\(twofa-e2e-[0-9a-f]+:auth\)")
    assert "debug_panic" in line and "caught panic" not in line, line
