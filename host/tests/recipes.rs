//! Black-box tests of WebAssembly recipes on a real `zkw` process: installs through the `zkw
//! recipe` CLI and through plain znodes with the `zookeeper-client` crate, triggers, watches on
//! recipe writes, validators, explicit calls, session closes, hostile modules, refusals, and a
//! restart. The recipes are the test kit's (recipes/testkit), built for wasm32 on first use.
//! zkw only: ZooKeeper has no recipes.
#![allow(clippy::unwrap_used)] // tests may unwrap (style.md)

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{bounded, event, mk, Server};
use zookeeper_client as zk;

fn zkw_recipe(server: &Server, args: &[&str]) -> std::process::Output {
    common::zkw_recipe(&server.addr(), args)
}

fn kit(name: &str) -> PathBuf {
    common::test_recipe(name)
}

fn install(server: &Server, name: &str, path: &str, extra: &[&str]) {
    let file = kit(name);
    common::install_recipe(&server.addr(), file.to_str().unwrap(), path, extra);
}

fn logs(server: &Server, name: &str) -> String {
    String::from_utf8(zkw_recipe(server, &["logs", name]).stdout).unwrap()
}

/// Installing compiles a module under the apply lock, and hostile runs burn their fuel there:
/// on a loaded machine that can outlast the harness's 400 ms connection timeout, so these tests'
/// sessions wait longer for an answer.
async fn client(server: &Server) -> zk::Client {
    let connector = server
        .connector()
        .with_connection_timeout(std::time::Duration::from_secs(5));
    bounded("connect", connector.connect(&server.addr()))
        .await
        .unwrap()
}

#[tokio::test]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn counter_recipe_writes_fire_watches_like_any_write() {
    let server = Server::start(&[]);
    let c = client(&server).await;
    mk(&c, "/c", b"").await;
    install(&server, "counter", "/c", &[]);
    let c = client(&server).await;
    let (_, watch) = bounded("watch", c.check_and_watch_stat("/c/count"))
        .await
        .unwrap();
    mk(&c, "/c/a", b"").await;
    let ev = event(watch).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (zk::EventType::NodeCreated, "/c/count")
    );
    mk(&c, "/c/b", b"").await;
    mk(&c, "/c/d", b"").await;
    let (data, stat) = bounded("get", c.get_data("/c/count")).await.unwrap();
    assert_eq!((data.as_slice(), stat.version), (&b"3"[..], 2));
    // The counter was created by the same txn as /c/a: same zxid.
    let (_, a) = bounded("get", c.get_data("/c/a")).await.unwrap();
    let (_, count) = bounded("get", c.get_data("/c/count")).await.unwrap();
    assert_eq!(count.czxid, a.czxid);
    let mntr = server.four_letter("mntr").unwrap();
    assert!(
        mntr.contains("zk_recipe_failures{name=\"counter\"}\t0"),
        "{mntr}"
    );
}

fn persistent() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

#[tokio::test]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn validator_rejects_with_its_code_and_logs_why() {
    let server = Server::start(&[]);
    install(&server, "validator", "/v", &[]);
    let c = client(&server).await;
    mk(&c, "/v", b"").await;
    mk(&c, "/v/ok", b"fine").await;
    let refused = bounded("create", c.create("/v/long", &[b'x'; 100], &persistent())).await;
    assert!(
        matches!(refused, Err(zk::Error::BadArguments(_))),
        "{refused:?}"
    );
    assert_eq!(
        bounded("exists", c.check_stat("/v/long")).await.unwrap(),
        None
    );
    // Inside a multi the refusal fails the whole multi.
    let mut multi = c.new_multi_writer();
    multi.add_create("/v/m1", b"ok", &persistent()).unwrap();
    multi.add_set_data("/v/ok", &[0xff, 0xfe], None).unwrap();
    let refused = bounded("multi", multi.commit()).await;
    assert!(
        matches!(
            refused,
            Err(zk::MultiWriteError::OperationFailed {
                index: 1,
                source: zk::Error::BadArguments(_)
            })
        ),
        "{refused:?}"
    );
    assert_eq!(
        bounded("exists", c.check_stat("/v/m1")).await.unwrap(),
        None
    );
    let text = logs(&server, "validator");
    assert!(text.contains("rejected /v/long"), "{text}");
}

#[tokio::test]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn hostile_recipes_are_stopped_and_the_server_keeps_serving() {
    let server = Server::start(&[]);
    // (module, what its log must say, extra install flags)
    let cases = [
        ("spin", "out of fuel", &[][..]),
        (
            "memory_bomb",
            "out of memory",
            &["--memory", "2097152", "--fuel", "1000000000"][..],
        ),
        ("recursion", "stack overflow", &[][..]),
        ("escape", "write outside its path: /elsewhere", &[][..]),
    ];
    let c = client(&server).await;
    let other = client(&server).await;
    mk(&other, "/bystander", b"still here").await;
    for (name, expected, extra) in cases {
        let root = format!("/{name}");
        mk(&c, &root, b"").await;
        install(&server, name, &root, extra);
        // The triggering write commits; the run's output is discarded.
        mk(&c, &format!("{root}/x"), b"").await;
        let (data, _) = bounded("get", other.get_data("/bystander")).await.unwrap();
        assert_eq!(data, b"still here");
        let text = logs(&server, name);
        assert!(text.contains(expected), "{name}: {text}");
    }
    assert_eq!(
        bounded("exists", c.check_stat("/elsewhere")).await.unwrap(),
        None
    );
    // escape wrote legally before it escaped: that write is gone with the run.
    let (children, _) = bounded("ls", c.get_children("/escape")).await.unwrap();
    assert_eq!(children, vec!["x".to_owned()]);
    // A validator that traps refuses the write (SystemError), it does not wave it through.
    mk(&c, "/trap", b"").await;
    install(&server, "trap", "/trap", &[]);
    let refused = bounded("create", c.create("/trap/x", b"", &persistent())).await;
    // SystemError (-1): the crate has no name for it.
    assert!(
        matches!(refused, Err(zk::Error::UnexpectedErrorCode(-1))),
        "{refused:?}"
    );
    let mntr = server.four_letter("mntr").unwrap();
    assert!(
        mntr.contains("zk_recipe_failures{name=\"spin\"}\t2"),
        "{mntr}"
    );
    let text = logs(&server, "trap");
    assert!(text.contains("deliberate panic"), "{text}");
}

#[tokio::test]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn bad_modules_are_refused_at_install_with_the_reason() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let wat_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../recipes/testkit/wat");
    let cases = [
        ("wasi", "imports wasi_snapshot_preview1::fd_write"),
        ("wrong_abi", "speaks ABI version 2"),
        ("no_entry", "exports no entry point"),
    ];
    for (name, reason) in cases {
        let binary = wat::parse_file(wat_dir.join(format!("{name}.wat"))).unwrap();
        let file = dir.path().join(format!("{name}.wasm"));
        std::fs::write(&file, binary).unwrap();
        let out = zkw_recipe(
            &server,
            &["install", file.to_str().unwrap(), "--path", "/b"],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(reason),
            "{name}: {stderr}"
        );
    }
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not wasm at all").unwrap();
    let out = zkw_recipe(
        &server,
        &["install", junk.to_str().unwrap(), "--path", "/b"],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a WebAssembly module"));

    // The servers check too: a classic client writing the nodes itself is refused.
    let c = client(&server).await;
    let admin = client(&server).await;
    bounded("auth", admin.auth("digest", b"admin:secret"))
        .await
        .unwrap();
    // Only an admin writes under /zookeeper/recipes (a stranger's create there: NoAuth).
    let stranger = c.create("/zookeeper/recipes", b"", &persistent());
    let refused = bounded("create", stranger).await;
    assert!(matches!(refused, Err(zk::Error::NoAuth)), "{refused:?}");
    mk(&admin, "/zookeeper/recipes", b"").await;
    let bytes = b"\0asm\x01\0\0\0".to_vec();
    let manifest = format!(
        "path=/b\nsize={}\nsha256={}\n",
        bytes.len(),
        sha256_hex(&bytes)
    );
    let plain_install = |client: zk::Client| {
        let manifest = manifest.clone();
        let bytes = bytes.clone();
        async move {
            let mut multi = client.new_multi_writer();
            multi
                .add_create("/zookeeper/recipes/b", manifest.as_bytes(), &persistent())
                .unwrap();
            multi
                .add_create("/zookeeper/recipes/b/module-0000", &bytes, &persistent())
                .unwrap();
            multi.commit().await
        }
    };
    // Without the super user: NoAuth.
    let refused = bounded("multi", plain_install(c.clone())).await;
    assert!(format!("{refused:?}").contains("NoAuth"), "{refused:?}");
    // With it, an empty module (no exports) is still refused.
    let refused = bounded("multi", plain_install(admin.clone())).await;
    assert!(
        format!("{refused:?}").contains("BadArguments"),
        "{refused:?}"
    );
    assert_eq!(
        bounded("exists", c.check_stat("/zookeeper/recipes/b"))
            .await
            .unwrap(),
        None
    );
}

fn sha256_hex(bytes: &[u8]) -> String {
    zkw::wasm::module::sha256_hex(bytes)
}

#[tokio::test]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn explicit_calls_and_session_closes_reach_recipes() {
    let server = Server::start(&[]);
    install(&server, "echo_call", "/e", &[]);
    install(&server, "session_watch", "/s", &[]);
    let c = client(&server).await;
    mk(&c, "/e", b"").await;
    mk(&c, "/s", b"").await;
    let out = zkw_recipe(&server, &["call", "echo_call", "hello"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "olleh");
    // The same through a plain znode: the created call node holds the result.
    let (_, sequence) = bounded(
        "call",
        c.create(
            "/zookeeper/recipes/echo_call/call-",
            b"abc",
            &zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all()),
        ),
    )
    .await
    .unwrap();
    let path = format!("/zookeeper/recipes/echo_call/call-{sequence}");
    let (data, _) = bounded("get", c.get_data(&path)).await.unwrap();
    assert_eq!(data, b"cba");
    let (called, _) = bounded("ls", c.get_children("/e")).await.unwrap();
    assert_eq!(called.len(), 2, "{called:?}");

    let ephemeral = client(&server).await;
    let session = ephemeral.session_id().0;
    bounded(
        "create",
        ephemeral.create(
            "/s/e",
            b"",
            &zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all()),
        ),
    )
    .await
    .unwrap();
    drop(ephemeral);
    let closed = format!("/s/closed-{session:016x}");
    let data = common::poll_until("session close recorded", 10, || async {
        c.get_data(&closed).await.ok().map(|(data, _)| data)
    })
    .await;
    assert_eq!(data, b"/s/e");
}

#[tokio::test]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn installed_recipes_survive_a_kill_and_restart() {
    let mut server = Server::start(&[]);
    let c = client(&server).await;
    mk(&c, "/c", b"").await;
    install(&server, "counter", "/c", &[]);
    let c = client(&server).await;
    mk(&c, "/c/a", b"").await;
    drop(c);
    server.kill_and_restart();
    let c = client(&server).await;
    mk(&c, "/c/b", b"").await;
    let (data, _) = bounded("get", c.get_data("/c/count")).await.unwrap();
    assert_eq!(data, b"2");
}

#[tokio::test]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn timers_fire_with_the_leaders_clock() {
    let server = Server::start(&[]);
    let c = client(&server).await;
    mk(&c, "/t", b"").await;
    install(&server, "ticker", "/t", &["--timer-ms", "100"]);
    let c = client(&server).await;
    let text = common::poll_until("three ticks", 20, || async {
        let (data, _) = c.get_data("/t/ticks").await.ok()?;
        let text = String::from_utf8(data).unwrap();
        let count: u64 = text.split(' ').next()?.parse().ok()?;
        (count >= 3).then_some(text)
    })
    .await;
    let time_ms: i64 = text.split(' ').nth(1).unwrap().parse().unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!((now_ms - time_ms).abs() < 60_000, "{text} vs {now_ms}");
    // The tick's time is the txn's: the node's mtime is the same instant.
    let (data, stat) = bounded("get", c.get_data("/t/ticks")).await.unwrap();
    let stamped: i64 = String::from_utf8(data)
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(stat.mtime, stamped);
}

#[tokio::test]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn built_in_recipes_install_by_name() {
    let server = Server::start(&[]);
    let builtin = Command::new(env!("CARGO_BIN_EXE_zkw"))
        .args(["recipe", "builtin"])
        .output()
        .unwrap();
    let names: Vec<String> = String::from_utf8(builtin.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    for expected in ["balancer", "config-push", "discovery"] {
        assert!(names.iter().any(|name| name == expected), "{names:?}");
    }
    for name in &names {
        let path = format!("/builtin-{name}");
        let out = zkw_recipe(&server, &["install", name, "--path", &path]);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let listed = String::from_utf8(zkw_recipe(&server, &["list"]).stdout).unwrap();
    for name in &names {
        assert!(
            listed.contains(&format!("{name}\t/builtin-{name}")),
            "{listed}"
        );
    }
}
