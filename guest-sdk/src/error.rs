//! Errors a recipe sees and returns: [`Error`] is a ZooKeeper error code (what the host's
//! `get`/`children`/`write` imports answer, and what a failed handler reports), [`Reject`] is a
//! validator's "no" (a code the client receives plus a reason for the logs and the caller).

use crate::abi::AbiError;

/// A ZooKeeper error code, as `KeeperException.Code` numbers them. The host answers reads and
/// writes with these; a handler returns one to fail its run (its writes are then discarded).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// -1: something went wrong that has no better code.
    #[error("system error")]
    SystemError,
    /// -5: bytes between the recipe and the host did not decode.
    #[error("marshalling error")]
    MarshallingError,
    /// -6: the host does not implement this operation.
    #[error("unimplemented")]
    Unimplemented,
    /// -8: an argument was invalid (a bad path, an unknown create mode).
    #[error("bad arguments")]
    BadArguments,
    /// -100: API misuse.
    #[error("API error")]
    ApiError,
    /// -101: the node does not exist.
    #[error("no node")]
    NoNode,
    /// -102: not authorised.
    #[error("not authenticated")]
    NoAuth,
    /// -103: the expected version did not match the node's version.
    #[error("bad version")]
    BadVersion,
    /// -108: ephemeral nodes cannot have children.
    #[error("no children for ephemerals")]
    NoChildrenForEphemerals,
    /// -110: the node already exists.
    #[error("node exists")]
    NodeExists,
    /// -111: the node has children.
    #[error("directory not empty")]
    NotEmpty,
    /// -114: an invalid ACL.
    #[error("invalid ACL")]
    InvalidAcl,
    /// -120: an ephemeral requested without a session (a timer run).
    #[error("ephemeral on local session")]
    EphemeralOnLocalSession,
    /// -125: a quota was exceeded.
    #[error("quota exceeded")]
    QuotaExceeded,
    /// Any other code, kept as the host sent it.
    #[error("ZooKeeper error {0}")]
    Other(i32),
}

impl Error {
    /// The ZooKeeper code; never 0 (0 means success on the wire, so [`Error::Other`] with a
    /// non-negative value reports [`Error::SystemError`]'s code instead).
    pub fn code(self) -> i32 {
        match self {
            Error::SystemError => -1,
            Error::MarshallingError => -5,
            Error::Unimplemented => -6,
            Error::BadArguments => -8,
            Error::ApiError => -100,
            Error::NoNode => -101,
            Error::NoAuth => -102,
            Error::BadVersion => -103,
            Error::NoChildrenForEphemerals => -108,
            Error::NodeExists => -110,
            Error::NotEmpty => -111,
            Error::InvalidAcl => -114,
            Error::EphemeralOnLocalSession => -120,
            Error::QuotaExceeded => -125,
            Error::Other(code) if code < 0 => code,
            Error::Other(_) => -1,
        }
    }

    /// The error for a code the host returned (a negative number).
    pub fn from_code(code: i32) -> Error {
        match code {
            -1 => Error::SystemError,
            -5 => Error::MarshallingError,
            -6 => Error::Unimplemented,
            -8 => Error::BadArguments,
            -100 => Error::ApiError,
            -101 => Error::NoNode,
            -102 => Error::NoAuth,
            -103 => Error::BadVersion,
            -108 => Error::NoChildrenForEphemerals,
            -110 => Error::NodeExists,
            -111 => Error::NotEmpty,
            -114 => Error::InvalidAcl,
            -120 => Error::EphemeralOnLocalSession,
            -125 => Error::QuotaExceeded,
            other => Error::Other(other),
        }
    }
}

/// Bytes from the host that do not decode are the host's fault, reported as ZooKeeper does.
impl From<AbiError> for Error {
    fn from(_: AbiError) -> Error {
        Error::MarshallingError
    }
}

/// A validator's rejection: the client's write fails with `error`'s code and `reason` becomes the
/// run's result (the host logs it and may show it to the caller).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{error}: {reason}")]
pub struct Reject {
    pub error: Error,
    pub reason: String,
}

impl Reject {
    pub fn new(error: Error, reason: impl Into<String>) -> Reject {
        Reject {
            error,
            reason: reason.into(),
        }
    }

    /// Rejects with [`Error::BadArguments`], the usual answer to data a recipe does not accept.
    pub fn bad_arguments(reason: impl Into<String>) -> Reject {
        Reject::new(Error::BadArguments, reason)
    }
}

/// Lets a validator use `?` on its own reads: a failed read rejects the write.
impl From<Error> for Reject {
    fn from(error: Error) -> Reject {
        Reject::new(error, format!("validator failed: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_never_success() {
        for code in [
            -1, -5, -6, -8, -100, -101, -102, -103, -108, -110, -111, -114, -120, -125,
        ] {
            assert_eq!(Error::from_code(code).code(), code);
            assert!(!matches!(Error::from_code(code), Error::Other(_)), "{code}");
        }
        assert_eq!(Error::from_code(-999), Error::Other(-999));
        assert_eq!(Error::Other(-999).code(), -999);
        assert_eq!(Error::Other(0).code(), -1);
        assert_eq!(Error::Other(7).code(), -1);
    }

    #[test]
    fn reject_from_error_keeps_the_code() {
        let reject = Reject::from(Error::NoNode);
        assert_eq!(reject.error, Error::NoNode);
        assert!(reject.reason.contains("no node"));
    }
}
