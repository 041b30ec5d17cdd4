//! `zkw bench` as a process against a real server (zkw, or Apache ZooKeeper 3.8 with
//! `ZKW_TARGET=zookeeper`): every workload finishes with zero errors, prints one JSON line
//! with the documented fields, and leaves no bench root behind.
#![allow(clippy::unwrap_used)] // tests may unwrap (style.md)

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Server, TICK_MS};
use zkw::client::Client;

/// The fields of the JSON line, in order.
const FIELDS: [&str; 11] = [
    "workload",
    "clients",
    "inflight",
    "ops",
    "secs",
    "ops_per_sec",
    "p50_us",
    "p99_us",
    "p999_us",
    "max_us",
    "errors",
];

fn bench(server: &Server, extra: &[&str]) -> (serde_json::Value, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_zkw"))
        .args(["bench", "--server", &server.addr(), "--clients", "3"])
        .args(["--inflight", "4", "--keys", "20", "--value-size", "40"])
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "bench failed: {stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line expected: {stdout}");
    let keys: Vec<&str> = lines[0]
        .trim_matches(|c| c == '{' || c == '}')
        .split(',')
        .map(|field| field.split(':').next().unwrap().trim_matches('"'))
        .collect();
    assert_eq!(keys, FIELDS, "field order");
    (serde_json::from_str(lines[0]).unwrap(), stderr)
}

async fn root_children(server: &Server) -> Vec<String> {
    let client = Client::connect(&server.addr(), Duration::from_millis(20 * TICK_MS))
        .await
        .unwrap();
    let mut children = client.get_children("/", false).await.unwrap();
    children.retain(|name| name.starts_with("zkw-bench-"));
    children
}

#[tokio::test]
async fn every_workload_runs_clean_and_cleans_up() {
    let server = Server::start(&[]);
    for workload in ["create", "set", "get", "mixed"] {
        let (report, _) = bench(&server, &["--workload", workload, "--ops", "600"]);
        assert_eq!(report["workload"], workload);
        assert_eq!(report["clients"], 3);
        assert_eq!(report["inflight"], 4);
        assert_eq!(report["ops"], 600, "{report}");
        assert_eq!(report["errors"], 0, "{report}");
        assert!(report["p50_us"].as_u64().unwrap() <= report["p99_us"].as_u64().unwrap());
        assert!(report["ops_per_sec"].as_f64().unwrap() > 0.0);
    }
    let (report, _) = bench(&server, &["--workload", "mixed", "--duration", "0.5"]);
    assert!(report["secs"].as_f64().unwrap() >= 0.5, "{report}");
    assert!(report["ops"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(root_children(&server).await, Vec::<String>::new());
}

#[tokio::test]
async fn keep_leaves_the_created_nodes() {
    let server = Server::start(&[]);
    let (report, stderr) = bench(&server, &["--workload", "create", "--ops", "50", "--keep"]);
    assert_eq!(report["ops"], 50);
    let roots = root_children(&server).await;
    assert_eq!(roots.len(), 1, "{roots:?}");
    assert!(stderr.contains(&format!("kept /{}", roots[0])), "{stderr}");
}
