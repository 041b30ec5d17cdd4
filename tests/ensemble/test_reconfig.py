"""Dynamic reconfig (reconfigEnabled=true) under kazoo, as ZooKeeper 3.8 answers it.

Grows a 3-member ensemble to 4 (a new participant joins, started with a zoo.cfg that lists the
current members plus itself, as ZooKeeper's docs say), shrinks it back to 3 by removing an
original member, checks that writes keep working, that every member's /zookeeper/config shows
the change, that the removed server stops serving, and that a restart of every member keeps
the new membership (zoo.cfg only seeds the first config; the replicated one wins). An observer
joins and leaves; a zoo.cfg observer removed by a reconfig stays removed under a new leader;
the non-incremental form (newMembers) shrinks 3 to 2. Also the refusals: no WRITE on
/zookeeper/config (NoAuth), a stale curConfigId (BadVersion), malformed server strings
(BadArguments), a new config whose voters cannot form a synced quorum (NewConfigNoQuorum),
reconfigEnabled=false (ReconfigDisabled), and which of them wins when several apply. Every
test passes on ZooKeeper 3.8 (ZKW_TARGET=zookeeper) and on zkw.

The ensembles run without the partition proxy: a reconfig publishes one address per server,
the same for every member, as ZooKeeper's dynamic config does.
"""

import base64
import hashlib
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadArgumentsError,
    BadVersionError,
    ConnectionLoss,
    MarshallingError,
    NewConfigNoQuorumError,
    NoAuthError,
    ReconfigDisabledError,
)

from cluster import HOST, Member
from workload import CONNECT_TIMEOUT_S, connect

SUPER_PASSWORD = "reconfig-test"
CONFIG_WAIT_S = 30.0
POLL_S = 0.2
SESSION_TIMEOUT_S = 20.0


def super_digest():
    raw = hashlib.sha1(f"super:{SUPER_PASSWORD}".encode()).digest()
    return "super:" + base64.b64encode(raw).decode()


def super_client(hosts):
    zk = KazooClient(
        hosts=hosts,
        timeout=SESSION_TIMEOUT_S,
        auth_data=[("digest", f"super:{SUPER_PASSWORD}")],
    )
    zk.start(timeout=CONNECT_TIMEOUT_S)
    return zk


@pytest.fixture
def ensemble(make_cluster):
    def make(size=3, enabled=True, observers=()):
        extra = {
            "reconfigEnabled": "true" if enabled else "false",
            "DigestAuthenticationProvider.superDigest": super_digest(),
        }
        return make_cluster(size, extra_cfg=extra, proxied=False, observers=observers)

    return make


def parse_config(data):
    """{id: role} and the version (int) of a /zookeeper/config text."""
    members, version = {}, None
    for line in data.decode().splitlines():
        key, _, value = line.partition("=")
        if key.startswith("server."):
            role = value.split(";")[0].split(":")[3]
            members[int(key[len("server.") :])] = role
        elif key == "version":
            version = int(value, 16)
    return members, version


def current_config(zk):
    """({id: role}, version) once the leader has published the ensemble (zkw's first leader
    writes the node a moment after it is elected)."""
    deadline = time.monotonic() + CONFIG_WAIT_S
    while True:
        members, version = parse_config(zk.get("/zookeeper/config")[0])
        if version is not None or time.monotonic() > deadline:
            return members, version
        time.sleep(POLL_S)


def joiner_line(member, role="participant"):
    return (
        f"server.{member.id}={HOST}:{member.quorum_port}:{member.election_port}:{role};"
        f"{HOST}:{member.client_port}"
    )


def add_member(cluster, sid):
    """A new server whose zoo.cfg lists the current members plus itself."""
    member = Member(cluster, sid)
    cluster.members[sid] = member
    member.start()
    return member


def freeze_configs(cluster):
    """Later restarts keep each member's zoo.cfg as the server left it (ZooKeeper rewrites
    its own to point at the dynamic config file)."""
    for member in cluster.members.values():
        member.write_config = lambda: None


def wait_config_everywhere(cluster, ids, want):
    """Every member in `ids` shows the membership `want` ({id: role}) in /zookeeper/config."""
    deadline = time.monotonic() + CONFIG_WAIT_S
    seen = {}
    while time.monotonic() < deadline:
        for sid in ids:
            try:
                zk = connect(cluster[sid].hosts)
            except Exception as error:  # noqa: BLE001 - a member still starting
                seen[sid] = repr(error)
                continue
            try:
                zk.sync("/zookeeper/config")
                data, _ = zk.get("/zookeeper/config")
                seen[sid] = parse_config(data)[0]
            finally:
                zk.stop()
                zk.close()
        if all(seen.get(sid) == want for sid in ids):
            return
        time.sleep(POLL_S)
    raise AssertionError(f"config never became {want} on {ids}: {seen}")


def wait_mode(member, accept, timeout=CONFIG_WAIT_S):
    deadline = time.monotonic() + timeout
    mode = None
    while time.monotonic() < deadline:
        mode = member.mode()
        if accept(mode):
            return mode
        time.sleep(POLL_S)
    raise AssertionError(f"member {member.id} stayed in mode {mode}")


def reconfig_tolerant(zk, **change):
    """A reconfig that may lose the connection (ZooKeeper's followers drop their clients when
    the change removes the leader): then the config is read back until its version moves."""
    try:
        return zk.reconfig(**change)[0]
    except ConnectionLoss:
        deadline = time.monotonic() + CONFIG_WAIT_S
        while True:
            try:
                zk.sync("/zookeeper/config")
                data = zk.get("/zookeeper/config")[0]
                if parse_config(data)[1] != change["from_config"]:
                    return data
            except ConnectionLoss:
                pass
            if time.monotonic() > deadline:
                raise
            time.sleep(POLL_S)


@pytest.mark.timeout(240)
def test_grow_shrink_and_restart_keep_the_new_membership(ensemble):
    cluster = ensemble(3)
    zk = super_client(cluster.hosts([1, 2, 3]))
    try:
        zk.create("/before", b"0")
        _, old_version = current_config(zk)

        new = add_member(cluster, 4)
        data, stat = zk.reconfig(joining=joiner_line(new), leaving=None, new_members=None)
        members, version = parse_config(data)
        assert members == {sid: "participant" for sid in (1, 2, 3, 4)}, data
        assert version != old_version and stat.mzxid > 0
        wait_mode(new, lambda mode: mode in ("follower", "leader"))
        zk.set("/before", b"1")
        wait_config_everywhere(cluster, [1, 2, 3, 4], members)
    finally:
        zk.stop()
        zk.close()

    # Remove the leader if it is an original member (the hardest case), else member 3.
    leader = cluster.wait_quorum()
    gone = leader if leader != 4 else 3
    kept = [sid for sid in (1, 2, 3, 4) if sid != gone]
    zk = super_client(cluster.hosts(kept))
    try:
        data = reconfig_tolerant(
            zk, joining=None, leaving=str(gone), new_members=None, from_config=version
        )
        members, _ = parse_config(data)
        assert members == {sid: "participant" for sid in kept}, data
        cluster.wait_quorum(ids=kept)
        zk.retry(zk.ensure_path, "/after")
        zk.retry(zk.set, "/after", b"2")
        wait_config_everywhere(cluster, kept, members)
        if cluster.target == "zkw":
            # zkw: a removed server stops serving. ZooKeeper lets it go on as a non-voting
            # follower (its docs say to shut it down); either way it is no longer a voter.
            wait_mode(cluster[gone], lambda mode: mode not in ("leader", "follower"))
        cluster.wait_quorum(ids=kept)
    finally:
        zk.stop()
        zk.close()

    cluster[gone].kill()
    freeze_configs(cluster)
    for sid in kept:
        cluster[sid].kill()
    for sid in kept:
        cluster[sid].start()
    cluster.wait_quorum(ids=kept)
    wait_config_everywhere(cluster, kept, members)
    zk = connect(cluster.hosts(kept))
    try:
        assert zk.get("/after")[0] == b"2"
        zk.set("/after", b"3")
    finally:
        zk.stop()
        zk.close()


@pytest.mark.timeout(180)
def test_observer_joins_and_leaves(ensemble):
    cluster = ensemble(3)
    zk = super_client(cluster.hosts())
    try:
        observer = add_member(cluster, 4)
        data, _ = zk.reconfig(
            joining=joiner_line(observer, "observer"), leaving=None, new_members=None
        )
        members, _ = parse_config(data)
        assert members[4] == "observer", data
        wait_mode(observer, lambda mode: mode == "observer")
        reader = connect(observer.hosts)
        try:
            zk.create("/seen-by-observer", b"x")
            reader.sync("/seen-by-observer")
            assert reader.get("/seen-by-observer")[0] == b"x"
        finally:
            reader.stop()
            reader.close()
        data, _ = zk.reconfig(joining=None, leaving="4", new_members=None)
        assert 4 not in parse_config(data)[0], data
        wait_config_everywhere(cluster, [1, 2, 3], parse_config(data)[0])
    finally:
        zk.stop()
        zk.close()


@pytest.mark.timeout(180)
def test_removed_zoo_cfg_observer_stays_removed_across_leaders(ensemble):
    cluster = ensemble(4, observers=(4,))
    want = {1: "participant", 2: "participant", 3: "participant", 4: "observer"}
    wait_config_everywhere(cluster, [1, 2, 3, 4], want)
    wait_mode(cluster[4], lambda mode: mode == "observer")
    zk = super_client(cluster.hosts([1, 2, 3]))
    try:
        data, _ = zk.reconfig(joining=None, leaving="4", new_members=None)
        members, _ = parse_config(data)
        assert members == {sid: "participant" for sid in (1, 2, 3)}, data
    finally:
        zk.stop()
        zk.close()
    cluster[4].kill()
    freeze_configs(cluster)
    # A new leader must not bring zoo.cfg's observer back.
    leader = cluster.wait_quorum()
    cluster[leader].kill()
    others = [sid for sid in (1, 2, 3) if sid != leader]
    cluster.wait_quorum(ids=others)
    cluster[leader].start()
    new_leader = cluster.wait_quorum(ids=[1, 2, 3])
    # A write through the new leader, applied everywhere: whatever it committed on taking over
    # (a membership entry included) came before, so the configs checked next are its own.
    zk = connect(cluster[new_leader].hosts)
    try:
        zk.create("/after-the-new-leader", b"")
    finally:
        zk.stop()
        zk.close()
    cluster.wait_converged(ids=[1, 2, 3])
    wait_config_everywhere(cluster, [1, 2, 3], members)


@pytest.mark.timeout(120)
def test_participant_becomes_observer(ensemble):
    cluster = ensemble(3)
    leader = cluster.wait_quorum()
    demoted = next(sid for sid in (1, 2, 3) if sid != leader)
    zk = super_client(cluster.hosts([sid for sid in (1, 2, 3) if sid != demoted]))
    try:
        data = reconfig_tolerant(
            zk,
            joining=joiner_line(cluster[demoted], "observer"),
            leaving=None,
            new_members=None,
            from_config=current_config(zk)[1],
        )
        members, _ = parse_config(data)
        assert members[demoted] == "observer", data
        wait_mode(cluster[demoted], lambda mode: mode == "observer")
        cluster.wait_quorum()
        zk.retry(zk.ensure_path, "/after-demotion")
        wait_config_everywhere(cluster, [1, 2, 3], members)
    finally:
        zk.stop()
        zk.close()


@pytest.mark.timeout(120)
def test_new_members_shrink_to_two(ensemble):
    cluster = ensemble(3)
    zk = super_client(cluster.hosts([1, 2]))
    try:
        _, version = current_config(zk)
        keep = ",".join(joiner_line(cluster[sid]) for sid in (1, 2))
        data = reconfig_tolerant(
            zk, joining=None, leaving=None, new_members=keep, from_config=version
        )
        members, _ = parse_config(data)
        assert members == {1: "participant", 2: "participant"}, data
        # ZooKeeper's followers re-sync (dropping clients) when the leader leaves.
        cluster.wait_quorum(ids=[1, 2])
        zk.retry(zk.ensure_path, "/two")
        wait_config_everywhere(cluster, [1, 2], members)
    finally:
        zk.stop()
        zk.close()


@pytest.mark.timeout(120)
def test_new_config_without_a_synced_quorum_is_refused(ensemble):
    cluster = ensemble(3)
    zk = super_client(cluster.hosts())
    try:
        _, version = current_config(zk)
        # Four servers that do not run: 3 of 7 voters would be synced.
        ghosts = [Member(cluster, sid) for sid in (4, 5, 6, 7)]
        joining = ",".join(joiner_line(ghost) for ghost in ghosts)
        with pytest.raises(NewConfigNoQuorumError):
            zk.reconfig(joining=joining, leaving=None, new_members=None)
        members, after = parse_config(zk.get("/zookeeper/config")[0])
        assert set(members) == {1, 2, 3} and after == version
        zk.create("/still-writable", b"")
    finally:
        zk.stop()
        zk.close()


def test_refusals(ensemble):
    cluster = ensemble(3)
    plain = connect(cluster.hosts())
    zk = super_client(cluster.hosts())
    try:
        _, version = current_config(zk)
        with pytest.raises(NoAuthError):
            plain.reconfig(joining=None, leaving="3", new_members=None)
        with pytest.raises(BadVersionError):
            zk.reconfig(joining=None, leaving="3", new_members=None, from_config=version + 12345)
        with pytest.raises(BadArgumentsError):
            zk.reconfig(joining="server.9=127.0.0.1:1:2", leaving=None, new_members=None)
        with pytest.raises(BadArgumentsError):
            zk.reconfig(joining="nonsense", leaving=None, new_members=None)
        # Nothing changed.
        members, after = parse_config(zk.get("/zookeeper/config")[0])
        assert set(members) == {1, 2, 3} and after == version
    finally:
        for client in (plain, zk):
            client.stop()
            client.close()


def test_refusal_order(ensemble):
    """Which error wins when several apply. ZooKeeper 3.8 checks, in order: a reconfig already
    running (ReconfigInProgress), curConfigId (BadVersion: any value but -1 that is not the
    current version, stale or future), the server strings (BadArguments), a synced quorum of
    the new voters (NewConfigNoQuorum), and last WRITE on /zookeeper/config (NoAuth)."""
    cluster = ensemble(3)
    plain = connect(cluster.hosts())
    zk = super_client(cluster.hosts())
    try:
        _, stale = current_config(zk)
        # A change that keeps the members as they are still makes a new version.
        data, _ = zk.reconfig(joining=joiner_line(cluster[3]), leaving=None, new_members=None)
        members, version = parse_config(data)
        assert set(members) == {1, 2, 3} and version != stale, data
        future = version + 1
        for from_config in (future, stale, -2):
            with pytest.raises(BadVersionError):
                zk.reconfig(joining=None, leaving="3", new_members=None, from_config=from_config)
            # The version is checked before the caller's right to reconfig.
            with pytest.raises(BadVersionError):
                plain.reconfig(
                    joining=None, leaving="3", new_members=None, from_config=from_config
                )
        # Valid arguments from a caller without WRITE on /zookeeper/config.
        with pytest.raises(NoAuthError):
            plain.reconfig(joining=None, leaving="3", new_members=None, from_config=version)
        with pytest.raises(NoAuthError):
            plain.reconfig(joining=None, leaving=None, new_members=None)
        # Malformed arguments are judged before the caller's right.
        for joining in ("server.9=127.0.0.1:1:2", "nonsense"):
            with pytest.raises(BadArgumentsError):
                plain.reconfig(joining=joining, leaving=None, new_members=None)
        # A server id that is not a number: ZooKeeper's parse throws, answered as
        # MarshallingError.
        for joining, leaving in ((None, "x"), ("server.x=127.0.0.1:1:2;3", None)):
            with pytest.raises(MarshallingError):
                plain.reconfig(joining=joining, leaving=leaving, new_members=None)
        # Nothing changed.
        members, after = parse_config(zk.get("/zookeeper/config")[0])
        assert set(members) == {1, 2, 3} and after == version
    finally:
        for client in (plain, zk):
            client.stop()
            client.close()


def test_disabled_by_default(ensemble):
    cluster = ensemble(3, enabled=False)
    zk = super_client(cluster.hosts())
    try:
        with pytest.raises(ReconfigDisabledError):
            zk.reconfig(joining=None, leaving="3", new_members=None)
    finally:
        zk.stop()
        zk.close()
