#!/usr/bin/env python3
"""Memory, disk and restart time at scale, Warden against Apache ZooKeeper
3.8 in the same run: the first three rows of issue 14's table, and its
scale series.

    cargo build --release --bins
    python3 tests/compat/bench_scale.py [--nodes 914400] [--rounds 3]
    python3 tests/compat/bench_scale.py --nodes 100000,1000000,5000000 --watchers 10000   # the series

For each node count and round, each server in turn (Warden first, then
ZooKeeper; alternating rounds, each on a fresh data folder on the same
disk) is started with its durable defaults, loaded with `zk_bench
--populate N` (N nodes of --value-size bytes, 16 sessions x 16 in
flight), and measured:

- RSS after loading: VmRSS of the server process (the JVM for ZooKeeper,
  with --zk-heap as its -Xmx) once the load has finished;
- bytes on disk: the whole data folder (log, snapshots), once no snapshot
  is being written (Warden's `snapshot.tmp` is gone);
- latency with that tree: p50 and p99 of getData and of writes under a
  light mixed load (16 sessions x 1 in flight, 10 % writes, --latency-secs);
- restart: the server is killed with SIGKILL and started again on the same
  folder; the time from that start to the first successful getData of a
  loaded node (`zk_bench --probe`), which includes reading the data back.

With --watchers N, each server is also started empty and N sessions each
set a watch on one node (`zk_bench --watchers N`): the server's RSS with
them against its RSS idle, and the time from one setData to the first
half and to the last of the N events (median of 5 rounds).

It prints each measurement, then per node count the medians and the
Warden/ZooKeeper ratios, with the machine (cores, memory, load average)
and the load. --only warden|zookeeper measures one side.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_vs_zookeeper import REPO, free_port, run_bench, stop, wait_port  # noqa: E402

# zk_bench's RESULT fields, as bench_vs_zookeeper.run_bench returns them.
READ_P50, READ_P99, WRITE_P50, WRITE_P99 = 3, 4, 5, 6


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def disk_mb(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total / (1024.0 * 1024.0)


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def run(cmd, what):
    print("  $ " + " ".join(cmd), flush=True)
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit("%s failed:\n%s%s" % (what, out.stdout, out.stderr))
    return out.stdout


class Warden:
    name = "warden"

    def __init__(self, args, work):
        self.args, self.data = args, os.path.join(work, "warden-data")
        self.port = free_port()
        self.proc = None
        self.log = os.path.join(work, "warden.log")

    def start(self):
        cmd = [self.args.warden, "--data-dir", self.data,
               "--listen", "127.0.0.1:%d" % free_port(),
               "--admin-listen", "127.0.0.1:%d" % free_port(),
               "--zk-listen", "127.0.0.1:%d" % self.port,
               "--max-connections-per-ip", "0"]
        print("  $ " + " ".join(cmd), flush=True)
        self.proc = subprocess.Popen(cmd, stdout=open(self.log, "a"), stderr=subprocess.STDOUT,
                                     env=dict(os.environ, RUST_LOG="warn"))
        return self.proc.pid

    def ready(self):
        wait_port(self.port, self.proc, "warden-server", timeout=600)

    def pid(self):
        return self.proc.pid

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def stop(self):
        stop(self.proc)


class ZooKeeper:
    name = "zookeeper"

    def __init__(self, args, work):
        self.args, self.data = args, os.path.join(work, "zk-data")
        self.port = free_port()
        self.proc = None

    def start(self):
        cmd = [sys.executable, os.path.join(HERE, "zookeeper.py"), "--port", str(self.port),
               "--data-dir", self.data, "--heap", self.args.zk_heap]
        print("  $ " + " ".join(cmd), flush=True)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        return self.proc.pid

    def ready(self):
        line = self.proc.stdout.readline()
        if not line.startswith("READY"):
            sys.exit("zookeeper.py did not start: %r" % line)

    def pid(self):
        java = children(self.proc.pid)
        if not java:
            sys.exit("no JVM under zookeeper.py")
        return java[0]

    def kill9(self):
        os.kill(self.pid(), 9)
        self.proc.wait()

    def stop(self):
        stop(self.proc)


def measure(server, args, nodes, latency_secs=0):
    """(RSS MB after loading, MB on disk, restart seconds, read p50 ms,
    read p99 ms, write p50 ms, write p99 ms)."""
    addr = "127.0.0.1:%d" % server.port
    server.start()
    try:
        server.ready()
        out = run([args.bench, "--servers", addr, "--populate", str(nodes),
                   "--sessions", "16", "--in-flight", "16", "--value-size", str(args.value_size)],
                  "zk_bench --populate")
        print("    " + out.strip(), flush=True)
        rss = rss_mb(server.pid())
        lat = (float("nan"),) * 7
        if latency_secs > 0:
            lat = run_bench(args.bench, addr, "--sessions 16 --in-flight 1 --write-percent 10 "
                            "--duration %d --warmup 2" % latency_secs)
        # At rest: a snapshot being written holds a second copy of the
        # tree on disk until it replaces the old one.
        deadline = time.time() + 60
        while os.path.exists(os.path.join(server.data, "snapshot.tmp")) and time.time() < deadline:
            time.sleep(0.1)
        disk = disk_mb(server.data)
        server.kill9()
        # The probe starts with the server: it measures from that start to
        # the first getData answered.
        server.start()
        probe = run([args.bench, "--servers", addr, "--probe", "/zk-populate/p0/n0"], "zk_bench --probe")
        restart = int(probe.split("ms=")[1]) / 1000.0
        server.ready()
        print("    %s: RSS %.0f MB, on disk %.0f MB, restart to first read %.2f s, "
              "read p50/p99 %.3f/%.3f ms, write p50/p99 %.3f/%.3f ms"
              % (server.name, rss, disk, restart, lat[READ_P50], lat[READ_P99],
                 lat[WRITE_P50], lat[WRITE_P99]), flush=True)
        return rss, disk, restart, lat[READ_P50], lat[READ_P99], lat[WRITE_P50], lat[WRITE_P99]
    finally:
        server.stop()
        shutil.rmtree(server.data, ignore_errors=True)


def watching(server, args, n):
    """(RSS MB idle, RSS MB with n watching sessions, fan-out p50 ms, fan-out
    max ms) on an empty server."""
    addr = "127.0.0.1:%d" % server.port
    server.start()
    try:
        server.ready()
        idle = rss_mb(server.pid())
        cmd = [args.bench, "--servers", addr, "--watchers", str(n), "--pause"]
        print("  $ " + " ".join(cmd), flush=True)
        bench = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = bench.stdout.readline()
        if not line.startswith("WATCHING"):
            bench.kill()
            sys.exit("zk_bench --watchers failed: %r" % line)
        print("    " + line.strip(), flush=True)
        rss = rss_mb(server.pid())
        bench.stdin.write("\n")
        bench.stdin.flush()
        out = bench.stdout.read()
        if bench.wait() != 0 or "FANOUT" not in out:
            sys.exit("zk_bench --watchers failed:\n" + out)
        print("    " + out.strip(), flush=True)
        fields = dict(kv.split("=") for kv in out.split("FANOUT")[1].split())
        res = idle, rss, float(fields["p50_ms"]), float(fields["max_ms"])
        print("    %s: RSS %.0f MB idle, %.0f MB with %d watching sessions; an event reaches half "
              "of them in %.1f ms, all in %.1f ms" % ((server.name, res[0], res[1], n) + res[2:]), flush=True)
        return res
    finally:
        server.stop()
        shutil.rmtree(server.data, ignore_errors=True)


def machine():
    cores = os.cpu_count()
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) / (1024.0 * 1024.0)
    return "%d cores, %.0f GB, load average %s" % (cores, mem, " ".join(
        "%.1f" % x for x in os.getloadavg()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", default="914400", help="node counts, comma-separated")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--zk-heap", default="4g", help="ZooKeeper's -Xmx")
    ap.add_argument("--bench", default=os.path.join(REPO, "target/release/zk_bench"))
    ap.add_argument("--warden", default=os.path.join(REPO, "target/release/warden-server"))
    ap.add_argument("--work-dir", help="where the data folders go (default: a temporary folder on /work's disk)")
    ap.add_argument("--only", choices=["warden", "zookeeper"])
    ap.add_argument("--latency-secs", type=int, default=10,
                    help="seconds of the latency load per node count (0: skip)")
    ap.add_argument("--watchers", type=int, default=0,
                    help="also measure N sessions with a watch each (0: skip)")
    args = ap.parse_args()
    for b in (args.bench, args.warden):
        if not os.path.exists(b):
            sys.exit("%s is missing: cargo build --release --bins" % b)
    sides = [s for s in (Warden, ZooKeeper) if args.only in (None, s.name)]
    print("machine: %s" % machine(), flush=True)
    results = {}
    for nodes in [int(n) for n in args.nodes.split(",")]:
        for r in range(args.rounds):
            order = sides if r % 2 == 0 else list(reversed(sides))
            for side in order:
                work = tempfile.mkdtemp(prefix="bench-scale-", dir=args.work_dir or REPO + "/target")
                print("round %d, %d nodes, %s" % (r + 1, nodes, side.name), flush=True)
                results.setdefault((nodes, side.name), []).append(measure(side(args, work), args, nodes, args.latency_secs))
                shutil.rmtree(work, ignore_errors=True)
    for r in range(args.rounds if args.watchers else 0):
        for side in sides if r % 2 == 0 else list(reversed(sides)):
            work = tempfile.mkdtemp(prefix="bench-scale-", dir=args.work_dir or REPO + "/target")
            print("round %d, %d watching sessions, %s" % (r + 1, args.watchers, side.name), flush=True)
            results.setdefault(("watchers", side.name), []).append(watching(side(args, work), args, args.watchers))
            shutil.rmtree(work, ignore_errors=True)
    print("\nmachine: %s\nload: zk_bench --populate N --sessions 16 --in-flight 16 --value-size %d; "
          "medians of %d round(s)" % (machine(), args.value_size, args.rounds))
    print("| nodes | measure | ZooKeeper 3.8 | Warden | Warden/ZooKeeper |")
    print("|---|---|---|---|---|")
    for nodes in [int(n) for n in args.nodes.split(",")]:
        for i, (label, fmt) in enumerate([("RSS after loading", "%.0f MB"), ("bytes on disk", "%.0f MB"),
                                          ("restart to first read", "%.2f s"), ("getData p50", "%.3f ms"),
                                          ("getData p99", "%.3f ms"), ("write p50", "%.3f ms"),
                                          ("write p99", "%.3f ms")]):
            row(nodes, label, fmt, results.get((nodes, "zookeeper")), results.get((nodes, "warden")), i)
    if args.watchers:
        for i, (label, fmt) in enumerate([("RSS idle", "%.0f MB"), ("RSS with them", "%.0f MB"),
                                          ("setData to half the events", "%.1f ms"),
                                          ("setData to the last event", "%.1f ms")]):
            row("%d sessions with a watch" % args.watchers, label, fmt, results.get(("watchers", "zookeeper")),
                results.get(("watchers", "warden")), i)


def row(what, label, fmt, zk_runs, wd_runs, i):
    def med(runs):
        return statistics.median(x[i] for x in runs) if runs else float("nan")
    zk, wd = med(zk_runs), med(wd_runs)
    print("| %s | %s | %s | %s | %.2f |" % (what, label, fmt % zk, fmt % wd,
                                           wd / zk if zk == zk and zk else float("nan")))


if __name__ == "__main__":
    main()
