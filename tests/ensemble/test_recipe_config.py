"""The config-push recipe on a 3-node zkw ensemble, through kazoo and `zkw config`.

Owns: an invalid config is refused with BadArguments, the reason lands in the
recipe's log node and the live node is unchanged; a valid one is published in
the same txn as the write and reaches watchers connected to every member; a
schema node is enforced; rollback (one write) restores the earlier bytes; and
each `zkw config` subcommand once. Skipped on Apache ZooKeeper (no recipes).
"""

import queue
import tempfile
from pathlib import Path

import pytest
from kazoo.exceptions import BadArgumentsError

from cluster import target
from recipe_kit import member_clients, recipe_ensemble, zkw

pytestmark = [
    pytest.mark.skipif(target() == "zookeeper", reason="recipes are a zkw feature"),
    pytest.mark.timeout(180),
]

ROOT = "/config"
RECIPE = "config-push"
# Bounded waits, all in seconds.
EVENT_TIMEOUT_S = 15.0


@pytest.fixture(scope="module")
def ensemble():
    yield from recipe_ensemble(RECIPE, ROOT)


@pytest.fixture
def clients(ensemble):
    """One kazoo client per member, so watchers sit on different servers."""
    yield from member_clients(ensemble)


class Watcher:
    """A DataWatch whose every delivery lands in a queue."""

    def __init__(self, zk, path):
        self.seen = queue.Queue()
        zk.DataWatch(path, lambda data, stat: self.seen.put(data))

    def wait_for(self, data):
        while True:
            got = self.seen.get(timeout=EVENT_TIMEOUT_S)
            if got == data:
                return


def recipe_log(zk):
    zk.sync(f"/zookeeper/recipes/{RECIPE}/log")
    data, _ = zk.get(f"/zookeeper/recipes/{RECIPE}/log")
    return data.decode()


def test_validate_publish_and_rollback(clients):
    writer, *readers = clients
    writer.ensure_path(ROOT)
    first = b'{"port": 80, "name": "web"}'
    writer.create(f"{ROOT}/web", first)
    live, live_stat = writer.get(f"{ROOT}/web/live")
    assert live == first
    _, app_stat = writer.get(f"{ROOT}/web")
    assert live_stat.mzxid == app_stat.mzxid, "published in the write's own txn"
    assert writer.get_children(f"{ROOT}/web/versions") == ["v-0000000001"]

    watchers = [Watcher(zk, f"{ROOT}/web/live") for zk in readers]
    for watcher in watchers:
        watcher.wait_for(first)
    second = b'port = 81\nname = "web"\n'
    writer.set(f"{ROOT}/web", second)
    for watcher in watchers:
        watcher.wait_for(second)

    # Refused: bad JSON, bad TOML; the live node does not move.
    _, before = writer.get(f"{ROOT}/web/live")
    with pytest.raises(BadArgumentsError):
        writer.set(f"{ROOT}/web", b'{"port": ')
    with pytest.raises(BadArgumentsError):
        writer.set(f"{ROOT}/web", b"port = = 1")
    data, after = writer.get(f"{ROOT}/web/live")
    assert (data, after.mzxid) == (second, before.mzxid)
    assert writer.get(f"{ROOT}/web")[0] == second
    log = recipe_log(readers[0])
    assert f"rejected {ROOT}/web: invalid JSON" in log
    assert f"rejected {ROOT}/web: invalid TOML" in log

    # A schema: required keys and types.
    writer.create(f"{ROOT}/web/schema", b'{"required": {"port": "integer", "name": "string"}}')
    with pytest.raises(BadArgumentsError):
        writer.set(f"{ROOT}/web", b'{"port": "eighty", "name": "web"}')
    assert 'must be integer, not string' in recipe_log(writer)
    with pytest.raises(BadArgumentsError):
        writer.set(f"{ROOT}/web/live", b"forged")

    # Rollback is one write; the bytes of version 1 come back to every watcher.
    writer.create(f"{ROOT}/web/rollback", b"1")
    for watcher in watchers:
        watcher.wait_for(first)
    assert writer.get(f"{ROOT}/web/live")[0] == first
    assert writer.get_children(f"{ROOT}/web/versions") == [
        "v-0000000001", "v-0000000002", "v-0000000003"]
    with pytest.raises(BadArgumentsError):
        writer.set(f"{ROOT}/web/rollback", b"99")


def test_cli(ensemble, clients):
    zk = clients[1]
    with tempfile.TemporaryDirectory() as tmp:
        good = Path(tmp) / "db.toml"
        good.write_text('host = "db1"\npool = 4\n')
        done = zkw(ensemble, "config", "push", "db", good)
        assert "live is version 1" in done.stdout
        bad = Path(tmp) / "bad.json"
        bad.write_text('{"host": ')
        done = zkw(ensemble, "config", "push", "db", bad, check=False)
        assert done.returncode != 0
        assert "refused: invalid JSON" in done.stderr, done.stderr
        good.write_text('host = "db2"\npool = 8\n')
        zkw(ensemble, "config", "push", "db", good)
    assert zkw(ensemble, "config", "get", "db").stdout == 'host = "db2"\npool = 8\n'
    history = zkw(ensemble, "config", "history", "db").stdout
    assert "1\t" in history and "2 (live)\t" in history, history
    done = zkw(ensemble, "config", "rollback", "db", "1")
    assert "live is version 3" in done.stdout
    zk.sync(f"{ROOT}/db/live")
    assert zk.get(f"{ROOT}/db/live")[0] == b'host = "db1"\npool = 4\n'
    done = zkw(ensemble, "config", "rollback", "db", "42", check=False)
    assert done.returncode != 0 and "no version 42" in done.stderr, done.stderr
