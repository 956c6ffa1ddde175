#!/usr/bin/env bash
# Builds twofa in release mode and installs it: the PAM module, the CLI and a default policy.
# Touches no PAM stack: adding the module to sshd/sudo is the admin's step (see README).
#
#   sudo packaging/install.sh                 install under / (multiarch PAM directory)
#   DESTDIR=/tmp/stage PREFIX=/usr packaging/install.sh   stage for a package
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=${PREFIX:-/usr}
DESTDIR=${DESTDIR:-}

if [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ]; then
    echo "error: installing needs root; or set DESTDIR to stage the files" >&2
    exit 1
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    need=()
    for p in gcc libpam0g-dev; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
    done
    if [ "${#need[@]}" -gt 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
    fi
fi
# cargo runs as the user who ran sudo, with their toolchain (packaging/builder.sh).
. packaging/builder.sh
builder_init
builder_check_tree "$PWD"
builder_cargo build --release --locked -p pam_twofa -p twofa-enroll -p twofa-deliver -p twofa-store

# The PAM module directory: Debian's multiarch one, else the first that exists.
if command -v dpkg-architecture >/dev/null; then
    pamdir=/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)/security
elif triplet=$(gcc -print-multiarch 2>/dev/null) && [ -n "$triplet" ] && [ -d "/lib/$triplet/security" ]; then
    # Debian without dpkg-dev: /lib64/security exists on amd64 but libpam doesn't look there.
    pamdir=/lib/$triplet/security
elif [ -d /lib64/security ]; then
    pamdir=/lib64/security
else
    pamdir=/lib/security
fi

install -D -m 0644 target/release/libpam_twofa.so "$DESTDIR$pamdir/pam_twofa.so"
install -D -m 0755 target/release/twofa-enroll "$DESTDIR$PREFIX/bin/twofa-enroll"
# The delivery program (email, Pushover, an admin's script) runs outside sshd/sudo, as the
# unprivileged system user 'twofa'.
install -D -m 0755 target/release/twofa-deliver "$DESTDIR$PREFIX/lib/twofa/twofa-deliver"
# The fleet store helper ([store] kind = "postgres"): the database client lives here, never in
# the module; the module runs it per login with a hard deadline.
install -D -m 0755 target/release/twofa-store "$DESTDIR$PREFIX/lib/twofa/twofa-store"
if [ -z "$DESTDIR" ] && ! getent passwd twofa >/dev/null; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin twofa
fi
install -d -m 0755 "$DESTDIR/etc/twofa"
if [ ! -e "$DESTDIR/etc/twofa/twofa.toml" ]; then
    install -m 0644 conf/twofa.toml "$DESTDIR/etc/twofa/twofa.toml"
else
    echo "kept the existing /etc/twofa/twofa.toml"
fi
install -d -m 0700 "$DESTDIR/var/lib/twofa" "$DESTDIR/var/lib/twofa/users" \
    "$DESTDIR/var/lib/twofa/state" "$DESTDIR/var/lib/twofa/lock"
install -D -m 0644 docs/man/twofa-enroll.1 "$DESTDIR$PREFIX/share/man/man1/twofa-enroll.1"
install -D -m 0644 docs/man/pam_twofa.8 "$DESTDIR$PREFIX/share/man/man8/pam_twofa.8"
install -D -m 0644 docs/man/twofa.toml.5 "$DESTDIR$PREFIX/share/man/man5/twofa.toml.5"
install -D -m 0644 completions/twofa-enroll.bash "$DESTDIR$PREFIX/share/bash-completion/completions/twofa-enroll"
install -D -m 0644 completions/_twofa-enroll "$DESTDIR$PREFIX/share/zsh/vendor-completions/_twofa-enroll"
install -d -m 0755 "$DESTDIR$PREFIX/share/doc/twofa/examples"
cp -r conf/. "$DESTDIR$PREFIX/share/doc/twofa/examples/"

cat <<MSG
Installed:
  $pamdir/pam_twofa.so
  $PREFIX/bin/twofa-enroll       (man twofa-enroll, man pam_twofa, man twofa.toml; bash/zsh completion)
  $PREFIX/lib/twofa/twofa-deliver (sends codes by email/Pushover/script, as user twofa)
  $PREFIX/lib/twofa/twofa-store   (fleet mode: the PostgreSQL store helper)
  /etc/twofa/twofa.toml          (policy; check it with: twofa-enroll check-config)
  /var/lib/twofa/                (enrollments and state, root only)
  $PREFIX/share/doc/twofa/examples/   (PAM stacks and sshd drop-in)
No PAM stack was changed. Enroll someone first (twofa-enroll USER), keep a root shell open,
then add the stacks from the README.
MSG
