//! `proto`: the ZooKeeper client wire protocol. Jute encoding, records, op and error codes,
//! frames. Pure: no I/O, no knowledge of sockets or of the tree.
//!
//! Entry points: [`take_frame`] cuts frames off a read buffer; [`decode_connect_request`] and
//! [`decode_request`] turn payloads into typed records; [`encode_connect_response`],
//! [`encode_reply`] and [`encode_notification`] write whole frames. The client-side mirror
//! ([`encode_connect_request`], [`encode_request`] with [`Request::op`],
//! [`decode_connect_response`], [`decode_reply_header`], [`decode_reply`],
//! [`decode_notification`]) serves our own client, the bench and the round-trip tests.
//!
//! Internals: `jute` is the bounds-checked reader and the writers; `records/` holds the record
//! structs and one file per opcode family; `codec` dispatches by op code; `size` computes a
//! reply's encoded size without encoding it ([`ReplyBudget`] bounds the replies whose size
//! depends on the tree; [`encode_reply`] refuses one past its limit with [`EncodeError`]). `tests` has
//! hand-checked byte vectors and property tests; `java_fixtures` replays frames captured from
//! the ZooKeeper 3.8.0 Java client and server.

mod codec;
mod frame;
mod jute;
mod message;
mod records;
mod size;
mod types;

pub use codec::*;
pub use frame::*;
pub use message::*;
pub use records::*;
pub use size::*;
pub use types::*;

// For txn::codec, which frames the replicated log with the same jute primitives.
pub(crate) use jute::{put_ustring, put_vec, Reader, Record};

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (style.md)
mod java_fixtures;
#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (style.md)
mod tests;
