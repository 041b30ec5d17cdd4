"""Sessions: negotiated timeout, expiry of an idle session (ephemerals
vanish, watchers see NodeDeleted, the socket is closed), reconnect with the
same session id and password, bad password, explicit close."""

import pytest
from kazoo.client import KazooClient
from kazoo.protocol.states import KazooState

import zkharness as h

SHORT_TIMEOUT_MS = 2000


def test_negotiated_timeout_is_clamped(server):
    low = h.RawSession(server.port, 10)
    high = h.RawSession(server.port, 10_000_000)
    try:
        assert low.timeout_ms == h.MIN_SESSION_TIMEOUT_MS
        assert high.timeout_ms == h.MAX_SESSION_TIMEOUT_MS
        assert low.session_id != high.session_id and low.session_id != 0
        assert len(low.password) == 16
    finally:
        low.close()
        high.close()


def test_idle_session_expires(zk, base):
    raw = h.RawSession(int(zk.hosts[0][1]), SHORT_TIMEOUT_MS)
    try:
        assert raw.create(f"{base}/eph") == 0
        _, stat = zk.get(f"{base}/eph")
        assert stat.ephemeralOwner == raw.session_id
        seen = h.Waiter()
        zk.exists(f"{base}/eph", watch=seen)
        # No pings: the server must expire the session and close the socket.
        event = seen.get(timeout=SHORT_TIMEOUT_MS / 1000 * 4 + 5)
        assert event.type == "DELETED" and event.path == f"{base}/eph"
        assert zk.exists(f"{base}/eph") is None
        assert raw.closed_by_server(timeout=10)
    finally:
        raw.close()


def test_reconnect_with_same_session(server, clients, zk, base):
    raw = h.RawSession(server.port, 10_000)
    assert raw.create(f"{base}/eph") == 0
    raw.close()  # drop the socket without closing the session
    resumed = clients(client_id=(raw.session_id, raw.password))
    assert resumed.client_id[0] == raw.session_id
    assert zk.exists(f"{base}/eph").ephemeralOwner == raw.session_id
    # The resumed session owns the ephemeral: closing it removes the node.
    resumed.create(f"{base}/eph2", ephemeral=True)
    resumed.stop()
    assert zk.exists(f"{base}/eph") is None and zk.exists(f"{base}/eph2") is None


def test_reconnect_with_bad_password_is_expired(server):
    raw = h.RawSession(server.port, 10_000)
    raw.close()
    bad = h.RawSession(server.port, 10_000, session_id=raw.session_id, password=b"x" * 16)
    try:
        # ZooKeeper answers an expired/invalid session with timeout 0 and
        # session id 0, then closes the connection.
        assert bad.timeout_ms == 0 and bad.session_id == 0
        assert bad.closed_by_server(timeout=10)
    finally:
        bad.close()


def test_kazoo_sees_session_lost_after_expiry(server, zk, base):
    """A kazoo client whose session is expired reports LOST."""
    victim = KazooClient(hosts=server.hosts, timeout=10.0)
    states = []
    victim.add_listener(states.append)
    victim.start(timeout=10)
    try:
        victim.create(f"{base}/v", ephemeral=True)
        # Expire the session by closing it from a second connection that
        # shares its id and password.
        sid, pw = victim.client_id
        twin = KazooClient(hosts=server.hosts, timeout=10.0, client_id=(sid, pw))
        twin.start(timeout=10)
        twin.stop()
        twin.close()
        assert h.wait_for(lambda: zk.exists(f"{base}/v") is None)
        assert h.wait_for(lambda: KazooState.LOST in states, timeout=30)
    finally:
        victim.stop()
        victim.close()


def test_close_session_removes_ephemerals(clients, zk, base):
    other = clients()
    other.create(f"{base}/e1", ephemeral=True)
    other.create(f"{base}/e2", ephemeral=True, sequence=True)
    other.stop()
    assert zk.get_children(base) == []


@pytest.mark.parametrize(
    "timeout_s, negotiated_ms", [(4.0, 4000), (120.0, h.MAX_SESSION_TIMEOUT_MS)]
)
def test_kazoo_session_timeout_negotiated(server, timeout_s, negotiated_ms):
    # kazoo keeps the timeout it asked for, not the negotiated one: read the server's `cons`.
    client = KazooClient(hosts=server.hosts, timeout=timeout_s)
    client.start(timeout=10)
    try:
        needle = f"sid=0x{client.client_id[0]:x},"
        line = next(
            line for line in h.four_letter(server.port, "cons").splitlines() if needle in line
        )
        assert f",to={negotiated_ms}," in line, line
    finally:
        client.stop()
        client.close()


def test_reconnect_keeps_session(server, zk, base):
    """kazoo reconnects after a dropped connection with the same session;
    its ephemerals survive. (kazoo itself does not re-send watches: it hands
    its watchers a NONE event instead.)"""
    proxy = h.Proxy(server.port)
    client = KazooClient(hosts=proxy.hosts, timeout=10.0)
    states = []
    client.add_listener(states.append)
    try:
        client.start(timeout=10)
        sid = client.client_id[0]
        client.create(f"{base}/eph", ephemeral=True)
        proxy.cut()
        assert h.wait_for(lambda: KazooState.SUSPENDED in states)
        zk.set(base, b"changed while away")
        proxy.resume()
        assert h.wait_for(lambda: states[-1] == KazooState.CONNECTED)
        assert KazooState.LOST not in states
        assert client.client_id[0] == sid
        assert client.get(base)[0] == b"changed while away"
        assert zk.exists(f"{base}/eph").ephemeralOwner == sid
    finally:
        client.stop()
        client.close()
        proxy.close()


def test_set_watches_after_reconnect(server, zk, base):
    """SetWatches with the last zxid seen fires, at once and in order, the
    events the client missed, and re-arms the rest."""
    raw = h.RawSession(server.port, 10_000)
    zk.create(f"{base}/data", b"0")
    zk.create(f"{base}/gone")
    last_zxid = zk.create(f"{base}/same", include_data=True)[1].mzxid
    raw.close()  # connection lost; the session lives on
    zk.set(f"{base}/data", b"1")
    zk.delete(f"{base}/gone")
    zk.create(f"{base}/born")
    again = h.RawSession(server.port, 10_000, raw.session_id, raw.password)
    try:
        assert again.session_id == raw.session_id
        events = again.set_watches(
            last_zxid,
            data=[f"{base}/data", f"{base}/gone", f"{base}/same"],
            exist=[f"{base}/born", f"{base}/nothere"],
            child=[base],
        )
        assert events == [
            ("NodeDataChanged", f"{base}/data"),
            ("NodeDeleted", f"{base}/gone"),
            ("NodeCreated", f"{base}/born"),
            ("NodeChildrenChanged", base),
        ]
        # The watches that had nothing to report are armed now.
        zk.set(f"{base}/same", b"x")
        assert again.read_frame()[2] == ("NodeDataChanged", f"{base}/same")
        zk.create(f"{base}/nothere")
        assert again.read_frame()[2] == ("NodeCreated", f"{base}/nothere")
    finally:
        again.close_session()
