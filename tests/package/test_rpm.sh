#!/usr/bin/env bash
# The RPM spec builds with rpmbuild (Debian's package rpm) from the release binaries, and the
# package holds the expected layout. Installing it needs an RPM-based system: not tried here.
#
#   tests/package/test_rpm.sh          (builds target/release first; root only to apt-get rpm)
set -euo pipefail
cd "$(dirname "$0")/../.."
export LC_ALL=C

if ! command -v rpmbuild >/dev/null; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends rpm
    else
        echo "error: rpmbuild is needed (apt-get install rpm)" >&2
        exit 1
    fi
fi
. packaging/builder.sh   # cargo as the user who builds, never root's on their tree
builder_init
builder_cargo build --release --locked -q -p pam_twofa -p twofa-enroll -p twofa-deliver -p twofa-store

top=$(builder_run mktemp -d /tmp/twofa-rpm.XXXXXX)
trap 'rm -rf "$top"' EXIT
version=$(sed -n '/^\[workspace\.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
builder_run timeout 300 rpmbuild -bb --define "_topdir $top" --define "twofa_src $PWD" \
    --define "twofa_version $version" packaging/twofa.spec >"$top/rpmbuild.log" 2>&1 || {
    cat "$top/rpmbuild.log"
    echo "rpm: 0 passed, 1 failed"
    exit 1
}
rpm=$(find "$top/RPMS" -name "twofa-$version-1.*.rpm")
passed=0 failed=0
expect() { # expect DESCRIPTION COMMAND...
    if "${@:2}"; then passed=$((passed + 1)); echo "ok - $1"; else failed=$((failed + 1)); echo "not ok - $1"; fi
}
list=$(rpm -qlvp "$rpm")
has() { grep -Eq "$1" <<<"$list"; }
expect "built $(basename "$rpm")" test -f "$rpm"
expect "module in the PAM directory" has ' /usr/lib64/security/pam_twofa\.so$'
expect "CLI" has '^-rwxr-xr-x .* /usr/bin/twofa-enroll$'
expect "delivery program where the module runs it" has ' /usr/lib/twofa/twofa-deliver$'
expect "fleet store helper where the module runs it" has '^-rwxr-xr-x .* /usr/lib/twofa/twofa-store$'
expect "storage directories 0700 root" test "$(grep -cE '^drwx------ +[0-9]+ root +root .* /var/lib/twofa(/users|/state|/lock)?$' <<<"$list")" = 4
expect "policy is a noreplace config file" sh -c "rpm -qpc '$rpm' | grep -qx /etc/twofa/twofa.toml \
    && rpm -qp --qf '[%{FILENAMES} %{FILEFLAGS:fflags}\n]' '$rpm' | grep -q '^/etc/twofa/twofa.toml cn'"
expect "man pages" has ' /usr/share/man/man8/pam_twofa\.8'
expect "examples" has ' /usr/share/doc/twofa/examples/pam.d/sshd$'
expect "%pre makes the system user" sh -c "rpm -qp --scripts '$rpm' | grep -q 'useradd -r -g twofa -d /nonexistent'"
echo "rpm: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
