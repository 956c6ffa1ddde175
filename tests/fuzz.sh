#!/usr/bin/env bash
# Fuzzes twofa's parsers for a short while: each cargo-fuzz target of fuzz/ runs for
# FUZZ_SECONDS (default 20) from the committed corpus and regressions, and any crash or failed
# check fails the script. Needs a nightly toolchain (`cargo +nightly`) and cargo-fuzz (installed
# from crates.io if missing). Without them it says so and exits 0: `cargo test` replays the
# whole corpus on stable anyway (twofa-core/tests/fuzz_corpus.rs and, for smtp_reply,
# twofa-deliver/tests/fuzz_corpus.rs: the same checks).
#
#   tests/fuzz.sh                      every target, 20 s each
#   FUZZ_SECONDS=300 tests/fuzz.sh state   one target, longer
#
# New inputs go to fuzz/corpus-run/<target>/ (not committed); a crashing input is written to
# fuzz/corpus-run/artifacts/<target>/. To keep one: minimize it
# (`cargo +nightly fuzz tmin <target> <file>`), fix the bug, and add it to
# fuzz/regressions/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-20}"
case "$seconds" in
    '' | *[!0-9]*)
        echo "error: FUZZ_SECONDS must be a whole number of seconds, not '$seconds'" >&2
        exit 2
        ;;
esac
all=(config enrollment state otpauth_uri concat_split store_wire google_authenticator smtp_reply)
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=("${all[@]}")

stable_only() {
    echo "fuzz: $1; not fuzzing. The corpus is replayed on stable by cargo test" \
        "(twofa-core/tests/fuzz_corpus.rs, twofa-deliver/tests/fuzz_corpus.rs)."
    exit 0
}

cargo +nightly --version >/dev/null 2>&1 || stable_only "no nightly toolchain (cargo +nightly)"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked || stable_only "cargo-fuzz could not be installed"
fi

cd fuzz
echo "== cargo +nightly fuzz build"
# Bounded like the runs: a build that hangs must not hold CI forever.
timeout 1200 cargo +nightly fuzz build
failed=()
for t in "${targets[@]}"; do
    echo "== fuzzing $t for ${seconds}s"
    mkdir -p "corpus-run/$t" "corpus-run/artifacts/$t"
    # The first directory gets the new inputs; the committed ones are only read. -timeout: an
    # input that takes more than 10 s is a hang, reported like a crash.
    dirs=("corpus-run/$t" "corpus/$t")
    [ ! -d "regressions/$t" ] || dirs+=("regressions/$t")
    if ! timeout $((seconds + 300)) cargo +nightly fuzz run "$t" "${dirs[@]}" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="corpus-run/artifacts/$t/" 2>"corpus-run/$t.log"; then
        tail -n 60 "corpus-run/$t.log" >&2
        failed+=("$t")
        continue
    fi
    grep -E '^(stat::number_of_executed_units|Done [0-9]+ runs)' "corpus-run/$t.log" || true
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "error: fuzzing failed for: ${failed[*]} (inputs in fuzz/corpus-run/artifacts/)" >&2
    exit 1
fi
echo "fuzz: ${targets[*]}: no crash in ${seconds}s each"
