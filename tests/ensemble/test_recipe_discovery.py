"""The discovery recipe on a 3-node zkw ensemble, through kazoo and `zkw discover`.

Owns: the endpoints node follows joins, payload changes and leaves; an
instance's session EXPIRY (its client killed -9) shows in the endpoints node in
the same zxid as its ephemeral's deletion (the endpoints' mzxid equals the
instances node's pzxid); malformed payloads and forged endpoints are refused;
`zkw discover` and `zkw discover --watch` once. Skipped on Apache ZooKeeper.
"""

import json
import queue
import select
import signal
import subprocess
import sys
import threading
import time

import pytest
from kazoo.exceptions import BadArgumentsError

from cluster import target, zkw_binary
from recipe_kit import member_clients, recipe_ensemble, zkw

pytestmark = [
    pytest.mark.skipif(target() == "zookeeper", reason="recipes are a zkw feature"),
    pytest.mark.timeout(180),
]

ROOT = "/services"
SERVICE = f"{ROOT}/web"
# Bounded waits, all in seconds.
READY_TIMEOUT_S = 30.0
EXPIRY_TIMEOUT_S = 30.0
LINE_TIMEOUT_S = 15.0
POLL_S = 0.1
# The killed instance's session timeout.
SHORT_SESSION_S = 2.0

INSTANCE_SCRIPT = """
import sys, time
from kazoo.client import KazooClient
zk = KazooClient(hosts=sys.argv[1], timeout=float(sys.argv[2]))
zk.start(timeout=20)
zk.create(sys.argv[3], sys.argv[4].encode(), ephemeral=True)
print("ready", flush=True)
time.sleep(600)
"""


def payload(address, port, **metadata):
    return json.dumps({"address": address, "port": port, "metadata": metadata}).encode()


def spawn_ephemeral(hosts, path, data):
    """A separate process holding `path` as an ephemeral of its own session."""
    proc = subprocess.Popen(
        [sys.executable, "-c", INSTANCE_SCRIPT, hosts, str(SHORT_SESSION_S), path, data.decode()],
        stdout=subprocess.PIPE, text=True,
    )
    ready, _, _ = select.select([proc.stdout], [], [], READY_TIMEOUT_S)
    if not ready or proc.stdout.readline().strip() != "ready":
        proc.kill()
        proc.wait()
        raise AssertionError("the instance process did not register")
    return proc


def wait_gone(zk, path, timeout=EXPIRY_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if zk.exists(path) is None:
            return
        time.sleep(POLL_S)
    raise AssertionError(f"{path} still exists after {timeout}s")


def endpoint_ids(zk):
    zk.sync(f"{SERVICE}/endpoints")
    data, _ = zk.get(f"{SERVICE}/endpoints")
    return [entry["id"] for entry in json.loads(data)]


@pytest.fixture(scope="module")
def ensemble():
    yield from recipe_ensemble("discovery", ROOT)


@pytest.fixture
def clients(ensemble):
    yield from member_clients(ensemble)


def test_endpoints_follow_instances_and_expiry(ensemble, clients):
    zk, other, _ = clients
    zk.ensure_path(f"{SERVICE}/instances")
    zk.create(f"{SERVICE}/instances/a", payload("10.0.0.1", 8080, zone="x"), ephemeral=True)
    data, stat = zk.get(f"{SERVICE}/endpoints")
    assert json.loads(data) == [
        {"id": "a", "address": "10.0.0.1", "port": 8080, "metadata": {"zone": "x"}}]
    assert stat.mzxid == zk.exists(f"{SERVICE}/instances/a").czxid, "same txn as the join"

    doomed = spawn_ephemeral(ensemble[2].hosts, f"{SERVICE}/instances/b",
                             payload("10.0.0.2", 8081))
    try:
        assert endpoint_ids(other) == ["a", "b"]
        changed = threading.Event()
        other.DataWatch(f"{SERVICE}/endpoints",
                        lambda data, stat: changed.set() if b'"b"' not in data else None)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
        wait_gone(zk, f"{SERVICE}/instances/b")
    finally:
        if doomed.poll() is None:
            doomed.kill()
            doomed.wait()
    assert changed.wait(LINE_TIMEOUT_S), "the watcher on another member saw the expiry"
    zk.sync(SERVICE)
    endpoints = zk.exists(f"{SERVICE}/endpoints")
    instances = zk.exists(f"{SERVICE}/instances")
    assert endpoints.mzxid == instances.pzxid, "same zxid as the ephemeral's deletion"
    assert endpoint_ids(zk) == ["a"]

    zk.set(f"{SERVICE}/instances/a", payload("10.0.0.1", 9090))
    assert json.loads(zk.get(f"{SERVICE}/endpoints")[0])[0]["port"] == 9090
    with pytest.raises(BadArgumentsError):
        zk.create(f"{SERVICE}/instances/c", b'{"address": "h"}', ephemeral=True)
    with pytest.raises(BadArgumentsError):
        zk.set(f"{SERVICE}/endpoints", b"[]")


def read_line(lines, timeout=LINE_TIMEOUT_S):
    return lines.get(timeout=timeout)


def test_cli(ensemble, clients):
    zk = clients[0]
    zk.ensure_path(f"{ROOT}/api/instances")
    zk.create(f"{ROOT}/api/instances/i1", payload("h1", 1), ephemeral=True)
    once = zkw(ensemble, "discover", "api").stdout.strip()
    assert [e["id"] for e in json.loads(once)] == ["i1"]
    missing = zkw(ensemble, "discover", "nothing-here", check=False)
    assert missing.returncode == 1
    assert missing.stderr == f"zkw: service nothing-here not found under {ROOT}\n"

    watch = subprocess.Popen(
        [str(zkw_binary()), "discover", "api", "--watch", "--server", ensemble.hosts()],
        stdout=subprocess.PIPE, text=True,
    )
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(l) for l in watch.stdout], daemon=True).start()
    try:
        assert [e["id"] for e in json.loads(read_line(lines))] == ["i1"]
        zk.create(f"{ROOT}/api/instances/i2", payload("h2", 2), ephemeral=True)
        assert [e["id"] for e in json.loads(read_line(lines))] == ["i1", "i2"]
        zk.delete(f"{ROOT}/api/instances/i1")
        assert [e["id"] for e in json.loads(read_line(lines))] == ["i2"]
    finally:
        watch.send_signal(signal.SIGINT)
        try:
            watch.wait(timeout=LINE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            watch.kill()
            watch.wait()
