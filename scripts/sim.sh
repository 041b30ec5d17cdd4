#!/usr/bin/env bash
# Runs the simulator (host/tests/sim) one seed after another, and ends with the line
# `N passed, M failed`.
#
#   scripts/sim.sh --seeds N [--first S] [--members 3|5]   # seeds S..S+N-1 (S defaults to 1)
#   scripts/sim.sh --seed S [--members 3|5]                # one seed
#
# A seed decides the fault schedule (partitions both ways and one way, an isolated member,
# crashes of a minority or of every member with the log power-cut to its synced or its written
# bytes, a failed log write, skewed clocks) and every client's operations; the checks are in
# host/tests/sim/main.rs. Time and thread scheduling are still the real ones (the
# deterministic runtime is not built: docs/architecture.md, "Simulation"), so a failing seed
# replays its schedule and choices, not its exact interleaving: run it a few times. A failing
# seed prints the command that replays it. Without --members, each seed runs on 3 and on 5.
#
# CI runs the seeds in CI_SEEDS (host/tests/sim/main.rs) on both sizes through `cargo test`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

usage() {
    echo "usage: scripts/sim.sh --seeds N [--first S] | --seed S  [--members 3|5]" >&2
    exit 2
}

first=1
count=""
members=""
while [ "$#" -gt 0 ]; do
    case "$1" in
    --seeds) count="${2:-}"; shift 2 || usage ;;
    --first) first="${2:-}"; shift 2 || usage ;;
    --seed) first="${2:-}"; count=1; shift 2 || usage ;;
    --members) members="${2:-}"; shift 2 || usage ;;
    *) usage ;;
    esac
done
case "$count$first" in
'' | *[!0-9]*) usage ;;
esac
[ -n "$count" ] || usage
case "$members" in
'') TESTS="three_members five_members" ;;
3) TESTS=three_members ;;
5) TESTS=five_members ;;
*) usage ;;
esac

echo "==> building the simulator"
cargo test -q -p zkw-host --test sim --no-run
LOGS=target/sim
mkdir -p "$LOGS"

passed=0
failed=0
started=$(date +%s)
for ((seed = first; seed < first + count; seed++)); do
    for test in $TESTS; do
        log="$LOGS/seed-$seed-$test.log"
        if ZKW_SIM_SEED=$seed cargo test -q -p zkw-host --test sim "$test" \
            -- --exact --nocapture >"$log" 2>&1; then
            passed=$((passed + 1))
            echo "seed $seed $test: passed ($(grep -o '[0-9]* ops, .*' "$log" || true))"
        else
            failed=$((failed + 1))
            echo "seed $seed $test: FAILED (log: $log)"
            echo "    replay: ZKW_SIM_SEED=$seed cargo test -p zkw-host --test sim $test -- --exact --nocapture"
        fi
    done
done
elapsed=$(($(date +%s) - started))
echo "$((passed + failed)) runs in ${elapsed}s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
