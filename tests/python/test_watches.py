"""Watches: one-shot data/exists/child watches, kazoo DataWatch and
ChildrenWatch, persistent and persistent-recursive watches (addWatch), with
exact event types and order as seen on the wire."""

import queue

from kazoo.protocol.states import EventType

import zkharness as h


def test_one_shot_get_watch(zk, base):
    tap = h.EventTap(zk)
    seen = h.Waiter()
    zk.create(f"{base}/a", b"0")
    zk.get(f"{base}/a", watch=seen)
    zk.set(f"{base}/a", b"1")
    event = seen.get()
    assert event.type == EventType.CHANGED and event.path == f"{base}/a"
    zk.set(f"{base}/a", b"2")  # one-shot: no second event
    zk.sync("/")
    assert tap.drain() == [("NodeDataChanged", f"{base}/a")]


def test_exists_watch_on_missing_node(zk, base):
    seen = h.Waiter()
    assert zk.exists(f"{base}/later", watch=seen) is None
    zk.create(f"{base}/later")
    assert seen.get().type == EventType.CREATED
    zk.exists(f"{base}/later", watch=seen)
    zk.delete(f"{base}/later")
    assert seen.get().type == EventType.DELETED


def test_child_watch(zk, base):
    tap = h.EventTap(zk)
    zk.get_children(base, watch=lambda e: None)
    zk.create(f"{base}/c1")
    assert tap.next() == ("NodeChildrenChanged", base)
    # Setting a child's data does not fire a child watch: nothing arrives before the reply to
    # a later request (events precede later replies), and the watch still fires on delete.
    zk.get_children(base, watch=lambda e: None)
    zk.set(f"{base}/c1", b"x")
    zk.sync("/")
    assert tap.drain() == []
    zk.delete(f"{base}/c1")
    assert tap.next() == ("NodeChildrenChanged", base)


def test_delete_fires_data_and_child_watches_once(clients, zk, base):
    watcher = clients()
    tap = h.EventTap(watcher)
    zk.create(f"{base}/n")
    watcher.get(f"{base}/n", watch=lambda e: None)
    watcher.exists(f"{base}/n", watch=lambda e: None)
    watcher.get_children(f"{base}/n", watch=lambda e: None)
    watcher.get_children(base, watch=lambda e: None)
    zk.delete(f"{base}/n")
    events = tap.take(2)
    assert sorted(events) == [("NodeChildrenChanged", base), ("NodeDeleted", f"{base}/n")]
    watcher.sync("/")
    assert tap.drain() == []


def test_data_watch_recipe(zk, base):
    seen = queue.Queue()
    zk.create(f"{base}/dw", b"a")

    @zk.DataWatch(f"{base}/dw")
    def watch(data, stat):
        seen.put(data)

    assert seen.get(timeout=h.EVENT_TIMEOUT_S) == b"a"
    zk.set(f"{base}/dw", b"b")
    assert seen.get(timeout=h.EVENT_TIMEOUT_S) == b"b"
    zk.delete(f"{base}/dw")
    assert seen.get(timeout=h.EVENT_TIMEOUT_S) is None


def test_children_watch_recipe(zk, base):
    seen = queue.Queue()

    @zk.ChildrenWatch(base)
    def watch(children):
        seen.put(sorted(children))

    assert seen.get(timeout=h.EVENT_TIMEOUT_S) == []
    zk.create(f"{base}/x")
    assert seen.get(timeout=h.EVENT_TIMEOUT_S) == ["x"]
    zk.create(f"{base}/y")
    assert seen.get(timeout=h.EVENT_TIMEOUT_S) == ["x", "y"]


def test_persistent_watch(clients, zk, base):
    watcher = clients()
    tap = h.EventTap(watcher)
    zk.create(f"{base}/p", b"0")
    h.add_watch(watcher, f"{base}/p", recursive=False)
    zk.set(f"{base}/p", b"1")
    zk.set(f"{base}/p", b"2")
    zk.create(f"{base}/p/kid")
    zk.create(f"{base}/p/kid/grandkid")  # not a direct child: no event
    zk.delete(f"{base}/p/kid/grandkid")
    zk.delete(f"{base}/p/kid")
    zk.delete(f"{base}/p")
    zk.create(f"{base}/p")  # the watch survives deletion
    expected = [
        ("NodeDataChanged", f"{base}/p"),
        ("NodeDataChanged", f"{base}/p"),
        ("NodeChildrenChanged", f"{base}/p"),
        ("NodeChildrenChanged", f"{base}/p"),
        ("NodeDeleted", f"{base}/p"),
        ("NodeCreated", f"{base}/p"),
    ]
    assert tap.take(len(expected)) == expected
    watcher.sync("/")
    assert tap.drain() == []


def test_persistent_recursive_watch(clients, zk, base):
    watcher = clients()
    tap = h.EventTap(watcher)
    h.add_watch(watcher, f"{base}/r", recursive=True)
    zk.create(f"{base}/r")
    zk.create(f"{base}/r/a")
    zk.create(f"{base}/r/a/b", b"")
    zk.set(f"{base}/r/a/b", b"x")
    zk.delete(f"{base}/r/a/b")
    zk.create(f"{base}/other")  # outside the watched subtree
    expected = [
        ("NodeCreated", f"{base}/r"),
        ("NodeCreated", f"{base}/r/a"),
        ("NodeCreated", f"{base}/r/a/b"),
        ("NodeDataChanged", f"{base}/r/a/b"),
        ("NodeDeleted", f"{base}/r/a/b"),
    ]
    assert tap.take(len(expected)) == expected
    watcher.sync("/")
    assert tap.drain() == []


def test_watch_event_precedes_read_of_new_state(clients, zk, base):
    """A client sees the watch event before the result of a later read."""
    watcher = clients()
    tap = h.EventTap(watcher)
    zk.create(f"{base}/o", b"0")
    watcher.get(f"{base}/o", watch=lambda e: None)
    zk.set(f"{base}/o", b"1")
    watcher.sync(f"{base}/o")
    data, _ = watcher.get(f"{base}/o")
    assert data == b"1"
    assert tap.drain() == [("NodeDataChanged", f"{base}/o")]


# ZooKeeper 3.8 keeps one watch mode per (session, path) in each of its data and child
# tables, so a one-shot watch set over a persistent one overwrites it (ZOOKEEPER-4466).
# 3.9 fixed that: modes on one path are independent. zkw speaks 3.9 and keeps them apart;
# the reference run (ZKW_TARGET=zookeeper, Debian's 3.8) pins the old behaviour.
OLD_WATCH_MODES = h.target() == "zookeeper"


def test_one_shot_watch_over_persistent_data_watch(clients, zk, base):
    """A getData watch set over the same session's persistent watch: one event per change
    (never two); in 3.9 the persistent watch keeps firing, in 3.8 its data side turns
    one-shot."""
    watcher = clients()
    tap = h.EventTap(watcher)
    zk.create(f"{base}/p", b"0")
    h.add_watch(watcher, f"{base}/p", recursive=False)
    watcher.get(f"{base}/p", watch=lambda e: None)
    zk.set(f"{base}/p", b"1")
    assert tap.next() == ("NodeDataChanged", f"{base}/p")
    zk.set(f"{base}/p", b"2")
    if not OLD_WATCH_MODES:
        assert tap.next() == ("NodeDataChanged", f"{base}/p")
    zk.create(f"{base}/p/kid")  # child side still persistent
    assert tap.next() == ("NodeChildrenChanged", f"{base}/p")
    zk.create(f"{base}/p/kid2")
    assert tap.next() == ("NodeChildrenChanged", f"{base}/p")
    watcher.sync("/")
    assert tap.drain() == []


def test_one_shot_watch_over_recursive_watch_on_same_path(clients, zk, base):
    """A getData watch on the path of the same session's recursive watch: in 3.9 the
    recursive watch keeps covering the subtree; in 3.8 it is replaced and the subtree goes
    quiet."""
    watcher = clients()
    tap = h.EventTap(watcher)
    zk.create(f"{base}/r", b"0")
    h.add_watch(watcher, f"{base}/r", recursive=True)
    zk.create(f"{base}/r/before")
    assert tap.next() == ("NodeCreated", f"{base}/r/before")
    watcher.get(f"{base}/r", watch=lambda e: None)
    zk.create(f"{base}/r/after")
    if not OLD_WATCH_MODES:
        assert tap.next() == ("NodeCreated", f"{base}/r/after")
    zk.set(f"{base}/r", b"1")  # one event, whichever watches match
    assert tap.next() == ("NodeDataChanged", f"{base}/r")
    zk.set(f"{base}/r", b"2")
    if not OLD_WATCH_MODES:
        assert tap.next() == ("NodeDataChanged", f"{base}/r")
    watcher.sync("/")
    assert tap.drain() == []


def test_persistent_watch_upgrades_one_shot_watch(clients, zk, base):
    """addWatch over an existing getData watch of the same session makes it
    persistent (one mode per session and path)."""
    watcher = clients()
    tap = h.EventTap(watcher)
    zk.create(f"{base}/u", b"0")
    watcher.get(f"{base}/u", watch=lambda e: None)
    h.add_watch(watcher, f"{base}/u", recursive=False)
    zk.set(f"{base}/u", b"1")
    zk.set(f"{base}/u", b"2")
    assert tap.take(2) == [("NodeDataChanged", f"{base}/u")] * 2
