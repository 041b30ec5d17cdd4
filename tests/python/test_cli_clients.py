"""Foreign clients: ZooKeeper's Java CLI (zkCli.sh) and its C client shell
(cli_mt from zookeeper-bin, built on libzookeeper_mt) doing
create/get/ls/stat/delete against the server."""

import os
import subprocess

import pytest

import zkharness as h

CLI_TIMEOUT_S = 60


def printed_lines(out):
    """zkCli.sh's output lines: its watcher prints connection events from another thread,
    before or after a command's own output."""
    return [line.strip() for line in out.splitlines()]


def zkcli(server, *args):
    proc = subprocess.run(
        [h.ZK_CLI, "-server", server.hosts, *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )
    return proc.returncode, proc.stdout, proc.stderr


def cli_mt(server, command):
    # cli_mt prints its results on stderr.
    proc = subprocess.run(
        [h.ZK_C_CLI, "-h", server.hosts, "-c", command],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.skipif(not os.path.exists(h.ZK_CLI), reason="zkCli.sh not installed")
def test_java_cli(server, zk, base):
    rc, out, err = zkcli(server, "create", f"{base}/j", "hello")
    assert rc == 0 and f"Created {base}/j" in out + err
    rc, out, _ = zkcli(server, "get", f"{base}/j")
    assert rc == 0 and "hello" in printed_lines(out), out
    zk.create(f"{base}/k")
    rc, out, _ = zkcli(server, "ls", base)
    assert rc == 0 and "[j, k]" in printed_lines(out), out
    rc, out, _ = zkcli(server, "stat", f"{base}/j")
    assert rc == 0 and "dataLength = 5" in out and "dataVersion = 0" in out
    rc, out, err = zkcli(server, "delete", f"{base}/j")
    assert rc == 0
    assert zk.exists(f"{base}/j") is None
    rc, out, err = zkcli(server, "get", f"{base}/j")
    assert rc != 0 and f"Node does not exist: {base}/j" in out + err


@pytest.mark.skipif(not os.path.exists(h.ZK_C_CLI), reason="cli_mt not installed")
def test_c_cli(server, zk, base):
    rc, out = cli_mt(server, f"create {base}/c")
    assert rc == 0 and f"[{base}/c]: rc = 0" in out
    # cli_mt always writes the data "new".
    assert zk.get(f"{base}/c")[0] == b"new"
    rc, out = cli_mt(server, f"create +e {base}/ce")
    assert rc == 0 and f"[{base}/ce]: rc = 0" in out
    assert zk.exists(f"{base}/ce") is None  # its session ended with the process
    rc, out = cli_mt(server, f"get {base}/c")
    assert rc == 0 and f"{base}/c: rc = 0" in out and "value_len = 3\nnew\n" in out
    zk.create(f"{base}/other")
    rc, out = cli_mt(server, f"ls {base}")
    assert rc == 0 and f"{base}: rc = 0" in out
    listed = sorted(line.strip() for line in out.splitlines() if line.startswith("\t"))
    assert listed == ["c", "other"]
    rc, out = cli_mt(server, f"delete {base}/c")
    assert rc == 0 and f"{base}/c: rc = 0" in out
    rc, out = cli_mt(server, f"get {base}/c")
    assert f"{base}/c: rc = -101" in out
