//! In-process tests of the runtime with hand-written WAT modules: install checks, fuel and its
//! determinism, validators and failure isolation through `txn::apply_with`.

use super::manifest::Manifest;
use super::module::{self, sha256_hex};
use super::{run, Runtime, RECIPES_PATH};
use crate::proto::{op, perms, Acl, CreateRequest, DeleteRequest, ErrorCode, Id, MultiOp};
use crate::proto::{MultiResult, Response, SetAclRequest, SetDataRequest};
use crate::tree::{acl, Tree};
use crate::txn::{apply_with, recipe_op, TxnEntry, TxnOp};

const HEAD: &str = r#"
  (memory (export "memory") 1)
  (func (export "zkw_abi_version") (result i32) (i32.const 1))
  (func (export "zkw_alloc") (param i32) (result i32) (i32.const 1024))"#;

fn module(body: &str) -> Vec<u8> {
    wat::parse_str(format!("(module {HEAD} {body})")).unwrap()
}

fn runtime() -> Runtime {
    runtime_with_txn_fuel(crate::config::RECIPE_TXN_FUEL_DEFAULT)
}

fn runtime_with_txn_fuel(txn_fuel_max: u64) -> Runtime {
    Runtime::new(None, recipe_op, txn_fuel_max).unwrap()
}

const SPIN: &str =
    r#"(func (export "zkw_on_event") (param i32 i32) (result i32) (loop (br 0)) (i32.const 0))"#;
const CALL_OK: &str = r#"(func (export "zkw_on_call") (param i32 i32) (result i32) (i32.const 0))"#;
const VALIDATE_OK: &str =
    r#"(func (export "zkw_validate") (param i32 i32) (result i32) (i32.const 0))"#;

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
        call_perms: super::manifest::CALL_PERMS_DEFAULT,
    };
    install_manifest(tree, recipes, zxid, name, &manifest, bytes)
}

/// [`install`] with a manifest of one's own.
fn install_manifest(
    tree: &mut Tree,
    recipes: &mut Runtime,
    zxid: &mut i64,
    name: &str,
    manifest: &Manifest,
    bytes: &[u8],
) -> Result<Response, crate::proto::ErrorCode> {
    for op in [create(RECIPES_PATH, b""), create(&manifest.path, b"")] {
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

/// Applies `op` as `auth` with the next zxid.
fn step(
    tree: &mut Tree,
    recipes: &mut Runtime,
    zxid: &mut i64,
    auth: Vec<Id>,
    op: TxnOp,
) -> Result<Response, ErrorCode> {
    *zxid += 1;
    apply_with(tree, &entry(*zxid, auth, op), Some(recipes)).reply
}

/// The error of a multi's failing sub-op (Ok for a multi that succeeded).
fn multi_error(reply: &Result<Response, ErrorCode>) -> i32 {
    match reply {
        Ok(Response::Multi(results)) => results
            .iter()
            .find_map(|result| match result {
                MultiResult::Error(code) if *code != 0 => Some(*code),
                _ => None,
            })
            .unwrap_or(0),
        other => panic!("not a multi reply: {other:?}"),
    }
}

#[test]
fn recipes_bind_no_root_no_system_path_and_no_other_recipes_path() {
    let spin = module(SPIN);
    let (mut tree, mut recipes, mut zxid) = (Tree::new(), runtime(), 0);
    let mut at = |tree: &mut Tree, name: &str, root: &str| {
        multi_error(&install(
            tree,
            &mut recipes,
            &mut zxid,
            name,
            root,
            &spin,
            1000,
        ))
    };
    let refused = ErrorCode::BadArguments.code();
    assert_eq!(at(&mut tree, "root", "/"), refused);
    assert_eq!(at(&mut tree, "sys", "/zookeeper"), refused);
    assert_eq!(at(&mut tree, "a", "/a/b"), 0);
    for (name, root) in [("same", "/a/b"), ("above", "/a"), ("below", "/a/b/c")] {
        assert_eq!(at(&mut tree, name, root), refused, "{root}");
    }
    assert_eq!(at(&mut tree, "beside", "/a/c"), 0);
    let names: Vec<String> = tree.get_children(RECIPES_PATH, &admin()).unwrap().0;
    assert_eq!(names, ["a", "beside"]);
}

#[test]
fn only_the_recipe_admin_changes_recipe_nodes_and_nobody_writes_the_log() {
    let (mut tree, mut recipes, mut zxid) = (Tree::new(), runtime(), 0);
    install(
        &mut tree,
        &mut recipes,
        &mut zxid,
        "echo",
        "/e",
        &module(SPIN),
        1_000,
    )
    .unwrap();
    // A failed run writes the log node.
    step(
        &mut tree,
        &mut recipes,
        &mut zxid,
        vec![],
        create("/e/x", b""),
    )
    .unwrap();
    let log = format!("{RECIPES_PATH}/echo/log");
    let set = |path: &str| {
        TxnOp::SetData(SetDataRequest {
            path: path.into(),
            data: Some(b"forged".to_vec()),
            version: -1,
        })
    };
    let set_acl = |path: &str| {
        TxnOp::SetAcl(SetAclRequest {
            path: path.into(),
            acl: Acl::open_unsafe(),
            version: -1,
        })
    };
    let delete = |path: &str| {
        TxnOp::Delete(DeleteRequest {
            path: path.into(),
            version: -1,
        })
    };
    let manifest = format!("{RECIPES_PATH}/echo");
    let chunk = format!("{RECIPES_PATH}/echo/module-0000");
    let recipe_admin = vec![Id::new(acl::RECIPE_ADMIN_SCHEME, "")];
    let stranger = vec![Id::new("digest", "mallory:x")];
    for op in [
        set(&manifest),
        set(&chunk),
        set(&log),
        set_acl(&manifest),
        set_acl(&log),
        set_acl(RECIPES_PATH),
        delete(&log),
        delete(&chunk),
        create(&format!("{log}/child"), b""),
        create(&format!("{RECIPES_PATH}/echo/other"), b""),
    ] {
        let reply = step(
            &mut tree,
            &mut recipes,
            &mut zxid,
            stranger.clone(),
            op.clone(),
        );
        assert_eq!(reply, Err(ErrorCode::NoAuth), "{op:?}");
    }
    // The recipe admin may, even where the nodes' ACLs would not let it.
    let locked = TxnOp::SetAcl(SetAclRequest {
        path: log.clone(),
        acl: vec![Acl {
            perms: perms::READ,
            id: Id::new("world", "anyone"),
        }],
        version: -1,
    });
    step(&mut tree, &mut recipes, &mut zxid, admin(), locked).unwrap();
    step(
        &mut tree,
        &mut recipes,
        &mut zxid,
        recipe_admin.clone(),
        set(&log),
    )
    .unwrap();
    step(
        &mut tree,
        &mut recipes,
        &mut zxid,
        recipe_admin,
        delete(&log),
    )
    .unwrap();
}

#[test]
fn a_write_or_call_the_caller_may_not_make_runs_nothing() {
    let (mut tree, mut recipes, mut zxid) = (Tree::new(), runtime(), 0);
    let validator = module(VALIDATE_OK);
    install(
        &mut tree,
        &mut recipes,
        &mut zxid,
        "v",
        "/v",
        &validator,
        100_000,
    )
    .unwrap();
    let mut manifest = Manifest::parse(b"path=/c\nsize=1\nsha256=00").unwrap();
    let caller = module(CALL_OK);
    manifest.size = caller.len() as u64;
    manifest.sha256 = sha256_hex(&caller);
    manifest.call_perms = perms::CREATE | perms::WRITE;
    install_manifest(&mut tree, &mut recipes, &mut zxid, "c", &manifest, &caller).unwrap();
    let anyone = |perms: i32| {
        vec![Acl {
            perms,
            id: Id::new("world", "anyone"),
        }]
    };
    let mut locked = request("/v/locked", b"");
    locked.acl = anyone(perms::READ);
    let ops = [
        TxnOp::Create {
            op: op::CREATE,
            request: locked,
        },
        create("/v/locked/kid", b""),
        // Anyone may create call nodes (and so call with the default CREATE), not WRITE.
        TxnOp::SetAcl(SetAclRequest {
            path: format!("{RECIPES_PATH}/c"),
            acl: anyone(perms::READ | perms::CREATE | perms::DELETE),
            version: -1,
        }),
    ];
    for op in ops {
        step(&mut tree, &mut recipes, &mut zxid, admin(), op).unwrap();
    }
    let runs = |recipes: &Runtime| recipes.list().iter().map(|r| r.stats.runs).sum::<u64>();
    let before = runs(&recipes);
    for op in [
        create("/v/locked/x", b""),
        TxnOp::SetData(SetDataRequest {
            path: "/v/locked".into(),
            data: None,
            version: -1,
        }),
        TxnOp::Delete(DeleteRequest {
            path: "/v/locked/kid".into(),
            version: -1,
        }),
        create(&format!("{RECIPES_PATH}/c/call-"), b""),
    ] {
        let reply = step(&mut tree, &mut recipes, &mut zxid, vec![], op.clone());
        assert_eq!(reply, Err(ErrorCode::NoAuth), "{op:?}");
    }
    assert_eq!(runs(&recipes), before, "no validator or call ran");
    // A write it may make asks the validator.
    step(
        &mut tree,
        &mut recipes,
        &mut zxid,
        vec![],
        create("/v/open", b""),
    )
    .unwrap();
    assert_eq!(runs(&recipes), before + 1);
}

#[test]
fn a_txn_whose_runs_pass_the_fuel_cap_is_refused_whole() {
    // Each create under /s runs spin twice (created, children changed) at 50,000 fuel each.
    let (mut tree, mut recipes, mut zxid) = (Tree::new(), runtime_with_txn_fuel(250_000), 0);
    install(
        &mut tree,
        &mut recipes,
        &mut zxid,
        "spin",
        "/s",
        &module(SPIN),
        50_000,
    )
    .unwrap();
    step(
        &mut tree,
        &mut recipes,
        &mut zxid,
        vec![],
        create("/s/one", b""),
    )
    .unwrap();
    let ops = (0..3)
        .map(|n| MultiOp::Create {
            op: op::CREATE,
            request: request(&format!("/s/m{n}"), b""),
        })
        .collect();
    let reply = step(
        &mut tree,
        &mut recipes,
        &mut zxid,
        vec![],
        TxnOp::Multi(ops),
    );
    assert_eq!(multi_error(&reply), ErrorCode::QuotaExceeded.code());
    assert_eq!(tree.get_children("/s", &admin()).unwrap().0, ["one"]);
    let log = tree
        .get_data("/zookeeper/recipes/spin/log", &admin())
        .unwrap()
        .0
        .unwrap();
    assert!(String::from_utf8(log)
        .unwrap()
        .contains("zkw.recipe.txnFuelMax"));
    // The budget is per txn: the next one runs in full again.
    step(
        &mut tree,
        &mut recipes,
        &mut zxid,
        vec![],
        create("/s/two", b""),
    )
    .unwrap();
    assert!(tree.stat("/s/two").is_some());
}

#[test]
fn a_module_is_compiled_ahead_of_the_apply_that_installs_it() {
    let cache = tempfile::tempdir().unwrap();
    let mut recipes = Runtime::new(
        Some(cache.path().to_path_buf()),
        recipe_op,
        crate::config::RECIPE_TXN_FUEL_DEFAULT,
    )
    .unwrap();
    let bytes = module(CALL_OK);
    let manifest = Manifest {
        path: "/app".into(),
        size: bytes.len() as u64,
        sha256: sha256_hex(&bytes),
        fuel: 1000,
        memory_bytes: 1 << 20,
        timer_ms: 0,
        call_perms: super::manifest::CALL_PERMS_DEFAULT,
    };
    let manifest_path = format!("{RECIPES_PATH}/c");
    let chunk_path = format!("{RECIPES_PATH}/c/module-0000");
    let manifest_text = manifest.format();
    let mut tree = Tree::new();
    // The manifest alone (a large install's first write) completes nothing.
    let manifest_only = [(manifest_path.as_str(), manifest_text.as_bytes())];
    assert!(recipes
        .modules_completed_by(&tree, &manifest_only)
        .is_empty());
    // The manifest and its one chunk complete the module, in the batch or half in the tree.
    let both = [
        (manifest_path.as_str(), manifest_text.as_bytes()),
        (chunk_path.as_str(), &bytes[..]),
    ];
    assert_eq!(
        recipes.modules_completed_by(&tree, &both),
        vec![bytes.clone()]
    );
    // A chunk that does not match the manifest's hash completes nothing.
    let wrong = [
        (manifest_path.as_str(), manifest_text.as_bytes()),
        (chunk_path.as_str(), &b"\0asm-but-not-this"[..]),
    ];
    assert!(recipes.modules_completed_by(&tree, &wrong).is_empty());
    let compiled = || std::fs::read_dir(cache.path()).unwrap().count();
    assert_eq!(compiled(), 0);
    let compiler = recipes.compiler().unwrap();
    compiler.compile_ahead(&bytes);
    assert_eq!(compiled(), 1);
    compiler.compile_ahead(&bytes);
    assert_eq!(compiled(), 1, "a compiled module is not compiled again");
    // The install loads the compiled copy; once installed, nothing is left to compile.
    let mut zxid = 0;
    let installed = install_manifest(&mut tree, &mut recipes, &mut zxid, "c", &manifest, &bytes);
    assert!(matches!(installed, Ok(Response::Multi(_))), "{installed:?}");
    assert_eq!(compiled(), 1);
    assert!(recipes.modules_completed_by(&tree, &both).is_empty());
}
