//! The AdminServer and the Prometheus endpoint over real HTTP against the zkw binary: command
//! JSON shapes and values after known client activity, the 404 listing, `recipes`, and the
//! metrics text (gauges, latency summaries, recipe counters).

#![allow(clippy::unwrap_used)] // tests may unwrap (style.md)

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Server, SOCKET_IO_SECS_MAX};
use serde_json::Value;
use zookeeper_client as zk;

const PROMETHEUS_CLASS: &str = "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider";

/// A zkw server with the admin server and the metrics endpoint on free loopback ports.
struct Admin {
    server: Server,
    admin_port: u16,
    metrics_port: u16,
}

fn start() -> Admin {
    let (admin_port, metrics_port) = (common::free_port(), common::free_port());
    let (admin, metrics) = (admin_port.to_string(), metrics_port.to_string());
    let server = Server::start(&[
        ("admin.enableServer", "true"),
        ("admin.serverAddress", "127.0.0.1"),
        ("admin.serverPort", &admin),
        ("metricsProvider.className", PROMETHEUS_CLASS),
        ("metricsProvider.httpHost", "127.0.0.1"),
        ("metricsProvider.httpPort", &metrics),
    ]);
    Admin {
        server,
        admin_port,
        metrics_port,
    }
}

/// A bounded HTTP/1.0 GET: (status, body).
fn http_get(port: u16, path: &str) -> (u16, String) {
    let bound = Some(Duration::from_secs(SOCKET_IO_SECS_MAX));
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(bound).unwrap();
    stream.set_write_timeout(bound).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

impl Admin {
    fn command(&self, name: &str) -> Value {
        let (status, body) = http_get(self.admin_port, &format!("/commands/{name}"));
        assert_eq!(status, 200, "{name}: {body}");
        let value: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(value["command"], name, "{body}");
        assert!(value["error"].is_null(), "{body}");
        value
    }

    /// The metrics text as `name{labels}` -> value (comments dropped).
    fn metrics(&self) -> HashMap<String, f64> {
        let (status, body) = http_get(self.metrics_port, "/metrics");
        assert_eq!(status, 200, "{body}");
        body.lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .map(|line| {
                let (name, value) = line.rsplit_once(' ').unwrap();
                (name.to_owned(), value.parse().unwrap())
            })
            .collect()
    }
}

#[tokio::test]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn commands_report_what_the_clients_did() {
    let admin = start();
    let first = admin.server.client().await;
    let second = admin.server.client().await;
    let before = admin.command("monitor")["znode_count"].as_u64().unwrap();
    for index in 0..3 {
        common::mk(&first, &format!("/n{index}"), b"x").await;
    }
    let (_, _, watcher) = common::bounded("watch", first.get_and_watch_data("/n0"))
        .await
        .unwrap();
    let (_, _, children) = common::bounded("watch", second.get_and_watch_children("/"))
        .await
        .unwrap();

    let monitor = admin.command("monitor");
    assert_eq!(monitor["znode_count"].as_u64(), Some(before + 3));
    assert_eq!(monitor["num_alive_connections"], 2);
    assert_eq!(monitor["watch_count"], 2);
    assert_eq!(monitor["server_state"], "standalone");
    assert!(
        monitor["cnt_updatelatency"].as_u64() >= Some(3),
        "{monitor}"
    );

    let summary = admin.command("watch_summary");
    assert_eq!(
        (&summary["num_connections"], &summary["num_total_watches"]),
        (&Value::from(2), &Value::from(2))
    );
    let by_path = admin.command("watches_by_path");
    assert!(
        by_path["path_to_session_ids"]["/n0"].is_array(),
        "{by_path}"
    );
    let by_session = admin.command("watches");
    let sessions = by_session["session_id_to_watched_paths"]
        .as_object()
        .unwrap();
    assert_eq!(sessions.len(), 2);

    let connections = admin.command("connections");
    assert_eq!(connections["connections"].as_array().unwrap().len(), 2);
    let stats = admin.command("stats");
    assert_eq!(stats["server_stats"]["num_alive_client_connections"], 2);
    assert_eq!(stats["node_count"].as_u64(), Some(before + 3));
    let srvr = admin.command("server_stats");
    assert_eq!(srvr["server_stats"]["server_state"], "standalone");
    assert_eq!(srvr["read_only"], false);

    let conf = admin.command("configuration");
    assert_eq!(conf["client_port"], admin.server.port);
    assert_eq!(conf["tick_time"], common::TICK_MS);
    for name in [
        "ruok",
        "dump",
        "environment",
        "get_trace_mask",
        "initial_configuration",
        "is_read_only",
        "last_snapshot",
        "voting_view",
        "zabstate",
        "dirs",
        "hash",
        "connection_stat_reset",
        "stat_reset",
    ] {
        admin.command(name);
    }
    let digest = admin.command("digest");
    assert!(
        digest["zxid"].as_i64() > Some(0) && digest["hash"].is_u64(),
        "{digest}"
    );
    drop((watcher, children));
}

#[tokio::test]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn unknown_commands_are_404_with_the_list() {
    let admin = start();
    let (status, body) = http_get(admin.admin_port, "/commands/nosuch");
    assert_eq!(status, 404, "{body}");
    let value: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(value["error"], "Unknown command: nosuch");
    let names = value["commands"].as_array().unwrap();
    assert!(names.contains(&Value::from("monitor")), "{body}");
    let (status, listing) = http_get(admin.admin_port, "/commands");
    assert_eq!(status, 200);
    assert!(
        listing.contains("<a href=\"/commands/monitor\">monitor</a>"),
        "{listing}"
    );
    // The 4lw on the client port and the admin JSON agree (same gathered facts).
    let mntr = admin.server.four_letter("mntr").unwrap();
    let zxid_line = format!(
        "zk_znode_count\t{}",
        admin.command("monitor")["znode_count"]
    );
    assert!(mntr.contains(&zxid_line), "{mntr}");
}

#[tokio::test]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn metrics_follow_the_tree_and_the_recipes() {
    let admin = start();
    let client = admin.server.client().await;
    common::install_recipe(&admin.server.addr(), "discovery", "/svc", &[]);
    let recipes = admin.command("recipes");
    let installed = recipes["recipes"].as_array().unwrap();
    assert_eq!(installed.len(), 1, "{recipes}");
    assert_eq!(installed[0]["name"], "discovery");
    assert_eq!(installed[0]["path"], "/svc");

    let before = admin.metrics();
    let runs_key = "zkw_recipe_runs_total{recipe=\"discovery\"}";
    let runs_before = before.get(runs_key).copied().unwrap_or(0.0);
    // The recipe runs for writes that pass ZooKeeper's own checks (its parent must exist).
    let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    let _ = client.create("/svc", b"", &open).await;
    for index in 0..3 {
        let path = format!("/svc/n{index}");
        let _ = client
            .create(
                &path,
                b"x",
                &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all()),
            )
            .await;
    }
    common::poll_until("recipe runs to rise", common::AWAIT_SECS_MAX, || {
        let metrics = admin.metrics();
        async move { (metrics.get(runs_key).copied().unwrap_or(0.0) > runs_before).then_some(()) }
    })
    .await;
    let after = admin.metrics();
    let znodes = admin.command("monitor")["znode_count"].as_f64().unwrap();
    assert_eq!(after["znode_count"], znodes);
    assert_eq!(after["num_alive_connections"], 1.0);
    assert!(
        after.contains_key("updatelatency{quantile=\"0.5\"}"),
        "{after:?}"
    );
    assert!(after["updatelatency_count"] >= 3.0, "{after:?}");
    assert!(after.contains_key("fsynctime_count"), "{after:?}");
    assert!(after.contains_key("zkw_recipe_failures_total{recipe=\"discovery\"}"));
    assert!(after["uptime"] > 0.0);
}
