//! The client's typed error: what a request or a connect attempt can end with.

use std::time::Duration;

use crate::proto::{DecodeError, ErrorCode, FrameError};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a non-zero error code (NoNode, NodeExists, BadVersion...).
    #[error("server answered {0:?} ({code})", code = .0.code())]
    Server(ErrorCode),
    /// A non-zero reply code this build does not know.
    #[error("server answered unknown error code {0}")]
    UnknownCode(i32),
    /// The connection broke (or was never whole): every request in flight fails with this (its
    /// outcome is unknown), and so does every request made before the client has resumed its
    /// session on another connection.
    #[error("connection lost: {0}")]
    ConnectionLoss(String),
    /// A wait passed its bound (the session timeout).
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, &'static str),
    /// The server refused the session (a connect answer with timeout <= 0).
    #[error("session expired or refused by the server")]
    SessionExpired,
    /// No server in the list took the connection.
    #[error("could not connect to any of {servers}: {last}")]
    Connect { servers: String, last: String },
    /// A server list entry is not `host[:port]`, or the list is empty.
    #[error("bad server address {0:?}")]
    BadAddress(String),
    /// The server sent bytes we cannot read as the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A well-formed reply whose body does not fit the request (a server bug).
    #[error("unexpected reply body to op {op}: {body}")]
    UnexpectedReply { op: i32, body: String },
    /// The client was closed (by `close`) before this request could be sent.
    #[error("client closed")]
    Closed,
}

impl ClientError {
    /// The error for a non-zero reply code.
    pub fn from_code(code: i32) -> ClientError {
        match ErrorCode::from_code(code) {
            Some(known) => ClientError::Server(known),
            None => ClientError::UnknownCode(code),
        }
    }

    /// Whether this error breaks the caller's run of requests on the session: the connection
    /// was lost (what was in flight is unknown, though the session may resume) or never came,
    /// the session expired, or the client was closed. A server's answer or a timed-out wait
    /// does not.
    pub fn ends_the_session(&self) -> bool {
        match self {
            ClientError::ConnectionLoss(_)
            | ClientError::SessionExpired
            | ClientError::Connect { .. }
            | ClientError::BadAddress(_)
            | ClientError::Protocol(_)
            | ClientError::Closed => true,
            ClientError::Server(code) => *code == ErrorCode::SessionExpired,
            ClientError::UnknownCode(_)
            | ClientError::Timeout(..)
            | ClientError::UnexpectedReply { .. } => false,
        }
    }

    /// The server's error code, when this is a server answer.
    pub fn server_code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server(code) => Some(*code),
            _ => None,
        }
    }
}

impl From<DecodeError> for ClientError {
    fn from(error: DecodeError) -> Self {
        ClientError::Protocol(error.to_string())
    }
}

impl From<FrameError> for ClientError {
    fn from(error: FrameError) -> Self {
        ClientError::Protocol(error.to_string())
    }
}
