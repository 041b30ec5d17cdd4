//! The leader partitioned from both followers of a three-member ensemble in this process: the
//! followers elect a new leader and keep taking writes, the old leader stops serving; healed,
//! it catches up and every member holds the same digest.

use crate::cluster::{ask, member_ip, Cluster, CONVERGE_SECS_MAX};
use crate::common::{bounded, poll_until};
use crate::connect;
use zookeeper_client as zk;

async fn create(client: &zk::Client, path: &str) {
    let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    bounded("create", client.create(path, b"", &options))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn three_servers_in_one_process_survive_a_partitioned_leader() {
    let cluster = Cluster::start(3, &[], "");
    let all = [1, 2, 3];
    let old_leader = cluster.leader_among(&all).await;
    let followers: Vec<u8> = all.iter().copied().filter(|id| *id != old_leader).collect();
    let address = |id: u8| format!("127.0.0.1:{}", cluster.member(id).client_port);

    let writer = connect(&address(followers[0])).await;
    create(&writer, "/before").await;

    for follower in &followers {
        cluster
            .network
            .partition(member_ip(old_leader), member_ip(*follower));
    }
    let new_leader = cluster.leader_among(&followers).await;
    let old_port = cluster.member(old_leader).client_port;
    poll_until(
        "the cut-off leader to stop serving",
        CONVERGE_SECS_MAX,
        || async {
            ask(old_port, "srvr")
                .await
                .contains("not currently serving")
                .then_some(())
        },
    )
    .await;
    let during = connect(&address(new_leader)).await;
    create(&during, "/during").await;

    cluster.network.heal();
    poll_until(
        "the old leader to serve again",
        CONVERGE_SECS_MAX,
        || async {
            let answer = ask(old_port, "srvr").await;
            answer.contains("Mode: follower").then_some(())
        },
    )
    .await;
    let after = connect(&address(old_leader)).await;
    create(&after, "/after").await;
    for path in ["/before", "/during", "/after"] {
        let found = bounded("exists", after.check_stat(path)).await.unwrap();
        assert!(found.is_some(), "{path} is on the healed member");
    }
    cluster.digests_agree().await;

    drop((writer, during, after));
    cluster.stop_all().await;
}
