"""Wing–Gong linearizability checker for one ZooKeeper znode used as a CAS register.

Owns: the operation record (`Op`), a thread-safe `History` recorder, the
sequential model of a znode's (data, version) pair under get / setData /
setData-with-version, and `check`, a depth-first Wing–Gong search with
Lowe's memoisation on (set of linearized ops, model state).

Model, matching ZooKeeper: a read returns (data, version); a write
(setData version -1) stores data and bumps the version, returning the new
version; a CAS (setData with expected version) does the same when the
version matches and fails with BadVersion otherwise.

Outcomes: "ok" and "fail" are definite. "unknown" (connection loss, a
timeout) means the op may have taken effect at any point after its
invocation, or never: it has no completion time, constrains nothing, and
the search may leave it out. An unknown read says nothing and is dropped.

Histories are checked per znode (linearizability is compositional), and
should stay small (hundreds of ops): the search is exponential in the worst
case, so it is bounded by `max_steps` and raises `SearchBudgetExceeded`.
"""

import threading
import time
from dataclasses import dataclass, field

OK = "ok"
FAIL = "fail"
UNKNOWN = "unknown"

READ = "read"
WRITE = "write"
CAS = "cas"

# About 10 s of Python: a real ZooKeeper history needs far fewer states.
SEARCH_STEPS_MAX = 300_000


class SearchBudgetExceeded(Exception):
    pass


@dataclass
class Op:
    process: int
    kind: str  # READ, WRITE or CAS
    key: str
    value: bytes = None  # WRITE/CAS: data written
    expected: int = None  # CAS: expected version
    invoke: float = 0.0
    complete: float = None  # None while pending or when the outcome is unknown
    result: str = None  # OK, FAIL, UNKNOWN
    output: tuple = None  # READ: (data, version); WRITE/CAS ok: (new_version,)
    error: str = field(default=None, repr=False)

    def describe(self):
        args = {READ: "", WRITE: f"{self.value!r}", CAS: f"v{self.expected} -> {self.value!r}"}
        return (
            f"p{self.process} {self.kind}({args[self.kind]}) [{self.invoke:.4f}, "
            f"{'?' if self.complete is None else f'{self.complete:.4f}'}] "
            f"{self.result} {self.output if self.output is not None else ''}"
        )


class History:
    """Thread-safe log of operations on several keys."""

    def __init__(self):
        self._lock = threading.Lock()
        self.ops = []

    def invoke(self, process, kind, key, value=None, expected=None):
        op = Op(process, kind, key, value, expected, invoke=time.monotonic())
        with self._lock:
            self.ops.append(op)
        return op

    @staticmethod
    def ok(op, output=None):
        op.complete = time.monotonic()
        op.output = output
        op.result = OK

    @staticmethod
    def fail(op, error=None):
        op.complete = time.monotonic()
        op.result = FAIL
        op.error = error

    @staticmethod
    def unknown(op, error=None):
        op.complete = None
        op.result = UNKNOWN
        op.error = error

    def close_pending(self):
        """Ops still in flight when recording stopped have unknown outcomes."""
        with self._lock:
            for op in self.ops:
                if op.result is None:
                    op.result = UNKNOWN

    def keys(self):
        return sorted({op.key for op in self.ops})

    def for_key(self, key):
        return [op for op in self.ops if op.key == key]


def _relevant(op):
    """Ops that constrain or may change the register; the rest are dropped."""
    if op.result == OK:
        return True
    if op.result == FAIL:
        # A failed CAS says the version differed; a failed read or write
        # (NoNode and the like) neither happened nor constrains anything.
        return op.kind == CAS
    return op.kind != READ  # unknown write or CAS: may have happened


def step(state, op):
    """The state after `op` if it is consistent with its recorded outcome, else None."""
    data, version = state
    if op.kind == READ:
        return state if tuple(op.output) == (data, version) else None
    if op.kind == CAS and op.result == FAIL:
        return state if version != op.expected else None
    if op.kind == CAS and version != op.expected:
        return None
    new = (op.value, version + 1)
    if op.result == OK and op.output is not None and op.output[0] != new[1]:
        return None
    return new


def version_violations(ops):
    """Cheap necessary conditions, checked before the search: every acknowledged
    write/CAS produced a distinct version, and an op that completed before
    another began produced the smaller one. Returns readable violations."""
    done = sorted(
        (op for op in ops if op.kind != READ and op.result == OK and op.output is not None),
        key=lambda o: o.output[0],
    )
    out = []
    for a, b in zip(done, done[1:]):
        if a.output[0] == b.output[0]:
            out.append(f"two acknowledged writes made version {a.output[0]}: {a.describe()} / {b.describe()}")
    by_invoke = sorted(done, key=lambda o: o.invoke)
    for i, b in enumerate(by_invoke):
        earlier = [a for a in by_invoke[:i] if a.complete < b.invoke and a.output[0] >= b.output[0]]
        if earlier:
            out.append(f"{b.describe()} began after {earlier[0].describe()} completed, with no newer version")
        if len(out) >= 10:
            break
    return out


def check(ops, initial, max_steps=SEARCH_STEPS_MAX):
    """Is the history of one key linearizable from `initial` = (data, version)?

    Returns (True, order) with one witness order of op indexes into the
    filtered, invoke-sorted op list, or (False, report) with the longest
    linearizable prefix found and the ops that could not follow it."""
    ops = sorted((op for op in ops if _relevant(op)), key=lambda o: o.invoke)
    violations = version_violations(ops)
    if violations:
        return False, "not linearizable:\n  " + "\n  ".join(violations)
    n = len(ops)
    required = sum(1 << i for i in range(n) if ops[i].complete is not None)
    # Known ops by completion time: the first one not yet linearized bounds
    # which ops may go next (none invoked after it completed).
    by_complete = sorted((i for i in range(n) if ops[i].complete is not None), key=lambda i: ops[i].complete)
    seen = set()
    best = (0, (), initial)
    stack = [(0, initial, ())]
    steps = 0
    while stack:
        mask, state, order = stack.pop()
        if mask & required == required:
            return True, list(order)
        if (mask, state) in seen:
            continue
        seen.add((mask, state))
        steps += 1
        if steps > max_steps:
            raise SearchBudgetExceeded(f"{n} ops, {steps} states")
        if len(order) > len(best[1]):
            best = (mask, order, state)
        stack.extend(_successors(ops, mask, state, order, _horizon(ops, by_complete, mask)))
    return False, _report(ops, best)


def _horizon(ops, by_complete, mask):
    for i in by_complete:
        if not mask >> i & 1:
            return ops[i].complete
    return float("inf")


def _successors(ops, mask, state, order, horizon):
    """Children of a search node, earliest-invoked last so it is popped first."""
    out = []
    low = (~mask & (mask + 1)).bit_length() - 1
    for i in range(low, len(ops)):
        if ops[i].invoke > horizon:
            break
        if mask >> i & 1:
            continue
        new = step(state, ops[i])
        if new is not None:
            out.append((mask | 1 << i, new, order + (i,)))
    out.reverse()
    return out


def _report(ops, best):
    mask, order, state = best
    lines = [f"not linearizable; longest prefix ({len(order)} of {len(ops)} ops), state {state}:"]
    lines += ["  " + ops[i].describe() for i in order[-10:]]
    lines.append("then none of these fits:")
    lines += ["  " + op.describe() for i, op in enumerate(ops) if not mask >> i & 1][:10]
    return "\n".join(lines)


def check_history(history, initial_by_key):
    """Check every key; returns {key: report} for the keys that fail."""
    failures = {}
    for key in history.keys():
        try:
            ok, info = check(history.for_key(key), initial_by_key[key])
        except SearchBudgetExceeded as exc:
            ops = history.for_key(key)
            counts = {r: sum(1 for o in ops if o.result == r) for r in (OK, FAIL, UNKNOWN)}
            ok, info = False, f"undecided, search budget exceeded ({exc}; outcomes {counts})"
        if not ok:
            failures[key] = info
    return failures
