#!/usr/bin/env bash
# The README's first command as an admin with rustup in their own account types it:
# `sudo packaging/build-deb.sh` from an unprivileged user. sudo's secure_path hides the user's
# ~/.cargo/bin and root's toolchain is not theirs, so packaging/builder.sh must find the user's
# toolchain and run cargo as the user, leaving nothing of root's in their tree.
#
# A twofa-e2e-admin-* user gets a copy of this checkout (with the release build already done
# here, so no second full build is paid for) and a sudoers drop-in. Without a toolchain, the
# command fails at once saying what to run; with this machine's toolchain lent read-only
# (bind mounts in a private mount namespace: rustup can't be downloaded here), it finds the
# user's cargo, builds as the user and writes a .deb that the user owns. Removes the user and
# the drop-in, pass or fail.
#
#   sudo tests/package/test_builder.sh        (after a release build: packaging/build-deb.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

if [ "$(id -u)" -ne 0 ]; then
    echo "error: needs root (it creates a test user and a sudoers drop-in)" >&2
    exit 1
fi
export LC_ALL=C
. packaging/builder.sh
builder_init
# The toolchain to lend: the one that builds here (rustup's layout: CARGO_HOME and RUSTUP_HOME).
cargo_home=${BUILDER_CARGO_HOME:-$BUILDER_HOME/.cargo}
rustup_home=${BUILDER_RUSTUP_HOME:-$BUILDER_HOME/.rustup}
for d in "$cargo_home/bin" "$cargo_home/registry" "$rustup_home"; do
    [ -d "$d" ] || { echo "error: $d missing: this test lends a rustup toolchain, and $BUILDER_CARGO is not one" >&2; exit 1; }
done
[ -d target/release ] || { echo "error: no release build to lend (run packaging/build-deb.sh first)" >&2; exit 1; }
command -v sudo >/dev/null && command -v visudo >/dev/null \
    || { echo "error: sudo is needed (apt-get install sudo)" >&2; exit 1; }

passed=0
ok() { passed=$((passed + 1)); echo "ok $passed - $*"; }
fail() {
    echo "not ok - $*" >&2
    echo "builder: $passed passed, 1 failed"
    exit 1
}

suffix=$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
user=twofa-e2e-admin-$suffix
dropin=/etc/sudoers.d/twofa-e2e-admin-$suffix
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    rm -f "$dropin"
    if getent passwd "$user" >/dev/null; then
        pkill -KILL -u "$user" 2>/dev/null
        userdel -r -f "$user" >/dev/null 2>&1
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' INT TERM

useradd -m -s /bin/bash "$user"
home=$(getent passwd "$user" | cut -d: -f6)
printf '%s ALL=(root) NOPASSWD: ALL\n' "$user" >"$dropin.tmp"
chmod 0440 "$dropin.tmp"
visudo -cqf "$dropin.tmp" || fail "sudoers drop-in for $user is valid"
mv "$dropin.tmp" "$dropin"

# The user's checkout: this one's files with their times (so the lent release build is fresh
# for cargo), owned by the user.
mkdir "$home/twofa"
tar -C "$repo" --exclude=./target -cf - . | tar -C "$home/twofa" -xf -
mkdir "$home/twofa/target"
cp -a target/release "$home/twofa/target/release"
chown -R "$user:" "$home/twofa"

# as_admin SCRIPT: a login shell of the user (their PATH, as a terminal would have it).
as_admin() { timeout 900 runuser -l "$user" -c "cd ~/twofa && $1" </dev/null; }

# -- no toolchain in the user's account ------------------------------------------------------
start=$(date +%s)
if out=$(as_admin 'sudo packaging/build-deb.sh' 2>&1); then
    echo "$out"
    fail "without a toolchain of their own, sudo packaging/build-deb.sh fails"
fi
took=$(($(date +%s) - start))
grep -q "^error: no Rust toolchain (cargo >= [0-9.]*) for $user" <<<"$out" \
    && grep -q "^hint: as $user (not root), install Rust with rustup" <<<"$out" || {
    echo "$out"
    fail "it says that $user has no toolchain, and what to run"
}
ok "without a toolchain: 'error: no Rust toolchain ... for $user' and the rustup hint"
[ "$took" -le 5 ] || fail "that is said at once (took ${took}s)"
ok "said within ${took}s, before any apt or cargo work"
[ ! -e "$home/twofa/target/debian" ] || fail "nothing built"
ok "root's toolchain was not used for $user's tree"

# -- the user's own toolchain (this machine's, lent read-only) -------------------------------
# At the same paths as here: cargo's fingerprints hold the registry sources' absolute paths, so
# only there is the lent release build fresh. In the namespace, a tmpfs over the builder's home
# (often 0700) holds a CARGO_HOME that the user owns, with bin/ and registry/ bound read-only,
# and RUSTUP_HOME bound read-only; the user's ~/.profile points at them, as rustup's installer
# would with CARGO_HOME and RUSTUP_HOME set.
{
    printf 'export CARGO_HOME="%s" RUSTUP_HOME="%s"\n' "$cargo_home" "$rustup_home"
    printf 'export PATH="%s/bin:$PATH"\n' "$cargo_home"
} >>"$home/.profile"
touch "$home/marker"
stage=$(mktemp -d /tmp/twofa-e2e-lend.XXXXXX)
export user home cargo_home rustup_home stage BUILDER_HOME
unshare_rc=0
unshare --mount --propagation private bash -euo pipefail -c '
    mkdir "$stage/bin" "$stage/registry" "$stage/rustup"
    mount --bind "$cargo_home/bin" "$stage/bin"
    mount --bind "$cargo_home/registry" "$stage/registry"
    mount --bind "$rustup_home" "$stage/rustup"
    mount -t tmpfs -o mode=0755 twofa-e2e-lend "$BUILDER_HOME"
    install -d -o "$user" -m 0755 "$cargo_home" "$cargo_home/bin" "$cargo_home/registry"
    install -d -m 0755 "$rustup_home"
    for pair in "bin:$cargo_home/bin" "registry:$cargo_home/registry" "rustup:$rustup_home"; do
        mount --bind "$stage/${pair%%:*}" "${pair#*:}"
        mount -o remount,bind,ro "${pair#*:}"
    done
    runuser -l "$user" -c "cd ~/twofa && sudo packaging/builder.sh --describe" </dev/null >"$home/describe.log" 2>&1
    timeout 900 runuser -l "$user" -c "cd ~/twofa && sudo packaging/build-deb.sh" </dev/null >"$home/build.log" 2>&1
' || unshare_rc=$?
rmdir "$stage"/* "$stage" 2>/dev/null || true
if [ "$unshare_rc" -ne 0 ]; then
    cat "$home/describe.log" "$home/build.log" 2>/dev/null || true
    fail "with the lent toolchain, sudo packaging/build-deb.sh builds"
fi
ok "with the user's toolchain, sudo packaging/build-deb.sh builds"
grep -qx "builder: $user" "$home/describe.log" \
    && grep -qx "cargo: $cargo_home/bin/cargo (cargo [0-9.]*)" "$home/describe.log" || {
    cat "$home/describe.log"
    fail "sudo packaging/builder.sh --describe names $user and $cargo_home/bin/cargo"
}
ok "toolchain discovery under sudo: builder $user, cargo $cargo_home/bin/cargo from their login shell"
deb=$(tail -n1 "$home/build.log")
case $deb in "$home/twofa/target/debian/twofa_"*.deb) ;; *) cat "$home/build.log"; fail "the .deb is in $user's target/debian" ;; esac
[ -f "$deb" ] && [ "$(stat -c %U "$deb")" = "$user" ] || fail "the .deb exists and belongs to $user"
ok "$(basename "$deb") written to $user's target/debian, owned by $user"
grep -q '/security/pam_twofa\.so$' <<<"$(dpkg-deb -c "$deb")" || fail "the .deb holds pam_twofa.so"
ok "the .deb holds the module"
foreign=$(find "$home/twofa" ! -user "$user" -print -quit)
[ -z "$foreign" ] || fail "nothing in $user's tree belongs to anyone else ($foreign does)"
ok "nothing in $user's tree belongs to root"
rebuilt=$(find "$home/twofa/target/release/deps" -name 'lib*.rlib' -newer "$home/marker" \
    ! -name 'libtwofa*' ! -name 'libpam_twofa*' -printf '%f\n')
[ -z "$rebuilt" ] || fail "the lent release build was reused, no dependency rebuilt (rebuilt: $rebuilt)"
ok "the lent release build was reused (no dependency rebuilt)"

echo "builder: $passed passed, 0 failed"
