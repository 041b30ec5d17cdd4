//! A recipe's manifest: the data of `/zookeeper/recipes/<name>`, one `key=value` per line, so a
//! classic client can write and read it (`docs/recipes.md`, "The znode protocol").

use super::WasmError;

/// Fuel per run when the manifest names none (about 10 ms of plain wasm on this machine).
pub const FUEL_DEFAULT: u64 = 10_000_000;
/// Shortest timer period a recipe may ask for, in milliseconds.
pub const TIMER_MS_MIN: u64 = 100;
/// Linear memory per run when the manifest names none, in bytes.
pub const MEMORY_BYTES_DEFAULT: u64 = 16 * 1024 * 1024;

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
}

impl Manifest {
    pub fn parse(data: &[u8]) -> Result<Manifest, WasmError> {
        let text = std::str::from_utf8(data).map_err(|_| bad("the manifest is not UTF-8 text"))?;
        let (mut path, mut size, mut sha256) = (None, None, None);
        let (mut fuel, mut memory_bytes, mut timer_ms) = (FUEL_DEFAULT, MEMORY_BYTES_DEFAULT, 0);
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
                other => {
                    return Err(bad(format!(
                        "manifest line {}: unknown key {other}",
                        index + 1
                    )))
                }
            }
        }
        let path = path.ok_or_else(|| bad("the manifest names no path"))?;
        if !path.starts_with('/') || (path.len() > 1 && path.ends_with('/')) {
            return Err(bad(format!("path {path}: not an absolute node path")));
        }
        if path == "/zookeeper" || path.starts_with("/zookeeper/") {
            return Err(bad(format!(
                "path {path}: recipes cannot bind system paths"
            )));
        }
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
        })
    }

    pub fn format(&self) -> String {
        format!(
            "path={}\nsize={}\nsha256={}\nfuel={}\nmemory={}\ntimer_ms={}\n",
            self.path, self.size, self.sha256, self.fuel, self.memory_bytes, self.timer_ms
        )
    }
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
    }
}
