"""Ensemble fault tests: crashes, pauses, partitions and wipes under recorded write load.

Owns the scenarios of issue #3 "How it is proven": kill -9 of the leader
(3 and 5 members), kill -9 of every member, SIGSTOP of the leader, a
partitioned minority (leader or follower) through the proxy, a wiped
follower, a 5-member ensemble losing two members at once (the leader
killed -9, a follower partitioned), and a mixed-fault run; each ends with every acknowledged write
on every member, equal final state (and digests when exposed), and
linearizable set/CAS histories. Run with ZKW_TARGET=zookeeper against
Apache ZooKeeper 3.8, otherwise against zkw (ZKW_BIN).
"""

import time

import pytest
from kazoo.exceptions import KazooException
from kazoo.handlers.threading import KazooTimeoutError

from cluster import DEFAULT_TIMING, MODES_SERVING, wait_for
from workload import Workload, connect

# Operations acknowledged in each phase of load around a fault (before, during, after): the
# phase lasts as long as the load takes to make them. Enough for every client to act in every
# phase, few enough that a test's five phases fit its bound on a loaded machine.
PHASE_OPS = 60
# A minority must not acknowledge a write for this long after the cut, in seconds.
MINORITY_PROBE_S = 5.0
MINORITY_PROBE_OP_TIMEOUT_S = 1.0
# A member cut off from every peer stops serving after the sync timeout (ZooKeeper: ~2 s
# here); the bound adds a generous margin for a loaded machine, in seconds.
CUT_STOP_BOUND_S = DEFAULT_TIMING.sync_timeout_s + 15.0


def acked(workload):
    return workload.totals()["ok"]


def finish(cluster, workload, expect_sessions=True):
    """Stop the load and run every post-fault check."""
    workload.stop()
    cluster.wait_quorum(ids=[s for s, m in cluster.members.items() if m.running])
    cluster.wait_converged()
    finals = workload.verify_durable()
    compared = cluster.wait_digests_agree()
    failures = workload.check_linearizable(finals)
    assert not failures, "\n\n".join(f"register {k}:\n{v}" for k, v in failures.items())
    if expect_sessions:
        assert workload.sessions_continued() == [], "a client lost its session"
    totals = workload.totals()
    assert totals["ok"] > 0, totals
    print(f"\nops {totals}, acked creates {len(workload.acked_creates)}, digests compared {compared}")
    return totals


@pytest.mark.parametrize("size", [3, 5])
def test_leader_kill_under_load(make_cluster, size):
    cluster = make_cluster(size)
    workload = Workload(cluster, clients=4).start()
    try:
        workload.run_until_acked(PHASE_OPS, "warm-up")
        old = cluster.leader()
        cluster[old].kill()
        new = cluster.wait_quorum()
        assert new != old
        workload.run_until_acked(PHASE_OPS, "no write succeeded after failover")
        cluster[old].start()
        cluster.wait_quorum(ids=cluster.ids)
        workload.run_until_acked(PHASE_OPS, "after healing")
        finish(cluster, workload)
    finally:
        workload.close()


def test_kill_every_member_mid_load(make_cluster):
    cluster = make_cluster(3)
    workload = Workload(cluster, clients=4).start()
    try:
        workload.run_until_acked(PHASE_OPS, "warm-up")
        for member in cluster.members.values():
            member.kill()
        for member in cluster.members.values():
            member.start()
        cluster.wait_quorum(ids=cluster.ids)
        workload.run_until_acked(PHASE_OPS, "no write succeeded after restart")
        # Sessions may or may not outlive a whole-ensemble outage; data must.
        finish(cluster, workload, expect_sessions=False)
    finally:
        workload.close()


def test_sigstop_leader_steps_down(make_cluster):
    cluster = make_cluster(3)
    workload = Workload(cluster, clients=4).start()
    try:
        workload.run_until_acked(PHASE_OPS, "warm-up")
        old = cluster.leader()
        others = [s for s in cluster.ids if s != old]
        cluster[old].pause()
        cluster.wait_quorum(ids=others)
        workload.run_until_acked(PHASE_OPS, "no write succeeded while paused")
        cluster[old].resume()
        # Every member serves with one leader among them, and it is not the paused one.
        assert cluster.wait_quorum(ids=cluster.ids) != old, "the paused leader did not step down"
        workload.run_until_acked(PHASE_OPS, "after healing")
        finish(cluster, workload)
    finally:
        workload.close()


def pinned_client(member):
    """A client that may only talk to `member`, connected before any cut."""
    zk = connect(member.hosts)
    zk.ensure_path("/w/minority")
    return zk


def probe_writes(zk, seconds):
    """Try writes for `seconds`; returns the ones acknowledged."""
    acknowledged = []
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        n += 1
        try:
            zk.set_async("/w/minority", str(n).encode()).get(timeout=MINORITY_PROBE_OP_TIMEOUT_S)
            acknowledged.append(n)
        except (KazooException, KazooTimeoutError):
            time.sleep(0.1)
    return acknowledged


@pytest.mark.parametrize("cut", ["leader", "follower"])
def test_partitioned_minority_stops_writes_and_heals(make_cluster, cut):
    cluster = make_cluster(3)
    workload = Workload(cluster, clients=4).start()
    try:
        workload.run_until_acked(PHASE_OPS, "warm-up")
        leader = cluster.leader()
        alone = leader if cut == "leader" else next(s for s in cluster.ids if s != leader)
        majority = [s for s in cluster.ids if s != alone]
        pinned = pinned_client(cluster[alone])
        try:
            cluster.partition([alone], majority)
            # Writes in flight at the cut may still commit; later ones must not.
            time.sleep(MINORITY_PROBE_OP_TIMEOUT_S)
            acknowledged = probe_writes(pinned, MINORITY_PROBE_S)
        finally:
            pinned.stop()
            pinned.close()
        assert acknowledged == [], f"isolated member {alone} acknowledged writes {acknowledged}"
        cluster.wait_quorum(ids=majority)
        workload.run_until_acked(PHASE_OPS, "the majority made no progress")
        cluster.heal()
        cluster.wait_quorum(ids=cluster.ids)
        workload.run_until_acked(PHASE_OPS, "after healing")
        finish(cluster, workload)
    finally:
        workload.close()


def test_a_member_cut_off_stops_serving(make_cluster):
    cluster = make_cluster(3)
    leader = cluster.leader()
    cut = next(s for s in cluster.ids if s != leader)
    cluster.partition([cut], [s for s in cluster.ids if s != cut])
    wait_for(f"member {cut}, cut off from every peer, stops serving",
             lambda: cluster[cut].mode() not in MODES_SERVING, CUT_STOP_BOUND_S)
    cluster.heal()
    cluster.wait_quorum(ids=cluster.ids)


def test_wiped_follower_catches_up(make_cluster):
    # Frequent snapshots, so catching up needs a snapshot rather than the log alone.
    cluster = make_cluster(3, extra_cfg={"snapCount": 100})
    workload = Workload(cluster, clients=4).start()
    try:
        workload.run_until_acked(PHASE_OPS, "warm-up")
        follower = next(s for s in cluster.ids if s != cluster.leader())
        cluster[follower].kill()
        cluster[follower].wipe()
        workload.run_until_acked(PHASE_OPS, "during the fault")
        cluster[follower].start()
        cluster.wait_quorum(ids=cluster.ids)
        workload.run_until_acked(PHASE_OPS, "after healing")
        finish(cluster, workload)
    finally:
        workload.close()


def test_five_members_lose_two_and_keep_every_acknowledged_write(make_cluster):
    """5 members, two lost at once: the leader killed -9 and a follower cut off through the
    proxy. The other three (a quorum of five) must keep acknowledging writes; the killed
    member restarts while the cut lasts and catches up from them; after the heal every
    acknowledged write is on all five, with equal digests and linearizable registers."""
    cluster = make_cluster(5)
    workload = Workload(cluster, clients=5).start()
    try:
        workload.run_until_acked(PHASE_OPS, "warm-up")
        killed = cluster.leader()
        cut = next(s for s in cluster.ids if s != killed)
        rest = [s for s in cluster.ids if s not in (killed, cut)]
        cluster[killed].kill()
        cluster.partition([cut], [s for s in cluster.ids if s != cut])
        new = cluster.wait_quorum(ids=rest)
        assert new not in (killed, cut)
        workload.run_until_acked(PHASE_OPS, "no write acknowledged, two of five lost")
        # The cut is real: the member applied none of those writes (a cut-off member stops
        # serving, so its srvr shows no zxid at all).
        cut_zxid, new_zxid = cluster[cut].zxid(), cluster[new].zxid()
        assert cut_zxid is None or cut_zxid < new_zxid, (cut_zxid, new_zxid)
        cluster[killed].start()
        cluster.wait_quorum(ids=[s for s in cluster.ids if s != cut])
        workload.run_until_acked(PHASE_OPS, "no write after the killed member restarted")
        cluster.heal()
        cluster.wait_quorum(ids=cluster.ids)
        workload.run_until_acked(PHASE_OPS, "after healing")
        finish(cluster, workload)
    finally:
        workload.close()


def test_cas_linearizable_under_mixed_faults(make_cluster):
    """High-contention CAS on one register through a leader kill, a blackholed
    follower, and a paused leader, on 5 members."""
    cluster = make_cluster(5)
    workload = Workload(cluster, clients=5, registers=1, write_fraction=0.2).start()
    try:
        workload.run_until_acked(PHASE_OPS, "warm-up")
        first = cluster.leader()
        cluster[first].kill()
        cluster.wait_quorum()
        workload.run_until_acked(PHASE_OPS, "a phase of mixed faults")
        cluster[first].start()
        cluster.wait_quorum(ids=cluster.ids)
        leader = cluster.leader()
        follower = next(s for s in cluster.ids if s != leader)
        cluster.partition([follower], [s for s in cluster.ids if s != follower], mode="blackhole")
        workload.run_until_acked(PHASE_OPS, "a phase of mixed faults")
        cluster.heal()
        cluster[leader].pause()
        cluster.wait_quorum(ids=[s for s in cluster.ids if s != leader])
        workload.run_until_acked(PHASE_OPS, "a phase of mixed faults")
        cluster[leader].resume()
        cluster.wait_quorum(ids=cluster.ids)
        workload.run_until_acked(PHASE_OPS, "after healing")
        totals = finish(cluster, workload)
        assert totals["fail"] > 0, f"no CAS conflict was exercised: {totals}"
    finally:
        workload.close()
