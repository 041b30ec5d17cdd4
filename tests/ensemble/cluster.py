"""Ensemble fixture: N real server processes on loopback, zkw or Apache ZooKeeper 3.8.

Owns: per-member directories (zoo.cfg, dataDir with myid, a log), starting
members the way operators do (`zkw server start-foreground --config zoo.cfg`,
or ZooKeeper's QuorumPeerMain on the same file), the process faults (kill -9,
SIGSTOP/SIGCONT, SIGTERM, restart, wipe), four-letter-word probes (srvr mode
and zxid, mntr, the `hash` digest), bounded waits for a quorum and a leader,
and the proxy wiring: member N's `server.M` line (M != N) names the proxy
port of the link N -> M, so `Proxy.partition` can cut any set of peers.

Target: env ZKW_TARGET=zookeeper runs ZooKeeper; anything else runs zkw from
env ZKW_BIN (default <repo>/target/debug/zkw).
"""

import atexit
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from proxy import Proxy

REPO_ROOT = Path(__file__).resolve().parents[2]
# slf4j-simple gives ZooKeeper's log a binding (INFO to stderr, into server.log).
ZK_CLASSPATH = "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar"
HOST = "127.0.0.1"

# Timing of every ensemble, chosen so an election completes in a few seconds
# on a loaded 2-core machine: sync timeout = SYNC_LIMIT_TICKS * TICK_TIME_MS.
TICK_TIME_MS = 250
INIT_LIMIT_TICKS = 20
SYNC_LIMIT_TICKS = 6
MIN_SESSION_TIMEOUT_MS = 500
MAX_SESSION_TIMEOUT_MS = 60000
# ZooKeeper's election connect timeout (default 5 s) bounds how long a
# blackholed election connection can stall; zkw ignores the key.
ZK_CNX_TIMEOUT_MS = 1500


@dataclass(frozen=True)
class Timing:
    """An ensemble's timing keys; `cnx_timeout_ms` None leaves ZooKeeper's own default."""

    tick_ms: int = TICK_TIME_MS
    init_limit: int = INIT_LIMIT_TICKS
    sync_limit: int = SYNC_LIMIT_TICKS
    cnx_timeout_ms: int = ZK_CNX_TIMEOUT_MS

    @property
    def sync_timeout_s(self):
        """syncLimit x tickTime: how long a follower may go unheard (ZooKeeper's
        learner read timeout; zkw's longest election timeout)."""
        return self.tick_ms * self.sync_limit / 1000.0


# The tests' timing (above); and ZooKeeper's sample zoo.cfg (conf/zoo_sample.cfg), as an
# operator would run it, with ZooKeeper's default election connect timeout.
DEFAULT_TIMING = Timing()
SAMPLE_TIMING = Timing(tick_ms=2000, init_limit=10, sync_limit=5, cnx_timeout_ms=None)

# Bounded waits, all in seconds.
MEMBER_START_TIMEOUT_S = 30.0
MEMBER_STOP_TIMEOUT_S = 10.0
QUORUM_TIMEOUT_S = 40.0
FOUR_LETTER_TIMEOUT_S = 2.0
POLL_INTERVAL_S = 0.1

# Member ports come from [MEMBER_PORT_LOW, start of the ephemeral range).
MEMBER_PORT_LOW = 12000
PORT_PICK_TRIES_MAX = 1000
_rng = random.Random()
_picked_ports = set()

MODES_SERVING = ("leader", "follower", "observer", "standalone")

_LIVE_CLUSTERS = set()


@atexit.register
def _close_leftover_clusters():
    """Last resort: never leave a server behind if a run aborts."""
    for cluster in list(_LIVE_CLUSTERS):
        cluster.close()


def wait_for(what, predicate, timeout):
    """Polls `predicate` until it returns something true, and returns that; raises
    TimeoutError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(POLL_INTERVAL_S)
    raise TimeoutError(f"{what}: not within {timeout}s")


def target():
    value = os.environ.get("ZKW_TARGET", "zkw")
    if value not in ("zkw", "zookeeper"):
        raise ValueError(f"ZKW_TARGET must be zkw or zookeeper, not {value!r}")
    return value


def zkw_binary():
    return Path(os.environ.get("ZKW_BIN", REPO_ROOT / "target" / "debug" / "zkw"))


def _ephemeral_range():
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port():
    """A free port below the kernel's ephemeral range.

    A member's ports must stay free while it is down: a port from the
    ephemeral range could meanwhile become the source port of some outgoing
    connection, and the restarted member would fail to bind."""
    low = _ephemeral_range()[0]
    for _ in range(PORT_PICK_TRIES_MAX):
        port = _rng.randrange(MEMBER_PORT_LOW, low)
        if port in _picked_ports:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
        _picked_ports.add(port)
        return port
    raise RuntimeError("no free member port below the ephemeral range")


def four_letter(port, cmd, timeout=FOUR_LETTER_TIMEOUT_S):
    """Send a four-letter word; return the reply, or '' when the port is dead."""
    deadline = time.monotonic() + timeout
    chunks = []
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.sendall(cmd.encode())
            while time.monotonic() < deadline:
                data = s.recv(65536)
                if not data:
                    break
                chunks.append(data)
    except OSError:
        pass
    return b"".join(chunks).decode(errors="replace")


def parse_kv(text, sep):
    out = {}
    for line in text.splitlines():
        if sep in line:
            key, _, value = line.partition(sep)
            out[key.strip()] = value.strip()
    return out


class Member:
    """One server of the ensemble; its ports stay fixed across restarts."""

    def __init__(self, cluster, sid):
        self.cluster = cluster
        self.id = sid
        self.client_port = free_port()
        self.quorum_port = free_port()
        self.election_port = free_port()
        self.dir = cluster.base_dir / f"m{sid}"
        self.data_dir = self.dir / "data"
        self.cfg_path = self.dir / "zoo.cfg"
        self.log_path = self.dir / "server.log"
        self.proc = None
        self.paused = False
        self.starts = 0

    def __repr__(self):
        return f"Member({self.id} :{self.client_port})"

    @property
    def hosts(self):
        return f"{HOST}:{self.client_port}"

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    # ------------------------------------------------------------ config

    def write_config(self):
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "myid").write_text(f"{self.id}\n")
        cfg = {
            "tickTime": self.cluster.timing.tick_ms,
            "initLimit": self.cluster.timing.init_limit,
            "syncLimit": self.cluster.timing.sync_limit,
            "dataDir": self.data_dir,
            "clientPort": self.client_port,
            "clientPortAddress": HOST,
            "maxClientCnxns": 0,
            "minSessionTimeout": MIN_SESSION_TIMEOUT_MS,
            "maxSessionTimeout": MAX_SESSION_TIMEOUT_MS,
            "4lw.commands.whitelist": "*",
            "admin.enableServer": "false",
            "standaloneEnabled": "false",
            "reconfigEnabled": "false",
        }
        if self.id in self.cluster.observers:
            cfg["peerType"] = "observer"
        cfg.update(self.cluster.extra_cfg)
        lines = [f"{k}={v}\n" for k, v in cfg.items()]
        for peer in self.cluster.members.values():
            lines.append(f"server.{peer.id}={self.cluster.peer_address(self.id, peer.id)}\n")
        self.cfg_path.write_text("".join(lines))

    def command(self):
        if self.cluster.target == "zkw":
            binary = zkw_binary()
            if not binary.exists():
                raise RuntimeError(f"zkw binary {binary} not found: cargo build or set ZKW_BIN")
            return [str(binary), "server", "start-foreground", "--config", str(self.cfg_path)]
        cnx_timeout = self.cluster.timing.cnx_timeout_ms
        return [
            "java",
            "-Xmx256m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Dorg.slf4j.simpleLogger.showDateTime=true",
            "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
            "-Dzookeeper.admin.enableServer=false",
            "-Dzookeeper.4lw.commands.whitelist=*",
            *([f"-Dzookeeper.cnxTimeout={cnx_timeout}"] if cnx_timeout is not None else []),
            "-cp",
            ZK_CLASSPATH,
            "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            str(self.cfg_path),
        ]

    # ------------------------------------------------------------ process faults

    def start(self):
        """Spawn the process; returns at once (see Cluster.wait_quorum)."""
        if self.running:
            raise RuntimeError(f"member {self.id} already running")
        self.write_config()
        with open(self.log_path, "ab") as log:
            log.write(f"\n==== start {self.starts} at {time.time():.3f}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                start_new_session=True,
            )
        self.starts += 1
        self.paused = False

    def kill(self):
        """kill -9: no shutdown path runs, unflushed state is lost."""
        if self.proc is not None and self.proc.poll() is None:
            if self.paused:
                self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(MEMBER_STOP_TIMEOUT_S)
        self.paused = False

    def stop(self):
        """SIGTERM, then kill -9 if it does not exit in time."""
        if self.proc is not None and self.proc.poll() is None:
            if self.paused:
                self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(MEMBER_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(MEMBER_STOP_TIMEOUT_S)
        self.paused = False

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def restart(self):
        self.kill()
        self.start()

    def wipe(self):
        """Delete the dataDir (keeping myid): the member must catch up from peers."""
        if self.running:
            raise RuntimeError(f"stop member {self.id} before wiping it")
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.data_dir.mkdir(parents=True)
        (self.data_dir / "myid").write_text(f"{self.id}\n")

    # ------------------------------------------------------------ probes

    def four_letter(self, cmd):
        return four_letter(self.client_port, cmd)

    def srvr(self):
        return parse_kv(self.four_letter("srvr"), ":")

    def mode(self):
        """'leader', 'follower', ... or None when not serving (or not answering)."""
        if not self.running or self.paused:
            return None
        return self.srvr().get("Mode")

    def zxid(self):
        """Last processed zxid from srvr, or None."""
        value = self.srvr().get("Zxid")
        return int(value, 16) if value else None

    def mntr(self):
        """mntr as a dict of strings (zk_digest, zk_last_processed_zxid when present)."""
        return parse_kv(self.four_letter("mntr"), "\t")

    def digests(self):
        """{zxid: tree digest} this member exposes: mntr's zk_digest at
        zk_last_processed_zxid (zkw), or ZooKeeper's `hash` history (one entry
        every 128 txns since the member started); {} when neither is there."""
        mntr = self.mntr()
        if "zk_digest" in mntr:
            return {mntr.get("zk_last_processed_zxid", "?"): mntr["zk_digest"]}
        out = {}
        for line in self.four_letter("hash").splitlines():
            zxid, sep, digest = line.partition(":")
            if sep and zxid.strip() and digest.strip():
                out[zxid.strip().lower()] = digest.strip()
        return out

    def log_tail(self, lines=30):
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "<no log>"
        return "\n".join(text.splitlines()[-lines:])


class Cluster:
    """N members (ids 1..N) wired through an in-process proxy on the peer ports; the ids in
    `observers` are observers (`:observer` on their server lines, `peerType=observer` in their
    own zoo.cfg), the others participants."""

    def __init__(
        self,
        size,
        base_dir=None,
        extra_cfg=None,
        proxied=True,
        target_kind=None,
        timing=None,
        observers=(),
    ):
        self.target = target_kind or target()
        self.observers = frozenset(observers)
        self.timing = timing or DEFAULT_TIMING
        self.base_dir = Path(base_dir or tempfile.mkdtemp(prefix=f"zkw-ensemble-{self.target}-"))
        self.extra_cfg = dict(extra_cfg or {})
        self.members = {}
        for sid in range(1, size + 1):
            self.members[sid] = Member(self, sid)
        self.proxy = Proxy() if proxied else None
        if self.proxy:
            for src in self.members.values():
                for dst in self.members.values():
                    if src.id != dst.id:
                        self.proxy.add_link(src.id, dst.id, "quorum", dst.quorum_port)
                        self.proxy.add_link(src.id, dst.id, "election", dst.election_port)
        _LIVE_CLUSTERS.add(self)

    def peer_address(self, viewer, sid):
        """The server.N value member `viewer` uses for member `sid`."""
        peer = self.members[sid]
        if viewer == sid or self.proxy is None:
            quorum, election = peer.quorum_port, peer.election_port
        else:
            quorum = self.proxy.port(viewer, sid, "quorum")
            election = self.proxy.port(viewer, sid, "election")
        # Roles only when there is an observer: the other ensembles keep ZooKeeper's plain form.
        role = ""
        if self.observers:
            role = ":observer" if sid in self.observers else ":participant"
        return f"{HOST}:{quorum}:{election}{role};{HOST}:{peer.client_port}"

    def __getitem__(self, sid):
        return self.members[sid]

    @property
    def ids(self):
        return list(self.members)

    def hosts(self, ids=None):
        """A client connect string over the given members (default: all)."""
        ids = self.ids if ids is None else ids
        return ",".join(self.members[i].hosts for i in ids)

    def start(self):
        for member in self.members.values():
            member.start()
        return self.wait_quorum()

    # ------------------------------------------------------------ waits

    def modes(self):
        return {sid: m.mode() for sid, m in self.members.items()}

    def _check_exits(self, ids):
        for sid in ids:
            member = self.members[sid]
            if member.proc is not None and member.proc.poll() is not None:
                raise RuntimeError(
                    f"member {sid} exited with {member.proc.returncode}:\n{member.log_tail()}"
                )

    def wait_quorum(self, ids=None, timeout=QUORUM_TIMEOUT_S, exclude_leader=None):
        """Wait until the members `ids` (default: every running, unpaused one) all serve
        with exactly one leader among them; returns the leader's id."""
        deadline = time.monotonic() + timeout
        modes = {}
        while time.monotonic() < deadline:
            want = ids or [s for s, m in self.members.items() if m.running and not m.paused]
            self._check_exits(want)
            modes = {sid: self.members[sid].mode() for sid in want}
            if len(self.members) > 1 and "standalone" in modes.values():
                raise RuntimeError(
                    f"members run standalone though zoo.cfg lists {len(self.members)} servers "
                    f"(no ensemble mode in this build?): modes {modes}"
                )
            leaders = [sid for sid, mode in modes.items() if mode == "leader"]
            if (
                all(mode in MODES_SERVING for mode in modes.values())
                and len(leaders) == 1
                and leaders[0] != exclude_leader
            ):
                return leaders[0]
            time.sleep(POLL_INTERVAL_S)
        tails = "\n".join(f"--- {s}\n{self.members[s].log_tail(15)}" for s in modes)
        raise TimeoutError(f"no quorum in {timeout}s: modes {modes}\n{tails}")

    def leader(self, timeout=QUORUM_TIMEOUT_S):
        return self.wait_quorum(timeout=timeout)

    def wait_converged(self, ids=None, timeout=QUORUM_TIMEOUT_S):
        """Wait until the members report the same last zxid; returns it."""
        deadline = time.monotonic() + timeout
        zxids = {}
        ids = ids or [s for s, m in self.members.items() if m.running and not m.paused]
        while time.monotonic() < deadline:
            zxids = {sid: self.members[sid].zxid() for sid in ids}
            values = set(zxids.values())
            if len(values) == 1 and None not in values:
                return values.pop()
            time.sleep(POLL_INTERVAL_S)
        raise TimeoutError(f"members did not converge in {timeout}s: zxids {zxids}")

    def digest_mismatches(self, ids=None):
        """Pairs of members whose digests differ at a zxid both expose; [] when none.
        Returns (mismatches, number of zxids compared)."""
        ids = ids or [s for s, m in self.members.items() if m.running and not m.paused]
        seen = {sid: self.members[sid].digests() for sid in ids}
        mismatches, compared = [], 0
        for i, a in enumerate(ids):
            for b in ids[i + 1 :]:
                for zxid in seen[a].keys() & seen[b].keys():
                    compared += 1
                    if seen[a][zxid] != seen[b][zxid]:
                        mismatches.append((zxid, a, seen[a][zxid], b, seen[b][zxid]))
        return mismatches, compared

    def wait_digests_agree(self, ids=None, timeout=QUORUM_TIMEOUT_S):
        """Asserts the members' digests agree at every zxid two of them expose, once at least
        one was compared: a write landing between two members' answers leaves none in common,
        and ZooKeeper's `hash` history has an entry only every 128 txns. Returns how many were
        compared."""
        deadline = time.monotonic() + timeout
        while True:
            mismatches, compared = self.digest_mismatches(ids)
            assert not mismatches, (
                f"digests differ (zxid, member, digest, member, digest): {mismatches}"
            )
            if compared:
                return compared
            if time.monotonic() > deadline:
                raise AssertionError(f"no zxid at which two members' digests compare in {timeout}s")
            time.sleep(POLL_INTERVAL_S)

    # ------------------------------------------------------------ partitions

    def partition(self, side_a, side_b, mode="drop"):
        self.proxy.partition(side_a, side_b, mode)

    def heal(self):
        self.proxy.heal()

    def close(self, keep_dir=False):
        for member in self.members.values():
            try:
                member.kill()
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.proxy:
            self.proxy.close()
            self.proxy = None
        _LIVE_CLUSTERS.discard(self)
        if not keep_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)
