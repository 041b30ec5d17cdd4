"""Differential test: the same scripted scenario against the target server
(ZKW_TARGET, default zkw) and Apache ZooKeeper 3.8; their normalised
records must be identical. With ZKW_TARGET=zookeeper both sides are
ZooKeeper, which checks that the normalisation itself is deterministic."""

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


def test_same_behaviour_as_zookeeper(tmp_path):
    reference = _record("zookeeper")
    candidate = _record(h.target())
    out_dir = os.environ.get("ZKW_DIFF_OUT")
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        for name, lines in (("zookeeper", reference), (h.target(), candidate)):
            with open(os.path.join(out_dir, f"{name}.txt"), "w") as f:
                f.write("\n".join(lines) + "\n")
    assert len(reference) > 50
    if candidate != reference:
        diff = "\n".join(
            difflib.unified_diff(
                reference, candidate, "zookeeper", h.target(), lineterm="", n=2
            )
        )
        pytest.fail(f"{h.target()} differs from ZooKeeper:\n{diff}", pytrace=False)
