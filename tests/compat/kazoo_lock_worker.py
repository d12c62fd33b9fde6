#!/usr/bin/env python3
"""A kazoo Lock contender for the mixed-client lock test
(`tests/tests/zookeeper/mixed_lock.rs`): takes the lock at --path --rounds times,
holding it --hold-ms each time, and appends to --out the same lines as
`recipe_worker hold`: `ACQ <ns> 0 <pid>` after each grant and
`REL <ns> 0 <pid>` just before each release, times in CLOCK_MONOTONIC
nanoseconds (one clock for every process on the machine), each line one
write(2) on a file opened with O_APPEND.

The lock is kazoo's own `Lock` with `extra_lock_patterns=("-lock-",)`, so
it also queues behind contenders named the Curator/Warden way
(`_c_<uuid>-lock-<seq>`); Warden's Lock in turn recognises kazoo's
`<uuid>__lock__<seq>`.

    python3 tests/compat/kazoo_lock_worker.py --hosts H --path P --rounds N --out F [--hold-ms MS]

Exit status 0 when every round completed, 1 on an error, 2 if kazoo is
missing.
"""

import argparse
import os
import sys
import time

try:
    from kazoo.client import KazooClient
except ImportError as e:
    sys.stderr.write(
        "kazoo_lock_worker.py: kazoo is not importable (%s): "
        "pip install -r tests/compat/requirements.txt\n" % e
    )
    sys.exit(2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", required=True)
    ap.add_argument("--path", required=True)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--hold-ms", type=int, default=5)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    fd = os.open(args.out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    pid = os.getpid()

    def record(kind):
        os.write(fd, ("%s %d 0 %d\n" % (kind, time.monotonic_ns(), pid)).encode())

    client = KazooClient(hosts=args.hosts, timeout=10.0)
    client.start(timeout=15)
    try:
        lock = client.Lock(args.path, "kazoo-%d" % pid, extra_lock_patterns=("-lock-",))
        for _ in range(args.rounds):
            if not lock.acquire(timeout=30):
                sys.exit("kazoo_lock_worker.py: no grant within 30 s")
            record("ACQ")
            time.sleep(args.hold_ms / 1000.0)
            record("REL")
            lock.release()
    finally:
        client.stop()
        client.close()


if __name__ == "__main__":
    main()
