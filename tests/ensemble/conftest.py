"""pytest wiring for tests/ensemble: the cluster factory fixture and failure artefacts.

Owns: `make_cluster` (starts an N-member ensemble, closes it after the test,
keeping its directory with every member's log when the test failed or env
ZKW_KEEP_LOGS is set), and the hook that lets fixtures see the outcome.
"""

import os

import pytest

from cluster import Cluster, target

# Whole-test bound, in seconds (pytest-timeout); each test aims well under it.
TEST_TIMEOUT_S = 90


def pytest_collection_modifyitems(items):
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(TEST_TIMEOUT_S))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def make_cluster(request):
    clusters = []

    def make(size=3, extra_cfg=None, start=True, proxied=True, timing=None, observers=()):
        cluster = Cluster(
            size, extra_cfg=extra_cfg, proxied=proxied, timing=timing, observers=observers
        )
        clusters.append(cluster)
        if start:
            cluster.start()
        return cluster

    yield make
    report = getattr(request.node, "report_call", None)
    keep = bool(os.environ.get("ZKW_KEEP_LOGS")) or report is None or report.failed
    for cluster in clusters:
        cluster.close(keep_dir=keep)
        if keep:
            print(f"\n[{target()}] member logs kept in {cluster.base_dir}")
