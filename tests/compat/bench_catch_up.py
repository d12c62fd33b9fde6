#!/usr/bin/env python3
"""The leader's write latency while a follower catches up from a snapshot
(issue "A replicated ensemble", acceptance 6: the p99 while the leader
streams a snapshot should stay within 2x of the p99 without it).

For each round: a fresh three-member Warden ensemble (`--snapshot-every
1000`); one follower is SIGSTOPped; kazoo writes --znodes znodes (so the
follower's place in the log is purged); then `zk_bench` (100 % writes,
on the leader only) runs twice for --duration seconds: once with the
follower still stopped (the baseline) and once right after SIGCONT, while
the leader streams it a snapshot. Prints each run's p50/p99 and the
ratio, and how long the follower took to be healthy again.

    cargo build --release --bins
    python3 tests/compat/bench_catch_up.py [--rounds 3] [--znodes 200000]
"""

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_ensemble as ensemble  # noqa: E402
import bench_vs_zookeeper as single  # noqa: E402


class CatchUpEnsemble(ensemble.WardenEnsemble):
    def command(self, i):
        return super().command(i) + ["--snapshot-every", "1000"]


def fill(ens, leader, count):
    from kazoo.client import KazooClient

    zk = KazooClient(hosts="127.0.0.1:%d" % ens.client_port(leader), timeout=30)
    zk.start(timeout=30)
    zk.ensure_path("/big")
    window = []
    for n in range(count):
        window.append(zk.create_async("/big/n%07d" % n, b"0123456789"))
        if len(window) >= 2000:
            for w in window:
                w.get(timeout=60)
            window = []
    for w in window:
        w.get(timeout=60)
    zk.stop()
    zk.close()


def installed(ens, i):
    code, body = ens._get(i, "/metrics")
    for line in body.splitlines():
        if line.startswith("warden_snapshots_installed_total"):
            return float(line.split()[-1])
    return 0.0


def bench(args, ens, leader):
    bench_args = "--sessions 16 --in-flight 16 --duration %d --warmup 1 --write-percent 100" % args.duration
    return single.run_bench(args.bench, "127.0.0.1:%d" % ens.client_port(leader), bench_args)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--znodes", type=int, default=200_000)
    p.add_argument("--duration", type=int, default=10)
    p.add_argument("--warden", default="target/release/warden-server")
    p.add_argument("--bench", default="target/release/zk_bench")
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-catch-up-") as work:
        for r in range(args.rounds):
            ens = CatchUpEnsemble(work, args.warden, "warn")
            try:
                ens.start_all()
                leader = ens.leader()
                behind = next(i for i in (1, 2, 3) if i != leader)
                before = installed(ens, behind)
                os.kill(ens.procs[behind].pid, signal.SIGSTOP)
                t = time.monotonic()
                fill(ens, leader, args.znodes)
                print("round %d: %d znodes written in %.1f s with member %d stopped" % (
                    r + 1, args.znodes, time.monotonic() - t, behind), flush=True)
                base = bench(args, ens, leader)
                os.kill(ens.procs[behind].pid, signal.SIGCONT)
                t = time.monotonic()
                during = bench(args, ens, leader)
                while ens._get(behind, "/health")[0] != 200:
                    time.sleep(0.1)
                healthy = time.monotonic() - t
                got = installed(ens, behind) - before
                print("round %d: follower healthy %.1f s after SIGCONT, %d snapshot(s) installed" % (
                    r + 1, healthy, got), flush=True)
                if got < 1:
                    sys.exit("the follower caught up without a snapshot: raise --znodes")
                rows.append((base, during, healthy))
            finally:
                ens.stop()
                ens.remove()
    # run_bench's tuple: ops/s, p50, p99, ...
    print("\n| round | ops/s without | p50 without | p99 without | ops/s while streaming | p50 while | p99 while | p99 ratio | follower healthy after |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, (b, d, h) in enumerate(rows, 1):
        print("| %d | %.0f | %.2f | %.2f | %.0f | %.2f | %.2f | %.2f | %.1f s |" % (
            n, b[0], b[1], b[2], d[0], d[1], d[2], d[2] / b[2], h))
    ratios = [d[2] / b[2] for b, d, _ in rows]
    print("\nmedian p99 ratio (while streaming / without): %.2f" % statistics.median(ratios))


if __name__ == "__main__":
    main()
