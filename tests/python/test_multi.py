"""multi (kazoo transactions): all-or-nothing success and per-op failure
results, including RuntimeInconsistency for the ops after the failing one."""

from kazoo.exceptions import (
    BadVersionError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
    RuntimeInconsistency,
)


def test_multi_success(zk, base):
    zk.create(f"{base}/v", b"0")
    tx = zk.transaction()
    tx.create(f"{base}/a", b"A")
    tx.create(f"{base}/s-", sequence=True)
    tx.set_data(f"{base}/v", b"1", version=0)
    tx.check(f"{base}/v", 1)
    tx.delete(f"{base}/a")
    results = tx.commit()
    assert results[0] == f"{base}/a"
    assert results[1] == f"{base}/s-0000000002"
    assert results[2].version == 1
    assert results[3] is True and results[4] is True
    assert zk.get(f"{base}/v")[0] == b"1"
    assert zk.exists(f"{base}/a") is None
    # All ops share one zxid.
    _, seq_stat = zk.get(f"{base}/s-0000000002")
    assert seq_stat.czxid == results[2].mzxid


def test_multi_failure_rolls_back(zk, base):
    zk.create(f"{base}/v", b"0")
    tx = zk.transaction()
    tx.create(f"{base}/a")
    tx.set_data(f"{base}/v", b"1", version=5)
    tx.create(f"{base}/b")
    results = tx.commit()
    assert isinstance(results[0], RolledBackError)
    assert isinstance(results[1], BadVersionError)
    assert isinstance(results[2], RuntimeInconsistency)
    assert zk.exists(f"{base}/a") is None
    assert zk.get(f"{base}/v")[1].version == 0


def test_multi_failure_kinds(zk, base):
    zk.create(f"{base}/p")
    zk.create(f"{base}/p/c")
    cases = [
        (lambda tx: tx.create(f"{base}/p"), NodeExistsError),
        (lambda tx: tx.delete(f"{base}/nope"), NoNodeError),
        (lambda tx: tx.delete(f"{base}/p"), NotEmptyError),
        (lambda tx: tx.check(f"{base}/p", 3), BadVersionError),
        (lambda tx: tx.check(f"{base}/zz", 0), NoNodeError),
    ]
    for add_op, error in cases:
        tx = zk.transaction()
        add_op(tx)
        results = tx.commit()
        assert len(results) == 1 and isinstance(results[0], error), (error, results)


def test_multi_sees_its_own_earlier_ops(zk, base):
    tx = zk.transaction()
    tx.create(f"{base}/n", b"x")
    tx.create(f"{base}/n/child")
    tx.set_data(f"{base}/n", b"y", version=0)
    tx.delete(f"{base}/n/child")
    tx.delete(f"{base}/n", version=1)
    results = tx.commit()
    assert results[0] == f"{base}/n" and results[2].version == 1
    assert zk.exists(f"{base}/n") is None


def test_empty_multi(zk):
    assert zk.transaction().commit() == []
