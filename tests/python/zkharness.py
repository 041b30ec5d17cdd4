"""Test harness shared by tests/python and tests/diff.

Owns: starting a ZooKeeper-protocol server (zkw or Apache ZooKeeper 3.8) on
free loopback ports with a bounded readiness wait, four-letter-word queries,
kazoo extensions for opcodes kazoo 2.11 lacks (createContainer, createTTL,
addWatch, getEphemerals, getAllChildrenNumber, multiRead, checkWatches,
removeWatches, null data), taps on a kazoo client's raw watch events and raw
reply headers, and a minimal raw-socket session that can be left idle to
expire, reconnect with SetWatches, or send what kazoo cannot.
"""

import atexit
import os
import queue
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from kazoo.client import KazooClient
from kazoo.handlers.threading import AsyncResult
from kazoo.protocol.serialization import (
    Create2,
    SetData,
    Watch,
    int_struct,
    read_buffer,
    read_string,
    stat_struct,
    write_buffer,
    write_string,
)
from kazoo.protocol.states import ZnodeStat
from kazoo.security import OPEN_ACL_UNSAFE

REPO_ROOT = Path(__file__).resolve().parents[2]
ZK_JAR_CLASSPATH = "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar"
ZK_CLI = "/usr/share/zookeeper/bin/zkCli.sh"
ZK_C_CLI = "/usr/lib/zookeeper/bin/cli_mt"

# Bounded waits, all in seconds.
SERVER_READY_TIMEOUT_S = 60.0
SERVER_STOP_TIMEOUT_S = 10.0
FOUR_LETTER_TIMEOUT_S = 5.0
EVENT_TIMEOUT_S = 10.0

TICK_TIME_MS = 500
MIN_SESSION_TIMEOUT_MS = 1000
MAX_SESSION_TIMEOUT_MS = 60000
CONTAINER_CHECK_INTERVAL_MS = 200

# super:superpw -> base64(sha1("super:superpw"))
SUPER_USER = "super"
SUPER_PASSWORD = "superpw"


def super_digest():
    from kazoo.security import make_digest_acl_credential

    return make_digest_acl_credential(SUPER_USER, SUPER_PASSWORD)


def target():
    """Which server the Python suite talks to: 'zkw' (default) or 'zookeeper'."""
    value = os.environ.get("ZKW_TARGET", "zkw")
    if value not in ("zkw", "zookeeper"):
        raise ValueError(f"ZKW_TARGET must be zkw or zookeeper, not {value!r}")
    return value


def zkw_binary():
    return Path(os.environ.get("ZKW_BIN", REPO_ROOT / "target" / "debug" / "zkw"))


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def four_letter(port, cmd, timeout=FOUR_LETTER_TIMEOUT_S):
    """Send a four-letter word and read until the server closes the socket."""
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(cmd.encode())
        chunks = []
        while time.monotonic() < deadline:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode(errors="replace")


_LIVE_SERVERS = set()


@atexit.register
def _stop_leftover_servers():
    """Last resort: never leave a server behind if a test run aborts."""
    for server in list(_LIVE_SERVERS):
        server.stop()


class Server:
    """One server process on a free port; `kind` is 'zkw' or 'zookeeper'."""

    def __init__(self, kind, whitelist="*", extra_cfg=None):
        self.kind = kind
        self.whitelist = whitelist
        self.extra_cfg = dict(extra_cfg or {})
        self.port = None
        self.proc = None
        self.tmpdir = None
        self.log_path = None

    @property
    def hosts(self):
        return f"127.0.0.1:{self.port}"

    def _write_config(self):
        data_dir = Path(self.tmpdir) / "data"
        data_dir.mkdir()
        cfg = {
            "tickTime": TICK_TIME_MS,
            "dataDir": data_dir,
            "clientPort": self.port,
            "clientPortAddress": "127.0.0.1",
            "maxClientCnxns": 0,
            "4lw.commands.whitelist": self.whitelist,
            "extendedTypesEnabled": "true",
            "znode.container.checkIntervalMs": CONTAINER_CHECK_INTERVAL_MS,
            "minSessionTimeout": MIN_SESSION_TIMEOUT_MS,
            "maxSessionTimeout": MAX_SESSION_TIMEOUT_MS,
            "DigestAuthenticationProvider.superDigest": super_digest(),
            "admin.enableServer": "false",
        }
        cfg.update(self.extra_cfg)
        path = Path(self.tmpdir) / "zoo.cfg"
        path.write_text("".join(f"{k}={v}\n" for k, v in cfg.items()))
        return path

    def _command(self, cfg_path):
        if self.kind == "zkw":
            binary = zkw_binary()
            if not binary.exists():
                raise RuntimeError(
                    f"zkw binary {binary} not found: run `cargo build` or set ZKW_BIN"
                )
            return [str(binary), "server", "start-foreground", "--config", str(cfg_path)]
        return [
            "java",
            "-Xmx256m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Dzookeeper.root.logger=INFO,CONSOLE",
            "-Dzookeeper.extendedTypesEnabled=true",
            "-Dzookeeper.admin.enableServer=false",
            # ContainerManager reads this one without the "zookeeper." prefix,
            # so the zoo.cfg key alone does not reach it.
            f"-Dznode.container.checkIntervalMs={CONTAINER_CHECK_INTERVAL_MS}",
            f"-Dzookeeper.4lw.commands.whitelist={self.whitelist}",
            f"-Dzookeeper.DigestAuthenticationProvider.superDigest={super_digest()}",
            "-cp",
            ZK_JAR_CLASSPATH,
            "org.apache.zookeeper.server.ZooKeeperServerMain",
            str(cfg_path),
        ]

    def start(self, wait=True):
        """Starts the process; `wait=False` returns at once (the caller probes readiness)."""
        self.tmpdir = tempfile.mkdtemp(prefix=f"zkw-test-{self.kind}-")
        self.port = free_port()
        cfg_path = self._write_config()
        self.log_path = Path(self.tmpdir) / "server.log"
        self._spawn(cfg_path, "wb")
        if wait:
            self._wait_ready()
        return self

    def _spawn(self, cfg_path, log_mode):
        """Runs the server on `cfg_path`, its output into the log (`wb` new, `ab` appended)."""
        with open(self.log_path, log_mode) as log:
            self.proc = subprocess.Popen(
                self._command(cfg_path),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.tmpdir,
                start_new_session=True,
            )
        _LIVE_SERVERS.add(self)

    def _wait_ready(self):
        deadline = time.monotonic() + SERVER_READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.kind} exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                # imok only says the port is up; a session handshake says
                # the request pipeline is running too.
                if four_letter(self.port, "ruok", timeout=1.0) == "imok":
                    RawSession(self.port, MIN_SESSION_TIMEOUT_MS).close_session()
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.kind} not ready in {SERVER_READY_TIMEOUT_S}s:\n{self.log_tail()}")

    def log_tail(self, lines=40):
        try:
            text = Path(self.log_path).read_text(errors="replace")
        except OSError:
            return "<no log>"
        all_lines = text.splitlines()
        # A Rust panic's message sits above a long backtrace: keep it.
        panic = [
            "\n".join(all_lines[i : i + 2]) for i, line in enumerate(all_lines) if "panicked at" in line
        ]
        return "\n".join(panic[:3] + ["..."] + all_lines[-lines:]) if panic else "\n".join(all_lines[-lines:])

    def restart(self):
        """Stops the process (SIGTERM) and starts it again on the same config and data."""
        self._terminate()
        self._spawn(Path(self.tmpdir) / "zoo.cfg", "ab")
        self._wait_ready()
        return self

    def _terminate(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=SERVER_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=SERVER_STOP_TIMEOUT_S)

    def stop(self):
        self._terminate()
        _LIVE_SERVERS.discard(self)
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None


# ---------------------------------------------------------------- kazoo extras

CREATE_CONTAINER_OP = 19
CREATE_TTL_OP = 21
GET_EPHEMERALS_OP = 103
GET_ALL_CHILDREN_NUMBER_OP = 104
ADD_WATCH_OP = 106

FLAG_PERSISTENT = 0
FLAG_EPHEMERAL = 1
FLAG_SEQUENTIAL = 2
FLAG_CONTAINER = 4
FLAG_PERSISTENT_WITH_TTL = 5
FLAG_PERSISTENT_SEQUENTIAL_WITH_TTL = 6

ADD_WATCH_PERSISTENT = 0
ADD_WATCH_PERSISTENT_RECURSIVE = 1

CHECK_WATCHES_OP = 17
REMOVE_WATCHES_OP = 18
# WatcherType of checkWatches/removeWatches
WATCHER_CHILDREN = 1
WATCHER_DATA = 2
WATCHER_ANY = 3

CREATE_OP = 1
EXISTS_OP = 3
GET_CHILDREN_OP = 8
SET_DATA_OP = 5

NOTIFICATION_XID = -1
PING_XID = -2
AUTH_XID = -4
AUTH_OP = 100
PING_OP = 11
CLOSE_SESSION_OP = -11
SET_WATCHES_XID = -8
SET_WATCHES_OP = 101

EVENT_NAMES = {
    -1: "None",
    1: "NodeCreated",
    2: "NodeDeleted",
    3: "NodeDataChanged",
    4: "NodeChildrenChanged",
    5: "DataWatchRemoved",
    6: "ChildWatchRemoved",
    7: "PersistentWatchRemoved",
}

KEEPER_STATE_NAMES = {
    0: "Disconnected",
    3: "SyncConnected",
    4: "AuthFailed",
    5: "ConnectedReadOnly",
    6: "SaslAuthenticated",
    -112: "Expired",
    7: "Closed",
}


def _write_acls(acls):
    out = bytearray(int_struct.pack(len(acls)))
    for acl in acls:
        out += int_struct.pack(acl.perms) + write_string(acl.id.scheme) + write_string(acl.id.id)
    return out


class _CreateExt:
    """createContainer / createTTL request (Create2-shaped response)."""

    watcher = None

    def __init__(self, op, path, data, acl, flags, ttl=None):
        self.type = op
        self.path, self.data, self.acl, self.flags, self.ttl = path, data, acl, flags, ttl

    def serialize(self):
        out = bytearray(write_string(self.path))
        out += write_buffer(self.data)
        out += _write_acls(self.acl)
        out += int_struct.pack(self.flags)
        if self.ttl is not None:
            out += struct.pack("!q", self.ttl)
        return out

    @classmethod
    def deserialize(cls, buf, offset):
        path, offset = read_string(buf, offset)
        return path, ZnodeStat._make(stat_struct.unpack_from(buf, offset))


class _PathRequest:
    """A request whose body is a path (+ optional int) and response a list or int."""

    watcher = None

    def __init__(self, op, path, mode=None, reply="none"):
        self.type, self.path, self.mode, self.reply = op, path, mode, reply

    def serialize(self):
        out = bytearray(write_string(self.path))
        if self.mode is not None:
            out += int_struct.pack(self.mode)
        return out

    def deserialize(self, buf, offset):
        if self.reply == "int":
            return int_struct.unpack_from(buf, offset)[0]
        if self.reply == "strings":
            count = int_struct.unpack_from(buf, offset)[0]
            offset += 4
            items = []
            for _ in range(max(count, 0)):
                item, offset = read_string(buf, offset)
                items.append(item)
            return items
        return True


def _call(client, request):
    result = AsyncResult(client.handler)
    client._call(request, result)
    return result.get(timeout=EVENT_TIMEOUT_S)


def create_container(client, path, data=b"", acl=None):
    req = _CreateExt(CREATE_CONTAINER_OP, path, data, acl or OPEN_ACL_UNSAFE, FLAG_CONTAINER)
    return _call(client, req)


def create_ttl(client, path, ttl_ms, data=b"", acl=None, sequential=False):
    flags = FLAG_PERSISTENT_SEQUENTIAL_WITH_TTL if sequential else FLAG_PERSISTENT_WITH_TTL
    return create_ttl_raw(client, path, ttl_ms, flags, data, acl)


def create_ttl_raw(client, path, ttl_ms, flags, data=b"", acl=None):
    """createTTL with any create mode (the server must refuse non-TTL modes)."""
    req = _CreateExt(CREATE_TTL_OP, path, data, acl or OPEN_ACL_UNSAFE, flags, ttl_ms)
    return _call(client, req)


MULTI_READ_OP = 22
GET_DATA_OP = 4
ERROR_OP = -1
multi_header_struct = struct.Struct("!iBi")


class _MultiRead:
    """multiRead (op 22) of getData / getChildren sub-ops, given as (op, path);
    each result is (data, stat), a list of names, or an error code.
    kazoo 2.11 has no multiRead."""

    watcher = None
    type = MULTI_READ_OP

    def __init__(self, ops):
        self.ops = ops

    def serialize(self):
        out = bytearray()
        for op, path in self.ops:
            out += multi_header_struct.pack(op, False, -1)
            out += write_string(path) + b"\0"
        return out + multi_header_struct.pack(-1, True, -1)

    def deserialize(self, buf, offset):
        results = []
        while True:
            kind, done, err = multi_header_struct.unpack_from(buf, offset)
            offset += multi_header_struct.size
            if done:
                return results
            if kind == ERROR_OP:
                results.append(int_struct.unpack_from(buf, offset)[0])
                offset += int_struct.size
            elif kind == GET_CHILDREN_OP:
                count = int_struct.unpack_from(buf, offset)[0]
                offset += int_struct.size
                names = []
                for _ in range(max(count, 0)):
                    name, offset = read_string(buf, offset)
                    names.append(name)
                results.append(names)
            else:
                data, offset = read_buffer(buf, offset)
                results.append((data, ZnodeStat._make(stat_struct.unpack_from(buf, offset))))
                offset += stat_struct.size


def multi_read(client, ops):
    """ops: [(GET_DATA_OP | GET_CHILDREN_OP, path), ...]"""
    return _call(client, _MultiRead(ops))


def multi_read_data(client, paths):
    return multi_read(client, [(GET_DATA_OP, p) for p in paths])


def check_watches(client, path, watcher_type):
    """checkWatches (op 17): True, or NoWatcherError when `client` has no such watch."""
    return _call(client, _PathRequest(CHECK_WATCHES_OP, path, watcher_type))


def remove_watches(client, path, watcher_type):
    """removeWatches (op 18) on the server (kazoo keeps its own callbacks)."""
    return _call(client, _PathRequest(REMOVE_WATCHES_OP, path, watcher_type))


def create_null(client, path, acl=None, flags=FLAG_PERSISTENT):
    """create2 with null data (length -1 on the wire); kazoo insists on bytes."""
    return _call(client, Create2(path, None, acl or OPEN_ACL_UNSAFE, flags))


def set_null(client, path, version=-1):
    """setData with null data (length -1 on the wire)."""
    return _call(client, SetData(path, None, version))


def add_watch(client, path, recursive=False):
    mode = ADD_WATCH_PERSISTENT_RECURSIVE if recursive else ADD_WATCH_PERSISTENT
    return _call(client, _PathRequest(ADD_WATCH_OP, path, mode))


def get_ephemerals(client, prefix="/"):
    return _call(client, _PathRequest(GET_EPHEMERALS_OP, prefix, reply="strings"))


def get_all_children_number(client, path):
    return _call(client, _PathRequest(GET_ALL_CHILDREN_NUMBER_OP, path, reply="int"))


class EventTap:
    """Records every watch notification a kazoo client receives, in wire order.

    kazoo drops event types it does not know and forgets persistent watches
    after one event, so we read the raw notification before kazoo does.
    """

    def __init__(self, client, states=False):
        """`states=True` records (type, keeper state, path) instead of (type, path)."""
        self.events = queue.Queue()
        self.seen = []
        conn = client._connection
        original = conn._read_watch_event

        def tapped(buffer, offset):
            watch, _ = Watch.deserialize(buffer, offset)
            kind = EVENT_NAMES.get(watch.type, watch.type)
            path = client.unchroot(watch.path)
            if states:
                self.events.put((kind, KEEPER_STATE_NAMES.get(watch.state, watch.state), path))
            else:
                self.events.put((kind, path))
            return original(buffer, offset)

        conn._read_watch_event = tapped

    def next(self, timeout=EVENT_TIMEOUT_S):
        event = self.events.get(timeout=timeout)
        self.seen.append(event)
        return event

    def take(self, count, timeout=EVENT_TIMEOUT_S):
        return [self.next(timeout) for _ in range(count)]

    def drain(self, settle=0.0):
        """Events that arrived so far (after `settle` seconds, when a caller
        must show that nothing else comes; used only after a sync barrier)."""
        if settle:
            time.sleep(settle)
        out = []
        while True:
            try:
                out.append(self.events.get_nowait())
            except queue.Empty:
                return out


class ReplyTap:
    """Records the ReplyHeader (xid, zxid, err) of every reply to a request
    a kazoo client reads, in wire order (pings and notifications left out):
    kazoo keeps only the last zxid and turns err into an exception class."""

    def __init__(self, client):
        self.replies = queue.Queue()
        conn = client._connection
        original = conn._read_header

        def tapped(timeout):
            header, buffer, offset = original(timeout)
            if header.xid not in (PING_XID, NOTIFICATION_XID):
                self.replies.put((header.xid, header.zxid, header.err))
            return header, buffer, offset

        conn._read_header = tapped

    def drain(self):
        out = []
        while True:
            try:
                out.append(self.replies.get_nowait())
            except queue.Empty:
                return out


def new_client(hosts, timeout=10.0, **kwargs):
    client = KazooClient(hosts=hosts, timeout=timeout, connection_retry=None, **kwargs)
    client.start(timeout=timeout)
    return client


# ------------------------------------------------------------ raw idle session


class RawSession:
    """A bare session over a socket: handshake, a few writes, then silence.

    Never pings, so the server must expire it after its negotiated timeout.
    """

    def __init__(self, port, timeout_ms, session_id=0, password=b"\0" * 16):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=EVENT_TIMEOUT_S)
        body = struct.pack("!iqiq", 0, 0, timeout_ms, session_id)
        body += write_buffer(password) + b"\0"
        self._send(body)
        reply = self._recv()
        proto, self.timeout_ms, self.session_id = struct.unpack_from("!iiq", reply, 0)
        plen = int_struct.unpack_from(reply, 16)[0]
        self.password = reply[20 : 20 + plen]
        self.xid = 0
        self.last_zxid = 0
        self.events = []  # notifications read while waiting for a reply

    def _send(self, body):
        self.sock.sendall(int_struct.pack(len(body)) + body)

    def _recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("server closed the raw session socket")
            buf += chunk
        return buf

    def _recv(self):
        (length,) = int_struct.unpack(self._recv_exact(4))
        return self._recv_exact(length)

    def call(self, op, body=b"", states=False):
        """Send one request; return the (zxid, err, body) of its reply. Watch
        events read before it are appended to `events`."""
        self.xid += 1
        self._send(struct.pack("!ii", self.xid, op) + body)
        while True:
            reply = self._recv()
            xid, zxid, err = struct.unpack_from("!iqi", reply, 0)
            if xid == NOTIFICATION_XID:
                self.events.append(self._event(reply, states))
                continue
            assert xid == self.xid, (xid, self.xid)
            if zxid > 0:
                self.last_zxid = zxid
            return zxid, err, reply[16:]

    def auth(self, scheme, credential):
        """An auth packet (xid -4); returns its reply's (zxid, err)."""
        body = struct.pack("!iii", AUTH_XID, AUTH_OP, 0) + write_string(scheme) + write_buffer(credential)
        self._send(body)
        reply = self._recv()
        xid, zxid, err = struct.unpack_from("!iqi", reply, 0)
        assert xid == AUTH_XID, xid
        return zxid, err

    def send_frame_of(self, length, chunk=65536):
        """Send a request frame claiming `length` bytes and then the bytes
        (zeros); returns False if the server closed the connection first."""
        try:
            self.sock.sendall(int_struct.pack(length) + struct.pack("!ii", self.xid + 1, SET_DATA_OP))
            sent = 8
            while sent < length:
                n = min(chunk, length - sent)
                self.sock.sendall(b"\0" * n)
                sent += n
        except OSError:
            return False
        return True

    def create(self, path, data=b"", flags=FLAG_EPHEMERAL):
        body = write_string(path) + write_buffer(data)
        body += _write_acls(OPEN_ACL_UNSAFE) + int_struct.pack(flags)
        return self.call(CREATE_OP, body)[1]

    def set_watches(self, relative_zxid, data=(), exist=(), child=(), states=False):
        """Send SetWatches (as a client does after reconnecting); return the
        watch events the server sent before its reply, in order."""
        body = struct.pack("!iiq", SET_WATCHES_XID, SET_WATCHES_OP, relative_zxid)
        for paths in (data, exist, child):
            body += int_struct.pack(len(paths)) + b"".join(write_string(p) for p in paths)
        self._send(body)
        events = []
        while True:
            xid, err, event = self.read_frame(states)
            if xid == SET_WATCHES_XID:
                assert err == 0, err
                return events
            if event is not None:
                events.append(event)

    def read_frame(self, states=False):
        """One reply frame: (xid, err, (event name, path) or None); with
        `states`, events are (event name, keeper state, path)."""
        reply = self._recv()
        xid, _zxid, err = struct.unpack_from("!iqi", reply, 0)
        if xid != NOTIFICATION_XID:
            return xid, err, None
        return xid, err, self._event(reply, states)

    @staticmethod
    def _event(reply, states):
        event_type, state = struct.unpack_from("!ii", reply, 16)
        path, _ = read_string(reply, 24)
        kind = EVENT_NAMES.get(event_type, event_type)
        return (kind, KEEPER_STATE_NAMES.get(state, state), path) if states else (kind, path)

    def close_session(self):
        """Send closeSession and wait for its reply, then drop the socket;
        returns the reply's (zxid, err)."""
        try:
            zxid, err, _ = self.call(CLOSE_SESSION_OP)
        finally:
            self.sock.close()
        return zxid, err

    def ping(self):
        """A ping (xid -2); returns its reply's (zxid, err)."""
        self._send(struct.pack("!ii", PING_XID, PING_OP))
        while True:
            reply = self._recv()
            xid, zxid, err = struct.unpack_from("!iqi", reply, 0)
            if xid == PING_XID:
                return zxid, err

    def closed_by_server(self, timeout):
        """True once the server has closed this socket (bounded wait)."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()


def wait_for(predicate, timeout=EVENT_TIMEOUT_S, interval=0.05):
    """Poll `predicate` until true or the bound expires; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


class Waiter:
    """Collects callback values from another thread, with bounded waits."""

    def __init__(self):
        self.items = queue.Queue()
        self.lock = threading.Lock()

    def __call__(self, *args):
        self.items.put(args[0] if len(args) == 1 else args)

    def get(self, timeout=EVENT_TIMEOUT_S):
        return self.items.get(timeout=timeout)

    def get_node_event(self, timeout=EVENT_TIMEOUT_S):
        """Next WatchedEvent about a znode, skipping kazoo's NONE events
        (connection-state notices it hands to watchers)."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.items.get(timeout=max(deadline - time.monotonic(), 0.001))
            if event.type != "NONE":
                return event


# ------------------------------------------------------------------ tcp proxy


class Proxy:
    """A loopback TCP proxy in front of a server, to cut a client's
    connection without touching its session (kazoo then reconnects with the
    same session and re-registers its watches with SetWatches)."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.paused = threading.Event()
        self.stopped = threading.Event()
        self.lock = threading.Lock()
        self.sockets = []
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    @property
    def hosts(self):
        return f"127.0.0.1:{self.port}"

    def _accept_loop(self):
        while not self.stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            if self.paused.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src, dst):
        try:
            src.settimeout(None)
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def cut(self):
        """Close every proxied connection and refuse new ones until resume()."""
        self.paused.set()
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def resume(self):
        self.paused.clear()

    def close(self):
        self.stopped.set()
        self.cut()
        self.listener.close()
        self.thread.join(timeout=2)
