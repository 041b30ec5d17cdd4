"""The differential scenario: a fixed script of ZooKeeper operations whose
outcomes are recorded so that two servers' records can be compared line by
line. Each line holds, for one operation:

- its result: values, Stats, and for an error its numeric ZooKeeper code
  (and kazoo's class name), multi and multiRead results item by item;
- the reply header of the last reply each client read for it (zxid and the
  numeric err off the wire, through a tap kazoo does not provide);
- every client's watch events (type, keeper state, path) delivered before a
  sync barrier.

Normalisation keeps the relations clients rely on and drops only absolute
values:

- zxids: each distinct zxid is named after the line where it first appears
  (z12, z12_1, ...). Reply headers are recorded, so a write's zxid first
  appears on its own line: a Stat's mzxid/pzxid/czxid names the operation
  that set it (a write's reply zxid must equal its mzxid; pzxid must move
  with every child change and only then, while cversion counts them). A
  final line lists all names in zxid order.
- times: each op runs in its own wall-clock window (milliseconds, on this
  host, windows separated by at least one millisecond). A ctime/mtime is
  named after the window it falls in (t12; t12_1 for a second distinct
  value in the same window), so it must have been set by the operation
  that set it on ZooKeeper; a time outside every window is kept raw, so it
  matches only the identical value (the 0 of /zookeeper's nodes), never a
  clock reading. mtime is written "=ctime" when it equals ctime exactly.
- session ids become client names.
- per session, a final line says whether the reply-header zxids were
  non-decreasing over the whole run.
"""

import time

from kazoo.protocol.serialization import write_string
from kazoo.protocol.states import ZnodeStat
from kazoo.security import (
    OPEN_ACL_UNSAFE,
    READ_ACL_UNSAFE,
    make_acl,
    make_digest_acl,
)

import zkharness as h

ROOT = "/diff"

# TTL of the node that must expire during the run; container check is every
# h.CONTAINER_CHECK_INTERVAL_MS on both servers.
SHORT_TTL_MS = 500
# Long enough never to expire during the run.
LONG_TTL_MS = 600_000
# Session timeout of the raw sessions that must not expire on their own.
RAW_SESSION_TIMEOUT_MS = 30_000
# The raw session that must expire (idle, never pings): short, yet long
# enough to create its ephemeral first on a loaded machine.
EXPIRING_SESSION_TIMEOUT_MS = 2 * h.MIN_SESSION_TIMEOUT_MS
# Bound on waits for the server's own actions (reaping, session expiry).
SERVER_ACTION_TIMEOUT_S = 30.0
# Payloads around ZooKeeper's default jute.maxbuffer (0xfffff bytes).
UNDER_MAX_BUFFER_BYTES = 1_000_000
OVER_MAX_BUFFER_BYTES = 2 * 1024 * 1024


class Zxid:
    """A raw zxid, named once the whole record is known."""

    def __init__(self, value):
        self.value = value


class Time:
    """A raw ctime/mtime in ms, named after the op window it falls in."""

    def __init__(self, value):
        self.value = value


def now_ms():
    return time.time_ns() // 1_000_000


def _error(exc):
    code = getattr(exc, "code", None)
    name = type(exc).__name__
    return f"!{code} {name}" if isinstance(code, int) else f"!{name}"


class Recorder:
    def __init__(self, clients):
        # clients: name -> kazoo client
        self.clients = {}
        self.names = {}
        self.lines = []
        self.windows = []
        self.reply_zxids = {}  # client name -> every reply-header zxid, in order
        for name, client in clients.items():
            self.add_client(name, client)

    def add_client(self, name, client):
        self.clients[name] = (client, h.EventTap(client, states=True), h.ReplyTap(client))
        self.names[client.client_id[0]] = name
        self.reply_zxids.setdefault(name, [])

    def drop_client(self, name):
        """Stop syncing and tapping a client that is closing (its reply
        zxids stay in the monotonic check)."""
        self._replies()
        del self.clients[name]

    # ----------------------------------------------------------- normalise
    def norm(self, value):
        if isinstance(value, ZnodeStat):
            return self.norm_stat(value)
        if isinstance(value, BaseException):
            return _error(value)
        if isinstance(value, (list, tuple)):
            return [self.norm(v) for v in value]
        if hasattr(value, "perms") and hasattr(value, "id"):
            return (value.perms, value.id.scheme, value.id.id)
        return value

    def norm_stat(self, stat):
        owner = stat.ephemeralOwner
        return {
            "czxid": Zxid(stat.czxid),
            "mzxid": Zxid(stat.mzxid),
            "pzxid": Zxid(stat.pzxid),
            "ctime": Time(stat.ctime),
            "mtime": "=ctime" if stat.mtime == stat.ctime else Time(stat.mtime),
            "version": stat.version,
            "cversion": stat.cversion,
            "aversion": stat.aversion,
            "owner": self.names.get(owner, "?") if owner else 0,
            "dataLength": stat.dataLength,
            "numChildren": stat.numChildren,
        }

    # --------------------------------------------------------------- record
    def _replies(self):
        """Reply headers read since the last call: {client: (zxid, err) of the last}."""
        last = {}
        for name, (_, _, replies) in self.clients.items():
            got = replies.drain()
            self.reply_zxids[name] += [zxid for _, zxid, _ in got if zxid > 0]
            if got:
                _, zxid, err = got[-1]
                last[name] = (Zxid(zxid), err)
        return last

    def op(self, label, fn):
        """Run one call in its own wall-clock window, then collect every
        client's pending watch events.

        A sync on each watching client is a barrier: ZooKeeper delivers a
        watch event before the reply to any later request of that client.
        """
        self._replies()
        start = now_ms()
        if self.windows:
            while start <= self.windows[-1][1]:  # windows never share a millisecond
                start = now_ms()
        try:
            outcome = self.norm(fn())
        except Exception as exc:  # any failure is part of the record, not a crash
            outcome = _error(exc)
        self.windows.append((start, now_ms()))
        replies = self._replies()
        events = {}
        for name, (client, tap, _) in self.clients.items():
            try:
                client.sync("/")
            except Exception as exc:  # keep recording so the diff shows the rest
                events[f"{name} sync"] = _error(exc)
            got = tap.drain()
            if got:
                events[name] = got
        self.lines.append((label, outcome, replies, events))
        return outcome

    def finish(self):
        """The record: per op (label, {result, reply, events}) rendered as
        text, then the zxid order and, per client, whether its reply-header
        zxids never went down."""
        self._replies()
        names = {}
        times = {}

        def name_values(v, index):
            if isinstance(v, Zxid) and v.value > 0:
                if v.value not in names:
                    taken = sum(1 for n in names.values() if n.split("_")[0] == f"z{index}")
                    names[v.value] = f"z{index}" + (f"_{taken}" if taken else "")
            elif isinstance(v, Time):
                times.setdefault(v.value, None)
            elif isinstance(v, dict):
                for x in v.values():
                    name_values(x, index)
            elif isinstance(v, (list, tuple)):
                for x in v:
                    name_values(x, index)

        for index, (_, outcome, replies, _) in enumerate(self.lines):
            name_values(outcome, index)
            name_values(replies, index)

        for index, (start, end) in enumerate(self.windows):
            inside = sorted(t for t in times if start <= t <= end)
            for k, t in enumerate(inside):
                times[t] = f"t{index}" + (f"_{k}" if k else "")

        def render(v):
            if isinstance(v, Zxid):
                return names[v.value] if v.value > 0 else repr(v.value)
            if isinstance(v, Time):
                return times[v.value] or f"t?{v.value}"  # outside every window: never matches
            if isinstance(v, dict):
                return "{" + ", ".join(f"{k}={render(x)}" for k, x in v.items()) + "}"
            if isinstance(v, (list, tuple)):
                return "[" + ", ".join(render(x) for x in v) + "]"
            return repr(v)

        record = [
            (label, {"result": render(out), "reply": render(replies), "events": repr(events)})
            for label, out, replies, events in self.lines
        ]
        record.append(("zxid order", {"result": " < ".join(names[z] for z in sorted(names))}))
        for name, zxids in self.reply_zxids.items():
            ok = all(a <= b for a, b in zip(zxids, zxids[1:]))
            record.append((f"{name} reply zxids non-decreasing", {"result": repr(ok)}))
        return record


def text(record):
    """The record as text lines, one per op (what a failing diff shows)."""
    return [
        f"{label} -> " + "  ".join(v if k == "result" else f"{k}={v}" for k, v in fields.items())
        for label, fields in record
    ]


def _noop(_event):
    pass


def run(server):
    """Run the scenario against `server`; return its record (see finish)."""
    c1 = h.new_client(server.hosts)
    c2 = h.new_client(server.hosts)
    try:
        rec = Recorder({"c1": c1, "c2": c2})
        rec.hosts = server.hosts
        rec.port = server.port
        _crud(rec, c1, c2)
        _null_data(rec, c1, c2)
        _sequential_and_modes(rec, c1, c2)
        _bad_arguments(rec, c1, c2)
        _children_bookkeeping(rec, c1, c2)
        _multi(rec, c1, c2)
        _acl(rec, c1, c2, server)
        _multi_read(rec, c1, c2)
        _watches(rec, c1, c2)
        _remove_watches(rec, c1, c2)
        _reconnect_set_watches(rec, c1, c2)
        _interleaving(rec, c1, c2)
        _ttl_and_container_expiry(rec, c1, c2)
        _session_expiry(rec, c1, c2)
        _limits(rec, c1, c2)
        _queries(rec, c1, c2)
        return rec.finish()
    finally:
        for client in (c1, c2):
            client.stop()
            client.close()


def _crud(rec, c1, c2):
    r = ROOT
    rec.op("create root", lambda: c1.create(r, b"root", include_data=True))
    rec.op("create exists", lambda: c1.create(r))
    rec.op("create no parent", lambda: c1.create(f"{r}/x/y"))
    rec.op("create a", lambda: c1.create(f"{r}/a", b"A", include_data=True))
    rec.op("get a", lambda: c2.get(f"{r}/a"))
    rec.op("get missing", lambda: c2.get(f"{r}/nope"))
    rec.op("exists missing", lambda: c2.exists(f"{r}/nope"))
    rec.op("set a v0", lambda: c1.set(f"{r}/a", b"A1", version=0))
    rec.op("set a bad v0", lambda: c1.set(f"{r}/a", b"A2", version=0))
    rec.op("set a any", lambda: c1.set(f"{r}/a", b"A22", version=-1))
    rec.op("set missing", lambda: c1.set(f"{r}/nope", b""))
    rec.op("create a/child", lambda: c1.create(f"{r}/a/child", include_data=True))
    rec.op("stat a", lambda: c2.exists(f"{r}/a"))
    rec.op("delete a not empty", lambda: c1.delete(f"{r}/a"))
    rec.op("delete child bad version", lambda: c1.delete(f"{r}/a/child", version=3))
    rec.op("delete child", lambda: c1.delete(f"{r}/a/child", version=0))
    rec.op("delete child again", lambda: c1.delete(f"{r}/a/child"))
    rec.op("stat a after", lambda: c2.exists(f"{r}/a"))
    rec.op("children root", lambda: sorted(c2.get_children(r)))
    rec.op("children2 root", lambda: c2.get_children(r, include_data=True)[1])
    rec.op("children missing", lambda: c2.get_children(f"{r}/nope"))
    rec.op("empty data", lambda: c1.create(f"{r}/empty", b"", include_data=True))


def _sequential_and_modes(rec, c1, c2):
    s = f"{ROOT}/seq"
    rec.op("create seq parent", lambda: c1.create(s))
    for i in range(3):
        rec.op(f"seq {i}", lambda: c1.create(f"{s}/n-", sequence=True))
    rec.op("plain in seq", lambda: c1.create(f"{s}/plain"))
    rec.op("seq after plain", lambda: c1.create(f"{s}/n-", sequence=True))
    rec.op("delete plain", lambda: c1.delete(f"{s}/plain"))
    rec.op("seq after delete", lambda: c1.create(f"{s}/n-", sequence=True))
    rec.op("eph seq", lambda: c2.create(f"{s}/e-", ephemeral=True, sequence=True))
    rec.op("stat seq parent", lambda: c1.exists(s))
    rec.op("ephemeral", lambda: c2.create(f"{ROOT}/eph", b"e", ephemeral=True, include_data=True))
    rec.op("child of ephemeral", lambda: c2.create(f"{ROOT}/eph/kid"))
    rec.op("container", lambda: h.create_container(c1, f"{ROOT}/box"))
    rec.op("container child", lambda: c1.create(f"{ROOT}/box/item"))
    rec.op("ttl", lambda: h.create_ttl(c1, f"{ROOT}/ttl", 60_000, b"t"))
    rec.op("ttl seq", lambda: h.create_ttl(c1, f"{ROOT}/ttls-", 60_000, sequential=True))
    rec.op("ttl zero", lambda: h.create_ttl(c1, f"{ROOT}/ttl0", 0))
    rec.op("stat ttl", lambda: c2.exists(f"{ROOT}/ttl"))


def _multi(rec, c1, c2):
    m = f"{ROOT}/m"

    def ok():
        tx = c1.transaction()
        tx.create(m, b"0")
        tx.create(f"{m}/s-", sequence=True)
        tx.set_data(m, b"1", version=0)
        tx.check(m, 1)
        tx.create(f"{m}/gone")
        tx.delete(f"{m}/gone")
        return tx.commit()

    def bad():
        tx = c1.transaction()
        tx.create(f"{m}/new")
        tx.set_data(m, b"2", version=0)
        tx.delete(f"{ROOT}/nope")
        return tx.commit()

    def bad_first():
        tx = c1.transaction()
        tx.check(f"{ROOT}/nope", 0)
        tx.create(f"{m}/new2")
        return tx.commit()

    rec.op("multi ok", ok)
    rec.op("multi bad version", bad)
    rec.op("multi bad first", bad_first)
    rec.op("multi left no trace", lambda: sorted(c2.get_children(m)))
    rec.op("stat m", lambda: c2.exists(m))


def _acl(rec, c1, c2, server):
    a = f"{ROOT}/acl"
    alice = make_digest_acl("alice", "secret", all=True)
    rec.op("create digest", lambda: c1.create(a, b"secret", acl=[alice]))
    rec.op("get no auth", lambda: c2.get(a))
    rec.op("getacl no auth", lambda: c2.get_acls(a))
    rec.op("set no auth", lambda: c2.set(a, b"x"))
    rec.op("addauth alice", lambda: c2.add_auth("digest", "alice:secret"))
    rec.op("get with auth", lambda: c2.get(a))
    rec.op("getacl with auth", lambda: c2.get_acls(a))
    rec.op("setacl bad version", lambda: c2.set_acls(a, READ_ACL_UNSAFE, version=4))
    rec.op("setacl", lambda: c2.set_acls(a, READ_ACL_UNSAFE, version=0))
    rec.op("set read-only", lambda: c2.set(a, b"x"))
    rec.op("create under read-only", lambda: c2.create(f"{a}/kid"))
    rec.op("invalid digest id", lambda: c1.create(f"{ROOT}/bad1", acl=[make_acl("digest", "x", all=True)]))
    rec.op("auth without identity", lambda: c1.create(f"{ROOT}/bad2", acl=[make_acl("auth", "", all=True)]))
    rec.op("auth scheme", lambda: c2.create(f"{ROOT}/mine", acl=[make_acl("auth", "", all=True)]))
    rec.op("getacl auth", lambda: c2.get_acls(f"{ROOT}/mine"))
    rec.op("ip acl", lambda: c1.create(f"{ROOT}/ip", acl=[make_acl("ip", "127.0.0.1", read=True)]))
    rec.op("get ip", lambda: c1.get(f"{ROOT}/ip"))
    rec.op("set ip", lambda: c1.set(f"{ROOT}/ip", b"z"))
    rec.op("getacl open", lambda: c1.get_acls(ROOT))
    rec.op("setacl open", lambda: c1.set_acls(ROOT, OPEN_ACL_UNSAFE))


def _watches(rec, c1, c2):
    w = f"{ROOT}/w"
    rec.op("create w", lambda: c1.create(w, b"0"))
    rec.op("c2 get watch", lambda: c2.get(w, watch=_noop)[0])
    rec.op("c2 exists watch missing", lambda: c2.exists(f"{w}/k", watch=_noop))
    rec.op("c2 child watch", lambda: c2.get_children(w, watch=_noop))
    rec.op("c1 persistent", lambda: h.add_watch(c1, w, recursive=False))
    rec.op("c2 recursive", lambda: h.add_watch(c2, ROOT, recursive=True))
    rec.op("set w", lambda: c1.set(w, b"1"))
    rec.op("set w again", lambda: c1.set(w, b"2"))
    rec.op("create w/k", lambda: c1.create(f"{w}/k"))
    rec.op("set w/k", lambda: c1.set(f"{w}/k", b"x"))
    rec.op("c2 watches on w/k", lambda: (c2.get(f"{w}/k", watch=_noop)[0], c2.get_children(f"{w}/k", watch=_noop)))
    rec.op("delete w/k", lambda: c1.delete(f"{w}/k"))

    def multi_events():
        tx = c1.transaction()
        tx.create(f"{w}/m1")
        tx.set_data(w, b"3")
        tx.delete(f"{w}/m1")
        return tx.commit()

    rec.op("multi events", multi_events)
    # No one-shot watch of c1 on w here: it would sit beside c1's persistent watch, which
    # 3.8 merges into one mode (ZOOKEEPER-4466) and 3.9 (and zkw) keeps apart; the watch
    # tests in tests/python pin both behaviours.
    rec.op("c2 data watch", lambda: c2.get(w, watch=_noop)[0])
    rec.op("delete w", lambda: c1.delete(w))
    rec.op("recreate w", lambda: c1.create(w))
    rec.op("set w after recreate", lambda: c1.set(w, b"4"))
    rec.op("create w/after", lambda: c1.create(f"{w}/after"))
    _session_close(rec, c1, c2)


def _session_close(rec, c1, c2):
    """A third session's ephemerals vanish when it closes; watchers hear it."""
    c3 = h.new_client(rec.hosts)
    try:
        rec.add_client("c3", c3)
        rec.op("c3 ephemeral", lambda: c3.create(f"{ROOT}/c3eph", ephemeral=True, include_data=True))
        rec.op("c1 exists watch c3eph", lambda: c1.exists(f"{ROOT}/c3eph", watch=_noop))
        rec.op("c3 close", lambda: (rec.drop_client("c3"), c3.stop()))
        rec.op("c3eph gone", lambda: c1.exists(f"{ROOT}/c3eph"))
    finally:
        c3.stop()
        c3.close()


def _queries(rec, c1, c2):
    rec.op("all children number root", lambda: h.get_all_children_number(c1, ROOT))
    rec.op("all children number seq", lambda: h.get_all_children_number(c1, f"{ROOT}/seq"))
    rec.op("ephemerals c2", lambda: sorted(h.get_ephemerals(c2, ROOT)))
    rec.op("ephemerals c2 prefix", lambda: sorted(h.get_ephemerals(c2, f"{ROOT}/seq")))
    rec.op("ephemerals c1", lambda: h.get_ephemerals(c1, "/"))
    rec.op("sync", lambda: c1.sync(ROOT))
    rec.op("final children", lambda: sorted(c1.get_children(ROOT)))
    rec.op("final root stat", lambda: c1.exists(ROOT))


def _sorted_lists(results):
    """multiRead children come in server hash order: sort each name list."""
    return [sorted(r) if isinstance(r, list) else r for r in results]


def _null_data(rec, c1, c2):
    """Null data (length -1 on the wire) is not empty data: getData returns null."""
    n = f"{ROOT}/null"
    rec.op("create null", lambda: h.create_null(c1, n))
    rec.op("get null", lambda: c2.get(n))
    rec.op("set bytes on null", lambda: c1.set(n, b"x"))
    rec.op("set null", lambda: h.set_null(c1, n, version=1))
    rec.op("get after set null", lambda: c2.get(n))
    rec.op("set null bad version", lambda: h.set_null(c1, n, version=7))
    rec.op("set null missing", lambda: h.set_null(c1, f"{ROOT}/nope"))


def _named_reply(reply):
    zxid, err = reply
    return Zxid(zxid), err


def _bad_arguments(rec, c1, c2):
    """Requests kazoo would refuse to send, and the codes the server answers."""
    rec.op("create trailing slash", lambda: h.create_null(c1, f"{ROOT}/trail/"))
    rec.op("create empty segment", lambda: h.create_null(c1, f"{ROOT}//x"))
    rec.op("create dot segment", lambda: h.create_null(c1, f"{ROOT}/./x"))
    rec.op("sequential trailing slash", lambda: h.create_null(c1, f"{ROOT}/seq/", flags=h.FLAG_SEQUENTIAL))
    rec.op("ttl mode by create2", lambda: h.create_null(c1, f"{ROOT}/ttlmode", flags=h.FLAG_PERSISTENT_WITH_TTL))
    rec.op("container mode by create2", lambda: h.create_null(c1, f"{ROOT}/boxmode", flags=h.FLAG_CONTAINER))
    rec.op("createTTL plain mode", lambda: h.create_ttl_raw(c1, f"{ROOT}/ttlplain", 1000, h.FLAG_PERSISTENT))
    rec.op("createTTL negative", lambda: h.create_ttl(c1, f"{ROOT}/ttlneg", -5))
    rec.op("createTTL ephemeral mode", lambda: h.create_ttl_raw(c1, f"{ROOT}/ttleph", 1000, h.FLAG_EPHEMERAL))
    rec.op("create empty name", lambda: h.create_null(c1, f"{ROOT}/a/"))
    rec.op("create dot name", lambda: h.create_null(c1, f"{ROOT}/a/."))
    rec.op("create empty acl", lambda: c1.create(f"{ROOT}/noacl", acl=[]))
    rec.op("setacl empty", lambda: c1.set_acls(f"{ROOT}/a", []))
    rec.op("delete root", lambda: c1.delete("/"))
    rec.op("children /zookeeper", lambda: sorted(c1.get_children("/zookeeper")))
    for system in ("/zookeeper", "/zookeeper/config", "/zookeeper/quota"):
        rec.op(f"get {system}", lambda: c1.get(system))
        rec.op(f"getacl {system}", lambda: c1.get_acls(system))
    rec.op("set /zookeeper/config", lambda: c1.set("/zookeeper/config", b"x"))
    rec.op("create under /zookeeper", lambda: c1.create("/zookeeper/mine"))
    rec.op("delete /zookeeper", lambda: c1.delete("/zookeeper"))
    raw = h.RawSession(rec.port, RAW_SESSION_TIMEOUT_MS)
    rec.names[raw.session_id] = "r0"

    def bad_scheme():
        try:
            err = raw.auth("nosuchscheme", b"x")[1]
        except ConnectionError:
            err = "closed before a reply"
        return err, raw.closed_by_server(h.EVENT_TIMEOUT_S)

    def close_r0():
        again = h.RawSession(rec.port, RAW_SESSION_TIMEOUT_MS, raw.session_id, raw.password)
        return again.timeout_ms > 0, _named_reply(again.close_session())

    def negotiated(timeout_ms):
        session = h.RawSession(rec.port, timeout_ms)
        ping = _named_reply(session.ping())
        return session.timeout_ms, len(session.password), ping, _named_reply(session.close_session())

    try:
        rec.op("timeout below min", lambda: negotiated(h.MIN_SESSION_TIMEOUT_MS // 10))
        rec.op("timeout above max", lambda: negotiated(h.MAX_SESSION_TIMEOUT_MS * 10))
        rec.op("r0 auth with an unknown scheme", bad_scheme)
        rec.op("r0 session closed after", close_r0)
    finally:
        raw.close()


def _children_bookkeeping(rec, c1, c2):
    """pzxid moves with every child change and only then; cversion counts them."""
    p = f"{ROOT}/kids"
    rec.op("kids create", lambda: c1.create(p, include_data=True))
    rec.op("kids +a", lambda: c1.create(f"{p}/a", include_data=True))
    rec.op("kids stat after +a", lambda: c2.exists(p))
    rec.op("kids set a (no child change)", lambda: c1.set(f"{p}/a", b"1"))
    rec.op("kids set parent", lambda: c1.set(p, b"p"))
    rec.op("kids stat after sets", lambda: c2.exists(p))
    rec.op("kids +a again fails", lambda: c1.create(f"{p}/a"))
    rec.op("kids delete missing fails", lambda: c1.delete(f"{p}/zz"))
    rec.op("kids stat after failures", lambda: c2.exists(p))

    def plus_b_c_minus_a():
        tx = c1.transaction()
        tx.create(f"{p}/b")
        tx.create(f"{p}/c")
        tx.delete(f"{p}/a")
        return tx.commit()

    rec.op("kids multi +b +c -a", plus_b_c_minus_a)
    rec.op("kids get after multi", lambda: c2.get(p))
    rec.op("kids -b", lambda: c1.delete(f"{p}/b"))
    rec.op("kids stat after -b", lambda: c2.exists(p))
    rec.op("kids setacl (no child change)", lambda: c1.set_acls(p, OPEN_ACL_UNSAFE))
    rec.op("kids stat after setacl", lambda: c2.exists(p))


def _multi_read(rec, c1, c2):
    secret = f"{ROOT}/secret"
    alice = make_digest_acl("alice", "secret", all=True)
    rec.op("create secret", lambda: c1.create(secret, b"s", acl=[alice]))
    ops = [
        (h.GET_DATA_OP, f"{ROOT}/a"),
        (h.GET_CHILDREN_OP, f"{ROOT}/seq"),
        (h.GET_DATA_OP, f"{ROOT}/nope"),
        (h.GET_CHILDREN_OP, f"{ROOT}/nope"),
        (h.GET_DATA_OP, f"{ROOT}/null"),
        (h.GET_DATA_OP, secret),
        (h.GET_CHILDREN_OP, f"{ROOT}/kids"),
    ]
    rec.op("multiRead c1 (no auth for secret)", lambda: _sorted_lists(h.multi_read(c1, ops)))
    rec.op("multiRead c2 (alice)", lambda: _sorted_lists(h.multi_read(c2, ops)))
    rec.op("multiRead empty", lambda: h.multi_read(c1, []))


def _remove_watches(rec, c1, c2):
    """checkWatches/removeWatches: c1 watches, c2 writes (c2's recursive
    watch on ROOT stays, so its own events keep showing)."""
    r = f"{ROOT}/rw"
    rec.op("rw create", lambda: c2.create(r))
    rec.op("rw c1 data+child watch", lambda: (c1.get(r, watch=_noop)[0], c1.get_children(r, watch=_noop)))
    rec.op("rw check data", lambda: h.check_watches(c1, r, h.WATCHER_DATA))
    rec.op("rw check children", lambda: h.check_watches(c1, r, h.WATCHER_CHILDREN))
    rec.op("rw check none", lambda: h.check_watches(c1, f"{ROOT}/a", h.WATCHER_ANY))
    rec.op("rw check missing path", lambda: h.check_watches(c1, f"{ROOT}/nope", h.WATCHER_ANY))
    rec.op("rw remove data", lambda: h.remove_watches(c1, r, h.WATCHER_DATA))
    rec.op("rw check data after remove", lambda: h.check_watches(c1, r, h.WATCHER_DATA))
    rec.op("rw check children after data removed", lambda: h.check_watches(c1, r, h.WATCHER_CHILDREN))
    rec.op("rw remove data again", lambda: h.remove_watches(c1, r, h.WATCHER_DATA))
    rec.op("rw set (no data watch left)", lambda: c2.set(r, b"1"))
    rec.op("rw remove any", lambda: h.remove_watches(c1, r, h.WATCHER_ANY))
    rec.op("rw create child (no child watch left)", lambda: c2.create(f"{r}/k"))
    rec.op("rw remove any again", lambda: h.remove_watches(c1, r, h.WATCHER_ANY))
    # c1's persistent (non-recursive) watch on /diff/w, from _watches.
    w = f"{ROOT}/w"
    rec.op("rw check data on persistent", lambda: h.check_watches(c1, w, h.WATCHER_DATA))
    rec.op("rw check any on persistent", lambda: h.check_watches(c1, w, h.WATCHER_ANY))
    rec.op("rw remove children on persistent", lambda: h.remove_watches(c1, w, h.WATCHER_CHILDREN))
    rec.op("rw set w after removing children", lambda: c2.set(w, b"5"))
    rec.op("rw remove any on persistent", lambda: h.remove_watches(c1, w, h.WATCHER_ANY))
    rec.op("rw set w after removing any", lambda: c2.set(w, b"6"))
    rec.op("rw check any after removing any", lambda: h.check_watches(c1, w, h.WATCHER_ANY))


def _reconnect_set_watches(rec, c1, c2):
    """A raw client arms watches, loses its connection, misses changes,
    reconnects to the same session and re-sends them with SetWatches and the
    last zxid it saw: the server fires what it missed, re-arms the rest."""
    base = f"{ROOT}/rs"
    rec.op("rs create", lambda: c1.create(base))
    rec.op("rs create data", lambda: c1.create(f"{base}/data", b"0"))
    rec.op("rs create same", lambda: c1.create(f"{base}/same", b"0"))
    rec.op("rs create gone", lambda: c1.create(f"{base}/gone"))
    raw = h.RawSession(rec.port, RAW_SESSION_TIMEOUT_MS)
    rec.names[raw.session_id] = "r1"
    watch = b"\x01"
    held = {"again": None}

    def arm():
        errs = [
            raw.call(h.GET_DATA_OP, write_string(f"{base}/data") + watch)[1],
            raw.call(h.GET_DATA_OP, write_string(f"{base}/same") + watch)[1],
            raw.call(h.EXISTS_OP, write_string(f"{base}/born") + watch)[1],
            raw.call(h.GET_CHILDREN_OP, write_string(base) + watch)[1],
            raw.call(h.GET_DATA_OP, write_string(f"{base}/gone") + watch)[1],
            raw.call(h.GET_CHILDREN_OP, write_string(f"{base}/gone") + watch)[1],
        ]
        return errs, Zxid(raw.last_zxid)

    def reconnect():
        again = held["again"] = h.RawSession(
            rec.port, RAW_SESSION_TIMEOUT_MS, raw.session_id, raw.password
        )
        events = again.set_watches(
            raw.last_zxid,
            data=[f"{base}/data", f"{base}/same", f"{base}/gone"],
            exist=[f"{base}/born", f"{base}/never"],
            child=[base, f"{base}/gone"],
            states=True,
        )
        return rec.names.get(again.session_id, "other"), events

    try:
        rec.op("r1 arms data/exists/child watches", arm)
        rec.op("r1 connection lost", raw.close)
        rec.op("set data while away", lambda: c1.set(f"{base}/data", b"1"))
        rec.op("create born while away", lambda: c1.create(f"{base}/born"))
        rec.op("delete gone while away", lambda: c1.delete(f"{base}/gone"))
        rec.op("r1 reconnects with SetWatches", reconnect)
        rec.op("set same (re-armed)", lambda: c1.set(f"{base}/same", b"1"))
        rec.op("r1 reads the re-armed event", lambda: held["again"].read_frame(states=True)[2])
        rec.op("r1 closes", lambda: _named_reply(held["again"].close_session()))
    finally:
        raw.close()
        if held["again"] is not None:
            held["again"].close()


def _interleaving(rec, c1, c2):
    """Two sessions take turns on the same znodes (versions, sequence
    numbers, watches across sessions), then each pipelines requests."""
    i = f"{ROOT}/il"
    rec.op("il c1 create", lambda: c1.create(i, b"0", include_data=True))
    rec.op("il c2 get watch", lambda: c2.get(i, watch=_noop))
    rec.op("il c1 get watch", lambda: c1.get(i, watch=_noop))
    rec.op("il c2 set v0", lambda: c2.set(i, b"c2", version=0))
    rec.op("il c1 set stale v0", lambda: c1.set(i, b"c1", version=0))
    rec.op("il c1 set v1", lambda: c1.set(i, b"c1", version=1))
    rec.op("il c2 reads c1's write", lambda: c2.get(i))
    for k in range(2):
        rec.op(f"il c1 seq {k}", lambda: c1.create(f"{i}/s-", sequence=True))
        rec.op(f"il c2 eph seq {k}", lambda: c2.create(f"{i}/s-", ephemeral=True, sequence=True))
    rec.op("il c1 deletes c2's", lambda: c1.delete(f"{i}/s-0000000001"))
    rec.op("il children", lambda: sorted(c2.get_children(i)))

    def pipelined(client, path):
        # Several requests in flight at once: replies come in request order.
        # Only versions and zxids are kept: two writes may share a millisecond.
        pending = [
            client.create_async(path, b"0"),
            client.set_async(path, b"1"),
            client.get_async(path),
            client.set_async(path, b"2", version=5),
            client.delete_async(path, version=1),
            client.exists_async(path),
        ]
        out = []
        for result in pending:
            try:
                value = result.get(timeout=h.EVENT_TIMEOUT_S)
            except Exception as exc:  # the failure is the recorded outcome
                out.append(_error(exc))
                continue
            if isinstance(value, ZnodeStat):
                value = (value.version, Zxid(value.mzxid))
            elif isinstance(value, tuple):
                value = (value[0], value[1].version, Zxid(value[1].mzxid))
            out.append(value)
        return out

    rec.op("il c1 pipelined", lambda: pipelined(c1, f"{i}/p1"))
    rec.op("il c2 pipelined", lambda: pipelined(c2, f"{i}/p2"))


def _wait_gone(client, path):
    """Bounded wait for the server to delete `path` on its own."""
    return h.wait_for(lambda: client.exists(path) is None, timeout=SERVER_ACTION_TIMEOUT_S)


def _ttl_and_container_expiry(rec, c1, c2):
    """The server reaps an expired TTL node and an emptied container; c2's
    recursive watch on ROOT hears each deletion. The write that makes a node
    reapable and the wait share one op: the reaper may act at once."""
    t = f"{ROOT}/ttlshort"

    def ttl_create_then_reaped():
        created = h.create_ttl(c1, t, SHORT_TTL_MS, b"t")
        return created, _wait_gone(c1, t)

    rec.op("ttl short created, then reaped", ttl_create_then_reaped)
    rec.op("root after ttl reap", lambda: c2.exists(ROOT))
    box = f"{ROOT}/box2"
    rec.op("container2", lambda: h.create_container(c1, box))
    rec.op("container2 child", lambda: c1.create(f"{box}/x"))
    rec.op("container2 still there", lambda: c2.exists(box))
    rec.op("container2 child deleted, then reaped", lambda: (c1.delete(f"{box}/x"), _wait_gone(c1, box)))
    rec.op("root after container reap", lambda: c2.exists(ROOT))


def _session_expiry(rec, c1, c2):
    """A session that never pings expires: its ephemeral goes (c1's watch
    and c2's recursive watch hear it); reconnecting to it is refused."""
    e = f"{ROOT}/r2eph"
    raw = h.RawSession(rec.port, EXPIRING_SESSION_TIMEOUT_MS)
    rec.names[raw.session_id] = "r2"

    def revive():
        again = h.RawSession(rec.port, RAW_SESSION_TIMEOUT_MS, raw.session_id, raw.password)
        try:
            sid = rec.names.get(again.session_id, "other") if again.session_id else 0
            return again.timeout_ms, sid, again.closed_by_server(h.EVENT_TIMEOUT_S)
        finally:
            again.close()

    try:
        rec.op("r2 negotiated timeout", lambda: raw.timeout_ms)
        rec.op("r2 ephemeral", lambda: (raw.create(e), Zxid(raw.last_zxid)))
        rec.op("c1 exists watch r2eph", lambda: c1.exists(e, watch=_noop))
        rec.op("r2 expires", lambda: _wait_gone(c2, e))
        rec.op("r2 reconnects after expiry", revive)
    finally:
        raw.close()


def _limits(rec, c1, c2):
    """A request just under jute.maxbuffer is served; one past it gets its
    connection closed, and the session outlives that connection."""
    big = f"{ROOT}/big"
    rec.op("create under max buffer", lambda: c1.create(big, b"x" * UNDER_MAX_BUFFER_BYTES, include_data=True))
    rec.op("get under max buffer", lambda: len(c2.get(big)[0]))
    raw = h.RawSession(rec.port, RAW_SESSION_TIMEOUT_MS)
    rec.names[raw.session_id] = "r3"

    def oversized():
        raw.send_frame_of(OVER_MAX_BUFFER_BYTES)  # may fail part way: the server hangs up
        return raw.closed_by_server(h.EVENT_TIMEOUT_S)

    def revive():
        again = h.RawSession(rec.port, RAW_SESSION_TIMEOUT_MS, raw.session_id, raw.password)
        sid = rec.names.get(again.session_id, "other") if again.session_id else 0
        return sid, again.timeout_ms > 0, _named_reply(again.close_session())

    try:
        rec.op("r3 oversized request closes the connection", oversized)
        rec.op("r3 session survives, then closes", revive)
    finally:
        raw.close()
    rec.op("c1 still served", lambda: c1.exists(big) is not None)
