//! A recipe's manifest: the data of `/zookeeper/recipes/<name>`, one `key=value` per line, so a
//! classic client can write and read it (`docs/recipes.md`, "The znode protocol").

use super::WasmError;
use crate::proto::perms;
use crate::tree::ZOOKEEPER_PATH;

/// Fuel per run when the manifest names none (about 10 ms of plain wasm on this machine).
pub const FUEL_DEFAULT: u64 = 10_000_000;
/// Shortest timer period a recipe may ask for, in milliseconds.
pub const TIMER_MS_MIN: u64 = 100;
/// Linear memory per run when the manifest names none, in bytes.
pub const MEMORY_BYTES_DEFAULT: u64 = 16 * 1024 * 1024;
/// What a caller needs on the recipe's node to call it when the manifest names nothing: the
/// CREATE a call node needs anyway (ZooKeeper's rule for creating a child).
pub const CALL_PERMS_DEFAULT: i32 = perms::CREATE;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The bound path: the recipe sees events at and under it and may write only there.
    pub path: String,
    /// The module's size in bytes (the sum of its chunks).
    pub size: u64,
    /// Lowercase hex SHA-256 of the module.
    pub sha256: String,
    pub fuel: u64,
    pub memory_bytes: u64,
    /// Period of its Timer events in milliseconds (0: none).
    pub timer_ms: u64,
    /// Permission bits a caller must hold, each of them, on the recipe's node to call it
    /// (`call_perms=` in zkCli's letters, e.g. `cw`).
    pub call_perms: i32,
}

impl Manifest {
    pub fn parse(data: &[u8]) -> Result<Manifest, WasmError> {
        let text = std::str::from_utf8(data).map_err(|_| bad("the manifest is not UTF-8 text"))?;
        let (mut path, mut size, mut sha256) = (None, None, None);
        let (mut fuel, mut memory_bytes, mut timer_ms) = (FUEL_DEFAULT, MEMORY_BYTES_DEFAULT, 0);
        let mut call_perms = CALL_PERMS_DEFAULT;
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| bad(format!("manifest line {}: expected key=value", index + 1)))?;
            let (key, value) = (key.trim(), value.trim());
            let number = || {
                value
                    .parse::<u64>()
                    .map_err(|_| bad(format!("manifest line {}: {key}: not a number", index + 1)))
            };
            match key {
                "path" => path = Some(value.to_owned()),
                "size" => size = Some(number()?),
                "sha256" => sha256 = Some(value.to_ascii_lowercase()),
                "fuel" => fuel = number()?,
                "memory" => memory_bytes = number()?,
                "timer_ms" => timer_ms = number()?,
                "call_perms" => {
                    call_perms = perm_bits(value).ok_or_else(|| {
                        bad(format!(
                            "manifest line {}: call_perms: {value:?} is not one or more of cdrwa",
                            index + 1
                        ))
                    })?
                }
                other => {
                    return Err(bad(format!(
                        "manifest line {}: unknown key {other}",
                        index + 1
                    )))
                }
            }
        }
        let path = path.ok_or_else(|| bad("the manifest names no path"))?;
        check_bound_path(&path)?;
        if memory_bytes > super::engine::MEMORY_BYTES_LIMIT as u64 {
            return Err(bad(format!(
                "memory {memory_bytes}: above the server's limit of {} bytes",
                super::engine::MEMORY_BYTES_LIMIT
            )));
        }
        if timer_ms != 0 && timer_ms < TIMER_MS_MIN {
            return Err(bad(format!("timer_ms {timer_ms}: below {TIMER_MS_MIN}")));
        }
        Ok(Manifest {
            timer_ms,
            path,
            size: size.ok_or_else(|| bad("the manifest names no size"))?,
            sha256: sha256.ok_or_else(|| bad("the manifest names no sha256"))?,
            fuel,
            memory_bytes,
            call_perms,
        })
    }

    pub fn format(&self) -> String {
        format!(
            "path={}\nsize={}\nsha256={}\nfuel={}\nmemory={}\ntimer_ms={}\ncall_perms={}\n",
            self.path,
            self.size,
            self.sha256,
            self.fuel,
            self.memory_bytes,
            self.timer_ms,
            perm_letters(self.call_perms)
        )
    }

    /// True when the two recipes' paths overlap (equal, or one under the other): both would
    /// run for, and write, the same nodes.
    pub fn overlaps(&self, other: &Manifest) -> bool {
        super::run::is_under(&self.path, &other.path)
            || super::run::is_under(&other.path, &self.path)
    }

    /// Refuses a path that overlaps the path of the recipe `name` (`theirs`).
    pub fn check_apart(&self, name: &str, theirs: &Manifest) -> Result<(), WasmError> {
        if !self.overlaps(theirs) {
            return Ok(());
        }
        Err(bad(format!(
            "path {} overlaps recipe {name}'s path {} (recipes' paths may not be equal or nested)",
            self.path, theirs.path
        )))
    }
}

/// A path a recipe may bind: a valid node path, neither `/` nor `/zookeeper` (the ancestors of
/// the system tree), nor under `/zookeeper` (recipes would run on their own installs).
pub fn check_bound_path(path: &str) -> Result<(), WasmError> {
    crate::tree::validate_path(path, false)
        .map_err(|_| bad(format!("path {path}: not a valid node path")))?;
    if path == "/" {
        return Err(bad(
            "path /: a recipe cannot bind the root (it would run on every write)",
        ));
    }
    if super::run::is_under(ZOOKEEPER_PATH, path) {
        return Err(bad(format!(
            "path {path}: recipes cannot bind system paths ({ZOOKEEPER_PATH} and under)"
        )));
    }
    Ok(())
}

/// zkCli's permission letters to bits; None for an unknown letter or none at all.
pub fn perm_bits(letters: &str) -> Option<i32> {
    let mut bits = 0;
    for c in letters.chars() {
        let (_, bit) = perms::LETTERS.iter().find(|(letter, _)| *letter == c)?;
        bits |= bit;
    }
    (bits != 0).then_some(bits)
}

fn perm_letters(bits: i32) -> String {
    perms::LETTERS
        .iter()
        .filter(|(_, bit)| bits & bit != 0)
        .map(|(letter, _)| letter)
        .collect()
}

fn bad(reason: impl Into<String>) -> WasmError {
    WasmError::Refused(reason.into())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_defaults() {
        let manifest = Manifest::parse(b"path=/locks\nsize=10\nsha256=AB\n").unwrap();
        assert_eq!(manifest.fuel, FUEL_DEFAULT);
        assert_eq!(manifest.sha256, "ab");
        assert_eq!(
            Manifest::parse(manifest.format().as_bytes()).unwrap(),
            manifest
        );
    }

    #[test]
    fn names_the_bad_line() {
        let error = Manifest::parse(b"path=/x\nsize=ten\n").unwrap_err();
        assert_eq!(error.to_string(), "manifest line 2: size: not a number");
        let error = Manifest::parse(b"path=/zookeeper/x\nsize=1\nsha256=a").unwrap_err();
        assert!(error.to_string().contains("system paths"));
        let error = Manifest::parse(b"path=/x\nsize=1\nsha256=a\ncall_perms=cx").unwrap_err();
        assert!(error.to_string().contains("line 4: call_perms"), "{error}");
    }

    #[test]
    fn bound_paths_stay_off_the_root_and_the_system_tree() {
        for path in [
            "/",
            "/zookeeper",
            "/zookeeper/recipes/x",
            "//a",
            "/a/",
            "a",
            "/a/./b",
        ] {
            assert!(check_bound_path(path).is_err(), "{path}");
        }
        for path in ["/a", "/a/b", "/zookeeperx", "/zoo"] {
            check_bound_path(path).unwrap();
        }
    }

    #[test]
    fn overlap_is_equal_ancestor_or_descendant() {
        let at = |path: &str| Manifest {
            path: path.to_owned(),
            ..Manifest::parse(b"path=/x\nsize=1\nsha256=a").unwrap()
        };
        assert!(at("/a").overlaps(&at("/a")));
        assert!(at("/a").overlaps(&at("/a/b")));
        assert!(at("/a/b/c").overlaps(&at("/a")));
        assert!(!at("/a").overlaps(&at("/ab")));
        assert!(!at("/a/b").overlaps(&at("/a/c")));
    }

    #[test]
    fn call_perms_default_to_create_and_round_trip() {
        let manifest = Manifest::parse(b"path=/x\nsize=1\nsha256=a").unwrap();
        assert_eq!(manifest.call_perms, perms::CREATE);
        let manifest = Manifest::parse(b"path=/x\nsize=1\nsha256=a\ncall_perms=wc").unwrap();
        assert_eq!(manifest.call_perms, perms::CREATE | perms::WRITE);
        assert!(manifest.format().contains("call_perms=cw\n"));
    }
}
