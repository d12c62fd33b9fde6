#!/usr/bin/env python3
"""Warden against Apache ZooKeeper 3.8 under the same ZooKeeper-protocol
load: alternates the two servers for --rounds rounds (Warden first), each
on a fresh data folder on the same disk, each measured by one `zk_bench`
run with the same options, and prints each run and the medians and
Warden/ZooKeeper ratios (the table in docs/benchmarks.md).

    cargo build --release --bins
    python3 tests/compat/bench_vs_zookeeper.py [--rounds 3] [--bench-args "--sessions 32 --duration 20"]

Both servers run with their durable defaults: Warden fsyncs each commit
group before replying; ZooKeeper runs with `forceSync=yes` (checked: its
`mntr` fsync count must grow during the run, or the script stops).
--only zookeeper|warden runs one side (for checking the script).
--warden-before PATH adds a third side, another warden-server binary (an
older build), measured in the same rounds (before/after figures).
"""

import argparse
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
RESULT = re.compile(
    r"RESULT ops_per_sec=(\S+) p50_ms=(\S+) p99_ms=(\S+) read_p50_ms=(\S+) read_p99_ms=(\S+) "
    r"write_p50_ms=(\S+) write_p99_ms=(\S+)"
)
FIELDS = ["ops/s", "p50", "p99", "read p50", "read p99", "write p50", "write p99"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def four_letter(port, cmd):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(cmd.encode())
            out = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return out.decode(errors="replace")
                out += chunk
    except OSError:
        return ""


def fsync_count(port):
    """ZooKeeper's count of fsyncs so far (-1 if mntr does not answer)."""
    deadline = time.monotonic() + 10
    while True:
        m = re.search(r"zk_cnt_fsynctime\s+(\d+)", four_letter(port, "mntr"))
        if m or time.monotonic() > deadline:
            return int(m.group(1)) if m else -1
        time.sleep(0.1)


def warden_flushes(admin_port):
    """(log flushes, txns flushed) so far, from Warden's /metrics."""
    import urllib.request
    body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % admin_port, timeout=5).read().decode()
    def metric(name):
        m = re.search(r"^%s(?:\{[^}]*\})? (\S+)$" % re.escape(name), body, re.M)
        return int(float(m.group(1))) if m else 0
    return metric("warden_fsync_batch_txns_count"), metric("warden_fsync_batch_txns_sum")


def wait_port(port, proc, what, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit("%s exited early with %s" % (what, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit("%s did not listen on %d within %d s" % (what, port, timeout))


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_bench(bench, addr, bench_args):
    cmd = [bench, "--servers", addr] + shlex.split(bench_args)
    print("  $ " + " ".join(cmd), flush=True)
    out = subprocess.run(cmd, capture_output=True, text=True)
    sys.stdout.write("".join("    " + l + "\n" for l in out.stdout.splitlines()))
    if out.returncode != 0:
        sys.exit("zk_bench failed:\n" + out.stderr)
    m = RESULT.search(out.stdout)
    return tuple(float(x) for x in m.groups())


def warden_round(args, work, binary):
    data = os.path.join(work, "warden-data")
    zk_port = free_port()
    admin_port = free_port()
    cmd = [
        binary,
        "--data-dir", data,
        "--listen", "127.0.0.1:%d" % free_port(),
        "--admin-listen", "127.0.0.1:%d" % admin_port,
        "--zk-listen", "127.0.0.1:%d" % zk_port,
    ]
    print("  $ " + " ".join(cmd), flush=True)
    log = open(os.path.join(work, "warden.log"), "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, RUST_LOG="warn"))
    try:
        wait_port(zk_port, proc, "warden-server")
        before = warden_flushes(admin_port)
        result = run_bench(args.bench, "127.0.0.1:%d" % zk_port, args.bench_args)
        after = warden_flushes(admin_port)
        print("    Warden log flushes (fsyncs) during the run: %d for %d txns" % (
            after[0] - before[0], after[1] - before[1]), flush=True)
        return result
    finally:
        stop(proc)
        shutil.rmtree(data, ignore_errors=True)


def zookeeper_round(args, work):
    data = os.path.join(work, "zk-data")
    port = free_port()
    cmd = [sys.executable, os.path.join(HERE, "zookeeper.py"), "--port", str(port), "--data-dir", data]
    print("  $ " + " ".join(cmd), flush=True)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        if not line.startswith("READY"):
            sys.exit("zookeeper.py did not start: %r" % line)
        before = fsync_count(port)
        result = run_bench(args.bench, "127.0.0.1:%d" % port, args.bench_args)
        after = fsync_count(port)
        print("    ZooKeeper fsyncs during the run: %d" % (after - before), flush=True)
        if before < 0 or after <= before:
            sys.exit("ZooKeeper did not fsync (mntr zk_cnt_fsynctime %d -> %d)" % (before, after))
        return result
    finally:
        stop(proc)
        shutil.rmtree(data, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--bench", default=os.path.join(REPO, "target/release/zk_bench"))
    ap.add_argument("--bench-args", default="--sessions 32 --duration 20 --warmup 3 --write-percent 50")
    ap.add_argument("--work-dir", help="where the data folders go (default: a temporary folder on /work's disk)")
    ap.add_argument("--only", choices=["warden", "zookeeper"])
    ap.add_argument("--warden-before", help="another warden-server binary to measure in the same rounds")
    args = ap.parse_args()
    if not os.path.exists(args.bench):
        sys.exit("%s is missing: cargo build --release --bins" % args.bench)
    work = args.work_dir or tempfile.mkdtemp(prefix="zk-bench-", dir=os.path.dirname(REPO))
    sides = [args.only] if args.only else ["warden", "zookeeper"]
    if args.warden_before:
        sides.insert(0, "before")
    results = {side: [] for side in sides}
    binaries = {"warden": os.path.join(REPO, "target/release/warden-server"), "before": args.warden_before}
    for r in range(args.rounds):
        for side in sides:
            print("round %d: %s" % (r + 1, side), flush=True)
            if side == "zookeeper":
                results[side].append(zookeeper_round(args, work))
            else:
                results[side].append(warden_round(args, work, binaries[side]))
    print("\nmedians over %d rounds (%s):" % (args.rounds, args.bench_args))
    med = {}
    print("  %-10s %s" % ("", "  ".join("%10s" % f for f in FIELDS)))
    for side in sides:
        runs = results[side]
        med[side] = [statistics.median(x[i] for x in runs) for i in range(len(FIELDS))]
        print("  %-10s %s   ops/s runs: %s" % (
            side, "  ".join("%10.3f" % v for v in med[side]), ", ".join("%.0f" % x[0] for x in runs)))
    ratios = [("W/ZK", "warden", "zookeeper"), ("before/ZK", "before", "zookeeper"), ("W/before", "warden", "before")]
    for label, a, b in ratios:
        if a in med and b in med:
            print("  %-10s %s" % (label, "  ".join("%10.2f" % (x / y) if y else "       n/a" for x, y in zip(med[a], med[b]))))
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
