"""Differential test: the same scripted scenario (tests/diff/scenario.py)
against the target server (ZKW_TARGET, default zkw) and Apache ZooKeeper
3.8; their normalised records must be identical, field by field (result
with numeric error codes, reply-header zxid and err, watch events with
their keeper state).

With ZKW_TARGET=zookeeper both sides are ZooKeeper, which checks that the
normalisation itself is deterministic.
"""

import difflib
import os

import pytest

import scenario
import zkharness as h

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


def test_same_behaviour_as_zookeeper(records):
    reference, candidate = records
    labels = [label for label, _ in reference]
    assert len(labels) > 150 and len(set(labels)) == len(labels), "scenario labels must be unique"
    want = scenario.text(reference)
    got = scenario.text(candidate)
    if got != want:
        diff = "\n".join(difflib.unified_diff(want, got, "zookeeper", h.target(), lineterm="", n=2))
        pytest.fail(f"{h.target()} differs from ZooKeeper:\n{diff}", pytrace=False)
