"""kazoo recipes against the server: Lock, Election, Barrier,
DoubleBarrier, Counter, Queue, LockingQueue, Semaphore, Party."""

import threading

import zkharness as h

WAIT_S = h.EVENT_TIMEOUT_S


def test_lock_is_exclusive_and_handed_over(clients, base):
    a, b = clients(), clients()
    lock_a = a.Lock(f"{base}/lock", "a")
    lock_b = b.Lock(f"{base}/lock", "b")
    assert lock_a.acquire(timeout=WAIT_S)
    assert not lock_b.acquire(blocking=False)
    assert lock_b.contenders() == ["a"]
    got = threading.Event()

    def wait_b():
        if lock_b.acquire(timeout=WAIT_S):
            got.set()

    t = threading.Thread(target=wait_b)
    t.start()
    assert h.wait_for(lambda: len(lock_a.contenders()) == 2)
    assert not got.is_set()
    lock_a.release()
    t.join(WAIT_S)
    assert got.is_set()
    lock_b.release()


def test_lock_released_when_holder_session_closes(clients, base):
    a, b = clients(), clients()
    assert a.Lock(f"{base}/lock").acquire(timeout=WAIT_S)
    a.stop()
    lock_b = b.Lock(f"{base}/lock")
    assert lock_b.acquire(timeout=WAIT_S)
    lock_b.release()


def test_election(clients, base):
    a, b = clients(), clients()
    leader = []
    elect_a = a.Election(f"{base}/elect", "a")
    elect_b = b.Election(f"{base}/elect", "b")
    a_leads = threading.Event()
    release_a = threading.Event()

    def run_a():
        leader.append("a")
        a_leads.set()
        release_a.wait(WAIT_S)

    ta = threading.Thread(target=elect_a.run, args=(run_a,))
    ta.start()
    assert a_leads.wait(WAIT_S)
    tb = threading.Thread(target=elect_b.run, args=(lambda: leader.append("b"),))
    tb.start()
    assert h.wait_for(lambda: sorted(elect_b.contenders()) == ["a", "b"])
    assert leader == ["a"]
    release_a.set()
    ta.join(WAIT_S)
    tb.join(WAIT_S)
    assert leader == ["a", "b"]


def test_barrier(clients, base):
    a, b = clients(), clients()
    barrier = a.Barrier(f"{base}/barrier")
    barrier.create()
    passed = threading.Event()
    t = threading.Thread(target=lambda: b.Barrier(f"{base}/barrier").wait(WAIT_S) and passed.set())
    t.start()
    assert not passed.wait(0.2)
    barrier.remove()
    t.join(WAIT_S)
    assert passed.is_set()


def test_double_barrier(clients, base):
    a, b = clients(), clients()
    da = a.DoubleBarrier(f"{base}/db", 2)
    db = b.DoubleBarrier(f"{base}/db", 2)
    t = threading.Thread(target=da.enter)
    t.start()
    db.enter()
    t.join(WAIT_S)
    assert da.participating and db.participating
    t = threading.Thread(target=da.leave)
    t.start()
    db.leave()
    t.join(WAIT_S)
    assert not t.is_alive()


def test_counter(clients, base):
    a, b = clients(), clients()
    ca = a.Counter(f"{base}/counter")
    cb = b.Counter(f"{base}/counter")
    ca += 5
    cb += 2
    ca -= 1
    assert ca.value == 6 and cb.value == 6
    fa = a.Counter(f"{base}/fcounter", default=0.0)
    fa += 1.5
    assert fa.value == 1.5


def test_queue(clients, base):
    a, b = clients(), clients()
    qa = a.Queue(f"{base}/q")
    for item in (b"one", b"two", b"three"):
        qa.put(item)
    qa.put(b"urgent", priority=10)  # lower number = served first
    qb = b.Queue(f"{base}/q")
    assert len(qb) == 4
    assert [qb.get() for _ in range(4)] == [b"urgent", b"one", b"two", b"three"]
    assert qb.get() is None


def test_locking_queue(clients, base):
    a, b = clients(), clients()
    qa = a.LockingQueue(f"{base}/lq")
    qa.put(b"job1")
    qa.put_all([b"job2", b"job3"])
    qb = b.LockingQueue(f"{base}/lq")
    assert qb.get(timeout=WAIT_S) == b"job1"
    assert qa.get(timeout=WAIT_S) == b"job2"
    assert qb.consume()
    assert qb.holds_lock() is False
    assert qa.consume()
    assert qb.get(timeout=WAIT_S) == b"job3"
    assert qb.consume()
    assert len(qa) == 0


def test_semaphore(clients, base):
    a, b, c = clients(), clients(), clients()
    sa = a.Semaphore(f"{base}/sem", max_leases=2)
    sb = b.Semaphore(f"{base}/sem", max_leases=2)
    sc = c.Semaphore(f"{base}/sem", max_leases=2)
    assert sa.acquire(timeout=WAIT_S)
    assert sb.acquire(timeout=WAIT_S)
    assert not sc.acquire(blocking=False)
    assert len(sc.lease_holders()) == 2
    sa.release()
    assert sc.acquire(timeout=WAIT_S)
    sb.release()
    sc.release()


def test_party(clients, base):
    a, b = clients(), clients()
    pa = a.Party(f"{base}/party", "a")
    pb = b.Party(f"{base}/party", "b")
    pa.join()
    pb.join()
    assert sorted(pa) == ["a", "b"]
    pb.leave()
    assert list(pa) == ["a"]
