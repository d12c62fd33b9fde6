#!/usr/bin/env python3
"""Planned hand-off against a crash: the write gap a client on another
member sees when the leader of a three-member Warden ensemble is stopped
with SIGTERM (it hands leadership off, then exits) and when it is killed
with SIGKILL (the others elect a leader), in one run.

    cargo build --release --bins
    python3 tests/compat/bench_handoff.py [--trials 20] [--kill-trials 5]

A trial finds the leader (`/status` on the admin port), starts a writer on
a follower (a ZooKeeper-protocol session doing one setData at a time, in a
loop, through that follower), lets it write for half a second, signals the
leader, and keeps writing for a second after the leader has exited. The
gap is the longest time between two consecutive acknowledged writes from
just before the signal to the end; a write answered with an error counts
as failed. The member is then restarted and the next trial waits until
all three are healthy. SIGTERM trials and SIGKILL trials alternate
(`--kill-trials` of the latter, spread among the former).

Prints every trial, then a markdown table: median and max gap per signal,
failed writes, and how long a SIGTERMed member took to exit.
"""

import argparse
import os
import signal
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True
import bench_ensemble as ens_mod  # noqa: E402  (WardenEnsemble, ProbeConn, ensure_probe_node)

REPO = ens_mod.REPO


class Writer(threading.Thread):
    """setData in a loop through one member; records when each was acked."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.acks = []
        self.failed = 0
        self.stop_ev = threading.Event()
        self.error = None

    def run(self):
        try:
            conn = ens_mod.ProbeConn(self.port, 2.0)
            while not self.stop_ev.is_set():
                conn.send_set(ens_mod.PROBE_PATH, b"h")
                _, _, err = conn.reply(time.monotonic() + 30)
                if err == 0:
                    self.acks.append(time.monotonic())
                else:
                    self.failed += 1
            conn.close()
        except BaseException as e:  # reported by the trial
            self.error = e


def trial(ens, sig):
    ens.wait_healthy(120)
    leader = ens.wait_leader()
    via = next(i for i in (1, 2, 3) if i != leader)
    w = Writer(ens.client_port(via))
    w.start()
    time.sleep(0.5)  # pacing: writes before the signal, not a correctness wait
    proc = ens.procs[leader]
    t_signal = time.monotonic()
    os.kill(proc.pid, sig)
    proc.wait()
    t_exit = time.monotonic()
    time.sleep(1.0)  # pacing: writes after the exit
    w.stop_ev.set()
    w.join(30)
    if w.error:
        raise RuntimeError("writer via member %d: %s" % (via, w.error))
    acks = [t for t in w.acks if t >= t_signal - 0.05]
    before = [t for t in w.acks if t < t_signal - 0.05]
    if before:
        acks.insert(0, before[-1])
    gaps = [b - a for a, b in zip(acks, acks[1:])]
    gap = max(gaps) if gaps else float("inf")
    ens.start(leader)
    ens.wait_healthy(120)
    return {"gap": gap, "exit": t_exit - t_signal, "failed": w.failed, "leader": leader,
            "via": via, "writes": len(w.acks)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--trials", type=int, default=20, help="SIGTERM trials (default 20)")
    ap.add_argument("--kill-trials", type=int, default=5, help="SIGKILL trials (default 5)")
    ap.add_argument("--warden", default=os.path.join(REPO, "target/release/warden-server"))
    ap.add_argument("--rust-log", default="warn")
    args = ap.parse_args()
    if not os.path.exists(args.warden):
        sys.exit("%s is missing: cargo build --release --bins" % args.warden)
    work = tempfile.mkdtemp(prefix="bench-handoff-", dir=os.path.dirname(REPO))
    ens = ens_mod.WardenEnsemble(work, args.warden, args.rust_log)
    print("machine: nproc %d, load average %s" % (
        os.cpu_count(), " ".join("%.2f" % l for l in os.getloadavg())), flush=True)
    results = {"SIGTERM": [], "SIGKILL": []}
    plan = ["SIGTERM"] * args.trials
    every = max(1, args.trials // max(1, args.kill_trials))
    for k in range(args.kill_trials):
        plan.insert(min(len(plan), (k + 1) * every + k), "SIGKILL")
    try:
        ens.start_all()
        ens_mod.ensure_probe_node(ens)
        for n, name in enumerate(plan):
            r = trial(ens, getattr(signal, name))
            results[name].append(r)
            print("trial %d %s: leader %d, writer via %d: gap %.3f s, exited after %.3f s, "
                  "%d failed of %d writes" % (n + 1, name, r["leader"], r["via"], r["gap"], r["exit"],
                                              r["failed"], r["writes"]), flush=True)
    finally:
        ens.stop()
        ens.remove()
        os.rmdir(work) if os.path.isdir(work) and not os.listdir(work) else None
    print("\n| signal to the leader | trials | median gap s | max gap s | failed writes | median exit s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, rs in results.items():
        if rs:
            print("| %s | %d | %.3f | %.3f | %d | %.3f |" % (
                name, len(rs), statistics.median(r["gap"] for r in rs), max(r["gap"] for r in rs),
                sum(r["failed"] for r in rs), statistics.median(r["exit"] for r in rs)))


if __name__ == "__main__":
    main()
