#!/usr/bin/env bash
# Runs every cargo-fuzz target for FUZZ_SECONDS (default 30) each, starting
# from the committed seeds in fuzz/corpus/TARGET. New inputs go to a
# scratch corpus under target/ (libFuzzer writes to the first directory it
# is given), so the committed seeds never change. Installs cargo-fuzz when
# missing. Exits non-zero on any crash; the crashing input is left in
# fuzz/artifacts/TARGET/.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2

SECONDS_EACH=${FUZZ_SECONDS:-30}
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet || exit 1
fi

status=0
# The targets are built with release optimizations but not the release
# profile's fat LTO and single codegen unit (minutes of linking per target
# on a small box; coverage-guided fuzzing gains nothing from them).
export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
for target in $(cargo fuzz list); do
    scratch=target/fuzz-corpus/$target
    mkdir -p "$scratch" "fuzz/corpus/$target"
    echo "fuzz.sh: $target for ${SECONDS_EACH}s"
    log=target/fuzz-$target.log
    # -s none: no sanitizer, so it builds on the stable toolchain.
    if cargo fuzz run -s none "$target" "$scratch" "fuzz/corpus/$target" -- \
        -max_total_time="$SECONDS_EACH" -print_final_stats=1 >"$log" 2>&1; then
        runs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
        grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1
        echo "fuzz.sh: $target ok: ${runs:-?} executions"
    else
        echo "fuzz.sh: $target FAILED; last lines of $log:"
        tail -n 30 "$log"
        status=1
    fi
done
exit $status
