#!/usr/bin/env python3
"""Every row of issue 14's performance table, Warden against Apache
ZooKeeper 3.8 in the same run, in one command:

    cargo build --release --bins
    python3 tests/compat/bench_table.py [--rounds 3] [--nodes 914400]

Per round (the two servers alternate which goes first, each on a fresh
data folder on the same disk, both with their durable defaults):

- RSS after loading --nodes znodes of 100 bytes, bytes on disk, and the
  time from a start after `kill -9` to the first getData answered
  (bench_scale.py's measurements);
- 90 % getData / 10 % setData, 16 sessions x 16 in flight (ops/s);
- setData, 1 session x 1 in flight (ops/s and p50; the p50 is also set
  against one fdatasync of a 4 KB write into allocated space on the same disk);
- getData, 16 sessions x 16 in flight (ops/s);
- Warden only: write p99 (16 sessions x 1 in flight, setData) while
  snapshots of the loaded tree are taken back to back (`POST /snapshot`),
  against the same load with no snapshot.

It prints each measurement, then the medians, the Warden/ZooKeeper
ratios, the machine and the load. The throughput runs last --duration
seconds each (default 15).
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_scale import Warden, ZooKeeper, machine, measure, run  # noqa: E402
from bench_vs_zookeeper import REPO, free_port, run_bench, stop, wait_port  # noqa: E402

WORKLOADS = [
    ("90 % get / 10 % set, 16 x 16", "--sessions 16 --in-flight 16 --write-percent 10"),
    ("setData, 1 x 1", "--sessions 1 --in-flight 1 --write-percent 100"),
    ("getData, 16 x 16", "--sessions 16 --in-flight 16 --write-percent 0"),
]
# zk_bench's RESULT fields, as bench_vs_zookeeper.run_bench returns them.
OPS, P50, P99, WRITE_P50, WRITE_P99 = 0, 1, 2, 5, 6


def fdatasync_ms(directory, n=200):
    """The median time of an fdatasync after a 4 KB write into space
    allocated beforehand (as Warden's and ZooKeeper's logs are), in ms."""
    path = os.path.join(directory, "fdatasync-probe")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.posix_fallocate(fd, 0, (n + 1) * 4096)
        os.fsync(fd)
        times = []
        for i in range(n):
            os.pwrite(fd, b"x" * 4096, i * 4096)
            t = time.perf_counter()
            os.fdatasync(fd)
            times.append((time.perf_counter() - t) * 1000)
        return statistics.median(times)
    finally:
        os.close(fd)
        os.unlink(path)


def throughput(side, args, work, bench_args):
    """One zk_bench run against a fresh server of `side`."""
    server = side(args, work)
    server.start()
    try:
        server.ready()
        return run_bench(args.bench, "127.0.0.1:%d" % server.port, bench_args)
    finally:
        server.stop()
        shutil.rmtree(server.data, ignore_errors=True)


def snapshot_p99(args, work):
    """(steady write p99, write p99 during snapshots, snapshots taken,
    median snapshot ms) on a Warden loaded with --nodes znodes."""
    data = os.path.join(work, "warden-snap")
    port, admin = free_port(), free_port()
    cmd = [args.warden, "--data-dir", data, "--listen", "127.0.0.1:%d" % free_port(),
           "--admin-listen", "127.0.0.1:%d" % admin, "--zk-listen", "127.0.0.1:%d" % port,
           "--max-connections-per-ip", "0", "--snapshot-every", "1000000000000"]
    print("  $ " + " ".join(cmd), flush=True)
    proc = subprocess.Popen(cmd, stdout=open(os.path.join(work, "warden-snap.log"), "a"),
                            stderr=subprocess.STDOUT, env=dict(os.environ, RUST_LOG="warn"))
    addr = "127.0.0.1:%d" % port
    load = "--sessions 16 --in-flight 1 --write-percent 100 --duration %d --warmup 2" % args.duration
    try:
        wait_port(port, proc, "warden-server", timeout=600)
        run([args.bench, "--servers", addr, "--populate", str(args.nodes), "--sessions", "16",
             "--in-flight", "16", "--value-size", "100"], "zk_bench --populate")
        steady = run_bench(args.bench, addr, load)
        done, took = threading.Event(), []

        def snapshots():
            while not done.is_set():
                req = urllib.request.Request("http://127.0.0.1:%d/snapshot" % admin, method="POST")
                with urllib.request.urlopen(req, timeout=600) as r:
                    took.append(int(__import__("json").loads(r.read())["ms"]))

        t = threading.Thread(target=snapshots)
        t.start()
        try:
            during = run_bench(args.bench, addr, load)
        finally:
            done.set()
            t.join()
        ms = statistics.median(took) if took else float("nan")
        print("    Warden write p99 %.2f ms steady, %.2f ms during %d snapshots (median %.0f ms each)"
              % (steady[WRITE_P99], during[WRITE_P99], len(took), ms), flush=True)
        return steady[WRITE_P99], during[WRITE_P99], len(took), ms
    finally:
        stop(proc)
        shutil.rmtree(data, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--nodes", type=int, default=914400)
    ap.add_argument("--duration", type=int, default=15, help="seconds per throughput run")
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--zk-heap", default="4g", help="ZooKeeper's -Xmx")
    ap.add_argument("--bench", default=os.path.join(REPO, "target/release/zk_bench"))
    ap.add_argument("--warden", default=os.path.join(REPO, "target/release/warden-server"))
    ap.add_argument("--work-dir", help="where the data folders go (default: under target/)")
    ap.add_argument("--rows", default="scale,throughput,snapshot",
                    help="which rows to measure (comma-separated; for trying one change)")
    args = ap.parse_args()
    rows = set(args.rows.split(","))
    for b in (args.bench, args.warden):
        if not os.path.exists(b):
            sys.exit("%s is missing: cargo build --release --bins" % b)
    print("machine: %s" % machine(), flush=True)
    work = tempfile.mkdtemp(prefix="bench-table-", dir=args.work_dir or os.path.join(REPO, "target"))
    sync_ms = fdatasync_ms(work)
    print("one fdatasync of a 4 KB write into allocated space here: %.3f ms (median of 200)" % sync_ms,
          flush=True)
    res = {}
    try:
        for r in range(args.rounds):
            order = [Warden, ZooKeeper] if r % 2 == 0 else [ZooKeeper, Warden]
            for side in order if "scale" in rows else []:
                print("round %d: %s at scale" % (r + 1, side.name), flush=True)
                res.setdefault(("scale", side.name), []).append(measure(side(args, work), args, args.nodes))
            for label, load in WORKLOADS if "throughput" in rows else []:
                for side in order:
                    print("round %d: %s, %s" % (r + 1, side.name, label), flush=True)
                    bench_args = "%s --duration %d --warmup 3" % (load, args.duration)
                    res.setdefault((label, side.name), []).append(throughput(side, args, work, bench_args))
            if "snapshot" in rows:
                print("round %d: Warden writes during snapshots" % (r + 1), flush=True)
                res.setdefault(("snapshot", "warden"), []).append(snapshot_p99(args, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def med(key, side, i):
        return statistics.median(x[i] for x in res[(key, side)])

    print("\nmachine: %s; medians of %d alternating round(s); %d znodes of %d bytes; throughput runs of %d s"
          % (machine(), args.rounds, args.nodes, args.value_size, args.duration))
    print("| workload | ZooKeeper 3.8 | Warden | Warden/ZooKeeper |")
    print("|---|---|---|---|")
    for i, (label, fmt) in enumerate([] if "scale" not in rows else [("RSS after loading", "%.0f MB"), ("bytes on disk", "%.0f MB"),
                                      ("restart after kill -9 to first read", "%.2f s")]):
        zk, wd = med("scale", "zookeeper", i), med("scale", "warden", i)
        print("| %s | %s | %s | %.2f |" % (label, fmt % zk, fmt % wd, wd / zk))
    for label, _ in WORKLOADS if "throughput" in rows else []:
        zk, wd = med(label, "zookeeper", OPS), med(label, "warden", OPS)
        print("| %s: ops/s | %.0f | %.0f | %.2f |" % (label, zk, wd, wd / zk))
    if "throughput" in rows:
        label = WORKLOADS[1][0]
        zk, wd = med(label, "zookeeper", WRITE_P50), med(label, "warden", WRITE_P50)
        print("| %s: p50 | %.3f ms | %.3f ms (%.1f fdatasyncs of %.3f ms) | %.2f |"
              % (label, zk, wd, wd / sync_ms, sync_ms, wd / zk))
    if "snapshot" not in rows:
        return
    steady, during = med("snapshot", "warden", 0), med("snapshot", "warden", 1)
    print("| write p99 (16 x 1 setData) during snapshots of %d znodes | - | %.2f ms, steady %.2f ms (%.2fx), "
          "%.0f ms per snapshot | - |" % (args.nodes, during, steady, during / steady,
                                          med("snapshot", "warden", 3)))


if __name__ == "__main__":
    main()
