#!/usr/bin/env bash
# Runs seeded fault schedules against an in-process three-member ensemble, one seed after
# another, and ends with the line `N passed, M failed`.
#
#   scripts/sim.sh --seeds N [--first S]   # seeds S..S+N-1 (S defaults to 1)
#   scripts/sim.sh --seed S                # one seed
#
# What a seed decides today (host/tests/in_process.rs, `acknowledged_writes_survive_seeded_
# partitions`): the schedule of faults on the in-memory quorum network (two-way and one-way
# cuts, an isolated member, how long each holds and the quiet after it) while a client writes;
# the check is that every acknowledged write ends on every member with equal digests. Time and
# thread scheduling are still the real ones (issue #15: the deterministic runtime and disk
# seams are not built yet), so a failing seed replays its fault schedule, not its exact
# interleaving: run it a few times. A failing seed prints the command that replays it.
#
# CI runs seeds 1 and 2 through `cargo test`. About three seeds a minute on the 2-core machine.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

usage() {
    echo "usage: scripts/sim.sh --seeds N [--first S] | --seed S" >&2
    exit 2
}

first=1
count=""
while [ "$#" -gt 0 ]; do
    case "$1" in
    --seeds) count="${2:-}"; shift 2 || usage ;;
    --first) first="${2:-}"; shift 2 || usage ;;
    --seed) first="${2:-}"; count=1; shift 2 || usage ;;
    *) usage ;;
    esac
done
case "$count$first" in
'' | *[!0-9]*) usage ;;
esac
[ -n "$count" ] || usage

TEST=acknowledged_writes_survive_seeded_partitions
echo "==> building the in-process test"
cargo test -q -p zkw-host --test in_process --no-run
LOGS=target/sim
mkdir -p "$LOGS"

passed=0
failed=0
started=$(date +%s)
for ((seed = first; seed < first + count; seed++)); do
    log="$LOGS/seed-$seed.log"
    if ZKW_NEMESIS_SEED=$seed cargo test -q -p zkw-host --test in_process "$TEST" \
        -- --exact --nocapture >"$log" 2>&1; then
        passed=$((passed + 1))
        echo "seed $seed: passed ($(grep -o '[0-9]* acknowledged writes' "$log" || true))"
    else
        failed=$((failed + 1))
        echo "seed $seed: FAILED (log: $log)"
        echo "    replay: ZKW_NEMESIS_SEED=$seed cargo test -p zkw-host --test in_process $TEST -- --exact --nocapture"
    fi
done
elapsed=$(($(date +%s) - started))
echo "$count seeds in ${elapsed}s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
