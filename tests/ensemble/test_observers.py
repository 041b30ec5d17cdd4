"""Observers through a leader failover.

Owns: a 3-participant ensemble plus one observer (`server.4=...:observer`, `peerType=observer`
in its zoo.cfg) under recorded write load, one of whose clients prefers the observer. A kazoo
client connected only to the observer reads all along; the leader is killed -9. Proven: the
observer served that client's reads before the kill and serves them again after the new leader
is elected, on the same session; a write through the observer (forwarded to the new leader) is
acknowledged; a write made through the new leader is what the observer returns after a sync;
the observer stays an observer; and at the end every acknowledged write is on every member,
the observer included, with equal zxids and digests (the observer's among those compared) and
linearizable registers. Runs on zkw and on ZooKeeper 3.8 alike.
"""

import threading

from kazoo.exceptions import KazooException
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import KazooState

from cluster import QUORUM_TIMEOUT_S, wait_for
from test_failover import Probe
from test_faults import finish
from workload import Workload, close_quietly, connect

OBSERVER = 4
READ_PATH = "/observed"
# The reader's session outlives the failover by far (an observer drops its clients until it
# follows the new leader), so the same session must come back.
READER_SESSION_TIMEOUT_S = 20.0
# Reads the observer must serve before the fault, and again after the new leader is elected.
READS_PER_PHASE = 20
# Bounded waits, all in seconds.
READ_OP_TIMEOUT_S = 2.0
READER_STOP_TIMEOUT_S = 10.0
READ_PAUSE_S = 0.01
# Acknowledged operations per phase of load (three phases): enough for every client, the
# observer's included, to write in each; small enough that zkw on a loaded 2-core machine
# (~20 acknowledged operations a second here) stays far under the test's ceiling.
PHASE_OPS = 150


class ObserverReader(threading.Thread):
    """A session on the observer alone, reading READ_PATH in a loop; counts served reads."""

    def __init__(self, member):
        super().__init__(name="observer-reader", daemon=True)
        self.zk = connect(member.hosts, timeout=READER_SESSION_TIMEOUT_S)
        self.session = self.zk.client_id[0]
        self.states = []
        self.zk.add_listener(self.states.append)
        self.served = 0
        self.failed = 0
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            try:
                self.zk.get_async(READ_PATH).get(timeout=READ_OP_TIMEOUT_S)
                self.served += 1
            except (KazooException, KazooTimeoutError):
                self.failed += 1
            self.stopping.wait(READ_PAUSE_S)

    def wait_served(self, count, what):
        goal = self.served + count
        wait_for(what, lambda: self.served >= goal, QUORUM_TIMEOUT_S)

    def close(self):
        self.stopping.set()
        self.join(READER_STOP_TIMEOUT_S)
        close_quietly(self.zk)


def test_observer_serves_and_catches_up_through_a_leader_failover(make_cluster):
    cluster = make_cluster(4, observers=(OBSERVER,), proxied=False)
    participants = [s for s in cluster.ids if s != OBSERVER]
    wait_for("member 4 observes", lambda: cluster[OBSERVER].mode() == "observer", QUORUM_TIMEOUT_S)
    setup = connect(cluster.hosts(participants))
    try:
        setup.create(READ_PATH, b"before")
    finally:
        close_quietly(setup)
    # Client 3 of 4 prefers member 4: part of the recorded load goes through the observer.
    workload = Workload(cluster, clients=4).start()
    reader = probe = new_zk = None
    try:
        workload.run_until_acked(PHASE_OPS, "warm-up")
        reader = ObserverReader(cluster[OBSERVER])
        reader.start()
        reader.wait_served(READS_PER_PHASE, "the observer served no reads before the fault")
        probe = Probe(cluster, [OBSERVER])  # one write through the observer acknowledged

        old = cluster.leader()
        assert old != OBSERVER
        cluster[old].kill()
        survivors = [s for s in cluster.ids if s != old]
        new = cluster.wait_quorum(ids=survivors)
        assert new not in (old, OBSERVER), f"modes {cluster.modes()}"

        took = probe.write_until_acked(QUORUM_TIMEOUT_S)
        assert took is not None, f"no write through the observer acknowledged: {cluster.modes()}"
        reader.wait_served(READS_PER_PHASE, "the observer served no reads after the failover")
        new_zk = connect(cluster[new].hosts)
        new_zk.set(READ_PATH, b"after")
        reader.zk.sync(READ_PATH)
        assert reader.zk.get(READ_PATH)[0] == b"after", "the observer missed the new leader's write"
        assert reader.zk.client_id[0] == reader.session, "the observer's client got a new session"
        assert KazooState.LOST not in reader.states, "the observer's client lost its session"
        assert cluster[OBSERVER].mode() == "observer"
        print(f"\nobserver reads: {reader.served} served, {reader.failed} failed during the "
              f"failover; forwarded write {took:.2f}s after the new leader {new}")

        workload.run_until_acked(PHASE_OPS, "no workload write after the failover")
        cluster[old].start()
        cluster.wait_quorum(ids=cluster.ids)
        workload.run_until_acked(PHASE_OPS, "after the old leader rejoined")
        finish(cluster, workload)
        probe.verify(cluster)
        compared = cluster.wait_digests_agree(ids=[OBSERVER, new])
        print(f"observer digest compared with the new leader's at {compared} zxid(s)")
    finally:
        if new_zk is not None:
            close_quietly(new_zk)
        for client in (probe, reader):
            if client is not None:
                client.close()
        workload.close()
