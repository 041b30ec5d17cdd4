//! `session`: which sessions are alive and when each one expires. Pure bookkeeping over
//! monotonic milliseconds handed in by the caller; it never reads a clock and knows nothing of
//! jute or sockets. The server touches a session on every packet and asks [`SessionTracker::
//! expired`] once per tick; the sessions it returns are closed through a replicated
//! `CloseSession` txn.
//!
//! Deadlines are rounded up to the next multiple of tickTime, as ZooKeeper's ExpiryQueue does,
//! so that expiry is checked per bucket instead of per session.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::proto::SessionId;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Liveness {
    timeout_ms: u64,
    deadline_ms: u64,
    closing: bool,
}

/// Session liveness, indexed by id and by expiry bucket.
#[derive(Debug)]
pub struct SessionTracker {
    tick_ms: u64,
    sessions: HashMap<SessionId, Liveness>,
    buckets: BTreeMap<u64, BTreeSet<SessionId>>,
}

impl SessionTracker {
    pub fn new(tick_ms: u64) -> Self {
        assert!(tick_ms > 0, "tickTime must be positive");
        SessionTracker {
            tick_ms,
            sessions: HashMap::new(),
            buckets: BTreeMap::new(),
        }
    }

    fn bucket_of(&self, deadline_ms: u64) -> u64 {
        deadline_ms.div_ceil(self.tick_ms) * self.tick_ms
    }

    /// Starts (or restarts, on reconnect with a new timeout) tracking a session.
    pub fn add(&mut self, session_id: SessionId, timeout_ms: u64, now_ms: u64) {
        self.unlink(session_id);
        let deadline_ms = self.bucket_of(now_ms + timeout_ms);
        self.sessions.insert(
            session_id,
            Liveness {
                timeout_ms,
                deadline_ms,
                closing: false,
            },
        );
        self.buckets
            .entry(deadline_ms)
            .or_default()
            .insert(session_id);
    }

    /// Any packet from the client: pushes the deadline out. Returns false when the session is
    /// unknown or already closing (its requests must then fail with SessionExpired).
    pub fn touch(&mut self, session_id: SessionId, now_ms: u64) -> bool {
        let Some(liveness) = self.sessions.get(&session_id).copied() else {
            return false;
        };
        if liveness.closing {
            return false;
        }
        let deadline_ms = self.bucket_of(now_ms + liveness.timeout_ms);
        if deadline_ms != liveness.deadline_ms {
            self.unlink(session_id);
            self.sessions.insert(
                session_id,
                Liveness {
                    deadline_ms,
                    ..liveness
                },
            );
            self.buckets
                .entry(deadline_ms)
                .or_default()
                .insert(session_id);
        }
        true
    }

    /// Whether requests of this session may proceed.
    pub fn is_active(&self, session_id: SessionId) -> bool {
        self.sessions
            .get(&session_id)
            .is_some_and(|liveness| !liveness.closing)
    }

    /// Marks a session as closing (explicit closeSession): later requests fail.
    pub fn set_closing(&mut self, session_id: SessionId) {
        if let Some(liveness) = self.sessions.get_mut(&session_id) {
            liveness.closing = true;
        }
    }

    /// Forgets a session (its CloseSession txn was applied).
    pub fn remove(&mut self, session_id: SessionId) {
        self.unlink(session_id);
        self.sessions.remove(&session_id);
    }

    /// Sessions whose deadline has passed, in id order. Each is marked closing and given a new
    /// deadline one timeout later: until its CloseSession applies (and [`SessionTracker::
    /// remove`] forgets it), it is returned again at each timeout, so a close that was lost (the
    /// leader lost its quorum for a moment, and kept its term) is proposed again rather than
    /// leaving the session and its ephemerals for ever.
    pub fn expired(&mut self, now_ms: u64) -> Vec<SessionId> {
        let due: Vec<u64> = self
            .buckets
            .range(..=now_ms)
            .map(|(bucket, _)| *bucket)
            .collect();
        let mut expired = BTreeSet::new();
        for bucket in due {
            if let Some(ids) = self.buckets.remove(&bucket) {
                expired.extend(ids);
            }
        }
        for session_id in &expired {
            if let Some(liveness) = self.sessions.get(session_id).copied() {
                let deadline_ms = self.bucket_of(now_ms + liveness.timeout_ms);
                self.sessions.insert(
                    *session_id,
                    Liveness {
                        deadline_ms,
                        closing: true,
                        ..liveness
                    },
                );
                self.buckets
                    .entry(deadline_ms)
                    .or_default()
                    .insert(*session_id);
            }
        }
        expired.into_iter().collect()
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    fn unlink(&mut self, session_id: SessionId) {
        if let Some(liveness) = self.sessions.get(&session_id) {
            if let Some(ids) = self.buckets.get_mut(&liveness.deadline_ms) {
                ids.remove(&session_id);
                if ids.is_empty() {
                    self.buckets.remove(&liveness.deadline_ms);
                }
            }
        }
    }
}

/// Bytes of one session id in a liveness relay.
const RELAYED_SESSION_BYTES: usize = 8;

/// The sessions that showed life on a follower since its last relay, as the message its
/// leader gets (consensus carries it without reading it): each id as 8 big-endian bytes.
pub fn encode_relay(sessions: &[SessionId]) -> Vec<u8> {
    sessions.iter().flat_map(|id| id.to_be_bytes()).collect()
}

/// The sessions a relay names; `None` for bytes that are not whole ids (a peer's bug).
pub fn decode_relay(bytes: &[u8]) -> Option<Vec<SessionId>> {
    if !bytes.len().is_multiple_of(RELAYED_SESSION_BYTES) {
        return None;
    }
    bytes
        .chunks_exact(RELAYED_SESSION_BYTES)
        .map(|id| id.try_into().ok().map(SessionId::from_be_bytes))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_rounds_up_to_tick() {
        let mut tracker = SessionTracker::new(2000);
        tracker.add(1, 4000, 100);
        assert!(tracker.expired(5999).is_empty());
        assert_eq!(tracker.expired(6000), vec![1]);
        assert!(
            tracker.expired(9999).is_empty(),
            "returned once per timeout"
        );
        assert!(!tracker.is_active(1));
    }

    #[test]
    fn an_expired_session_comes_back_until_its_close_applies() {
        let mut tracker = SessionTracker::new(1000);
        tracker.add(1, 2000, 0);
        assert_eq!(tracker.expired(2000), vec![1]);
        // Its CloseSession was lost: one timeout later it is due again, still closing.
        assert!(tracker.expired(3999).is_empty());
        assert_eq!(tracker.expired(4000), vec![1]);
        assert!(!tracker.touch(1, 4001), "closing sessions are not revived");
        // Applied: forgotten for good.
        tracker.remove(1);
        assert!(tracker.expired(100_000).is_empty());
        assert!(tracker.is_empty());
    }

    #[test]
    fn touch_postpones_expiry() {
        let mut tracker = SessionTracker::new(1000);
        tracker.add(7, 3000, 0);
        assert!(tracker.touch(7, 2500));
        assert!(tracker.expired(3000).is_empty());
        assert_eq!(tracker.expired(6000), vec![7]);
        assert!(!tracker.touch(7, 6001), "closing sessions are not revived");
    }

    #[test]
    fn remove_and_unknown() {
        let mut tracker = SessionTracker::new(1000);
        tracker.add(1, 1000, 0);
        tracker.add(2, 1000, 0);
        tracker.remove(1);
        assert!(!tracker.touch(1, 10));
        assert_eq!(tracker.expired(5000), vec![2]);
        assert!(!tracker.is_empty() && tracker.len() == 1);
    }

    #[test]
    fn relays_name_whole_ids_and_nothing_else() {
        let sessions = [1, -1, 0x00a2_3afa_2aa3_0000, i64::MIN];
        assert_eq!(
            decode_relay(&encode_relay(&sessions)),
            Some(sessions.to_vec())
        );
        assert_eq!(decode_relay(&[]), Some(Vec::new()));
        assert_eq!(decode_relay(&[0; 9]), None);
    }
}
