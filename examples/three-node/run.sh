#!/usr/bin/env bash
# A three-server zkw ensemble on this machine, configured exactly as a ZooKeeper ensemble is:
# one zoo.cfg per server with the same server.N lines, and a myid file in each dataDir.
# Client ports 2181-2183; quorum ports 2888-2890; data in ./ensemble-data. Ctrl-C stops all.
#   bash examples/three-node/run.sh            (builds zkw in release mode first)
#   zkCli.sh -server 127.0.0.1:2181,127.0.0.1:2182,127.0.0.1:2183
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
cargo build --release --quiet
ZKW="$PWD/target/release/zkw"
BASE="$PWD/ensemble-data"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
for id in 1 2 3; do
    mkdir -p "$BASE/$id"
    echo "$id" > "$BASE/$id/myid"
    cat > "$BASE/$id/zoo.cfg" <<CFG
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$BASE/$id
clientPort=$((2180 + id))
4lw.commands.whitelist=*
server.1=127.0.0.1:2888:3888
server.2=127.0.0.1:2889:3889
server.3=127.0.0.1:2890:3890
CFG
    "$ZKW" server start-foreground --config "$BASE/$id/zoo.cfg" > "$BASE/$id/zkw.log" 2>&1 &
    pids+=("$!")
done
sleep 2
for id in 1 2 3; do
    printf 'server %s: ' "$id"
    "$ZKW" server status --config "$BASE/$id/zoo.cfg" | grep Mode || true
done
echo "logs in $BASE/*/zkw.log; Ctrl-C to stop"
wait
