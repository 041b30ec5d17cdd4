"""Unit tests of the Wing–Gong checker: known-good and known-bad CAS-register histories.

Owns nothing but these cases; needs no server. Times are plain numbers; an
op with complete=None is an unknown outcome.
"""

import random

import pytest

from linearizability import (
    CAS,
    FAIL,
    OK,
    READ,
    UNKNOWN,
    WRITE,
    Op,
    SearchBudgetExceeded,
    check,
)

INIT = (b"", 0)


def read(p, t0, t1, data, version):
    return Op(p, READ, "k", invoke=t0, complete=t1, result=OK, output=(data, version))


def write(p, t0, t1, value, new_version=None, result=OK):
    out = None if new_version is None else (new_version,)
    return Op(p, WRITE, "k", value=value, invoke=t0, complete=t1, result=result, output=out)


def cas(p, t0, t1, expected, value, result=OK, new_version=None):
    out = None if new_version is None else (new_version,)
    return Op(p, CAS, "k", value=value, expected=expected, invoke=t0, complete=t1, result=result, output=out)


def unknown_write(p, t0, value):
    return Op(p, WRITE, "k", value=value, invoke=t0, complete=None, result=UNKNOWN)


def unknown_cas(p, t0, expected, value):
    return Op(p, CAS, "k", value=value, expected=expected, invoke=t0, complete=None, result=UNKNOWN)


GOOD = {
    "empty": [],
    "sequential": [
        write(0, 0, 1, b"a", 1),
        read(0, 2, 3, b"a", 1),
        cas(0, 4, 5, 1, b"b", OK, 2),
        cas(0, 6, 7, 1, b"c", FAIL),
        read(0, 8, 9, b"b", 2),
    ],
    "concurrent writes, read sees the later-linearized one": [
        write(0, 0, 10, b"a"),
        write(1, 1, 9, b"b"),
        read(2, 11, 12, b"a", 2),
    ],
    "read concurrent with a write may see the old value": [
        write(0, 0, 10, b"a", 1),
        read(1, 1, 2, b"", 0),
        read(1, 3, 4, b"a", 1),
    ],
    "CAS race: one wins, one fails": [
        cas(0, 0, 5, 0, b"x", OK, 1),
        cas(1, 1, 6, 0, b"y", FAIL),
        read(2, 7, 8, b"x", 1),
    ],
    "unknown write that took effect": [
        unknown_write(0, 0, b"a"),
        read(1, 5, 6, b"a", 1),
    ],
    "unknown write that never took effect": [
        unknown_write(0, 0, b"a"),
        read(1, 5, 6, b"", 0),
        write(1, 7, 8, b"b", 1),
        read(1, 9, 10, b"b", 1),
    ],
    "unknown write taking effect long after its invoke": [
        unknown_write(0, 0, b"late"),
        write(1, 1, 2, b"a", 1),
        read(1, 3, 4, b"a", 1),
        read(1, 5, 6, b"late", 2),
    ],
    "unknown CAS explains a failed CAS": [
        unknown_cas(0, 0, 0, b"a"),
        cas(1, 5, 6, 0, b"b", FAIL),
        read(1, 7, 8, b"a", 1),
    ],
}

BAD = {
    "stale read after a completed write": [
        write(0, 0, 1, b"a", 1),
        read(1, 2, 3, b"", 0),
    ],
    "lost acknowledged write": [
        write(0, 0, 1, b"a", 1),
        write(0, 2, 3, b"b", 2),
        read(1, 4, 5, b"a", 1),
    ],
    "two CAS on the same version both succeed": [
        cas(0, 0, 5, 0, b"x", OK),
        cas(1, 1, 6, 0, b"y", OK),
    ],
    "read of a value nobody wrote": [
        write(0, 0, 1, b"a", 1),
        read(1, 2, 3, b"zzz", 1),
    ],
    "CAS fails although the version surely matched": [
        write(0, 0, 1, b"a", 1),
        cas(0, 2, 3, 1, b"b", FAIL),
    ],
    "write reports a version that skips one": [
        write(0, 0, 1, b"a", 2),
    ],
    "read goes back in time": [
        write(0, 0, 10, b"a", 1),
        read(1, 1, 2, b"a", 1),
        read(1, 3, 4, b"", 0),
    ],
    "unknown write cannot take effect before it was invoked": [
        read(1, 0, 1, b"a", 1),
        unknown_write(0, 2, b"a"),
    ],
    "unknown CAS on a stale version cannot explain a change": [
        write(0, 0, 1, b"a", 1),
        unknown_cas(1, 2, 0, b"b"),
        read(0, 5, 6, b"b", 2),
    ],
}


@pytest.mark.parametrize("name", list(GOOD))
def test_known_good_history_is_linearizable(name):
    ok, info = check(GOOD[name], INIT)
    assert ok, info


@pytest.mark.parametrize("name", list(BAD))
def test_known_bad_history_is_rejected(name):
    ok, info = check(BAD[name], INIT)
    assert not ok
    assert "not linearizable" in info


def _simulated_history(seed, processes=5, ops_per_process=40, unknown_rate=0.1):
    """A history produced by a real atomic register: every op takes effect at
    one instant inside its [invoke, complete] window, so it must check."""
    rng = random.Random(seed)
    events = []
    for p in range(processes):
        t = rng.random()
        for _ in range(ops_per_process):
            invoke = t
            point = invoke + rng.random()
            complete = point + rng.random()
            events.append((point, p, invoke, complete))
            t = complete + rng.random() * 0.1
    events.sort()
    state = INIT
    ops = []
    for point, p, invoke, complete in events:
        kind = rng.choice([READ, WRITE, CAS, CAS])
        value = f"{p}-{len(ops)}".encode()
        if kind == READ:
            ops.append(read(p, invoke, complete, *state))
            continue
        expected = state[1] if kind == WRITE or rng.random() < 0.6 else state[1] + 1
        succeeded = expected == state[1]
        if succeeded:
            state = (value, state[1] + 1)
        if rng.random() < unknown_rate:
            ops.append(Op(p, kind, "k", value=value, expected=expected, invoke=invoke, result=UNKNOWN))
        elif kind == WRITE:
            ops.append(write(p, invoke, complete, value, state[1]))
        else:
            outcome = (OK, state[1]) if succeeded else (FAIL, None)
            ops.append(cas(p, invoke, complete, expected, value, *outcome))
    return ops


@pytest.mark.parametrize("seed", range(20))
def test_simulated_atomic_register_histories_check(seed):
    ok, info = check(_simulated_history(seed), INIT)
    assert ok, info


@pytest.mark.parametrize("seed", range(10))
def test_corrupted_simulated_histories_are_rejected(seed):
    """Drop the newest acknowledged write from what a later read saw: a lost write."""
    ops = _simulated_history(seed, unknown_rate=0.0)
    reads = [o for o in ops if o.kind == READ and o.output[1] >= 2]
    last = max(reads, key=lambda o: o.invoke)
    # Move the read to the very end, after every op completed, still showing its old state.
    end = max(o.complete for o in ops if o.complete is not None)
    latest_version = max(o.output[0] for o in ops if o.kind != READ and o.result == OK)
    if latest_version == last.output[1]:
        pytest.skip("the read already saw the newest state")
    last.invoke, last.complete = end + 1, end + 2
    ok, _ = check(ops, INIT)
    assert not ok


def test_duplicate_acknowledged_versions_are_caught_before_the_search():
    ops = [write(0, 0, 1, b"a", 1), write(1, 0, 1, b"b", 1)]
    ok, info = check(ops, INIT)
    assert not ok and "two acknowledged writes made version 1" in info


def test_real_time_version_inversion_is_caught_before_the_search():
    ops = [write(0, 0, 1, b"a", 2), unknown_write(1, 0, b"x"), write(1, 2, 3, b"b", 1)]
    ok, info = check(ops, INIT)
    assert not ok and "no newer version" in info


def test_search_is_bounded():
    many = [unknown_write(p, 0, f"{p}".encode()) for p in range(30)] + [read(0, 1, 2, b"never", 99)]
    with pytest.raises(SearchBudgetExceeded):
        check(many, INIT, max_steps=1000)
