//! Wing–Gong linearizability check of a history of one znode used as a CAS register, with
//! Lowe's memoisation on (ops linearized, register state). The model is ZooKeeper's: a read
//! (sync, then getData) returns (data, version); a write (setData, version -1) stores data and
//! bumps the version; a CAS (setData with a version, or a multi that checks the version) does
//! the same when the version matches and fails with BadVersion otherwise.
//!
//! The same model and search as the process-level checker of the Python suite
//! (tests/ensemble/linearizability.py), here for the simulator's histories. Outcomes: `Ok` and
//! `Fail` are definite; `Unknown` (connection loss, a timeout, a lost session) may have taken
//! effect at any point after its invocation or never: it has no completion time and the search
//! may leave it out. An unknown or failed read constrains nothing and is dropped.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Instant;

/// Bound on the states the search visits for one key.
const SEARCH_STATES_MAX: usize = 2_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Read,
    Write,
    Cas { expected: i32 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Pending,
    Ok,
    Fail,
    Unknown,
}

#[derive(Clone, Debug)]
pub struct Op {
    pub process: usize,
    pub key: usize,
    pub kind: Kind,
    /// Write / CAS: the data written (unique per op).
    pub value: Vec<u8>,
    /// Microseconds since the history began.
    pub invoke_us: u64,
    pub complete_us: Option<u64>,
    pub outcome: Outcome,
    /// Read: the data seen. Write / CAS: empty.
    pub data: Vec<u8>,
    /// Read: the version seen; write / CAS that succeeded: the new version.
    pub version: Option<i32>,
}

impl Op {
    fn describe(&self) -> String {
        let args = match self.kind {
            Kind::Read => String::new(),
            Kind::Write => String::from_utf8_lossy(&self.value).into_owned(),
            Kind::Cas { expected } => {
                format!("v{expected} -> {}", String::from_utf8_lossy(&self.value))
            }
        };
        let complete = self
            .complete_us
            .map_or_else(|| "?".to_string(), |us| us.to_string());
        format!(
            "p{} {:?}({args}) [{}, {complete}] {:?} {:?} v{:?}",
            self.process,
            self.kind,
            self.invoke_us,
            self.outcome,
            String::from_utf8_lossy(&self.data),
            self.version
        )
    }
}

/// The ops of a run, recorded from many client tasks.
pub struct History {
    began: Instant,
    ops: Mutex<Vec<Op>>,
}

impl History {
    pub fn new() -> History {
        History {
            began: Instant::now(),
            ops: Mutex::new(Vec::new()),
        }
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.began.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Records an invocation; the index names it for its completion.
    pub fn invoke(&self, process: usize, key: usize, kind: Kind, value: &[u8]) -> usize {
        let op = Op {
            process,
            key,
            kind,
            value: value.to_vec(),
            invoke_us: self.now_us(),
            complete_us: None,
            outcome: Outcome::Pending,
            data: Vec::new(),
            version: None,
        };
        let mut ops = self.ops.lock().unwrap();
        ops.push(op);
        ops.len() - 1
    }

    pub fn ok(&self, index: usize, data: Vec<u8>, version: i32) {
        let now = self.now_us();
        let op = &mut self.ops.lock().unwrap()[index];
        op.complete_us = Some(now);
        op.outcome = Outcome::Ok;
        op.data = data;
        op.version = Some(version);
    }

    pub fn fail(&self, index: usize) {
        let now = self.now_us();
        let op = &mut self.ops.lock().unwrap()[index];
        op.complete_us = Some(now);
        op.outcome = Outcome::Fail;
    }

    pub fn unknown(&self, index: usize) {
        self.ops.lock().unwrap()[index].outcome = Outcome::Unknown;
    }

    /// The ops of `key`; those still pending count as unknown.
    pub fn for_key(&self, key: usize) -> Vec<Op> {
        self.ops
            .lock()
            .unwrap()
            .iter()
            .filter(|op| op.key == key)
            .map(|op| {
                let mut op = op.clone();
                if op.outcome == Outcome::Pending {
                    op.outcome = Outcome::Unknown;
                }
                op
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.ops.lock().unwrap().len()
    }
}

/// Ops that constrain or may change the register.
fn relevant(op: &Op) -> bool {
    match op.outcome {
        Outcome::Ok => true,
        Outcome::Fail => matches!(op.kind, Kind::Cas { .. }),
        Outcome::Unknown | Outcome::Pending => op.kind != Kind::Read,
    }
}

/// Register state: which op's value it holds (`None`: the initial data) and its version.
type State = (Option<usize>, i32);

fn step(ops: &[Op], values: &HashMap<&[u8], usize>, state: State, i: usize) -> Option<State> {
    let op = &ops[i];
    let (held, version) = state;
    match (op.kind, op.outcome) {
        (Kind::Read, _) => {
            let seen = values.get(op.data.as_slice()).copied();
            (seen == held && op.version == Some(version)).then_some(state)
        }
        (Kind::Cas { expected }, Outcome::Fail) => (version != expected).then_some(state),
        (Kind::Cas { expected }, _) if version != expected => None,
        (Kind::Write | Kind::Cas { .. }, _) => {
            let next = version + 1;
            match op.version {
                Some(made) if op.outcome == Outcome::Ok && made != next => None,
                _ => Some((Some(i), next)),
            }
        }
    }
}

/// Is the history of one key linearizable from the initial (empty data, version 0)? An error
/// names the longest linearizable prefix found and the ops that could not follow it.
pub fn check(ops: Vec<Op>) -> Result<(), String> {
    let mut ops: Vec<Op> = ops.into_iter().filter(relevant).collect();
    ops.sort_by_key(|op| op.invoke_us);
    let n = ops.len();
    // Reads name the value they saw; every write's value is unique, the initial one is empty.
    let values: HashMap<&[u8], usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| op.kind != Kind::Read)
        .map(|(i, op)| (op.value.as_slice(), i))
        .collect();
    if let Some(read) = ops.iter().find(|op| {
        op.kind == Kind::Read && !op.data.is_empty() && !values.contains_key(op.data.as_slice())
    }) {
        return Err(format!("a read saw data nobody wrote: {}", read.describe()));
    }
    let mut by_complete: Vec<usize> = (0..n).filter(|&i| ops[i].complete_us.is_some()).collect();
    by_complete.sort_by_key(|&i| ops[i].complete_us);
    let words = n.div_ceil(64);
    let mut required = vec![0u64; words];
    for &i in &by_complete {
        required[i / 64] |= 1 << (i % 64);
    }
    let done = |mask: &[u64]| mask.iter().zip(&required).all(|(m, r)| m & r == *r);
    let has = |mask: &[u64], i: usize| mask[i / 64] >> (i % 64) & 1 == 1;
    let mut seen: HashSet<(Vec<u64>, State)> = HashSet::new();
    let mut best: (usize, Vec<u64>, State) = (0, vec![0; words], (None, 0));
    let mut stack: Vec<(Vec<u64>, State, usize)> = vec![(vec![0; words], (None, 0), 0)];
    while let Some((mask, state, depth)) = stack.pop() {
        if done(&mask) {
            return Ok(());
        }
        if !seen.insert((mask.clone(), state)) {
            continue;
        }
        if seen.len() > SEARCH_STATES_MAX {
            return Err(format!("undecided: {n} ops, search budget exceeded"));
        }
        if depth > best.0 {
            best = (depth, mask.clone(), state);
        }
        // No op invoked after the earliest completion not yet linearized may go next.
        let horizon = by_complete
            .iter()
            .find(|&&i| !has(&mask, i))
            .and_then(|&i| ops[i].complete_us)
            .unwrap_or(u64::MAX);
        let mut children = Vec::new();
        for i in 0..n {
            if ops[i].invoke_us > horizon {
                break;
            }
            if has(&mask, i) {
                continue;
            }
            if let Some(next) = step(&ops, &values, state, i) {
                let mut child = mask.clone();
                child[i / 64] |= 1 << (i % 64);
                children.push((child, next, depth + 1));
            }
        }
        children.reverse();
        stack.extend(children);
    }
    let (depth, mask, state) = best;
    let mut report = format!(
        "not linearizable; longest prefix {depth} of {n} ops ends in state {state:?}; none of these fits next:"
    );
    for op in (0..n).filter(|&i| !has(&mask, i)).take(10) {
        report.push_str("\n  ");
        report.push_str(&ops[op].describe());
    }
    Err(report)
}
