//! Recipe determinism on a three-member ensemble (issue #4, "How it is proven"): 10,000 writes
//! trigger a counter and a fuel burner whose fuel runs out at points that vary with the data;
//! a follower is killed -9 half way and restarted; at the end every member has applied the
//! same zxid and holds the same tree digest, and the counter counted every create once. zkw
//! only (ZooKeeper has no recipes).
#![allow(clippy::unwrap_used)] // tests may unwrap (style.md)

mod common;
#[path = "common/ensemble.rs"]
mod ensemble;

use common::{bounded, mk, poll_until};
use ensemble::{four_letter, Ensemble};
use futures_util::future::join_all;
use zookeeper_client as zk;

/// Writes in all, half to each recipe.
const WRITES: usize = 10_000;
/// Writes in flight at once.
const INFLIGHT: usize = 200;
/// Fuel per fuel-burner run: enough for a few thousand rounds, so the larger values fail.
const BURNER_FUEL: &str = "60000";
/// Bound on the members converging after the load.
const CONVERGE_SECS_MAX: u64 = 60;

fn install(server: &str, name: &str, path: &str, extra: &[&str]) {
    let file = common::test_recipe(name);
    common::install_recipe(server, file.to_str().unwrap(), path, extra);
}

fn mntr_value(port: u16, key: &str) -> Option<String> {
    four_letter(port, "mntr")
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{key}\t")).map(str::to_owned))
}

async fn write_range(client: &zk::Client, range: std::ops::Range<usize>) {
    let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    let indexes: Vec<usize> = range.collect();
    for batch in indexes.chunks(INFLIGHT) {
        let writes = batch.iter().map(|i| {
            let (path, data) = if i % 2 == 0 {
                (format!("/d/n{i}"), Vec::new())
            } else {
                // 0..20,000 rounds: the burner's fuel runs out somewhere in that range.
                (
                    format!("/b/n{i}"),
                    ((i * 7919) % 20_000).to_string().into_bytes(),
                )
            };
            let options = &options;
            async move { client.create(&path, &data, options).await }
        });
        for outcome in bounded("batch", join_all(writes)).await {
            outcome.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn replicas_agree_after_recipe_heavy_load_and_a_follower_restart() {
    let mut ens = Ensemble::start(3).await;
    let leader = ens.leader().await;
    let client = Ensemble::client(&ens.member(leader).addr()).await;
    mk(&client, "/d", b"").await;
    mk(&client, "/b", b"").await;
    let leader_addr = ens.member(leader).addr();
    install(&leader_addr, "counter", "/d", &[]);
    install(&leader_addr, "fuel_burner", "/b", &["--fuel", BURNER_FUEL]);
    // Every member compiles both modules before the apply that installs them, outside the
    // tree lock (and then only loads the compiled copy under it).
    for member in &ens.members {
        poll_until("both modules compiled ahead", CONVERGE_SECS_MAX, || async {
            let compiled = member
                .log_text()
                .matches("recipe module compiled ahead of its install")
                .count();
            (compiled == 2).then_some(())
        })
        .await;
    }
    let client = Ensemble::client(&leader_addr).await;

    write_range(&client, 0..WRITES / 2).await;
    let follower = (0..3).find(|&i| i != leader).unwrap();
    ens.kill(follower);
    write_range(&client, WRITES / 2..WRITES).await;
    ens.members[follower].restart();

    let ports: Vec<u16> = ens.members.iter().map(|m| m.client_port).collect();
    let states = poll_until("members to converge", CONVERGE_SECS_MAX, || async {
        let states: Vec<(String, String)> = ports
            .iter()
            .map(|&port| {
                (
                    mntr_value(port, "zk_last_processed_zxid").unwrap_or_default(),
                    mntr_value(port, "zk_digest").unwrap_or_default(),
                )
            })
            .collect();
        let agreed = states
            .iter()
            .all(|state| *state == states[0] && !state.1.is_empty());
        agreed.then_some(states)
    })
    .await;
    assert_eq!(states.len(), 3);

    let (count, _) = bounded("get", client.get_data("/d/count")).await.unwrap();
    assert_eq!(String::from_utf8(count).unwrap(), (WRITES / 2).to_string());
    let port = ens.member(leader).client_port;
    let failures: u64 = mntr_value(port, "zk_recipe_failures{name=\"fuel_burner\"}")
        .unwrap()
        .parse()
        .unwrap();
    assert!(failures > 0 && failures < (WRITES / 2) as u64, "{failures}");
}
