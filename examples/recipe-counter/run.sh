#!/usr/bin/env bash
# Builds the counter recipe, installs it on a zkw server bound to /counter, creates three nodes
# under /counter with zkCli and prints /counter/count (3 on a fresh server).
#   bash examples/recipe-counter/run.sh
# Environment: ZKW_SERVER (default 127.0.0.1:2181; if nothing answers there, a throwaway
# standalone zkw is started on that port and stopped at exit), ZKW_AUTH (e.g.
# digest:super:secret, when the server requires an admin identity to install), ZKCLI (default
# /usr/share/zookeeper/bin/zkCli.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
SERVER="${ZKW_SERVER:-127.0.0.1:2181}"
ZKCLI="${ZKCLI:-/usr/share/zookeeper/bin/zkCli.sh}"
TARGET="${CARGO_TARGET_DIR:-$PWD/target}"
HOST="${SERVER%%,*}"; HOST="${HOST%:*}"
PORT="${SERVER%%,*}"; PORT="${PORT##*:}"

echo "building the recipe and zkw"
cargo build --quiet --target wasm32-unknown-unknown --profile recipe -p recipe-counter
cargo build --quiet --release -p zkw-host
WASM="$TARGET/wasm32-unknown-unknown/recipe/recipe_counter.wasm"
ZKW="$TARGET/release/zkw"
echo "recipe: $WASM ($(wc -c < "$WASM") bytes)"

ruok() { # true when a server answers the ruok four-letter word within 2 s
    timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$PORT && echo ruok >&3 && cat <&3" 2>/dev/null | grep -q imok
}
if ! ruok; then
    DATA="$(mktemp -d)"
    printf 'tickTime=2000\ndataDir=%s\nclientPort=%s\n4lw.commands.whitelist=*\n' "$DATA" "$PORT" > "$DATA/zoo.cfg"
    "$ZKW" server start-foreground --config "$DATA/zoo.cfg" > "$DATA/zkw.log" 2>&1 &
    SERVER_PID=$!
    trap 'kill "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null; rm -rf "$DATA"' EXIT
    for _ in $(seq 50); do ruok && break; sleep 0.2; done
    ruok || { echo "zkw did not start; its log:"; cat "$DATA/zkw.log"; exit 1; }
    echo "started a throwaway zkw on $HOST:$PORT (data in $DATA)"
fi

zk() { # one zkCli command; its output's last line (zkCli prints the data of `get` last)
    "$ZKCLI" -server "$SERVER" "$@" 2>/dev/null | tail -n 1
}
AUTH=()
if [ -n "${ZKW_AUTH:-}" ]; then AUTH=(--auth "$ZKW_AUTH"); fi

zk create /counter "" > /dev/null || true # the bound path; may already exist
"$ZKW" recipe install "$WASM" --name counter --path /counter --server "$SERVER" "${AUTH[@]}"
for name in apple banana cherry; do
    zk create "/counter/$name" "" > /dev/null
    echo "created /counter/$name"
done
echo "/counter/count = $(zk get /counter/count)"
