"""Exactly-once writes through repeated leader crashes, on a CPU-starved machine.

Owns: a 3-member ensemble, CLIENTS kazoo clients (client i prefers member i mod 3) doing
conditional setData on a few shared counter znodes and sequential creates with unique
payloads, a busy-loop CPU burner per core, and KILLS rounds of leader kill -9 + restart.
Every client op is recorded: invoke/complete times and ok / failed (with the error) /
unknown (connection loss, session expiry, timeout: it may or may not have taken effect).

Values are self-describing so the whole version history of a counter can be rebuilt from
its final value. A conditional write of client c's n-th op, made believing the counter held
value `prev` at version v (from its own acknowledged write or from a read), stores

    c<c>:<n>|<prev id>|<v>        (the initial value, version 0, is `init`)

The final value names the write that made the last version, that write's payload names the
one before it, and so on down to `init`. That chain must step down one version at a time
and end at version 0; it gives, for every version, the one write that produced it. Then:

- an acknowledged conditional write produced exactly expected+1, and the chain holds that
  write's payload at that version (not applied twice, not answered for another request);
- a write answered BadVersion is nowhere in the chain (it was not applied);
- an unknown write is in the chain at most once (and if its read-back saw it, it is there);
- every value in the chain was written by some recorded op (nothing invented);
- each counter's CAS history with its final value is linearizable (linearizability.py);
- every acknowledged create exists exactly once, at the path it was answered with; no
  payload appears twice among the sequential nodes; a create that failed definitely is absent;
- all members hold the same counters and the same sequential nodes.

After an unknown outcome a client must not guess. It syncs, then reads (the server it
reconnected to may lag: a stale read is not a server bug), and uses what it read only as a
fact about the past: a read showing its payload proves the write took effect; a read not
showing it proves nothing (the request may still be queued at the leader behind a dead
follower's connection), so a create is never re-sent with the same payload and a counter
write is re-tried with a new payload on top of the value just read.
"""

import collections
import os
import random
import subprocess
import sys
import threading
import time

import pytest
from kazoo.exceptions import (
    BadVersionError,
    ConnectionClosedError,
    ConnectionLoss,
    KazooException,
    OperationTimeoutError,
    SessionExpiredError,
    SessionMovedError,
)
from kazoo.handlers.threading import KazooTimeoutError

import linearizability as lin
from workload import OP_TIMEOUT_S, close_quietly, connect, rotated_hosts

ROOT = "/x"
CTRS = f"{ROOT}/ctr"
SEQ = f"{ROOT}/seq"
INITIAL = b"init"

CLIENTS = 6
COUNTERS = 3
KILLS = 5
# Load before each kill, and between the new leader and restarting the old one, in seconds.
PHASE_S = 2.0
AFTER_KILL_S = 1.0
WEIGHT_CAS = 3
WEIGHT_CREATE = 2
OP_PAUSE_S = 0.02
# A recovery read after an unknown outcome is retried this long, then left for later.
RECOVER_TIMEOUT_S = 10.0
RECOVER_PAUSE_S = 0.1
STOP_TIMEOUT_S = 30.0
BURNER_STOP_TIMEOUT_S = 5.0
# The whole test aims at ~90 s on 2 cores against ZooKeeper; this is its hard ceiling.
TEST_TIMEOUT_S = 180

# Errors after which the outcome of a write is unknown. Any other error is a finding.
UNKNOWN_ERRORS = (
    ConnectionLoss,
    ConnectionClosedError,
    OperationTimeoutError,
    SessionExpiredError,
    SessionMovedError,
    KazooTimeoutError,
)


def payload_id(data):
    return data.split(b"|", 1)[0].decode()


def parse_payload(data):
    """(id, prev id, expected version) of a counter value, or None for the initial value."""
    if data == INITIAL:
        return None
    ident, prev, expected = data.decode().split("|")
    return ident, prev, int(expected)


def seq_id(name):
    """The payload id in a sequential node's name `<id>-<10 digits>`."""
    return name.rsplit("-", 1)[0]


class Client(threading.Thread):
    def __init__(self, test, index):
        super().__init__(name=f"exactly-once-{index}", daemon=True)
        self.t = test
        self.index = index
        self.rng = random.Random(1000 + index)
        self.zk = connect(rotated_hosts(test.cluster, index))
        self.n = 0
        # counter key -> (id of the value, version) last learned, or None: read first.
        self.known = {key: None for key in test.keys}
        self.creates = []  # dicts: id, invoke, complete, result, path, error, seen
        self.unexpected = []
        self.counts = collections.Counter()

    def next_id(self):
        self.n += 1
        return f"c{self.index}:{self.n}"

    def run(self):
        while not self.t.stopping.is_set():
            if self.rng.choices((True, False), (WEIGHT_CAS, WEIGHT_CREATE))[0]:
                self.cas(self.rng.choice(self.t.keys))
            else:
                self.create()
            time.sleep(OP_PAUSE_S)

    # ------------------------------------------------------------ reads after doubt

    def read_synced(self, path):
        """sync, then getData from the server we are connected to: (data, version), or
        None if that did not work in time."""
        deadline = time.monotonic() + RECOVER_TIMEOUT_S
        while not self.t.stopping.is_set() and time.monotonic() < deadline:
            try:
                self.zk.sync_async(path).get(timeout=OP_TIMEOUT_S)
                data, stat = self.zk.get_async(path).get(timeout=OP_TIMEOUT_S)
                return data, stat.version
            except UNKNOWN_ERRORS:
                time.sleep(RECOVER_PAUSE_S)
        return None

    def children_synced(self, path):
        deadline = time.monotonic() + RECOVER_TIMEOUT_S
        while not self.t.stopping.is_set() and time.monotonic() < deadline:
            try:
                self.zk.sync_async(path).get(timeout=OP_TIMEOUT_S)
                return self.zk.get_children_async(path).get(timeout=OP_TIMEOUT_S)
            except UNKNOWN_ERRORS:
                time.sleep(RECOVER_PAUSE_S)
        return None

    def learn(self, key):
        read = self.read_synced(f"{CTRS}/{key}")
        if read is not None:
            data, version = read
            self.known[key] = (payload_id(data), version)
        return read

    # ------------------------------------------------------------ ops

    def cas(self, key):
        if self.known[key] is None and self.learn(key) is None:
            return
        prev, version = self.known[key]
        ident = self.next_id()
        data = f"{ident}|{prev}|{version}".encode()
        op = self.t.history.invoke(self.index, lin.CAS, key, value=data, expected=version)
        self.t.writes[ident] = op
        try:
            stat = self.zk.set_async(f"{CTRS}/{key}", data, version).get(timeout=OP_TIMEOUT_S)
            self.t.history.ok(op, (stat.version,))
            self.known[key] = (ident, stat.version)
            self.counts["cas ok"] += 1
        except BadVersionError:
            self.t.history.fail(op, "BadVersion")
            self.known[key] = None
            self.counts["cas BadVersion"] += 1
        except UNKNOWN_ERRORS as exc:
            self.t.history.unknown(op, type(exc).__name__)
            self.known[key] = None
            self.counts["cas unknown"] += 1
            read = self.learn(key)
            if read is not None and payload_id(read[0]) == ident:
                op.error += f"; read back at version {read[1]}: applied"
                self.t.seen_applied.add(ident)
        except KazooException as exc:
            self.t.history.unknown(op, type(exc).__name__)
            self.known[key] = None
            self.unexpected.append(f"setData {ident}: {exc!r}")

    def create(self):
        ident = self.next_id()
        rec = {"id": ident, "invoke": time.monotonic(), "complete": None, "result": None,
               "path": None, "error": None, "seen": None}
        self.creates.append(rec)
        try:
            path = self.zk.create_async(f"{SEQ}/{ident}-", ident.encode(), sequence=True).get(
                timeout=OP_TIMEOUT_S
            )
            rec.update(complete=time.monotonic(), result=lin.OK, path=path)
            self.counts["create ok"] += 1
        except UNKNOWN_ERRORS as exc:
            rec.update(result=lin.UNKNOWN, error=type(exc).__name__)
            self.counts["create unknown"] += 1
            # Learn what we can; the next create uses a new payload either way.
            names = self.children_synced(SEQ)
            if names is not None:
                rec["seen"] = [n for n in names if seq_id(n) == ident]
        except KazooException as exc:
            rec.update(complete=time.monotonic(), result=lin.FAIL, error=repr(exc))
            self.unexpected.append(f"create {ident}: {exc!r}")

    def close(self):
        close_quietly(self.zk)


class ExactlyOnce:
    def __init__(self, cluster):
        self.cluster = cluster
        self.keys = [f"k{i}" for i in range(COUNTERS)]
        self.history = lin.History()
        self.writes = {}  # counter write id -> its Op
        self.seen_applied = set()  # ids an unknown write's read-back found applied
        self.stopping = threading.Event()
        self.clients = []

    def start(self):
        zk = connect(self.cluster.hosts())
        try:
            zk.ensure_path(SEQ)
            zk.ensure_path(CTRS)
            for key in self.keys:
                zk.create(f"{CTRS}/{key}", INITIAL)
        finally:
            zk.stop()
            zk.close()
        self.clients = [Client(self, i) for i in range(CLIENTS)]
        for c in self.clients:
            c.start()

    def stop(self):
        self.stopping.set()
        for c in self.clients:
            c.join(STOP_TIMEOUT_S)
            assert not c.is_alive(), f"{c.name} did not stop in {STOP_TIMEOUT_S}s"
        self.history.close_pending()

    def close(self):
        self.stopping.set()
        for c in self.clients:
            c.close()

    def counts(self):
        total = collections.Counter()
        for c in self.clients:
            total.update(c.counts)
        return dict(total)

    # ------------------------------------------------------------ reading the result

    def read_member(self, sid):
        """{key: (data, version)} and {seq child name: data} as member `sid` holds them."""
        zk = connect(self.cluster[sid].hosts)
        try:
            counters = {}
            for key in self.keys:
                data, stat = zk.get(f"{CTRS}/{key}")
                counters[key] = (data, stat.version)
            names = zk.get_children(SEQ)
            pending = {n: zk.get_async(f"{SEQ}/{n}") for n in names}
            seq = {n: r.get(timeout=OP_TIMEOUT_S)[0] for n, r in pending.items()}
            return counters, seq
        finally:
            zk.stop()
            zk.close()

    # ------------------------------------------------------------ checks

    def chain(self, key, final):
        """{version: write id} rebuilt from the final value; raises AssertionError."""
        data, version = final
        chain = {}
        while version > 0:
            parsed = parse_payload(data)
            assert parsed is not None, f"{key}: initial value at version {version}"
            ident, prev, expected = parsed
            assert ident in self.writes, f"{key}: version {version} holds {ident}, which no client wrote"
            assert self.writes[ident].value == data, f"{key}: {ident}'s payload altered: {data!r}"
            assert expected == version - 1, (
                f"{key}: version {version} holds {ident}, written expecting version {expected}: "
                "a write applied at the wrong version (applied twice, or without its version check)"
            )
            assert ident not in chain.values(), f"{key}: {ident} holds two versions"
            chain[version] = ident
            version -= 1
            if version == 0:
                assert prev == "init", f"{key}: version 1 was written on top of {prev}, not init"
                data = INITIAL
            else:
                assert prev in self.writes, f"{key}: {ident} was written on top of unknown {prev}"
                data = self.writes[prev].value
        assert data == INITIAL, f"{key}: version 0 is {data!r}"
        return chain

    def check_counters(self, finals):
        problems = []
        applied = {}
        for key in self.keys:
            try:
                chain = self.chain(key, finals[key])
            except AssertionError as exc:
                problems.append(str(exc))
                continue
            applied.update({ident: (key, v) for v, ident in chain.items()})
        if problems:
            return problems, applied
        for ident, op in self.writes.items():
            where = applied.get(ident)
            if op.result == lin.OK:
                produced = op.output[0]
                if produced != op.expected + 1:
                    problems.append(f"{ident} acknowledged version {produced}, expected {op.expected}+1")
                elif where != (op.key, produced):
                    problems.append(
                        f"{ident} acknowledged version {produced} of {op.key}, "
                        f"but that version holds {applied_at(applied, op.key, produced)}"
                    )
            elif op.result == lin.FAIL and where is not None:
                problems.append(f"{ident} answered {op.error} but was applied as {where}")
            elif op.result == lin.UNKNOWN and ident in self.seen_applied and where is None:
                problems.append(f"{ident}: its read-back showed it applied, but it is not in the history")
        return problems, applied

    def check_creates(self, seq):
        problems = []
        ids = collections.Counter(seq_id(n) for n in seq)
        by_id = {seq_id(n): n for n in seq}
        for ident, count in ids.items():
            if count > 1:
                problems.append(f"create payload {ident} exists {count} times: "
                                f"{sorted(n for n in seq if seq_id(n) == ident)}")
        for name, data in seq.items():
            if data.decode() != seq_id(name):
                problems.append(f"{name} holds {data!r}")
        recorded = {}
        for c in self.clients:
            for rec in c.creates:
                recorded[rec["id"]] = rec
        for ident in ids:
            if ident not in recorded:
                problems.append(f"sequential node {by_id[ident]} was created by no client")
        for ident, rec in recorded.items():
            if rec["result"] == lin.OK:
                if ident not in by_id:
                    problems.append(f"acknowledged create {rec['path']} is missing")
                elif f"{SEQ}/{by_id[ident]}" != rec["path"]:
                    problems.append(f"create {ident} answered {rec['path']} but exists as {by_id[ident]}")
            elif rec["result"] == lin.FAIL and ident in by_id:
                problems.append(f"create {ident} failed with {rec['error']} but exists")
            elif rec["result"] == lin.UNKNOWN and rec["seen"] and ident not in by_id:
                problems.append(f"create {ident} was seen after sync as {rec['seen']} but is missing")
        return problems


def applied_at(applied, key, version):
    return next((i for i, kv in applied.items() if kv == (key, version)), "nothing")


def start_burners():
    """A busy loop per core, in its own process group."""
    return [
        subprocess.Popen(
            [sys.executable, "-c", "while True: pass"],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        for _ in range(os.cpu_count() or 1)
    ]


def stop_burners(burners):
    for p in burners:
        if p.poll() is None:
            p.kill()
    for p in burners:
        try:
            p.wait(BURNER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass


@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_exactly_once_through_leader_kills(make_cluster):
    cluster = make_cluster(3, proxied=False)
    run = ExactlyOnce(cluster)
    burners = start_burners()
    started = time.monotonic()
    try:
        run.start()
        leaders = []
        for _ in range(KILLS):
            time.sleep(PHASE_S)
            old = cluster.wait_quorum()
            leaders.append(old)
            cluster[old].kill()
            cluster.wait_quorum(ids=[s for s in cluster.ids if s != old])
            time.sleep(AFTER_KILL_S)
            cluster[old].start()
            cluster.wait_quorum(ids=cluster.ids)
        time.sleep(PHASE_S)
        run.stop()
        stop_burners(burners)
        cluster.wait_quorum(ids=cluster.ids)
        cluster.wait_converged()
        loaded = time.monotonic() - started

        views = {sid: run.read_member(sid) for sid in cluster.ids}
        finals, seq = views[cluster.ids[0]]
        for sid, (counters, children) in views.items():
            assert counters == finals, f"member {sid} counters {counters} != {finals}"
            assert children.keys() == seq.keys(), (
                f"member {sid} sequential nodes differ: "
                f"{sorted(children.keys() ^ seq.keys())[:10]}"
            )

        unexpected = [u for c in run.clients for u in c.unexpected]
        assert not unexpected, f"errors that are neither definite nor connection trouble: {unexpected[:10]}"
        problems, applied = run.check_counters(finals)
        problems += run.check_creates(seq)
        assert not problems, "\n".join(problems[:20])

        for key, (data, version) in finals.items():
            op = run.history.invoke(-1, lin.READ, key)
            run.history.ok(op, (data, version))
        t0 = time.monotonic()
        failures = lin.check_history(run.history, {key: (INITIAL, 0) for key in run.keys})
        assert not failures, "\n\n".join(f"counter {k}:\n{v}" for k, v in failures.items())

        counts = run.counts()
        print(f"\nleaders killed {leaders}; {loaded:.1f}s of load; ops {counts}; "
              f"versions {[v for _, v in finals.values()]}; sequential nodes {len(seq)}; "
              f"unknown writes applied {sum(1 for i, o in run.writes.items() if o.result == lin.UNKNOWN and i in applied)}"
              f" (read back {len(run.seen_applied)}); linearizability check {time.monotonic() - t0:.1f}s")
        assert counts.get("cas ok", 0) > 0 and counts.get("create ok", 0) > 0, counts
        assert counts.get("cas BadVersion", 0) > 0, f"no conflicting conditional write: {counts}"
    finally:
        stop_burners(burners)
        run.close()


def test_checks_catch_double_applies_and_wrong_answers():
    """The checks above on hand-made results (no server): a correct one passes; a write
    applied twice, a BadVersion write that was applied, an answer for another request, and
    a duplicated or missing create are each reported."""
    from types import SimpleNamespace

    run = ExactlyOnce(cluster=None)
    run.keys = ["k0"]
    h = run.history

    def write(ident, prev, expected, result, version=None):
        op = h.invoke(0, lin.CAS, "k0", value=f"{ident}|{prev}|{expected}".encode(), expected=expected)
        {lin.OK: lambda: h.ok(op, (version,)), lin.FAIL: lambda: h.fail(op, "BadVersion"),
         lin.UNKNOWN: lambda: h.unknown(op, "ConnectionLoss")}[result]()
        run.writes[ident] = op
        return op.value

    v1 = write("c0:1", "init", 0, lin.OK, 1)
    v2 = write("c1:1", "c0:1", 1, lin.OK, 2)
    v2b = write("c2:1", "c0:1", 1, lin.FAIL)
    assert run.check_counters({"k0": (v2, 2)})[0] == []
    assert run.check_counters({"k0": (v1, 1)})[0]  # c1:1 acknowledged but lost
    assert run.check_counters({"k0": (v2, 3)})[0]  # c1:1 applied again at version 3
    assert run.check_counters({"k0": (v2b, 2)})[0]  # BadVersion answered, yet applied
    write("c0:2", "c1:1", 2, lin.OK, 2)  # answered with another request's version
    assert run.check_counters({"k0": (v2, 2)})[0]

    def creates(*recs):
        run.clients = [SimpleNamespace(creates=[dict(id=i, result=r, path=p, error=None, seen=None)
                                                for i, r, p in recs])]

    creates(("c0:1", lin.OK, f"{SEQ}/c0:1-0000000000"), ("c0:2", lin.UNKNOWN, None))
    good = {"c0:1-0000000000": b"c0:1", "c0:2-0000000001": b"c0:2"}
    assert run.check_creates(good) == []
    assert run.check_creates({**good, "c0:2-0000000002": b"c0:2"})  # applied twice
    assert run.check_creates({"c0:2-0000000001": b"c0:2"})  # acknowledged, missing
    assert run.check_creates({**good, "c9:1-0000000003": b"c9:1"})  # nobody created it
