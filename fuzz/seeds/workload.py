"""Makes the real on-disk data the fuzz seeds come from: runs zkw (tests/python/zkharness.py)
with a small snapCount, drives every kind of write through kazoo, stops the server with SIGTERM
and copies its dataDir to the directory given as the only argument. `fuzz/seeds/make.sh` runs
this and then the `seeds` binary.
"""

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "python"))

from kazoo.client import KazooClient  # noqa: E402
from kazoo.security import make_digest_acl  # noqa: E402

import zkharness  # noqa: E402

# Small, so the run writes a snapshot and keeps writing log entries after it.
SNAP_COUNT_TXNS = 40


def workload(hosts):
    client = KazooClient(hosts=hosts, timeout=10)
    client.start(timeout=30)
    try:
        client.add_auth("digest", "fuzz:seed")
        client.create("/app", b"config v1")
        client.create("/app/null")  # empty data
        client.create("/app/lock-", b"", ephemeral=True, sequence=True)
        client.create("/app/seq-", b"x", sequence=True)
        client.create("/secret", b"s", acl=[make_digest_acl("fuzz", "seed", all=True)])
        client.set_acls("/app/null", [make_digest_acl("fuzz", "seed", read=True, write=True)])
        for round_ in range(SNAP_COUNT_TXNS + 10):
            client.set("/app", b"config v%d" % round_)
        transaction = client.transaction()
        transaction.check("/app", -1)
        transaction.create("/app/txn", b"in a multi")
        transaction.set_data("/app/txn", b"changed")
        transaction.delete("/app/txn")
        transaction.commit()
        client.delete("/app/null")
        client.delete("/secret")
        client.create("/tail", b"after the snapshot")
    finally:
        client.stop()
        client.close()


def main():
    out = Path(sys.argv[1])
    server = zkharness.Server("zkw", extra_cfg={"snapCount": SNAP_COUNT_TXNS}).start()
    try:
        workload(server.hosts)
        server._terminate()
        shutil.copytree(Path(server.tmpdir) / "data", out, dirs_exist_ok=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
