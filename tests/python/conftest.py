"""Fixtures for the kazoo suite: one server per test session (zkw or Apache
ZooKeeper, chosen by ZKW_TARGET), a fresh connected kazoo client per test, and
a unique base path per test so tests never see each other's znodes."""

import itertools
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import zkharness  # noqa: E402

_counter = itertools.count()


@pytest.fixture(scope="session")
def server():
    srv = zkharness.Server(zkharness.target()).start()
    yield srv
    srv.stop()


@pytest.fixture
def clients(server):
    made = []

    def make(**kwargs):
        if server.proc.poll() is not None:
            # Fail fast instead of every test waiting out connect timeouts.
            pytest.fail(f"server died (exit {server.proc.returncode}):\n{server.log_tail()}")
        client = zkharness.new_client(server.hosts, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        try:
            client.stop()
            client.close()
        except Exception:  # teardown of an already-broken client
            pass


@pytest.fixture
def zk(clients):
    return clients()


@pytest.fixture
def base(zk, request):
    path = f"/t{next(_counter)}-{request.node.name[:40].replace('[', '_').replace(']', '_')}"
    zk.create(path, b"")
    return path
