"""The AdminServer's JSON and the Prometheus text of zkw, checked against the key sets
Apache ZooKeeper 3.8's AdminServer answers (recorded from a real 3.8 server: its Debian
package ships no Jetty on the default classpath, so it cannot be started side by side
here) and against what the test's clients did."""

import json
import urllib.error
import urllib.request

import pytest

import zkharness as h

HTTP_TIMEOUT_S = 10
PROMETHEUS = "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"

# Keys of ZooKeeper 3.8's answers for a standalone server (besides command and error).
ZOOKEEPER_KEYS = {
    "configuration": {
        "client_port", "data_dir", "data_log_dir", "tick_time", "max_client_cnxns",
        "min_session_timeout", "max_session_timeout", "server_id",
        "client_port_listen_backlog",
    },
    "connections": {"connections", "secure_connections"},
    "dirs": {"datadir_size", "logdir_size"},
    "get_trace_mask": {"tracemask"},
    "initial_configuration": {"initial_configuration"},
    "is_read_only": {"read_only"},
    "last_snapshot": {"zxid", "timestamp"},
    "server_stats": {"version", "read_only", "server_stats", "client_response", "node_count"},
    "stats": {
        "version", "read_only", "server_stats", "client_response", "node_count",
        "connections", "secure_connections",
    },
    "voting_view": {"current_config"},
    "watch_summary": {"num_connections", "num_paths", "num_total_watches"},
    "watches": {"session_id_to_watched_paths"},
    "watches_by_path": {"path_to_session_ids"},
    "zabstate": {"voting", "zabstate"},
    "hash": {"digests"},
    "ruok": set(),
}
ZOOKEEPER_SERVER_STATS_KEYS = {
    "packets_sent", "packets_received", "fsync_threshold_exceed_count",
    "client_response_stats", "data_dir_size", "log_dir_size", "provider_null",
    "server_state", "last_processed_zxid", "outstanding_requests", "avg_latency",
    "max_latency", "min_latency", "num_alive_client_connections", "uptime",
    "auth_failed_count", "non_mtlsremote_conn_count", "non_mtlslocal_conn_count",
}
ZOOKEEPER_CONNECTION_KEYS = {
    "remote_socket_address", "interest_ops", "outstanding_requests", "packets_received",
    "packets_sent", "session_id", "last_operation", "established", "session_timeout",
    "last_cxid", "last_zxid", "last_response_time", "last_latency", "min_latency",
    "avg_latency", "max_latency",
}
MONITOR_KEYS = {
    "version", "server_state", "ephemerals_count", "num_alive_connections", "avg_latency",
    "outstanding_requests", "znode_count", "global_sessions", "packets_sent",
    "packets_received", "watch_count", "auth_failed_count", "min_latency",
    "max_file_descriptor_count", "approximate_data_size", "open_file_descriptor_count",
    "local_sessions", "uptime", "max_latency", "connection_rejected",
    "avg_fsynctime", "cnt_fsynctime", "avg_snapshottime", "avg_readlatency",
    "p99_readlatency", "avg_updatelatency", "p50_updatelatency",
}


def get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=HTTP_TIMEOUT_S) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture(scope="module")
def admin():
    if h.target() != "zkw":
        pytest.skip("the harness starts ZooKeeper with its AdminServer off")
    admin_port, metrics_port = h.free_port(), h.free_port()
    server = h.Server("zkw", extra_cfg={
        "admin.enableServer": "true",
        "admin.serverAddress": "127.0.0.1",
        "admin.serverPort": admin_port,
        "metricsProvider.className": PROMETHEUS,
        "metricsProvider.httpHost": "127.0.0.1",
        "metricsProvider.httpPort": metrics_port,
    }).start()
    server.admin_port, server.metrics_port = admin_port, metrics_port
    yield server
    server.stop()


def command(server, name):
    status, body = get(server.admin_port, f"/commands/{name}")
    assert status == 200, body
    answer = json.loads(body)
    assert answer.pop("command") == name and answer.pop("error") is None, body
    return answer


def metrics(server):
    status, body = get(server.metrics_port, "/metrics")
    assert status == 200, body
    samples = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


@pytest.mark.parametrize("name", sorted(ZOOKEEPER_KEYS))
def test_answers_have_zookeepers_keys(admin, name):
    answer = command(admin, name)
    missing = ZOOKEEPER_KEYS[name] - set(answer)
    assert not missing, f"{name} lacks {missing}: {answer}"


def test_nested_keys_match_zookeeper(admin):
    client = h.new_client(admin.hosts)
    try:
        stats = command(admin, "server_stats")["server_stats"]
        assert not ZOOKEEPER_SERVER_STATS_KEYS - set(stats)
        connection = command(admin, "connections")["connections"][0]
        assert not ZOOKEEPER_CONNECTION_KEYS - set(connection)
        assert not MONITOR_KEYS - set(command(admin, "monitor"))
    finally:
        client.stop()
        client.close()


def test_values_follow_the_clients(admin):
    clients = [h.new_client(admin.hosts) for _ in range(3)]
    try:
        before = command(admin, "monitor")["znode_count"]
        for index in range(4):
            clients[0].create(f"/py-admin-{index}", b"x")
        clients[1].get("/py-admin-0", watch=lambda event: None)
        monitor = command(admin, "monitor")
        assert monitor["znode_count"] == before + 4
        assert monitor["num_alive_connections"] == 3
        assert monitor["watch_count"] == 1
        samples = metrics(admin)
        assert samples["znode_count"] == before + 4
        assert samples["num_alive_connections"] == 3
        assert samples["watch_count"] == 1
        assert samples["updatelatency_count"] >= 4
        assert 'readlatency{quantile="0.99"}' in samples
    finally:
        for client in clients:
            client.stop()
            client.close()


def test_unknown_command_is_404_listing_the_commands(admin):
    status, body = get(admin.admin_port, "/commands/nosuch")
    assert status == 404
    answer = json.loads(body)
    assert answer["error"] == "Unknown command: nosuch"
    assert "monitor" in answer["commands"] and "recipes" in answer["commands"]
    status, listing = get(admin.admin_port, "/commands")
    assert status == 200 and 'href="/commands/watches_by_path"' in listing
