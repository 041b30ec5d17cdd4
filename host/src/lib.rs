//! zkw: a coordination service that speaks the Apache ZooKeeper client protocol.
//!
//! The modules follow the map in `docs/architecture.md`:
//! - [`proto`]: the wire protocol, pure.
//! - [`tree`]: znodes, Stat, ACLs, node kinds, the watch registry; pure.
//! - [`txn`]: the replicated entry and the deterministic `apply`.
//! - [`consensus`]: the replicated log behind a seam (standalone committer today).
//! - [`session`]: session liveness and expiry.
//! - [`server`]: listeners, connections, dispatch, four-letter words.
//! - [`config`]: zoo.cfg / zkw.toml.
//! - [`tls`]: rustls configurations for the secure client port and the quorum.
//! - [`cli`]: the `zkw` command tree.
//! - [`client`]: an async ZooKeeper client for our tools (bench, cli) and tests.
//! - [`fatal`]: fail-stop: the fatal-error signal every layer raises on, and exit statuses.

pub mod admin;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod consensus;
pub mod fatal;
pub mod net;
pub mod proto;
pub mod server;
pub mod session;
pub mod timing;
pub mod tls;
pub mod tree;
pub mod txn;
pub mod wasm;
