//! The recipes built into this binary (`recipes/<name>/`, compiled to wasm by `build.rs`), so
//! `zkw recipe install lock` needs no file.

include!(concat!(env!("OUT_DIR"), "/embedded_recipes.rs"));

/// The module of the embedded recipe `name`.
pub fn module(name: &str) -> Option<&'static [u8]> {
    EMBEDDED
        .iter()
        .find(|(embedded, _)| *embedded == name)
        .map(|(_, bytes)| *bytes)
}

/// Names of the embedded recipes.
pub fn names() -> Vec<&'static str> {
    EMBEDDED.iter().map(|(name, _)| *name).collect()
}
