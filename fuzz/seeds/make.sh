#!/usr/bin/env bash
# Rewrites the committed seed corpora fuzz/corpus/<target>/ from real bytes: runs the real
# server through a short workload (workload.py, with the kazoo venv scripts/test.sh makes),
# then the `seeds` binary on the dataDir it left. Needs `cargo build` (target/debug/zkw) first.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT="$PWD"
data="$(mktemp -d)"
trap 'rm -rf "$data"' EXIT
ZKW_BIN="${ZKW_BIN:-$ROOT/target/debug/zkw}" "$ROOT/.venv/bin/python" "$ROOT/fuzz/seeds/workload.py" "$data/data"
(
    cd "$ROOT/fuzz"
    CARGO_TARGET_DIR="$ROOT/target" RUSTC_WRAPPER="$ROOT/fuzz/instrument.sh" \
        cargo build --locked --bin seeds
)
rm -rf "$ROOT/fuzz/corpus"
"$ROOT/target/debug/seeds" "$ROOT" "$data/data"
du -sh "$ROOT/fuzz/corpus"/*
