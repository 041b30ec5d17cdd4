//! Builds every recipe crate under `recipes/<name>/` (package `zkw-recipe-<name>`) for
//! `wasm32-unknown-unknown` and embeds the modules in the binary, so `zkw recipe install lock`
//! works by name. The nested cargo uses its own target directory (the outer build holds a lock
//! on ours) and none of the outer build's wrappers. Without the wasm32 target installed the
//! binary embeds no recipes and says so (`rustup target add wasm32-unknown-unknown`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The recipe build profile (workspace Cargo.toml: small, panic = abort).
const PROFILE: &str = "recipe";
const TARGET: &str = "wasm32-unknown-unknown";
/// Environment the outer cargo sets that must not leak into the nested build.
const OUTER_ENV: [&str; 8] = [
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "CLIPPY_ARGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_MAKEFLAGS",
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let workspace = manifest_dir.join("..");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    // `ZKW_TARGET=zookeeper` runs the black-box tests against Apache ZooKeeper: the tests of
    // what only zkw has are then ignored (`#[cfg_attr(zookeeper_target, ignore)]`), so the
    // count says what ran.
    println!("cargo::rustc-check-cfg=cfg(zookeeper_target)");
    println!("cargo:rerun-if-env-changed=ZKW_TARGET");
    if std::env::var("ZKW_TARGET").is_ok_and(|target| target == "zookeeper") {
        println!("cargo:rustc-cfg=zookeeper_target");
    }
    println!("cargo:rerun-if-changed=../recipes");
    println!("cargo:rerun-if-changed=../guest-sdk");
    let names = recipe_names(&workspace.join("recipes"));
    let (built, failure) = if names.is_empty() {
        (Vec::new(), String::new())
    } else {
        build(&workspace, &out_dir, &names)
    };
    let mut code = String::from(
        "/// Recipes built into this binary: (name, module bytes, fuel per run from the crate's\n/// `[package.metadata.zkw] fuel`, 0 when it names none).\npub const EMBEDDED: &[(&str, &[u8], u64)] = &[\n",
    );
    for (name, path) in &built {
        let fuel = metadata_fuel(&workspace.join("recipes").join(name).join("Cargo.toml"));
        let _ = writeln!(
            code,
            "    ({name:?}, include_bytes!({:?}), {fuel}),",
            path.display().to_string()
        );
    }
    code.push_str("];\n");
    let missing: Vec<&String> = names
        .iter()
        .filter(|name| !built.iter().any(|(built, _)| built == *name))
        .collect();
    let _ = writeln!(
        code,
        "/// Recipes of the source tree this binary was built without, and why.\npub const NOT_EMBEDDED: &[&str] = &{missing:?};\npub const NOT_EMBEDDED_REASON: &str = {failure:?};"
    );
    std::fs::write(out_dir.join("embedded_recipes.rs"), code).expect("OUT_DIR is writable");
}

/// The `fuel = N` line of a recipe crate's `[package.metadata.zkw]` table (0 if none): the
/// fuel a run of that recipe needs by default.
fn metadata_fuel(manifest: &Path) -> u64 {
    let text = std::fs::read_to_string(manifest).unwrap_or_default();
    let Some((_, table)) = text.split_once("[package.metadata.zkw]") else {
        return 0;
    };
    table
        .lines()
        .take_while(|line| !line.trim_start().starts_with('['))
        .filter_map(|line| line.split_once('='))
        .find(|(key, _)| key.trim() == "fuel")
        .and_then(|(_, value)| value.trim().replace('_', "").parse().ok())
        .unwrap_or(0)
}

/// Directories under `recipes/` holding a `zkw-recipe-<dir>` package.
fn recipe_names(recipes: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(recipes) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_str()?.to_owned();
            let manifest = std::fs::read_to_string(entry.path().join("Cargo.toml")).ok()?;
            manifest
                .contains(&format!("name = \"zkw-recipe-{name}\""))
                .then_some(name)
        })
        .collect();
    names.sort();
    names
}

/// Builds the recipes: the modules built, and why any are missing (empty if none is).
fn build(workspace: &Path, out_dir: &Path, names: &[String]) -> (Vec<(String, PathBuf)>, String) {
    let target_dir = out_dir.join("recipe-target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args(["build", "--quiet", "--target", TARGET, "--profile", PROFILE])
        .arg("--target-dir")
        .arg(&target_dir);
    for name in names {
        command.args(["-p", &format!("zkw-recipe-{name}")]);
    }
    for key in OUTER_ENV {
        command.env_remove(key);
    }
    let failure = match command.status() {
        Ok(status) if status.success() => None,
        Ok(_) if !target_installed() => {
            // Adding the target must rebuild zkw with its recipes: the build script runs again
            // once the target's library directory appears (a path that does not exist yet
            // counts as changed on every build until it does).
            if let Some(libdir) = target_libdir() {
                println!("cargo:rerun-if-changed={}", libdir.display());
            }
            Some(format!(
                "the {TARGET} target is not installed (rustup target add {TARGET}, then build zkw again)"
            ))
        }
        Ok(status) => Some(format!("building them for {TARGET} failed ({status})")),
        Err(error) => Some(format!("cannot run cargo to build them: {error}")),
    };
    if let Some(failure) = failure {
        println!("cargo:warning=this zkw embeds no recipes: {failure}");
        return (Vec::new(), failure);
    }
    let built = names
        .iter()
        .map(|name| {
            let file = format!("zkw_recipe_{}.wasm", name.replace('-', "_"));
            (
                name.clone(),
                target_dir.join(TARGET).join(PROFILE).join(file),
            )
        })
        .filter(|(_, path)| path.exists())
        .collect::<Vec<_>>();
    let failure = if built.len() == names.len() {
        String::new()
    } else {
        format!("the {TARGET} build produced no module for some of them")
    };
    (built, failure)
}

/// Whether rustc has the standard library of the wasm32 target (rustup installs it per target).
fn target_installed() -> bool {
    target_libdir().is_some_and(|libdir| libdir.is_dir())
}

/// Where rustc looks for the wasm32 target's standard library (whether or not it is there).
fn target_libdir() -> Option<PathBuf> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    Command::new(rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map(|libdir| PathBuf::from(libdir.trim()))
}
