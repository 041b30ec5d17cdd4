//! One file per write op: `check` (validation, in ZooKeeper's order, no mutation) and
//! `execute` (the mutation), plus the shared version rule.

pub(crate) mod check;
pub(crate) mod create;
pub(crate) mod delete;
pub(crate) mod multi;
pub(crate) mod reap;
pub(crate) mod session;
pub(crate) mod set_acl;
pub(crate) mod set_data;

use crate::tree::TreeError;

/// Version that means "do not check".
pub(crate) const VERSION_ANY: i32 = -1;

/// Checks `expected` against `current` and returns the next version. The increment skips -1
/// (it would read as "any version"): after i32::MIN + ... wraps to -1 it becomes 0
/// (ZOOKEEPER-4743).
pub(crate) fn check_and_increment(
    current: i32,
    expected: i32,
    path: &str,
) -> Result<i32, TreeError> {
    if expected != VERSION_ANY && expected != current {
        return Err(TreeError::BadVersion(path.to_owned()));
    }
    let next = current.wrapping_add(1);
    Ok(if next == VERSION_ANY { 0 } else { next })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn version_rule() {
        assert_eq!(check_and_increment(3, -1, "/a"), Ok(4));
        assert_eq!(check_and_increment(3, 3, "/a"), Ok(4));
        assert_eq!(
            check_and_increment(3, 2, "/a"),
            Err(TreeError::BadVersion("/a".into()))
        );
        assert_eq!(check_and_increment(i32::MAX, -1, "/a"), Ok(i32::MIN));
        assert_eq!(check_and_increment(-2, -1, "/a"), Ok(0));
    }
}
