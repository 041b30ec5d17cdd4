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
    match path_fault(path) {
        Some(_) => Err(TreeError::BadArguments(path.to_owned())),
        None => Ok(()),
    }
}

/// How a path breaks the rules, as Java's `PathUtils.validatePath` words it (zkCli prints
/// these); `index` counts UTF-16 units, as Java's does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathFault {
    Empty,
    NotAbsolute,
    TrailingSlash,
    NullCharacter { index: usize },
    EmptyName { index: usize },
    Relative { index: usize },
    InvalidCharacter { index: usize },
}

impl std::fmt::Display for PathFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathFault::Empty => write!(f, "Path length must be > 0"),
            PathFault::NotAbsolute => write!(f, "Path must start with / character"),
            PathFault::TrailingSlash => write!(f, "Path must not end with / character"),
            PathFault::NullCharacter { index } => write!(f, "null character not allowed @{index}"),
            PathFault::EmptyName { index } => write!(f, "empty node name specified @{index}"),
            PathFault::Relative { index } => write!(f, "relative paths not allowed @{index}"),
            PathFault::InvalidCharacter { index } => write!(f, "invalid character @{index}"),
        }
    }
}

/// The first rule `path` breaks, checked in Java's order, or `None` for a valid path. One
/// pass over the UTF-16 units without allocating (snapshot loading checks a million paths).
pub fn path_fault(path: &str) -> Option<PathFault> {
    if path.is_empty() {
        return Some(PathFault::Empty);
    }
    if !path.starts_with('/') {
        return Some(PathFault::NotAbsolute);
    }
    if path == "/" {
        return None;
    }
    if path.ends_with('/') {
        return Some(PathFault::TrailingSlash);
    }
    const SLASH: u16 = b'/' as u16;
    const DOT: u16 = b'.' as u16;
    let mut units = path.encode_utf16().enumerate().peekable();
    let (mut before_last, mut last) = (0u16, SLASH);
    units.next(); // the leading "/"
    while let Some((index, unit)) = units.next() {
        let at_name_end = units.peek().is_none_or(|&(_, next)| next == SLASH);
        let fault = match unit {
            0 => Some(PathFault::NullCharacter { index }),
            SLASH if last == SLASH => Some(PathFault::EmptyName { index }),
            DOT if last == DOT && before_last == SLASH && at_name_end => {
                Some(PathFault::Relative { index })
            }
            DOT if last == SLASH && at_name_end => Some(PathFault::Relative { index }),
            _ if is_forbidden_unit(unit) => Some(PathFault::InvalidCharacter { index }),
            _ => None,
        };
        if fault.is_some() {
            return fault;
        }
        (before_last, last) = (last, unit);
    }
    None
}

/// The UTF-16 units Java's validatePath refuses (NUL is reported on its own, first). Every
/// supplementary character is a surrogate pair there, so it is refused as well.
fn is_forbidden_unit(unit: u16) -> bool {
    (0x01..=0x1f).contains(&unit)
        || (0x7f..=0x9f).contains(&unit)
        || (0xd800..=0xf8ff).contains(&unit)
        || unit >= 0xfff0
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
    fn faults_name_the_first_broken_rule_at_its_utf16_index() {
        assert_eq!(path_fault("/a/b"), None);
        assert_eq!(path_fault(""), Some(PathFault::Empty));
        assert_eq!(path_fault("/a//b"), Some(PathFault::EmptyName { index: 3 }));
        assert_eq!(path_fault("/a/.."), Some(PathFault::Relative { index: 4 }));
        assert_eq!(path_fault("/a/./b"), Some(PathFault::Relative { index: 3 }));
        // A supplementary character is two units in Java: refused at its first one.
        assert_eq!(
            path_fault("/\u{1F600}/\u{1}"),
            Some(PathFault::InvalidCharacter { index: 1 })
        );
        assert_eq!(
            path_fault("/ab\u{0}").map(|fault| fault.to_string()),
            Some("null character not allowed @3".to_owned())
        );
    }

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
