#!/usr/bin/env bash
# The Debian package, end to end: builds twofa_<v1>.deb and a higher <v2> (whose default
# twofa.toml differs, like a real upstream change) as the user who builds (packaging/builder.sh),
# runs lintian, then, in a throwaway root (tests/package/throwaway-root.sh: an overlay of this
# machine that is discarded afterwards), installs v1, checks the layout, enrolls a
# twofa-e2e-pkg-* user with /usr/bin/twofa-enroll, tries the pam-auth-update profile, logs in
# through a PAM service that names the module by name, edits /etc/twofa/twofa.toml, upgrades
# to v2 non-interactively and checks that enrollment, state and the edited policy are intact
# and in force, removes (files kept) and purges (files deleted, after a message).
#
# This machine is never changed: where twofa is installed, its installation, policy and
# enrollments stay exactly as they were (throwaway-root.sh fingerprints /etc/twofa,
# /var/lib/twofa, /etc/pam.d and dpkg's status before and after, and fails on a difference).
# Bounded by TWOFA_PACKAGE_TEST_TIMEOUT seconds (default 1500).
#
#   sudo tests/package/test_package.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

if [ "$(id -u)" -ne 0 ]; then
    echo "error: the package test needs root (it installs and purges the package in a throwaway root)" >&2
    exit 1
fi
if [ -z "${TWOFA_PACKAGE_TEST_TIMED:-}" ]; then
    export TWOFA_PACKAGE_TEST_TIMED=1
    exec timeout -k 60 "${TWOFA_PACKAGE_TEST_TIMEOUT:-1500}" "$0" "$@"
fi

export DEBIAN_FRONTEND=noninteractive LC_ALL=C
T=120   # bound on each step that runs apt, dpkg or a login

passed=${TWOFA_PACKAGE_PASSED:-0}
ok() { passed=$((passed + 1)); echo "ok $passed - $*"; }
fail() {
    echo "not ok - $*" >&2
    echo "package: $passed passed, 1 failed"
    exit 1
}
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then ok "$what"; else fail "$what"; fi
}
step() { echo "== $*"; }

if [ "${1:-}" != --in-throwaway-root ]; then
    # -- on this machine: preconditions, build, lintian (nothing installed here) -----------
    . packaging/builder.sh
    builder_init
    tests/package/throwaway-root.sh --check
    need=()
    for p in lintian pamtester oathtool dpkg-dev gcc libpam0g-dev util-linux; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
    done
    if [ "${#need[@]}" -gt 0 ]; then
        step "installing ${need[*]}"
        timeout "$T" apt-get update -q
        timeout 600 apt-get install -y -q --no-install-recommends "${need[@]}"
    fi

    v1=$(sed -n '/^\[workspace\.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
    v2=$v1+pkgtest2
    # Under target/ (the builder's): the throwaway root sees the repository, not this /tmp.
    out=$repo/target/package-test
    builder_run rm -rf "$out"
    step "build $v1 and $v2 (release, as $BUILDER_USER)"
    deb1=$(TWOFA_DEB_OUT=$out/v1 packaging/build-deb.sh | tail -n1)
    deb2=$(TWOFA_DEB_VERSION=$v2 TWOFA_DEB_OUT=$out/v2 packaging/build-deb.sh | tail -n1)
    check "built $(basename "$deb1")" test -f "$deb1"
    check "built $(basename "$deb2") without a source edit" \
        sh -c "dpkg-deb -f '$deb2' Version | grep -qx '$v2'"
    # v2's default policy differs from v1's (as when upstream changes a default): the case
    # where dpkg would ask about an admin-edited conffile, unless told to keep it.
    builder_run bash -euo pipefail -c '
        rebuild=$1/v2-tree
        dpkg-deb -R "$2" "$rebuild"
        echo "# a changed default in $3" >>"$rebuild/etc/twofa/twofa.toml"
        (cd "$rebuild" && find . -path ./DEBIAN -prune -o -type f -printf "%P\0" | sort -z \
            | xargs -0 md5sum >DEBIAN/md5sums)
        dpkg-deb -Zxz --root-owner-group --build "$rebuild" "$2" >/dev/null
        rm -rf "$rebuild"' sh "$out" "$deb2" "$v2"

    step "lintian"
    lint=$(builder_run lintian --fail-on error,warning "$deb1" 2>&1) || {
        echo "$lint"
        fail "lintian: no errors and no warnings"
    }
    [ -z "$lint" ] || echo "$lint"
    ok "lintian: no errors and no warnings"

    step "install, upgrade, remove, purge in a throwaway root (this machine's twofa, if any, is left alone)"
    export TWOFA_PACKAGE_PASSED=$passed
    exec tests/package/throwaway-root.sh --without-twofa "$0" --in-throwaway-root \
        "$deb1" "$deb2" "$v1" "$v2"
fi

# -- in the throwaway root -----------------------------------------------------------------
deb1=$2 deb2=$3 v1=$4 v2=$5
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)

status=$(dpkg-query -W -f='${Status}' twofa 2>/dev/null || true)
if [ -n "$status" ] && [ "$status" != "unknown ok not-installed" ]; then
    fail "the throwaway root starts without twofa (it has: $status)"
fi
for d in /etc/twofa /var/lib/twofa; do
    [ ! -e "$d" ] || fail "the throwaway root starts without $d"
done

work=$(mktemp -d /tmp/twofa-e2e-pkg.XXXXXX)
suffix=$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
user=twofa-e2e-pkg-$suffix
service=twofa-e2e-pkg-$suffix
# The throwaway root is discarded as a whole; only the test user's processes need ending.
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    pkill -KILL -u "$user" 2>/dev/null || true
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' INT TERM

# -- install -------------------------------------------------------------------------------

step "install $v1"
# As an admin's script runs it: no terminal, no DEBIAN_FRONTEND (debconf then has no usable
# frontend: a maintainer script that starts one prints "unable to initialize frontend").
timeout "$T" env -u DEBIAN_FRONTEND apt-get install -y -q --no-install-recommends "$deb1" </dev/null >"$work/install.log" 2>&1 || {
    cat "$work/install.log"
    fail "apt-get install ./$(basename "$deb1")"
}
ok "apt-get install ./$(basename "$deb1")"

pamdir=$(dirname "$(dpkg -L libpam-modules | grep '/pam_unix\.so$' | head -n1)")
check "pam_twofa.so is in the PAM module directory ($pamdir)" \
    sh -c "dpkg -L twofa | grep -qx '$pamdir/pam_twofa.so' && test -f '$pamdir/pam_twofa.so'"
check "pam directory is /lib/$multiarch/security" test "$pamdir" = "/lib/$multiarch/security"
check "/usr/bin/twofa-enroll and /usr/lib/twofa/twofa-deliver" \
    test -x /usr/bin/twofa-enroll -a -x /usr/lib/twofa/twofa-deliver
check "/usr/lib/twofa/twofa-store answers the store protocol (settings missing: a backend error)" \
    sh -c "printf 'state x61 1 1\n' | /usr/lib/twofa/twofa-store serve --settings /nonexistent/store.toml | grep -q '^err backend '"
check "/etc/twofa/twofa.toml is a conffile" \
    sh -c "dpkg-query -W -f='\${Conffiles}\n' twofa | grep -q '^ /etc/twofa/twofa.toml '"
for page in man1/twofa-enroll.1 man5/twofa.toml.5 man8/pam_twofa.8; do
    check "man page $page.gz" sh -c "zcat /usr/share/man/$page.gz | grep -q '^\.TH'"
done
check "bash and zsh completion" test -f /usr/share/bash-completion/completions/twofa-enroll \
    -a -f /usr/share/zsh/vendor-completions/_twofa-enroll
check "examples" test -f /usr/share/doc/twofa/examples/pam.d/sshd \
    -a -f /usr/share/doc/twofa/examples/sshd_config.d/twofa.conf
for d in /var/lib/twofa /var/lib/twofa/users /var/lib/twofa/state /var/lib/twofa/lock; do
    check "$d is 0700 root:root" test "$(stat -c '%a %U %G' "$d")" = "700 root root"
done
IFS=: read -r _ _ tuid _ _ thome tshell < <(getent passwd twofa)
check "system user twofa (uid $tuid, home $thome, shell $tshell)" \
    test "$tuid" -lt 1000 -a "$thome" = /nonexistent -a "$tshell" = /usr/sbin/nologin \
    -a ! -e /nonexistent
check "group twofa" sh -c "getent group twofa >/dev/null"
check "pam-auth-update profile installed, not enabled (Default: no)" \
    sh -c "test -f /usr/share/pam-configs/twofa && ! grep -q pam_twofa /etc/pam.d/common-auth"
check "no debconf noise on a non-interactive install" \
    sh -c "! grep -q 'unable to initialize frontend' '$work/install.log'"
check "twofa-enroll check-config accepts the installed policy" \
    sh -c "/usr/bin/twofa-enroll check-config >/dev/null"

# -- enroll, edit the policy ---------------------------------------------------------------

step "enroll $user with /usr/bin/twofa-enroll"
password="pw-$(head -c 12 /dev/urandom | base64 | tr -d '/+=')"
secret=$(head -c 20 /dev/urandom | base32 | tr -d '=')
useradd -m -s /bin/bash "$user"
printf '%s:%s\n' "$user" "$password" | chpasswd
printf '%s\n' "$secret" | timeout "$T" /usr/bin/twofa-enroll enroll "$user" --secret-file - --no-verify \
    >"$work/enroll.log" 2>&1 || { cat "$work/enroll.log"; fail "twofa-enroll enroll"; }
check "enrollment /var/lib/twofa/users/$user.toml (0600)" \
    test "$(stat -c '%a %U' "/var/lib/twofa/users/$user.toml")" = "600 root"

step "edit /etc/twofa/twofa.toml (window = 2)"
sed -i 's/^window = 1$/window = 2/' /etc/twofa/twofa.toml
echo "# edited by an admin (tests/package/test_package.sh)" >>/etc/twofa/twofa.toml
check "edited policy is valid and has window = 2" \
    sh -c "grep -qx 'window = 2' /etc/twofa/twofa.toml && /usr/bin/twofa-enroll check-config >/dev/null"
config_sum=$(sha256sum /etc/twofa/twofa.toml | cut -d' ' -f1)

totp() { oathtool --totp -b -N "$1" "$secret"; }
# login SERVICE PASSWORD CODE: pamtester's exit status; its transcript in $work/login.log.
login() {
    printf '%s\n%s\n' "$2" "$3" | timeout 60 pamtester "$1" "$user" authenticate >"$work/login.log" 2>&1
}

# -- the pam-auth-update profile, in a private mount namespace -----------------------------
# /etc/pam.d, /var/lib/pam and debconf's database are copies bind-mounted over the real ones
# in a namespace of this test's own: the machine's common-auth is never changed.

step "pam-auth-update --enable twofa (private mount namespace)"
if unshare --mount --propagation private true 2>/dev/null; then
    code=$(totp "now - 30 seconds")
    export work user password code
    if unshare --mount --propagation private bash -euo pipefail -c '
        for d in /etc/pam.d /var/lib/pam /var/cache/debconf; do
            copy=$work/ns$(echo "$d" | tr / _)
            mkdir -p "$copy" && cp -a "$d/." "$copy/" && mount --bind "$copy" "$d"
        done
        pam-auth-update --enable twofa </dev/null
        grep -v "^#" /etc/pam.d/common-auth | grep . >"$work/common-auth"
        unix=$(grep -n "pam_unix\.so" "$work/common-auth" | cut -d: -f1)
        deny=$(grep -n "pam_deny\.so" "$work/common-auth" | cut -d: -f1)
        twofa=$(grep -n "required[[:space:]]*pam_twofa\.so" "$work/common-auth" | cut -d: -f1)
        [ -n "$twofa" ] && [ "$unix" -lt "$deny" ] && [ "$deny" -lt "$twofa" ] || {
            cat "$work/common-auth"; echo "pam_twofa.so is not after pam_unix/pam_deny"; exit 1; }
        printf "@include common-auth\naccount required pam_unix.so\n" >/etc/pam.d/twofa-e2e-pkgca
        printf "%s\n%s\n" "$password" "$code" \
            | timeout 60 pamtester twofa-e2e-pkgca "$user" authenticate >"$work/ca-right.log" 2>&1 || {
            cat "$work/ca-right.log"; echo "password + code through common-auth failed"; exit 1; }
        # The documented weakness: after a wrong password no code is asked (pam_deny ends it).
        printf "wrong-password\n123456\n" \
            | timeout 60 pamtester twofa-e2e-pkgca "$user" authenticate >"$work/ca-wrong.log" 2>&1 && {
            echo "a wrong password got in"; exit 1; }
        if grep -qi "verification code" "$work/ca-wrong.log"; then
            echo "a code was asked after a wrong password: update packaging/README.md"; exit 1
        fi
        pam-auth-update --disable twofa </dev/null
        ! grep -q pam_twofa /etc/pam.d/common-auth
    ' >"$work/ns.log" 2>&1; then
        ok "profile puts pam_twofa.so after pam_unix/pam_deny in common-auth; password + code logs in; no code asked after a wrong password; --disable takes it out"
    else
        cat "$work/ns.log"
        fail "pam-auth-update profile"
    fi
    check "the machine's common-auth is unchanged" sh -c "! grep -q pam_twofa /etc/pam.d/common-auth"
else
    echo "skip - no private mount namespace here (unshare --mount refused): profile not tried"
fi

# -- log in through a service that names the module by name --------------------------------

step "log in through /etc/pam.d/$service (pam_twofa.so by name)"
cat >"/etc/pam.d/$service" <<'EOF'
auth    [success=1 default=ignore]  pam_unix.so
auth    required                    pam_twofa.so password_failed config=/etc/twofa/twofa.toml
auth    required                    pam_twofa.so config=/etc/twofa/twofa.toml
auth    optional                    pam_permit.so
account required                    pam_unix.so
EOF
code1=$(totp now)
if login "$service" "$password" "$code1"; then
    ok "password + code (oathtool) log in with $v1"
else
    cat "$work/login.log"
    fail "password + code (oathtool) log in with $v1"
fi
check "state file written" test -f "/var/lib/twofa/state/$user.toml"
snapshot() { (cd /var/lib/twofa && find . -type f -print0 | sort -z | xargs -0 sha256sum); }
snapshot >"$work/before-upgrade"

# -- upgrade -------------------------------------------------------------------------------

step "upgrade to $v2 (conffile kept, no prompt)"
timeout "$T" apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confold \
    "$deb2" </dev/null >"$work/upgrade.log" 2>&1 || { cat "$work/upgrade.log"; fail "upgrade"; }
check "installed version is $v2" test "$(dpkg-query -W -f='${Version}' twofa)" = "$v2"
check "edited /etc/twofa/twofa.toml kept byte for byte" \
    test "$(sha256sum /etc/twofa/twofa.toml | cut -d' ' -f1)" = "$config_sum"
check "new default beside it as twofa.toml.dpkg-dist" \
    sh -c "grep -q 'a changed default in' /etc/twofa/twofa.toml.dpkg-dist"
snapshot >"$work/after-upgrade"
check "every enrollment and state file unchanged" cmp -s "$work/before-upgrade" "$work/after-upgrade"
check "storage still 0700 root" test "$(stat -c '%a %U' /var/lib/twofa/users)" = "700 root"

if login "$service" "$password" "$code1"; then
    fail "the code spent before the upgrade is refused after it (replay state kept)"
fi
ok "the code spent before the upgrade is refused after it (replay state kept)"
# Two steps ahead: accepted only with the edited window = 2 (the default is 1).
if login "$service" "$password" "$(totp 'now + 60 seconds')"; then
    ok "a code two steps ahead logs in: the edited window = 2 is in force after the upgrade"
else
    cat "$work/login.log"
    fail "a code two steps ahead logs in: the edited window = 2 is in force after the upgrade"
fi

# -- remove --------------------------------------------------------------------------------

step "remove"
# Delivery secrets an admin added: not a package file, removed only by purge.
printf '# delivery secrets\n' >/etc/twofa/secrets.toml
chmod 0600 /etc/twofa/secrets.toml
snapshot >"$work/before-remove"
timeout "$T" env -u DEBIAN_FRONTEND apt-get remove -y -q twofa </dev/null >"$work/remove.log" 2>&1 || { cat "$work/remove.log"; fail "remove"; }
cat "$work/remove.log"
check "package removed, configuration left (rc)" \
    test "$(dpkg-query -W -f='${Status}' twofa)" = "deinstall ok config-files"
check "module, CLI, delivery program and profile gone" \
    test ! -e "$pamdir/pam_twofa.so" -a ! -e /usr/bin/twofa-enroll \
    -a ! -e /usr/lib/twofa/twofa-deliver -a ! -e /usr/share/pam-configs/twofa
check "edited policy kept" test "$(sha256sum /etc/twofa/twofa.toml | cut -d' ' -f1)" = "$config_sum"
snapshot >"$work/after-remove"
check "enrollments and state kept" cmp -s "$work/before-remove" "$work/after-remove"
check "prerm warned about /etc/pam.d/$service, which still names pam_twofa.so" \
    grep -q "/etc/pam.d/$service" "$work/remove.log"
check "remove said that purge deletes the data" grep -q "purging the package deletes them" "$work/remove.log"

# -- purge ---------------------------------------------------------------------------------

step "purge"
timeout "$T" env -u DEBIAN_FRONTEND apt-get purge -y -q twofa </dev/null >"$work/purge.log" 2>&1 || { cat "$work/purge.log"; fail "purge"; }
cat "$work/purge.log"
check "no debconf noise on a non-interactive remove or purge" \
    sh -c "! grep -q 'unable to initialize frontend' '$work/remove.log' '$work/purge.log'"
check "purge said it removes /var/lib/twofa" grep -q "twofa: purge: removing /var/lib/twofa" "$work/purge.log"
check "purge said it removes /etc/twofa" grep -q "twofa: purge: removing /etc/twofa" "$work/purge.log"
check "/var/lib/twofa and /etc/twofa gone" test ! -e /var/lib/twofa -a ! -e /etc/twofa
gone() {
    local s
    s=$(dpkg-query -W -f='${Status}' twofa 2>/dev/null || true)
    [ -z "$s" ] || [ "${s% not-installed}" != "$s" ]
}
check "package gone" gone
check "system user twofa kept on purge, as Debian does" sh -c "getent passwd twofa >/dev/null"

echo "package: $passed passed, 0 failed"
