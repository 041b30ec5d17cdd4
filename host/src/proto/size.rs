//! Encoded sizes of replies, computed without encoding them, and the budget a read charges
//! while it builds a reply whose size depends on the tree (a parent's children, a session's
//! ephemerals, a multiRead, an ACL).
//!
//! A read charges each piece *before* it copies it out of the tree, so a reply past the
//! limit is refused after at most `max_bytes` of work, never built whole (a multiRead naming
//! one 1 MB node a hundred thousand times would otherwise copy 100 GB under the tree lock).
//! [`encode_reply`](super::encode_reply) checks the same size before writing a byte, so no
//! reply can overflow jute's int32 lengths. Pure: the limit (jute.maxbuffer) and the error
//! code the client gets are the server's choice.

use super::jute::LENGTH_PREFIX_BYTES;
use super::message::Response;
use super::records::{ClientInfo, MultiResult, MULTI_HEADER_BYTES, REPLY_HEADER_BYTES, STAT_BYTES};
use super::types::Acl;

/// The largest frame payload jute can announce: the frame length is an int32.
pub const FRAME_BYTES_WIRE_MAX: usize = 0x7fff_ffff;
/// Bytes of an int32 on the wire (perms, a total, an error code).
const INT_BYTES: usize = 4;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodeError {
    /// `bytes` is a lower bound: counting stopped at the first piece past the limit.
    #[error("a reply of at least {bytes} bytes is above the limit of {max_bytes} bytes")]
    TooLarge { bytes: usize, max_bytes: usize },
}

/// A `ustring`: its length prefix and its bytes.
pub fn ustring_bytes(text: &str) -> usize {
    LENGTH_PREFIX_BYTES.saturating_add(text.len())
}

/// A `buffer` that may be null (null is the length prefix alone).
pub fn buffer_bytes(bytes: Option<&[u8]>) -> usize {
    LENGTH_PREFIX_BYTES.saturating_add(bytes.map_or(0, <[u8]>::len))
}

/// A `vector` of `ustring`s.
fn strings_bytes(items: &[String]) -> usize {
    items.iter().fold(LENGTH_PREFIX_BYTES, |sum, item| {
        sum.saturating_add(ustring_bytes(item))
    })
}

/// One ACL entry: perms, scheme, id.
fn acl_entry_bytes(entry: &Acl) -> usize {
    INT_BYTES
        .saturating_add(ustring_bytes(&entry.id.scheme))
        .saturating_add(ustring_bytes(&entry.id.id))
}

/// A `vector` of ACL entries.
pub fn acl_bytes(acl: &[Acl]) -> usize {
    acl.iter().fold(LENGTH_PREFIX_BYTES, |sum, entry| {
        sum.saturating_add(acl_entry_bytes(entry))
    })
}

fn client_info_bytes(info: &ClientInfo) -> usize {
    ustring_bytes(&info.auth_scheme).saturating_add(ustring_bytes(&info.user))
}

/// One result of a multi or multiRead, its MultiHeader included.
pub fn multi_result_bytes(result: &MultiResult) -> usize {
    let body = match result {
        MultiResult::Create { path } => ustring_bytes(path),
        MultiResult::Create2 { path, .. } => ustring_bytes(path).saturating_add(STAT_BYTES),
        MultiResult::Delete | MultiResult::Check => 0,
        MultiResult::SetData { .. } => STAT_BYTES,
        MultiResult::GetData { data, .. } => {
            buffer_bytes(data.as_deref()).saturating_add(STAT_BYTES)
        }
        MultiResult::GetChildren { children } => strings_bytes(children),
        MultiResult::Error(_) => INT_BYTES,
    };
    MULTI_HEADER_BYTES.saturating_add(body)
}

/// The bytes of a reply body as `encode_reply` writes it after a successful header.
pub fn reply_body_bytes(body: &Response) -> usize {
    match body {
        Response::Empty => 0,
        Response::Create { path } | Response::Sync { path } => ustring_bytes(path),
        Response::Create2 { path, .. } => ustring_bytes(path).saturating_add(STAT_BYTES),
        Response::Stat(_) => STAT_BYTES,
        Response::GetData { data, .. } => buffer_bytes(data.as_deref()).saturating_add(STAT_BYTES),
        Response::GetAcl { acl, .. } => acl_bytes(acl).saturating_add(STAT_BYTES),
        Response::GetChildren { children } => strings_bytes(children),
        Response::GetChildren2 { children, .. } => {
            strings_bytes(children).saturating_add(STAT_BYTES)
        }
        Response::Multi(results) => results.iter().fold(MULTI_HEADER_BYTES, |sum, result| {
            sum.saturating_add(multi_result_bytes(result))
        }),
        Response::Sasl { token } => buffer_bytes(Some(token)),
        Response::GetEphemerals { paths } => strings_bytes(paths),
        Response::GetAllChildrenNumber { .. } | Response::ErrorResponse(_) => INT_BYTES,
        Response::WhoAmI(infos) => infos.iter().fold(LENGTH_PREFIX_BYTES, |sum, info| {
            sum.saturating_add(client_info_bytes(info))
        }),
    }
}

/// What a read may still add to its reply. It starts with the ReplyHeader charged; a read
/// charges every piece before copying it, and stops at the first refusal.
#[derive(Debug)]
pub struct ReplyBudget {
    used_bytes: usize,
    max_bytes: usize,
}

impl ReplyBudget {
    /// A budget for a reply payload (header included, frame length not) of `max_bytes`.
    pub fn new(max_bytes: usize) -> ReplyBudget {
        ReplyBudget {
            used_bytes: REPLY_HEADER_BYTES,
            max_bytes: max_bytes.min(FRAME_BYTES_WIRE_MAX),
        }
    }

    /// Adds `bytes`; past the limit the reply is refused.
    pub fn charge(&mut self, bytes: usize) -> Result<(), EncodeError> {
        self.used_bytes = self.used_bytes.saturating_add(bytes);
        if self.used_bytes > self.max_bytes {
            return Err(EncodeError::TooLarge {
                bytes: self.used_bytes,
                max_bytes: self.max_bytes,
            });
        }
        Ok(())
    }

    /// Copies `names` into a `vector` of `ustring`s, charging each before copying it.
    pub fn strings<'a>(
        &mut self,
        names: impl Iterator<Item = &'a str>,
    ) -> Result<Vec<String>, EncodeError> {
        self.charge(LENGTH_PREFIX_BYTES)?;
        let mut strings = Vec::new();
        for name in names {
            self.charge(ustring_bytes(name))?;
            strings.push(name.to_owned());
        }
        Ok(strings)
    }

    /// The payload charged so far, header included.
    pub fn used_bytes(&self) -> usize {
        self.used_bytes
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (style.md)
mod tests {
    use super::*;

    #[test]
    fn budget_refuses_past_the_limit_and_stops_copying() {
        let mut budget = ReplyBudget::new(REPLY_HEADER_BYTES + 4 + 3 * 5);
        let names = ["a", "b", "c", "d"];
        let mut copied = 0;
        let counted = names.iter().map(|name| {
            copied += 1;
            *name
        });
        let error = budget.strings(counted).unwrap_err();
        assert_eq!(
            error,
            EncodeError::TooLarge {
                bytes: REPLY_HEADER_BYTES + 4 + 4 * 5,
                max_bytes: REPLY_HEADER_BYTES + 4 + 3 * 5
            }
        );
        assert_eq!(copied, 4, "it stops at the first name past the limit");
        let mut exact = ReplyBudget::new(REPLY_HEADER_BYTES + 4 + 3 * 5);
        assert_eq!(exact.strings(names[..3].iter().copied()).unwrap().len(), 3);
        assert_eq!(exact.used_bytes(), REPLY_HEADER_BYTES + 4 + 3 * 5);
    }

    #[test]
    fn budget_is_capped_by_the_wire() {
        let mut budget = ReplyBudget::new(usize::MAX);
        assert!(budget
            .charge(FRAME_BYTES_WIRE_MAX - REPLY_HEADER_BYTES)
            .is_ok());
        assert!(budget.charge(1).is_err());
        assert!(budget.charge(usize::MAX).is_err(), "saturates, never wraps");
    }
}
