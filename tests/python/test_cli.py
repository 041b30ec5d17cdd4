"""`zkw cli`, the zkCli.sh-compatible shell.

One-shot mode: the same command sequence is run with `zkw cli` against the suite's
server (zkw, or ZooKeeper with ZKW_TARGET=zookeeper) and with ZooKeeper's own zkCli.sh
against an Apache ZooKeeper started here; each step's exit code, stdout and stderr must
match once what differs by nature is masked (zxids, times, session ids, zkCli's JVM
logging noise, the banner line naming the server).

Interactive mode, through a pty with pexpect: line editing, tab completion of a znode
path, a watch event printed while the prompt waits, history/redo, close, quit."""

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

import zkharness as h

CLI_TIMEOUT_S = 60
EXPECT_TIMEOUT_S = 15
KEY_DELAY_S = 0.03

HAVE_ZKCLI = os.path.exists(h.ZK_CLI) and shutil.which("java") is not None


def run(argv):
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )
    return proc.returncode, proc.stdout, proc.stderr


def zkw_cli(hosts, *args):
    return run([str(h.zkw_binary()), "cli", "-server", hosts, *args])


def zk_cli(hosts, *args):
    return run([h.ZK_CLI, "-server", hosts, *args])


CONNECTED_BLOCK = "\nWATCHER::\n\nWatchedEvent state:SyncConnected type:None path:null\n"
STAT_MASKS = [
    (re.compile(r"^(cZxid|mZxid|pZxid) = 0x[0-9a-f]+$", re.M), r"\1 = ZXID"),
    (re.compile(r"^(ctime|mtime) = .*$", re.M), r"\1 = TIME"),
    (re.compile(r"^ephemeralOwner = 0x[0-9a-f]+$", re.M), "ephemeralOwner = SESSION"),
]
# JVM noise zkCli prints on stderr: SLF4J's binder warnings and log4j lines.
NOISE = re.compile(r"^(SLF4J:.*|\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d.*)\n?", re.M)


def mask(rc, out, err):
    out = re.sub(r"^Connecting to \S+\n", "", out, count=1)
    # zkCli prints the connection event whenever it arrives; ours comes first.
    out = out.replace(CONNECTED_BLOCK, "", 1)
    for pattern, replacement in STAT_MASKS:
        out = pattern.sub(replacement, out)
    err = NOISE.sub("", err)
    return rc, out, err


def steps(b):
    """The compared sequence; `b` is a fresh base path."""
    return [
        ["create", b, "hello"],
        ["create", b, "again"],
        ["create", f"{b}/child", "two words"],
        ["create", "-s", f"{b}/seq-", "x"],
        ["create", "-c", f"{b}/box"],
        ["create", "-c", "-e", f"{b}/bad"],
        ["create", "-t", "x", f"{b}/bad"],
        ["create", f"{b}/acl", "d", "world:anyone:rw"],
        ["get", b],
        ["get", "-s", b],
        ["get", f"{b}/missing"],
        ["get"],
        ["set", b, "v2"],
        ["set", "-s", b, "v3"],
        ["set", "-v", "99", b, "v4"],
        ["ls", b],
        ["ls", "-s", b],
        ["ls", "-R", b],
        ["ls", f"{b}/missing"],
        ["stat", b],
        ["stat", f"{b}/missing"],
        ["getAcl", f"{b}/acl"],
        ["getAcl", "-s", b],
        ["setAcl", f"{b}/child", "world:anyone:cdr,digest:u:Zm9v:a"],
        ["getAcl", f"{b}/child"],
        ["setAcl", "-v", "7", f"{b}/child", "world:anyone:cdrwa"],
        ["addauth", "digest", "u:p"],
        ["whoami"],
        ["getEphemerals"],
        ["getAllChildrenNumber", b],
        ["sync", b],
        ["delete", b],
        ["delete", "-v", "5", f"{b}/acl"],
        ["delete", f"{b}/acl"],
        ["create", "bad"],
        ["get", f"{b}//x"],
        ["ls", "-z", b],
        ["deleteall", b],
        ["ls", b],
    ]


@pytest.fixture(scope="module")
def reference():
    if not HAVE_ZKCLI:
        pytest.skip("zkCli.sh or java not installed")
    srv = h.Server("zookeeper").start()
    yield srv
    srv.stop()


@pytest.mark.timeout(600)
def test_one_shot_matches_zkcli(server, reference):
    base = "/cli-compare"
    ours = [mask(*zkw_cli(server.hosts, *step)) for step in steps(base)]
    theirs = [mask(*zk_cli(reference.hosts, *step)) for step in steps(base)]
    for step, mine, ref in zip(steps(base), ours, theirs):
        assert mine == ref, f"step {step}: zkw {mine!r} vs zkCli {ref!r}"


@pytest.mark.timeout(120)
def test_unknown_command_exits_127_with_usage(server):
    rc, out, err = zkw_cli(server.hosts, "bogus")
    assert rc == 127
    assert err.rstrip().endswith("Command not found: Command not found bogus")
    assert "\tls [-s] [-w] [-R] path" in err


@pytest.mark.timeout(120)
def test_one_shot_errors_exit_nonzero(server, zk, base):
    rc, out, err = zkw_cli(server.hosts, "get", f"{base}/nope")
    assert rc == 1 and err.strip() == f"Node does not exist: {base}/nope"
    rc, out, err = zkw_cli(server.hosts, "create", f"{base}/q", "quoted words")
    assert rc == 0 and err.strip() == f"Created {base}/q"
    assert zk.get(f"{base}/q")[0] == b"quoted words"
    rc, out, err = zkw_cli(server.hosts, "get", f"{base}/q")
    assert rc == 0 and out.endswith("\nquoted words\n")
    # A server nobody listens on: a connect error, exit 1.
    rc, out, err = zkw_cli(f"127.0.0.1:{h.free_port()}", "-timeout", "2000", "ls", "/")
    assert rc == 1 and err.strip()


@pytest.mark.timeout(120)
def test_ephemerals_ttl_and_watch_commands(server, zk, base):
    rc, out, err = zkw_cli(server.hosts, "create", "-t", "60000", f"{base}/ttl", "t")
    assert (rc, err.strip()) == (0, f"Created {base}/ttl")
    rc, out, err = zkw_cli(server.hosts, "addWatch", "-m", "persistent", base)
    assert (rc, err) == (0, "")
    rc, out, err = zkw_cli(server.hosts, "removewatches", base)
    assert rc == 1 and err.strip() == f"KeeperErrorCode = No such watcher for {base}"
    rc, out, err = zkw_cli(server.hosts, "config")
    assert rc == 0


# ---------------------------------------------------------------- interactive


def spawn(server, home):
    pexpect = pytest.importorskip("pexpect")
    env = dict(os.environ, HOME=str(home), TERM="xterm")
    child = pexpect.spawn(
        str(h.zkw_binary()),
        ["cli", "-server", server.hosts],
        env=env,
        encoding="utf-8",
        timeout=EXPECT_TIMEOUT_S,
        dimensions=(40, 300),
    )
    child.delaybeforesend = None
    return pexpect, child


def type_(child, text):
    """Keys one at a time, as a person types (a burst, as a paste sends, is
    test_pasted_blocks_run_line_by_line's)."""
    for key in text:
        child.send(key)
        time.sleep(KEY_DELAY_S)


def prompt(server, state, n):
    return re.escape(f"[zk: {server.hosts}({state}) {n}] ")


@pytest.mark.timeout(120)
def test_interactive_session(server, zk, base, tmp_path):
    zk.create(f"{base}/xylophone", b"first")
    pexpect, child = spawn(server, tmp_path)
    try:
        child.expect("WatchedEvent state:SyncConnected type:None path:null")
        child.expect(prompt(server, "CONNECTED", 0))
        # Line editing: type "et ... data" then Ctrl-A, "g" at the start, then fix a typo
        # at the end with backspace.
        type_(child, f"et {base}/xylophone")
        type_(child, "\x01")  # Ctrl-A: start of line
        type_(child, "g")
        type_(child, "\x05")  # Ctrl-E: end of line
        type_(child, "Q\x7f")  # a stray letter, erased
        type_(child, "\r")
        child.expect("\r\nfirst\r\n")
        child.expect(prompt(server, "CONNECTED", 1))
        # Tab completion of a path under the base, then a data watch.
        type_(child, f"get -w {base}/xy")
        type_(child, "\t")
        type_(child, "\r")
        child.expect("\r\nfirst\r\n")
        child.expect(prompt(server, "CONNECTED", 2))
        # The prompt waits; another client changes the node; the event shows up.
        zk.set(f"{base}/xylophone", b"second")
        child.expect("WATCHER::")
        child.expect(
            re.escape(f"WatchedEvent state:SyncConnected type:NodeDataChanged path:{base}/xylophone")
        )
        type_(child, "history\r")
        child.expect(re.escape(f"1 - get -w {base}/xylophone"))
        child.expect(r"2 - history")
        child.expect(prompt(server, "CONNECTED", 3))
        type_(child, "redo 1\r")
        child.expect("\r\nsecond\r\n")
        child.expect(prompt(server, "CONNECTED", 4))
        type_(child, "get /nope/nothing\r")
        child.expect("Node does not exist: /nope/nothing")
        child.expect(prompt(server, "CONNECTED", 5))
        type_(child, "close\r")
        child.expect("WatchedEvent state:Closed type:None path:null")
        child.expect(prompt(server, "CLOSED", 6))
        type_(child, "ls /\r")
        child.expect("Not connected")
        type_(child, "connect\r")
        child.expect(prompt(server, "CONNECTED", 8))
        type_(child, "quit\r")
        child.expect(pexpect.EOF)
        child.close()
        # quit exits with the code of the command before it (connect: 0).
        assert child.exitstatus == 0
    finally:
        if child.isalive():
            child.terminate(force=True)
    history = (Path(tmp_path) / ".zkw_cli_history").read_text()
    assert f"get -w {base}/xylophone" in history


@pytest.mark.timeout(120)
def test_pasted_blocks_run_line_by_line(server, zk, base, tmp_path):
    """A block pasted with its Enters arrives as one burst of bytes: every line runs, in
    order, as in zkCli.sh. A paste wrapped in bracketed-paste markers is split into its lines
    when accepted, never run as one command."""
    pexpect, child = spawn(server, tmp_path)
    try:
        child.expect(prompt(server, "CONNECTED", 0))
        child.send(f"create {base}/a 1\rcreate {base}/b 2\rls {base}\r")
        child.expect(re.escape(f"Created {base}/a"))
        child.expect(re.escape(f"Created {base}/b"))
        child.expect(re.escape("[a, b]"))
        child.expect(prompt(server, "CONNECTED", 3))
        child.send(f"\x1b[200~create {base}/c 3\rcreate {base}/d 4\x1b[201~\r")
        child.expect(re.escape(f"Created {base}/c"))
        child.expect(re.escape(f"Created {base}/d"))
        child.expect(prompt(server, "CONNECTED", 5))
        child.send(f"ls {base}\r")
        child.expect(re.escape("[a, b, c, d]"))
        child.expect(prompt(server, "CONNECTED", 6))
        child.send("quit\r")
        child.expect(pexpect.EOF)
    finally:
        if child.isalive():
            child.terminate(force=True)
    assert zk.get(f"{base}/d")[0] == b"4"


def test_help_connects_nowhere_and_server_takes_either_spelling(server, zk, base):
    unreachable = f"127.0.0.1:{h.free_port()}"
    for word in ["-h", "--help"]:
        rc, out, err = run([str(h.zkw_binary()), "cli", "-server", unreachable, word])
        assert rc == 0 and out.startswith("Usage: zkw cli ") and "\tls " in out, (out, err)
        assert "Connecting" not in out
    rc, out, err = run([str(h.zkw_binary()), "cli", "--server", server.hosts, "ls", base])
    assert (rc, out.splitlines()[-1]) == (0, "[]"), (out, err)
    env = dict(os.environ, ZKW_SERVER=server.hosts)
    proc = subprocess.run(
        [str(h.zkw_binary()), "cli", "ls", base],
        capture_output=True, text=True, timeout=CLI_TIMEOUT_S, stdin=subprocess.DEVNULL, env=env,
    )
    assert proc.returncode == 0 and proc.stdout.splitlines()[-1] == "[]", proc


# ------------------------------------------------------------- first imok
# Scripts and suites take `imok` from `ruok` as "ready": a client that starts right after it
# must get its session. zkw (standalone) accepts clients only once it serves; `zkw cli` also
# retries within its timeout, as zkCli does.

STARTS = 3
IMOK_WAIT_S = 60.0
IMOK_POLL_S = 0.02


def start_until_imok():
    """A fresh server (new data dir) and the instant its `ruok` first answers `imok`."""
    srv = h.Server(h.target()).start(wait=False)
    deadline = time.monotonic() + IMOK_WAIT_S
    while time.monotonic() < deadline:
        if srv.proc.poll() is not None:
            pytest.fail(f"server exited with {srv.proc.returncode}:\n{srv.log_tail()}")
        try:
            if h.four_letter(srv.port, "ruok", timeout=1.0) == "imok":
                return srv
        except OSError:
            pass
        time.sleep(IMOK_POLL_S)
    srv.stop()
    pytest.fail(f"no imok within {IMOK_WAIT_S} s")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("client", ["zkw-cli", "kazoo", "raw"])
def test_a_client_right_after_the_first_imok_gets_its_session(client):
    if client == "raw" and h.target() == "zookeeper":
        pytest.skip("ZooKeeper answers imok before it runs and closes a session made then")
    for start in range(STARTS):
        srv = start_until_imok()
        try:
            if client == "zkw-cli":
                rc, out, err = zkw_cli(srv.hosts, "create", "/x", "v")
                assert (rc, err.strip()) == (0, "Created /x"), (start, out, err)
            elif client == "kazoo":
                zk = h.new_client(srv.hosts)
                try:
                    zk.create("/x", b"v")
                finally:
                    zk.stop()
                    zk.close()
            else:
                # One handshake, no retry: the server itself must take the session.
                raw = h.RawSession(srv.port, h.MIN_SESSION_TIMEOUT_MS)
                assert raw.create("/x", b"v", flags=h.FLAG_PERSISTENT) == 0
                raw.close_session()
            zk = h.new_client(srv.hosts)
            try:
                assert zk.get("/x")[0] == b"v"
            finally:
                zk.stop()
                zk.close()
        finally:
            srv.stop()
