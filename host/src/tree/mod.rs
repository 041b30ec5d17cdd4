//! `tree`: the znode tree. (skeleton: signatures the server codes against; to be implemented)

pub mod acl;
pub mod watch;

use crate::proto::{Acl, ErrorCode, Id, SessionId, Stat, Zxid};

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum TreeError {
    #[error("no node {0}")]
    NoNode(String),
}

impl TreeError {
    pub fn code(&self) -> ErrorCode {
        todo!()
    }
}

/// What the tree remembers of a session (replicated state).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    pub timeout_ms: i32,
    pub password: [u8; 16],
}

#[derive(Debug, Default)]
pub struct Tree {}

impl Tree {
    pub fn new() -> Tree {
        todo!()
    }
    pub fn last_zxid(&self) -> Zxid {
        todo!()
    }
    pub fn get_data(&self, path: &str, auth: &[Id]) -> Result<(Vec<u8>, Stat), TreeError> {
        let _ = (path, auth);
        todo!()
    }
    pub fn exists(&self, path: &str, auth: &[Id]) -> Result<Stat, TreeError> {
        let _ = (path, auth);
        todo!()
    }
    pub fn get_children(&self, path: &str, auth: &[Id]) -> Result<(Vec<String>, Stat), TreeError> {
        let _ = (path, auth);
        todo!()
    }
    pub fn get_acl(&self, path: &str, auth: &[Id]) -> Result<(Vec<Acl>, Stat), TreeError> {
        let _ = (path, auth);
        todo!()
    }
    pub fn all_children_number(&self, path: &str, auth: &[Id]) -> Result<i32, TreeError> {
        let _ = (path, auth);
        todo!()
    }
    pub fn stat(&self, path: &str) -> Option<Stat> {
        let _ = path;
        todo!()
    }
    pub fn ephemerals(&self, session_id: SessionId, prefix: &str) -> Vec<String> {
        let _ = (session_id, prefix);
        todo!()
    }
    pub fn session(&self, session_id: SessionId) -> Option<&SessionRecord> {
        let _ = session_id;
        todo!()
    }
    pub fn sessions(&self) -> Vec<(SessionId, SessionRecord)> {
        todo!()
    }
    pub fn reapable(&self, now_ms: i64) -> Vec<String> {
        let _ = now_ms;
        todo!()
    }
    pub fn node_count(&self) -> usize {
        todo!()
    }
    pub fn data_size_bytes(&self) -> u64 {
        todo!()
    }
    pub fn ephemeral_count(&self) -> usize {
        todo!()
    }
    pub fn digest(&self) -> u64 {
        todo!()
    }
}
