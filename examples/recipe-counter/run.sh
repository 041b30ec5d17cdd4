#!/usr/bin/env bash
# Builds the counter recipe, installs it on a zkw server bound to /counter, creates three nodes
# under /counter with zkCli.sh and prints /counter/count (3 on a fresh server, 3 more each run).
#   bash examples/recipe-counter/run.sh
# Environment:
#   ZKW_SERVER  host:port of a running zkw (default 127.0.0.1:2181). If nothing answers there,
#               a throwaway zkw is started on that port (super user admin:secret) and stopped
#               at exit.
#   ZKW_AUTH    the super user of your server, to install recipes: digest:USER:PASSWORD, the
#               user and password behind its DigestAuthenticationProvider.superDigest
#               (default digest:admin:secret, the throwaway server's).
#   ZKW         a zkw binary to use instead of building one; ZKCLI: zkCli.sh
#               (default /usr/share/zookeeper/bin/zkCli.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
SERVER="${ZKW_SERVER:-127.0.0.1:2181}"
AUTH="${ZKW_AUTH:-digest:admin:secret}"
ZKCLI="${ZKCLI:-/usr/share/zookeeper/bin/zkCli.sh}"
TARGET="${CARGO_TARGET_DIR:-$PWD/target}"
HOST="${SERVER%%,*}"; HOST="${HOST%:*}"
PORT="${SERVER%%,*}"; PORT="${PORT##*:}"
# zoo.cfg's form of admin:secret: base64(sha1("admin:secret")).
ADMIN_DIGEST="admin:fvr2cB/fjGeAiX8g1aGhUm3ZICk="

[ -x "$ZKCLI" ] || { echo "zkCli.sh not found at $ZKCLI (apt-get install zookeeper, or set ZKCLI)"; exit 1; }
echo "building the recipe (and zkw, unless ZKW is set; the first build takes minutes)"
cargo build --quiet --target wasm32-unknown-unknown --profile recipe -p recipe-counter
if [ -z "${ZKW:-}" ]; then
    cargo build --quiet -p zkw-host
    ZKW="$TARGET/debug/zkw"
fi
WASM="$TARGET/wasm32-unknown-unknown/recipe/recipe_counter.wasm"
echo "recipe: $WASM ($(wc -c < "$WASM") bytes)"

ruok() { # true when a server answers the ruok four-letter word within 2 s
    timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$PORT && echo ruok >&3 && cat <&3" 2>/dev/null | grep -q imok
}
if ! ruok; then
    DATA="$(mktemp -d)"
    printf 'tickTime=2000\ndataDir=%s\nclientPort=%s\n4lw.commands.whitelist=*\n' "$DATA" "$PORT" > "$DATA/zoo.cfg"
    echo "DigestAuthenticationProvider.superDigest=$ADMIN_DIGEST" >> "$DATA/zoo.cfg"
    "$ZKW" server start-foreground --config "$DATA/zoo.cfg" > "$DATA/zkw.log" 2>&1 &
    SERVER_PID=$!
    trap 'kill "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null; rm -rf "$DATA"' EXIT
    for _ in $(seq 50); do ruok && break; sleep 0.2; done
    ruok || { echo "zkw did not start; its log:"; cat "$DATA/zkw.log"; exit 1; }
    echo "started a throwaway zkw on $HOST:$PORT (data in $DATA)"
fi

zk() { # one zkCli command; prints the last line of its output (where `get` puts the data)
    local out status=0 err
    err="$(mktemp)"
    out="$("$ZKCLI" -server "$SERVER" "$@" 2>"$err")" || status=$?
    if [ "$status" -ne 0 ]; then # zkCli says why on stderr, after the logging noise
        echo "zkCli.sh $*: $(grep -v SLF4J "$err" | tail -n 1)" >&2
    fi
    rm -f "$err"
    printf '%s\n' "$out" | tail -n 1
    return "$status"
}

zk create /counter > /dev/null 2>&1 || true # the bound path; it may exist already
"$ZKW" recipe install "$WASM" --name counter --path /counter --server "$SERVER" --auth "$AUTH" || {
    echo "install failed: is ZKW_AUTH=$AUTH the super user of $SERVER? (README.md, Credentials)" >&2
    exit 1
}
for _ in 1 2 3; do # sequential names, so that a second run against the same server works too
    zk create -s /counter/item- > /dev/null
done
echo "ls /counter = $(zk ls /counter)"
echo "/counter/count = $(zk get /counter/count)"
echo "the recipe's log (zkw recipe logs counter):"
"$ZKW" recipe logs counter --server "$SERVER"
