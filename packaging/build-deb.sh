#!/usr/bin/env bash
# Builds the Debian package twofa_<version>_<arch>.deb (release build) with dpkg-deb.
#
#   packaging/build-deb.sh                         -> target/debian/twofa_<version>_<arch>.deb
#   TWOFA_DEB_VERSION=0.1.1 packaging/build-deb.sh  another package version, no source edit
#   TWOFA_DEB_OUT=/tmp/out packaging/build-deb.sh   another output directory
#
# The files come from packaging/install.sh (DESTDIR staging), so the package, install.sh and
# packaging/twofa.spec share one layout. This script adds what a Debian package needs on top:
# gzipped man pages and docs, copyright, changelog, the pam-auth-update profile, maintainer
# scripts, conffiles, md5sums and Depends computed by dpkg-shlibdeps. No root needed to build
# (dpkg-deb --root-owner-group); as root it installs the Debian packages the build needs.
# Prints the path of the .deb on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
umask 022
export LC_ALL=C

maintainer="twofa developers <twofa@example.invalid>"
homepage="https://example.invalid/twofa"

# Who builds, with which toolchain: checked first, before minutes of apt.
. packaging/builder.sh
builder_init

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    need=()
    # dpkg-dev: dpkg-architecture (the multiarch PAM directory) and dpkg-shlibdeps (Depends).
    for p in gcc libpam0g-dev dpkg-dev; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
    done
    if [ "${#need[@]}" -gt 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
    fi
fi
# Nothing below needs root (dpkg-deb --root-owner-group): under sudo, the rest runs as the
# user who ran sudo, with their toolchain, and the .deb lands in their target/ owned by them.
if [ "$BUILDER_USER" != "$(id -un)" ]; then
    builder_check_tree "$repo"
    builder_run "$repo/packaging/build-deb.sh" "$@"
    exit
fi
builder_check_tree "$repo"
for tool in dpkg-deb dpkg-architecture dpkg-shlibdeps; do
    command -v "$tool" >/dev/null || { echo "error: $tool is needed (apt-get install dpkg-dev)" >&2; exit 1; }
done

workspace_version=$(sed -n '/^\[workspace\.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
version=${TWOFA_DEB_VERSION:-$workspace_version}
if ! dpkg --validate-version "$version" 2>/dev/null; then
    echo "error: '$version' is not a Debian version (TWOFA_DEB_VERSION)" >&2
    exit 1
fi
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
out=${TWOFA_DEB_OUT:-$repo/target/debian}
mkdir -p "$out"
out=$(cd "$out" && pwd)

# Reproducible timestamps: the last commit's, else now.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH

work=$(mktemp -d "${TMPDIR:-/tmp}/twofa-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
stage=$work/root

# 1. The files, from install.sh (it runs cargo build --release --locked).
# Without SOURCE_DATE_EPOCH: build scripts (ring's) rerun when it changes, so a release build
# made with it is stale for every other cargo run (tests/run, the bench, the RPM) and the other
# way round. The binaries don't embed the time; the package's timestamps use it below.
env -u SOURCE_DATE_EPOCH DESTDIR="$stage" PREFIX=/usr packaging/install.sh >"$work/install.log" 2>&1 || {
    cat "$work/install.log" >&2
    echo "error: packaging/install.sh failed" >&2
    exit 1
}
pamdir=lib/$multiarch/security
for f in "$pamdir/pam_twofa.so" usr/bin/twofa-enroll usr/lib/twofa/twofa-deliver usr/lib/twofa/twofa-store etc/twofa/twofa.toml; do
    [ -f "$stage/$f" ] || { echo "error: install.sh did not stage /$f" >&2; exit 1; }
done
# /var/lib/twofa is made by postinst (0700, root) and left alone by upgrades and removal:
# enrollments and state are data, not package files.
rm -rf "$stage/var"

# 2. Strip like dh_strip (the release profile keeps symbols), keep the dynamic symbols.
strip --remove-section=.comment --remove-section=.note --strip-unneeded "$stage/$pamdir/pam_twofa.so"
strip --remove-section=.comment --remove-section=.note "$stage/usr/bin/twofa-enroll" \
    "$stage/usr/lib/twofa/twofa-deliver" "$stage/usr/lib/twofa/twofa-store"

# 3. Debian's additions.
doc=$stage/usr/share/doc/twofa
install -d "$doc"
install -m 0644 README.md docs/security.md docs/design.md "$doc/"
install -m 0644 packaging/README.md "$doc/README.Debian"
install -D -m 0644 packaging/pam-config "$stage/usr/share/pam-configs/twofa"
install -D -m 0644 packaging/lintian-overrides "$stage/usr/share/lintian/overrides/twofa"

# copyright: ours, plus the Rust crates linked into the shipped binaries (static linking).
crates=$(builder_cargo tree --locked --offline -e normal,no-proc-macro --prefix none -f '{p} ({l})' \
             -p pam_twofa -p twofa-enroll -p twofa-deliver -p twofa-store 2>/dev/null \
         | sed -e 's/ (\*)$//' -e 's/ (proc-macro)//' | grep -v -e '^twofa' -e '^pam_twofa' \
           -e '^$' | sed -E 's/ \(\/[^)]*\)//' | sort -u || true)
first_year=$(git log --reverse --format=%cd --date=format:%Y 2>/dev/null | head -n1 || true)
last_year=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y)
years=${first_year:-$last_year}
[ "$years" = "$last_year" ] || years="$years-$last_year"
{
    cat <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: twofa
Source: $homepage
Comment: The programs are written in Rust and statically link these crates from crates.io
 (name, version and licence as declared in Cargo.lock's packages):
 .
EOF
    printf '%s\n' "$crates" | sed -e 's/^/  /' -e 's/^  $/ ./'
    cat <<EOF

Files: *
Copyright: $years twofa developers
License: Apache-2.0
 On Debian systems, the full text of the Apache License, Version 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
EOF
} >"$doc/copyright"

# changelog (native package: changelog.gz).
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
{
    printf 'twofa (%s) unstable; urgency=medium\n\n' "$version"
    printf '  * Package built from the twofa source tree, commit %s.\n\n' "$commit"
    printf ' -- %s  %s\n' "$maintainer" "$(date -u -R -d "@$SOURCE_DATE_EPOCH")"
} >"$doc/changelog"

# Policy 12.3: man pages and docs larger than 4 kB are gzipped (-n: no name or time inside).
find "$stage/usr/share/man" -type f -name '*.[0-9]' -exec gzip -9n {} +
gzip -9n "$doc/changelog"
for f in "$doc"/*.md; do
    [ "$(stat -c %s "$f")" -gt 4096 ] && gzip -9n "$f"
done

# 4. Control files.
ctl=$stage/DEBIAN
install -d -m 0755 "$ctl"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$ctl/"
# Every file under /etc is a conffile: an admin's edits survive upgrades.
(cd "$stage" && find etc -type f -printf '/%p\n' | sort) >"$ctl/conffiles"

mkdir -p "$work/shlibs/debian"
printf 'Source: twofa\n\nPackage: twofa\nArchitecture: any\n' >"$work/shlibs/debian/control"
shlibs=$(cd "$work/shlibs" && dpkg-shlibdeps -O --warnings=1 \
    "$stage/$pamdir/pam_twofa.so" "$stage/usr/bin/twofa-enroll" "$stage/usr/lib/twofa/twofa-deliver" \
    "$stage/usr/lib/twofa/twofa-store" \
    | sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || { echo "error: dpkg-shlibdeps found no dependencies" >&2; exit 1; }
# adduser: postinst makes the system user; libpam-runtime: pam-auth-update and /usr/share/pam-configs.
depends="$shlibs, adduser, libpam-runtime (>= 1.0.1-6)"
installed_size=$(du -sk --apparent-size --exclude=DEBIAN "$stage" | cut -f1)

cat >"$ctl/control" <<EOF
Package: twofa
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $installed_size
Depends: $depends
Section: admin
Priority: optional
Homepage: $homepage
Description: one-time codes (TOTP/HOTP) as a second factor for PAM logins
 twofa asks for a one-time code after the password (or after an SSH key) in
 sshd, sudo, su and other PAM services. It contains the PAM module
 pam_twofa.so, twofa-enroll to enroll users from a root shell (QR code,
 recovery codes, status, lockout, HOTP tokens) and twofa-deliver, which sends
 codes by email, Pushover or a script as the system user twofa, and
 twofa-store, which holds enrollments, replay protection and lockout for a
 fleet of hosts in one PostgreSQL database (fleet mode, off by default).
 .
 Enrollments and replay state are root-only files under /var/lib/twofa; a
 code is never spent by a login whose password was wrong, and the prompts do
 not tell a guesser whether the password was right.
 .
 No PAM stack is changed on installation. Example stacks for sshd, sudo, su
 and FTP servers are in /usr/share/doc/twofa/examples; a pam-auth-update
 profile (off by default) adds the module to common-auth.
EOF

(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z \
    | xargs -0 md5sum) >"$ctl/md5sums"
chmod 0644 "$ctl/control" "$ctl/conffiles" "$ctl/md5sums"
find "$stage" -newermt "@$SOURCE_DATE_EPOCH" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} + 2>/dev/null || true

deb=$out/twofa_${version}_${arch}.deb
dpkg-deb -Zxz --root-owner-group --build "$stage" "$deb" >/dev/null
echo "$deb"
