"""The `election` recipe on a 3-node zkw ensemble, through `zkw elect` and kazoo.

Owns the election proofs of issue #5: `zkw elect` participants (separate
processes, spread over the members) and observers (kazoo and
`zkw elect --observe`) see exactly one leader at any observed moment, all
agree on which participant each epoch belongs to, the epoch strictly
increases on every change, leadership moves within one session timeout
after the leader's process is killed -9 (its session dies), resigning
(SIGTERM) moves it at once, and a yielding participant leads only when
alone. Protocol: recipes/election/README.md. zkw only.
"""

import os
import signal
import subprocess
import threading
import time

import pytest

from cluster import target, wait_for, zkw_binary
from recipe_kit import SUPER_CFG, install_builtin

pytestmark = pytest.mark.skipif(target() == "zookeeper", reason="zkw recipes only")

ROOT = "/elections"
ELECTION = f"{ROOT}/svc"
LEADER = f"{ELECTION}/leader"

PARTICIPANTS = 3
# The participants' session timeout, in milliseconds: the bound on a dead leader's reign.
SESSION_MS = 2000
# Bounded waits, all in seconds.
SESSION_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 20.0
CLI_TIMEOUT_S = 30.0
WAIT_S = 15.0
POLL_S = 0.05
# How long after the leader's death leadership may take to move: its session timeout plus
# this (expiry checks, a txn, a watch), a bound on the wait, not a measured claim.
MOVE_SLACK_S = 3.0
# The session timeout of the participant that resigns: longer than the wait for the move, so a
# move within that wait can only be its resignation, never its session's expiry.
RESIGNER_SESSION_MS = 40000


def parse_line(line):
    """`leader=p-.. epoch=N proposal=P self=B` -> dict."""
    fields = dict(part.split("=", 1) for part in line.split())
    fields["epoch"] = int(fields["epoch"])
    return fields


class Elector:
    """One `zkw elect` process and the lines it printed."""

    def __init__(self, cluster, args, hosts, session_ms=SESSION_MS):
        self.lines = []
        self.proc = subprocess.Popen(
            [str(zkw_binary()), "elect", "svc", *args, "--server", hosts,
             "--session-timeout-ms", str(session_ms)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )
        self.node = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._err = threading.Thread(target=self._read_err, daemon=True)
        self._err.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(parse_line(line))

    def _read_err(self):
        for line in self.proc.stderr:
            if "campaigning as" in line:
                self.node = line.rsplit("/", 1)[1].strip()

    def wait_node(self):
        deadline = time.monotonic() + CLI_TIMEOUT_S
        while self.node is None:
            assert time.monotonic() < deadline and self.proc.poll() is None, "never joined"
            time.sleep(POLL_S)
        return self.node

    def stop(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        self.proc.wait(CLI_TIMEOUT_S)
        self._reader.join(CLI_TIMEOUT_S)


class Observer:
    """A kazoo session recording every leader node content it is shown, with a timestamp."""

    def __init__(self, hosts):
        from kazoo.client import KazooClient

        self.zk = KazooClient(hosts=hosts, timeout=SESSION_TIMEOUT_S)
        self.zk.start(timeout=CONNECT_TIMEOUT_S)
        self.seen = []
        self.zk.DataWatch(LEADER, self._on_change)

    def _on_change(self, data, _stat):
        if data:
            lines = data.decode().split("\n", 2)
            self.seen.append((time.monotonic(), lines[0][len("leader="):],
                              int(lines[1][len("epoch="):])))

    def leader(self):
        return self.seen[-1][1] if self.seen else None

    def wait_leader(self, want, timeout=WAIT_S):
        deadline = time.monotonic() + timeout
        while self.leader() != want:
            assert time.monotonic() < deadline, f"leader {self.leader()!r}, wanted {want!r}"
            time.sleep(POLL_S)
        return self.seen[-1][0]

    def close(self):
        self.zk.stop()
        self.zk.close()


@pytest.fixture
def election(make_cluster):
    cluster = make_cluster(3, extra_cfg=SUPER_CFG)
    install_builtin(cluster, "election", ROOT)
    observer = Observer(cluster.hosts())
    observer.zk.ensure_path(ELECTION)
    electors = []
    yield cluster, observer, electors
    for elector in electors:
        elector.stop()
    observer.close()


def rotated(cluster, i):
    ids = cluster.ids
    k = i % len(ids)
    return cluster.hosts(ids[k:] + ids[:k])


def check_agreement(observer, electors):
    """One leader per epoch across every view; epochs strictly increase in every view."""
    by_epoch = {}
    views = [[(e, l) for _, l, e in observer.seen]]
    views += [[(line["epoch"], line["leader"]) for line in el.lines] for el in electors]
    for view in views:
        epochs = [e for e, _ in view]
        assert all(a < b for a, b in zip(epochs, epochs[1:])), f"epochs not increasing: {view}"
        for epoch, leader in view:
            assert by_epoch.setdefault(epoch, leader) == leader, f"two leaders in epoch {epoch}"
    for el in electors:
        for line in el.lines:
            assert (line["self"] == "true") == (line["leader"] == el.node), line
    return by_epoch


def test_one_leader_moves_on_death_and_resignation(election):
    cluster, observer, electors = election
    watcher = Elector(cluster, ["--observe"], cluster.hosts())
    electors.append(watcher)
    for i in range(PARTICIPANTS):
        session_ms = RESIGNER_SESSION_MS if i == 1 else SESSION_MS
        electors.append(Elector(cluster, [f"host-{i}:80"], rotated(cluster, i), session_ms))
        electors[-1].wait_node()
    first, second, third = electors[1:]
    observer.wait_leader(first.node)
    # Kill -9 the leader: no resignation, its session must expire.
    killed = time.monotonic()
    first.stop(signal.SIGKILL)
    moved = observer.wait_leader(second.node, SESSION_MS / 1000 + MOVE_SLACK_S + WAIT_S) - killed
    # Resign: SIGTERM deletes the node, the next participant leads. Its session outlives this
    # wait, so the move is the resignation.
    assert WAIT_S < RESIGNER_SESSION_MS / 1000
    second.stop(signal.SIGTERM)
    assert second.proc.returncode == 0
    observer.wait_leader(third.node, WAIT_S)
    third.stop(signal.SIGTERM)
    observer.wait_leader("")
    # The electors still running print the last change (no leader).
    wait_for(
        "the observing elector prints no leader",
        lambda: watcher.lines and watcher.lines[-1]["leader"] == "",
        WAIT_S,
    )
    by_epoch = check_agreement(observer, electors)
    assert list(by_epoch.values())[-4:] == [first.node, second.node, third.node, ""], by_epoch
    assert [line["leader"] for line in watcher.lines][-1] == ""
    assert any(line["self"] == "true" for line in third.lines)
    print(f"\nleadership moved {moved:.2f}s after the leader died (session {SESSION_MS} ms)")


def test_a_yielding_participant_leads_only_when_alone(election):
    cluster, observer, electors = election
    shy = Elector(cluster, ["shy:1", "--yield"], cluster.hosts())
    electors.append(shy)
    observer.wait_leader(shy.wait_node())
    bold = Elector(cluster, ["bold:2"], rotated(cluster, 1))
    electors.append(bold)
    observer.wait_leader(bold.wait_node())
    bold.stop(signal.SIGTERM)
    observer.wait_leader(shy.node)
    data, _ = observer.zk.get(LEADER)
    assert data.decode().endswith("proposal=shy:1"), data
    check_agreement(observer, electors)


def test_clients_cannot_forge_the_leader(election):
    from kazoo.exceptions import BadArgumentsError

    cluster, observer, electors = election
    electors.append(Elector(cluster, ["a:1"], cluster.hosts()))
    observer.wait_leader(electors[0].wait_node())
    with pytest.raises(BadArgumentsError):
        observer.zk.set(LEADER, b"leader=me\nepoch=1\nproposal=")
    with pytest.raises(BadArgumentsError):
        observer.zk.create(f"{ELECTION}/p-1", b"x", ephemeral=True)
