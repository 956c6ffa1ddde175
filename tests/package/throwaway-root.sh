#!/usr/bin/env bash
# Runs a command as root in a throwaway copy of this machine, so that the package tiers can
# install, upgrade, remove and purge twofa on a machine where an admin has installed it, and
# leave that installation, its policy and its enrollments exactly as they were, with no moment
# in which a live PAM stack names a missing module.
#
# The copy: in a private mount namespace, an overlayfs per real filesystem (the machine's / and
# any other disk mounted below it) whose lower layer is the machine's own files, read only, and
# whose upper layer is a tmpfs; /proc, /sys, a private /dev (its own /dev/log and pts), a fresh
# /run and /tmp; entered with chroot. dpkg's database, /etc/pam.d, /etc/twofa, /var/lib/twofa,
# users made with useradd: every write lands in the tmpfs and is gone when the command ends.
# The network namespace is the machine's (127.0.0.1 servers work as usual).
#
#   tests/package/throwaway-root.sh [--without-twofa] CMD [ARGS...]
#       CMD runs in the copy, in the same working directory. --without-twofa: the machine's own
#       twofa installation (if any) is purged in the copy first, so the command starts clean.
#       Before and after, the machine's /etc/twofa, /var/lib/twofa, /etc/pam.d and dpkg status
#       are fingerprinted; a difference is an error, whatever the command's result.
#   tests/package/throwaway-root.sh --check        can a throwaway root be made here? (quick)
#   tests/package/throwaway-root.sh --fingerprint  print the fingerprint (tests/run uses it)
set -euo pipefail

# What the tiers promise to leave alone: names, types, modes, owners, sizes and contents.
fingerprint() {
    local d
    for d in /etc/twofa /var/lib/twofa /etc/pam.d; do
        if [ -e "$d" ]; then
            find "$d" -printf '%p %y %m %U:%G %s\n' | LC_ALL=C sort
            find "$d" -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum
        else
            echo "$d absent"
        fi
    done
    sha256sum /var/lib/dpkg/status
}

# Filesystems that are not files on a disk: mounted afresh or bound, never overlaid.
pseudo_fs='^(proc|sysfs|cgroup|cgroup2|devtmpfs|devpts|tmpfs|mqueue|hugetlbfs|securityfs|debugfs|tracefs|fusectl|configfs|pstore|bpf|autofs|binfmt_misc|efivarfs|rpc_pipefs|nsfs|ramfs|squashfs|fuse\..*)$'

# Inside the private mount namespace: build the copy in $1 and run the rest in it.
inside() {
    local w=$1 without_twofa=$2 cwd=$3
    shift 3
    mount -t tmpfs -o mode=0700 twofa-e2e-root "$w"
    local root=$w/root n=0 target fstype
    mkdir "$root"
    # / first, then each disk filesystem mounted below it, in findmnt's (parent first) order.
    while read -r target fstype; do
        case $target in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*|/run|/run/*|/tmp|/tmp/*) continue ;; esac
        case $target in *\\*) continue ;; esac          # an escaped name (spaces): left out
        [[ $fstype =~ $pseudo_fs ]] && continue
        n=$((n + 1))
        mkdir -p "$w/layer$n/upper" "$w/layer$n/work"
        [ -d "$root$target" ] || continue               # a mount point the copy can't show
        mount -t overlay "twofa-e2e-layer$n" \
            -o "lowerdir=$target,upperdir=$w/layer$n/upper,workdir=$w/layer$n/work" "$root$target"
    done < <(findmnt -rn -o TARGET,FSTYPE --submounts /)

    mount -t proc proc "$root/proc"
    mount --rbind /sys "$root/sys"
    mount -t tmpfs -o mode=0755 twofa-e2e-dev "$root/dev"
    local node
    for node in null zero full random urandom tty; do
        touch "$root/dev/$node"
        mount --bind "/dev/$node" "$root/dev/$node"
    done
    mkdir "$root/dev/pts" "$root/dev/shm"
    mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$root/dev/pts"
    ln -s pts/ptmx "$root/dev/ptmx"
    mount -t tmpfs -o mode=1777 shm "$root/dev/shm"
    ln -s /proc/self/fd "$root/dev/fd"
    ln -s /proc/self/fd/0 "$root/dev/stdin"
    ln -s /proc/self/fd/1 "$root/dev/stdout"
    ln -s /proc/self/fd/2 "$root/dev/stderr"
    mount -t tmpfs -o mode=0755 run "$root/run"
    mkdir -m 1777 "$root/run/lock"
    mount -t tmpfs -o mode=1777 tmp "$root/tmp"

    if [ "$without_twofa" = yes ]; then
        chroot "$root" /bin/sh -c '
            s=$(dpkg-query -W -f="\${Status}" twofa 2>/dev/null || true)
            case $s in ""|*not-installed) ;; *) DEBIAN_FRONTEND=noninteractive dpkg --purge twofa >/dev/null 2>&1 ;; esac
            rm -rf /etc/twofa /var/lib/twofa' </dev/null
    fi
    chroot "$root" /bin/sh -c 'cd "$1" && shift && exec "$@"' sh "$cwd" "$@"
}

if [ "${1:-}" = --inside ]; then
    shift
    inside "$@"
    exit
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "error: a throwaway root needs root (mount namespaces, overlayfs, chroot)" >&2
    exit 1
fi
case ${1:-} in
--fingerprint)
    fingerprint
    exit 0
    ;;
--check)
    probe=$(mktemp -d /tmp/twofa-e2e-root.XXXXXX)
    trap 'rm -rf "$probe"' EXIT
    if ! unshare --mount --propagation private bash -c '
            mount -t tmpfs tmpfs "$1" && mkdir "$1/u" "$1/w" "$1/r" &&
            mount -t overlay overlay -o "lowerdir=/,upperdir=$1/u,workdir=$1/w" "$1/r" &&
            test -x "$1/r/bin/sh"' sh "$probe" 2>"$probe.err"; then
        echo "error: can't make a throwaway root here (a private mount namespace with an overlayfs over /): $(tr '\n' ' ' <"$probe.err")" >&2
        echo "hint: the package tiers need it; run the rest with: sudo tests/run -k ''" >&2
        rm -f "$probe.err"
        exit 1
    fi
    rm -f "$probe.err"
    exit 0
    ;;
esac

without_twofa=no
if [ "${1:-}" = --without-twofa ]; then
    without_twofa=yes
    shift
fi
[ $# -gt 0 ] || { echo "usage: $0 [--without-twofa] CMD [ARGS...]" >&2; exit 2; }

w=$(mktemp -d /tmp/twofa-e2e-root.XXXXXX)
trap 'rmdir "$w" 2>/dev/null || true' EXIT
fingerprint >"$w.before"
set +e
unshare --mount --propagation private "$0" --inside "$w" "$without_twofa" "$PWD" "$@"
rc=$?
set -e
fingerprint >"$w.after"
if ! cmp -s "$w.before" "$w.after"; then
    echo "error: the throwaway root leaked: this machine's /etc/twofa, /var/lib/twofa, /etc/pam.d or dpkg status changed:" >&2
    diff "$w.before" "$w.after" >&2 || true
    rm -f "$w.before" "$w.after"
    exit 1
fi
rm -f "$w.before" "$w.after"
exit "$rc"
