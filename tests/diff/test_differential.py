"""Differential test: the same scripted scenario (tests/diff/scenario.py)
against the target server (ZKW_TARGET, default zkw) and Apache ZooKeeper
3.8; their normalised records must be identical, field by field (result
with numeric error codes, reply-header zxid and err, watch events with
their keeper state).

A difference that is known and reported is split out of the whole-record
comparison into its own test, strictly expected to fail against zkw (it
passes, and so must pass, when both sides are ZooKeeper). With
ZKW_TARGET=zookeeper both sides are ZooKeeper, which checks that the
normalisation itself is deterministic.
"""

import difflib
import os

import pytest

import scenario
import zkharness as h

# (op label, field) -> the difference, exactly. Each is compared alone in
# test_known_difference and left out of test_same_behaviour_as_zookeeper.
KNOWN_DIFFERENCES = {
    ("addauth alice", "reply"): (
        "zkw differs: the reply to an auth packet (xid -4) carries the last "
        "zxid in its header; ZooKeeper's carries zxid 0"
    ),
}
SPLIT_OUT = "<compared alone in test_known_difference>"


def _record(kind):
    server = h.Server(kind).start()
    try:
        return scenario.run(server)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def records():
    reference = _record("zookeeper")
    candidate = _record(h.target())
    out_dir = os.environ.get("ZKW_DIFF_OUT")
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        for name, record in (("zookeeper", reference), (h.target(), candidate)):
            with open(os.path.join(out_dir, f"{name}.txt"), "w") as f:
                f.write("\n".join(scenario.text(record)) + "\n")
    return reference, candidate


def _without_known(record):
    out = []
    for label, fields in record:
        fields = dict(fields)
        for (known_label, field) in KNOWN_DIFFERENCES:
            if known_label == label:
                fields[field] = SPLIT_OUT
        out.append((label, fields))
    return out


def test_same_behaviour_as_zookeeper(records):
    reference, candidate = records
    labels = [label for label, _ in reference]
    assert len(labels) > 150 and len(set(labels)) == len(labels), "scenario labels must be unique"
    for label, field in KNOWN_DIFFERENCES:
        assert field in dict(reference)[label], f"known difference {label!r} {field!r} not recorded"
    want = scenario.text(_without_known(reference))
    got = scenario.text(_without_known(candidate))
    if got != want:
        diff = "\n".join(difflib.unified_diff(want, got, "zookeeper", h.target(), lineterm="", n=2))
        pytest.fail(f"{h.target()} differs from ZooKeeper:\n{diff}", pytrace=False)


@pytest.mark.parametrize(
    "label, field",
    [
        pytest.param(
            label,
            field,
            marks=pytest.mark.xfail(h.target() == "zkw", strict=True, reason=reason),
            id=f"{label}:{field}",
        )
        for (label, field), reason in KNOWN_DIFFERENCES.items()
    ],
)
def test_known_difference(records, label, field):
    reference, candidate = records
    want = dict(reference)[label][field]
    got = dict(candidate).get(label, {}).get(field)
    assert got == want, f"{label} {field}: zookeeper {want}, {h.target()} {got}"
