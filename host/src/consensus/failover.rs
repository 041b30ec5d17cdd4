//! `failover`: a follower that sees its leader go starts an election at once, instead of
//! waiting out Raft's leader lease plus a randomized election timeout (seconds with
//! ZooKeeper's timing; ZooKeeper's own followers re-elect as soon as the leader's socket closes).
//!
//! Two signs that the leader is gone, watched by every voter that follows one:
//! - **its process is gone**: the follower holds a connection open to the leader's quorum port
//!   (`PeerRequest::HoldLeader`, answered only when the leader steps down). When that
//!   connection closes (EOF, reset, refused) and a fresh one closes too within
//!   [`LEADER_GONE_CONFIRM_MS`], the leader's process is gone (crash, kill -9, a stopped
//!   server): no timeout needs to pass;
//! - **it is silent**: no AppendEntries from it for syncLimit × tickTime (a hung or paused
//!   process, a partition), ZooKeeper's bound for a follower's read from its leader.
//!
//! Either way the follower forgets the gone leader's lease (so it grants the others' pre-votes
//! at once) and runs pre-voted elections until a leader is known. Pre-vote is what keeps a
//! healthy leader in place: a member that still hears from its leader keeps that leader's lease
//! and refuses the pre-vote, so one follower with a flapping link cannot depose it. The
//! survivors try in turn (ranked by id, [`ELECTION_STAGGER_MS`] apart) so two of them rarely
//! split a vote.
//!
//! Raft's own timers stay as the fallback. Note on leases: forgetting a lease means a new leader
//! can be elected while the old one's lease-read window is open; zkw never answers a read
//! through a lease (`sync` is a read-index round, reads are sequentially consistent as in
//! ZooKeeper), the lease only decides when a cut-off leader stops serving.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use openraft::raft::TransferLeaderRequest;
use openraft::type_config::async_runtime::watch::WatchReceiver;
use openraft::ServerState;
use tokio::sync::watch;

use super::network::{PeerRequest, PeerResponse};
use super::types::Vote;
use super::{Consensus, StateMachine};

/// How long a re-opened hold on the leader must stay open for the leader to count as alive
/// after its first connection closed.
pub const LEADER_GONE_CONFIRM_MS: u64 = 250;
/// Delay per rank (position among the surviving voters, by id) before a survivor campaigns.
pub const ELECTION_STAGGER_MS: u64 = 40;
/// Pause between two pre-voted campaigns of one survivor while no leader is known (times
/// `1 + rank`, so the survivors do not retry in step).
pub const ELECTION_RETRY_MS: u64 = 100;
/// Longest pause between two checks of how long the leader has been silent (milliseconds).
pub const SILENCE_CHECK_MS_MAX: u64 = 50;
/// Fewest checks per silence limit (a short limit is checked more often than every 50 ms).
pub const SILENCE_CHECKS_PER_LIMIT: u64 = 50;
/// A silence check that wakes up this many check intervals after the previous one was
/// starved itself and decides nothing.
pub const SILENCE_CHECK_LATE_FACTOR: u64 = 4;
/// Pause before holding on again after the leader answered the hold (it stepped down) or the
/// hold could not be opened for another reason than a closed port.
pub const HOLD_RETRY_MS: u64 = 50;

/// Why a follower decided its leader is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Gone {
    /// Its quorum port closed the connection, twice.
    ProcessGone,
    /// Nothing from it for syncLimit × tickTime.
    Silent,
}

/// The leader a follower watches: its id, the term it leads, its quorum address.
struct Watched {
    leader: u64,
    term: u64,
    address: String,
}

impl<M: StateMachine> Consensus<M> {
    /// Notes an AppendEntries (a heartbeat or entries) from `leader`: it is alive.
    pub(super) fn heard_from(&self, leader: u64) {
        if let Ok(mut heard) = self.heard_from_leader.lock() {
            *heard = Some((leader, self.clock.monotonic_ms()));
        }
    }

    /// Milliseconds since this server last heard from `leader` (None: not since it started).
    pub(super) fn silence_ms(&self, leader: u64) -> Option<u64> {
        let heard = *self.heard_from_leader.lock().ok()?;
        match heard {
            Some((from, at)) if from == leader => {
                Some(self.clock.monotonic_ms().saturating_sub(at))
            }
            _ => None,
        }
    }

    /// The leader to watch, when this server is a voter following one.
    fn watched_leader(&self) -> Option<Watched> {
        let (leader, term, address) = self.leadership()?;
        let receiver = self.raft.metrics();
        let metrics = receiver.borrow_watched();
        let membership = metrics.membership_config.membership();
        let voter = membership.voter_ids().any(|id| id == self.my_id);
        if leader == self.my_id || !voter || metrics.state == ServerState::Learner {
            return None;
        }
        Some(Watched {
            leader,
            term,
            address,
        })
    }

    /// Whether the leader this server knows is still `watched` (same id, same term).
    fn still_following(&self, watched: &Watched) -> bool {
        let receiver = self.raft.metrics();
        let metrics = receiver.borrow_watched();
        metrics.current_leader == Some(watched.leader) && metrics.current_term == watched.term
    }

    /// The follower side: watches the leader it follows and takes over when it goes.
    pub(super) async fn watch_leader(
        self: Arc<Self>,
        silence_limit_ms: u64,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut metrics = self.raft.metrics();
        loop {
            let Some(watched) = self.watched_leader() else {
                tokio::select! {
                    changed = metrics.changed() => if changed.is_err() { return },
                    _ = stop.changed() => return,
                }
                continue;
            };
            let gone = tokio::select! {
                gone = self.wait_until_gone(&watched, silence_limit_ms) => gone,
                _ = self.leader_moves(&watched) => None,
                _ = stop.changed() => return,
            };
            match gone {
                Some(why) => self.take_over(&watched, why, silence_limit_ms).await,
                None => {
                    // The leader stepped down or moved on: follow the new state.
                    tokio::time::sleep(Duration::from_millis(HOLD_RETRY_MS)).await;
                }
            }
        }
    }

    /// Resolves when the metrics show another leader or term than `watched`.
    async fn leader_moves(&self, watched: &Watched) {
        let mut metrics = self.raft.metrics();
        while self.still_following(watched) {
            if metrics.changed().await.is_err() {
                // Raft stopped: nothing to watch any more.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Resolves with why the leader is gone, or None when it answered the hold (it stepped
    /// down: the metrics will show the change).
    async fn wait_until_gone(&self, watched: &Watched, silence_limit_ms: u64) -> Option<Gone> {
        let mut client = self.peer_client(watched.leader, watched.address.clone());
        let hold = PeerRequest::HoldLeader { term: watched.term };
        loop {
            let held = tokio::select! {
                held = client.hold(&hold) => held,
                () = self.until_silent(watched.leader, silence_limit_ms) => return Some(Gone::Silent),
            };
            match held {
                Ok(_answer) => return None,
                Err(error) if closed(&error) => {
                    tracing::debug!(leader = watched.leader, %error, "the hold on the leader closed; checking again");
                    let confirm = Duration::from_millis(LEADER_GONE_CONFIRM_MS);
                    match tokio::time::timeout(confirm, client.hold(&hold)).await {
                        Ok(Err(error)) if closed(&error) => return Some(Gone::ProcessGone),
                        Ok(Ok(_answer)) => return None,
                        // Open again (the leader is there), or not answering at all (hung or
                        // cut off: the silence bound decides): hold on.
                        Ok(Err(_)) | Err(_) => {}
                    }
                }
                Err(error) => {
                    tracing::debug!(leader = watched.leader, %error, "could not hold on the leader");
                    tokio::time::sleep(Duration::from_millis(HOLD_RETRY_MS)).await;
                }
            }
        }
    }

    /// Resolves once nothing was heard from `leader` for `silence_limit_ms`. A check that
    /// itself ran late (this process was starved of CPU) decides nothing: the leader's
    /// heartbeats may be waiting unread in this server's socket, so the next check judges.
    async fn until_silent(&self, leader: u64, silence_limit_ms: u64) {
        let check_ms = (silence_limit_ms / SILENCE_CHECKS_PER_LIMIT).clamp(1, SILENCE_CHECK_MS_MAX);
        // Not heard from it since this server started: count from now.
        if self.silence_ms(leader).is_none() {
            self.heard_from(leader);
        }
        let mut checked_at = self.clock.monotonic_ms();
        loop {
            tokio::time::sleep(Duration::from_millis(check_ms)).await;
            let now = self.clock.monotonic_ms();
            let starved = now.saturating_sub(checked_at) > check_ms * SILENCE_CHECK_LATE_FACTOR;
            checked_at = now;
            if starved {
                continue;
            }
            if self
                .silence_ms(leader)
                .is_none_or(|ms| ms >= silence_limit_ms)
            {
                return;
            }
        }
    }

    /// The leader is gone: forget its lease here and campaign (pre-vote first) until a leader
    /// is known, or for at most `silence_limit_ms` (then Raft's own timers carry on).
    async fn take_over(&self, watched: &Watched, why: Gone, silence_limit_ms: u64) {
        tracing::info!(
            leader = watched.leader,
            term = watched.term,
            reason = ?why,
            me = self.my_id,
            "the leader is gone; electing a new one now"
        );
        // A transfer request naming the gone leader itself as the target: every member that
        // handles it drops the gone leader's lease, none campaigns because of it.
        // The vote as the core holds it (`current_leader` and `current_term` come from it),
        // not `metrics.vote`, the last *flushed* one, which may differ and then matches nothing.
        let vote = Vote::new_committed(watched.term, watched.leader);
        let forget = TransferLeaderRequest::new(vote, watched.leader, None);
        if let Err(error) = self.raft.handle_transfer_leader(forget).await {
            tracing::warn!(%error, "could not drop the gone leader's lease");
            return;
        }
        let rank = self.survivor_rank(watched.leader);
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(silence_limit_ms.max(1000));
        tokio::time::sleep(Duration::from_millis(rank * ELECTION_STAGGER_MS)).await;
        while tokio::time::Instant::now() < deadline {
            let leader = self.raft.metrics().borrow_watched().current_leader;
            if leader.is_some_and(|leader| leader != watched.leader) {
                return;
            }
            match self.raft.trigger().elect(true).await {
                Ok(()) => {}
                // Our own shutdown stopped the core: nothing to elect, nothing to report.
                Err(openraft::error::Fatal::Stopped) => return,
                Err(error) => {
                    tracing::warn!(%error, "could not start an election");
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(ELECTION_RETRY_MS * (1 + rank))).await;
        }
    }

    /// This server's position among the voters other than `gone`, by id.
    fn survivor_rank(&self, gone: u64) -> u64 {
        let receiver = self.raft.metrics();
        let metrics = receiver.borrow_watched();
        let rank = metrics
            .membership_config
            .membership()
            .voter_ids()
            .filter(|id| *id != gone && *id < self.my_id)
            .count();
        u64::try_from(rank).unwrap_or(0)
    }

    /// The leader side of a hold: answers once this server no longer leads in `term` (or at
    /// once when it does not), so a follower's held connection ends only when the leader
    /// steps down or its process goes.
    pub(super) async fn hold_as_leader(&self, term: u64) -> PeerResponse {
        let mut metrics = self.raft.metrics();
        let mut stop = self.stop.subscribe();
        loop {
            let (leading, leader) = {
                let current = metrics.borrow_watched();
                (
                    current.state == ServerState::Leader && current.current_term == term,
                    current.current_leader,
                )
            };
            if !leading || *stop.borrow() {
                return PeerResponse::NotLeader(leader);
            }
            tokio::select! {
                changed = metrics.changed() => if changed.is_err() {
                    return PeerResponse::NotLeader(None);
                },
                _ = stop.changed() => {}
            }
        }
    }
}

/// Whether an error means the other end's port is closed or its process went away (as
/// opposed to a slow or unreachable peer).
fn closed(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}
