//! Three zkw servers in one process on an in-memory quorum network (`MemoryNetwork`, handed in
//! through `server::Seams`), with clients on real loopback TCP: a server is a value, and a
//! test cuts the network where it likes without root or iptables. The leader is partitioned
//! from both followers: the followers elect a new leader and keep taking writes, the old
//! leader stops serving; healed, it catches up and every member holds the same digest. The
//! ground floor of the deterministic simulation (issue #15). zkw only.
#![allow(clippy::unwrap_used)] // tests may unwrap (style.md)

mod common;
#[path = "common/ensemble.rs"]
mod ensemble;

use std::net::IpAddr;

use common::{bounded, poll_until, TICK_MS};
use ensemble::{four_letter, INIT_LIMIT_TICKS, SYNC_LIMIT_TICKS};
use tokio::sync::oneshot;
use zkw::consensus::transport::MemoryNetwork;
use zkw::server::Seams;
use zookeeper_client as zk;

/// Members of the ensemble.
const MEMBERS: u8 = 3;
/// The quorum port every member listens on (each member is its own address on the network).
const QUORUM_PORT: u16 = 2888;
/// Bound on an election, a catch-up or the digests converging, seconds.
const CONVERGE_SECS_MAX: u64 = 60;
/// Bound on a server returning after its shutdown, seconds.
const STOP_SECS_MAX: u64 = 30;

fn member_ip(id: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, id])
}

/// One in-process member: its client port, and how to stop it.
struct Member {
    id: u8,
    client_port: u16,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), zkw::server::ServerError>>,
}

async fn start(dir: &std::path::Path, network: &MemoryNetwork) -> Vec<Member> {
    let peers: String = (1..=MEMBERS)
        .map(|id| {
            format!(
                "server.{id}={}:{QUORUM_PORT}:{}\n",
                member_ip(id),
                QUORUM_PORT + 1000
            )
        })
        .collect();
    let mut members = Vec::new();
    for id in 1..=MEMBERS {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client_port = listener.local_addr().unwrap().port();
        let data = dir.join(format!("m{id}"));
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("myid"), format!("{id}\n")).unwrap();
        let text = format!(
            "tickTime={TICK_MS}\ninitLimit={INIT_LIMIT_TICKS}\nsyncLimit={SYNC_LIMIT_TICKS}\n\
             dataDir={}\nclientPort={client_port}\n4lw.commands.whitelist=*\n\
             admin.enableServer=false\n{peers}",
            data.display()
        );
        let cfg = data.join("zoo.cfg");
        std::fs::write(&cfg, text).unwrap();
        let (config, _warnings) = zkw::config::Config::load(&cfg).unwrap();
        let seams = Seams {
            peers: network.transport(member_ip(id)),
            ..Seams::real()
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let task = tokio::spawn(zkw::server::run(config, listener, shutdown, seams));
        members.push(Member {
            id,
            client_port,
            stop: Some(stop),
            task,
        });
    }
    members
}

/// A four-letter word's answer, off the runtime's threads (the servers run on them).
async fn ask(port: u16, word: &'static str) -> String {
    tokio::task::spawn_blocking(move || four_letter(port, word))
        .await
        .unwrap()
}

fn mntr_value(answer: &str, key: &str) -> Option<String> {
    answer
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix('\t'))
        .map(str::to_owned)
}

/// The member that says it leads, among `candidates`.
async fn leader_among(members: &[Member], candidates: &[u8]) -> u8 {
    poll_until("a leader", CONVERGE_SECS_MAX, || async {
        for member in members.iter().filter(|m| candidates.contains(&m.id)) {
            if ask(member.client_port, "srvr")
                .await
                .contains("Mode: leader")
            {
                return Some(member.id);
            }
        }
        None
    })
    .await
}

async fn client(port: u16) -> zk::Client {
    let connector = zk::Client::connector().with_session_timeout(std::time::Duration::from_millis(
        ensemble::SESSION_TIMEOUT_MS,
    ));
    bounded(
        "client connect",
        connector.connect(&format!("127.0.0.1:{port}")),
    )
    .await
    .unwrap()
}

async fn create(client: &zk::Client, path: &str) {
    let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    bounded("create", client.create(path, b"", &options))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn three_servers_in_one_process_survive_a_partitioned_leader() {
    let dir = tempfile::tempdir().unwrap();
    let network = MemoryNetwork::new();
    let mut members = start(dir.path(), &network).await;
    let all: Vec<u8> = (1..=MEMBERS).collect();
    let old_leader = leader_among(&members, &all).await;
    let followers: Vec<u8> = all.iter().copied().filter(|id| *id != old_leader).collect();
    let port = |id: u8| members[usize::from(id - 1)].client_port;

    let writer = client(port(followers[0])).await;
    create(&writer, "/before").await;

    for follower in &followers {
        network.partition(member_ip(old_leader), member_ip(*follower));
    }
    let new_leader = leader_among(&members, &followers).await;
    poll_until(
        "the cut-off leader to stop serving",
        CONVERGE_SECS_MAX,
        || async {
            ask(port(old_leader), "srvr")
                .await
                .contains("not currently serving")
                .then_some(())
        },
    )
    .await;
    let during = client(port(new_leader)).await;
    create(&during, "/during").await;

    network.heal();
    poll_until(
        "the old leader to serve again",
        CONVERGE_SECS_MAX,
        || async {
            let answer = ask(port(old_leader), "srvr").await;
            answer.contains("Mode: follower").then_some(())
        },
    )
    .await;
    let after = client(port(old_leader)).await;
    create(&after, "/after").await;
    for path in ["/before", "/during", "/after"] {
        let found = bounded("exists", after.check_stat(path)).await.unwrap();
        assert!(found.is_some(), "{path} is on the healed member");
    }
    poll_until("equal digests", CONVERGE_SECS_MAX, || async {
        let mut digests = Vec::new();
        for member in &members {
            let answer = ask(member.client_port, "mntr").await;
            digests.push((
                mntr_value(&answer, "zk_last_processed_zxid")?,
                mntr_value(&answer, "zk_digest")?,
            ));
        }
        digests
            .windows(2)
            .all(|pair| pair[0] == pair[1])
            .then_some(())
    })
    .await;

    drop((writer, during, after));
    for member in &mut members {
        if let Some(stop) = member.stop.take() {
            let _ = stop.send(());
        }
    }
    for member in members {
        let stopped =
            tokio::time::timeout(std::time::Duration::from_secs(STOP_SECS_MAX), member.task).await;
        let result = stopped
            .expect("a server returns after its shutdown")
            .unwrap();
        assert!(result.is_ok(), "member {}: {result:?}", member.id);
    }
}
