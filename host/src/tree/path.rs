//! Path rules for znodes, as ZooKeeper's `PathUtils.validatePath` states them: absolute, no
//! trailing slash (except the root), no empty segment, no `.` or `..` segment, no NUL and no
//! control, surrogate, private-use or specials characters. Also the parent/name split used
//! by every tree operation.

use super::TreeError;

/// Checks `path` as ZooKeeper does. A sequential create validates `path + "1"`, so its path
/// may end with "/" (the server appends the counter there).
pub fn validate_path(path: &str, sequential: bool) -> Result<(), TreeError> {
    if sequential {
        let mut full = String::with_capacity(path.len() + 1);
        full.push_str(path);
        full.push('1');
        return validate_full(&full);
    }
    validate_full(path)
}

fn validate_full(path: &str) -> Result<(), TreeError> {
    let bad = || TreeError::BadArguments(path.to_owned());
    if !path.starts_with('/') {
        return Err(bad());
    }
    if path == "/" {
        return Ok(());
    }
    if path.ends_with('/') {
        return Err(bad());
    }
    // Each segment after the leading "/" must be non-empty, not "." or "..", and hold no
    // forbidden character.
    for segment in path[1..].split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err(bad());
        }
        // Printable ASCII is always allowed: only other segments need the per-char check
        // (snapshot loading validates a million paths).
        let printable = segment.bytes().all(|byte| (0x20..0x7f).contains(&byte));
        if !printable && segment.chars().any(is_forbidden_char) {
            return Err(bad());
        }
    }
    Ok(())
}

/// The characters Java's validatePath refuses. Java works on UTF-16 units, so every
/// supplementary character (a surrogate pair there) is refused as well.
fn is_forbidden_char(c: char) -> bool {
    let code = c as u32;
    code == 0
        || (0x01..=0x1f).contains(&code)
        || (0x7f..=0x9f).contains(&code)
        || (0xd800..=0xf8ff).contains(&code)
        || code >= 0xfff0
}

/// The parent of an absolute, non-root path: "/a" -> "/", "/a/b" -> "/a". `None` when the
/// path holds no "/" at all (ZooKeeper's BadArguments case).
pub fn parent_of(path: &str) -> Option<&str> {
    let slash = path.rfind('/')?;
    if slash == 0 {
        Some("/")
    } else {
        Some(&path[..slash])
    }
}

/// The last segment of a path ("/a/b" -> "b").
pub fn name_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(slash) => &path[slash + 1..],
        None => path,
    }
}

/// The full path of child `name` under `parent`.
pub fn join(parent: &str, name: &str) -> String {
    let mut full = String::with_capacity(parent.len() + 1 + name.len());
    full.push_str(parent);
    if parent != "/" {
        full.push('/');
    }
    full.push_str(name);
    full
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_paths() {
        for path in [
            "/",
            "/a",
            "/a/b",
            "/a.b",
            "/..a",
            "/a/.b",
            "/zookeeper",
            "/a b",
            "/é",
        ] {
            assert_eq!(validate_path(path, false), Ok(()), "{path}");
        }
    }

    #[test]
    fn refuses_malformed_paths() {
        for path in [
            "",
            "a",
            "a/b",
            "/a/",
            "//",
            "/a//b",
            "/.",
            "/..",
            "/a/.",
            "/a/../b",
            "/a\0b",
            "/a\u{1}",
            "/a\u{7f}",
            "/a\u{9f}",
            "/a\u{e000}",
            "/a\u{fff0}",
            "/a\u{1f600}",
        ] {
            assert!(
                matches!(validate_path(path, false), Err(TreeError::BadArguments(_))),
                "{path:?}"
            );
        }
    }

    #[test]
    fn sequential_paths_may_end_with_a_slash() {
        assert_eq!(validate_path("/q/", true), Ok(()));
        assert_eq!(validate_path("/q/item-", true), Ok(()));
        assert!(validate_path("/q/", false).is_err());
        assert!(validate_path("/q//", true).is_err());
        // "/." + "1" is a normal name, as in ZooKeeper.
        assert_eq!(validate_path("/.", true), Ok(()));
    }

    #[test]
    fn parent_and_name() {
        assert_eq!(parent_of("/a"), Some("/"));
        assert_eq!(parent_of("/a/b"), Some("/a"));
        assert_eq!(parent_of("a"), None);
        assert_eq!(name_of("/a/b"), "b");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
    }
}
