"""The ensemble's membership in /zookeeper/config, as ZooKeeper 3.5+ publishes it: one
`server.N=host:quorumPort:electionPort:role[;clientAddress:clientPort]` line per member (what
`zkCli.sh config` prints and Curator's EnsembleTracker reads), then a `version=` line."""

import re
import time

from workload import connect

CONFIG_WAIT_S = 20.0
SERVER_LINE = re.compile(r"^server\.(\d+)=[^:]+:\d+:\d+:(participant|observer)(;.*)?$")


def read_config(zk):
    deadline = time.monotonic() + CONFIG_WAIT_S
    while True:
        data, _ = zk.get("/zookeeper/config")
        text = data.decode()
        if text or time.monotonic() > deadline:
            return text
        time.sleep(0.2)


def test_config_node_lists_every_member(make_cluster):
    cluster = make_cluster(3)
    cluster.wait_quorum()
    zk = connect(cluster.hosts())
    try:
        lines = read_config(zk).splitlines()
    finally:
        zk.stop()
        zk.close()
    members = {}
    for line in lines:
        match = SERVER_LINE.match(line)
        if match:
            members[int(match.group(1))] = match.group(2)
    assert members == {sid: "participant" for sid in cluster.ids}, lines
    assert any(line.startswith("version=") for line in lines), lines
