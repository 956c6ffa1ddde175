#!/usr/bin/env bash
# Who runs cargo, and which cargo: the one rule for every script of twofa that builds.
#
# Under sudo (SUDO_USER set and not root) cargo runs as SUDO_USER, with that user's own
# toolchain (rustup in their account), and writes only that user's target/: root never runs
# the invoking user's toolchain, build scripts or proc macros, and never leaves root-owned
# files in their tree. Only apt, dpkg and the end-to-end tests run as root. As root without
# sudo, or `sudo` typed by root, root's own toolchain is used: sudo's secure_path has no
# ~/.cargo/bin, so cargo is looked up in root's home as well as on PATH.
#
# Sourced by packaging/install.sh, packaging/build-deb.sh, tests/run and the test tiers, which
# call builder_init once and then builder_cargo ARGS / builder_run CMD ARGS. Run directly:
#
#   packaging/builder.sh --describe       who builds, with which cargo (one line each)
#   packaging/builder.sh cargo ARGS...    cargo as the builder (tests/e2e uses this)
#   packaging/builder.sh run CMD ARGS...  any command as the builder
#
# Errors are one line `error: ...` plus a `hint:` saying what to run, exit status 1.

# The oldest toolchain the workspace builds with (Cargo.toml's rust-version).
builder_min_version() {
    local toml
    toml="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/Cargo.toml"
    sed -n 's/^rust-version *= *"\([0-9.]*\)"/\1/p' "$toml" | head -n1
}

builder_fail() { # builder_fail MESSAGE HINT
    echo "error: $1" >&2
    [ -z "${2:-}" ] || echo "hint: $2" >&2
    return 1
}

# version_at_least HAVE WANT: both dotted, e.g. 1.95.0 1.85
version_at_least() {
    local have=$1 want=$2 h w i
    IFS=. read -r -a h <<<"$have"
    IFS=. read -r -a w <<<"$want"
    for i in 0 1 2; do
        if [ "${h[$i]:-0}" -gt "${w[$i]:-0}" ]; then return 0; fi
        if [ "${h[$i]:-0}" -lt "${w[$i]:-0}" ]; then return 1; fi
    done
    return 0
}

# Runs a command as the builder, with a clean environment that has the builder's toolchain on
# PATH (and CARGO_HOME/RUSTUP_HOME where their login shell sets them). A few variables the
# build and the tiers pass on are kept; nothing else of root's environment reaches cargo.
builder_run() {
    if [ "$BUILDER_USER" = "$(id -un)" ]; then
        PATH="$BUILDER_PATH" "$@"
        return
    fi
    local keep=() v
    for v in CARGO_TARGET_DIR CARGO_TERM_COLOR CARGO_BUILD_JOBS RUSTFLAGS SOURCE_DATE_EPOCH \
        TWOFA_DEB_VERSION TWOFA_DEB_OUT FUZZ_SECONDS TERM LANG LC_ALL CI; do
        [ -z "${!v+x}" ] || keep+=("$v=${!v}")
    done
    [ -z "$BUILDER_CARGO_HOME" ] || keep+=("CARGO_HOME=$BUILDER_CARGO_HOME")
    [ -z "$BUILDER_RUSTUP_HOME" ] || keep+=("RUSTUP_HOME=$BUILDER_RUSTUP_HOME")
    runuser -u "$BUILDER_USER" -- env -i HOME="$BUILDER_HOME" USER="$BUILDER_USER" \
        LOGNAME="$BUILDER_USER" PATH="$BUILDER_PATH" "${keep[@]}" "$@"
}

builder_cargo() { builder_run "$BUILDER_CARGO" "$@"; }

# Finds cargo for the account that builds; sets BUILDER_USER, BUILDER_HOME, BUILDER_CARGO,
# BUILDER_PATH, BUILDER_CARGO_HOME, BUILDER_RUSTUP_HOME. Fails with what to run instead.
builder_init() {
    local me entry cargo="" found version min
    me=$(id -un)
    BUILDER_USER=$me
    if [ "$(id -u)" -eq 0 ] && [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
        BUILDER_USER=$SUDO_USER
    fi
    entry=$(getent passwd "$BUILDER_USER") \
        || builder_fail "no account named '$BUILDER_USER' (from SUDO_USER)" "" || return 1
    BUILDER_HOME=$(cut -d: -f6 <<<"$entry")
    BUILDER_CARGO_HOME=""
    BUILDER_RUSTUP_HOME=""

    if [ "$BUILDER_USER" = "$me" ]; then
        # Our own toolchain: PATH, then CARGO_HOME, then ~/.cargo (sudo's secure_path drops it).
        cargo=$(command -v cargo 2>/dev/null || true)
        [ -n "$cargo" ] || [ -z "${CARGO_HOME:-}" ] || [ ! -x "$CARGO_HOME/bin/cargo" ] \
            || cargo=$CARGO_HOME/bin/cargo
        [ -n "$cargo" ] || [ ! -x "$BUILDER_HOME/.cargo/bin/cargo" ] \
            || cargo=$BUILDER_HOME/.cargo/bin/cargo
        BUILDER_CARGO_HOME=${CARGO_HOME:-}
        BUILDER_RUSTUP_HOME=${RUSTUP_HOME:-}
    else
        # The invoking user's toolchain, as their login shell sets it up (rustup's
        # ~/.cargo/env in ~/.profile), else rustup's default place in their home.
        found=$(timeout 20 runuser -l "$BUILDER_USER" -c \
            'printf "%s\n%s\n%s\n" "$(command -v cargo)" "${CARGO_HOME:-}" "${RUSTUP_HOME:-}"' \
            </dev/null 2>/dev/null | tail -n 3 || true)
        if [ -n "$found" ]; then
            { read -r cargo || true; read -r BUILDER_CARGO_HOME || true
              read -r BUILDER_RUSTUP_HOME || true; } <<<"$found"
            case $cargo in /*) ;; *) cargo="" ;; esac
        fi
        [ -n "$cargo" ] || [ ! -x "$BUILDER_HOME/.cargo/bin/cargo" ] \
            || cargo=$BUILDER_HOME/.cargo/bin/cargo
    fi
    min=$(builder_min_version)
    if [ -z "$cargo" ]; then
        if [ "$BUILDER_USER" = root ]; then
            builder_fail "no Rust toolchain (cargo >= $min) on PATH or in ~root/.cargo/bin" \
                "install Rust with rustup (https://rustup.rs) as root, or run this with sudo from the account that has it"
        else
            builder_fail "no Rust toolchain (cargo >= $min) for $BUILDER_USER: twofa builds as the user who ran sudo, with that user's own toolchain" \
                "as $BUILDER_USER (not root), install Rust with rustup (https://rustup.rs), open a new shell, then run the same sudo command again"
        fi
        return 1
    fi
    BUILDER_CARGO=$cargo
    BUILDER_PATH="$(dirname "$cargo"):/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
    version=$(builder_run "$BUILDER_CARGO" --version 2>/dev/null | sed -n 's/^cargo \([0-9][0-9.]*\).*/\1/p')
    if [ -z "$version" ]; then
        builder_fail "$BUILDER_CARGO does not run as $BUILDER_USER (cargo --version failed)" \
            "as $BUILDER_USER, check that 'cargo --version' works (rustup default stable)"
        return 1
    fi
    if ! version_at_least "$version" "$min"; then
        builder_fail "cargo $version at $BUILDER_CARGO is older than $min, which twofa needs" \
            "as $BUILDER_USER: rustup update stable"
        return 1
    fi
    BUILDER_VERSION=$version
}

# The tree must be the builder's to write: cargo's target/ goes there. Fails with the fix.
builder_check_tree() { # builder_check_tree REPO
    local repo=$1 foreign
    if [ "$BUILDER_USER" != "$(id -un)" ] && ! runuser -u "$BUILDER_USER" -- test -w "$repo"; then
        builder_fail "$BUILDER_USER can't write to $repo (cargo's target/ goes there)" \
            "build from a checkout that $BUILDER_USER owns"
        return 1
    fi
    if [ -d "$repo/target" ]; then
        foreign=$(find "$repo/target" -maxdepth 3 ! -user "$BUILDER_USER" -print -quit 2>/dev/null)
        if [ -n "$foreign" ]; then
            builder_fail "$foreign belongs to $(stat -c %U "$foreign"), not to $BUILDER_USER, who builds (an earlier build as another user?)" \
                "chown -R $BUILDER_USER: $repo/target"
            return 1
        fi
    fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    builder_init || exit 1
    case ${1:-} in
    --describe)
        echo "builder: $BUILDER_USER"
        echo "cargo: $BUILDER_CARGO (cargo $BUILDER_VERSION)"
        ;;
    cargo)
        shift
        builder_cargo "$@"
        ;;
    run)
        shift
        builder_run "$@"
        ;;
    *)
        echo "usage: packaging/builder.sh --describe | cargo ARGS... | run CMD ARGS..." >&2
        exit 2
        ;;
    esac
fi
