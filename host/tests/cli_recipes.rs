//! The recipe verbs' missteps through the real `zkw` binary (issue #13, items 8 to 11 and 13):
//! `zkw lock | elect | config | discover | balance` against a root no recipe is bound to, or a
//! name that does not exist; `zkw recipe install | logs | call | remove` with a typo, a recipe
//! that is not there or has no call entry point, an overlapping path, and the super user
//! missing, wrong or not configured on the server; `-server` and `$ZKW_SERVER` for every verb;
//! an error's cause printed once. Each asserts the exit code and the message. zkw only.
#![allow(clippy::unwrap_used)] // tests may unwrap (style.md)

mod common;

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{mk, Server, SUPER_AUTH, SUPER_DIGEST, SUPER_DIGEST_KEY};

/// Bound on one `zkw` run: a verb that should fail at once must not wait for a grant.
const RUN_SECS_MAX: u64 = 60;
/// How often a run's end is polled, in milliseconds.
const RUN_POLL_MS: u64 = 50;
/// The servers' session timeout ceiling: an install compiles the module under the apply lock,
/// which on a loaded machine outlasts the common 20 ticks and closes the CLI's session.
const SESSION_TIMEOUT_MS_MAX: &str = "60000";

/// A server as [`Server::start`] makes it, with room for slow installs.
fn server() -> Server {
    Server::start(&[("maxSessionTimeout", SESSION_TIMEOUT_MS_MAX)])
}

/// `zkw ARGS` with `envs`, killed (and the test failed) past [`RUN_SECS_MAX`]:
/// (exit code, stdout, stderr).
fn zkw(args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_zkw"))
        .args(args)
        .env_remove("ZKW_SERVER")
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(RUN_SECS_MAX);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("zkw {args:?} still running after {RUN_SECS_MAX}s");
        }
        std::thread::sleep(Duration::from_millis(RUN_POLL_MS));
    };
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code().unwrap_or(-1), out, err)
}

fn zkw_on(server: &Server, args: &[&str]) -> (i32, String, String) {
    let addr = server.addr();
    let mut all = args.to_vec();
    all.extend(["--server", addr.as_str()]);
    zkw(&all, &[])
}

fn assert_fails(result: &(i32, String, String), wanted: &[&str]) {
    let (code, out, err) = result;
    assert_eq!(*code, 1, "stdout: {out}\nstderr: {err}");
    for text in wanted {
        assert!(err.contains(text), "{text:?} not in stderr: {err}");
    }
}

fn install(server: &Server, builtin: &str, path: &str) {
    let result = zkw_on(
        server,
        &[
            "recipe", "install", builtin, "--path", path, "--auth", SUPER_AUTH,
        ],
    );
    assert_eq!(result.0, 0, "{result:?}");
}

#[test]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
fn verbs_without_their_recipe_fail_with_the_install_command() {
    let server = server();
    let addr = server.addr();
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), "{\"a\": 1}").unwrap();
    let file = config.path().to_str().unwrap();
    let cases: [(&[&str], &str, &str); 6] = [
        (&["lock", "l", "--", "true"], "lock", "/locks"),
        (&["elect", "e", "p1"], "election", "/elections"),
        (&["elect", "e", "--observe"], "election", "/elections"),
        (&["config", "push", "app", file], "config-push", "/config"),
        (&["discover", "svc"], "discovery", "/services"),
        (&["balance", "g", "--show"], "balancer", "/balancer"),
    ];
    for (args, builtin, root) in cases {
        // zkCli's one-dash spelling, as every verb takes it.
        let mut all = args.to_vec();
        all.splice(1..1, ["-server", addr.as_str()]);
        let command = format!(
            "zkw recipe install {builtin} --path {root} --server {addr} --auth digest:USER:PASSWORD"
        );
        let wanted = [format!("no recipe is bound to {root}"), command];
        let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
        assert_fails(&zkw(&all, &[]), &wanted);
    }
    // $ZKW_SERVER is every verb's default server.
    assert_fails(
        &zkw(&["discover", "svc"], &[("ZKW_SERVER", &addr)]),
        &["no recipe is bound to /services"],
    );
}

#[tokio::test]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn names_that_do_not_exist_are_not_found_and_balance_show_adds_the_items() {
    let server = server();
    install(&server, "discovery", "/services");
    install(&server, "balancer", "/balancer");
    install(&server, "config-push", "/config");
    let expected = [
        (
            vec!["discover", "nosuch"],
            "service nosuch not found under /services",
        ),
        (
            vec!["balance", "nosuch"],
            "group nosuch not found under /balancer",
        ),
        (
            vec!["config", "get", "nosuch"],
            "app nosuch not found under /config",
        ),
        (
            vec!["config", "history", "nosuch"],
            "app nosuch not found under /config",
        ),
        (
            vec!["config", "rollback", "nosuch", "1"],
            "app nosuch not found under /config",
        ),
    ];
    for (args, message) in expected {
        assert_fails(&zkw_on(&server, &args), &[message]);
    }
    let client = server.client().await;
    for path in [
        "/balancer",
        "/balancer/g",
        "/balancer/g/members",
        "/balancer/g/items",
    ] {
        mk(&client, path, b"").await;
    }
    mk(&client, "/balancer/g/members/m1", b"").await;
    mk(&client, "/balancer/g/items/i1", b"").await;
    mk(&client, "/balancer/g/items/i2", b"").await;
    let (code, summary, err) = zkw_on(&server, &["balance", "g"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        summary,
        "MEMBER\tWEIGHT\tCOUNT\nm1\t1\t2\nitems: 2, members: 1, unassigned: 0\n"
    );
    let (code, shown, err) = zkw_on(&server, &["balance", "g", "--show"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        shown,
        "MEMBER\tWEIGHT\tCOUNT\tITEMS\nm1\t1\t2\ti1,i2\nitems: 2, members: 1, unassigned: 0\n"
    );
}

#[test]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
fn recipe_missteps_name_what_is_wrong() {
    let server = server();
    let builtins = zkw(&["recipe", "builtin"], &[]).1;
    let listed = builtins.lines().collect::<Vec<_>>().join(", ");
    assert_fails(
        &zkw_on(
            &server,
            &["recipe", "install", "locks", "--auth", SUPER_AUTH],
        ),
        &[&format!(
            "zkw: no such file or built-in recipe 'locks'; built-ins: {listed}\n"
        )],
    );
    let missing = "recipe nosuch is not installed";
    assert_fails(&zkw_on(&server, &["recipe", "logs", "nosuch"]), &[missing]);
    assert_fails(
        &zkw_on(&server, &["recipe", "call", "nosuch", "x"]),
        &[missing],
    );
    let removing = ["recipe", "remove", "nosuch", "--auth", SUPER_AUTH];
    assert_fails(&zkw_on(&server, &removing), &[missing]);
    install(&server, "lock", "/locks");
    assert_fails(
        &zkw_on(&server, &["recipe", "call", "lock", "hello"]),
        &["recipe lock has no call entry point (its module exports no zkw_on_call)"],
    );
    // A second recipe on a path bound to another: refused, naming the other.
    let second = [
        "recipe", "install", "election", "--path", "/locks", "--auth", SUPER_AUTH,
    ];
    assert_fails(
        &zkw_on(&server, &second),
        &["path /locks overlaps recipe lock's path /locks"],
    );
}

#[test]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
fn admin_refusals_say_who_may_and_how() {
    let server = server();
    let who = "needs the super user (DigestAuthenticationProvider.superDigest in zoo.cfg) or the \
               recipe admin (zkw.recipe.adminIdentity): pass --auth digest:USER:PASSWORD";
    assert_fails(
        &zkw_on(&server, &["recipe", "install", "lock", "--path", "/locks"]),
        &[&format!("installing recipe lock {who}")],
    );
    let wrong = "digest:admin:wrong";
    let refused = "refused (NoAuth): digest user admin is neither the super user nor the recipe \
                   admin of these servers";
    let install_wrong = [
        "recipe", "install", "lock", "--path", "/locks", "--auth", wrong,
    ];
    assert_fails(
        &zkw_on(&server, &install_wrong),
        &[
            &format!("installing recipe lock {refused}"),
            "or the password is wrong",
        ],
    );
    install(&server, "lock", "/locks");
    assert_fails(
        &zkw_on(&server, &install_wrong),
        &[&format!("replacing recipe lock {refused}")],
    );
    assert_fails(
        &zkw_on(&server, &["recipe", "remove", "lock"]),
        &[&format!("removing recipe lock {who}")],
    );
    assert_fails(
        &zkw_on(&server, &["recipe", "remove", "lock", "--auth", wrong]),
        &[&format!("removing recipe lock {refused}")],
    );
    let removed = zkw_on(&server, &["recipe", "remove", "lock", "--auth", SUPER_AUTH]);
    assert_eq!(
        (removed.0, removed.1.as_str()),
        (0, "removed lock\n"),
        "{removed:?}"
    );

    // A server with no super user: the message says how to configure one, from --auth.
    let slow = [("maxSessionTimeout", SESSION_TIMEOUT_MS_MAX)];
    let bare = Server::start_without(&[SUPER_DIGEST_KEY], &slow, &[]);
    let install_super = [
        "recipe", "install", "lock", "--path", "/locks", "--auth", SUPER_AUTH,
    ];
    assert_fails(
        &zkw_on(&bare, &install_super),
        &[
            "the servers have no super user configured",
            &format!("`DigestAuthenticationProvider.superDigest={SUPER_DIGEST}`"),
            &format!("`zkw.recipe.adminIdentity=digest:{SUPER_DIGEST}`"),
        ],
    );
}

#[test]
fn an_errors_cause_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("zoo.cfg");
    let missing = missing.to_str().unwrap();
    let (code, _, err) = zkw(&["server", "start", "--config", missing], &[]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.matches("(os error 2)").count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("zkw: {missing}: cannot read: ")),
        "{err}"
    );
}
