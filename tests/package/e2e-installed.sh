#!/usr/bin/env bash
# Runs the end-to-end suite against the INSTALLED Debian package: builds the .deb (unless one
# is given), installs it, runs the tests with the module named by name
# (TWOFA_MODULE=pam_twofa.so: libpam finds it in its own directory) and the CLI and delivery
# program from the package, then purges the package, pass or fail.
# Needs root. Extra arguments go to pytest; TWOFA_E2E_INSTALLED_SELECT="sshd or sudo" narrows
# the run to a pytest -k selection.
#
#   sudo tests/package/e2e-installed.sh
#   sudo TWOFA_DEB=target/debian/twofa_0.1.0_amd64.deb tests/package/e2e-installed.sh -x
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "$(id -u)" -ne 0 ]; then
    echo "error: needs root (it installs the package and creates test users)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8

status=$(dpkg-query -W -f='${Status}' twofa 2>/dev/null || true)
if [ -n "$status" ] && [ "$status" != "unknown ok not-installed" ]; then
    echo "error: the package twofa is on this machine ($status); this script purges it" >&2
    exit 1
fi
for d in /etc/twofa /var/lib/twofa; do
    if [ -e "$d" ]; then
        echo "error: $d exists (packaging/install.sh?); purging the package would delete it" >&2
        exit 1
    fi
done

had_twofa_user=no
getent passwd twofa >/dev/null && had_twofa_user=yes
had_twofa_group=no
getent group twofa >/dev/null && had_twofa_group=yes
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    echo "== purge the package"
    timeout 120 dpkg --purge twofa >/dev/null
    [ "$had_twofa_user" = yes ] || userdel twofa >/dev/null 2>&1
    [ "$had_twofa_group" = yes ] || groupdel twofa >/dev/null 2>&1
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' INT TERM

deb=${TWOFA_DEB:-}
if [ -z "$deb" ]; then
    echo "== build the package (release)"
    deb=$(packaging/build-deb.sh | tail -n1)
fi
echo "== install $deb"
case $deb in /*) ;; *) deb=./$deb ;; esac
timeout 300 apt-get install -y -q --no-install-recommends "$deb" </dev/null

# The suite's own test helper (a PAM client that records fail-delay requests), not packaged.
echo "== cargo build -p twofa-pam-driver"
cargo build --locked -q -p twofa-pam-driver

echo "== end-to-end against the installed package"
export TWOFA_MODULE=pam_twofa.so
export TWOFA_ENROLL=/usr/bin/twofa-enroll
export TWOFA_DELIVER=/usr/lib/twofa/twofa-deliver
set +e
# The whole suite by default; TWOFA_E2E_INSTALLED_SELECT narrows it (a pytest -k expression).
select=()
[ -z "${TWOFA_E2E_INSTALLED_SELECT:-}" ] || select=(-k "$TWOFA_E2E_INSTALLED_SELECT")
timeout -k 30 "${TWOFA_E2E_INSTALLED_TIMEOUT:-1800}" /usr/bin/python3 -m pytest tests/e2e \
    -p no:cacheprovider "${select[@]}" "$@"
rc=$?
set -e
exit "$rc"
