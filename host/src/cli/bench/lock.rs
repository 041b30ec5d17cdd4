//! `zkw bench --workload lock`: N sessions contend on one lock of the `lock` recipe
//! (recipes/lock), bound to `<root>/locks`. Each session runs cycles: acquire (create an
//! ephemeral sequential `write-` request under `<root>/locks/bench`, then wait for the grant the
//! recipe writes onto it, watching only its own node) → getData + conditional setData of the
//! counter `<root>/counter` → release (delete the request), with the pipelining `cycle` explains. Acquire latency goes to the
//! histogram; a conditional set that fails is a lost update under the lock (an error), and the
//! run ends by checking that the counter equals the increments that took effect.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use tokio::sync::mpsc::UnboundedReceiver;

use super::{LaneResult, Run, Session, LATENCY_US_MAX, SESSION_TIMEOUT_MS};
use crate::cli::lock::grant_token;
use crate::client::{get_data_request, set_data_request, Client, ClientError, WatchedEvent};
use crate::proto::{Acl, CreateMode, DeleteRequest, ErrorCode, Request, Response};

/// Bound on one acquire: longer than any fair wait of a healthy run, in milliseconds.
const ACQUIRE_MS_MAX: u64 = 6 * SESSION_TIMEOUT_MS;

/// The path the recipe is bound to.
pub(super) fn bound_path(root: &str) -> String {
    format!("{root}/locks")
}

fn lock_node(root: &str) -> String {
    format!("{root}/locks/bench")
}

fn counter_node(root: &str) -> String {
    format!("{root}/counter")
}

/// The lock recipe built into this binary (`recipes/lock`).
pub(super) fn recipe_bytes() -> anyhow::Result<Vec<u8>> {
    crate::wasm::embedded::module("lock")
        .map(<[u8]>::to_vec)
        .context("this zkw was built without its recipes (rustup target add wasm32-unknown-unknown, then rebuild), or pass --recipe FILE")
}

/// Creates the recipe's root, the lock and the counter (0).
pub(super) async fn prepare(client: &Client, root: &str) -> anyhow::Result<()> {
    for (path, data) in [
        (bound_path(root), &b""[..]),
        (lock_node(root), b""),
        (counter_node(root), b"0"),
    ] {
        client
            .create(&path, data, &Acl::open_unsafe(), CreateMode::Persistent)
            .await
            .with_context(|| format!("creating {path}"))?;
    }
    Ok(())
}

/// Whether the counter holds exactly `increments`.
pub(super) async fn counter_ok(client: &Client, root: &str, increments: u64) -> bool {
    match client.get_data(&counter_node(root), false).await {
        Ok((data, _)) => {
            let value = String::from_utf8_lossy(&data).parse::<u64>().ok();
            if value != Some(increments) {
                eprintln!("zkw bench: counter {value:?}, but {increments} increments took effect");
            }
            value == Some(increments)
        }
        Err(error) => {
            eprintln!("zkw bench: reading the counter: {error}");
            false
        }
    }
}

/// Deletes the lock workload's nodes; how many deletes failed.
pub(super) async fn cleanup(client: &Client, root: &str) -> u64 {
    let mut failed = 0;
    for path in [lock_node(root), bound_path(root), counter_node(root)] {
        if client.delete(&path, -1).await.is_err() {
            failed += 1;
        }
    }
    failed
}

/// One session's cycles until the run ends or the session breaks.
pub(super) async fn run_lane(
    session: &Session,
    run: &Run,
    mut latency: Histogram<u64>,
) -> LaneResult {
    let taken = session
        .events
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    let mut result = LaneResult {
        ops: 0,
        errors: 0,
        latency: Histogram::new_from(&latency),
        increments: 0,
    };
    let Some(mut events) = taken else {
        result.errors += 1;
        run.note_error(format!("session {}: no watch events", session.index));
        return result;
    };
    while run.may_issue() {
        let outcome = cycle(session, run, &mut events, &mut latency).await;
        run.completed.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Ok(()) => {
                result.ops += 1;
                result.increments += 1;
            }
            Err(Failure {
                fatal,
                what,
                incremented,
            }) => {
                result.errors += 1;
                result.increments += u64::from(incremented);
                run.note_error(format!("session {}: {what}", session.index));
                if fatal {
                    break;
                }
            }
        }
    }
    result.latency = latency;
    result
}

/// Why a cycle failed, and whether its increment took effect anyway.
struct Failure {
    fatal: bool,
    what: String,
    incremented: bool,
}

/// A failed request: an error that loses the connection (the lock request's fate is then
/// unknown) or the session ends the session's lane; a server's answer does not.
fn failure(error: ClientError, incremented: bool) -> Failure {
    let fatal = error.ends_the_session();
    Failure {
        fatal,
        what: error.to_string(),
        incremented,
    }
}

/// A reply of the wrong kind (a server bug), counted as a failed cycle.
fn unexpected(reply: &Response) -> Failure {
    Failure {
        fatal: false,
        what: format!("unexpected reply {reply:?}"),
        incremented: false,
    }
}

/// acquire → read-modify-write → release, pipelined where the session's FIFO order keeps it
/// correct: the counter is read right behind each read of the request (it counts only when
/// that read shows the grant, so it was served while the lock was held), and the release is
/// queued right behind the counter's write (served after it, whatever the write's outcome).
async fn cycle(
    session: &Session,
    run: &Run,
    events: &mut UnboundedReceiver<WatchedEvent>,
    latency: &mut Histogram<u64>,
) -> Result<(), Failure> {
    let client = &session.client;
    let counter = counter_node(&run.root);
    // Stale notifications (our earlier requests' deletions) would only be skipped later.
    while events.try_recv().is_ok() {}
    let started = Instant::now();
    let request = client
        .create(
            &format!("{}/write-", lock_node(&run.root)),
            b"",
            &Acl::open_unsafe(),
            CreateMode::EphemeralSequential,
        )
        .await
        .map_err(|error| failure(error, false))?;
    let bound = Duration::from_millis(ACQUIRE_MS_MAX);
    let (value, version) = tokio::time::timeout(bound, acquire(client, events, &request, &counter))
        .await
        .map_err(|_| Failure {
            fatal: true,
            what: format!("{request} not granted within {bound:?}"),
            incremented: false,
        })??;
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(LATENCY_US_MAX);
    latency.saturating_record(micros.clamp(1, LATENCY_US_MAX));
    let next = (value + 1).to_string();
    let set = client.submit(set_data_request(&counter, next.as_bytes(), version));
    let release = client.submit(Request::Delete(DeleteRequest {
        path: request,
        version: -1,
    }));
    let (set, release) = (set.await, release.await);
    match set {
        Ok(_) => {}
        Err(ClientError::Server(ErrorCode::BadVersion)) => {
            return Err(Failure {
                fatal: false,
                what: "lost update: the counter changed while this session held the lock".into(),
                incremented: false,
            })
        }
        Err(error) => return Err(failure(error, false)),
    }
    release.map(drop).map_err(|error| failure(error, true))
}

/// Waits for the grant on `request`; the counter's value and version as read under the lock.
async fn acquire(
    client: &Client,
    events: &mut UnboundedReceiver<WatchedEvent>,
    request: &str,
    counter: &str,
) -> Result<(u64, i32), Failure> {
    loop {
        let own = client.submit(get_data_request(request, true));
        let read = client.submit(get_data_request(counter, false));
        let (own, read) = (own.await, read.await);
        let own = match own {
            Ok(Response::GetData { data, .. }) => data.unwrap_or_default(),
            Ok(other) => return Err(unexpected(&other)),
            Err(error) => return Err(failure(error, false)),
        };
        if grant_token(&own).is_some() {
            return match read {
                Ok(Response::GetData { data, stat }) => {
                    let data = data.unwrap_or_default();
                    let value = String::from_utf8_lossy(&data)
                        .parse()
                        .map_err(|_| Failure {
                            fatal: true,
                            what: format!("counter holds {:?}", String::from_utf8_lossy(&data)),
                            incremented: false,
                        })?;
                    Ok((value, stat.version))
                }
                Ok(other) => Err(unexpected(&other)),
                Err(error) => Err(failure(error, false)),
            };
        }
        loop {
            let Some(event) = events.recv().await else {
                return Err(Failure {
                    fatal: true,
                    what: "connection lost while waiting for the grant".into(),
                    incremented: false,
                });
            };
            if event.path == request {
                break;
            }
        }
    }
}
