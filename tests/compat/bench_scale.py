#!/usr/bin/env python3
"""Memory, disk and restart time at scale, Warden against Apache ZooKeeper
3.8 in the same run: the first three rows of issue 14's table, and its
scale series.

    cargo build --release --bins
    python3 tests/compat/bench_scale.py [--nodes 914400] [--rounds 3]
    python3 tests/compat/bench_scale.py --nodes 100000,1000000 --rounds 1   # a scale series

For each node count and round, each server in turn (Warden first, then
ZooKeeper; alternating rounds, each on a fresh data folder on the same
disk) is started with its durable defaults, loaded with `zk_bench
--populate N` (N nodes of --value-size bytes, 16 sessions x 16 in
flight), and measured:

- RSS after loading: VmRSS of the server process (the JVM for ZooKeeper,
  with --zk-heap as its -Xmx) once the load has finished;
- bytes on disk: the whole data folder (log, snapshots), once no snapshot
  is being written (Warden's `snapshot.tmp` is gone);
- restart: the server is killed with SIGKILL and started again on the same
  folder; the time from that start to the first successful getData of a
  loaded node (`zk_bench --probe`), which includes reading the data back.

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
from bench_vs_zookeeper import REPO, free_port, stop, wait_port  # noqa: E402


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


def measure(server, args, nodes):
    """(RSS MB after loading, MB on disk, restart seconds)."""
    addr = "127.0.0.1:%d" % server.port
    server.start()
    try:
        server.ready()
        out = run([args.bench, "--servers", addr, "--populate", str(nodes),
                   "--sessions", "16", "--in-flight", "16", "--value-size", str(args.value_size)],
                  "zk_bench --populate")
        print("    " + out.strip(), flush=True)
        rss = rss_mb(server.pid())
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
        print("    %s: RSS %.0f MB, on disk %.0f MB, restart to first read %.2f s"
              % (server.name, rss, disk, restart), flush=True)
        return rss, disk, restart
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
                results.setdefault((nodes, side.name), []).append(measure(side(args, work), args, nodes))
                shutil.rmtree(work, ignore_errors=True)
    print("\nmachine: %s\nload: zk_bench --populate N --sessions 16 --in-flight 16 --value-size %d; "
          "medians of %d round(s)" % (machine(), args.value_size, args.rounds))
    print("| nodes | measure | ZooKeeper 3.8 | Warden | Warden/ZooKeeper |")
    print("|---|---|---|---|---|")
    for nodes in [int(n) for n in args.nodes.split(",")]:
        for i, (label, unit) in enumerate([("RSS after loading", "MB"), ("bytes on disk", "MB"),
                                           ("restart to first read", "s")]):
            def med(side):
                runs = results.get((nodes, side))
                return statistics.median(x[i] for x in runs) if runs else float("nan")
            zk, wd = med("zookeeper"), med("warden")
            fmt = "%.2f %s" if unit == "s" else "%.0f %s"
            print("| %d | %s | %s | %s | %.2f |" % (nodes, label, fmt % (zk, unit), fmt % (wd, unit), wd / zk
                                                   if zk == zk and zk else float("nan")))


if __name__ == "__main__":
    main()
