#!/usr/bin/env bash
# The one test command: idempotent setup, then every suite.
#
# Setup (each step skipped when already done): the wasm32 Rust target,
# Debian's ZooKeeper packages (reference server, zkCli.sh, the C client
# cli_mt and libzookeeper_mt; never the zookeeperd daemon), a Python venv in
# .venv with the pinned kazoo/pytest. Then: cargo fmt --check, cargo clippy,
# cargo build, cargo test --workspace, a short run of every fuzz target (scripts/fuzz.sh),
# pytest tests/python tests/diff tests/ensemble against the freshly built zkw (ZKW_BIN).
# Exits non-zero if any step fails.
#
# Env: ZKW_TARGET=zkw|zookeeper (default zkw) picks the server the Python
# suites talk to; PYTEST_ARGS adds pytest arguments; FUZZ_BUDGET is each fuzz target's
# run (default 20s; scripts/fuzz.sh's budget syntax); SKIP_SETUP=1 skips the install steps.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"

log() { printf '\n==> %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

setup_rust() {
    if command -v rustup >/dev/null 2>&1; then
        if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
            log "rustup target add wasm32-unknown-unknown"
            # Nothing builds for wasm32 yet: a machine that cannot download
            # the target still runs every suite.
            rustup target add wasm32-unknown-unknown \
                || echo "warning: could not add the wasm32-unknown-unknown target" >&2
        fi
    fi
}

# Packages the tests need: the Java server + zkCli.sh (zookeeper), cli_mt
# (zookeeper-bin), the C client library and headers (libzookeeper-mt-dev),
# a JRE, a C++ compiler (the fuzz targets' libFuzzer is built from its C++ sources). Not
# zookeeperd: it would start a service on port 2181.
APT_PACKAGES=(zookeeper zookeeper-bin libzookeeper-mt-dev default-jre-headless g++)

setup_apt() {
    local missing=()
    for pkg in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    # Debian's python3 needs python3-venv for `python3 -m venv`.
    if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
        missing+=(python3-venv)
    fi
    # Any Java runtime will do; do not pull default-jre when one is there.
    if command -v java >/dev/null 2>&1; then
        local kept=()
        for pkg in "${missing[@]}"; do [ "$pkg" = default-jre-headless ] || kept+=("$pkg"); done
        missing=("${kept[@]+"${kept[@]}"}")
    fi
    if [ "${#missing[@]}" -gt 0 ]; then
        log "apt-get install ${missing[*]}"
        as_root apt-get update
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
    fi
    # Make sure no packaged ZooKeeper service holds 2181 or steals CPU.
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet zookeeper 2>/dev/null; then
        log "stopping the zookeeper service"
        as_root systemctl stop zookeeper || true
    fi
}

setup_venv() {
    local req="$ROOT/tests/python/requirements.txt"
    local stamp="$ROOT/.venv/.requirements.stamp"
    if [ ! -x "$ROOT/.venv/bin/python" ]; then
        log "python venv in .venv"
        python3 -m venv "$ROOT/.venv"
    fi
    if [ ! -f "$stamp" ] || ! cmp -s "$req" "$stamp"; then
        log "pip install -r tests/python/requirements.txt"
        "$ROOT/.venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
        cp "$req" "$stamp"
    fi
}

if [ "${SKIP_SETUP:-0}" != 1 ]; then
    setup_rust
    setup_apt
    setup_venv
fi

status=0
run() {
    log "$*"
    if ! "$@"; then
        echo "FAILED: $*" >&2
        status=1
    fi
}

run cargo fmt --all --check
run cargo clippy --all-targets -- -D warnings
# fuzz/ is a workspace of its own (tests/README.md, "Fuzzing"): same checks, same target dir.
run cargo fmt --manifest-path fuzz/Cargo.toml --check
run env CARGO_TARGET_DIR="$ROOT/target" \
    cargo clippy --locked --manifest-path fuzz/Cargo.toml --bins -- -D warnings
log "cargo build"
cargo build
log "recipes for wasm32 (the test kit and the example)"
run cargo build --target wasm32-unknown-unknown --profile recipe -p zkw-test-recipes --examples
run cargo build --target wasm32-unknown-unknown --profile recipe -p recipe-counter
run cargo test --workspace --no-fail-fast
# A short bounded run of every fuzz target from its seeds (longer runs: scripts/fuzz.sh).
run bash scripts/fuzz.sh all "${FUZZ_BUDGET:-20s}"

export ZKW_BIN="${ZKW_BIN:-$ROOT/target/debug/zkw}"
export ZKW_TARGET="${ZKW_TARGET:-zkw}"
# shellcheck disable=SC2086
run "$ROOT/.venv/bin/python" -m pytest -q -p no:cacheprovider --timeout=120 ${PYTEST_ARGS:-} \
    "$ROOT/tests/python" "$ROOT/tests/diff"
# The ensemble fault tests (3- and 5-member clusters, kill -9, SIGSTOP, partitions, a
# linearizability check): their own run, their own fixtures.
# shellcheck disable=SC2086
run "$ROOT/.venv/bin/python" -m pytest -q -p no:cacheprovider --timeout=120 ${PYTEST_ARGS:-} \
    "$ROOT/tests/ensemble"

if [ "$status" -ne 0 ]; then
    log "some suites failed"
else
    log "all suites passed"
fi
exit "$status"
