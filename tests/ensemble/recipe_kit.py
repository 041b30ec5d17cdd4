"""Shared by the recipe ensemble tests: the super user every test ensemble knows, the zkw CLI
against a cluster, installing a recipe built into zkw by name, and one kazoo client per member."""

import subprocess

from cluster import Cluster, zkw_binary
from workload import connect

# admin:secret, as DigestAuthenticationProvider.generateDigest makes it.
SUPER_DIGEST = "admin:fvr2cB/fjGeAiX8g1aGhUm3ZICk="
SUPER_AUTH = "digest:admin:secret"
SUPER_CFG = {"DigestAuthenticationProvider.superDigest": SUPER_DIGEST}
# Bound on one zkw CLI run, in seconds.
CLI_TIMEOUT_S = 60


def zkw(cluster, *args, check=True):
    """Runs the zkw CLI against the whole ensemble; returns the CompletedProcess."""
    done = subprocess.run(
        [str(zkw_binary()), *map(str, args), "--server", cluster.hosts()],
        capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
    )
    if check:
        assert done.returncode == 0, f"zkw {args}: {done.stdout}\n{done.stderr}"
    return done


def install_builtin(cluster, name, path, *extra):
    """`zkw recipe install NAME --path PATH` as the super user (the recipe built into zkw)."""
    zkw(cluster, "recipe", "install", name, "--path", path, "--auth", SUPER_AUTH, *extra)


def recipe_ensemble(name, path, *extra):
    """Generator for a module fixture: a started 3-node ensemble with `name` installed."""
    cluster = Cluster(3, extra_cfg=SUPER_CFG)
    try:
        cluster.start()
        install_builtin(cluster, name, path, *extra)
        yield cluster
    finally:
        cluster.close()


def member_clients(cluster):
    """Generator for a fixture: one kazoo client per member, so watchers sit on different
    servers."""
    zks = [connect(cluster[sid].hosts) for sid in cluster.ids]
    yield zks
    for zk in zks:
        zk.stop()
        zk.close()
