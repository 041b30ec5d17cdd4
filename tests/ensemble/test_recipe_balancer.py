"""The balancer recipe on a 3-node zkw ensemble, through kazoo and `zkw balance`.

Owns: every item is assigned to exactly one live member; a join moves about
1/N of the items, all of them to the newcomer; a member's session expiry (its
client killed -9) hands its items to the others and moves nothing else; the
assignment nodes are written in the same txn as the change; `zkw balance
GROUP --show` once. Skipped on Apache ZooKeeper.
"""

import signal

import pytest

from cluster import target
from recipe_kit import member_clients, recipe_ensemble, zkw
from test_recipe_discovery import spawn_ephemeral, wait_gone

pytestmark = [
    pytest.mark.skipif(target() == "zookeeper", reason="recipes are a zkw feature"),
    pytest.mark.timeout(180),
]

ROOT = "/balancer"
GROUP = f"{ROOT}/g"
ITEMS = [f"shard-{i:03d}" for i in range(60)]
# A join of the 4th member should take ITEMS/4 = 15; allow for hashing's spread.
JOIN_MOVED_MAX = 27


@pytest.fixture(scope="module")
def ensemble():
    yield from recipe_ensemble("balancer", ROOT)


@pytest.fixture
def clients(ensemble):
    yield from member_clients(ensemble)


def owners(zk):
    """item -> member, from the assignment nodes; fails if an item is held twice or a
    node belongs to no live member."""
    zk.sync(GROUP)
    members = set(zk.get_children(f"{GROUP}/members"))
    held = {}
    for member in zk.get_children(f"{GROUP}/assignments"):
        assert member in members, f"assignment node of a dead member {member}"
        data, _ = zk.get(f"{GROUP}/assignments/{member}")
        for item in filter(None, data.decode().split("\n")):
            assert item not in held, f"{item} held by {held[item]} and {member}"
            held[item] = member
    assert sorted(held) == ITEMS, "every item has exactly one owner"
    assert set(held.values()) <= members
    return held


def test_assignments_join_and_expiry(ensemble, clients):
    zk = clients[0]
    zk.ensure_path(f"{GROUP}/members")
    zk.ensure_path(f"{GROUP}/items")
    tx = zk.transaction()
    for item in ITEMS:
        tx.create(f"{GROUP}/items/{item}")
    assert all(result is not None and not isinstance(result, Exception)
               for result in tx.commit())
    for i, member in enumerate(clients):
        member.create(f"{GROUP}/members/m{i + 1}", b"1", ephemeral=True)
    three = owners(clients[1])
    assert set(three.values()) == {"m1", "m2", "m3"}

    # A join: the newcomer takes about 1/4, nobody else's items move.
    joined = clients[1].create(f"{GROUP}/members/m4", b"1", ephemeral=True)
    four = owners(clients[2])
    moved = [item for item in ITEMS if three[item] != four[item]]
    assert all(four[item] == "m4" for item in moved), moved
    assert 0 < len(moved) <= JOIN_MOVED_MAX, len(moved)
    m4 = zk.exists(f"{GROUP}/assignments/m4")
    assert m4.czxid == zk.exists(joined).czxid, "assigned in the join's txn"

    # A member's session expires: its items go to the others, nothing else moves.
    doomed = spawn_ephemeral(ensemble[3].hosts, f"{GROUP}/members/m5", b"1")
    try:
        five = owners(zk)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
        wait_gone(zk, f"{GROUP}/members/m5")
    finally:
        if doomed.poll() is None:
            doomed.kill()
            doomed.wait()
    after = owners(zk)
    assert "m5" not in after.values()
    for item in ITEMS:
        if five[item] != "m5":
            assert after[item] == five[item], item
    assert after == four, "rendezvous: back to the assignment before m5 joined"
    # Its assignment node went in the expiry's txn.
    assert zk.exists(f"{GROUP}/assignments/m5") is None
    assert zk.exists(f"{GROUP}/assignments").pzxid == zk.exists(f"{GROUP}/members").pzxid


def test_cli_show(ensemble, clients):
    zk = clients[0]
    zk.ensure_path(f"{ROOT}/cli/items/a")
    zk.ensure_path(f"{ROOT}/cli/items/b")
    zk.ensure_path(f"{ROOT}/cli/members")
    zk.create(f"{ROOT}/cli/members/solo", b"2", ephemeral=True)
    out = zkw(ensemble, "balance", "cli", "--show").stdout
    assert "solo\t2\t2\ta,b" in out, out
    assert "items: 2, members: 1, unassigned: 0" in out, out
