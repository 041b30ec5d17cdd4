"""Create (every mode), get/set/delete with versions, exists, children and
Stat fields, through kazoo's retry-free API."""

import pytest
from kazoo.exceptions import (
    BadArgumentsError,
    BadVersionError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
)

from kazoo.protocol.serialization import Create, SetData, Transaction
from kazoo.security import OPEN_ACL_UNSAFE

import zkharness as h


def test_create_persistent_and_get(zk, base):
    assert zk.create(f"{base}/a", b"hello") == f"{base}/a"
    data, stat = zk.get(f"{base}/a")
    assert data == b"hello"
    assert stat.version == 0 and stat.cversion == 0 and stat.aversion == 0
    assert stat.ephemeralOwner == 0
    assert stat.dataLength == 5 and stat.numChildren == 0
    assert stat.czxid == stat.mzxid == stat.pzxid
    assert stat.ctime == stat.mtime


def test_create_include_data_returns_stat(zk, base):
    path, stat = zk.create(f"{base}/a", b"xyz", include_data=True)
    assert path == f"{base}/a"
    assert stat.dataLength == 3 and stat.version == 0


def test_create_errors(zk, base):
    zk.create(f"{base}/a")
    with pytest.raises(NodeExistsError):
        zk.create(f"{base}/a")
    with pytest.raises(NoNodeError):
        zk.create(f"{base}/missing/child")


def test_sequential_numbering(zk, base):
    names = [zk.create(f"{base}/s-", sequence=True) for _ in range(3)]
    assert names == [f"{base}/s-{i:010d}" for i in range(3)]
    # The counter is the parent's cversion: a plain child bumps it too.
    zk.create(f"{base}/plain")
    assert zk.create(f"{base}/s-", sequence=True) == f"{base}/s-0000000004"
    # ZooKeeper stores cversion as a count of child creates and shows
    # clients 2 * creates - numChildren; the sequence suffix is the stored
    # count, so a delete moves the visible cversion but not the suffix.
    zk.delete(f"{base}/plain")
    assert zk.get(base)[1].cversion == 6
    assert zk.create(f"{base}/x", sequence=True) == f"{base}/x0000000005"
    assert zk.get(base)[1].cversion == 7


def test_ephemeral(clients, zk, base):
    other = clients()
    other.create(f"{base}/e", b"v", ephemeral=True)
    _, stat = zk.get(f"{base}/e")
    assert stat.ephemeralOwner == other.client_id[0]
    with pytest.raises(NoChildrenForEphemeralsError):
        other.create(f"{base}/e/child")
    seq = other.create(f"{base}/es-", ephemeral=True, sequence=True)
    assert seq == f"{base}/es-0000000001"
    other.stop()
    other.close()
    assert zk.exists(f"{base}/e") is None
    assert zk.get_children(base) == []


def test_container_is_reaped_after_last_child_goes(zk, base):
    path, stat = h.create_container(zk, f"{base}/c")
    assert path == f"{base}/c" and stat.ephemeralOwner == 0
    zk.create(f"{base}/c/child")
    zk.delete(f"{base}/c/child")
    assert h.wait_for(lambda: zk.exists(f"{base}/c") is None, timeout=15)


def test_container_never_had_children_is_kept(zk, base):
    h.create_container(zk, f"{base}/c")
    # A container created after it whose child came and went: once the reaper removed that
    # one, it has looked at both.
    h.create_container(zk, f"{base}/used")
    zk.create(f"{base}/used/child")
    zk.delete(f"{base}/used/child")
    assert h.wait_for(lambda: zk.exists(f"{base}/used") is None, timeout=15)
    assert zk.exists(f"{base}/c") is not None


def test_ttl_node(zk, base):
    path, stat = h.create_ttl(zk, f"{base}/ttl", 500, b"d")
    assert path == f"{base}/ttl"
    # ZooKeeper stores the TTL in ephemeralOwner but shows clients 0.
    assert stat.ephemeralOwner == 0
    seq, _ = h.create_ttl(zk, f"{base}/ts-", 500, sequential=True)
    assert seq == f"{base}/ts-0000000001"
    assert h.wait_for(lambda: zk.exists(f"{base}/ttl") is None, timeout=20)


def test_ttl_invalid(zk, base):
    with pytest.raises(BadArgumentsError):
        h.create_ttl(zk, f"{base}/ttl", 0)


def test_set_with_versions(zk, base):
    zk.create(f"{base}/a", b"0")
    stat = zk.set(f"{base}/a", b"1", version=0)
    assert stat.version == 1 and stat.mzxid > stat.czxid
    with pytest.raises(BadVersionError):
        zk.set(f"{base}/a", b"2", version=0)
    stat = zk.set(f"{base}/a", b"22")
    assert stat.version == 2 and stat.dataLength == 2
    with pytest.raises(NoNodeError):
        zk.set(f"{base}/nope", b"")
    assert zk.get(f"{base}/a")[0] == b"22"


def test_delete_with_versions(zk, base):
    zk.create(f"{base}/a", b"0")
    zk.set(f"{base}/a", b"1")
    with pytest.raises(BadVersionError):
        zk.delete(f"{base}/a", version=0)
    zk.delete(f"{base}/a", version=1)
    assert zk.exists(f"{base}/a") is None
    with pytest.raises(NoNodeError):
        zk.delete(f"{base}/a")
    zk.create(f"{base}/p")
    zk.create(f"{base}/p/c")
    with pytest.raises(NotEmptyError):
        zk.delete(f"{base}/p")
    zk.delete(f"{base}/p", recursive=True)
    assert zk.exists(f"{base}/p") is None


def test_exists(zk, base):
    assert zk.exists(f"{base}/none") is None
    zk.create(f"{base}/a", b"abc")
    stat = zk.exists(f"{base}/a")
    assert stat.dataLength == 3


def test_children_and_parent_stat(zk, base):
    _, before = zk.get(base)
    for name in ("b", "a", "c"):
        zk.create(f"{base}/{name}")
    assert sorted(zk.get_children(base)) == ["a", "b", "c"]
    children, stat = zk.get_children(base, include_data=True)
    assert sorted(children) == ["a", "b", "c"]
    assert stat.numChildren == 3 and stat.cversion == before.cversion + 3
    _, child_stat = zk.get(f"{base}/c")
    assert stat.pzxid == child_stat.czxid
    assert stat.version == before.version
    zk.delete(f"{base}/a")
    _, after = zk.get(base)
    assert after.numChildren == 2 and after.cversion == before.cversion + 4
    assert after.pzxid > stat.pzxid
    with pytest.raises(NoNodeError):
        zk.get_children(f"{base}/zzz")


def test_get_all_children_number_and_ephemerals(clients, zk, base):
    zk.create(f"{base}/a/b/c", makepath=True)
    zk.create(f"{base}/a/d")
    assert h.get_all_children_number(zk, f"{base}/a") == 3
    assert h.get_all_children_number(zk, base) == 4
    other = clients()
    other.create(f"{base}/e1", ephemeral=True)
    other.create(f"{base}/a/e2", ephemeral=True)
    assert sorted(h.get_ephemerals(other, base)) == [f"{base}/a/e2", f"{base}/e1"]
    assert h.get_ephemerals(other, f"{base}/a") == [f"{base}/a/e2"]
    assert h.get_ephemerals(zk, base) == []


def test_large_data_and_binary(zk, base):
    blob = bytes(range(256)) * 1024
    zk.create(f"{base}/big", blob)
    assert zk.get(f"{base}/big")[0] == blob
    zk.create(f"{base}/empty", b"")
    data, stat = zk.get(f"{base}/empty")
    assert data == b"" and stat.dataLength == 0


def test_sync_and_root(zk):
    assert zk.sync("/") == "/"
    assert "zookeeper" in zk.get_children("/")
    assert zk.exists("/zookeeper/quota") is not None


# ------------------------------------------------------------------ null data
# A null buffer (jute length -1: kazoo's None, the Java client's null) is kept as null, apart
# from empty data: getData answers -1 (kazoo None) and the Stat counts 0 bytes.


def null_create(path, flags=h.FLAG_PERSISTENT):
    return Create(path, None, OPEN_ACL_UNSAFE, flags)


def test_null_data_survives_every_create(zk, base):
    assert zk.create(f"{base}/plain", None) == f"{base}/plain"
    path, stat = zk.create(f"{base}/create2", None, include_data=True)
    assert stat.dataLength == 0
    h.create_container(zk, f"{base}/container", data=None)
    zk.create(f"{base}/container/child", b"")  # keeps the container
    h.create_ttl(zk, f"{base}/ttl", 60000, data=None)
    zk.create(f"{base}/empty", b"")
    for name in ("plain", "create2", "container", "ttl"):
        data, stat = zk.get(f"{base}/{name}")
        assert (data, stat.dataLength) == (None, 0), name
    assert zk.get(f"{base}/empty")[0] == b""


def test_set_data_null_and_back(zk, base):
    zk.create(f"{base}/a", b"x")
    stat = zk.set(f"{base}/a", None)
    assert stat.dataLength == 0 and stat.version == 1
    assert zk.get(f"{base}/a")[0] is None
    zk.set(f"{base}/a", b"")
    assert zk.get(f"{base}/a")[0] == b""
    zk.set(f"{base}/a", None)
    assert zk.get(f"{base}/a")[0] is None


def test_multi_and_multi_read_keep_null(zk, base):
    zk.create(f"{base}/e", b"e")
    multi = Transaction([null_create(f"{base}/n"), SetData(f"{base}/e", None, -1)])
    results = h._call(zk, multi)
    assert results[0] == f"{base}/n" and results[1].dataLength == 0, results
    assert zk.get(f"{base}/n")[0] is None and zk.get(f"{base}/e")[0] is None
    zk.create(f"{base}/x", b"")
    got = h.multi_read_data(zk, [f"{base}/n", f"{base}/x", f"{base}/missing"])
    assert got[0][0] is None and got[0][1].dataLength == 0
    assert got[1][0] == b""
    assert got[2] == NoNodeError.code


@pytest.fixture
def own_server():
    """A server of this test's own, snapshotting every few txns so a restart loads null data
    from a snapshot and from the log after it."""
    srv = h.Server(h.target(), extra_cfg={"snapCount": 4}).start()
    yield srv
    srv.stop()


def test_null_data_survives_restarts(own_server):
    zk = h.new_client(own_server.hosts)
    try:
        zk.create("/null-a", None)
        zk.create("/empty-a", b"")
        for index in range(12):  # past a snapshot or two
            zk.create(f"/filler{index}", b"f")
        zk.create("/null-b", None)
        zk.create("/empty-b", b"")
    finally:
        zk.stop()
        zk.close()
    own_server.restart()
    zk = h.new_client(own_server.hosts)
    try:
        for name in ("a", "b"):
            assert zk.get(f"/null-{name}")[0] is None, name
            assert zk.get(f"/empty-{name}")[0] == b"", name
    finally:
        zk.stop()
        zk.close()
