#!/usr/bin/env bash
# Runs the end-to-end suite against the INSTALLED Debian package, in a throwaway root
# (tests/package/throwaway-root.sh): builds the .deb (unless one is given) and the suite's own
# helpers as the user who builds, then, in the copy, installs the package and runs the tests
# with the module named by name (TWOFA_MODULE=pam_twofa.so: libpam finds it in its own
# directory) and the CLI and delivery program from the package. This machine is never changed:
# where twofa is installed, it stays exactly as it was.
# Needs root. Extra arguments go to pytest; TWOFA_E2E_INSTALLED_SELECT="sshd or sudo" narrows
# the run to a pytest -k selection.
#
#   sudo tests/package/e2e-installed.sh
#   sudo TWOFA_DEB=target/debian/twofa_0.1.0_amd64.deb tests/package/e2e-installed.sh -x
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "$(id -u)" -ne 0 ]; then
    echo "error: needs root (it installs the package in a throwaway root and creates test users)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8

if [ "${1:-}" != --in-throwaway-root ]; then
    . packaging/builder.sh
    builder_init
    tests/package/throwaway-root.sh --check
    deb=${TWOFA_DEB:-}
    if [ -z "$deb" ]; then
        echo "== build the package (release, as $BUILDER_USER)"
        deb=$(packaging/build-deb.sh | tail -n1)
    fi
    case $deb in /*) ;; *) deb=$PWD/$deb ;; esac
    # The suite's own helpers, not packaged: the PAM client that records fail-delay requests,
    # and the module with its test-only panic probe (test_unwind.py).
    echo "== cargo build -p twofa-pam-driver; pam_twofa with panic-probe"
    builder_cargo build --locked -q -p twofa-pam-driver
    builder_cargo build --locked -q -p pam_twofa --features panic-probe --target-dir target/panic-probe
    export TWOFA_PANIC_PROBE_MODULE=$PWD/target/panic-probe/debug/libpam_twofa.so
    exec tests/package/throwaway-root.sh --without-twofa "$0" --in-throwaway-root "$deb" "$@"
fi

# -- in the throwaway root -----------------------------------------------------------------
deb=$2
shift 2
echo "== install $deb"
timeout 300 apt-get install -y -q --no-install-recommends "$deb" </dev/null

echo "== end-to-end against the installed package"
export TWOFA_MODULE=pam_twofa.so
export TWOFA_ENROLL=/usr/bin/twofa-enroll
export TWOFA_DELIVER=/usr/lib/twofa/twofa-deliver
# The whole suite by default; TWOFA_E2E_INSTALLED_SELECT narrows it (a pytest -k expression).
select=()
[ -z "${TWOFA_E2E_INSTALLED_SELECT:-}" ] || select=(-k "$TWOFA_E2E_INSTALLED_SELECT")
exec timeout -k 30 "${TWOFA_E2E_INSTALLED_TIMEOUT:-1800}" /usr/bin/python3 -m pytest tests/e2e \
    -p no:cacheprovider "${select[@]}" "$@"
