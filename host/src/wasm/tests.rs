//! In-process tests of the runtime with hand-written WAT modules: install checks, fuel and its
//! determinism, validators and failure isolation through `txn::apply_with`.

use super::manifest::Manifest;
use super::module::{self, sha256_hex};
use super::{run, Runtime, RECIPES_PATH};
use crate::proto::{op, Acl, CreateRequest, Id, Response};
use crate::tree::Tree;
use crate::txn::{apply_with, recipe_op, TxnEntry, TxnOp};

const HEAD: &str = r#"
  (memory (export "memory") 1)
  (func (export "zkw_abi_version") (result i32) (i32.const 1))
  (func (export "zkw_alloc") (param i32) (result i32) (i32.const 1024))"#;

fn module(body: &str) -> Vec<u8> {
    wat::parse_str(format!("(module {HEAD} {body})")).unwrap()
}

fn runtime() -> Runtime {
    Runtime::new(None, recipe_op).unwrap()
}

fn entry(zxid: i64, auth: Vec<Id>, op: TxnOp) -> TxnEntry {
    TxnEntry {
        zxid,
        time_ms: 1_700_000_000_000,
        session_id: 0,
        auth,
        op,
    }
}

fn request(path: &str, data: &[u8]) -> CreateRequest {
    CreateRequest {
        path: path.into(),
        data: Some(data.to_vec()),
        acl: Acl::open_unsafe(),
        flags: 0,
        ttl_ms: None,
    }
}

fn create(path: &str, data: &[u8]) -> TxnOp {
    TxnOp::Create {
        op: op::CREATE,
        request: request(path, data),
    }
}

fn admin() -> Vec<Id> {
    vec![Id::new("super", "admin")]
}

/// Installs `bytes` as `name` bound to `root` through txns, as a client would.
fn install(
    tree: &mut Tree,
    recipes: &mut Runtime,
    zxid: &mut i64,
    name: &str,
    root: &str,
    bytes: &[u8],
    fuel: u64,
) -> Result<Response, crate::proto::ErrorCode> {
    let manifest = Manifest {
        path: root.into(),
        size: bytes.len() as u64,
        sha256: sha256_hex(bytes),
        fuel,
        memory_bytes: 1 << 20,
        timer_ms: 0,
    };
    for op in [create(RECIPES_PATH, b""), create(root, b"")] {
        *zxid += 1;
        apply_with(tree, &entry(*zxid, admin(), op), Some(recipes));
    }
    let ops = [
        request(
            &format!("{RECIPES_PATH}/{name}"),
            manifest.format().as_bytes(),
        ),
        request(&format!("{RECIPES_PATH}/{name}/module-0000"), bytes),
    ]
    .into_iter()
    .map(|request| crate::proto::MultiOp::Create {
        op: op::CREATE,
        request,
    })
    .collect();
    *zxid += 1;
    apply_with(
        tree,
        &entry(*zxid, admin(), TxnOp::Multi(ops)),
        Some(recipes),
    )
    .reply
}

#[test]
fn bad_modules_are_refused_with_the_reason() {
    let engine = super::engine::engine().unwrap();
    let linker = run::link(&engine).unwrap();
    let refusal = |bytes: &[u8]| match module::load(&engine, &linker, None, bytes) {
        Ok(_) => String::from("accepted"),
        Err(error) => error.to_string(),
    };
    assert!(refusal(b"junk").contains("not a WebAssembly module"));
    let wasi = wat::parse_str(
        r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32))))"#,
    )
    .unwrap();
    assert!(refusal(&wasi).contains("imports wasi_snapshot_preview1::fd_write"));
    assert!(refusal(&module("")).contains("exports no entry point"));
    let wrong = wat::parse_str(
        r#"(module (memory (export "memory") 1)
             (func (export "zkw_abi_version") (result i32) (i32.const 2))
             (func (export "zkw_alloc") (param i32) (result i32) (i32.const 0))
             (func (export "zkw_on_event") (param i32 i32) (result i32) (i32.const 0)))"#,
    )
    .unwrap();
    assert!(refusal(&wrong).contains("speaks ABI version 2"));
    let ok = module(r#"(func (export "zkw_on_event") (param i32 i32) (result i32) (i32.const 0))"#);
    assert_eq!(refusal(&ok), "accepted");
}

#[test]
fn a_spinning_recipe_stops_at_the_same_fuel_every_time_and_the_write_commits() {
    let spin = module(
        r#"(func (export "zkw_on_event") (param i32 i32) (result i32) (loop (br 0)) (i32.const 0))"#,
    );
    let mut fuel_used = Vec::new();
    let mut digests = Vec::new();
    for _ in 0..2 {
        let (mut tree, mut recipes, mut zxid) = (Tree::new(), runtime(), 0);
        let installed = install(
            &mut tree,
            &mut recipes,
            &mut zxid,
            "spin",
            "/s",
            &spin,
            50_000,
        );
        assert!(matches!(installed, Ok(Response::Multi(_))), "{installed:?}");
        zxid += 1;
        let applied = apply_with(
            &mut tree,
            &entry(zxid, vec![], create("/s/x", b"")),
            Some(&mut recipes),
        );
        assert!(applied.reply.is_ok());
        assert!(tree.stat("/s/x").is_some());
        let stats = recipes.list()[0].stats;
        assert_eq!(stats.failures, 2, "created /s/x and children of /s");
        fuel_used.push(stats.fuel_used);
        digests.push(tree.digest());
        let log = tree
            .get_data("/zookeeper/recipes/spin/log", &admin())
            .unwrap()
            .0
            .unwrap();
        assert!(String::from_utf8(log).unwrap().contains("out of fuel"));
    }
    assert_eq!(fuel_used[0], fuel_used[1]);
    assert_eq!(digests[0], digests[1]);
}

#[test]
fn a_validator_rejects_with_its_code_and_installs_need_the_super_user() {
    let reject =
        module(r#"(func (export "zkw_validate") (param i32 i32) (result i32) (i32.const -8))"#);
    let (mut tree, mut recipes, mut zxid) = (Tree::new(), runtime(), 0);
    install(
        &mut tree,
        &mut recipes,
        &mut zxid,
        "no",
        "/v",
        &reject,
        50_000,
    )
    .unwrap();
    zxid += 1;
    let applied = apply_with(
        &mut tree,
        &entry(zxid, vec![], create("/v/x", b"")),
        Some(&mut recipes),
    );
    assert_eq!(applied.reply, Err(crate::proto::ErrorCode::BadArguments));
    assert!(tree.stat("/v/x").is_none());
    // Writes elsewhere are not asked.
    zxid += 1;
    let applied = apply_with(
        &mut tree,
        &entry(zxid, vec![], create("/elsewhere", b"")),
        Some(&mut recipes),
    );
    assert!(applied.reply.is_ok());
    // Without the super user, the recipe nodes cannot be written.
    zxid += 1;
    let applied = apply_with(
        &mut tree,
        &entry(
            zxid,
            vec![],
            create("/zookeeper/recipes/other", b"path=/o\nsize=1\nsha256=00\n"),
        ),
        Some(&mut recipes),
    );
    assert_eq!(applied.reply, Err(crate::proto::ErrorCode::NoAuth));
}
