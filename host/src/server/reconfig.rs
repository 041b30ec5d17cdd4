//! The `reconfig` request and the `/zookeeper/config` node.
//!
//! `reconfig` (reconfigEnabled=true, an ensemble) is refused in the order of ZooKeeper 3.8's
//! PrepRequestProcessor: ReconfigInProgress, BadVersion (a curConfigId other than -1 that is
//! not the current version, stale or future), BadArguments (MarshallingError for a server id
//! that is not a number), NewConfigNoQuorum, and last NoAuth (the caller needs WRITE on
//! `/zookeeper/config`; by default only `super` has it). The leader runs the first checks and
//! the change; a request this server refuses itself (bad arguments, no WRITE) first asks the
//! leader's checks without a change, so the earlier errors win. One departure: an unpermitted
//! caller gets NoAuth where ZooKeeper would first find NewConfigNoQuorum, since finding it
//! means adding learners. The requester then writes the new config text into `/zookeeper/config` (so
//! its watchers fire) and answers with the node's data and stat, as ZooKeeper does.
//!
//! The node's text: one `server.N=host:quorumPort:electionPort:role;clientAddress:clientPort`
//! line per member, then `version=<hex>`. While no reconfig has happened (version 0) it is the
//! zoo.cfg ensemble, and the leader adds zoo.cfg observers as learners; afterwards it is the
//! replicated membership, version = the log index of its membership entry. Each leader checks
//! the node every few ticks and rewrites it when it does not match (a requester that died
//! between the change and the write, a leader's first term).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::TxnProposal;
use super::{expiry_period, Context, Shared};
use crate::config::{parse_server_line, Config, PeerRole, ServerEntry};
use crate::consensus::membership::{Joiner, MembershipEdit, MembershipView, ReconfigError};
use crate::proto::{perms, ErrorCode, Id, ReconfigRequest, Response, SetDataRequest};
use crate::tree::acl;
use crate::txn::TxnOp;

/// The node ZooKeeper keeps the ensemble's configuration in.
pub const CONFIG_NODE_PATH: &str = "/zookeeper/config";
/// The curConfigId that accepts any current version.
pub const CONFIG_ID_ANY: i64 = -1;
/// How long a requester waits for its new config text to be applied here.
pub const CONFIG_PUBLISH_WAIT_MS_MAX: u64 = 10_000;
/// How often the requester looks at the node while it waits.
pub const CONFIG_PUBLISH_POLL_MS: u64 = 10;
/// Bound on the leader adding zoo.cfg observers in one membership change.
pub const OBSERVER_JOIN_WAIT_MS_MAX: u64 = 10_000;

/// The identity of the server's own decisions: ACLs do not apply to it.
pub(super) fn super_id() -> Id {
    Id::new("super", "")
}

/// Answers one `reconfig` request from a client whose identities are `auth`.
pub(super) async fn handle(
    context: &Context,
    auth: &[Id],
    request: ReconfigRequest,
) -> Result<Response, ErrorCode> {
    let shared = &context.shared;
    if !shared.config.reconfig_enabled {
        return Err(ErrorCode::ReconfigDisabled);
    }
    if !shared.config.is_distributed() {
        // ZooKeeper: "standalone mode - reconfiguration currently not supported".
        return Err(ErrorCode::Unimplemented);
    }
    let expected = expected_version(request.cur_config_id);
    let parsed = parse_request(&request);
    let config_acl = shared
        .lock_store()
        .tree
        .acl(CONFIG_NODE_PATH)
        .unwrap_or_default();
    let permitted = acl::check(&config_acl, auth, perms::WRITE).map_err(|error| error.code());
    if parsed.is_err() || permitted.is_err() {
        // ZooKeeper judges a running change, curConfigId and the arguments before the
        // caller's right to reconfig; a change refused here must not touch the membership.
        let edit = parsed.as_ref().ok().cloned();
        context
            .consensus
            .check_reconfigure(edit, expected)
            .await
            .map_err(|error| {
                tracing::info!(%error, "reconfig refused by the leader's checks");
                error_code(&error)
            })?;
    }
    let edit = parsed.map_err(|fault| {
        tracing::info!(%fault, "reconfig refused");
        fault.code()
    })?;
    permitted?;
    let version = context
        .consensus
        .reconfigure(edit, expected)
        .await
        .map_err(|error| {
            tracing::info!(%error, "reconfig did not happen");
            error_code(&error)
        })?;
    Ok(publish_change(context, version).await)
}

/// The version a client's curConfigId names: None for -1 (any version). Other negative values
/// name no version (log indexes are never negative), so they are kept, reinterpreted, to fail
/// the comparison with BadVersion as in ZooKeeper.
fn expected_version(cur_config_id: i64) -> Option<u64> {
    (cur_config_id != CONFIG_ID_ANY).then_some(cur_config_id.cast_unsigned())
}

fn error_code(error: &ReconfigError) -> ErrorCode {
    match error {
        ReconfigError::InProgress => ErrorCode::ReconfigInProgress,
        ReconfigError::BadVersion { .. } => ErrorCode::BadVersion,
        ReconfigError::NoQuorum => ErrorCode::NewConfigNoQuorum,
        ReconfigError::BadArguments(_) => ErrorCode::BadArguments,
        ReconfigError::Failed(_) => ErrorCode::ConnectionLoss,
    }
}

/// Why a reconfig request's server strings cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestFault {
    /// A server string ZooKeeper refuses with BadArguments.
    #[error("{0}")]
    BadArguments(String),
    /// A server id that is not a number: ZooKeeper's parse throws an unchecked exception
    /// there, which its PrepRequestProcessor answers with MarshallingError.
    #[error("\"{0}\" is not a server id")]
    NotAnId(String),
}

impl RequestFault {
    pub fn code(&self) -> ErrorCode {
        match self {
            RequestFault::BadArguments(_) => ErrorCode::BadArguments,
            RequestFault::NotAnId(_) => ErrorCode::MarshallingError,
        }
    }
}

/// A server id as ZooKeeper reads it (`Long.parseLong`); zkw's ids are never negative.
fn server_id(text: &str) -> Result<u64, RequestFault> {
    text.parse::<u64>()
        .map_err(|_| RequestFault::NotAnId(text.to_owned()))
}

/// One `server.N=spec` line: the id after the key's last dot must be a number before the
/// spec is judged.
fn joiner(line: &str) -> Result<Joiner, RequestFault> {
    let Some((key, _)) = line.split_once('=') else {
        return Err(RequestFault::BadArguments(format!(
            "\"{line}\" is not server.N=<server spec>"
        )));
    };
    let key = key.trim();
    server_id(key.rsplit_once('.').map_or(key, |(_, id)| id))?;
    let server = parse_server_line(line).map_err(RequestFault::BadArguments)?;
    Ok(Joiner {
        id: server.id,
        spec: server.spec(),
        observer: server.role == PeerRole::Observer,
    })
}

/// ZooKeeper's two forms: `newMembers` (the whole membership, comma or newline separated) or
/// `joiningServers` (`server.N=spec` list) and `leavingServers` (id list).
pub fn parse_request(request: &ReconfigRequest) -> Result<MembershipEdit, RequestFault> {
    if let Some(members) = request.new_members.as_deref() {
        let mut joining = Vec::new();
        for line in members.split([',', '\n']).map(str::trim) {
            if line.is_empty() || line.starts_with("version=") {
                continue;
            }
            joining.push(joiner(line)?);
        }
        return Ok(MembershipEdit {
            replace_all: true,
            joining,
            leaving: Vec::new(),
        });
    }
    let items = |text: Option<&str>| -> Vec<String> {
        text.unwrap_or_default()
            .split(',')
            .map(|item| item.trim().to_owned())
            .filter(|item| !item.is_empty())
            .collect()
    };
    // ZooKeeper reads the leaving ids first.
    let leaving = items(request.leaving_servers.as_deref())
        .iter()
        .map(|id| server_id(id))
        .collect::<Result<Vec<_>, _>>()?;
    let joining = items(request.joining_servers.as_deref())
        .iter()
        .map(|line| joiner(line))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(MembershipEdit {
        replace_all: false,
        joining,
        leaving,
    })
}

/// Writes the config text of membership `version` into the node and answers with the node
/// once it is applied here (or, past the wait, with the text and the node's current stat).
async fn publish_change(context: &Context, version: u64) -> Response {
    let shared = &context.shared;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(CONFIG_PUBLISH_WAIT_MS_MAX);
    // This server may lag the leader: wait until it sees the new membership.
    let mut view = context.consensus.membership();
    while view.version < version && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(CONFIG_PUBLISH_POLL_MS)).await;
        view = context.consensus.membership();
    }
    let data = membership_text(&view, &shared.config).into_bytes();
    // Only a leader writes for the servers' own session 0 (a leader refuses such a write
    // forwarded by a follower): on a follower, the leader's publisher writes it.
    if node_data(shared).0 != data && context.consensus.is_leader() {
        let proposal = TxnProposal {
            session_id: 0,
            auth: vec![super_id()],
            op: set_config(data.clone()),
            route: None,
            leader_only: true,
        };
        if proposal.propose(&context.proposer).await.is_err() {
            tracing::warn!("could not propose the new config text");
        }
    }
    loop {
        let (current, stat) = node_data(shared);
        if current == data || tokio::time::Instant::now() >= deadline {
            return Response::GetData {
                data: Some(data),
                stat,
            };
        }
        tokio::time::sleep(Duration::from_millis(CONFIG_PUBLISH_POLL_MS)).await;
    }
}

/// The config node's text (its data is never null: only this module writes it) and Stat.
fn node_data(shared: &Shared) -> (Vec<u8>, crate::proto::Stat) {
    let (data, stat) = shared
        .lock_store()
        .tree
        .get_data(CONFIG_NODE_PATH, &[super_id()])
        .unwrap_or_default();
    (data.unwrap_or_default(), stat)
}

fn set_config(data: Vec<u8>) -> TxnOp {
    TxnOp::SetData(SetDataRequest {
        path: CONFIG_NODE_PATH.to_owned(),
        data: Some(data),
        version: -1,
    })
}

fn server_line(id: u64, line_value: &str) -> String {
    format!("server.{id}={line_value}\n")
}

/// The zoo.cfg ensemble, version 0 (the config before any reconfig).
pub fn initial_text(config: &Config) -> String {
    let mut text = String::new();
    for server in &config.servers {
        text.push_str(&server_line(server.id, &server.line_value(server.role)));
    }
    text.push_str("version=0");
    text
}

/// The replicated membership as ZooKeeper's dynamic config, `version=` its log index in hex.
/// A member whose spec lacks ports (logs written before specs were kept) takes its zoo.cfg
/// line.
pub fn membership_text(view: &MembershipView, config: &Config) -> String {
    let mut text = String::new();
    let members: BTreeMap<u64, (&String, PeerRole)> = view
        .voters
        .iter()
        .map(|(id, spec)| (*id, (spec, PeerRole::Participant)))
        .chain(
            view.learners
                .iter()
                .map(|(id, spec)| (*id, (spec, PeerRole::Observer))),
        )
        .collect();
    for (id, (spec, role)) in members {
        let parsed = parse_server_line(&format!("server.{id}={spec}")).ok();
        let zoo = || config.servers.iter().find(|server| server.id == id);
        let value = match (parsed, zoo()) {
            (Some(server), _) => server.line_value(role),
            (None, Some(server)) => server.line_value(role),
            (None, None) => spec.clone(),
        };
        text.push_str(&server_line(id, &value));
    }
    text.push_str(&format!("version={:x}", view.version));
    text
}

/// The `version=` of a config text; None when the text has none (the node is still empty).
pub fn text_version(text: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(text).ok()?;
    text.lines()
        .find_map(|line| line.trim().strip_prefix("version="))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
}

/// Whether the ensemble still runs its zoo.cfg config: no reconfig made the membership nor has
/// one been published, and the membership is zoo.cfg's voters plus (some of) its observers.
fn is_initial(view: &MembershipView, config: &Config, node: &[u8]) -> bool {
    let ids = |role: PeerRole| -> BTreeSet<u64> {
        config
            .servers
            .iter()
            .filter(|server| server.role == role)
            .map(|server| server.id)
            .collect()
    };
    let voters: BTreeSet<u64> = view.voters.keys().copied().collect();
    let learners: BTreeSet<u64> = view.learners.keys().copied().collect();
    !view.reconfigured
        && text_version(node).unwrap_or(0) == 0
        && voters == ids(PeerRole::Participant)
        && learners.is_subset(&ids(PeerRole::Observer))
}

/// zoo.cfg observers not in the membership yet.
fn missing_observers(view: &MembershipView, config: &Config) -> BTreeMap<u64, String> {
    config
        .servers
        .iter()
        .filter(|server| server.role == PeerRole::Observer && !view.contains(server.id))
        .map(|server: &ServerEntry| (server.id, server.spec()))
        .collect()
}

/// In an ensemble, the leader keeps `/zookeeper/config` in step with the membership (see the
/// module notes), so `zkCli config` and Curator's EnsembleTracker see the servers.
pub(super) async fn publish_ensemble_config(
    context: Context,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    if !context.shared.config.is_distributed() {
        return;
    }
    let config = &context.shared.config;
    let mut interval = tokio::time::interval(expiry_period(config));
    let mut proposed: Option<(u64, Vec<u8>)> = None;
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.changed() => return,
        }
        let Some(term) = context.consensus.leader_term() else {
            continue;
        };
        let view = context.consensus.membership();
        if !view.settled || context.consensus.reconfig_running() {
            // Mid-change: the requester publishes the outcome.
            continue;
        }
        let (current, _) = node_data(&context.shared);
        let initial = is_initial(&view, config, &current);
        let data = if initial {
            initial_text(config)
        } else {
            membership_text(&view, config)
        }
        .into_bytes();
        if current != data && proposed.as_ref() != Some(&(term, data.clone())) {
            proposed = Some((term, data.clone()));
            let proposal = TxnProposal {
                session_id: 0,
                auth: vec![super_id()],
                op: set_config(data),
                route: None,
                leader_only: true,
            };
            if proposal.propose(&context.proposer).await.is_err() {
                return;
            }
        }
        let missing = missing_observers(&view, config);
        if initial && !missing.is_empty() {
            let join = context.consensus.add_learners(missing);
            match tokio::time::timeout(Duration::from_millis(OBSERVER_JOIN_WAIT_MS_MAX), join).await
            {
                Ok(Ok(())) => tracing::info!("zoo.cfg observers joined as learners"),
                Ok(Err(error)) => tracing::debug!(%error, "observers not added yet"),
                Err(_) => tracing::debug!("adding observers timed out; will retry"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(
        joining: Option<&str>,
        leaving: Option<&str>,
        members: Option<&str>,
    ) -> ReconfigRequest {
        ReconfigRequest {
            joining_servers: joining.map(str::to_owned),
            leaving_servers: leaving.map(str::to_owned),
            new_members: members.map(str::to_owned),
            cur_config_id: -1,
        }
    }

    #[test]
    fn incremental_requests_parse() {
        let edit = parse_request(&request(
            Some("server.4=127.0.0.1:1:2:participant;127.0.0.1:3, server.5=h:4:5:observer;6"),
            Some("2, 3"),
            None,
        ))
        .unwrap();
        assert!(!edit.replace_all);
        assert_eq!(edit.leaving, vec![2, 3]);
        assert_eq!(edit.joining.len(), 2);
        assert_eq!(edit.joining[0].spec, "127.0.0.1:1:2;127.0.0.1:3");
        assert!(edit.joining[1].observer);
        assert!(parse_request(&request(None, Some("x"), None)).is_err());
        assert!(parse_request(&request(Some("server.4=h:1:2"), None, None)).is_err());
        assert_eq!(
            parse_request(&request(None, None, None)).unwrap().joining,
            vec![]
        );
    }

    #[test]
    fn faults_carry_zookeepers_codes() {
        let fault = |joining, leaving| parse_request(&request(joining, leaving, None)).unwrap_err();
        assert_eq!(fault(None, Some("1,x")), RequestFault::NotAnId("x".into()));
        assert_eq!(fault(None, Some("x")).code(), ErrorCode::MarshallingError);
        assert_eq!(
            fault(Some("server.x=h:1:2;3"), None).code(),
            ErrorCode::MarshallingError
        );
        assert_eq!(
            fault(Some("nonsense"), None).code(),
            ErrorCode::BadArguments
        );
        assert_eq!(
            fault(Some("server.9=h:1:2"), None).code(),
            ErrorCode::BadArguments
        );
        // Leaving ids are read first, as ZooKeeper does.
        assert_eq!(
            fault(Some("nonsense"), Some("y")).code(),
            ErrorCode::MarshallingError
        );
        let members = parse_request(&request(None, None, Some("server.q=h:1:2;3")));
        assert_eq!(members.unwrap_err().code(), ErrorCode::MarshallingError);
    }

    #[test]
    fn only_minus_one_accepts_any_version() {
        assert_eq!(expected_version(CONFIG_ID_ANY), None);
        assert_eq!(expected_version(0x1f), Some(0x1f));
        // -2 names no version: it can never equal a log index.
        assert_eq!(expected_version(-2), Some(u64::MAX - 1));
    }

    #[test]
    fn new_members_parse_with_commas_or_newlines() {
        let edit = parse_request(&request(
            Some("ignored"),
            None,
            Some("server.1=h:1:2;3\nserver.2=h:4:5;6,version=100000000"),
        ))
        .unwrap();
        assert!(edit.replace_all);
        assert_eq!(
            edit.joining.iter().map(|j| j.id).collect::<Vec<_>>(),
            vec![1, 2]
        );
    }

    #[test]
    fn membership_text_is_zookeeper_dynamic_config() {
        let view = MembershipView {
            version: 0x1f,
            voters: [
                (1, "h:1:2;h:3".to_owned()),
                (2, "h:4:5;0.0.0.0:6".to_owned()),
            ]
            .into(),
            learners: [(3, "h:7:8:observer;h:9".to_owned())].into(),
            settled: true,
            reconfigured: true,
        };
        let text = membership_text(&view, &Config::default());
        assert_eq!(
            text,
            "server.1=h:1:2:participant;h:3\nserver.2=h:4:5:participant;0.0.0.0:6\n\
             server.3=h:7:8:observer;h:9\nversion=1f"
        );
        assert_eq!(text_version(text.as_bytes()), Some(0x1f));
        assert_eq!(text_version(b""), None);
    }
}
