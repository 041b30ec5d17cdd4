//! The identities a txn carries (what its session authenticated with addauth) and what the
//! leader accepts in a follower's forwarded batch. Pure: the caps are checked where an
//! identity joins a connection (`server::dispatch`) and again, with the op kinds, on every
//! forwarded entry (`consensus`), so a broken or impersonated peer cannot make the leader
//! propose what no client session of it could have asked for.

use crate::proto::Id;
use crate::tree::acl::{RECIPE_ADMIN_SCHEME, SUPER_SCHEME};

use super::{TxnEntry, TxnOp};

/// Most identities one connection may hold: `ip:<addr>`, `super` and the digest users it added.
/// ZooKeeper has no such bound; a real client adds one or two identities, so an addauth
/// beyond this is refused as a failed authentication (it would ride along in every txn).
pub const AUTH_IDENTITIES_MAX: usize = 16;
/// Largest single identity, in bytes of scheme plus id. A digest identity is
/// `user:base64(sha1)` (28 bytes of hash), an ip one an address: both far below this.
pub const AUTH_IDENTITY_BYTES_MAX: usize = 1024;
/// Largest sum of a connection's identities, in bytes: what every txn of it carries.
pub const AUTH_BYTES_MAX: usize = 8 * 1024;

const _: () = assert!(AUTH_IDENTITY_BYTES_MAX <= AUTH_BYTES_MAX);
// The identities must stay a small part of the largest proposal the log takes.
const _: () = assert!(AUTH_BYTES_MAX * 64 <= crate::consensus::PROPOSAL_BYTES_MAX);

/// The schemes a client session's identities can have: what addauth produces (`digest`, `ip`,
/// `super` beside the superDigest's digest, the recipe admin beside its digest). ZooKeeper's
/// followers forward their sessions' identities to the leader the same way (authInfo).
const SESSION_SCHEMES: [&str; 4] = ["digest", "ip", SUPER_SCHEME, RECIPE_ADMIN_SCHEME];

/// The digests that earn an addauth more than its digest identity, from this server's config.
#[derive(Debug, Clone, Copy, Default)]
pub struct Privileged<'a> {
    /// `DigestAuthenticationProvider.superDigest`'s `user:hash`.
    pub super_digest: Option<&'a str>,
    /// `zkw.recipe.adminIdentity`'s `user:hash`.
    pub recipe_admin_digest: Option<&'a str>,
}

/// Why an identity may not join a set of identities.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("identity of {bytes} bytes, above AUTH_IDENTITY_BYTES_MAX {AUTH_IDENTITY_BYTES_MAX}")]
    TooLarge { bytes: usize },
    #[error("already holds AUTH_IDENTITIES_MAX {AUTH_IDENTITIES_MAX} identities")]
    TooMany,
    #[error("identities would total {bytes} bytes, above AUTH_BYTES_MAX {AUTH_BYTES_MAX}")]
    TooManyBytes { bytes: usize },
}

/// Why the leader refuses an entry a follower forwarded (it is dropped, with a logged reason).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ForwardRefusal {
    #[error("session 0 is the servers' own: only a leader proposes for it")]
    ServerSession,
    #[error("{0} is proposed by the leader alone")]
    LeaderOp(&'static str),
    #[error("identity scheme {0:?} is not one a client session can hold")]
    Scheme(String),
    #[error("a {0} identity without the digest identity configured for it")]
    Unproven(&'static str),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("its txn does not decode: {0}")]
    Undecodable(#[from] super::codec::CodecError),
}

pub fn identity_bytes(id: &Id) -> usize {
    id.scheme.len() + id.id.len()
}

/// Whether `id` may join `held`; an identity already held costs nothing.
pub fn admit_identity(held: &[Id], id: &Id) -> Result<(), IdentityError> {
    if held.contains(id) {
        return Ok(());
    }
    let bytes = identity_bytes(id);
    let total = held.iter().map(identity_bytes).sum::<usize>() + bytes;
    if bytes > AUTH_IDENTITY_BYTES_MAX {
        Err(IdentityError::TooLarge { bytes })
    } else if held.len() >= AUTH_IDENTITIES_MAX {
        Err(IdentityError::TooMany)
    } else if total > AUTH_BYTES_MAX {
        Err(IdentityError::TooManyBytes { bytes: total })
    } else {
        Ok(())
    }
}

/// What the leader checks of each entry in a follower's forwarded batch: a client session's
/// write (never the servers' own session 0, never a reap, recipe timer or runtime check, which
/// the leader alone decides), with identities a session could hold: within the caps, of the
/// schemes addauth gives, and `super` (the recipe admin) only beside the digest of this
/// server's `superDigest` (`zkw.recipe.adminIdentity`), as addauth grants them.
pub fn admit_forwarded(entry: &TxnEntry, privileged: Privileged<'_>) -> Result<(), ForwardRefusal> {
    if entry.session_id == 0 {
        return Err(ForwardRefusal::ServerSession);
    }
    match &entry.op {
        TxnOp::CreateSession { .. }
        | TxnOp::CloseSession
        | TxnOp::Create { .. }
        | TxnOp::Delete(_)
        | TxnOp::SetData(_)
        | TxnOp::SetAcl(_)
        | TxnOp::Check(_)
        | TxnOp::Multi(_) => {}
        TxnOp::Reap { .. } => return Err(ForwardRefusal::LeaderOp("a reap")),
        TxnOp::RecipeTimer { .. } => return Err(ForwardRefusal::LeaderOp("a recipe timer")),
        TxnOp::RuntimeCheck { .. } => return Err(ForwardRefusal::LeaderOp("a runtime check")),
    }
    let mut held: Vec<Id> = Vec::with_capacity(entry.auth.len());
    for id in &entry.auth {
        if !SESSION_SCHEMES.contains(&id.scheme.as_str()) {
            return Err(ForwardRefusal::Scheme(id.scheme.clone()));
        }
        admit_identity(&held, id)?;
        if !held.contains(id) {
            held.push(id.clone());
        }
    }
    for (scheme, digest) in [
        (SUPER_SCHEME, privileged.super_digest),
        (RECIPE_ADMIN_SCHEME, privileged.recipe_admin_digest),
    ] {
        let claims = held.iter().any(|id| id.scheme == scheme);
        let proves = |id: &Id| id.scheme == "digest" && Some(id.id.as_str()) == digest;
        if claims && !held.iter().any(proves) {
            return Err(ForwardRefusal::Unproven(scheme));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{DeleteRequest, SetDataRequest};
    use crate::tree::acl::digest_id;

    #[test]
    fn identities_are_capped_in_size_count_and_total() {
        let mut ids = vec![Id::new("ip", "127.0.0.1")];
        let long = Id::new("digest", &"u".repeat(AUTH_IDENTITY_BYTES_MAX));
        assert!(
            matches!(
                admit_identity(&ids, &long),
                Err(IdentityError::TooLarge { .. })
            ),
            "one absurd identity"
        );
        for n in 1..AUTH_IDENTITIES_MAX {
            let id = Id::new("digest", &digest_id(&format!("user{n}:p")));
            assert_eq!(admit_identity(&ids, &id), Ok(()), "identity {n}");
            ids.push(id);
        }
        let one_more = Id::new("digest", &digest_id("last:p"));
        assert_eq!(
            admit_identity(&ids, &one_more),
            Err(IdentityError::TooMany),
            "one past the count"
        );
        assert_eq!(
            admit_identity(&ids, &ids[3].clone()),
            Ok(()),
            "an identity already held costs nothing"
        );
        let big = |n: usize| Id::new("digest", &format!("{n}{}", "x".repeat(1000)));
        let mut heavy = vec![Id::new("ip", "127.0.0.1")];
        while admit_identity(&heavy, &big(heavy.len())).is_ok() {
            heavy.push(big(heavy.len()));
        }
        assert!(matches!(
            admit_identity(&heavy, &big(heavy.len())),
            Err(IdentityError::TooManyBytes { .. })
        ));
        let total: usize = heavy.iter().map(identity_bytes).sum();
        assert!(total <= AUTH_BYTES_MAX && heavy.len() < AUTH_IDENTITIES_MAX);
    }

    fn entry(session_id: i64, auth: Vec<Id>, op: TxnOp) -> TxnEntry {
        TxnEntry {
            zxid: 0,
            time_ms: 0,
            session_id,
            auth,
            op,
        }
    }

    fn set_data() -> TxnOp {
        TxnOp::SetData(SetDataRequest {
            path: "/a".to_owned(),
            data: Some(b"x".to_vec()),
            version: -1,
        })
    }

    #[test]
    fn a_client_write_with_its_sessions_identities_is_admitted() {
        let ip = Id::new("ip", "10.0.0.1");
        let user = Id::new("digest", &digest_id("user:p"));
        let admitted = [
            entry(7, vec![], set_data()),
            entry(7, vec![ip.clone(), user.clone()], set_data()),
            entry(7, vec![ip.clone()], TxnOp::CloseSession),
            entry(
                7,
                vec![ip.clone()],
                TxnOp::Delete(DeleteRequest {
                    path: "/a".to_owned(),
                    version: -1,
                }),
            ),
            entry(
                7,
                vec![ip],
                TxnOp::CreateSession {
                    timeout_ms: 4000,
                    password: [1; 16],
                },
            ),
        ];
        for entry in admitted {
            assert_eq!(
                admit_forwarded(&entry, Privileged::default()),
                Ok(()),
                "{entry:?}"
            );
        }
    }

    #[test]
    fn leader_decisions_and_the_server_session_are_refused() {
        let refused = [
            (entry(0, vec![], set_data()), ForwardRefusal::ServerSession),
            (
                entry(0, vec![Id::new("super", "")], TxnOp::CloseSession),
                ForwardRefusal::ServerSession,
            ),
            (
                entry(7, vec![], TxnOp::Reap { path: "/c".into() }),
                ForwardRefusal::LeaderOp("a reap"),
            ),
            (
                entry(7, vec![], TxnOp::RecipeTimer { names: vec![] }),
                ForwardRefusal::LeaderOp("a recipe timer"),
            ),
            (
                entry(
                    7,
                    vec![],
                    TxnOp::RuntimeCheck {
                        fingerprint: "x".into(),
                    },
                ),
                ForwardRefusal::LeaderOp("a runtime check"),
            ),
        ];
        for (entry, why) in refused {
            assert_eq!(
                admit_forwarded(&entry, Privileged::default()),
                Err(why),
                "{entry:?}"
            );
        }
    }

    #[test]
    fn identities_no_session_could_hold_are_refused() {
        let super_digest = digest_id("super:secret");
        let admin_digest = digest_id("admin:secret");
        let privileged = Privileged {
            super_digest: Some(&super_digest),
            recipe_admin_digest: Some(&admin_digest),
        };
        let with = |auth: Vec<Id>| entry(7, auth, set_data());
        let superuser = Id::new(SUPER_SCHEME, "");
        let admin = Id::new(RECIPE_ADMIN_SCHEME, "");
        let proof = Id::new("digest", &super_digest);
        let admin_proof = Id::new("digest", &admin_digest);
        for proven in [
            vec![superuser.clone(), proof.clone()],
            vec![admin.clone(), admin_proof.clone()],
        ] {
            assert_eq!(admit_forwarded(&with(proven), privileged), Ok(()));
        }
        assert_eq!(
            admit_forwarded(&with(vec![superuser.clone()]), privileged),
            Err(ForwardRefusal::Unproven(SUPER_SCHEME))
        );
        assert_eq!(
            admit_forwarded(&with(vec![admin, proof.clone()]), privileged),
            Err(ForwardRefusal::Unproven(RECIPE_ADMIN_SCHEME))
        );
        assert_eq!(
            admit_forwarded(&with(vec![superuser, proof]), Privileged::default()),
            Err(ForwardRefusal::Unproven(SUPER_SCHEME)),
            "no superDigest configured here: nobody is super"
        );
        assert_eq!(
            admit_forwarded(&with(vec![Id::new("x509", "CN=me")]), privileged),
            Err(ForwardRefusal::Scheme("x509".into()))
        );
        let many: Vec<Id> = (0..=AUTH_IDENTITIES_MAX)
            .map(|n| Id::new("digest", &digest_id(&format!("u{n}:p"))))
            .collect();
        assert_eq!(
            admit_forwarded(&with(many), privileged),
            Err(ForwardRefusal::Identity(IdentityError::TooMany))
        );
        let huge = Id::new("digest", &"u".repeat(AUTH_IDENTITY_BYTES_MAX + 1));
        assert!(matches!(
            admit_forwarded(&with(vec![huge]), privileged),
            Err(ForwardRefusal::Identity(IdentityError::TooLarge { .. }))
        ));
    }
}
