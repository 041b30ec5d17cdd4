#!/usr/bin/env bash
# Coverage-guided fuzzing of the decoders that read untrusted bytes (libFuzzer through the
# libfuzzer-sys crate, on stable Rust; tests/README.md says why and how).
#
#   scripts/fuzz.sh [TARGET|all] [BUDGET]
#
# TARGET: one of the targets below, or `all` (the default), one after the other.
# BUDGET: per target; `30s`, `20m`, `2h` is a time, a bare number (`10000000`) a count of
#   executions. Default 30s.
# FUZZ_ARGS: more libFuzzer options, e.g. FUZZ_ARGS="-fork=1 -ignore_crashes=1" to keep going
#   after a crash, or "-jobs=2".
#
# Builds fuzz/ (its own workspace) into target/debug with only zkw's own code instrumented
# (fuzz/instrument.sh), so after `cargo build` it compiles zkw-host and the targets, not the
# dependencies. Seeds: fuzz/corpus/<target>/ (committed, never written). New inputs a run finds:
# target/fuzz/corpus/<target>/ (kept between runs). A crash stops the run, which fails, and
# leaves its input in target/fuzz/artifacts/<target>/; replay it with
# `target/debug/<target> <file>`, then add it as a regression test in the module that crashed.
# Each run's full output: target/fuzz/logs/<target>.log.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
TARGETS=(client_frames txn_entry peer_message log_segment tree_snapshot)

target="${1:-all}"
budget="${2:-30s}"

case "$budget" in
*s) limit=(-max_total_time="${budget%s}") ;;
*m) limit=(-max_total_time="$((${budget%m} * 60))") ;;
*h) limit=(-max_total_time="$((${budget%h} * 3600))") ;;
*[!0-9]* | '')
    echo "fuzz.sh: budget '$budget' is neither a time (30s, 20m, 2h) nor a count" >&2
    exit 2
    ;;
*) limit=(-runs="$budget") ;;
esac

if [ "$target" = all ]; then
    selected=("${TARGETS[@]}")
else
    case " ${TARGETS[*]} " in
    *" $target "*) selected=("$target") ;;
    *)
        echo "fuzz.sh: unknown target '$target' (one of: ${TARGETS[*]}, all)" >&2
        exit 2
        ;;
    esac
fi

echo "==> building the fuzz targets (instrumented zkw-host)"
(
    cd "$ROOT/fuzz"
    CARGO_TARGET_DIR="$ROOT/target" RUSTC_WRAPPER="$ROOT/fuzz/instrument.sh" \
        cargo build --locked --bins
)

status=0
for name in "${selected[@]}"; do
    work="$ROOT/target/fuzz/corpus/$name"
    artifacts="$ROOT/target/fuzz/artifacts/$name"
    logs="$ROOT/target/fuzz/logs"
    mkdir -p "$work" "$artifacts" "$logs"
    echo "==> fuzz $name (${budget})"
    # New inputs go to the first directory; the committed seeds are only read.
    if "$ROOT/target/debug/$name" "${limit[@]}" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$artifacts/" ${FUZZ_ARGS:-} \
        "$work" "$ROOT/fuzz/corpus/$name" >"$logs/$name.log" 2>&1; then
        grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$logs/$name.log" || true
    else
        status=1
        echo "FAILED: fuzz target $name; its log ends with:" >&2
        tail -n 40 "$logs/$name.log" >&2
        echo "crash inputs: $(ls "$artifacts")" >&2
    fi
done
exit "$status"
