//! ACL rules: the permission check every operation makes, the fix-up a create or setACL makes
//! to the ACL it is given (the `auth` scheme expands to the caller's ids, ids are validated,
//! duplicates dropped), the digest id form, and the digest masking of getACL.
//!
//! Identities arrive as `auth: &[Id]`, the caller's authenticated ids. `world:anyone` is
//! implicit for everyone. Any id of scheme `super` bypasses every check (ZooKeeper's super
//! digest user gets exactly such an id). Behaviour checked against ZooKeeper 3.8.0:
//! unknown schemes (also `sasl`, `x509`, `super` without a provider) are InvalidACL; digest ids
//! must split into exactly two parts on ':' (Java `split` drops a trailing empty part, so
//! "user:" is invalid and ":hash" is valid); perms are stored as given (0 and 99 included).

use std::collections::BTreeSet;
use std::net::Ipv6Addr;

use base64::Engine as _;
use sha1::{Digest as _, Sha1};

use super::TreeError;
use crate::proto::{perms, Acl, Id};

/// The scheme whose ids bypass all ACL checks.
pub const SUPER_SCHEME: &str = "super";

/// The scheme of the id a connection gets when it authenticates as the recipe admin
/// (`zkw.recipe.adminIdentity`): it may install, change and remove recipes, nothing more. No
/// ACL entry can name it (it is not a scheme `fixup` accepts) and `auth` never expands to it.
pub const RECIPE_ADMIN_SCHEME: &str = "zkw-recipe-admin";

/// `user:BASE64(SHA1("user:password"))` for an auth string `user:password`, the id the digest
/// scheme stores and matches. The user is everything before the first ':'.
pub fn digest_id(user_password: &str) -> String {
    let user = user_password.split(':').next().unwrap_or("");
    let hash = Sha1::digest(user_password.as_bytes());
    let encoded = base64::engine::general_purpose::STANDARD.encode(hash);
    format!("{user}:{encoded}")
}

/// Allows the operation when `acl` grants one of the bits in `perm` to one of the caller's ids.
/// An empty ACL allows everything.
pub fn check(acl: &[Acl], auth: &[Id], perm: i32) -> Result<(), TreeError> {
    if acl.is_empty() || is_super(auth) {
        return Ok(());
    }
    let granted = acl
        .iter()
        .filter(|entry| entry.perms & perm != 0)
        .any(|entry| {
            (entry.id.scheme == "world" && entry.id.id == "anyone")
                || auth
                    .iter()
                    .filter(|id| id.scheme == entry.id.scheme)
                    .any(|id| id_matches(&entry.id.scheme, &id.id, &entry.id.id))
        });
    if granted {
        Ok(())
    } else {
        Err(TreeError::NoAuth)
    }
}

/// The identity recipes act with: a super id, so ACLs do not stop them (their own path limit
/// does).
pub fn server_id() -> Id {
    Id::new(SUPER_SCHEME, "zkw-recipe")
}

/// True when the caller holds a super id.
pub fn is_super(auth: &[Id]) -> bool {
    auth.iter().any(|id| id.scheme == SUPER_SCHEME)
}

/// True when the caller may change recipes: super, or the configured recipe admin.
pub fn is_recipe_admin(auth: &[Id]) -> bool {
    is_super(auth) || auth.iter().any(|id| id.scheme == RECIPE_ADMIN_SCHEME)
}

fn id_matches(scheme: &str, caller_id: &str, acl_id: &str) -> bool {
    if scheme == "ip" {
        return ip_matches(caller_id, acl_id);
    }
    caller_id == acl_id
}

/// Most entries one ACL may hold, counted after duplicates are dropped and again after `auth`
/// expands. ZooKeeper has no such cap: only jute.maxbuffer bounds a list (some 87,000 entries
/// of 12 bytes in the default 1 MB), and every list is stored, snapshotted, checked on each
/// access and sent back by getACL. Real ACLs hold a handful of entries; 1024 is far beyond
/// any we know of and keeps the worst stored list near 1 MiB (ids of `auth` expansion are at
/// most `AUTH_IDENTITY_BYTES_MAX`). A longer list is InvalidACL, ZooKeeper's code for a list
/// it will not take.
pub const ACL_ENTRIES_MAX: usize = 1024;

/// The distinct entries of `acl` in their first order (ZooKeeper's `removeDuplicates`, whose
/// list scan is quadratic: a 1 MB list of 87,000 entries took seconds; this is O(n log n)).
pub fn unique(acl: &[Acl]) -> Vec<&Acl> {
    let mut seen = BTreeSet::new();
    acl.iter().filter(|entry| seen.insert(*entry)).collect()
}

/// The distinct entries of `acl`, refused past `ACL_ENTRIES_MAX`: what the server checks before
/// proposing a create or setACL, so an oversized list never reaches the log.
pub fn bounded_unique(acl: &[Acl]) -> Result<Vec<Acl>, TreeError> {
    let unique = unique(acl);
    if unique.len() > ACL_ENTRIES_MAX {
        return Err(TreeError::InvalidAcl);
    }
    Ok(unique.into_iter().cloned().collect())
}

/// Validates and expands the ACL of a create or setACL, in ZooKeeper's order: duplicates
/// dropped (first kept), empty -> InvalidACL, `world:anyone` kept, `auth` replaced by the
/// caller's authenticated ids (ip, world and super ids are not "authenticated" ids), other
/// schemes kept when their id is well formed. More than `ACL_ENTRIES_MAX` entries, before or
/// after expansion, is InvalidACL too.
pub fn fixup(acl: &[Acl], auth: &[Id]) -> Result<Vec<Acl>, TreeError> {
    let unique = unique(acl);
    if unique.is_empty() || unique.len() > ACL_ENTRIES_MAX {
        return Err(TreeError::InvalidAcl);
    }
    let mut fixed = Vec::with_capacity(unique.len());
    for entry in unique {
        let id = &entry.id;
        if id.scheme == "world" && id.id == "anyone" {
            fixed.push(entry.clone());
        } else if id.scheme == "auth" {
            let mut expanded = false;
            for caller in auth
                .iter()
                .filter(|caller| is_authenticated_scheme(&caller.scheme))
            {
                expanded = true;
                fixed.push(Acl {
                    perms: entry.perms,
                    id: caller.clone(),
                });
            }
            if !expanded {
                return Err(TreeError::InvalidAcl);
            }
        } else if is_valid_id(&id.scheme, &id.id) {
            fixed.push(entry.clone());
        } else {
            return Err(TreeError::InvalidAcl);
        }
    }
    if fixed.len() > ACL_ENTRIES_MAX {
        return Err(TreeError::InvalidAcl);
    }
    Ok(fixed)
}

/// Schemes whose ids the `auth` pseudo-scheme expands to (ZooKeeper's `isAuthenticated()`).
fn is_authenticated_scheme(scheme: &str) -> bool {
    !matches!(scheme, "world" | "ip" | SUPER_SCHEME | RECIPE_ADMIN_SCHEME)
}

fn is_valid_id(scheme: &str, id: &str) -> bool {
    match scheme {
        "digest" => is_valid_digest_id(id),
        "ip" => parse_ip_acl(id).is_some(),
        _ => false,
    }
}

/// Java `id.split(":").length == 2`: split drops trailing empty parts.
fn is_valid_digest_id(id: &str) -> bool {
    let mut parts: Vec<&str> = id.split(':').collect();
    while parts.last().is_some_and(|part| part.is_empty()) {
        parts.pop();
    }
    parts.len() == 2
}

/// getACL without ADMIN: digest ids are shown as `user:x` (ZooKeeper 3.8.0 does this too).
pub fn mask_digests(acl: &[Acl]) -> Vec<Acl> {
    acl.iter()
        .map(|entry| {
            if entry.id.scheme != "digest" {
                return entry.clone();
            }
            let user = entry.id.id.split(':').next().unwrap_or("");
            Acl {
                perms: entry.perms,
                id: Id::new("digest", &format!("{user}:x")),
            }
        })
        .collect()
}

/// Whether the caller may read the ACL and whether it sees it unmasked.
pub fn get_acl_view(acl: &[Acl], auth: &[Id]) -> Result<bool, TreeError> {
    check(acl, auth, perms::READ | perms::ADMIN)?;
    Ok(check(acl, auth, perms::ADMIN).is_ok())
}

/// An address as bytes (4 for IPv4, 16 for IPv6), as ZooKeeper's `addr2Bytes`. IPv4 takes
/// four decimal parts 0..=255 (leading zeros allowed, as Java's parseInt does).
fn parse_address(text: &str) -> Option<Vec<u8>> {
    let parts: Vec<&str> = text.split('.').collect();
    if parts.len() == 4 {
        let mut bytes = Vec::with_capacity(4);
        for part in parts {
            let digits = part.strip_prefix('+').unwrap_or(part);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let value: u32 = digits.parse().ok()?;
            bytes.push(u8::try_from(value).ok()?);
        }
        return Some(bytes);
    }
    text.parse::<Ipv6Addr>()
        .ok()
        .map(|addr| addr.octets().to_vec())
}

/// `address` or `address/bits`, bits within the address width.
fn parse_ip_acl(text: &str) -> Option<(Vec<u8>, usize)> {
    let (address, bits) = match text.split_once('/') {
        Some((address, bits)) => (address, Some(bits)),
        None => (text, None),
    };
    let bytes = parse_address(address)?;
    let width = bytes.len() * 8;
    let bits = match bits {
        Some(bits) => {
            let value: i64 = bits.parse().ok()?;
            usize::try_from(value)
                .ok()
                .filter(|value| *value <= width)?
        }
        None => width,
    };
    Some((bytes, bits))
}

fn ip_matches(caller: &str, acl_id: &str) -> bool {
    let (Some((prefix, bits)), Some(address)) = (parse_ip_acl(acl_id), parse_address(caller))
    else {
        return false;
    };
    if prefix.len() != address.len() {
        return false;
    }
    (0..bits).all(|bit| {
        let mask = 0x80u8 >> (bit % 8);
        prefix[bit / 8] & mask == address[bit / 8] & mask
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn acl(perms: i32, scheme: &str, id: &str) -> Acl {
        Acl {
            perms,
            id: Id::new(scheme, id),
        }
    }

    #[test]
    fn digest_id_matches_zookeeper() {
        // Value printed by ZooKeeper 3.8 for `bob:pw` (DigestAuthenticationProvider).
        assert_eq!(digest_id("bob:pw"), "bob:ikIaKsbtGweaHnb/jKn7OHqbunM=");
    }

    #[test]
    fn check_rules() {
        let bob = Id::new("digest", &digest_id("bob:pw"));
        let node = vec![acl(perms::READ, "digest", &bob.id)];
        assert_eq!(check(&node, &[], perms::READ), Err(TreeError::NoAuth));
        assert_eq!(
            check(&node, std::slice::from_ref(&bob), perms::READ),
            Ok(())
        );
        assert_eq!(
            check(&node, std::slice::from_ref(&bob), perms::WRITE),
            Err(TreeError::NoAuth)
        );
        assert_eq!(check(&[], &[], perms::ALL), Ok(()));
        assert_eq!(
            check(&node, &[Id::new("super", "super")], perms::ADMIN),
            Ok(())
        );
        assert_eq!(check(&Acl::read_unsafe(), &[], perms::READ), Ok(()));
        assert_eq!(
            check(&Acl::read_unsafe(), &[], perms::WRITE),
            Err(TreeError::NoAuth)
        );
        let zero = vec![acl(0, "world", "anyone")];
        assert_eq!(check(&zero, &[], perms::READ), Err(TreeError::NoAuth));
    }

    #[test]
    fn ip_prefix_match() {
        let node = vec![acl(perms::ALL, "ip", "10.1.0.0/16")];
        assert_eq!(
            check(&node, &[Id::new("ip", "10.1.2.3")], perms::READ),
            Ok(())
        );
        assert!(check(&node, &[Id::new("ip", "10.2.2.3")], perms::READ).is_err());
        let exact = vec![acl(perms::ALL, "ip", "127.0.0.1")];
        assert_eq!(
            check(&exact, &[Id::new("ip", "127.0.0.1")], perms::READ),
            Ok(())
        );
        assert!(check(&exact, &[Id::new("ip", "::1")], perms::READ).is_err());
        let v6 = vec![acl(perms::ALL, "ip", "::1")];
        assert_eq!(
            check(&v6, &[Id::new("ip", "0:0:0:0:0:0:0:1")], perms::READ),
            Ok(())
        );
    }

    #[test]
    fn fixup_validates_like_zookeeper_3_8() {
        let invalid = [
            vec![],
            vec![acl(31, "sasl", "foo")],
            vec![acl(31, "x509", "foo")],
            vec![acl(31, "super", "foo")],
            vec![acl(31, "world", "foo")],
            vec![acl(31, "digest", "foo")],
            vec![acl(31, "digest", "u:")],
            vec![acl(31, "digest", "a:b:c")],
            vec![acl(31, "auth", "")],
            vec![acl(31, "ip", "1.2.3")],
            vec![acl(31, "ip", "10.0.0.0/33")],
            vec![acl(31, "ip", "256.0.0.1")],
        ];
        for list in invalid {
            assert_eq!(
                fixup(&list, &[Id::new("ip", "127.0.0.1")]),
                Err(TreeError::InvalidAcl),
                "{list:?}"
            );
        }
        let valid = [
            vec![acl(31, "digest", ":h")],
            vec![acl(31, "ip", "010.0.0.1/8")],
            vec![acl(31, "ip", "10.0.0.0/8")],
            vec![acl(31, "ip", "fe80::/64")],
            vec![acl(0, "world", "anyone")],
            vec![acl(99, "world", "anyone")],
        ];
        for list in valid {
            assert_eq!(fixup(&list, &[]), Ok(list.clone()));
        }
    }

    #[test]
    fn fixup_expands_auth_and_drops_duplicates() {
        let bob = Id::new("digest", &digest_id("bob:pw"));
        let auth = vec![
            Id::new("ip", "127.0.0.1"),
            bob.clone(),
            Id::new("super", "super"),
        ];
        let given = vec![
            acl(31, "auth", "whatever"),
            acl(1, "world", "anyone"),
            acl(1, "world", "anyone"),
        ];
        let fixed = fixup(&given, &auth).unwrap();
        assert_eq!(
            fixed,
            vec![Acl { perms: 31, id: bob }, acl(1, "world", "anyone")]
        );
    }

    #[test]
    fn duplicates_go_in_first_order_and_long_lists_are_refused() {
        let a = acl(31, "world", "anyone");
        let b = acl(1, "ip", "10.0.0.1");
        let c = acl(31, "ip", "10.0.0.1");
        let given = [b.clone(), a.clone(), b.clone(), c.clone(), a.clone()];
        assert_eq!(unique(&given), vec![&b, &a, &c]);
        // The 1 MB setACL: tens of thousands of copies collapse at once.
        let copies = vec![a.clone(); 87_000];
        assert_eq!(bounded_unique(&copies), Ok(vec![a.clone()]));
        assert_eq!(fixup(&copies, &[]), Ok(vec![a]));
        let distinct = |count: usize| -> Vec<Acl> {
            (0..count)
                .map(|n| {
                    acl(
                        1,
                        "ip",
                        &format!("10.{}.{}.{}", n >> 16, (n >> 8) & 255, n & 255),
                    )
                })
                .collect()
        };
        assert_eq!(
            bounded_unique(&distinct(ACL_ENTRIES_MAX)).map(|l| l.len()),
            Ok(1024)
        );
        assert_eq!(
            fixup(&distinct(ACL_ENTRIES_MAX), &[]).map(|l| l.len()),
            Ok(1024)
        );
        let long = distinct(ACL_ENTRIES_MAX + 1);
        assert_eq!(bounded_unique(&long), Err(TreeError::InvalidAcl));
        assert_eq!(fixup(&long, &[]), Err(TreeError::InvalidAcl));
        // `auth` expansion counts too: 600 distinct `auth` entries times two identities.
        let auth = vec![Id::new("digest", "u:h"), Id::new("digest", "v:h")];
        let expanding: Vec<Acl> = (0..600).map(|n| acl(n, "auth", "")).collect();
        assert_eq!(fixup(&expanding, &auth), Err(TreeError::InvalidAcl));
    }

    #[test]
    fn get_acl_view_and_mask() {
        let bob = Id::new("digest", &digest_id("bob:pw"));
        let read_only = vec![acl(perms::READ, "digest", &bob.id)];
        assert_eq!(get_acl_view(&read_only, &[]), Err(TreeError::NoAuth));
        assert_eq!(
            get_acl_view(&read_only, std::slice::from_ref(&bob)),
            Ok(false)
        );
        assert_eq!(
            mask_digests(&read_only),
            vec![acl(perms::READ, "digest", "bob:x")]
        );
        let admin_only = vec![acl(perms::ADMIN, "digest", &bob.id)];
        assert_eq!(
            get_acl_view(&admin_only, std::slice::from_ref(&bob)),
            Ok(true)
        );
        let write_only = vec![acl(perms::WRITE, "world", "anyone")];
        assert_eq!(get_acl_view(&write_only, &[]), Err(TreeError::NoAuth));
    }
}
