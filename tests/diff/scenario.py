"""The differential scenario: a fixed script of ZooKeeper operations whose
outcomes (results, error names, normalised Stats, per-client watch events)
are recorded so that two servers' records can be compared line by line.

Normalisation: each zxid is named after the op where it first appears, and
a final line lists those names in zxid order (keeps order and equality,
drops absolute values); session ids become client
names; times are reduced to the relation that must hold (mtime >= ctime, and
mtime == ctime while version == 0).
"""

from kazoo.protocol.states import ZnodeStat
from kazoo.security import (
    OPEN_ACL_UNSAFE,
    READ_ACL_UNSAFE,
    make_acl,
    make_digest_acl,
)

import zkharness as h

ROOT = "/diff"


class Zxid:
    """A raw zxid, replaced by its rank once the whole record is known."""

    def __init__(self, value):
        self.value = value


class Recorder:
    def __init__(self, clients):
        # clients: name -> (kazoo client, EventTap)
        self.clients = clients
        self.names = {c.client_id[0]: name for name, (c, _) in clients.items()}
        self.lines = []

    # ----------------------------------------------------------- normalise
    def norm(self, value):
        if isinstance(value, ZnodeStat):
            return self.norm_stat(value)
        if isinstance(value, BaseException):
            return f"!{type(value).__name__}"
        if isinstance(value, (list, tuple)):
            return [self.norm(v) for v in value]
        if hasattr(value, "perms") and hasattr(value, "id"):
            return (value.perms, value.id.scheme, value.id.id)
        return value

    def norm_stat(self, stat):
        owner = stat.ephemeralOwner
        times_ok = stat.mtime >= stat.ctime and (stat.version > 0 or stat.mtime == stat.ctime)
        return {
            "czxid": Zxid(stat.czxid),
            "mzxid": Zxid(stat.mzxid),
            "pzxid": Zxid(stat.pzxid),
            "version": stat.version,
            "cversion": stat.cversion,
            "aversion": stat.aversion,
            "owner": self.names.get(owner, "?") if owner else 0,
            "dataLength": stat.dataLength,
            "numChildren": stat.numChildren,
            "times_ok": times_ok,
        }

    # --------------------------------------------------------------- record
    def op(self, label, fn):
        """Run one call, then collect every client's pending watch events.

        A sync on each watching client is a barrier: ZooKeeper delivers a
        watch event before the reply to any later request of that client.
        """
        try:
            outcome = self.norm(fn())
        except Exception as exc:  # any failure is part of the record, not a crash
            outcome = f"!{type(exc).__name__}"
        events = {}
        for name, (client, tap) in self.clients.items():
            try:
                client.sync("/")
            except Exception as exc:  # keep recording so the diff shows the rest
                events[f"{name} sync"] = f"!{type(exc).__name__}"
            got = tap.drain()
            if got:
                events[name] = got
        self.lines.append((label, outcome, events))
        return outcome

    def finish(self):
        """Render one text line per op, then one line with the zxid order.

        Each distinct zxid is named after the op line where it first shows
        up (z12, z12b, ...), so one divergent op does not rename every later
        zxid; the last line lists all names in zxid order, which checks the
        order relations (czxid <= mzxid, pzxid, ...) between the two servers.
        """
        names = {}

        def name_zxids(v, index):
            if isinstance(v, Zxid):
                if v.value not in names:
                    taken = sum(1 for n in names.values() if n.split("_")[0] == f"z{index}")
                    names[v.value] = f"z{index}" + (f"_{taken}" if taken else "")
            elif isinstance(v, dict):
                for x in v.values():
                    name_zxids(x, index)
            elif isinstance(v, (list, tuple)):
                for x in v:
                    name_zxids(x, index)

        for index, (_, outcome, _) in enumerate(self.lines):
            name_zxids(outcome, index)

        def render(v):
            if isinstance(v, Zxid):
                return names[v.value]
            if isinstance(v, dict):
                return "{" + ", ".join(f"{k}={render(x)}" for k, x in v.items()) + "}"
            if isinstance(v, (list, tuple)):
                return "[" + ", ".join(render(x) for x in v) + "]"
            return repr(v)

        lines = [f"{label} -> {render(out)}  events={events}" for label, out, events in self.lines]
        lines.append("zxid order: " + " < ".join(names[z] for z in sorted(names)))
        return lines


def _noop(_event):
    pass


def run(server):
    """Run the scenario against `server`; return the rendered record."""
    c1 = h.new_client(server.hosts)
    c2 = h.new_client(server.hosts)
    try:
        rec = Recorder({"c1": (c1, h.EventTap(c1)), "c2": (c2, h.EventTap(c2))})
        rec.hosts = server.hosts
        _crud(rec, c1, c2)
        _sequential_and_modes(rec, c1, c2)
        _multi(rec, c1, c2)
        _acl(rec, c1, c2, server)
        _watches(rec, c1, c2)
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
        rec.names[c3.client_id[0]] = "c3"
        rec.op("c3 ephemeral", lambda: c3.create(f"{ROOT}/c3eph", ephemeral=True, include_data=True))
        rec.op("c1 exists watch c3eph", lambda: c1.exists(f"{ROOT}/c3eph", watch=_noop))
        rec.op("c3 close", c3.stop)
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
