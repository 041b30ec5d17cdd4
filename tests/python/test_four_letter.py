"""Four-letter words on the client port: ruok, srvr, mntr, stat, conf,
cons, wchs, wchc, wchp, dump, isro, dirs, envi, and the whitelist refusal."""

import re

import pytest

import zkharness as h

MNTR_CORE_KEYS = [
    "zk_version",
    "zk_server_state",
    "zk_avg_latency",
    "zk_max_latency",
    "zk_min_latency",
    "zk_packets_received",
    "zk_packets_sent",
    "zk_num_alive_connections",
    "zk_outstanding_requests",
    "zk_znode_count",
    "zk_watch_count",
    "zk_ephemerals_count",
    "zk_approximate_data_size",
    "zk_open_file_descriptor_count",
    "zk_max_file_descriptor_count",
]


def flw(server, cmd):
    return h.four_letter(server.port, cmd)


def test_ruok(server):
    assert flw(server, "ruok") == "imok"


def test_srvr(server):
    out = flw(server, "srvr")
    assert out.startswith("Zookeeper version: ")
    assert "Mode: standalone\n" in out
    for key in ("Latency min/avg/max: ", "Received: ", "Sent: ", "Connections: ",
                "Outstanding: ", "Zxid: 0x", "Node count: "):
        assert key in out, key


def test_mntr(zk, server, base):
    zk.create(f"{base}/e", ephemeral=True)
    out = flw(server, "mntr")
    pairs = dict(line.split("\t", 1) for line in out.strip().splitlines())
    for key in MNTR_CORE_KEYS:
        assert key in pairs, key
    assert pairs["zk_server_state"] == "standalone"
    assert int(pairs["zk_znode_count"]) >= 5
    assert int(pairs["zk_ephemerals_count"]) >= 1
    assert int(pairs["zk_num_alive_connections"]) >= 1


def test_stat_lists_clients(zk, server):
    out = flw(server, "stat")
    assert out.startswith("Zookeeper version: ")
    assert "Clients:\n" in out and "Mode: standalone\n" in out
    assert re.search(r"^ /127\.0\.0\.1:\d+\[\d+\]\(queued=\d+,recved=\d+,sent=\d+\)$", out, re.M)


def test_conf(server):
    out = flw(server, "conf")
    assert f"clientPort={server.port}\n" in out
    assert f"tickTime={h.TICK_TIME_MS}\n" in out
    assert f"minSessionTimeout={h.MIN_SESSION_TIMEOUT_MS}\n" in out
    assert f"maxSessionTimeout={h.MAX_SESSION_TIMEOUT_MS}\n" in out
    assert "dataDir=" in out


def test_cons(zk, server):
    sid = f"0x{zk.client_id[0]:x}"
    out = flw(server, "cons")
    line = next(line for line in out.splitlines() if f"sid={sid}," in line)
    assert line.startswith(" /127.0.0.1:")
    assert "to=10000" in line


def test_watch_listings(zk, server, base):
    zk.create(f"{base}/w")
    zk.get(f"{base}/w", watch=lambda e: None)
    sid = f"0x{zk.client_id[0]:x}"
    wchs = flw(server, "wchs")
    assert re.search(r"^\d+ connections watching \d+ paths\nTotal watches:\d+\n", wchs)
    wchc = flw(server, "wchc")
    assert f"{sid}\n\t{base}/w\n" in wchc
    wchp = flw(server, "wchp")
    assert f"{base}/w\n\t{sid}\n" in wchp


def test_dump_lists_ephemerals(zk, server, base):
    zk.create(f"{base}/eph", ephemeral=True)
    out = flw(server, "dump")
    sid = f"0x{zk.client_id[0]:x}"
    assert out.startswith("SessionTracker dump:\n")
    assert "ephemeral nodes dump:\n" in out
    assert f"{sid}:\n\t{base}/eph\n" in out


def test_isro(server):
    assert flw(server, "isro") == "rw"


def test_dirs(server):
    out = flw(server, "dirs")
    assert re.fullmatch(r"datadir_size: \d+\nlogdir_size: \d+\n", out)


def test_envi(server):
    out = flw(server, "envi")
    assert out.startswith("Environment:\n")
    assert "zookeeper.version=" in out and "user.dir=" in out


def test_unknown_word_closes_silently(server):
    assert flw(server, "xxxx") == ""


@pytest.fixture(scope="module")
def restricted_server():
    srv = h.Server(h.target(), whitelist="ruok,srvr").start()
    yield srv
    srv.stop()


@pytest.mark.parametrize("cmd", ["stat", "mntr", "wchs", "dump", "envi", "conf"])
def test_not_whitelisted(restricted_server, cmd):
    out = h.four_letter(restricted_server.port, cmd)
    assert out == f"{cmd} is not executed because it is not in the whitelist.\n"


def test_whitelisted_still_work(restricted_server):
    assert h.four_letter(restricted_server.port, "ruok") == "imok"
    assert "Mode: standalone" in h.four_letter(restricted_server.port, "srvr")
