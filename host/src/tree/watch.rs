//! The watch registry: which session watches which path, and how. Local to each server (the
//! server that holds a session's connection holds its watches), not replicated, not in the
//! digest. Entry points: `add`, `trigger` (turns a txn's triggers into notifications),
//! `remove`/`contains` (removeWatches/checkWatches), `remove_session`, and the listings for
//! the wchs/wchc/wchp four-letter words.
//!
//! Model, after ZooKeeper's two watch tables (data and child): a session's registration on a
//! path is a set of bits. Data and exist watches are one bit (ZooKeeper stores both as data
//! watches); a persistent watch sits in both tables (two bits), a persistent-recursive one in
//! the data table only. One event notifies each session at most once, however many of its
//! registrations match (checked on ZooKeeper 3.8.0: a data watch plus a persistent watch give
//! one NodeDataChanged; data + child watch give one NodeDeleted). Deviation kept on purpose:
//! 3.8.0 keeps one mode per (session, path, table), so a later one-shot watch silently
//! downgrades a persistent one (ZOOKEEPER-4466); here the kinds coexist, as in 3.9.
//! Notifications come out in trigger order, then session id order.
//!
//! Limits (issue #12): a session watches at most `max_paths_per_session` paths (the
//! `zkw.maxWatchesPerSession` key; ZooKeeper has no such cap); adding a kind to a path the
//! session already watches is free. Delivery: every notification is filtered by the watcher's
//! READ permission on the node it names, through the `may_read` the server hands to
//! [`WatchRegistry::trigger`] (as ZooKeeper 3.9.2+ filters every event after
//! CVE-2024-23944); a one-shot watch whose event is filtered is consumed all the same, as there.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::path::parent_of;
use crate::proto::{Acl, ErrorCode, EventType, SessionId, WatcherType, Zxid};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WatchKind {
    Data,
    Exist,
    Child,
    Persistent,
    PersistentRecursive,
}

/// One event a txn caused, with the ACL that decides who may hear of it: the node's own (for
/// NodeDeleted, the ACL it had), the parent's for NodeChildrenChanged, as ZooKeeper's DataTree
/// passes them. Built by `Tree::watch_trigger`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchTrigger {
    pub path: String,
    pub event: EventType,
    pub acl: Arc<[Acl]>,
}

/// Why a registration was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum WatchError {
    /// The session already watches `limit` paths (answered as QuotaExceeded).
    #[error("session 0x{session_id:x} already watches {limit} paths (zkw.maxWatchesPerSession)")]
    TooManyPaths { session_id: SessionId, limit: usize },
}

impl WatchError {
    /// The code the client sees: QuotaExceeded, ZooKeeper's answer to a write past an enforced
    /// quota; its clients (Java 3.7+, kazoo, the Rust crates) know it and do not retry it.
    pub fn code(&self) -> ErrorCode {
        match self {
            WatchError::TooManyPaths { .. } => ErrorCode::QuotaExceeded,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    pub session_id: SessionId,
    pub zxid: Zxid,
    pub path: String,
    pub event: EventType,
}

/// One-shot data or exist watch (data table).
const DATA: u8 = 1;
/// Persistent watch, data-table half.
const PERSISTENT_DATA: u8 = 1 << 1;
/// Persistent-recursive watch (data table only).
const RECURSIVE: u8 = 1 << 2;
/// One-shot child watch (child table).
const CHILD: u8 = 1 << 3;
/// Persistent watch, child-table half.
const PERSISTENT_CHILD: u8 = 1 << 4;

const DATA_TABLE: u8 = DATA | PERSISTENT_DATA | RECURSIVE;
const CHILD_TABLE: u8 = CHILD | PERSISTENT_CHILD;
const ONE_SHOT: u8 = DATA | CHILD;

#[derive(Debug)]
pub struct WatchRegistry {
    by_path: BTreeMap<String, BTreeMap<SessionId, u8>>,
    by_session: BTreeMap<SessionId, BTreeSet<String>>,
    /// Registrations holding RECURSIVE; when zero, ancestors need not be searched.
    recursive_count: usize,
    /// Most paths one session may watch (`zkw.maxWatchesPerSession`).
    max_paths_per_session: usize,
}

fn kind_bits(kind: WatchKind) -> u8 {
    match kind {
        WatchKind::Data | WatchKind::Exist => DATA,
        WatchKind::Child => CHILD,
        WatchKind::Persistent => PERSISTENT_DATA | PERSISTENT_CHILD,
        WatchKind::PersistentRecursive => RECURSIVE,
    }
}

/// The bits a checkWatches/removeWatches type names (ZooKeeper 3.8 answers types 4 and 5
/// with MarshallingError; here they name the persistent kinds).
fn watcher_type_bits(watcher_type: WatcherType) -> u8 {
    match watcher_type {
        WatcherType::Children => CHILD_TABLE,
        WatcherType::Data => DATA_TABLE,
        WatcherType::Any => DATA_TABLE | CHILD_TABLE,
        WatcherType::Persistent => PERSISTENT_DATA | PERSISTENT_CHILD,
        WatcherType::PersistentRecursive => RECURSIVE,
    }
}

/// Bits that fire for `event` on the event's own path.
fn matching_bits(event: EventType) -> u8 {
    match event {
        EventType::NodeCreated | EventType::NodeDataChanged => DATA_TABLE,
        EventType::NodeDeleted => DATA_TABLE | CHILD_TABLE,
        EventType::NodeChildrenChanged => CHILD_TABLE,
        _ => 0,
    }
}

impl WatchRegistry {
    pub fn new(max_paths_per_session: usize) -> WatchRegistry {
        WatchRegistry {
            by_path: BTreeMap::new(),
            by_session: BTreeMap::new(),
            recursive_count: 0,
            max_paths_per_session,
        }
    }

    /// Registers a watch; refused when it would make the session watch more paths than the
    /// cap (a path it already watches costs nothing).
    pub fn add(
        &mut self,
        session_id: SessionId,
        path: &str,
        kind: WatchKind,
    ) -> Result<(), WatchError> {
        let watched = self.by_session.get(&session_id);
        let known = watched.is_some_and(|paths| paths.contains(path));
        if !known && watched.map_or(0, BTreeSet::len) >= self.max_paths_per_session {
            return Err(WatchError::TooManyPaths {
                session_id,
                limit: self.max_paths_per_session,
            });
        }
        let bits = kind_bits(kind);
        let entry = self
            .by_path
            .entry(path.to_owned())
            .or_default()
            .entry(session_id)
            .or_insert(0);
        if bits & RECURSIVE != 0 && *entry & RECURSIVE == 0 {
            self.recursive_count += 1;
        }
        *entry |= bits;
        self.by_session
            .entry(session_id)
            .or_default()
            .insert(path.to_owned());
        Ok(())
    }

    /// Notifications for `triggers` (in order), removing the one-shot watches that fire. A
    /// session hears of an event only when `may_read(session, trigger's ACL)` holds; its
    /// one-shot watch is consumed either way.
    pub fn trigger(
        &mut self,
        zxid: Zxid,
        triggers: &[WatchTrigger],
        mut may_read: impl FnMut(SessionId, &[Acl]) -> bool,
    ) -> Vec<Notification> {
        let mut notifications = Vec::new();
        for trigger in triggers {
            let sessions = self.fire(&trigger.path, trigger.event);
            let allowed = sessions
                .into_iter()
                .filter(|session_id| may_read(*session_id, &trigger.acl));
            notifications.extend(allowed.map(|session_id| Notification {
                session_id,
                zxid,
                path: trigger.path.clone(),
                event: trigger.event,
            }));
        }
        notifications
    }

    /// The sessions to notify of one event, sorted; one-shot bits that matched are cleared.
    fn fire(&mut self, path: &str, event: EventType) -> BTreeSet<SessionId> {
        let bits = matching_bits(event);
        let mut sessions = BTreeSet::new();
        let mut emptied = Vec::new();
        if let Some(watchers) = self.by_path.get_mut(path) {
            for (session_id, held) in watchers.iter_mut() {
                if *held & bits != 0 {
                    sessions.insert(*session_id);
                    *held &= !(bits & ONE_SHOT);
                    if *held == 0 {
                        emptied.push(*session_id);
                    }
                }
            }
        }
        for session_id in emptied {
            self.forget(session_id, path);
        }
        // Recursive watches on ancestors see every event except NodeChildrenChanged.
        if bits & RECURSIVE != 0 && self.recursive_count > 0 && path != "/" {
            let mut current = parent_of(path);
            while let Some(ancestor) = current {
                if let Some(watchers) = self.by_path.get(ancestor) {
                    let recursive = watchers.iter().filter(|(_, held)| **held & RECURSIVE != 0);
                    sessions.extend(recursive.map(|(session_id, _)| *session_id));
                }
                current = if ancestor == "/" {
                    None
                } else {
                    parent_of(ancestor)
                };
            }
        }
        sessions
    }

    /// removeWatches: false when the session had none of that type on the path (NoWatcher).
    pub fn remove(&mut self, session_id: SessionId, path: &str, watcher_type: WatcherType) -> bool {
        let bits = watcher_type_bits(watcher_type);
        let Some(held) = self
            .by_path
            .get_mut(path)
            .and_then(|watchers| watchers.get_mut(&session_id))
        else {
            return false;
        };
        if *held & bits == 0 {
            return false;
        }
        if *held & bits & RECURSIVE != 0 {
            self.recursive_count -= 1;
        }
        *held &= !bits;
        if *held == 0 {
            self.forget(session_id, path);
        }
        true
    }

    /// checkWatches.
    pub fn contains(&self, session_id: SessionId, path: &str, watcher_type: WatcherType) -> bool {
        let bits = watcher_type_bits(watcher_type);
        self.by_path
            .get(path)
            .and_then(|watchers| watchers.get(&session_id))
            .is_some_and(|held| held & bits != 0)
    }

    pub fn remove_session(&mut self, session_id: SessionId) {
        let Some(paths) = self.by_session.remove(&session_id) else {
            return;
        };
        for path in paths {
            if let Some(watchers) = self.by_path.get_mut(&path) {
                if let Some(held) = watchers.remove(&session_id) {
                    if held & RECURSIVE != 0 {
                        self.recursive_count -= 1;
                    }
                }
                if watchers.is_empty() {
                    self.by_path.remove(&path);
                }
            }
        }
    }

    /// Watch count as ZooKeeper's wchs "Total watches": entries of the data table plus entries
    /// of the child table (a persistent watch counts twice).
    pub fn count(&self) -> usize {
        self.by_path
            .values()
            .flat_map(|watchers| watchers.values())
            .map(|held| usize::from(held & DATA_TABLE != 0) + usize::from(held & CHILD_TABLE != 0))
            .sum()
    }

    /// Number of watched paths.
    pub fn path_count(&self) -> usize {
        self.by_path.len()
    }

    /// Sessions with their sorted watched paths (wchc), sorted by session id.
    pub fn by_session(&self) -> Vec<(SessionId, Vec<String>)> {
        self.by_session
            .iter()
            .map(|(id, paths)| (*id, paths.iter().cloned().collect()))
            .collect()
    }

    /// Paths with their sorted watching sessions (wchp), sorted by path.
    pub fn by_path(&self) -> Vec<(String, Vec<SessionId>)> {
        self.by_path
            .iter()
            .map(|(path, watchers)| (path.clone(), watchers.keys().copied().collect()))
            .collect()
    }

    /// Drops the (session, path) registration whose bits became empty.
    fn forget(&mut self, session_id: SessionId, path: &str) {
        if let Some(watchers) = self.by_path.get_mut(path) {
            watchers.remove(&session_id);
            if watchers.is_empty() {
                self.by_path.remove(path);
            }
        }
        if let Some(paths) = self.by_session.get_mut(&session_id) {
            paths.remove(path);
            if paths.is_empty() {
                self.by_session.remove(&session_id);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fire(
        registry: &mut WatchRegistry,
        path: &str,
        event: EventType,
    ) -> Vec<(SessionId, String, EventType)> {
        let trigger = WatchTrigger {
            path: path.into(),
            event,
            acl: Arc::from([]),
        };
        let notifications = registry.trigger(9, &[trigger], |_, _| true);
        assert!(notifications.iter().all(|n| n.zxid == 9));
        notifications
            .into_iter()
            .map(|n| (n.session_id, n.path, n.event))
            .collect()
    }

    #[test]
    fn data_and_persistent_give_one_notification() {
        let mut registry = WatchRegistry::new(usize::MAX);
        registry.add(1, "/a", WatchKind::Data).unwrap();
        registry.add(1, "/a", WatchKind::Persistent).unwrap();
        registry
            .add(1, "/", WatchKind::PersistentRecursive)
            .unwrap();
        assert_eq!(
            fire(&mut registry, "/a", EventType::NodeDataChanged),
            vec![(1, "/a".into(), EventType::NodeDataChanged)]
        );
        assert_eq!(
            fire(&mut registry, "/a", EventType::NodeDataChanged).len(),
            1,
            "persistent stays"
        );
    }

    #[test]
    fn one_shot_watches_fire_once() {
        let mut registry = WatchRegistry::new(usize::MAX);
        registry.add(2, "/a", WatchKind::Data).unwrap();
        registry.add(1, "/a", WatchKind::Exist).unwrap();
        registry.add(1, "/a", WatchKind::Child).unwrap();
        let fired = fire(&mut registry, "/a", EventType::NodeDeleted);
        assert_eq!(
            fired,
            vec![
                (1, "/a".into(), EventType::NodeDeleted),
                (2, "/a".into(), EventType::NodeDeleted)
            ]
        );
        assert!(fire(&mut registry, "/a", EventType::NodeDeleted).is_empty());
        assert_eq!(registry.count(), 0);
        assert!(registry.by_path().is_empty() && registry.by_session().is_empty());
    }

    #[test]
    fn events_reach_the_right_kinds() {
        let mut registry = WatchRegistry::new(usize::MAX);
        registry.add(1, "/a", WatchKind::Child).unwrap();
        registry.add(2, "/a", WatchKind::Data).unwrap();
        assert_eq!(
            fire(&mut registry, "/a", EventType::NodeChildrenChanged),
            vec![(1, "/a".into(), EventType::NodeChildrenChanged)]
        );
        assert_eq!(
            fire(&mut registry, "/a", EventType::NodeCreated),
            vec![(2, "/a".into(), EventType::NodeCreated)]
        );
        registry
            .add(3, "/a", WatchKind::PersistentRecursive)
            .unwrap();
        registry
            .add(4, "/", WatchKind::PersistentRecursive)
            .unwrap();
        registry.add(5, "/a", WatchKind::Persistent).unwrap();
        let children = fire(&mut registry, "/a", EventType::NodeChildrenChanged);
        assert_eq!(
            children,
            vec![(5, "/a".into(), EventType::NodeChildrenChanged)],
            "never recursive"
        );
        let created: Vec<SessionId> = fire(&mut registry, "/a/b/c", EventType::NodeCreated)
            .iter()
            .map(|n| n.0)
            .collect();
        assert_eq!(created, vec![3, 4]);
        let deleted: Vec<SessionId> = fire(&mut registry, "/a", EventType::NodeDeleted)
            .iter()
            .map(|n| n.0)
            .collect();
        assert_eq!(deleted, vec![3, 4, 5]);
        let root: Vec<SessionId> = fire(&mut registry, "/", EventType::NodeDataChanged)
            .iter()
            .map(|n| n.0)
            .collect();
        assert_eq!(root, vec![4]);
    }

    #[test]
    fn remove_contains_and_listings() {
        let mut registry = WatchRegistry::new(usize::MAX);
        registry.add(1, "/w", WatchKind::Persistent).unwrap();
        registry.add(1, "/w", WatchKind::Child).unwrap();
        registry.add(2, "/w", WatchKind::Data).unwrap();
        registry
            .add(2, "/v", WatchKind::PersistentRecursive)
            .unwrap();
        assert_eq!(registry.count(), 4);
        assert!(registry.contains(1, "/w", WatcherType::Data));
        assert!(!registry.contains(1, "/w", WatcherType::PersistentRecursive));
        assert!(!registry.remove(1, "/v", WatcherType::Any));
        // As in 3.8: removing the data side leaves the child side of a persistent watch.
        assert!(registry.remove(1, "/w", WatcherType::Data));
        assert!(registry.contains(1, "/w", WatcherType::Any));
        assert!(!registry.contains(1, "/w", WatcherType::Data));
        assert!(registry.remove(1, "/w", WatcherType::Any));
        assert!(!registry.contains(1, "/w", WatcherType::Any));
        assert_eq!(
            registry.by_session(),
            vec![(2, vec!["/v".to_owned(), "/w".to_owned()])]
        );
        assert_eq!(
            registry.by_path(),
            vec![("/v".to_owned(), vec![2]), ("/w".to_owned(), vec![2])]
        );
        registry.remove_session(2);
        assert_eq!(
            (
                registry.count(),
                registry.path_count(),
                registry.recursive_count
            ),
            (0, 0, 0)
        );
    }

    #[test]
    fn notifications_follow_trigger_order() {
        let mut registry = WatchRegistry::new(usize::MAX);
        registry.add(1, "/", WatchKind::Child).unwrap();
        registry.add(1, "/a", WatchKind::Exist).unwrap();
        let triggers = [
            WatchTrigger {
                path: "/a".into(),
                event: EventType::NodeCreated,
                acl: Arc::from([]),
            },
            WatchTrigger {
                path: "/".into(),
                event: EventType::NodeChildrenChanged,
                acl: Arc::from([]),
            },
        ];
        let events: Vec<EventType> = registry
            .trigger(3, &triggers, |_, _| true)
            .iter()
            .map(|n| n.event)
            .collect();
        assert_eq!(
            events,
            vec![EventType::NodeCreated, EventType::NodeChildrenChanged]
        );
    }

    #[test]
    fn paths_per_session_are_capped() {
        let mut registry = WatchRegistry::new(2);
        registry.add(1, "/a", WatchKind::Data).unwrap();
        registry
            .add(1, "/b", WatchKind::PersistentRecursive)
            .unwrap();
        assert_eq!(
            registry.add(1, "/c", WatchKind::Exist),
            Err(WatchError::TooManyPaths {
                session_id: 1,
                limit: 2
            })
        );
        registry.add(1, "/a", WatchKind::Child).unwrap();
        registry.add(2, "/c", WatchKind::Exist).unwrap();
        fire(&mut registry, "/a", EventType::NodeDeleted);
        registry.add(1, "/c", WatchKind::Exist).unwrap();
        assert_eq!(registry.by_session()[0].1, vec!["/b", "/c"]);
        assert!(
            registry.add(1, "/d", WatchKind::Data).is_err(),
            "the fired one-shot watch freed its slot, no more"
        );
    }

    #[test]
    fn unreadable_events_are_not_delivered_but_consume_one_shot_watches() {
        let mut registry = WatchRegistry::new(usize::MAX);
        registry
            .add(1, "/", WatchKind::PersistentRecursive)
            .unwrap();
        registry
            .add(2, "/", WatchKind::PersistentRecursive)
            .unwrap();
        registry.add(1, "/s", WatchKind::Exist).unwrap();
        let secret: Arc<[Acl]> = Arc::from([]);
        let trigger = WatchTrigger {
            path: "/s".into(),
            event: EventType::NodeCreated,
            acl: secret,
        };
        let sessions = |notifications: Vec<Notification>| -> Vec<SessionId> {
            notifications.iter().map(|n| n.session_id).collect()
        };
        let heard = registry.trigger(4, std::slice::from_ref(&trigger), |id, _| id == 2);
        assert_eq!(sessions(heard), vec![2]);
        assert!(!registry.contains(1, "/s", WatcherType::Data), "consumed");
        let heard = registry.trigger(5, &[trigger], |id, _| id == 1);
        assert_eq!(sessions(heard), vec![1], "the recursive watch stays");
    }
}
