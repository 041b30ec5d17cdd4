"""Concurrent kazoo write load with recorded outcomes, and the checks run after a fault.

Owns: `Workload`, N client threads (one kazoo session each, spread over the
members) doing creates under /w/acks, sets of a per-client counter znode and
set/CAS on a few shared register znodes, with invoke/complete times and
outcome (ok, fail, or unknown on connection loss or timeout); and the
verifications: every acknowledged create and counter on every member,
session continuity, and linearizability of the register histories.

Reads of the registers are not part of the recorded histories: ZooKeeper
serves reads from the connected replica, which may lag (sequential, not
linearizable, consistency). The registers' final values, read once every
member has converged, are appended as reads that follow every other op.
"""

import random
import threading
import time

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, KazooException, NodeExistsError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import KazooState

import linearizability as lin
from cluster import wait_for

ROOT = "/w"
ACKS = f"{ROOT}/acks"
OWN = f"{ROOT}/own"
REGS = f"{ROOT}/regs"

# Bounded waits, all in seconds.
SESSION_TIMEOUT_S = 8.0
CONNECT_TIMEOUT_S = 20.0
OP_TIMEOUT_S = 4.0
STOP_TIMEOUT_S = 15.0
# Bound on one phase of load (`run_until_acked`): generous, a loaded machine is slow.
PHASE_TIMEOUT_S = 60.0
# Pacing keeps histories small enough for the Wing–Gong search.
OP_PAUSE_S = 0.01

CONNECTION_RETRY = dict(max_tries=-1, delay=0.1, backoff=1.5, max_delay=1.0)

# Op mix, as weights.
WEIGHT_CREATE = 3
WEIGHT_OWN_SET = 2
WEIGHT_REGISTER = 5


def connect(hosts, timeout=SESSION_TIMEOUT_S, randomize=False):
    """A started kazoo client that reconnects quickly and never retries commands."""
    zk = KazooClient(
        hosts=hosts,
        timeout=timeout,
        connection_retry=CONNECTION_RETRY,
        randomize_hosts=randomize,
    )
    zk.start(timeout=CONNECT_TIMEOUT_S)
    return zk


def rotated_hosts(cluster, i):
    """Client i prefers member i mod n, then the others in order."""
    ids = cluster.ids
    k = i % len(ids)
    return cluster.hosts(ids[k:] + ids[:k])



def close_quietly(zk):
    """Stops and closes a kazoo client, whatever state its connection is in."""
    try:
        zk.stop()
        zk.close()
    except KazooException:
        pass

class Client(threading.Thread):
    def __init__(self, workload, index):
        super().__init__(name=f"workload-{index}", daemon=True)
        self.w = workload
        self.index = index
        self.rng = random.Random(index)
        self.zk = connect(rotated_hosts(workload.cluster, index))
        self.session_start = self.zk.client_id[0]
        self.lost = False
        self.zk.add_listener(self._on_state)
        self.seq = 0
        self.own_acked = 0
        self.own_attempted = 0
        self.versions = {key: 0 for key in workload.registers}
        self.counts = {"ok": 0, "fail": 0, "unknown": 0}

    def _on_state(self, state):
        if state == KazooState.LOST:
            self.lost = True

    def run(self):
        while not self.w.stopping.is_set():
            choice = self.rng.choices(
                ("create", "own", "reg"), (WEIGHT_CREATE, WEIGHT_OWN_SET, WEIGHT_REGISTER)
            )[0]
            getattr(self, f"_{choice}")()
            time.sleep(OP_PAUSE_S)

    def _wait(self, async_result):
        """The op's value, or raises; a timeout is an unknown outcome."""
        return async_result.get(timeout=OP_TIMEOUT_S)

    def _create(self):
        self.seq += 1
        path = f"{ACKS}/c{self.index}-{self.seq}"
        try:
            self._wait(self.zk.create_async(path, b""))
            self.w.acked_creates.add(path)
            self.counts["ok"] += 1
        except NodeExistsError:
            # Only an earlier unknown attempt could have made it; it exists, so it is durable.
            self.w.acked_creates.add(path)
        except (KazooException, KazooTimeoutError):
            self.counts["unknown"] += 1

    def _own(self):
        self.own_attempted += 1
        value = str(self.own_attempted).encode()
        try:
            self._wait(self.zk.set_async(f"{OWN}/c{self.index}", value))
            self.own_acked = self.own_attempted
            self.counts["ok"] += 1
        except (KazooException, KazooTimeoutError):
            self.counts["unknown"] += 1

    def _reg(self):
        key = self.rng.choice(self.w.registers)
        path = f"{REGS}/{key}"
        self.seq += 1
        value = f"c{self.index}-{self.seq}".encode()
        history = self.w.history
        if self.rng.random() < self.w.write_fraction:
            op = history.invoke(self.index, lin.WRITE, key, value=value)
            version = -1
        else:
            version = self.versions[key]
            op = history.invoke(self.index, lin.CAS, key, value=value, expected=version)
        try:
            stat = self._wait(self.zk.set_async(path, value, version))
            history.ok(op, (stat.version,))
            self.versions[key] = stat.version
            self.counts["ok"] += 1
        except BadVersionError:
            history.fail(op, "BadVersion")
            self.counts["fail"] += 1
            self._learn_version(key, path)
        except (KazooException, KazooTimeoutError) as exc:
            history.unknown(op, type(exc).__name__)
            self.counts["unknown"] += 1

    def _learn_version(self, key, path):
        """Guess the next CAS's expected version from a (possibly stale) local read."""
        try:
            _, stat = self._wait(self.zk.get_async(path))
            self.versions[key] = stat.version
        except (KazooException, KazooTimeoutError):
            self.versions[key] += 1

    def close(self):
        close_quietly(self.zk)


class Workload:
    """Concurrent recorded write load against a cluster; start, fault, stop, verify."""

    def __init__(self, cluster, clients=4, registers=2, write_fraction=0.3):
        self.cluster = cluster
        self.n_clients = clients
        self.registers = [f"r{i}" for i in range(registers)]
        self.write_fraction = write_fraction
        self.history = lin.History()
        self.acked_creates = set()
        self.stopping = threading.Event()
        self.clients = []
        self.initial = {}

    def setup(self):
        zk = connect(self.cluster.hosts())
        try:
            for path in (ROOT, ACKS, OWN, REGS):
                zk.ensure_path(path)
            for i in range(self.n_clients):
                zk.create(f"{OWN}/c{i}", b"0")
            for key in self.registers:
                zk.create(f"{REGS}/{key}", b"")
                self.initial[key] = (b"", 0)
        finally:
            zk.stop()
            zk.close()

    def start(self):
        self.setup()
        self.clients = [Client(self, i) for i in range(self.n_clients)]
        for client in self.clients:
            client.start()
        return self

    def run_until_acked(self, count, what, timeout=PHASE_TIMEOUT_S):
        """Lets the load run until `count` more operations are acknowledged: a phase ends on
        the load's own progress, not after a fixed time a loaded machine may fill with nothing.
        Raises naming `what` (the phase) when that takes over `timeout` seconds."""
        goal = self.totals()["ok"] + count
        wait_for(what, lambda: self.totals()["ok"] >= goal, timeout)

    def stop(self):
        self.stopping.set()
        for client in self.clients:
            client.join(STOP_TIMEOUT_S)
            if client.is_alive():
                raise TimeoutError(f"{client.name} did not stop in {STOP_TIMEOUT_S}s")
        self.history.close_pending()

    def close(self):
        self.stopping.set()
        for client in self.clients:
            client.close()

    def totals(self):
        out = {"ok": 0, "fail": 0, "unknown": 0}
        for client in self.clients:
            for k, v in client.counts.items():
                out[k] += v
        return out

    # ------------------------------------------------------------ verification

    def sessions_continued(self):
        """Client indexes whose session was lost or replaced during the run."""
        bad = []
        for client in self.clients:
            if client.lost or client.zk.client_id is None or client.zk.client_id[0] != client.session_start:
                bad.append(client.index)
        return bad

    def verify_durable(self, ids=None):
        """Every acknowledged create and counter is on each member `ids`; returns the
        final register values seen (equal on all members, else an AssertionError)."""
        ids = ids or [s for s, m in self.cluster.members.items() if m.running and not m.paused]
        finals = {}
        for sid in ids:
            zk = connect(self.cluster[sid].hosts)
            try:
                children = {f"{ACKS}/{c}" for c in zk.get_children(ACKS)}
                missing = self.acked_creates - children
                assert not missing, f"member {sid} lacks {len(missing)} acked creates: {sorted(missing)[:5]}"
                for client in self.clients:
                    data, _ = zk.get(f"{OWN}/c{client.index}")
                    assert int(data) >= client.own_acked, (
                        f"member {sid}: counter c{client.index} = {int(data)} < acked {client.own_acked}"
                    )
                regs = {}
                for key in self.registers:
                    data, stat = zk.get(f"{REGS}/{key}")
                    regs[key] = (data, stat.version)
                finals[sid] = regs
            finally:
                zk.stop()
                zk.close()
        first = next(iter(finals.values()))
        assert all(v == first for v in finals.values()), f"registers differ across members: {finals}"
        return first

    def check_linearizable(self, final_registers):
        """Wing–Gong over each register's history plus its converged final value."""
        for key, (data, version) in final_registers.items():
            op = self.history.invoke(-1, lin.READ, key)
            self.history.ok(op, (data, version))
        return lin.check_history(self.history, self.initial)
