"""The `lock` recipe on a 3-node zkw ensemble, through kazoo and `zkw lock`.

Owns the lock proofs of issue #5: clients in several processes increment one
counter znode under the lock with a deliberate read-modify-write gap, while
the leader server is killed -9, and no update is lost; fencing tokens
strictly increase in counter order; a holder's session loss passes the lock
on within a session timeout; `zkw lock` runs a command with the token and
exits with its status, and `zkw lock` holders in separate processes never
overlap; readers share; a forged grant is refused; a lease expires a holder; and
waiters on every member are each woken by a data watch on their own request
node, with no polling, in queue order. The clients speak the recipe's plain-znode protocol
(recipes/lock/README.md): ephemeral sequential `write-` request, getData
with a watch on their own node until it reads `granted <token>`, delete.

Run as a script (`python test_recipe_lock.py worker ...`) it is one of the
worker processes. zkw only: ZooKeeper has no recipes.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

LOCKS = "/locks"
LOCK = f"{LOCKS}/counter-lock"
COUNTER = "/counter"

# Workload shape: processes x threads clients, each doing CYCLES increments.
PROCESSES = 3
THREADS = 2
CYCLES = 12
# The deliberate gap between reading and writing the counter, in seconds.
GAP_S = 0.02
# Bounded waits, all in seconds.
SESSION_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 20.0
WORKER_DEADLINE_S = 75.0
RETRY_PAUSE_S = 0.1
GRANT_POLL_S = 1.0
CLI_TIMEOUT_S = 30.0
KILL_AFTER_S = 1.0
SHORT_SESSION_MS = 2000
# Session timeout of the `zkw lock` holder whose server is killed, in ms.
HOLD_SESSION_MS = 4000
PASS_ON_SLACK_S = 6.0
# The recipe's timer period (lease expiry checks) and the lease the lease test sets, in ms.
TIMER_MS = 250
LEASE_MS = 1000
LEASE_SLACK_S = 3.0
# Waiters in the watch-wakeup test: one session per member; bound on one wakeup, in seconds.
WATCH_WAITERS = 3
WAKEUP_TIMEOUT_S = 15.0


# ---------------------------------------------------------------- shared helpers


# ---------------------------------------------------------------- the protocol, as a client


def retrying(fn, deadline):
    """Calls fn until it succeeds, retrying connection trouble until the deadline."""
    from kazoo.exceptions import ConnectionLoss, OperationTimeoutError, SessionMovedError
    from kazoo.handlers.threading import KazooTimeoutError

    while True:
        try:
            return fn()
        except (ConnectionLoss, OperationTimeoutError, SessionMovedError, KazooTimeoutError):
            if time.monotonic() > deadline:
                raise
            time.sleep(RETRY_PAUSE_S)


def grant_token(data):
    if not data.startswith(b"granted "):
        return None
    return int(data[len(b"granted "):].split(b"\n")[0])


def acquire(zk, lock, deadline, prefix="write-"):
    """Queues a request and waits for its grant; (request path, fencing token)."""
    from kazoo.exceptions import ConnectionLoss, OperationTimeoutError

    session = zk.client_id[0]
    while True:
        try:
            path = zk.create(f"{lock}/{prefix}", b"", ephemeral=True, sequence=True)
            break
        except (ConnectionLoss, OperationTimeoutError):
            # The create may have happened: our request is the child we own (sync first: the
            # server we reconnected to may not have applied it yet).
            mine = retrying(lambda: find_own_request(zk, lock, session), deadline)
            if mine:
                path = mine
                break
            if time.monotonic() > deadline:
                raise
            time.sleep(RETRY_PAUSE_S)
    return path, wait_granted(zk, path, deadline)


def wait_granted(zk, path, deadline):
    """Waits for the grant on our own request (a data watch on it); the fencing token."""
    while True:
        fired = threading.Event()
        data, _ = retrying(lambda: zk.get(path, watch=lambda _e: fired.set()), deadline)
        token = grant_token(data)
        if token is not None:
            return token
        assert time.monotonic() < deadline, f"{path} not granted in time"
        fired.wait(GRANT_POLL_S)


def find_own_request(zk, lock, session):
    zk.sync(lock)
    for name in zk.get_children(lock):
        stat = zk.exists(f"{lock}/{name}")
        if stat is not None and stat.ephemeralOwner == session:
            return f"{lock}/{name}"
    return None


def increment(zk, deadline):
    """Read, wait GAP_S, write value+1 conditionally; the value read."""
    from kazoo.exceptions import BadVersionError, ConnectionLoss, OperationTimeoutError

    data, stat = retrying(lambda: zk.get(COUNTER), deadline)
    value = int(data)
    time.sleep(GAP_S)
    while True:
        try:
            zk.set(COUNTER, str(value + 1).encode(), version=stat.version)
            return value
        except (ConnectionLoss, OperationTimeoutError):
            # Unknown outcome: it took effect iff the counter moved on to exactly our write.
            now, now_stat = retrying(lambda: zk.get(COUNTER), deadline)
            if now_stat.version == stat.version + 1 and int(now) == value + 1:
                return value
            assert now_stat.version == stat.version, f"counter moved under the lock: {now!r}"
        except BadVersionError:
            raise AssertionError(f"lost update: counter changed under the lock after {value}")
        if time.monotonic() > deadline:
            raise TimeoutError("could not write the counter")
        time.sleep(RETRY_PAUSE_S)


def release(zk, path, deadline):
    from kazoo.exceptions import NoNodeError

    try:
        retrying(lambda: zk.delete(path), deadline)
    except NoNodeError:
        pass


def client_loop(hosts, cycles, records, errors):
    from kazoo.client import KazooClient

    deadline = time.monotonic() + WORKER_DEADLINE_S
    zk = KazooClient(hosts=hosts, timeout=SESSION_TIMEOUT_S,
                     connection_retry=dict(max_tries=-1, delay=0.1, backoff=1.5, max_delay=1.0))
    zk.start(timeout=CONNECT_TIMEOUT_S)
    try:
        for _ in range(cycles):
            path, token = acquire(zk, LOCK, deadline)
            value = increment(zk, deadline)
            records.append({"token": token, "read": value})
            release(zk, path, deadline)
    except Exception as error:  # reported to the test through the output file
        errors.append(repr(error))
    finally:
        zk.stop()
        zk.close()


def worker_main(hosts, out_file, threads, cycles):
    records, errors = [], []
    pool = [threading.Thread(target=client_loop, args=(hosts, cycles, records, errors))
            for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(WORKER_DEADLINE_S + SESSION_TIMEOUT_S)
    Path(out_file).write_text(json.dumps({"records": records, "errors": errors}))


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "worker":
    worker_main(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    sys.exit(0)


# ---------------------------------------------------------------- the tests

import pytest  # noqa: E402

from cluster import target, zkw_binary  # noqa: E402
from recipe_kit import SUPER_CFG, install_builtin  # noqa: E402

pytestmark = pytest.mark.skipif(target() == "zookeeper", reason="zkw recipes only")


@pytest.fixture
def lock_cluster(make_cluster):
    cluster = make_cluster(3, extra_cfg=SUPER_CFG)
    install_builtin(cluster, "lock", LOCKS, "--timer-ms", TIMER_MS)
    from kazoo.client import KazooClient

    zk = KazooClient(hosts=cluster.hosts(), timeout=SESSION_TIMEOUT_S)
    zk.start(timeout=CONNECT_TIMEOUT_S)
    zk.ensure_path(LOCK)
    zk.create(COUNTER, b"0")
    yield cluster, zk
    zk.stop()
    zk.close()


def test_no_lost_update_across_processes_and_a_leader_kill(lock_cluster, tmp_path):
    cluster, zk = lock_cluster
    procs = []
    for i in range(PROCESSES):
        ids = cluster.ids
        k = i % len(ids)
        hosts = cluster.hosts(ids[k:] + ids[:k])
        out = tmp_path / f"worker{i}.json"
        procs.append((out, subprocess.Popen(
            [sys.executable, __file__, "worker", hosts, str(out), str(THREADS), str(CYCLES)])))
    try:
        time.sleep(KILL_AFTER_S)
        old = cluster.leader()
        cluster[old].kill()
        assert cluster.wait_quorum() != old
        for _, proc in procs:
            proc.wait(WORKER_DEADLINE_S + 2 * SESSION_TIMEOUT_S)
    finally:
        for _, proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    records, errors = [], []
    for out, _ in procs:
        result = json.loads(out.read_text())
        records += result["records"]
        errors += result["errors"]
    if errors:
        state = {n: (zk.get(f"{LOCK}/{n}")[0], zk.exists(f"{LOCK}/{n}").ephemeralOwner)
                 for n in zk.get_children(LOCK)}
        log_node = "/zookeeper/recipes/lock/log"
        log = zk.get(log_node)[0].decode(errors="replace") if zk.exists(log_node) else ""
        pytest.fail(f"errors {errors}\nqueue {state}\nrecipe log:\n{log}")
    total = PROCESSES * THREADS * CYCLES
    assert len(records) == total
    data, _ = zk.get(COUNTER)
    assert int(data) == total, "lost update"
    # Each holder read the previous holder's value, and tokens grow in that order.
    ordered = sorted(records, key=lambda r: r["read"])
    assert [r["read"] for r in ordered] == list(range(total))
    tokens = [r["token"] for r in ordered]
    assert all(a < b for a, b in zip(tokens, tokens[1:])), tokens


def test_a_holders_session_loss_passes_the_lock_on(lock_cluster):
    cluster, zk = lock_cluster
    holder = subprocess.Popen(
        [str(zkw_binary()), "lock", "handoff", "--server", cluster.hosts(),
         "--session-timeout-ms", str(SHORT_SESSION_MS), "--", "sleep", "60"],
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + CLI_TIMEOUT_S
        lock = f"{LOCKS}/handoff"
        while not (zk.exists(lock) and zk.get_children(lock)):
            assert time.monotonic() < deadline, "zkw lock never queued"
            time.sleep(RETRY_PAUSE_S)
        (first,) = zk.get_children(lock)
        first_token = grant_token(zk.get(f"{lock}/{first}")[0])
        assert first_token is not None, "the only request must hold the lock"
        path = zk.create(f"{lock}/write-", b"", ephemeral=True, sequence=True)
        assert grant_token(zk.get(path)[0]) is None, "granted while another holds the lock"
        os.killpg(holder.pid, signal.SIGKILL)  # no release: the session must expire
        killed = time.monotonic()
        token = wait_granted(zk, path, killed + SHORT_SESSION_MS / 1000 + PASS_ON_SLACK_S)
        assert token > first_token
        print(f"\nlock passed on {time.monotonic() - killed:.2f}s after the holder died")
        zk.delete(path)
    finally:
        if holder.poll() is None:
            os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()


def test_zkw_lock_keeps_the_lock_when_its_server_dies(lock_cluster, tmp_path):
    """`zkw lock`, connected to the leader (first in its --server list), keeps its session
    through a kill -9 of that server: it resumes on another member, the lock stays held past
    a whole session timeout (a kazoo waiter is not granted, the request keeps its owner), and
    its release when the command ends passes the lock on."""
    cluster, zk = lock_cluster
    old = cluster.leader()
    others = [i for i in cluster.ids if i != old]
    done = tmp_path / "done"
    stderr_path = tmp_path / "lock.stderr"
    lock = f"{LOCKS}/failover"
    with open(stderr_path, "w") as stderr:
        holder = subprocess.Popen(
            [str(zkw_binary()), "lock", "failover", "--server", cluster.hosts([old] + others),
             "--session-timeout-ms", str(HOLD_SESSION_MS), "--",
             "sh", "-c", f"while [ ! -e '{done}' ]; do sleep 0.05; done"],
            stderr=stderr, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + CLI_TIMEOUT_S
        while not (zk.exists(lock) and zk.get_children(lock)):
            assert time.monotonic() < deadline, "zkw lock never queued"
            time.sleep(RETRY_PAUSE_S)
        (first,) = zk.get_children(lock)
        request = f"{lock}/{first}"
        owner = zk.exists(request).ephemeralOwner
        first_token = wait_granted(zk, request, deadline)
        waiter = zk.create(f"{lock}/write-", b"", ephemeral=True, sequence=True)
        cluster[old].kill()
        assert cluster.wait_quorum() != old
        while "session resumed" not in stderr_path.read_text():
            assert holder.poll() is None, stderr_path.read_text()
            assert time.monotonic() < deadline, f"no resume: {stderr_path.read_text()}"
            time.sleep(RETRY_PAUSE_S)
        # Past a whole session timeout: an expiry would have passed the lock on by now.
        time.sleep(HOLD_SESSION_MS / 1000 * 1.5)
        stat = retrying(lambda: zk.exists(request), deadline)
        assert stat is not None and stat.ephemeralOwner == owner, "the holder's request is gone"
        data, _ = retrying(lambda: zk.get(waiter), deadline)
        assert grant_token(data) is None, "granted while zkw lock still holds the lock"
        done.touch()
        assert holder.wait(CLI_TIMEOUT_S) == 0, stderr_path.read_text()
        token = wait_granted(zk, waiter, time.monotonic() + CLI_TIMEOUT_S)
        assert token > first_token
        zk.delete(waiter)
    finally:
        if holder.poll() is None:
            os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()


def test_zkw_lock_runs_the_command_with_the_token(lock_cluster):
    cluster, zk = lock_cluster
    tokens = []
    for _ in range(2):
        out = subprocess.run(
            [str(zkw_binary()), "lock", "cli", "--server", cluster.hosts(), "--",
             "sh", "-c", "echo $ZKW_FENCING_TOKEN; exit 3"],
            capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
        )
        assert out.returncode == 3, out.stderr
        tokens.append(int(out.stdout.strip()))
    assert 0 < tokens[0] < tokens[1]
    zk.sync(f"{LOCKS}/cli")  # our server may lag the one zkw lock used
    assert zk.get_children(f"{LOCKS}/cli") == [], "released after the command"


def test_readers_share_and_a_lease_expires_a_stuck_holder(lock_cluster):
    from kazoo.exceptions import BadArgumentsError

    cluster, zk = lock_cluster
    lock = f"{LOCKS}/leased"
    zk.create(lock, f"lease_ms={LEASE_MS}".encode())
    deadline = time.monotonic() + CLI_TIMEOUT_S
    r1, t1 = acquire(zk, lock, deadline, prefix="read-")
    r2, t2 = acquire(zk, lock, deadline, prefix="read-")
    assert t1 < t2, "each reader granted by its own txn"
    writer = zk.create(f"{lock}/write-", b"", ephemeral=True, sequence=True)
    assert grant_token(zk.get(writer)[0]) is None, "a writer waits for the readers"
    with pytest.raises(BadArgumentsError):
        zk.set(writer, b"granted 1")  # forging a grant is refused
    # Nobody releases: the lease (checked by the timer) expires the readers, then the writer.
    started = time.monotonic()
    token = wait_granted(zk, writer, started + LEASE_MS / 1000 + LEASE_SLACK_S)
    assert token > t2
    assert zk.exists(r1) is None and zk.exists(r2) is None
    zk.sync(writer)
    while zk.exists(writer) is not None:
        assert time.monotonic() - started < 2 * LEASE_MS / 1000 + LEASE_SLACK_S, "lease ignored"
        time.sleep(RETRY_PAUSE_S)
    print(f"\nwriter lease expired {time.monotonic() - started:.2f}s after the readers' grant")


# Run by `zkw lock` in the next test: one read-modify-write of the counter with kazoo, printing
# the fencing token and the value read.
RMW = """
import os, sys, time
from kazoo.client import KazooClient
zk = KazooClient(hosts=sys.argv[1]); zk.start(timeout=20)
data, stat = zk.get(sys.argv[2])
time.sleep(float(sys.argv[3]))
zk.set(sys.argv[2], str(int(data) + 1).encode(), version=stat.version)
print(os.environ["ZKW_FENCING_TOKEN"], int(data))
zk.stop(); zk.close()
"""
CLI_HOLDERS = 3


def test_zkw_lock_holders_in_separate_processes_never_overlap(lock_cluster):
    cluster, zk = lock_cluster
    procs = []
    for i in range(CLI_HOLDERS):
        ids = cluster.ids
        hosts = cluster.hosts(ids[i % len(ids):] + ids[:i % len(ids)])
        procs.append(subprocess.Popen(
            [str(zkw_binary()), "lock", "counter-lock", "--server", hosts, "--",
             sys.executable, "-c", RMW, hosts, COUNTER, str(GAP_S)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    seen = []
    for proc in procs:
        out, err = proc.communicate(timeout=CLI_TIMEOUT_S)
        assert proc.returncode == 0, err
        token, read = out.split()
        seen.append((int(read), int(token)))
    seen.sort()
    assert [read for read, _ in seen] == list(range(CLI_HOLDERS)), seen
    assert all(a[1] < b[1] for a, b in zip(seen, seen[1:])), seen
    zk.sync(COUNTER)
    assert zk.get(COUNTER)[0] == str(CLI_HOLDERS).encode()


def wait_woken(zk, path, events, deadline):
    """The grant on our own request, learnt only from data watches on it (no polling): the
    watch set while waiting must fire, as a data change of `path`, before each re-read;
    returns the fencing token."""
    import queue

    from kazoo.protocol.states import EventType

    while True:
        try:
            event = events.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"{path}: no data watch fired") from None
        assert (event.type, event.path) == (EventType.CHANGED, path), event
        token = grant_token(zk.get(path, watch=events.put)[0])
        if token is not None:
            return token


def test_each_waiter_is_woken_by_its_own_nodes_data_watch(lock_cluster):
    """A holder and a queue of waiters, one session per member: each release must wake the
    next waiter through a data watch on its own node (never by polling), and only it."""
    import queue

    from kazoo.client import KazooClient

    cluster, zk = lock_cluster
    holder_path, token = acquire(zk, LOCK, time.monotonic() + CLI_TIMEOUT_S)
    waiters = []
    try:
        for i in range(WATCH_WAITERS):
            client = KazooClient(hosts=cluster[cluster.ids[i % len(cluster.ids)]].hosts,
                                 timeout=SESSION_TIMEOUT_S)
            client.start(timeout=CONNECT_TIMEOUT_S)
            path = client.create(f"{LOCK}/write-", b"", ephemeral=True, sequence=True)
            events = queue.Queue()
            assert grant_token(client.get(path, watch=events.put)[0]) is None, "granted early"
            waiters.append((client, path, events))
        tokens = [token]
        release_path, release_zk = holder_path, zk
        for i, (client, path, events) in enumerate(waiters):
            release_zk.delete(release_path)
            tokens.append(wait_woken(client, path, events, time.monotonic() + WAKEUP_TIMEOUT_S))
            for other, other_path, _ in waiters[i + 1:]:
                other.sync(other_path)
                assert grant_token(other.get(other_path)[0]) is None, f"{other_path} granted too"
            release_path, release_zk = path, client
        release_zk.delete(release_path)
        assert all(a < b for a, b in zip(tokens, tokens[1:])), tokens
    finally:
        for client, _, _ in waiters:
            client.stop()
            client.close()
