"""Leader failover is prompt, and only a leader fault causes an election.

Owns: kill -9 of the leader (3 and 5 members) where a client of a survivor must get a write
acknowledged within KILL_WRITE_BOUND_S, far less than any timeout-driven failure detection;
SIGSTOP of the leader, where a new leader must appear within syncLimit ticks plus a margin
and the old leader rejoins as a follower after SIGCONT; and a follower's kill -9 + restart,
which must not cause an election (the leader and every other member's mode stay put; on
ZooKeeper also the zxid epoch). Every scenario ends with test_faults' post-fault checks:
acknowledged writes on every live member, equal state and digests, linearizable registers.

Availability bounds, not performance assertions: each is generous for a loaded 2-core CI
machine (ZooKeeper 3.8 needs well under a tenth of each here); see bench/failover.py for
the numbers.
"""

import contextlib
import time

import pytest
from kazoo.exceptions import KazooException
from kazoo.handlers.threading import KazooTimeoutError

from cluster import DEFAULT_TIMING, QUORUM_TIMEOUT_S, Timing, wait_for
from test_faults import PHASE_OPS, finish
from workload import Workload, close_quietly, connect

# kill -9 runs with a long sync timeout (syncLimit x tickTime = 10 s), so that a prompt
# failover and one that waits out a timeout cannot be confused. When a process dies the
# kernel closes its sockets, so the survivors see the leader's connections end at once; a
# server that acts on that elects a new leader in an election round trip (ZooKeeper 3.8:
# ~0.3-0.8 s on this machine, client reconnect included). A server that instead waits for
# the leader's silence needs at least syncLimit/2 ticks (5 s: the shortest election timeout
# zkw derives from syncLimit; ZooKeeper's learner read timeout is the full syncLimit ticks).
# The bound, 0.4 x the sync timeout = 4 s, is ~5-10x what ZooKeeper needs and still below
# the earliest timeout-driven detection.
KILL_TIMING = Timing(tick_ms=1000, init_limit=10, sync_limit=10)
KILL_WRITE_BOUND_S = 0.4 * KILL_TIMING.sync_timeout_s

# SIGSTOP leaves the leader's sockets open: only its silence tells, so the followers give up
# on it after syncLimit ticks (default harness timing: 1.5 s), then elect. The margin covers
# the election and a client's reconnect on a loaded machine.
SIGSTOP_MARGIN_S = 5.0
SIGSTOP_BOUND_S = DEFAULT_TIMING.sync_timeout_s + SIGSTOP_MARGIN_S

# A follower's restart: modes are sampled this often, and for this long after it rejoined
# (two sync timeouts: a disruptive rejoin, e.g. a Raft vote request with a higher term from
# the restarted member, shows within one election timeout).
MODE_SAMPLE_S = 0.05
SETTLE_AFTER_REJOIN_S = 2 * DEFAULT_TIMING.sync_timeout_s

# Every ensemble here is unproxied: through tests/ensemble/proxy.py a dead or paused member's
# peer ports still accept connections (the proxy listens), which no real crash does, and
# ZooKeeper's election then takes much longer (SIGSTOP: ~12 s instead of ~2 s; kill -9 with
# KILL_TIMING: over 4 s instead of ~0.8 s). These tests are about real crashes and hangs.

PROBE = "/w/probe"
PROBE_RETRY_PAUSE_S = 0.01


class Probe:
    """A client connected only to the given members (before any fault), writing a counter."""

    def __init__(self, cluster, ids):
        self.zk = connect(cluster.hosts(ids))
        self.zk.ensure_path(PROBE)
        self.n = 0
        self.acked = 0
        self.write_until_acked(QUORUM_TIMEOUT_S)

    def write_until_acked(self, bound_s):
        """Writes until one is acknowledged; seconds from the call to that ack, or None
        when none was within bound_s. Every write is invoked after the call."""
        start = time.monotonic()
        deadline = start + bound_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.n += 1
            try:
                self.zk.set_async(PROBE, str(self.n).encode()).get(timeout=remaining)
                self.acked = self.n
                return time.monotonic() - start
            except KazooTimeoutError:
                return None
            except KazooException:
                time.sleep(PROBE_RETRY_PAUSE_S)

    def verify(self, cluster):
        """The last acknowledged probe write is the value on every running member (nothing
        else writes it; an unacknowledged later attempt may have landed too)."""
        for sid, member in cluster.members.items():
            if not member.running or member.paused:
                continue
            zk = connect(member.hosts)
            try:
                value = int(zk.get(PROBE)[0])
            finally:
                zk.stop()
                zk.close()
            assert self.acked <= value <= self.n, f"member {sid}: probe {value}, acked {self.acked}"

    def close(self):
        close_quietly(self.zk)


@contextlib.contextmanager
def leader_fault(cluster):
    """Warmed-up load and a probe on the members other than the leader; yields (workload,
    old leader, others, probe); on a clean exit runs the post-fault checks and the probe's."""
    workload = Workload(cluster, clients=4).start()
    probe = None
    try:
        workload.run_until_acked(PHASE_OPS, "warm-up")
        old = cluster.leader()
        others = [s for s in cluster.ids if s != old]
        probe = Probe(cluster, others)
        yield workload, old, others, probe
        workload.run_until_acked(PHASE_OPS, "after healing")
        finish(cluster, workload)
        probe.verify(cluster)
    finally:
        if probe:
            probe.close()
        workload.close()


@pytest.mark.parametrize("size", [3, 5])
def test_leader_kill_failover_is_prompt(make_cluster, size):
    cluster = make_cluster(size, timing=KILL_TIMING, proxied=False)
    with leader_fault(cluster) as (workload, old, survivors, probe):
        cluster[old].kill()
        took = probe.write_until_acked(KILL_WRITE_BOUND_S)
        assert took is not None, (
            f"no write from a client of the survivors {survivors} was acknowledged within "
            f"{KILL_WRITE_BOUND_S:.1f}s of the leader's kill -9 (a timeout-driven failover needs "
            f">= {KILL_TIMING.sync_timeout_s / 2:.0f}s here); modes now {cluster.modes()}"
        )
        print(f"\nfirst survivor write {took:.3f}s after kill -9 of leader {old}")
        new = cluster.wait_quorum(ids=survivors)
        assert new != old
        workload.run_until_acked(PHASE_OPS, "no workload write after failover")
        cluster[old].start()
        cluster.wait_quorum(ids=cluster.ids)


def test_sigstop_leader_replaced_within_sync_limit(make_cluster):
    cluster = make_cluster(3, proxied=False)
    with leader_fault(cluster) as (workload, old, others, probe):
        start = time.monotonic()
        cluster[old].pause()
        new = cluster.wait_quorum(ids=others, timeout=SIGSTOP_BOUND_S)
        elected = time.monotonic() - start
        took = probe.write_until_acked(SIGSTOP_BOUND_S - (time.monotonic() - start))
        assert took is not None, f"no survivor write acknowledged within {SIGSTOP_BOUND_S}s of SIGSTOP"
        print(f"\nleader {new} {elected:.3f}s after SIGSTOP of {old}; first survivor write at "
              f"{time.monotonic() - start:.3f}s")
        workload.run_until_acked(PHASE_OPS, "no write succeeded while paused")
        cluster[old].resume()

        def old_follows():
            modes = cluster.modes()
            leaders = [s for s, m in modes.items() if m == "leader"]
            return modes[old] == "follower" and len(leaders) == 1 and modes
        modes = wait_for(f"resumed leader {old} rejoins as follower", old_follows, QUORUM_TIMEOUT_S)
        print(f"after SIGCONT: {modes}")


def test_follower_restart_causes_no_election(make_cluster):
    cluster = make_cluster(3, proxied=False)
    workload = Workload(cluster, clients=4).start()
    try:
        workload.run_until_acked(PHASE_OPS, "warm-up")
        leader = cluster.leader()
        follower = next(s for s in cluster.ids if s != leader)
        watched = [s for s in cluster.ids if s != follower]
        expected = {s: ("leader" if s == leader else "follower") for s in watched}
        epoch_before = cluster[leader].zxid() >> 32
        seen = []  # (seconds since the kill, member, mode) that differ from `expected`
        samples = 0

        def sample(t0):
            nonlocal samples
            for sid in watched:
                text = cluster[sid].four_letter("srvr")
                if not text:
                    continue  # no answer in time (a busy machine): no information
                samples += 1
                mode = dict(
                    line.split(":", 1) for line in text.splitlines() if ":" in line
                ).get("Mode", "").strip() or text.strip()[:60]
                if mode != expected[sid]:
                    seen.append((round(time.monotonic() - t0, 3), sid, mode))

        t0 = time.monotonic()
        cluster[follower].kill()
        cluster[follower].start()
        deadline = t0 + QUORUM_TIMEOUT_S
        while cluster[follower].mode() != "follower":
            assert time.monotonic() < deadline, f"restarted follower {follower} did not rejoin: {cluster.modes()}"
            cluster._check_exits([follower])
            sample(t0)
            time.sleep(MODE_SAMPLE_S)
        rejoined = time.monotonic() - t0
        settle = time.monotonic() + SETTLE_AFTER_REJOIN_S
        while time.monotonic() < settle:
            sample(t0)
            time.sleep(MODE_SAMPLE_S)
        print(f"\nfollower {follower} rejoined {rejoined:.2f}s after kill -9; {samples} mode samples")
        assert not seen, f"an election happened (expected {expected}): (t, member, mode) {seen[:10]}"
        assert cluster.wait_quorum(ids=cluster.ids) == leader
        workload.run_until_acked(PHASE_OPS, "no write after the follower rejoined")
        finish(cluster, workload)
        if cluster.target == "zookeeper":
            # zkw's zxid is a log index without an epoch: there the modes above are the check.
            epoch_after = cluster[leader].zxid() >> 32
            assert epoch_after == epoch_before, f"zxid epoch {epoch_before} -> {epoch_after}"
    finally:
        workload.close()
