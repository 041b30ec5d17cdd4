#!/usr/bin/env python3
"""lock_kazoo.py: the `zkw bench --workload lock` cycle with kazoo's client-side Lock.

N sessions (one process each, so the GIL does not serialise them; session i on server
i mod n) contend on one kazoo `Lock` (ZooKeeper's classic recipe: sequential node, list the
children, watch the predecessor). A cycle is acquire -> getData + conditional setData of a
counter znode -> release, as in `zkw bench --workload lock`. Prints ONE JSON line with the
same keys: workload, clients, cycles, secs, cycles_per_sec, acquire_p50_us, acquire_p99_us,
errors, counter_ok. Works against zkw and Apache ZooKeeper alike; the bench root
/zkw-kazoo-lock-<hex> is deleted afterwards.

Usage: bench/lock_kazoo.py --server HOST:PORT[,...] [--clients 16] [--duration 10]
"""

import argparse
import json
import multiprocessing
import os
import sys
import time

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError

SESSION_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 20.0
# Bound on one acquire, in seconds (a fair wait behind every other session's cycle).
ACQUIRE_TIMEOUT_S = 60.0
# Slack on top of --duration before a worker is considered stuck, in seconds.
WORKER_SLACK_S = 120.0


def connect(hosts):
    zk = KazooClient(hosts=hosts, timeout=SESSION_TIMEOUT_S, randomize_hosts=False)
    zk.start(timeout=CONNECT_TIMEOUT_S)
    return zk


def worker(hosts, root, duration, start_at, results):
    zk = connect(hosts)
    lock = zk.Lock(f"{root}/lock", identifier=str(os.getpid()))
    counter = f"{root}/counter"
    acquires, cycles, errors, increments = [], 0, 0, 0
    while time.time() < start_at:
        time.sleep(0.001)
    deadline = time.monotonic() + duration
    try:
        while time.monotonic() < deadline:
            started = time.monotonic()
            if not lock.acquire(timeout=ACQUIRE_TIMEOUT_S):
                errors += 1
                break
            acquires.append(int((time.monotonic() - started) * 1e6))
            try:
                data, stat = zk.get(counter)
                zk.set(counter, str(int(data) + 1).encode(), version=stat.version)
                increments += 1
                cycles += 1
            except BadVersionError:
                errors += 1  # a lost update: the lock did not exclude
            finally:
                lock.release()
    except Exception as error:  # one line on stderr; the JSON counts it
        print(f"lock_kazoo: worker {os.getpid()}: {error!r}", file=sys.stderr)
        errors += 1
    finally:
        zk.stop()
        zk.close()
    results.put((acquires, cycles, errors, increments))


def percentile(sorted_values, q):
    if not sorted_values:
        return 0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="127.0.0.1:2181")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args()
    servers = args.server.split(",")
    root = f"/zkw-kazoo-lock-{os.urandom(8).hex()}"
    admin = connect(args.server)
    admin.create(root, b"")
    admin.create(f"{root}/counter", b"0")
    results = multiprocessing.Queue()
    # Everyone starts together, after every session is up.
    start_at = time.time() + 2.0 + 0.05 * args.clients
    procs = []
    for i in range(args.clients):
        hosts = ",".join(servers[i % len(servers):] + servers[:i % len(servers)])
        p = multiprocessing.Process(target=worker,
                                    args=(hosts, root, args.duration, start_at, results))
        p.start()
        procs.append(p)
    acquires, cycles, errors, increments = [], 0, 0, 0
    for _ in procs:
        a, c, e, n = results.get(timeout=args.duration + WORKER_SLACK_S)
        acquires += a
        cycles += c
        errors += e
        increments += n
    for p in procs:
        p.join(WORKER_SLACK_S)
    secs = max(time.time() - start_at, 1e-9)
    admin.sync(f"{root}/counter")
    counter = int(admin.get(f"{root}/counter")[0])
    admin.delete(root, recursive=True)
    admin.stop()
    admin.close()
    acquires.sort()
    print(json.dumps({
        "workload": "lock-kazoo",
        "clients": args.clients,
        "cycles": cycles,
        "secs": round(secs, 3),
        "cycles_per_sec": round(cycles / secs, 3),
        "acquire_p50_us": percentile(acquires, 0.5),
        "acquire_p99_us": percentile(acquires, 0.99),
        "errors": errors,
        "counter_ok": counter == increments,
    }))
    return 0 if errors == 0 and counter == increments else 1


if __name__ == "__main__":
    sys.exit(main())
