//! Recipes (issue #12 items 11 and 12). A recipe cannot be bound to `/`, to `/zookeeper` or
//! to a path that overlaps another recipe's: `zkw recipe install` says why, and a raw client
//! writing the manifest itself is refused by every replica (BadArguments, a logged reason). Only
//! super or the recipe admin (`zkw.recipe.adminIdentity`) may write under `/zookeeper/recipes`
//! (call nodes aside): a stranger's writes there are NoAuth whatever the nodes' ACLs, and the log
//! node is read-only to clients. A write or call the caller may not make runs no validator and
//! no call (the run counters stay put on every member); a txn whose recipe runs together need
//! more than `zkw.recipe.txnFuelMax` is refused (QuotaExceeded) on every replica alike.

use std::process::{Command, Output};

use crate::common::{self, bounded};
use crate::ensemble::{four_letter, Ensemble};
use crate::{check_no_loss, modes, persistent, Writer, MEMBERS, WRITES_DURING_ATTACK_MIN};
use zookeeper_client as zk;

/// The recipe admin of the binding ensemble (`zkw.recipe.adminIdentity`): not super.
const OPS_USER_PASSWORD: &str = "ops:ops-secret";
/// `zkw.recipe.txnFuelMax` of the fuel-cap ensemble.
const TXN_FUEL_MAX: u64 = 1_000_000;
/// fuel_burner's fuel per run there: two endless runs fit in one txn, three do not.
const BURNER_FUEL: u64 = 400_000;
/// fuel_burner data whose rounds outlast any run's fuel.
const ENDLESS_ROUNDS: &[u8] = b"1000000000";
/// Attempts at one `zkw recipe install`.
const INSTALL_TRIES: usize = 3;
/// Where the recipes' nodes live.
const RECIPES: &str = "/zookeeper/recipes";

/// `zkw recipe ARGS --server SERVERS --auth AUTH`.
fn recipe_cli(servers: &str, auth: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zkw"))
        .arg("recipe")
        .args(args)
        .args(["--server", servers, "--auth", auth])
        .output()
        .unwrap()
}

/// Installs the test kit's `module` as `name` bound to `path`, as `auth`.
fn install(servers: &str, auth: &str, module: &str, name: &str, path: &str, extra: &[&str]) {
    let file = common::test_recipe(module);
    let mut args = vec![
        "install",
        file.to_str().unwrap(),
        "--name",
        name,
        "--path",
        path,
    ];
    args.extend_from_slice(extra);
    // The install may lose its connection to a leader change (see the tests); it is
    // idempotent, so try again, bounded.
    let mut out = recipe_cli(servers, auth, &args);
    for _ in 1..INSTALL_TRIES {
        if out.status.success() {
            break;
        }
        eprintln!("install {name}: {}", String::from_utf8_lossy(&out.stderr));
        out = recipe_cli(servers, auth, &args);
    }
    assert!(
        out.status.success(),
        "install {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// How many members' logs contain `needle`.
fn members_logging(ens: &Ensemble, needle: &str) -> usize {
    ens.members
        .iter()
        .filter(|m| m.log_text().contains(needle))
        .count()
}

/// `zk_recipe_runs{name="NAME"}` of every member, each synced first (so it applied as far as
/// the leader had committed).
async fn runs_everywhere(ens: &Ensemble, name: &str) -> Vec<Option<u64>> {
    let key = format!("zk_recipe_runs{{name=\"{name}\"}}\t");
    let mut runs = Vec::with_capacity(MEMBERS);
    for idx in 0..MEMBERS {
        let client = Ensemble::client(&ens.hosts(&[idx])).await;
        bounded("sync", client.sync("/")).await.unwrap();
        let mntr = four_letter(ens.member(idx).client_port, "mntr");
        runs.push(
            mntr.lines()
                .find_map(|line| line.strip_prefix(&key))
                .and_then(|value| value.trim().parse().ok()),
        );
    }
    runs
}

/// A raw install (manifest and module in one multi) of `module` as `name` bound to `path`.
async fn raw_install(
    client: &zk::Client,
    name: &str,
    path: &str,
    module: &[u8],
) -> Result<(), zk::Error> {
    let manifest = format!(
        "path={path}\nsize={}\nsha256={}\n",
        module.len(),
        zkw::wasm::module::sha256_hex(module)
    );
    let mut multi = client.new_multi_writer();
    let base = format!("{RECIPES}/{name}");
    multi
        .add_create(&base, manifest.as_bytes(), &persistent())
        .unwrap();
    multi
        .add_create(&format!("{base}/module-0000"), module, &persistent())
        .unwrap();
    bounded("raw install", multi.commit())
        .await
        .map(|_| ())
        .map_err(zk::Error::from)
}

fn assert_no_auth<T: std::fmt::Debug>(what: &str, outcome: Result<T, zk::Error>) {
    assert!(
        matches!(outcome, Err(zk::Error::NoAuth)),
        "{what}: {outcome:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn recipe_paths_are_kept_apart_and_recipe_nodes_belong_to_the_admin() {
    let ops_digest = zkw::tree::acl::digest_id(OPS_USER_PASSWORD);
    let mut ens = Ensemble::spawn_with(MEMBERS, |_| {
        vec![(
            "zkw.recipe.adminIdentity".to_owned(),
            format!("digest:{ops_digest}"),
        )]
    });
    ens.wait_quorum().await;
    let hosts = ens.live_hosts();
    let ops_auth = format!("digest:{OPS_USER_PASSWORD}");
    let ops = Ensemble::client(&hosts).await;
    bounded("auth", ops.auth("digest", OPS_USER_PASSWORD.as_bytes()))
        .await
        .unwrap();
    for path in ["/app", "/app/c", "/t"] {
        bounded("create", ops.create(path, b"", &persistent()))
            .await
            .unwrap();
    }
    // The recipe admin (not super) installs through the CLI.
    install(&hosts, &ops_auth, "counter", "counter", "/app/c", &[]);
    install(
        &hosts,
        &ops_auth,
        "spin",
        "spin",
        "/t",
        &["--fuel", "100000"],
    );
    // Installs first: every member compiles a new module inside apply, which on a loaded
    // machine can silence the leader long enough for an election (not the attack).
    let leader = ens.leader().await;
    let before = modes(&ens);
    let writer = Writer::start(&ens.hosts(&[(leader + 2) % MEMBERS])).await;
    writer.wait_progress(0, 1).await;
    let during = writer.acked_count();

    // The CLI refuses with the reason...
    for (path, reason) in [
        ("/", "cannot bind the root"),
        ("/zookeeper", "system paths"),
        ("/app", "overlaps recipe counter's path /app/c"),
        ("/app/c", "overlaps recipe counter's path /app/c"),
        ("/app/c/d", "overlaps recipe counter's path /app/c"),
    ] {
        let file = common::test_recipe("counter");
        let args = ["install", file.to_str().unwrap(), "--name", "other"];
        let out = recipe_cli(
            &hosts,
            &ops_auth,
            &[&args[..], &["--path", path][..]].concat(),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(reason),
            "{path}: {stderr}"
        );
    }
    // ...and every replica refuses the raw writes (the check lives in apply).
    let module = std::fs::read(common::test_recipe("counter")).unwrap();
    for path in ["/", "/zookeeper", "/app", "/app/c", "/app/c/d"] {
        let refused = raw_install(&ops, "other", path, &module).await;
        assert!(
            matches!(refused, Err(zk::Error::BadArguments(_))),
            "{path}: {refused:?}"
        );
    }
    let names = bounded("ls", ops.list_children(RECIPES)).await.unwrap();
    assert_eq!(names, ["counter", "spin"]);

    // A failed spin run (out of fuel) writes the log node.
    bounded("create", ops.create("/t/x", b"", &persistent()))
        .await
        .unwrap();
    let log = format!("{RECIPES}/spin/log");
    let (log_before, _) = bounded("get log", ops.get_data(&log)).await.unwrap();
    assert!(!log_before.is_empty());
    // The install gave the nodes read-only ACLs (calls aside).
    let (acl, _) = bounded(
        "getAcl",
        ops.get_acl(&format!("{RECIPES}/spin/module-0000")),
    )
    .await
    .unwrap();
    assert_eq!(acl.len(), 1);
    assert_eq!(acl[0].permission(), zk::Permission::READ);
    let (acl, _) = bounded("getAcl", ops.get_acl(&format!("{RECIPES}/spin")))
        .await
        .unwrap();
    let callers = zk::Permission::READ | zk::Permission::CREATE | zk::Permission::DELETE;
    assert_eq!(acl[0].permission(), callers);

    // A stranger (no identity, then a digest that is not the admin's) changes nothing there.
    for target in [leader, (leader + 1) % MEMBERS] {
        let stranger = Ensemble::client(&ens.hosts(&[target])).await;
        if target != leader {
            bounded("auth", stranger.auth("digest", b"mallory:pw"))
                .await
                .unwrap();
        }
        let manifest = format!("{RECIPES}/spin");
        let chunk = format!("{manifest}/module-0000");
        for path in [&manifest, &chunk, &log] {
            let set = stranger.set_data(path, b"path=/\n", None);
            assert_no_auth(&format!("setData {path}"), bounded("set", set).await);
            let acl = stranger.set_acl(path, &zk::Acls::anyone_all(), None);
            assert_no_auth(&format!("setAcl {path}"), bounded("setAcl", acl).await);
        }
        for path in [&log, &chunk] {
            let delete = stranger.delete(path, None);
            assert_no_auth(&format!("delete {path}"), bounded("delete", delete).await);
        }
        for path in [format!("{log}/x"), format!("{manifest}/extra")] {
            let create = stranger.create(&path, b"", &persistent());
            assert_no_auth(&format!("create {path}"), bounded("create", create).await);
        }
        assert_no_auth(
            "raw install",
            raw_install(&stranger, "evil", "/evil", &module).await,
        );
    }
    let (log_after, _) = bounded("get log", ops.get_data(&log)).await.unwrap();
    assert_eq!(
        log_after, log_before,
        "the log node was written by a client"
    );

    writer.wait_progress(during, WRITES_DURING_ATTACK_MIN).await;
    let acked = writer.finish().await;
    assert_eq!(modes(&ens), before, "the leader changed");
    for reason in [
        "cannot bind the root",
        "overlaps recipe counter's path /app/c",
        "write under the recipes refused (NoAuth)",
    ] {
        assert_eq!(members_logging(&ens, reason), MEMBERS, "{reason}");
    }
    check_no_loss(&ens, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn recipe_runs_need_the_callers_rights_and_fit_the_txn_fuel_cap() {
    let mut ens = Ensemble::spawn_with(MEMBERS, |_| {
        vec![("zkw.recipe.txnFuelMax".to_owned(), TXN_FUEL_MAX.to_string())]
    });
    ens.wait_quorum().await;
    let hosts = ens.live_hosts();
    let owner = Ensemble::client(&hosts).await;
    for path in ["/v", "/e", "/b"] {
        bounded("create", owner.create(path, b"", &persistent()))
            .await
            .unwrap();
    }
    let locked = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_read());
    bounded("create", owner.create("/v/locked", b"", &locked))
        .await
        .unwrap();
    let auth = common::SUPER_AUTH;
    install(&hosts, auth, "validator", "validator", "/v", &[]);
    install(
        &hosts,
        auth,
        "echo_call",
        "echo",
        "/e",
        &["--call-perms", "cw"],
    );
    let fuel = BURNER_FUEL.to_string();
    install(
        &hosts,
        auth,
        "fuel_burner",
        "burner",
        "/b",
        &["--fuel", &fuel],
    );
    // Installs first: every member compiles a new module inside apply, which on a loaded
    // machine can silence the leader long enough for an election (not the attack).
    let leader = ens.leader().await;
    let before = modes(&ens);
    let writer = Writer::start(&ens.hosts(&[(leader + 2) % MEMBERS])).await;
    writer.wait_progress(0, 1).await;
    let during = writer.acked_count();

    // Writes and calls the caller may not make: NoAuth, and no recipe runs for them.
    let validator_runs = runs_everywhere(&ens, "validator").await;
    let echo_runs = runs_everywhere(&ens, "echo").await;
    for target in [leader, (leader + 1) % MEMBERS] {
        let stranger = Ensemble::client(&ens.hosts(&[target])).await;
        let create = stranger.create("/v/locked/x", b"", &persistent());
        assert_no_auth(
            "create under a read-only node",
            bounded("create", create).await,
        );
        let set = stranger.set_data("/v/locked", b"x", None);
        assert_no_auth("setData of a read-only node", bounded("set", set).await);
        // The recipe's node lets anyone create call nodes, but echo declares `cw`.
        let call_path = format!("{RECIPES}/echo/call-");
        let call = stranger.create(
            &call_path,
            b"abc",
            &zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all()),
        );
        assert_no_auth("call without WRITE", bounded("call", call).await);
    }
    assert_eq!(runs_everywhere(&ens, "validator").await, validator_runs);
    assert_eq!(runs_everywhere(&ens, "echo").await, echo_runs);
    assert!(
        validator_runs.iter().all(Option::is_some),
        "{validator_runs:?}"
    );

    // A multi whose runs need more than zkw.recipe.txnFuelMax: refused whole, everywhere.
    for target in [leader, (leader + 1) % MEMBERS] {
        let attacker = Ensemble::client(&ens.hosts(&[target])).await;
        let mut multi = attacker.new_multi_writer();
        for n in 0..3 {
            multi
                .add_create(&format!("/b/m{target}-{n}"), ENDLESS_ROUNDS, &persistent())
                .unwrap();
        }
        let refused = bounded("multi", multi.commit())
            .await
            .map_err(zk::Error::from);
        assert!(
            matches!(refused, Err(zk::Error::QuotaExceeded)),
            "{refused:?}"
        );
        // One endless run fits: that create commits (its run fails alone).
        let one_path = format!("/b/one{target}");
        let one = attacker.create(&one_path, ENDLESS_ROUNDS, &persistent());
        bounded("create", one).await.unwrap();
    }
    let children = bounded("ls", owner.list_children("/b")).await.unwrap();
    assert!(
        children.iter().all(|child| !child.starts_with('m')),
        "a refused multi left {children:?}"
    );

    writer.wait_progress(during, WRITES_DURING_ATTACK_MIN).await;
    let acked = writer.finish().await;
    assert_eq!(modes(&ens), before, "the leader changed");
    for reason in [
        "recipe call refused (NoAuth)",
        "txn refused (QuotaExceeded)",
    ] {
        assert_eq!(members_logging(&ens, reason), MEMBERS, "{reason}");
    }
    check_no_loss(&ens, &acked).await;
}
