//! `zkw bench`: a load generator that speaks the ZooKeeper protocol through [`crate::client`],
//! so the same numbers can be taken from zkw and from Apache ZooKeeper.
//!
//! N sessions (session i on server i mod n of `--server`), each with K requests in flight
//! (K lanes that each wait for their own reply; the session's connection pipelines them).
//! Workloads: `create` makes unique nodes under a fresh bench root `/zkw-bench-<hex>/c<i>/`;
//! `set`, `get` and `mixed` (90% get, 10% set) work on a pre-created key space of `--keys`
//! nodes per session. Reads are CHECKED: a session reads only its own keys and, since a session's
//! requests are processed in order, a get must return exactly the value of the last set that
//! session submitted before it (or the initial value); anything else counts as an error, as do
//! server errors, timeouts and lost connections. Latency is per request, in microseconds, in
//! an HDR histogram. A progress bar goes to stderr; ONE JSON line goes to stdout. The bench
//! root is deleted afterwards (bounded, best effort) unless `--keep`. The `lock` workload (in
//! `lock`) measures lock cycles of the `lock` recipe instead of single requests.

mod lock;

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;

use crate::client::{
    create_request, get_data_request, parse_servers, set_data_request, Client, ClientError,
};
use crate::proto::{Acl, CreateMode, DeleteRequest, Request, Response};

/// The server list every client subcommand uses when neither `--server` nor `$ZKW_SERVER` is
/// given.
pub const DEFAULT_SERVERS: &str = "127.0.0.1:2181";
/// The environment variable that gives every verb (`zkw cli` included) its default servers.
pub const SERVER_ENV: &str = "ZKW_SERVER";
/// The session timeout the bench asks for, in milliseconds (within ZooKeeper's default
/// 2..20 ticks of 2000 ms).
const SESSION_TIMEOUT_MS: u64 = 10_000;
/// Duration of a run when neither `--ops` nor `--duration` is given, in seconds.
const DURATION_SECS_DEFAULT: f64 = 10.0;
/// Requests in flight per session while creating or deleting the key space.
const SETUP_INFLIGHT: usize = 128;
/// Bound on the whole cleanup, in seconds.
const CLEANUP_SECS_MAX: u64 = 300;
/// Highest latency the histogram tracks, in microseconds (a minute).
const LATENCY_US_MAX: u64 = 60_000_000;
/// Significant decimal digits of the histogram.
const HISTOGRAM_DIGITS: u8 = 3;
/// Progress bar refresh period, in milliseconds.
const PROGRESS_TICK_MS: u64 = 200;
/// Out of 100 mixed-workload requests, how many are sets.
const MIXED_SET_PERCENT: u64 = 10;

/// `--server HOST:PORT[,HOST:PORT...]` (or zkCli's `-server`), shared by every client
/// subcommand.
#[derive(Debug, Clone, Args)]
pub struct ServerOpts {
    /// Comma-separated server list (also spelled `-server`); a missing port is 2181.
    #[arg(
        long,
        global = true,
        env = SERVER_ENV,
        default_value = DEFAULT_SERVERS,
        value_name = "HOST:PORT[,...]"
    )]
    pub server: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    Create,
    Set,
    Get,
    Mixed,
    /// Creates under a path a do-nothing recipe is bound to: against `create`, the cost of a
    /// triggered run (needs `--auth` with the super user).
    Trigger,
    /// Every session contends on one lock of the `lock` recipe (bound to `<root>/locks`; needs
    /// `--auth`): a cycle is acquire, read-modify-write of a counter node, release.
    Lock,
}

impl Workload {
    /// Whether the run works on a pre-created key space per session.
    fn has_keys(self) -> bool {
        matches!(self, Workload::Set | Workload::Get | Workload::Mixed)
    }

    fn name(self) -> &'static str {
        match self {
            Workload::Create => "create",
            Workload::Set => "set",
            Workload::Get => "get",
            Workload::Mixed => "mixed",
            Workload::Trigger => "trigger",
            Workload::Lock => "lock",
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub server: ServerOpts,
    /// What each request does.
    #[arg(long, value_enum, default_value = "mixed")]
    pub workload: Workload,
    /// Sessions; session i connects to server i mod n of --server.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Requests each session keeps in flight.
    #[arg(long, default_value_t = 8)]
    pub inflight: usize,
    /// Bytes of every value written.
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Stop after this many requests in total.
    #[arg(long, conflicts_with = "duration")]
    pub ops: Option<u64>,
    /// Stop after this many seconds (default 10 when --ops is not given either).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Keys per session for set, get and mixed.
    #[arg(long, default_value_t = 1000)]
    pub keys: usize,
    /// Leave the bench root in place (for memory and restart measurements).
    #[arg(long)]
    pub keep: bool,
    /// Bind this recipe module to the bench root for the run (any workload; needs --auth).
    #[arg(long, value_name = "FILE.wasm")]
    pub recipe: Option<std::path::PathBuf>,
    /// Credentials sent first, e.g. `digest:admin:secret` (recipes need the super user).
    #[arg(long, value_name = "SCHEME:AUTH")]
    pub auth: Option<String>,
}

/// The recipe `--workload trigger` binds: it does nothing, so what it costs is the trigger
/// itself (a fresh instance, the event copied in, one call).
const NOOP_RECIPE_WAT: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "zkw_abi_version") (result i32) (i32.const 1))
  (func (export "zkw_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "zkw_on_event") (param i32 i32) (result i32) (i32.const 0)))"#;

/// Runs the bench; exit code 1 when any request failed or read a wrong value.
pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.clients > 0, "--clients must be at least 1");
    anyhow::ensure!(args.inflight > 0, "--inflight must be at least 1");
    anyhow::ensure!(args.keys > 0, "--keys must be at least 1");
    if let Some(secs) = args.duration {
        anyhow::ensure!(
            secs > 0.0 && secs.is_finite(),
            "--duration must be positive"
        );
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    let summary = runtime.block_on(bench(&args))?;
    println!("{}", summary.to_json(&args));
    Ok(if summary.errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What a run measured.
struct Summary {
    ops: u64,
    errors: u64,
    secs: f64,
    latency: Histogram<u64>,
    /// Counter increments that took effect (the lock workload).
    increments: u64,
    /// The lock workload's verdict: the counter equals the increments.
    counter_ok: Option<bool>,
}

/// The JSON line, fields in the documented order.
#[derive(serde::Serialize)]
struct Report {
    workload: &'static str,
    clients: usize,
    inflight: usize,
    ops: u64,
    secs: f64,
    ops_per_sec: f64,
    p50_us: u64,
    p99_us: u64,
    p999_us: u64,
    max_us: u64,
    errors: u64,
    /// The lock workload's fields: ops are cycles and the latencies are acquires.
    #[serde(skip_serializing_if = "Option::is_none")]
    cycles_per_sec: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    acquire_p50_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    acquire_p99_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    counter_ok: Option<bool>,
}

impl Summary {
    fn to_json(&self, args: &BenchArgs) -> String {
        let ops_per_sec = if self.secs > 0.0 {
            self.ops as f64 / self.secs
        } else {
            0.0
        };
        let report = Report {
            workload: args.workload.name(),
            clients: args.clients,
            // A lock session waits for its grant: one request in flight by nature.
            inflight: if args.workload == Workload::Lock {
                1
            } else {
                args.inflight
            },
            ops: self.ops,
            secs: round3(self.secs),
            ops_per_sec: round3(ops_per_sec),
            p50_us: self.latency.value_at_quantile(0.5),
            p99_us: self.latency.value_at_quantile(0.99),
            p999_us: self.latency.value_at_quantile(0.999),
            max_us: self.latency.max(),
            errors: self.errors,
            cycles_per_sec: self.counter_ok.map(|_| round3(ops_per_sec)),
            acquire_p50_us: (self.counter_ok.map(|_| self.latency.value_at_quantile(0.5))),
            acquire_p99_us: (self
                .counter_ok
                .map(|_| self.latency.value_at_quantile(0.99))),
            counter_ok: self.counter_ok,
        };
        // A struct of numbers and a static str always serializes.
        serde_json::to_string(&report).unwrap_or_default()
    }
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

async fn bench(args: &BenchArgs) -> anyhow::Result<Summary> {
    let servers = parse_servers(&args.server.server)?;
    let root = format!("/zkw-bench-{:016x}", rand::random::<u64>());
    let clients = connect_all(&servers, args.clients).await?;
    let first = clients.first().context("no session")?;
    first
        .client
        .create(&root, b"", &Acl::open_unsafe(), CreateMode::Persistent)
        .await
        .with_context(|| format!("creating the bench root {root}"))?;
    let recipe = bind_recipe(args, &servers, &root).await?;
    if args.workload == Workload::Lock {
        lock::prepare(&first.client, &root).await?;
    }
    let sessions = prepare_sessions(args, &root, clients).await?;
    let mut summary = measure(args, &sessions, &root).await?;
    if args.workload == Workload::Lock {
        let first = sessions.first().context("no session")?;
        summary.counter_ok = Some(lock::counter_ok(&first.client, &root, summary.increments).await);
    }
    if let Some((client, name)) = recipe {
        super::recipe::remove(&client, &name, args.auth.as_deref()).await?;
        let _ = client.close().await;
    }
    if args.keep {
        eprintln!("zkw bench: kept {root}");
    } else {
        cleanup(args, &root, &sessions).await;
    }
    for session in sessions {
        if let Ok(owned) = Arc::try_unwrap(session) {
            let _ = owned.client.close().await;
        }
    }
    Ok(summary)
}

/// Installs the recipe of `--recipe` or `--workload trigger`, bound to `root`; returns the
/// admin session and the recipe's name, for removal.
async fn bind_recipe(
    args: &BenchArgs,
    servers: &[String],
    root: &str,
) -> anyhow::Result<Option<(Client, String)>> {
    let bytes = match (&args.recipe, args.workload) {
        (Some(file), _) => {
            std::fs::read(file).with_context(|| format!("reading {}", file.display()))?
        }
        (None, Workload::Trigger) => wat::parse_str(NOOP_RECIPE_WAT)?,
        (None, Workload::Lock) => lock::recipe_bytes()?,
        (None, _) => return Ok(None),
    };
    // The lock recipe guards its own subtree; the counter stays outside it.
    let bound = match args.workload {
        Workload::Lock => lock::bound_path(root),
        _ => root.to_owned(),
    };
    let server = servers.first().context("no server")?;
    let client = Client::connect(server, Duration::from_millis(SESSION_TIMEOUT_MS)).await?;
    super::recipe::authenticate(&client, args.auth.as_deref()).await?;
    let name = root.trim_start_matches('/').to_owned();
    let limits = super::recipe::Limits {
        fuel: crate::wasm::manifest::FUEL_DEFAULT,
        memory_bytes: crate::wasm::manifest::MEMORY_BYTES_DEFAULT,
        timer_ms: 0,
        call_perms: crate::wasm::manifest::CALL_PERMS_DEFAULT,
    };
    super::recipe::install_bytes(&client, &name, &bytes, bound, limits, args.auth.as_deref())
        .await?;
    Ok(Some((client, name)))
}

/// One bench session: its client, its parent node and its per-key bookkeeping.
struct Session {
    index: usize,
    client: Client,
    parent: String,
    /// Next sequence number of the create workload's node names.
    created: AtomicU64,
    /// Per key, the sequence number of the last set submitted; the lock is held across the
    /// submit so the queue order and this record agree.
    last_set: Mutex<Vec<u64>>,
    /// The session's watch notifications, until a lock lane takes them.
    events: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<crate::client::WatchedEvent>>>,
}

async fn connect_all(servers: &[String], count: usize) -> anyhow::Result<Vec<Session>> {
    let mut handles = Vec::with_capacity(count);
    for index in 0..count {
        let server = servers[index % servers.len()].clone();
        handles.push(tokio::spawn(async move {
            Client::connect(&server, Duration::from_millis(SESSION_TIMEOUT_MS))
                .await
                .with_context(|| format!("session {index} connecting to {server}"))
        }));
    }
    let mut sessions = Vec::with_capacity(count);
    for (index, handle) in handles.into_iter().enumerate() {
        let mut client = handle.await.context("connect task")??;
        let events = Mutex::new(client.take_events());
        sessions.push(Session {
            events,
            index,
            client,
            parent: String::new(),
            created: AtomicU64::new(0),
            last_set: Mutex::new(Vec::new()),
        });
    }
    Ok(sessions)
}

/// Creates every session's parent and (except for `create`) its key space, concurrently.
async fn prepare_sessions(
    args: &BenchArgs,
    root: &str,
    sessions: Vec<Session>,
) -> anyhow::Result<Vec<Arc<Session>>> {
    let mut handles = Vec::with_capacity(sessions.len());
    for mut session in sessions {
        session.parent = format!("{root}/c{}", session.index);
        let keys = if args.workload.has_keys() {
            args.keys
        } else {
            0
        };
        session.last_set = Mutex::new(vec![0; keys]);
        let value_size = args.value_size;
        handles.push(tokio::spawn(async move {
            let mut requests = vec![create_request(&session.parent, b"")];
            for key in 0..keys {
                let value = bench_value(session.index, key, 0, value_size);
                requests.push(create_request(&key_path(&session.parent, key), &value));
            }
            let failed = pipelined(&session.client, requests).await;
            anyhow::ensure!(failed == 0, "{failed} key-space creates failed");
            Ok(Arc::new(session))
        }));
    }
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.context("setup task")??);
    }
    Ok(out)
}

/// Sends `requests` keeping [`SETUP_INFLIGHT`] in flight; returns how many failed (NoNode
/// on a delete is not a failure: cleanup deletes names that may never have been created).
async fn pipelined(client: &Client, requests: impl IntoIterator<Item = Request>) -> u64 {
    let mut window = std::collections::VecDeque::with_capacity(SETUP_INFLIGHT);
    let mut failed = 0;
    for request in requests {
        if window.len() >= SETUP_INFLIGHT {
            if let Some(reply) = window.pop_front() {
                failed += u64::from(setup_failed(reply.await));
            }
        }
        window.push_back(client.submit(request));
    }
    for reply in window {
        failed += u64::from(setup_failed(reply.await));
    }
    failed
}

fn setup_failed(reply: Result<Response, ClientError>) -> bool {
    match reply {
        Ok(_) => false,
        Err(ClientError::Server(crate::proto::ErrorCode::NoNode)) => false,
        Err(_) => true,
    }
}

fn key_path(parent: &str, key: usize) -> String {
    format!("{parent}/k{key}")
}

/// The value session `session` writes to `key` with sequence number `seq`: a readable prefix,
/// then filler, cut to `size` bytes. Deterministic, so a read can be compared byte for byte.
fn bench_value(session: usize, key: usize, seq: u64, size: usize) -> Vec<u8> {
    let mut value = format!("zkwb {session} {key} {seq} ").into_bytes();
    let filler = b'a' + u8::try_from(seq % 26).unwrap_or(0);
    value.resize(size.max(value.len()), filler);
    value.truncate(size);
    value
}

/// Limits and counters shared by every lane of a run.
struct Run {
    workload: Workload,
    value_size: usize,
    ops_limit: Option<u64>,
    deadline: Option<Instant>,
    issued: AtomicU64,
    completed: AtomicU64,
    first_error: Mutex<Option<String>>,
    /// The bench root (the lock workload finds its lock and counter under it).
    root: String,
}

impl Run {
    /// Claims the right to issue one more request.
    fn may_issue(&self) -> bool {
        if self
            .deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
        {
            return false;
        }
        match self.ops_limit {
            Some(limit) => self.issued.fetch_add(1, Ordering::Relaxed) < limit,
            None => true,
        }
    }

    fn note_error(&self, what: String) {
        let mut first = self
            .first_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        first.get_or_insert(what);
    }
}

/// What one lane counted.
struct LaneResult {
    ops: u64,
    errors: u64,
    latency: Histogram<u64>,
    /// Counter increments that took effect (the lock workload).
    increments: u64,
}

fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, HISTOGRAM_DIGITS)
        .context("creating the latency histogram")
}

async fn measure(
    args: &BenchArgs,
    sessions: &[Arc<Session>],
    root: &str,
) -> anyhow::Result<Summary> {
    let duration = match (args.ops, args.duration) {
        (Some(_), _) => None,
        (None, Some(secs)) => Some(Duration::from_secs_f64(secs)),
        (None, None) => Some(Duration::from_secs_f64(DURATION_SECS_DEFAULT)),
    };
    let start = Instant::now();
    let run = Arc::new(Run {
        workload: args.workload,
        value_size: args.value_size,
        ops_limit: args.ops,
        deadline: duration.map(|d| start + d),
        issued: AtomicU64::new(0),
        completed: AtomicU64::new(0),
        first_error: Mutex::new(None),
        root: root.to_owned(),
    });
    let progress = tokio::spawn(show_progress(Arc::clone(&run), args.ops, duration));
    let mut lanes = Vec::new();
    // A lock session has one request in flight by nature: it waits for its grant.
    let lanes_per_session = if args.workload == Workload::Lock {
        1
    } else {
        args.inflight
    };
    for session in sessions {
        for _lane in 0..lanes_per_session {
            let seed = rand::random::<u64>() | 1;
            let histogram = new_histogram()?;
            let (session, run) = (Arc::clone(session), Arc::clone(&run));
            lanes.push(tokio::spawn(async move {
                match run.workload {
                    Workload::Lock => lock::run_lane(&session, &run, histogram).await,
                    _ => run_lane(&session, &run, seed, histogram).await,
                }
            }));
        }
    }
    let mut summary = Summary {
        ops: 0,
        errors: 0,
        secs: 0.0,
        latency: new_histogram()?,
        increments: 0,
        counter_ok: None,
    };
    for lane in lanes {
        let result = lane.await.context("bench lane")?;
        summary.ops += result.ops;
        summary.errors += result.errors;
        summary.increments += result.increments;
        summary
            .latency
            .add(&result.latency)
            .context("merging histograms")?;
    }
    summary.secs = start.elapsed().as_secs_f64();
    progress.abort();
    let _ = progress.await;
    if let Some(first) = run.first_error.lock().ok().and_then(|f| f.clone()) {
        eprintln!("zkw bench: {} errors; the first: {first}", summary.errors);
    }
    Ok(summary)
}

/// What a reply must be for the request to count as a success.
enum Expect {
    Created(String),
    Stat,
    Value(Vec<u8>),
}

/// One lane: issue a request, wait for its reply, check and record it, until the run ends or
/// the connection is lost.
async fn run_lane(
    session: &Session,
    run: &Run,
    mut rng: u64,
    mut latency: Histogram<u64>,
) -> LaneResult {
    let (mut ops, mut errors) = (0, 0);
    while run.may_issue() {
        let started = Instant::now();
        let (reply, expect) = issue(session, run, &mut rng);
        let reply = reply.await;
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(LATENCY_US_MAX);
        run.completed.fetch_add(1, Ordering::Relaxed);
        match judge(reply, expect) {
            Ok(()) => {
                ops += 1;
                latency.saturating_record(micros.clamp(1, LATENCY_US_MAX));
            }
            Err((fatal, what)) => {
                errors += 1;
                run.note_error(format!("session {}: {what}", session.index));
                if fatal {
                    break;
                }
            }
        }
    }
    LaneResult {
        ops,
        errors,
        latency,
        increments: 0,
    }
}

/// xorshift64: cheap, good enough to pick keys, and no RNG state shared between lanes.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

type ReplyFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Response, ClientError>> + Send + 'static>,
>;

/// Submits the lane's next request and says what its reply must be.
fn issue(session: &Session, run: &Run, rng: &mut u64) -> (ReplyFuture, Expect) {
    let is_set = match run.workload {
        Workload::Create | Workload::Trigger | Workload::Lock => return issue_create(session, run),
        Workload::Set => true,
        Workload::Get => false,
        Workload::Mixed => next_random(rng) % 100 < MIXED_SET_PERCENT,
    };
    let mut last_set = session
        .last_set
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let keys = last_set.len().max(1);
    let key = usize::try_from(next_random(rng) % keys as u64).unwrap_or(0);
    let path = key_path(&session.parent, key);
    let Some(seq) = last_set.get_mut(key) else {
        return (Box::pin(async { Err(ClientError::Closed) }), Expect::Stat);
    };
    // Submitting under the lock keeps "last set submitted" and the session's queue in step.
    if is_set {
        *seq += 1;
        let value = bench_value(session.index, key, *seq, run.value_size);
        let reply = session.client.submit(set_data_request(&path, &value, -1));
        (Box::pin(reply), Expect::Stat)
    } else {
        let expected = bench_value(session.index, key, *seq, run.value_size);
        let reply = session.client.submit(get_data_request(&path, false));
        (Box::pin(reply), Expect::Value(expected))
    }
}

fn issue_create(session: &Session, run: &Run) -> (ReplyFuture, Expect) {
    let seq = session.created.fetch_add(1, Ordering::Relaxed);
    let path = format!("{}/n{seq}", session.parent);
    let value = bench_value(session.index, 0, seq, run.value_size);
    let reply = session.client.submit(create_request(&path, &value));
    (Box::pin(reply), Expect::Created(path))
}

/// `Ok` for a correct reply; otherwise whether the session is unusable, and what went wrong.
fn judge(reply: Result<Response, ClientError>, expect: Expect) -> Result<(), (bool, String)> {
    let body = match reply {
        Ok(body) => body,
        Err(error @ (ClientError::ConnectionLoss(_) | ClientError::Closed)) => {
            return Err((true, error.to_string()))
        }
        Err(error) => return Err((false, error.to_string())),
    };
    let good = match (&expect, &body) {
        (Expect::Created(want), Response::Create { path }) => want == path,
        (Expect::Stat, Response::Stat(_)) => true,
        (Expect::Value(want), Response::GetData { data, .. }) => data.as_ref() == Some(want),
        _ => false,
    };
    if good {
        return Ok(());
    }
    let want = match expect {
        Expect::Created(path) => format!("create of {path}"),
        Expect::Stat => "a Stat".to_owned(),
        Expect::Value(value) => format!("value {:?}", String::from_utf8_lossy(&value)),
    };
    Err((false, format!("wrong reply: wanted {want}, got {body:?}")))
}

/// Draws the progress bar on stderr (nothing when stderr is not a terminal) until aborted.
async fn show_progress(run: Arc<Run>, ops: Option<u64>, duration: Option<Duration>) {
    let started = Instant::now();
    let bar = match (ops, duration) {
        (Some(total), _) => indicatif::ProgressBar::new(total),
        (None, Some(duration)) => {
            indicatif::ProgressBar::new(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
        }
        (None, None) => indicatif::ProgressBar::new_spinner(),
    };
    let template = if ops.is_some() {
        "{wide_bar} {pos}/{len} ops {msg}"
    } else {
        "{wide_bar} {elapsed} {msg}"
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    let _guard = ClearOnDrop(bar.clone());
    loop {
        tokio::time::sleep(Duration::from_millis(PROGRESS_TICK_MS)).await;
        let done = run.completed.load(Ordering::Relaxed);
        let secs = started.elapsed().as_secs_f64().max(f64::EPSILON);
        if ops.is_some() {
            bar.set_position(done);
        } else {
            bar.set_position(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
        }
        bar.set_message(format!("{done} done, {:.0} ops/s", done as f64 / secs));
    }
}

/// Clears the bar when the progress task is aborted.
struct ClearOnDrop(indicatif::ProgressBar);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// Deletes everything the run created, then the root; bounded by [`CLEANUP_SECS_MAX`].
async fn cleanup(args: &BenchArgs, root: &str, sessions: &[Arc<Session>]) {
    let keys = if args.workload.has_keys() {
        args.keys
    } else {
        0
    };
    let work = async {
        let mut handles = Vec::new();
        for session in sessions {
            let session = Arc::clone(session);
            handles.push(tokio::spawn(async move {
                let created = session.created.load(Ordering::Relaxed);
                let parent = session.parent.clone();
                let names = (0..created)
                    .map(|seq| format!("{parent}/n{seq}"))
                    .chain((0..keys).map(|key| key_path(&parent, key)))
                    .chain(std::iter::once(parent.clone()));
                let deletes =
                    names.map(|path| Request::Delete(DeleteRequest { path, version: -1 }));
                pipelined(&session.client, deletes).await
            }));
        }
        let mut failed = 0;
        for handle in handles {
            failed += handle.await.unwrap_or(1);
        }
        if let Some(first) = sessions.first() {
            if args.workload == Workload::Lock {
                failed += lock::cleanup(&first.client, root).await;
            }
            if first.client.delete(root, -1).await.is_err() {
                failed += 1;
            }
        }
        failed
    };
    match tokio::time::timeout(Duration::from_secs(CLEANUP_SECS_MAX), work).await {
        Ok(0) => {}
        Ok(failed) => eprintln!("zkw bench: cleanup of {root}: {failed} deletes failed"),
        Err(_) => eprintln!("zkw bench: cleanup of {root} gave up after {CLEANUP_SECS_MAX}s"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (style.md)
mod tests {
    use super::*;

    #[test]
    fn values_are_deterministic_and_sized() {
        assert_eq!(bench_value(3, 7, 2, 16), b"zkwb 3 7 2 ccccc".to_vec());
        assert_eq!(bench_value(3, 7, 2, 4), b"zkwb".to_vec());
        assert_ne!(bench_value(3, 7, 2, 100), bench_value(3, 7, 3, 100));
        assert_eq!(bench_value(0, 0, 0, 100).len(), 100);
    }

    #[test]
    fn judge_checks_what_was_read() {
        let stat = crate::proto::Stat::default();
        let read = |data: &[u8]| {
            Ok(Response::GetData {
                data: Some(data.to_vec()),
                stat,
            })
        };
        assert!(judge(read(b"v1"), Expect::Value(b"v1".to_vec())).is_ok());
        let (fatal, _) = judge(read(b"v0"), Expect::Value(b"v1".to_vec())).unwrap_err();
        assert!(!fatal);
        let created = Ok(Response::Create { path: "/a".into() });
        assert!(judge(created, Expect::Created("/b".into())).is_err());
        let lost = Err(ClientError::ConnectionLoss("x".into()));
        assert!(judge(lost, Expect::Stat).unwrap_err().0);
        let refused = Err(ClientError::Server(crate::proto::ErrorCode::NoNode));
        assert!(!judge(refused, Expect::Stat).unwrap_err().0);
    }
}
