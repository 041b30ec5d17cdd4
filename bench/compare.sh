#!/usr/bin/env bash
# compare.sh: zkw against Apache ZooKeeper 3.8 (the Debian package) on this machine, with the
# same client (`zkw bench`) and the same load. Prints a table of zkw/ZooKeeper ratios
# (throughput, p50, p99) and the raw JSON lines.
#
# Usage: bench/compare.sh [options]
#   --duration SECS     seconds per workload (default 10)
#   --clients N         sessions (default 16)
#   --inflight K        requests in flight per session (default 8)
#   --value-size BYTES  (default 100)
#   --workloads "LIST"  (default "create set get mixed")
#   --ensemble          also run 3-node ensembles on 127.0.0.1 (three zoo.cfg + myid)
#   --only zkw|zookeeper  run one side only
#   --zk-no-fsync       run ZooKeeper with forceSync=no (zkw standalone has no durable log yet)
#   --lock              instead of the workloads: the lock cycle (acquire, read-modify-write of
#                       a counter, release) with the zkw `lock` recipe (`zkw bench --workload
#                       lock`), kazoo's Lock (bench/lock_kazoo.py) and Curator's InterProcessMutex
#                       (bench/LockBench.java; Debian package libcurator-recipes-java) on both
#   --memory N          instead of the workloads: load N znodes of 100 bytes into a fresh
#                       standalone server of each kind, report its RSS (VmRSS), then kill -9 it,
#                       restart it and report how long until it serves a read of the data again
#
# Every process it starts is stopped on exit (by PID); everything lives in a temp dir; every
# wait is bounded. ZKW_BIN overrides the zkw binary (default target/release/zkw, built if missing).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ZKW_BIN="${ZKW_BIN:-$ROOT/target/release/zkw}"
ZK_CLASSPATH="/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar"
# ZooKeeper's own default heap (zkEnv.sh ZK_SERVER_HEAP), so memory numbers are comparable.
ZK_HEAP_MB=1000
START_SECS_MAX=60
STOP_SECS_MAX=10
RESTART_SECS_MAX=300
BENCH_SECS_SLACK=600
TICK_MS=2000

DURATION=10
CLIENTS=16
INFLIGHT=8
VALUE_SIZE=100
WORKLOADS="create set get mixed"
ENSEMBLE=0
ONLY=""
MEMORY=0
LOCK=0
ZK_FORCE_SYNC=yes
# The super user (admin:secret) that installs the lock recipe for `zkw bench --workload lock`.
SUPER_DIGEST="admin:fvr2cB/fjGeAiX8g1aGhUm3ZICk="
SUPER_AUTH="digest:admin:secret"
CURATOR_CP="/usr/share/java/curator-recipes.jar:/usr/share/java/curator-framework.jar"
CURATOR_CP+=":/usr/share/java/curator-client.jar:/usr/share/java/zookeeper.jar"
CURATOR_CP+=":/usr/share/java/zookeeper-jute.jar:/usr/share/java/guava.jar"
CURATOR_CP+=":/usr/share/java/slf4j-api.jar:/usr/share/java/slf4j-nop.jar"
PYTHON="${PYTHON:-python3}"
if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; fi

while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --clients) CLIENTS="$2"; shift 2 ;;
    --inflight) INFLIGHT="$2"; shift 2 ;;
    --value-size) VALUE_SIZE="$2"; shift 2 ;;
    --workloads) WORKLOADS="$2"; shift 2 ;;
    --ensemble) ENSEMBLE=1; shift ;;
    --only) ONLY="$2"; shift 2 ;;
    --memory) MEMORY="$2"; shift 2 ;;
    --zk-no-fsync) ZK_FORCE_SYNC=no; shift ;;
    --lock) LOCK=1; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "compare.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

TMP="$(mktemp -d -t zkw-compare.XXXXXX)"
PIDS=()
RESULTS="$TMP/results.jsonl"
: > "$RESULTS"

stop_pid() {
  local pid="$1" waited=0
  kill "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt $((STOP_SECS_MAX * 10)) ]; do
    sleep 0.1; waited=$((waited + 1))
  done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  PIDS=()
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "compare.sh: $*" >&2; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# four_letter PORT WORD: the answer, or nothing.
four_letter() {
  python3 - "$1" "$2" <<'EOF' 2>/dev/null || true
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
    s.sendall(sys.argv[2].encode())
    out = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    print(out.decode(errors="replace"))
except OSError:
    pass
EOF
}

# wait_serving PORT PID: until `srvr` reports a Mode (ZooKeeper answers ruok before it serves).
wait_serving() {
  local port="$1" pid="$2" deadline=$((SECONDS + START_SECS_MAX))
  while [ "$SECONDS" -lt "$deadline" ]; do
    kill -0 "$pid" 2>/dev/null || return 1
    if four_letter "$port" srvr | grep -q 'Mode: \(standalone\|leader\|follower\)'; then
      return 0
    fi
    sleep 0.2
  done
  return 1
}

ensure_zkw() {
  if [ ! -x "$ZKW_BIN" ]; then
    log "building $ZKW_BIN (cargo build --release)"
    (cd "$ROOT" && cargo build --release -p zkw-host >&2)
  fi
}

# write_cfg DIR CLIENT_PORT [SERVER_LINES]: a zoo.cfg in DIR with its dataDir under DIR.
write_cfg() {
  local dir="$1" port="$2" servers="${3:-}"
  mkdir -p "$dir/data"
  {
    echo "tickTime=$TICK_MS"
    echo "initLimit=10"
    echo "syncLimit=5"
    echo "dataDir=$dir/data"
    echo "clientPort=$port"
    echo "clientPortAddress=127.0.0.1"
    echo "maxClientCnxns=0"
    echo "admin.enableServer=false"
    echo "4lw.commands.whitelist=*"
    echo "DigestAuthenticationProvider.superDigest=$SUPER_DIGEST"
    if [ -n "$servers" ]; then printf '%s\n' "$servers"; fi
  } > "$dir/zoo.cfg"
}

# start_server KIND DIR: starts one server on DIR/zoo.cfg; sets STARTED_PID.
start_server() {
  local kind="$1" dir="$2"
  if [ "$kind" = zookeeper ]; then
    java "-Xmx${ZK_HEAP_MB}m" -cp "$ZK_CLASSPATH" \
      -Dzookeeper.admin.enableServer=false -Dzookeeper.4lw.commands.whitelist='*' \
      "-Dzookeeper.forceSync=$ZK_FORCE_SYNC" \
      org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zoo.cfg" \
      >> "$dir/server.log" 2>&1 &
  else
    "$ZKW_BIN" server start-foreground --config "$dir/zoo.cfg" >> "$dir/server.log" 2>&1 &
  fi
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
}

# start_cluster KIND SIZE: SIZE=1 standalone, else an ensemble on 127.0.0.1. Sets SERVERS
# (the client list) and CLUSTER_PIDS. Returns non-zero when a server does not come up.
start_cluster() {
  local kind="$1" size="$2" i lines="" dir
  local -a ports=()
  CLUSTER_PIDS=()
  for i in $(seq 1 "$size"); do ports+=("$(free_port)"); done
  if [ "$size" -gt 1 ]; then
    for i in $(seq 1 "$size"); do
      lines+="server.$i=127.0.0.1:$(free_port):$(free_port)"$'\n'
    done
  fi
  SERVERS=""
  for i in $(seq 1 "$size"); do
    dir="$TMP/$kind-$size-$i"
    write_cfg "$dir" "${ports[$((i - 1))]}" "$lines"
    if [ "$size" -gt 1 ]; then echo "$i" > "$dir/data/myid"; fi
    start_server "$kind" "$dir"
    CLUSTER_PIDS+=("$STARTED_PID")
    SERVERS+="${SERVERS:+,}127.0.0.1:${ports[$((i - 1))]}"
  done
  for i in $(seq 1 "$size"); do
    if ! wait_serving "${ports[$((i - 1))]}" "${CLUSTER_PIDS[$((i - 1))]}"; then
      log "$kind server $i of $size did not come up; its log tail:"
      tail -n 20 "$TMP/$kind-$size-$i/server.log" >&2 || true
      return 1
    fi
  done
}

stop_cluster() {
  local pid
  for pid in "${CLUSTER_PIDS[@]}"; do stop_pid "$pid"; done
}

# bench_json KIND SETUP WORKLOAD: one `zkw bench` run; its JSON line, tagged, into RESULTS.
bench_json() {
  local kind="$1" setup="$2" workload="$3" line
  line="$(timeout $((DURATION + BENCH_SECS_SLACK)) "$ZKW_BIN" bench --server "$SERVERS" \
    --workload "$workload" --clients "$CLIENTS" --inflight "$INFLIGHT" \
    --value-size "$VALUE_SIZE" --duration "$DURATION" 2>> "$TMP/bench.err" | tail -n 1)" || true
  if [ -z "$line" ]; then
    log "$kind $setup $workload: no result (see errors below)"
    tail -n 5 "$TMP/bench.err" >&2 || true
    return 0
  fi
  echo "{\"server\":\"$kind\",\"setup\":\"$setup\",\"result\":$line}" >> "$RESULTS"
  log "$kind $setup: $line"
}

# lock_json KIND SETUP TAG CMD...: one lock-cycle run; its JSON line, tagged, into RESULTS.
lock_json() {
  local kind="$1" setup="$2" tag="$3" line
  shift 3
  line="$(timeout $((DURATION + BENCH_SECS_SLACK)) "$@" 2>> "$TMP/bench.err" | tail -n 1)" || true
  if [ -z "$line" ]; then
    log "$kind $setup $tag: no result (see errors below)"
    tail -n 5 "$TMP/bench.err" >&2 || true
    return 0
  fi
  echo "{\"server\":\"$kind\",\"setup\":\"$setup\",\"client\":\"$tag\",\"result\":$line}" >> "$RESULTS"
  log "$kind $setup $tag: $line"
}

run_lock() {
  local setup="$1" size="$2" kind
  for kind in zookeeper zkw; do
    [ -n "$ONLY" ] && [ "$ONLY" != "$kind" ] && continue
    if ! start_cluster "$kind" "$size"; then
      log "skipping $kind $setup"
      stop_cluster
      continue
    fi
    if [ "$kind" = zkw ]; then
      lock_json "$kind" "$setup" zkw-recipe "$ZKW_BIN" bench --server "$SERVERS" \
        --workload lock --clients "$CLIENTS" --duration "$DURATION" --auth "$SUPER_AUTH"
    fi
    if [ -f /usr/share/java/curator-recipes.jar ]; then
      lock_json "$kind" "$setup" curator java -cp "$CURATOR_CP" "$ROOT/bench/LockBench.java" \
        "$SERVERS" "$CLIENTS" "$DURATION"
    else
      log "no Curator: apt-get install libcurator-recipes-java"
    fi
    if "$PYTHON" -c 'import kazoo' 2>/dev/null; then
      lock_json "$kind" "$setup" kazoo "$PYTHON" "$ROOT/bench/lock_kazoo.py" \
        --server "$SERVERS" --clients "$CLIENTS" --duration "$DURATION"
    else
      log "no kazoo for $PYTHON: pip install -r tests/python/requirements.txt"
    fi
    stop_cluster
  done
}

print_lock_table() {
  python3 - "$RESULTS" <<'EOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
print(f"{'setup':<10} {'server':<10} {'client':<11} {'cycles/s':>9} {'acq p50':>9} "
      f"{'acq p99':>9} {'counter':>8}")
for r in rows:
    x = r["result"]
    print(f"{r['setup']:<10} {r['server']:<10} {r['client']:<11} {x['cycles_per_sec']:>9.0f} "
          f"{x['acquire_p50_us']:>9} {x['acquire_p99_us']:>9} {str(x['counter_ok']):>8}")
by = {(r["setup"], r["server"], r["client"]): r["result"]["cycles_per_sec"] for r in rows}
for setup in dict.fromkeys(r["setup"] for r in rows):
    ours, theirs = by.get((setup, "zkw", "zkw-recipe")), by.get((setup, "zookeeper", "curator"))
    if ours and theirs:
        print(f"{setup}: zkw lock recipe / Curator on ZooKeeper = {ours / theirs:.2f}x")
print("(acquire latencies in microseconds)")
EOF
}

run_workloads() {
  local setup="$1" size="$2" kind workload
  for kind in zookeeper zkw; do
    [ -n "$ONLY" ] && [ "$ONLY" != "$kind" ] && continue
    if ! start_cluster "$kind" "$size"; then
      log "skipping $kind $setup"
      stop_cluster
      continue
    fi
    for workload in $WORKLOADS; do bench_json "$kind" "$setup" "$workload"; done
    stop_cluster
  done
}

print_table() {
  python3 - "$RESULTS" <<'EOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
by = {(r["server"], r["setup"], r["result"]["workload"]): r["result"] for r in rows}
def ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "-"
print(f"{'setup':<10} {'workload':<8} {'zk ops/s':>10} {'zkw ops/s':>10} {'tput x':>7} "
      f"{'zk p50':>8} {'zkw p50':>8} {'p50 x':>6} {'zk p99':>8} {'zkw p99':>8} {'p99 x':>6} "
      f"{'errors zk/zkw':>13}")
seen = []
for r in rows:
    key = (r["setup"], r["result"]["workload"])
    if key not in seen:
        seen.append(key)
for setup, workload in seen:
    zk = by.get(("zookeeper", setup, workload), {})
    zw = by.get(("zkw", setup, workload), {})
    g = lambda d, k: d.get(k)
    fmt = lambda v, f="{:.0f}": f.format(v) if v is not None else "-"
    print(f"{setup:<10} {workload:<8} {fmt(g(zk,'ops_per_sec')):>10} {fmt(g(zw,'ops_per_sec')):>10} "
          f"{ratio(g(zw,'ops_per_sec'), g(zk,'ops_per_sec')):>7} "
          f"{fmt(g(zk,'p50_us')):>8} {fmt(g(zw,'p50_us')):>8} {ratio(g(zw,'p50_us'), g(zk,'p50_us')):>6} "
          f"{fmt(g(zk,'p99_us')):>8} {fmt(g(zw,'p99_us')):>8} {ratio(g(zw,'p99_us'), g(zk,'p99_us')):>6} "
          f"{fmt(g(zk,'errors'))+'/'+fmt(g(zw,'errors')):>13}")
print("(tput x = zkw/ZooKeeper throughput, higher is better; p50 x, p99 x = zkw/ZooKeeper "
      "latency, lower is better; latencies in microseconds)")
print()
for r in rows:
    print(f"{r['server']} {r['setup']}: {json.dumps(r['result'], separators=(',', ':'))}")
EOF
}

# probe_read PORT PATH: seconds until a fresh session's exists(PATH) succeeds, bounded;
# "data-lost-after-S" when the server serves but PATH is gone.
probe_read() {
  python3 - "$1" "$2" "$RESTART_SECS_MAX" <<'EOF'
import socket, struct, sys, time
port, path, bound = int(sys.argv[1]), sys.argv[2].encode(), float(sys.argv[3])
def frame(sock):
    def exact(n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise OSError("closed")
            buf += chunk
        return buf
    (n,) = struct.unpack(">i", exact(4))
    return exact(n)
def attempt():
    s = socket.create_connection(("127.0.0.1", port), timeout=2)
    body = struct.pack(">iqiqi", 0, 0, 10000, 0, 16) + b"\0" * 16 + b"\0"
    s.sendall(struct.pack(">i", len(body)) + body)
    frame(s)
    req = struct.pack(">iii", 1, 3, len(path)) + path + b"\0"
    s.sendall(struct.pack(">i", len(req)) + req)
    _xid, _zxid, err = struct.unpack(">iqi", frame(s)[:16])
    s.close()
    return err
NO_NODE = -101
start = time.monotonic()
while time.monotonic() - start < bound:
    try:
        err = attempt()
        if err == 0:
            print(f"{time.monotonic() - start:.2f}")
            sys.exit(0)
        if err == NO_NODE:
            # Serving, but the data did not survive the restart.
            print(f"data-lost-after-{time.monotonic() - start:.2f}")
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.05)
print("timeout")
EOF
}

rss_mb() {
  awk '/^VmRSS:/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo "?"
}

# memory KIND: load MEMORY znodes of 100 bytes, RSS, kill -9, restart, time to serve reads.
memory_run() {
  local kind="$1" port pid root rss rss0 restart dir="$TMP/$kind-memory"
  port="$(free_port)"
  write_cfg "$dir" "$port"
  start_server "$kind" "$dir"; pid="$STARTED_PID"
  if ! wait_serving "$port" "$pid"; then log "$kind did not come up"; return 0; fi
  rss0="$(rss_mb "$pid")"
  timeout "$BENCH_SECS_SLACK" "$ZKW_BIN" bench --server "127.0.0.1:$port" --workload create \
    --ops "$MEMORY" --value-size 100 --clients "$CLIENTS" --inflight "$INFLIGHT" --keep \
    > "$dir/load.json" 2> "$dir/load.err" || true
  root="$(sed -n 's/^zkw bench: kept //p' "$dir/load.err" | tail -n 1)"
  sleep 2 # let the JVM settle after the load, as a steady-state reading
  rss="$(rss_mb "$pid")"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  start_server "$kind" "$dir"
  if [ -n "$root" ]; then restart="$(probe_read "$port" "$root")"; else restart="no-root"; fi
  echo "$kind: znodes=$MEMORY rss_empty_mb=$rss0 rss_mb=$rss" \
    "bytes_per_znode=$((rss * 1024 * 1024 / MEMORY))" \
    "delta_bytes_per_znode=$(((rss - rss0) * 1024 * 1024 / MEMORY))" \
    "restart_to_read_secs=$restart load=$(cat "$dir/load.json")"
  stop_pid "$STARTED_PID"
}

ensure_zkw
if [ "$MEMORY" -gt 0 ]; then
  for kind in zookeeper zkw; do
    [ -n "$ONLY" ] && [ "$ONLY" != "$kind" ] && continue
    memory_run "$kind"
  done
  exit 0
fi
if [ "$LOCK" = 1 ]; then
  run_lock standalone 1
  if [ "$ENSEMBLE" = 1 ]; then run_lock ensemble3 3; fi
  print_lock_table
  exit 0
fi
run_workloads standalone 1
if [ "$ENSEMBLE" = 1 ]; then run_workloads ensemble3 3; fi
print_table
