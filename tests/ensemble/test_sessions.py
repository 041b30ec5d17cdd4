"""Session failover across ensemble members, with kazoo.

Owns: (g) a client whose server is killed -9 moves to another member on the
same session, keeping its ephemerals and its watches; a session whose
client goes silent (SIGSTOP of the client process, TCP still open) expires
on time, even when the leader is killed -9 meanwhile; and expiry decided
across a leader change without a storm: of sessions on every member, those
whose clients live on keep their session and ephemerals through a leader
kill -9, those whose clients died (raw sessions dropped without closing)
expire, each by exactly one `expiring session` decision of the new leader.

kazoo 2.11 drops its watchers on every disconnect and never sends
SetWatches, unlike the Java and C clients. `rearm_watches` does what those
clients do after a reconnect: it puts the callbacks back and sends
SetWatches (opcode 101) with the last zxid seen, so the server re-registers
the watches and fires at once any whose node changed in between.
"""

import collections
import queue
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from kazoo.exceptions import KazooException
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.serialization import int_struct, long_struct, write_string
from kazoo.protocol.states import EventType, KazooState

from cluster import QUORUM_TIMEOUT_S, wait_for
from workload import close_quietly, connect

# The raw idle session of the shared kazoo-suite harness (tests/python).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
from zkharness import RawSession  # noqa: E402

# Bounded waits, all in seconds.
RECONNECT_TIMEOUT_S = 30.0
EVENT_TIMEOUT_S = 15.0
CHILD_READY_TIMEOUT_S = 30.0
# The silent client's session timeout, and how long after it goes silent its
# ephemeral must surely still exist.
SILENT_SESSION_TIMEOUT_S = 4.0
EARLY_CHECK_S = 1.0
# Expiry bound: session timeout, plus an election, plus slack for a loaded machine.
EXPIRY_DEADLINE_S = 30.0

# Every session of the expiry-across-a-leader-change test has this timeout, live or dead: a
# server that expired sessions wholesale after the election would take the live ones too.
STORM_SESSION_TIMEOUT_S = 8.0
# Expiry of a dead session: the new leader's full session timeout after the election, plus
# the election, plus slack for a loaded machine.
STORM_EXPIRY_BOUND_S = QUORUM_TIMEOUT_S + STORM_SESSION_TIMEOUT_S

# The leader's expiry decision in a member's log: zkw's `expiring session session=0x..`,
# ZooKeeper's `Expiring session 0x.., timeout of ..ms exceeded`.
EXPIRY_DECISION = re.compile(r"expiring session\b\D*?0x([0-9a-f]+)", re.IGNORECASE)
ID_MASK = (1 << 64) - 1

CLIENT_SCRIPT = """
import sys, time
from kazoo.client import KazooClient
zk = KazooClient(hosts=sys.argv[1], timeout=float(sys.argv[2]))
zk.start(timeout=20)
zk.create("/exp", b"", ephemeral=True)
print("ready %x" % zk.client_id[0], flush=True)
time.sleep(600)
"""


SET_WATCHES_OP = 101


class SetWatches:
    """setWatches(relativeZxid, dataWatches, existWatches, childWatches); empty reply."""

    type = SET_WATCHES_OP

    def __init__(self, relative_zxid, data, exist, child):
        self.relative_zxid = relative_zxid
        self.lists = (data, exist, child)

    def serialize(self):
        b = bytearray(long_struct.pack(self.relative_zxid))
        for paths in self.lists:
            b.extend(int_struct.pack(len(paths)))
            for path in paths:
                b.extend(write_string(path))
        return b

    @classmethod
    def deserialize(cls, buffer, offset):
        return None


def rearm_watches(zk, data=(), exist=(), child=()):
    """Re-register (path, callback) watches on the current connection, as the Java
    client does on reconnect; callbacks go back first so no event is missed."""
    for path, callback in list(data) + list(exist):
        zk._data_watchers[path].add(callback)
    for path, callback in child:
        zk._child_watchers[path].add(callback)
    request = SetWatches(zk.last_zxid, [p for p, _ in data], [p for p, _ in exist], [p for p, _ in child])
    result = zk.handler.async_result()
    zk._call(request, result)
    result.get(timeout=EVENT_TIMEOUT_S)


def connected_member(cluster, zk):
    """Id of the member the kazoo client is connected to (None while disconnected)."""
    sock = zk._connection._socket
    if sock is None:
        return None
    try:
        port = sock.getpeername()[1]
    except OSError:
        return None
    return next((s for s, m in cluster.members.items() if m.client_port == port), None)


def real_events(q):
    """Watch callback feeding q, skipping kazoo's connection-state (type NONE) events."""

    def put(event):
        if event.type != EventType.NONE:
            q.put(event)

    return put


def test_ephemerals_and_watches_survive_server_kill(make_cluster):
    cluster = make_cluster(3)
    zk = connect(cluster.hosts(), randomize=True)
    other = None
    try:
        session = zk.client_id[0]
        zk.create("/eph", b"mine", ephemeral=True)
        zk.create("/watched", b"0")
        zk.create("/kids")
        events = queue.Queue()
        on_event = real_events(events)
        zk.get("/watched", watch=on_event)
        zk.get_children("/kids", watch=on_event)
        zk.exists("/later", watch=on_event)
        states = []
        zk.add_listener(states.append)

        victim = connected_member(cluster, zk)
        assert victim is not None
        cluster[victim].kill()
        cluster.wait_quorum()
        wait_for(
            "reconnect to another member",
            lambda: zk.state == KazooState.CONNECTED and connected_member(cluster, zk) not in (None, victim),
            RECONNECT_TIMEOUT_S,
        )
        assert zk.client_id[0] == session, "the client got a new session"
        assert KazooState.LOST not in states
        rearm_watches(zk, data=[("/watched", on_event)], exist=[("/later", on_event)], child=[("/kids", on_event)])

        survivors = [s for s in cluster.ids if s != victim]
        other = connect(cluster.hosts(survivors))
        assert other.get("/eph")[0] == b"mine", "the ephemeral did not survive"
        other.set("/watched", b"1")
        other.create("/kids/a")
        other.create("/later")
        seen = {(e.type, e.path) for e in (events.get(timeout=EVENT_TIMEOUT_S) for _ in range(3))}
        assert seen == {
            (EventType.CHANGED, "/watched"),
            (EventType.CHILD, "/kids"),
            (EventType.CREATED, "/later"),
        }
        cluster[victim].start()
        cluster.wait_quorum(ids=cluster.ids)
    finally:
        for client in (zk, other):
            if client is not None:
                client.stop()
                client.close()


def start_silent_client(member):
    """A separate process holding an ephemeral /exp; returns (process, session id)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CLIENT_SCRIPT, member.hosts, str(SILENT_SESSION_TIMEOUT_S)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=Path(__file__).parent,
    )
    deadline = time.monotonic() + CHILD_READY_TIMEOUT_S
    line = ""
    while time.monotonic() < deadline and not line.startswith("ready"):
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
    if not line.startswith("ready"):
        proc.kill()
        proc.wait(CHILD_READY_TIMEOUT_S)
        raise RuntimeError("silent client did not create its ephemeral")
    return proc, int(line.split()[1], 16)


def test_session_expires_when_client_stays_away_across_leader_kill(make_cluster):
    cluster = make_cluster(3)
    leader = cluster.leader()
    follower = next(s for s in cluster.ids if s != leader)
    proc, _ = start_silent_client(cluster[follower])
    # The watcher's own server may restart with the election: it polls, as
    # kazoo drops watches on a disconnect.
    watcher = connect(cluster.hosts(), randomize=True)
    try:
        assert watcher.exists("/exp") is not None
        # Silent but connected: no pings, no close, the TCP connection stays open.
        proc.send_signal(signal.SIGSTOP)
        silent_at = time.monotonic()
        cluster[leader].kill()
        time.sleep(max(0.0, EARLY_CHECK_S - (time.monotonic() - silent_at)))
        assert exists_retrying(watcher, "/exp"), "expired too early"
        wait_for("session expiry", lambda: not exists_retrying(watcher, "/exp"), EXPIRY_DEADLINE_S)
        elapsed = time.monotonic() - silent_at
        assert elapsed >= SILENT_SESSION_TIMEOUT_S * 0.5, f"expired after only {elapsed:.1f}s"
    finally:
        proc.kill()
        proc.wait(CHILD_READY_TIMEOUT_S)
        watcher.stop()
        watcher.close()


def exists_retrying(zk, path):
    """exists(path), retried across connection loss within the event bound."""
    deadline = time.monotonic() + EVENT_TIMEOUT_S
    while True:
        try:
            return zk.exists_async(path).get(timeout=EVENT_TIMEOUT_S) is not None
        except (KazooException, KazooTimeoutError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def expiry_decisions(member):
    """Session ids (unsigned) this member's log says it decided to expire, with repeats."""
    text = member.log_path.read_text(errors="replace") if member.log_path.exists() else ""
    return [int(m.group(1), 16) for m in EXPIRY_DECISION.finditer(text)]


def dead_session(member, path):
    """A raw session on `member` holding the ephemeral `path`, whose client then dies: the
    socket is dropped without closeSession, so only expiry can end the session."""
    raw = RawSession(member.client_port, int(STORM_SESSION_TIMEOUT_S * 1000))
    try:
        assert raw.create(path) == 0, f"raw create of {path} on member {member.id} failed"
    finally:
        raw.close()
    return raw.session_id & ID_MASK


def test_expiry_across_a_leader_change_takes_only_the_dead_sessions(make_cluster):
    cluster = make_cluster(3, proxied=False)
    leader = cluster.leader()
    checker = connect(cluster.hosts())
    checker.ensure_path("/live")
    checker.ensure_path("/dead")
    live = {}  # member the client started on -> (kazoo client, session id, state changes)
    try:
        for sid in cluster.ids:
            order = [sid] + [s for s in cluster.ids if s != sid]
            zk = connect(cluster.hosts(order), timeout=STORM_SESSION_TIMEOUT_S)
            states = []
            zk.add_listener(states.append)
            live[sid] = (zk, zk.client_id[0] & ID_MASK, states)
            assert connected_member(cluster, zk) == sid, "a live client is not on its member"
            zk.create(f"/live/{sid}", b"", ephemeral=True)
        dead = {sid: dead_session(cluster[sid], f"/dead/{sid}") for sid in cluster.ids}

        # The dead sessions' deadlines are seconds away: the old leader cannot have expired
        # them; the new leader must.
        cluster[leader].kill()
        survivors = [s for s in cluster.ids if s != leader]
        new = cluster.wait_quorum(ids=survivors)

        def dead_gone():
            checker.sync("/dead")
            return checker.get_children("/dead") == []

        wait_for("the dead sessions' ephemerals removed", dead_gone, STORM_EXPIRY_BOUND_S)
        # One more dead session, started now: its expiry is the servers' own proof that a full
        # session timeout has passed since the others expired, which any live session whose
        # pings the new leader did not count would not have outlived.
        canary = dead_session(cluster[new], "/dead/canary")
        wait_for("the canary session's ephemeral removed", dead_gone, STORM_EXPIRY_BOUND_S)

        for sid, (zk, session, states) in live.items():
            wait_for(f"live client {sid} connected", lambda: zk.state == KazooState.CONNECTED,
                     RECONNECT_TIMEOUT_S)
            assert zk.client_id[0] & ID_MASK == session, f"live client {sid} got a new session"
            assert KazooState.LOST not in states, f"live client {sid} lost its session"
        checker.sync("/live")
        assert sorted(checker.get_children("/live")) == sorted(str(s) for s in live), (
            "a live session's ephemeral is gone"
        )

        decided = {sid: expiry_decisions(member) for sid, member in cluster.members.items()}
        counts = collections.Counter(s for ids in decided.values() for s in ids)
        expected = set(dead.values()) | {canary}
        assert {s: counts[s] for s in expected} == {s: 1 for s in expected}, (
            "each dead session must be expired by one decision: "
            f"{[hex(s) for s in counts.elements()]}"
        )
        assert set(counts) == expected, (
            f"sessions expired besides the dead ones (live: "
            f"{[hex(s) for _, s, _ in live.values()]}): {[hex(s) for s in set(counts) - expected]}"
        )
        by_new = set(decided[new])
        assert set(dead.values()) <= by_new, f"not decided by the new leader {new}: {decided}"
        print(f"\nleader {leader} -> {new}; expired {[hex(s) for s in sorted(expected)]}")
    finally:
        for zk, _, _ in live.values():
            close_quietly(zk)
        close_quietly(checker)
