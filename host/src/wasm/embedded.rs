//! The recipes built into this binary (`recipes/<name>/`, compiled to wasm by `build.rs`), so
//! `zkw recipe install lock` needs no file.

include!(concat!(env!("OUT_DIR"), "/embedded_recipes.rs"));

/// The module of the embedded recipe `name`.
pub fn module(name: &str) -> Option<&'static [u8]> {
    EMBEDDED
        .iter()
        .find(|(embedded, _, _)| *embedded == name)
        .map(|(_, bytes, _)| *bytes)
}

/// The fuel per run the embedded recipe `name` asks for by default, if it names one.
pub fn fuel(name: &str) -> Option<u64> {
    EMBEDDED
        .iter()
        .find(|(embedded, _, fuel)| *embedded == name && *fuel > 0)
        .map(|(_, _, fuel)| *fuel)
}

/// Names of the embedded recipes.
pub fn names() -> Vec<&'static str> {
    EMBEDDED.iter().map(|(name, _, _)| *name).collect()
}

/// Why this binary has no built-in recipes, when it was built without some.
pub fn missing() -> Option<String> {
    (!NOT_EMBEDDED.is_empty()).then(|| {
        format!(
            "this zkw was built without its built-in recipes ({}): {NOT_EMBEDDED_REASON}",
            NOT_EMBEDDED.join(", ")
        )
    })
}

/// Whether `name` is a recipe of the source tree this binary was built without.
pub fn is_missing(name: &str) -> bool {
    NOT_EMBEDDED.contains(&name)
}
