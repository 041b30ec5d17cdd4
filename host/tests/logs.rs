//! The server's log lines, read from a real `zkw` started with `--log-format json`: every line
//! is one JSON object, and the lines operators grep for (session opened and closed, the
//! server's role, snapshot written, recipe run failed) carry the session id and zxid as fields.

#![allow(clippy::unwrap_used)] // tests may unwrap (style.md)

mod common;

use common::{bounded, install_recipe, poll_until, test_recipe, Server};
use zookeeper_client as zk;

/// The log's lines, each parsed as JSON; a line that is not JSON fails the test.
fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

fn with_message<'a>(lines: &'a [serde_json::Value], message: &str) -> Vec<&'a serde_json::Value> {
    lines
        .iter()
        .filter(|line| {
            line["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(message))
        })
        .collect()
}

#[tokio::test]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn json_log_lines_carry_session_and_zxid() {
    // snapCount 2: a snapshot is written after a couple of writes.
    let server = Server::start_with_args(&[("snapCount", "2")], &["--log-format", "json"]);
    let client = server.client().await;
    let session = format!("0x{:x}", client.session_id().0);
    for i in 0..20 {
        common::mk(&client, &format!("/n{i}"), b"x").await;
    }
    // A recipe whose validator traps: its failure is logged with the writing session.
    common::mk(&client, "/trap", b"").await;
    let module = test_recipe("trap").display().to_string();
    install_recipe(&server.addr(), &module, "/trap", &[]);
    let writer = server.client().await;
    let writer_session = format!("0x{:x}", writer.session_id().0);
    let refused = bounded("create under a trapping recipe", async {
        let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        writer.create("/trap/x", b"", &opts).await
    })
    .await;
    assert!(refused.is_err(), "a trapping validator refuses the write");
    drop(writer);
    drop(client);

    let lines = poll_until("session closed and recipe failure logged", 20, || {
        let lines = json_lines(&server.log_text());
        let closed = with_message(&lines, "session closed")
            .iter()
            .any(|line| line["session"] == session.as_str());
        let failed = !with_message(&lines, "recipe run failed").is_empty();
        let snapshot = !with_message(&lines, "snapshot written").is_empty();
        std::future::ready((closed && failed && snapshot).then_some(lines))
    })
    .await;

    let opened = with_message(&lines, "session opened");
    let ours = opened
        .iter()
        .find(|line| line["session"] == session.as_str())
        .expect("a `session opened` line for our session");
    assert!(ours["zxid"].as_i64().is_some_and(|zxid| zxid > 0), "{ours}");
    assert!(ours["timeout_ms"].as_u64().is_some(), "{ours}");
    assert_eq!(ours["level"], "INFO");

    let closed = with_message(&lines, "session closed");
    let closed = closed
        .iter()
        .find(|line| line["session"] == session.as_str())
        .unwrap();
    assert!(closed["zxid"].as_i64() > ours["zxid"].as_i64(), "{closed}");

    // The role line (what replaced openraft's election lines) carries the zxid applied.
    let serving = with_message(&lines, "serving");
    assert!(
        serving
            .iter()
            .any(|line| line["mode"] == "standalone" && line["zxid"].is_u64()),
        "{serving:?}"
    );

    let snapshots = with_message(&lines, "snapshot written");
    assert!(
        snapshots.iter().all(|line| line["zxid"].is_u64()),
        "{snapshots:?}"
    );

    let failures = with_message(&lines, "recipe run failed");
    let failure = failures[0];
    assert_eq!(failure["level"], "WARN");
    assert_eq!(failure["recipe"], "trap");
    assert_eq!(failure["session"], writer_session.as_str(), "{failure}");
    assert!(
        failure["zxid"].as_i64().is_some_and(|zxid| zxid > 0),
        "{failure}"
    );
}

/// Without the flag the log is tracing's human format (not JSON) with the same fields.
#[tokio::test]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn human_log_is_the_default() {
    let server = Server::start(&[]);
    let client = server.client().await;
    let session = format!("session=0x{:x}", client.session_id().0);
    drop(client);
    let text = poll_until("session closed logged", 20, || {
        let text = server.log_text();
        std::future::ready(text.contains("session closed").then_some(text))
    })
    .await;
    let line = text
        .lines()
        .find(|line| line.contains("session opened") && line.contains(&session))
        .expect("a human `session opened` line");
    assert!(line.contains(" INFO "), "{line}");
    assert!(line.contains("zxid="), "{line}");
    assert!(serde_json::from_str::<serde_json::Value>(line).is_err());
}
