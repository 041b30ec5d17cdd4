"""Recipes, both kinds.

First half: kazoo's client-side recipes against the server (Lock, Election,
Barrier, DoubleBarrier, Counter, Queue, LockingQueue, Semaphore, Party); these
run on zkw and on ZooKeeper.

Second half: zkw's WebAssembly recipes (docs/recipes.md) seen from kazoo and
zkCli.sh, independent clients: a recipe's writes fire their watches and share
the triggering write's zxid, a validator's refusal is BadArguments (alone and
in a transaction), an install and a call through plain znodes, a hostile
recipe that leaves the server serving. zkw only: they skip on ZooKeeper.
"""

import hashlib
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from kazoo.exceptions import BadArgumentsError, NoAuthError, RolledBackError
from kazoo.security import make_digest_acl_credential

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


def test_barrier(server, clients, base):
    a, b = clients(), clients()
    barrier = a.Barrier(f"{base}/barrier")
    barrier.create()
    passed = threading.Event()
    t = threading.Thread(target=lambda: b.Barrier(f"{base}/barrier").wait(WAIT_S) and passed.set())
    t.start()
    # The waiter is blocked once its watch on the barrier is on the server (`wchp`).
    assert h.wait_for(lambda: f"{base}/barrier" in h.four_letter(server.port, "wchp"))
    assert not passed.is_set()
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


# ------------------------------------------------------ WebAssembly recipes (zkw)

# The super user of the recipe server, as in host/tests/common: admin:secret, whose zoo.cfg
# line is DigestAuthenticationProvider.superDigest=admin:fvr2cB/fjGeAiX8g1aGhUm3ZICk=.
ADMIN_USER = "admin"
ADMIN_PASSWORD = "secret"
ADMIN_SUPER_DIGEST = make_digest_acl_credential(ADMIN_USER, ADMIN_PASSWORD)
ADMIN_AUTH = f"digest:{ADMIN_USER}:{ADMIN_PASSWORD}"

RECIPES_PATH = "/zookeeper/recipes"
# Bounds, in seconds: one `zkw recipe` or zkCli.sh run, and building the test kit for wasm32
# (a cold build on a loaded machine).
CLI_TIMEOUT_S = 60
WASM_BUILD_TIMEOUT_S = 900
# Fuel per run of the spin recipe: thirty times the default, so a run lasts long enough
# (tens of ms) for reads to queue up behind it.
SPIN_FUEL = 300_000_000

KIT_RECIPES = ("counter", "validator", "echo_call", "spin")


def kit_dir():
    """Where cargo puts the test kit's modules (recipes/testkit/examples/*.rs)."""
    target = Path(os.environ.get("CARGO_TARGET_DIR") or h.REPO_ROOT / "target")
    if not target.is_absolute():
        target = h.REPO_ROOT / target
    return target / "wasm32-unknown-unknown" / "recipe" / "examples"


@pytest.fixture(scope="module")
def kit():
    """The test kit's .wasm files, built once when any is missing."""
    if h.target() != "zkw":
        pytest.skip("ZooKeeper has no WebAssembly recipes")
    directory = kit_dir()
    if not all((directory / f"{name}.wasm").exists() for name in KIT_RECIPES):
        subprocess.run(
            ["cargo", "build", "--quiet", "--target", "wasm32-unknown-unknown"]
            + ["--profile", "recipe", "-p", "zkw-test-recipes", "--examples"],
            cwd=h.REPO_ROOT,
            check=True,
            timeout=WASM_BUILD_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    return directory


@pytest.fixture(scope="module")
def recipe_server(kit):
    """A zkw server of its own whose super user is admin:secret, the identity installs need."""
    cfg = {"DigestAuthenticationProvider.superDigest": ADMIN_SUPER_DIGEST}
    srv = h.Server("zkw", extra_cfg=cfg)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def rclients(recipe_server):
    made = []

    def make():
        if recipe_server.proc.poll() is not None:
            code, tail = recipe_server.proc.returncode, recipe_server.log_tail()
            pytest.fail(f"server died (exit {code}):\n{tail}")
        client = h.new_client(recipe_server.hosts)
        made.append(client)
        return client

    yield make
    for client in made:
        try:
            client.stop()
            client.close()
        except Exception:  # teardown of an already-broken client
            pass


def zkw_recipe(server, *args):
    """`zkw recipe ARGS --server ... --auth digest:admin:secret`; returns the CompletedProcess."""
    return subprocess.run(
        [str(h.zkw_binary()), "recipe", *args, "--server", server.hosts, "--auth", ADMIN_AUTH],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )


def install(server, kit, module, name, path, *extra):
    file = str(kit / f"{module}.wasm")
    out = zkw_recipe(server, "install", file, "--name", name, "--path", path, *extra)
    assert out.returncode == 0, f"install {name}: {out.stderr}"


def recipe_log(server, name):
    out = zkw_recipe(server, "logs", name)
    assert out.returncode == 0, out.stderr
    return out.stdout


def mntr_recipe(server, name):
    """This server's counters for one recipe from `mntr`: runs, failures, fuel_used, time_us."""
    counters = {}
    for line in h.four_letter(server.port, "mntr").splitlines():
        key, _, value = line.partition("\t")
        if key.startswith("zk_recipe_") and key.endswith(f'{{name="{name}"}}'):
            counters[key[len("zk_recipe_") : key.index("{")]] = int(value)
    return counters


def zkcli(server, *args):
    """One zkCli.sh command; returns its exit code and its output (stdout and stderr)."""
    proc = subprocess.run(
        [h.ZK_CLI, "-server", server.hosts, *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_recipe_writes_fire_kazoo_watches_in_the_triggering_zxid(recipe_server, kit, rclients):
    c = rclients()
    c.create("/c")
    install(recipe_server, kit, "counter", "counter", "/c")
    # A fresh session: the install compiles under the apply lock, which may outlast a slow
    # machine's patience with the first one.
    c = rclients()
    created = h.Waiter()
    assert c.exists("/c/count", watch=created) is None
    children = h.Waiter()
    c.ChildrenWatch("/c", children)
    assert children.get() == []
    c.create("/c/a")
    event = created.get_node_event()
    assert (event.type, event.path) == ("CREATED", "/c/count")
    assert h.wait_for(lambda: sorted(children.get()) == ["a", "count"])

    changed = h.Waiter()
    data, _ = c.get("/c/count", watch=changed)
    assert data == b"1"
    values = h.Waiter()
    c.DataWatch("/c/count", lambda data, stat: values((data, stat)))
    assert values.get()[0] == b"1"
    c.create("/c/b")
    event = changed.get_node_event()
    assert (event.type, event.path) == ("CHANGED", "/c/count")
    assert values.get()[0] == b"2"

    # The recipe's write is part of the txn of the write that triggered it: one zxid.
    _, a = c.get("/c/a")
    _, b = c.get("/c/b")
    _, stat = c.get("/c/count")
    assert stat.czxid == a.czxid and stat.mzxid == b.czxid
    # Two creates in one kazoo transaction: two runs, both in that transaction's zxid.
    tx = c.transaction()
    tx.create("/c/d")
    tx.create("/c/e")
    assert tx.commit() == ["/c/d", "/c/e"]
    data, stat = values.get()
    while data != b"4":  # the DataWatch may see 3 on the way if kazoo re-reads in between
        data, stat = values.get()
    _, d = c.get("/c/d")
    assert (stat.version, stat.mzxid) == (3, d.czxid)
    assert mntr_recipe(recipe_server, "counter")["failures"] == 0


def test_validator_refusal_reaches_kazoo_as_bad_arguments(recipe_server, kit, rclients):
    install(recipe_server, kit, "validator", "validator", "/v")
    c = rclients()
    c.create("/v")
    c.create("/v/ok", b"fine")
    with pytest.raises(BadArgumentsError):
        c.create("/v/long", b"x" * 100)
    assert c.exists("/v/long") is None
    with pytest.raises(BadArgumentsError):
        c.set("/v/ok", b"\xff\xfe")
    assert c.get("/v/ok")[0] == b"fine"
    # Inside a transaction the refusal fails it whole; kazoo reports each op's outcome.
    tx = c.transaction()
    tx.create("/v/m1", b"ok")
    tx.set_data("/v/ok", b"\xff\xfe")
    results = tx.commit()
    assert isinstance(results[0], RolledBackError), results
    assert isinstance(results[1], BadArgumentsError), results
    assert c.exists("/v/m1") is None
    assert "rejected /v/long" in recipe_log(recipe_server, "validator")


def install_transaction(client, name, path, module):
    manifest = f"path={path}\nsize={len(module)}\nsha256={hashlib.sha256(module).hexdigest()}\n"
    tx = client.transaction()
    tx.create(f"{RECIPES_PATH}/{name}", manifest.encode())
    tx.create(f"{RECIPES_PATH}/{name}/module-0000", module)
    return tx.commit()


def test_install_through_plain_znodes_with_kazoo(recipe_server, kit, rclients):
    module = (kit / "counter.wasm").read_bytes()
    anonymous = rclients()
    admin = rclients()
    admin.add_auth("digest", f"{ADMIN_USER}:{ADMIN_PASSWORD}")
    admin.ensure_path(RECIPES_PATH)
    anonymous.create("/k")
    results = install_transaction(anonymous, "kcounter", "/k", module)
    assert any(isinstance(r, NoAuthError) for r in results), results
    assert anonymous.exists(f"{RECIPES_PATH}/kcounter") is None

    results = install_transaction(admin, "kcounter", "/k", module)
    assert results == [f"{RECIPES_PATH}/kcounter", f"{RECIPES_PATH}/kcounter/module-0000"]
    c = rclients()
    c.create("/k/x")
    c.create("/k/y")
    assert c.get("/k/count")[0] == b"2"
    assert "kcounter" in zkw_recipe(recipe_server, "list").stdout


def ensure_echo_call(server, kit, client):
    """echo_call bound to /e, installed once per server."""
    if client.exists(f"{RECIPES_PATH}/echo_call") is None:
        install(server, kit, "echo_call", "echo_call", "/e")
    client.ensure_path("/e")


def test_explicit_call_through_a_znode(recipe_server, kit, rclients):
    c = rclients()
    ensure_echo_call(recipe_server, kit, c)
    before = set(c.get_children("/e"))
    call = c.create(f"{RECIPES_PATH}/echo_call/call-", b"abc", ephemeral=True, sequence=True)
    assert call.startswith(f"{RECIPES_PATH}/echo_call/call-")
    data, stat = c.get(call)
    assert data == b"cba" and stat.ephemeralOwner == c.client_id[0]
    c.delete(call)
    # The call ran in the create's txn: its own write is there, with the same zxid.
    (called,) = set(c.get_children("/e")) - before
    data, called_stat = c.get(f"/e/{called}")
    assert data == b"abc" and called_stat.czxid == stat.czxid
    out = zkw_recipe(recipe_server, "call", "echo_call", "hello")
    assert (out.returncode, out.stdout.strip()) == (0, "olleh"), out.stderr


def test_hostile_recipe_leaves_the_server_serving(recipe_server, kit, rclients):
    c, other = rclients(), rclients()
    other.create("/bystander", b"still here")
    c.create("/spin")
    install(recipe_server, kit, "spin", "spin", "/spin", "--fuel", str(SPIN_FUEL))
    writes = 3
    writer = threading.Thread(target=lambda: [c.create(f"/spin/x{i}") for i in range(writes)])
    writer.start()
    slowest, reads = 0.0, 0
    while writer.is_alive() or reads == 0:
        started = time.monotonic()
        assert other.get("/bystander")[0] == b"still here"
        slowest = max(slowest, time.monotonic() - started)
        reads += 1
    writer.join(WAIT_S)
    print(f"{reads} reads while spin ran, the slowest {slowest:.3f}s")
    # Not a latency bound (this machine may be loaded): every read answered, and none waited
    # as long as the reader's session timeout, past which a real client loses its session.
    session_timeout_s = other._session_timeout / 1000
    assert slowest < session_timeout_s, f"a read waited {slowest:.3f}s"
    # The triggering writes committed; the runs' outputs (none) are discarded.
    assert sorted(other.get_children("/spin")) == [f"x{i}" for i in range(writes)]
    assert "out of fuel" in recipe_log(recipe_server, "spin")
    # Each create is two events under /spin (the node created, /spin's children changed):
    # every run failed.
    counters = mntr_recipe(recipe_server, "spin")
    assert counters["runs"] == counters["failures"] >= writes, counters


def pending_calls(client):
    """Names of the call nodes that exist now under echo_call."""
    return [n for n in client.get_children(f"{RECIPES_PATH}/echo_call") if n.startswith("call-")]


@pytest.mark.skipif(not os.path.exists(h.ZK_CLI), reason="zkCli.sh not installed")
def test_zkcli_reads_a_recipe_log_and_calls_a_recipe(recipe_server, kit, rclients):
    c = rclients()
    install(recipe_server, kit, "validator", "vcli", "/vcli")
    c.create("/vcli")
    with pytest.raises(BadArgumentsError):
        c.create("/vcli/long", b"y" * 100)
    rc, out = zkcli(recipe_server, "get", f"{RECIPES_PATH}/vcli/log")
    assert rc == 0 and "rejected /vcli/long" in out, out

    ensure_echo_call(recipe_server, kit, c)
    calls = f"{RECIPES_PATH}/echo_call"
    before = set(c.get_children("/e"))
    # One zkCli session, fed line by line: create the call node, then (once kazoo has seen its
    # name) read the result back before the session ends and takes the ephemeral with it.
    cli = subprocess.Popen(
        [h.ZK_CLI, "-server", recipe_server.hosts],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        cli.stdin.write(f"create -e -s {calls}/call- abc\n")
        cli.stdin.flush()
        pending = h.wait_for(lambda: pending_calls(c), timeout=CLI_TIMEOUT_S)
        assert len(pending) == 1, pending
        call = f"{calls}/{pending[0]}"
        cli.stdin.write(f"get {call}\nquit\n")
        out, _ = cli.communicate(timeout=CLI_TIMEOUT_S)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait(timeout=CLI_TIMEOUT_S)
    assert cli.returncode == 0 and f"Created {call}" in out, out
    assert "\ncba\n" in out, out
    # The call node was ephemeral: gone with zkCli's session. The recipe's own write stays.
    assert h.wait_for(lambda: c.exists(call) is None)
    (called,) = set(c.get_children("/e")) - before
    assert c.get(f"/e/{called}")[0] == b"abc"
