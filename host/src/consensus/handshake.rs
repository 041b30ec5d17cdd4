//! The quorum-port handshake: before any request, the dialling server names its server id and,
//! when a shared secret is configured, proves that it knows it; the accepting server checks the
//! id against its members and the connecting address (see `network::admit`), and proves the
//! secret back. The secret never travels: each side sends HMAC-SHA256 over both sides' fresh
//! nonces and both ids (a challenge-response, so a recorded exchange cannot be replayed).
//!
//! Three messages, after TCP (and TLS, with `sslQuorum=true`):
//! acceptor → [`Challenge`] (its nonce); dialler → [`Hello`] (id, its nonce, proof);
//! acceptor → [`Welcome`] (its proof), or the connection closes with a logged reason.
//!
//! The secret is ZooKeeper's quorum DIGEST authentication mapped onto a shared file:
//! `quorum.auth.enableSasl` sends and checks proofs, `quorum.auth.serverRequireSasl` refuses a
//! dialler without one, `quorum.auth.learnerRequireSasl` refuses an acceptor without one (the
//! same rolling-upgrade steps as ZooKeeper's: enable everywhere, then require).

use aws_lc_rs::hmac;
use serde::{Deserialize, Serialize};

/// This handshake's version; a peer with another one is refused (it runs another zkw release).
pub const HANDSHAKE_VERSION: u32 = 1;
/// Bytes of a nonce (fresh from the OS random source per connection and side).
pub const NONCE_BYTES: usize = 32;
/// Bytes of an HMAC-SHA256 proof.
pub const PROOF_BYTES: usize = 32;
/// Largest frame a peer may send before it is admitted: the handshake messages are well under
/// it. ZooKeeper's nearest bound is the 8 KiB cap on a QuorumCnxManager connection header.
pub const HANDSHAKE_FRAME_BYTES_MAX: u32 = 1024;
/// Bound on the whole handshake, each side (ZooKeeper: `cnxTimeout`, 5 s by default).
pub const HANDSHAKE_TIMEOUT_MS: u64 = 5_000;

pub type Nonce = [u8; NONCE_BYTES];
pub type Proof = [u8; PROOF_BYTES];

/// Acceptor → dialler, first thing on a connection.
#[derive(Debug, Serialize, Deserialize)]
pub struct Challenge {
    pub version: u32,
    pub nonce: Nonce,
}

/// Dialler → acceptor: who it is and, with a secret, the proof.
#[derive(Debug, Serialize, Deserialize)]
pub struct Hello {
    pub version: u32,
    pub id: u64,
    pub nonce: Nonce,
    pub proof: Option<Proof>,
}

/// Acceptor → dialler: admitted; with a secret, the acceptor's proof.
#[derive(Debug, Serialize, Deserialize)]
pub struct Welcome {
    pub proof: Option<Proof>,
}

/// What both proofs of one connection are computed over.
#[derive(Clone, Copy, Debug)]
pub struct Transcript {
    pub challenge: Nonce,
    pub hello: Nonce,
    pub dialler: u64,
    pub acceptor: u64,
}

/// Which side a proof speaks for (its label keeps one side's proof from passing as the other's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Dialler,
    Acceptor,
}

impl Side {
    fn label(self) -> &'static [u8] {
        match self {
            Side::Dialler => b"zkw quorum dialler v1",
            Side::Acceptor => b"zkw quorum acceptor v1",
        }
    }
}

/// Why a peer was refused (logged with its address and claimed id).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("handshake version {0} is not {HANDSHAKE_VERSION}")]
    Version(u32),
    #[error("server {0} is not a member: only the membership probe is answered")]
    NotMember(u64),
    #[error("server {id} is configured at {configured}, not at this address")]
    WrongAddress { id: u64, configured: String },
    #[error("no proof of the quorum secret (quorum.auth.*RequireSasl is set)")]
    ProofMissing,
    #[error("wrong proof of the quorum secret")]
    ProofWrong,
    #[error("server {0} already has PEER_CONNECTIONS_PER_MEMBER_MAX connections")]
    MemberConnections(u64),
    #[error("too many connections from this address are in their handshake")]
    PendingHandshakes,
    #[error("too many connections from this address are not members")]
    StrangerConnections,
}

/// Quorum authentication: ZooKeeper's `quorum.auth.*` keys with the shared secret.
#[derive(Clone, Default)]
pub struct QuorumAuth {
    /// `quorum.auth.enableSasl`: the secret (from `quorum.auth.secretFile`); None = off.
    key: Option<hmac::Key>,
    /// `quorum.auth.learnerRequireSasl`: the acceptor must prove the secret.
    learner_require: bool,
    /// `quorum.auth.serverRequireSasl`: the dialler must prove the secret.
    server_require: bool,
}

impl std::fmt::Debug for QuorumAuth {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        formatter
            .debug_struct("QuorumAuth")
            .field("enabled", &self.key.is_some())
            .field("learner_require", &self.learner_require)
            .field("server_require", &self.server_require)
            .finish()
    }
}

impl QuorumAuth {
    /// `secret`: None when `quorum.auth.enableSasl` is false (then nothing is required).
    pub fn new(secret: Option<&[u8]>, learner_require: bool, server_require: bool) -> Self {
        let key = secret.map(|secret| hmac::Key::new(hmac::HMAC_SHA256, secret));
        let enabled = key.is_some();
        QuorumAuth {
            key,
            learner_require: enabled && learner_require,
            server_require: enabled && server_require,
        }
    }

    /// This side's proof, when a secret is configured.
    pub fn prove(&self, side: Side, transcript: &Transcript) -> Option<Proof> {
        let key = self.key.as_ref()?;
        let tag = hmac::sign(key, &message(side, transcript));
        let mut proof = [0u8; PROOF_BYTES];
        proof.copy_from_slice(tag.as_ref());
        Some(proof)
    }

    /// Checks the other side's proof: a present one must be right (in constant time); a
    /// missing one passes unless this side requires it. Without a secret nothing is checked.
    pub fn check(
        &self,
        side: Side,
        transcript: &Transcript,
        proof: Option<&Proof>,
    ) -> Result<(), Refusal> {
        let Some(key) = self.key.as_ref() else {
            return Ok(());
        };
        let required = match side {
            Side::Dialler => self.server_require,
            Side::Acceptor => self.learner_require,
        };
        match proof {
            Some(proof) => hmac::verify(key, &message(side, transcript), proof)
                .map_err(|_| Refusal::ProofWrong),
            None if required => Err(Refusal::ProofMissing),
            None => Ok(()),
        }
    }
}

/// A fresh nonce from the OS random source.
pub fn nonce() -> Nonce {
    rand::random()
}

fn message(side: Side, transcript: &Transcript) -> Vec<u8> {
    let mut message = side.label().to_vec();
    message.extend_from_slice(&transcript.challenge);
    message.extend_from_slice(&transcript.hello);
    message.extend_from_slice(&transcript.dialler.to_be_bytes());
    message.extend_from_slice(&transcript.acceptor.to_be_bytes());
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transcript() -> Transcript {
        Transcript {
            challenge: [1; NONCE_BYTES],
            hello: [2; NONCE_BYTES],
            dialler: 2,
            acceptor: 1,
        }
    }

    #[test]
    fn the_same_secret_proves_each_side_and_another_does_not() {
        let ours = QuorumAuth::new(Some(b"s3cret"), true, true);
        let theirs = QuorumAuth::new(Some(b"other"), true, true);
        let t = transcript();
        for side in [Side::Dialler, Side::Acceptor] {
            let proof = ours.prove(side, &t);
            assert_eq!(ours.check(side, &t, proof.as_ref()), Ok(()));
            let wrong = theirs.prove(side, &t);
            assert_eq!(
                ours.check(side, &t, wrong.as_ref()),
                Err(Refusal::ProofWrong)
            );
        }
        // One side's proof never passes for the other's.
        let dialler = ours.prove(Side::Dialler, &t);
        let as_acceptor = ours.check(Side::Acceptor, &t, dialler.as_ref());
        assert_eq!(as_acceptor, Err(Refusal::ProofWrong));
    }

    #[test]
    fn a_proof_is_bound_to_the_nonces_and_ids() {
        let auth = QuorumAuth::new(Some(b"s3cret"), false, true);
        let proof = auth.prove(Side::Dialler, &transcript());
        let replayed = Transcript {
            challenge: [9; NONCE_BYTES],
            ..transcript()
        };
        let other_id = Transcript {
            dialler: 3,
            ..transcript()
        };
        for t in [replayed, other_id] {
            let checked = auth.check(Side::Dialler, &t, proof.as_ref());
            assert_eq!(checked, Err(Refusal::ProofWrong));
        }
    }

    #[test]
    fn a_missing_proof_passes_only_where_not_required() {
        let t = transcript();
        let server_requires = QuorumAuth::new(Some(b"s"), false, true);
        let missing = server_requires.check(Side::Dialler, &t, None);
        assert_eq!(missing, Err(Refusal::ProofMissing));
        assert_eq!(server_requires.check(Side::Acceptor, &t, None), Ok(()));
        let learner_requires = QuorumAuth::new(Some(b"s"), true, false);
        let missing = learner_requires.check(Side::Acceptor, &t, None);
        assert_eq!(missing, Err(Refusal::ProofMissing));
        // Without a secret nothing is sent and nothing is checked.
        let off = QuorumAuth::new(None, true, true);
        assert_eq!(off.prove(Side::Dialler, &t), None);
        assert_eq!(
            off.check(Side::Dialler, &t, Some(&[0; PROOF_BYTES])),
            Ok(())
        );
    }
}
