#!/usr/bin/env python3
"""failover.py: how long a 3- or 5-node ensemble is unavailable for writes when its leader
crashes (kill -9) or hangs (SIGSTOP), zkw against Apache ZooKeeper 3.8, side by side.

Usage (from the repository root):

    .venv/bin/python bench/failover.py --target zkw|zookeeper|both --rounds 5 --size 3

The ensemble is tests/ensemble/cluster.py's Cluster, unproxied, with ZooKeeper's sample
timing (tickTime=2000, initLimit=10, syncLimit=5; ZooKeeper's default election connect
timeout). Per round: find the leader (srvr); connect one kazoo client to each other member
(that member only) and let each do a setData every ~10 ms; then fault the leader and measure

  write  = time from the fault to the first acknowledged write that a survivor's client
           invoked after the fault (only a new leader can have committed it);
  leader = time from the fault until srvr on a survivor says `leader` (polled every 20 ms).

kill -9 rounds restart the killed member; SIGSTOP rounds SIGCONT it; either way the round
ends when every member serves with one leader and all report the same zxid. Prints every
round, then median and max per target and fault, and the zkw/ZooKeeper ratios.

zkw binary: env ZKW_BIN, else target/release/zkw, else target/debug/zkw. Every wait is
bounded; every process started is stopped on exit, also on Ctrl-C or SIGTERM.
"""

import argparse
import logging
import os
import signal
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "ensemble"))

from kazoo.client import KazooClient  # noqa: E402
from kazoo.exceptions import KazooException  # noqa: E402
from kazoo.handlers.threading import KazooTimeoutError  # noqa: E402

from cluster import SAMPLE_TIMING, Cluster  # noqa: E402

FAULTS = ("kill9", "sigstop")
PATH = "/failover-bench"
# Pacing of each survivor's client: one setData, then this pause.
WRITE_PAUSE_S = 0.01
# Bounded waits, in seconds.
CONNECT_TIMEOUT_S = 30.0
SESSION_TIMEOUT_S = 30.0  # longer than any failover measured, so sessions survive
OP_TIMEOUT_S = 30.0
FAULT_DEADLINE_S = 90.0  # a round whose write is not acknowledged by then is a timeout
WHOLE_TIMEOUT_S = 120.0  # restart / SIGCONT until the ensemble is whole again
WARMUP_S = 1.0
POLL_S = 0.02
CLIENT_STOP_TIMEOUT_S = 10.0
CONNECTION_RETRY = dict(max_tries=-1, delay=0.05, backoff=1.5, max_delay=0.5)


def zkw_bin():
    if os.environ.get("ZKW_BIN"):
        return Path(os.environ["ZKW_BIN"])
    for build in ("release", "debug"):
        candidate = ROOT / "target" / build / "zkw"
        if candidate.exists():
            return candidate
    return ROOT / "target" / "release" / "zkw"


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Writer(threading.Thread):
    """A kazoo client pinned to one member, doing setData every ~WRITE_PAUSE_S; it keeps
    (invoke, complete) of every acknowledged write."""

    def __init__(self, member):
        super().__init__(name=f"writer-{member.id}", daemon=True)
        self.zk = KazooClient(
            hosts=member.hosts,
            timeout=SESSION_TIMEOUT_S,
            connection_retry=CONNECTION_RETRY,
            randomize_hosts=False,
        )
        self.zk.start(timeout=CONNECT_TIMEOUT_S)
        self.path = f"{PATH}/s{member.id}"
        self.zk.ensure_path(self.path)
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.acks = []

    def run(self):
        n = 0
        while not self.stopping.is_set():
            n += 1
            invoke = time.monotonic()
            try:
                self.zk.set_async(self.path, str(n).encode()).get(timeout=OP_TIMEOUT_S)
                with self.lock:
                    self.acks.append((invoke, time.monotonic()))
            except (KazooException, KazooTimeoutError):
                pass
            time.sleep(WRITE_PAUSE_S)

    def first_ack_after(self, t0):
        with self.lock:
            done = [complete for invoke, complete in self.acks if invoke >= t0]
        return min(done) if done else None

    def close(self):
        self.stopping.set()

        def stop():
            try:
                self.zk.stop()
                self.zk.close()
            except Exception:  # noqa: BLE001 - best effort at teardown
                pass

        closer = threading.Thread(target=stop, daemon=True)
        closer.start()
        closer.join(CLIENT_STOP_TIMEOUT_S)
        self.join(CLIENT_STOP_TIMEOUT_S)


def wait_whole(cluster):
    """Every member serves, one leader, same zxid. A write goes first: ZooKeeper's new
    leader reports the previous epoch's last zxid until it commits something."""
    leader = cluster.wait_quorum(ids=cluster.ids, timeout=WHOLE_TIMEOUT_S)
    zk = KazooClient(hosts=cluster.hosts(), timeout=SESSION_TIMEOUT_S, connection_retry=CONNECTION_RETRY)
    try:
        zk.start(timeout=CONNECT_TIMEOUT_S)
        zk.ensure_path(PATH)
        zk.set(PATH, b"whole")
    finally:
        zk.stop()
        zk.close()
    cluster.wait_converged(ids=cluster.ids, timeout=WHOLE_TIMEOUT_S)
    return leader


def one_round(cluster, fault):
    """One fault of the leader; returns (write_s, leader_s, old leader, new leader), None
    where not seen in time."""
    old = cluster.wait_quorum(timeout=WHOLE_TIMEOUT_S)
    survivors = [s for s in cluster.ids if s != old]
    writers = [Writer(cluster[s]) for s in survivors]
    try:
        for w in writers:
            w.start()
        time.sleep(WARMUP_S)
        t0 = time.monotonic()
        if fault == "kill9":
            cluster[old].kill()
        else:
            cluster[old].pause()
        write_s = leader_s = new = None
        deadline = t0 + FAULT_DEADLINE_S
        while time.monotonic() < deadline and (write_s is None or leader_s is None):
            if leader_s is None:
                new = next((s for s in survivors if cluster[s].srvr().get("Mode") == "leader"), None)
                if new is not None:
                    leader_s = time.monotonic() - t0
            if write_s is None:
                firsts = [f for f in (w.first_ack_after(t0) for w in writers) if f is not None]
                if firsts:
                    write_s = min(firsts) - t0
            time.sleep(POLL_S)
    finally:
        for w in writers:
            w.close()
        if fault == "kill9":
            cluster[old].start()
        elif cluster[old].paused:
            cluster[old].resume()
    wait_whole(cluster)
    return write_s, leader_s, old, new


def run_target(kind, rounds, size, faults):
    results = {f: [] for f in faults}
    cluster = Cluster(size, proxied=False, target_kind=kind, timing=SAMPLE_TIMING)
    try:
        for m in cluster.members.values():
            m.start()
        wait_whole(cluster)
        log(f"{kind}: {size} members up in {cluster.base_dir}")
        for fault in faults:
            for r in range(rounds):
                write_s, leader_s, old, new = one_round(cluster, fault)
                results[fault].append((write_s, leader_s))
                log(f"{kind} {fault} round {r + 1}/{rounds}: write {fmt(write_s)}, "
                    f"leader {fmt(leader_s)} ({old} -> {new})")
    finally:
        cluster.close(keep_dir=bool(os.environ.get("ZKW_KEEP_LOGS")))
    return results


def fmt(value):
    return "timeout" if value is None else f"{value:.3f}s"


def summary(values):
    """(median, max) in seconds; a timeout counts as infinitely long."""
    vals = [float("inf") if v is None else v for v in values]
    return (statistics.median(vals), max(vals)) if vals else (None, None)


def cell(value):
    if value is None:
        return "-"
    return "timeout" if value == float("inf") else f"{value:.3f}"


def ratio(a, b):
    if a is None or b is None or b == 0 or float("inf") in (a, b):
        return "-"
    return f"{a / b:.2f}"


def report(all_results, args):
    print(f"\nfailover, {args.size} members, {args.rounds} rounds, sample timing "
          f"(tickTime {SAMPLE_TIMING.tick_ms} ms, syncLimit {SAMPLE_TIMING.sync_limit}), "
          f"zkw {zkw_bin() if 'zkw' in all_results else '-'}, {os.cpu_count()} cores")
    kinds = list(all_results)
    header = f"{'fault':<8} {'measure':<7}"
    for k in kinds:
        header += f" {k + ' med':>14} {k + ' max':>14}"
    if len(kinds) == 2:
        header += f" {'zkw/ZK med':>11} {'zkw/ZK max':>11}"
    print(header)
    for fault in args.faults:
        for idx, name in ((0, "write"), (1, "leader")):
            line = f"{fault:<8} {name:<7}"
            stats = {}
            for k in kinds:
                stats[k] = summary([r[idx] for r in all_results[k][fault]])
                line += f" {cell(stats[k][0]):>14} {cell(stats[k][1]):>14}"
            if len(kinds) == 2:
                zk, zw = stats["zookeeper"], stats["zkw"]
                line += f" {ratio(zw[0], zk[0]):>11} {ratio(zw[1], zk[1]):>11}"
            print(line)
    print("(seconds from the fault; write = first acknowledged write invoked after it on a "
          "survivor's client, leader = srvr shows a leader on a survivor)")
    for k in kinds:
        for fault in args.faults:
            rows = ", ".join(f"{fmt(w)}/{fmt(l)}" for w, l in all_results[k][fault])
            print(f"{k} {fault} write/leader per round: {rows}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=("zkw", "zookeeper", "both"), default="both")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, choices=(3, 5), default=3)
    parser.add_argument("--faults", default=",".join(FAULTS),
                        help="comma-separated subset of kill9,sigstop (default both)")
    args = parser.parse_args()
    args.faults = [f for f in args.faults.split(",") if f]
    if any(f not in FAULTS for f in args.faults):
        parser.error(f"--faults: choose from {FAULTS}")
    kinds = ["zookeeper", "zkw"] if args.target == "both" else [args.target]
    if "zkw" in kinds:
        binary = zkw_bin()
        if not binary.exists():
            parser.error(f"no zkw binary at {binary}: cargo build --release, or set ZKW_BIN")
        os.environ["ZKW_BIN"] = str(binary)
        log(f"zkw binary {binary}")

    # SIGTERM unwinds like Ctrl-C, so every `finally` (and cluster.py's atexit) stops the servers.
    def on_term(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    logging.getLogger("kazoo").setLevel(logging.CRITICAL)  # reconnect chatter is expected
    results = {}
    try:
        for kind in kinds:
            results[kind] = run_target(kind, args.rounds, args.size, args.faults)
    except KeyboardInterrupt:
        log("interrupted; servers stopped")
        return 130
    report(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
