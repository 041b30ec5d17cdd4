#!/usr/bin/env bash
# A three-server zkw ensemble on this machine, configured exactly as a ZooKeeper ensemble is:
# one zoo.cfg per server with the same server.N lines, and a myid file in each dataDir.
#
#   bash examples/three-node/run.sh
#   zkCli.sh -server 127.0.0.1:2181,127.0.0.1:2182,127.0.0.1:2183
#
# Environment:
#   ZKW        the zkw binary to run (default: build target/release/zkw first)
#   BASE_PORT  client port of server 1 (default 2181). Every port moves with it: server N
#              serves clients on BASE_PORT+N-1, its quorum and election ports are
#              BASE_PORT+707+N-1 and BASE_PORT+1707+N-1 (2888.. and 3888.. by default), its
#              AdminServer is on BASE_PORT+5899+N-1 (8080.. by default).
#   DATA_DIR   where the three dataDirs go (default: $TMPDIR/zkw-three-node, outside the
#              checkout); kept between runs, so a restart finds its data.
# Ctrl-C stops all three.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

BASE_PORT="${BASE_PORT:-2181}"
DATA_DIR="${DATA_DIR:-${TMPDIR:-/tmp}/zkw-three-node}"
# How long the members may take to report a mode (a fresh ensemble elects in a few seconds).
STATUS_WAIT_SECS=30

if [ -z "${ZKW:-}" ]; then
    # The built-in recipes are compiled for wasm32 (rustup's auto-install may be off).
    rustup target add wasm32-unknown-unknown
    cargo build --release --quiet
    ZKW="$PWD/target/release/zkw"
fi

port() { echo $((BASE_PORT + $1 + $2 - 1)); }

servers=""
for id in 1 2 3; do
    servers+="server.$id=127.0.0.1:$(port 707 "$id"):$(port 1707 "$id")"$'\n'
done

pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
for id in 1 2 3; do
    dir="$DATA_DIR/$id"
    mkdir -p "$dir"
    echo "$id" > "$dir/myid"
    cat > "$dir/zoo.cfg" <<CFG
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$dir
clientPort=$(port 0 "$id")
admin.serverPort=$(port 5899 "$id")
4lw.commands.whitelist=*
$servers
CFG
    "$ZKW" server start-foreground --config "$dir/zoo.cfg" > "$dir/zkw.log" 2>&1 &
    pids+=("$!")
done

for id in 1 2 3; do
    mode=""
    for _ in $(seq "$STATUS_WAIT_SECS"); do
        mode="$("$ZKW" server status --config "$DATA_DIR/$id/zoo.cfg" 2>/dev/null | grep Mode)" && break
        sleep 1
    done
    echo "server $id (client port $(port 0 "$id")): ${mode:-no mode after ${STATUS_WAIT_SECS} s: see $DATA_DIR/$id/zkw.log}"
done
echo "configs and logs in $DATA_DIR/*/ (zoo.cfg, zkw.log); Ctrl-C to stop"
wait
