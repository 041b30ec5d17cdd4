//! The watch registry. (skeleton)
use crate::proto::{EventType, SessionId, WatcherType, Zxid};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WatchKind {
    Data,
    Exist,
    Child,
    Persistent,
    PersistentRecursive,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchTrigger {
    pub path: String,
    pub event: EventType,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    pub session_id: SessionId,
    pub zxid: Zxid,
    pub path: String,
    pub event: EventType,
}

#[derive(Debug, Default)]
pub struct WatchRegistry {}

impl WatchRegistry {
    pub fn add(&mut self, session_id: SessionId, path: &str, kind: WatchKind) {
        let _ = (session_id, path, kind);
        todo!()
    }
    pub fn trigger(&mut self, zxid: Zxid, triggers: &[WatchTrigger]) -> Vec<Notification> {
        let _ = (zxid, triggers);
        todo!()
    }
    pub fn remove(&mut self, session_id: SessionId, path: &str, watcher_type: WatcherType) -> bool {
        let _ = (session_id, path, watcher_type);
        todo!()
    }
    pub fn contains(&self, session_id: SessionId, path: &str, watcher_type: WatcherType) -> bool {
        let _ = (session_id, path, watcher_type);
        todo!()
    }
    pub fn remove_session(&mut self, session_id: SessionId) {
        let _ = session_id;
        todo!()
    }
    pub fn count(&self) -> usize {
        todo!()
    }
    pub fn by_session(&self) -> Vec<(SessionId, Vec<String>)> {
        todo!()
    }
    pub fn by_path(&self) -> Vec<(String, Vec<SessionId>)> {
        todo!()
    }
}
