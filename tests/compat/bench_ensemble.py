#!/usr/bin/env python3
"""Three-member Warden ensemble against a three-server Apache ZooKeeper 3.8
ensemble: throughput under the same ZooKeeper-protocol load, and the time a
write takes to succeed again after the leader is killed.

    cargo build --release --bins
    python3 tests/compat/bench_ensemble.py [--rounds 3] [--failover-trials 21]

In one run it alternates rounds (Warden first). In each round, each side
gets a fresh ensemble on loopback (fresh data folders in one temporary
folder on /work's disk) and then:

1. Throughput: `zk_bench --sessions 16 --in-flight 16 --spread` (16
   sessions spread round-robin over the three members, 16 requests in
   flight each) for each workload: 100 % writes, 100 % reads, 10 % writes;
   and, with `--workloads ...,serial`, setData from 1 session x 1 in flight
   (connected to member 1, leader or not: the latency-bound row).
2. Failover: `--failover-trials / --rounds` trials (rounded up). A trial
   finds the leader (Warden: `/status` on the admin port; ZooKeeper: the
   `srvr` four-letter word, `Mode: leader`), starts a probe on each
   surviving member (a session of its own that has already done one
   setData), sends the leader SIGKILL and measures from the kill to the
   first setData acknowledged through either survivor. Each probe retries
   in a tight loop: a request not answered within --probe-timeout (0.1 s)
   is followed by another on the same connection (an answer to any of them
   counts); a connection the member closes or that is not accepted within
   --probe-connect-timeout (0.5 s) is reopened on the same session (a new one if it
   expired). Then the killed member is restarted on its data folder and the
   next trial waits until all three are back (Warden: `/health` 200 on
   each; ZooKeeper: `srvr` says leader or follower on each, one leader).

Both sides run with their durable defaults: Warden fsyncs a write on a
majority before replying; ZooKeeper runs `forceSync=yes` with the usual
`tickTime=2000`, `initLimit=10`, `syncLimit=5` (--tick-ms, --init-limit,
--sync-limit change them; ZooKeeper's election and its followers' sync
with a new leader are paced by them). The script checks that ZooKeeper's
`mntr` fsync count grows during each write workload.

It prints every run, then markdown tables: medians over the rounds and
the Warden/ZooKeeper ratios, and failover median and max. All servers,
folders and probes are removed at the end, also on Ctrl-C or failure.
--only warden|zookeeper runs one side (for checking the script).
"""

import argparse
import json
import os
import shlex
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import bench_vs_zookeeper as single  # noqa: E402  (run_bench, fsync_count, warden_flushes, FIELDS)
import zookeeper as zkref  # noqa: E402  (server_command, four_letter)

REPO = single.REPO
WORKLOADS = [("writes", 100), ("reads", 0), ("mixed", 10), ("serial", 100)]
WORKLOAD_TITLES = {"writes": "100 % writes", "reads": "100 % reads", "mixed": "90 % reads / 10 % writes",
                   "serial": "setData, 1 session x 1 in flight"}
# Workloads with their own shape rather than --sessions x --in-flight.
SHAPES = {"serial": (1, 1)}
SIDES = ["warden", "zookeeper"]
NAMES = {"warden": "Warden", "zookeeper": "ZooKeeper 3.8"}
PROBE_PATH = "/failover-probe"

# Everything that must go at exit: live ensembles (their processes and folders).
LIVE = []


def free_ports(n):
    """n distinct free loopback ports (all bound at once, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def kill_process(proc, sig=signal.SIGTERM, wait=30):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Ensemble:
    """Three members on loopback, each with its own ports, folder and log."""

    side = None

    def __init__(self, work):
        self.dir = tempfile.mkdtemp(prefix="%s-ensemble-" % self.side, dir=work)
        self.procs = {}
        LIVE.append(self)

    def start(self, i):
        log = open(os.path.join(self.dir, "member%d.log" % i), "a")
        log.write("---- start %s\n" % time.strftime("%H:%M:%S"))
        log.flush()
        self.procs[i] = subprocess.Popen(self.command(i), stdout=log, stderr=subprocess.STDOUT,
                                         env=self.env())
        log.close()

    def env(self):
        return None

    def start_all(self):
        for i in (1, 2, 3):
            self.start(i)
        self.wait_healthy(90)

    def kill(self, i):
        """SIGKILL member i; returns the monotonic time just before the signal."""
        proc = self.procs[i]
        t = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        return t

    def wait_healthy(self, timeout=90):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, p in self.procs.items():
                if p.poll() is not None:
                    raise RuntimeError("%s member %d exited with %s (log: %s)" % (
                        self.side, i, p.returncode, self.log_path(i)))
            if self.healthy():
                return
            time.sleep(0.1)
        raise RuntimeError("%s ensemble not healthy within %d s" % (self.side, timeout))

    def wait_leader(self, timeout=30):
        """The member all agree leads, once there is one (within timeout s)."""
        deadline = time.monotonic() + timeout
        while True:
            leader = self.leader()
            if leader is not None:
                return leader
            if time.monotonic() > deadline:
                raise RuntimeError("%s: no leader" % self.side)
            time.sleep(0.05)

    def log_path(self, i):
        return os.path.join(self.dir, "member%d.log" % i)

    def connect_string(self):
        return ",".join("127.0.0.1:%d" % self.client_port(i) for i in (1, 2, 3))

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            kill_process(p)
        if self in LIVE:
            LIVE.remove(self)

    def remove(self, keep_logs_in=None):
        if keep_logs_in:
            os.makedirs(keep_logs_in, exist_ok=True)
            for i in (1, 2, 3):
                if os.path.exists(self.log_path(i)):
                    shutil.copy(self.log_path(i), os.path.join(
                        keep_logs_in, "%s-%s-member%d.log" % (self.side, os.path.basename(self.dir), i)))
        shutil.rmtree(self.dir, ignore_errors=True)


class WardenEnsemble(Ensemble):
    side = "warden"

    def __init__(self, work, binary, rust_log):
        super().__init__(work)
        self.binary = binary
        self.rust_log = rust_log
        ports = free_ports(12)
        self.ports = {i: dict(zip(("listen", "zk", "admin", "peer"), ports[4 * (i - 1):4 * i])) for i in (1, 2, 3)}
        self.peers = ",".join("%d=127.0.0.1:%d" % (i, self.ports[i]["peer"]) for i in (1, 2, 3))

    def command(self, i):
        p = self.ports[i]
        return [self.binary, "--server-id", str(i), "--data-dir", os.path.join(self.dir, "d%d" % i),
                "--listen", "127.0.0.1:%d" % p["listen"], "--zk-listen", "127.0.0.1:%d" % p["zk"],
                "--admin-listen", "127.0.0.1:%d" % p["admin"], "--peer-listen", "127.0.0.1:%d" % p["peer"],
                "--peers", self.peers]

    def env(self):
        return dict(os.environ, RUST_LOG=self.rust_log)

    def client_port(self, i):
        return self.ports[i]["zk"]

    def _get(self, i, path):
        url = "http://127.0.0.1:%d%s" % (self.ports[i]["admin"], path)
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, ""
        except OSError:
            return None, ""

    def status(self, i):
        code, body = self._get(i, "/status")
        return json.loads(body) if code == 200 else None

    def healthy(self):
        if not all(self._get(i, "/health")[0] == 200 for i in (1, 2, 3)):
            return False
        return self.leader() is not None

    def leader(self):
        """The member all three agree leads, and that says it leads; else None."""
        statuses = [self.status(i) for i in (1, 2, 3)]
        if any(s is None for s in statuses):
            return None
        ids = {s.get("leader_id") for s in statuses}
        if len(ids) != 1:
            return None
        lid = ids.pop()
        if lid not in (1, 2, 3) or statuses[lid - 1].get("role") != "leader":
            return None
        return lid

    def leader_among(self, members):
        for i in members:
            s = self.status(i)
            if s and s.get("role") == "leader":
                return i
        return None

    def durable_count(self):
        """(log flushes, txns) summed over the members."""
        total = [0, 0]
        for i in (1, 2, 3):
            f, t = single.warden_flushes(self.ports[i]["admin"])
            total[0] += f
            total[1] += t
        return tuple(total)


class ZooKeeperEnsemble(Ensemble):
    side = "zookeeper"

    def __init__(self, work, tick_ms, init_limit, sync_limit):
        super().__init__(work)
        ports = free_ports(9)
        self.ports = {i: dict(zip(("client", "quorum", "election"), ports[3 * (i - 1):3 * i])) for i in (1, 2, 3)}
        servers = "".join("server.%d=127.0.0.1:%d:%d\n" % (i, self.ports[i]["quorum"], self.ports[i]["election"])
                          for i in (1, 2, 3))
        self.cfgs = {}
        for i in (1, 2, 3):
            conf = os.path.join(self.dir, "conf%d" % i)
            data = os.path.join(self.dir, "d%d" % i)
            os.makedirs(conf)
            os.makedirs(data)
            with open(os.path.join(data, "myid"), "w") as f:
                f.write("%d\n" % i)
            cfg = os.path.join(conf, "zoo.cfg")
            with open(cfg, "w") as f:
                f.write(
                    "tickTime=%d\ninitLimit=%d\nsyncLimit=%d\n"
                    "dataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\n"
                    "maxClientCnxns=0\nadmin.enableServer=false\n4lw.commands.whitelist=*\n"
                    "forceSync=yes\n%s" % (tick_ms, init_limit, sync_limit, data,
                                           self.ports[i]["client"], servers))
            self.cfgs[i] = (conf, cfg)

    def command(self, i):
        conf, cfg = self.cfgs[i]
        return zkref.server_command(conf, cfg, "org.apache.zookeeper.server.quorum.QuorumPeerMain")

    def client_port(self, i):
        return self.ports[i]["client"]

    def mode(self, i):
        out = zkref.four_letter(self.ports[i]["client"], "srvr", 1.0)
        for line in out.splitlines():
            if line.startswith("Mode:"):
                return line.split(":", 1)[1].strip()
        return None

    def healthy(self):
        modes = [self.mode(i) for i in (1, 2, 3)]
        return sorted(modes, key=str) == ["follower", "follower", "leader"]

    def leader(self):
        modes = [self.mode(i) for i in (1, 2, 3)]
        return modes.index("leader") + 1 if modes.count("leader") == 1 else None

    def leader_among(self, members):
        for i in members:
            if self.mode(i) == "leader":
                return i
        return None

    def durable_count(self):
        """(fsyncs, -1) summed over the members (mntr zk_cnt_fsynctime)."""
        return sum(single.fsync_count(self.ports[i]["client"]) for i in (1, 2, 3)), -1


# ---- A minimal ZooKeeper-protocol client for the failover probe (stdlib only).

class Expired(Exception):
    pass


def zk_string(s):
    b = s.encode()
    return struct.pack(">i", len(b)) + b


class ProbeConn:
    """One connection of a session; setData requests with short timeouts."""

    def __init__(self, port, timeout, session_id=0, passwd=b"\0" * 16, last_zxid=0, session_ms=20000):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        try:
            req = struct.pack(">iqiq", 0, last_zxid, session_ms, session_id) + struct.pack(">i", len(passwd)) + passwd + b"\0"
            self.sock.sendall(struct.pack(">i", len(req)) + req)
            frame = self.read_frame(time.monotonic() + timeout)
            _, negotiated, self.session_id = struct.unpack(">iiq", frame[:16])
            (plen,) = struct.unpack(">i", frame[16:20])
            self.passwd = frame[20:20 + plen]
            if negotiated <= 0:
                raise Expired()
        except BaseException:
            self.sock.close()
            raise
        self.xid = 0

    def read_frame(self, deadline):
        while True:
            if len(self.buf) >= 4:
                (n,) = struct.unpack(">i", self.buf[:4])
                if len(self.buf) >= 4 + n:
                    frame, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
                    return frame
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout()
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the server")
            self.buf += chunk

    def send(self, op, body):
        self.xid += 1
        req = struct.pack(">ii", self.xid, op) + body
        self.sock.sendall(struct.pack(">i", len(req)) + req)
        return self.xid

    def send_set(self, path, data):
        return self.send(5, zk_string(path) + struct.pack(">i", len(data)) + data + struct.pack(">i", -1))

    def send_create(self, path, data):
        acl = struct.pack(">ii", 1, 31) + zk_string("world") + zk_string("anyone")
        return self.send(1, zk_string(path) + struct.pack(">i", len(data)) + data + acl + struct.pack(">i", 0))

    def reply(self, deadline):
        """(xid, zxid, err) of the next reply to a request (skips watch events and pings)."""
        while True:
            frame = self.read_frame(deadline)
            xid, zxid, err = struct.unpack(">iqi", frame[:16])
            if xid >= 0:
                return xid, zxid, err

    def close(self):
        self.sock.close()


class Probe(threading.Thread):
    """Writes through one member: ready() once a first setData succeeded;
    after go, retries until a setData is acknowledged, or stop."""

    def __init__(self, port, timeout, connect_timeout, go, stop_ev, done):
        super().__init__(daemon=True)
        self.port, self.timeout, self.go, self.stop_ev, self.done = port, timeout, go, stop_ev, done
        self.connect_timeout = connect_timeout
        self.ready_ev = threading.Event()
        self.acked_at = None
        self.error = None
        self.session = (0, b"\0" * 16)
        self.last_zxid = 0
        self.conn = None
        self.reconnects = 0

    def connect(self):
        try:
            self.conn = ProbeConn(self.port, self.connect_timeout, self.session[0], self.session[1], self.last_zxid)
        except Expired:
            self.conn = ProbeConn(self.port, self.connect_timeout, 0, b"\0" * 16, self.last_zxid)
        self.session = (self.conn.session_id, self.conn.passwd)

    def write_once(self, deadline):
        """Sends setData requests (one more each --probe-timeout) until one is
        acknowledged (True) or deadline; raises on connection errors."""
        if self.conn is None:
            self.connect()
        self.conn.send_set(PROBE_PATH, b"p")
        next_send = time.monotonic() + self.timeout
        while True:
            now = time.monotonic()
            if now >= deadline or self.stop_ev.is_set():
                return False
            try:
                xid, zxid, err = self.conn.reply(min(next_send, deadline))
            except socket.timeout:
                self.conn.send_set(PROBE_PATH, b"p")
                next_send = time.monotonic() + self.timeout
                continue
            if zxid > 0:
                self.last_zxid = max(self.last_zxid, zxid)
            if err == 0:
                return True
            if err == -112:  # session expired
                self.session = (0, b"\0" * 16)
                raise ConnectionError("session expired")
            # any other error (e.g. connection loss): send again at once
            time.sleep(0.002)
            self.conn.send_set(PROBE_PATH, b"p")
            next_send = time.monotonic() + self.timeout

    def drop(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None
            self.reconnects += 1

    def run(self):
        try:
            deadline = time.monotonic() + 30
            while not self.ready_ev.is_set():
                if time.monotonic() > deadline:
                    raise RuntimeError("probe on port %d: no first write within 30 s" % self.port)
                try:
                    if self.write_once(deadline):
                        self.ready_ev.set()
                except (OSError, ConnectionError, Expired):
                    self.drop()
                    time.sleep(0.05)
            self.go.wait()
            while not self.stop_ev.is_set() and not self.done.is_set():
                try:
                    if self.write_once(time.monotonic() + 60):
                        self.acked_at = time.monotonic()
                        self.done.set()
                        return
                except (OSError, ConnectionError, Expired):
                    self.drop()
                    time.sleep(0.002)
        except BaseException as e:  # reported by the trial
            self.error = e
            self.ready_ev.set()
        finally:
            if self.conn is not None:
                self.conn.close()


def ensure_probe_node(ens):
    deadline = time.monotonic() + 30
    while True:
        try:
            c = ProbeConn(ens.client_port(1), 2.0)
            try:
                c.send_create(PROBE_PATH, b"p")
                _, _, err = c.reply(time.monotonic() + 5)
            finally:
                c.close()
            if err in (0, -110):  # ok, node exists
                return
            raise RuntimeError("create %s: error %d" % (PROBE_PATH, err))
        except (OSError, ConnectionError, Expired):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def failover_trial(ens, args):
    ens.wait_healthy(120)
    leader = ens.wait_leader()
    survivors = [i for i in (1, 2, 3) if i != leader]
    go, stop_ev, done = threading.Event(), threading.Event(), threading.Event()
    probes = {i: Probe(ens.client_port(i), args.probe_timeout, args.probe_connect_timeout, go, stop_ev, done) for i in survivors}
    try:
        for p in probes.values():
            p.start()
        for i, p in probes.items():
            p.ready_ev.wait(60)
            if p.error:
                raise RuntimeError("%s probe via member %d: %s" % (ens.side, i, p.error))
        wall_kill = time.time()
        t_kill = ens.kill(leader)
        go.set()
        if not done.wait(60):
            raise RuntimeError("%s: no write acknowledged within 60 s of killing member %d" % (ens.side, leader))
        acks = {i: p.acked_at for i, p in probes.items() if p.acked_at is not None}
        first = min(acks, key=acks.get)
        elapsed = acks[first] - t_kill
    finally:
        stop_ev.set()
        go.set()
        for p in probes.values():
            p.join(5)
    new_leader = None
    deadline = time.monotonic() + 10
    while new_leader is None and time.monotonic() < deadline:
        new_leader = ens.leader_among(survivors)
        if new_leader is None:
            time.sleep(0.05)
    reconnects = sum(p.reconnects for p in probes.values())
    ens.start(leader)
    ens.wait_healthy(120)
    return {"seconds": elapsed, "killed": leader, "killed_at": wall_kill, "acked_via": first, "new_leader": new_leader,
            "reconnects": reconnects}


def run_workload(args, ens, name, write_percent):
    sessions, in_flight = SHAPES.get(name, (args.sessions, args.in_flight))
    bench_args = "--sessions %d --in-flight %d --spread --duration %d --warmup %d --write-percent %d %s" % (
        sessions, in_flight, args.duration, args.warmup, write_percent, args.extra_bench_args)
    before = ens.durable_count()
    load_before = os.getloadavg()[0]
    result = single.run_bench(args.bench, ens.connect_string(), bench_args)
    load_after = os.getloadavg()[0]
    after = ens.durable_count()
    if ens.side == "zookeeper":
        print("    ZooKeeper fsyncs during the run (3 members): %d" % (after[0] - before[0]), flush=True)
        if write_percent > 0 and after[0] <= before[0]:
            raise RuntimeError("ZooKeeper did not fsync (mntr zk_cnt_fsynctime %d -> %d)" % (before[0], after[0]))
    else:
        print("    Warden log flushes during the run (3 members): %d for %d txns" % (
            after[0] - before[0], after[1] - before[1]), flush=True)
    print("    load average (1 min) before/after: %.2f / %.2f" % (load_before, load_after), flush=True)
    return {"result": result, "load": [load_before, load_after], "durable": after[0] - before[0]}


def round_for(args, side, work, trials):
    if side == "warden":
        ens = WardenEnsemble(work, args.warden, args.rust_log)
    else:
        ens = ZooKeeperEnsemble(work, args.tick_ms, args.init_limit, args.sync_limit)
    cmd = ens.command(1)
    if side == "zookeeper":  # the class path is long
        cmd = [cmd[0], "...", "-cp", "...", cmd[-2], cmd[-1]]
    print("  starting %s, member 1: %s" % (side, " ".join(shlex.quote(c) for c in cmd)), flush=True)
    if side == "zookeeper":
        print("".join("    | " + l for l in open(cmd[-1])), end="", flush=True)
    ok = False
    try:
        ens.start_all()
        out = {"workloads": {}, "failover": []}
        for name, wp in WORKLOADS:
            if name in args.workloads:
                print("  %s, %s:" % (side, name), flush=True)
                out["workloads"][name] = run_workload(args, ens, name, wp)
        if trials:
            ensure_probe_node(ens)
        for t in range(trials):
            r = failover_trial(ens, args)
            print("  %s failover trial %d: %.3f s (killed %d at %s UTC, acked via %d, new leader %s, %d reconnects)" % (
                side, t + 1, r["seconds"], r["killed"],
                time.strftime("%H:%M:%S", time.gmtime(r["killed_at"])) + ("%.3f" % (r["killed_at"] % 1))[1:],
                r["acked_via"], r["new_leader"], r["reconnects"]), flush=True)
            out["failover"].append(r)
        ok = True
        return out
    finally:
        ens.stop()
        ens.remove(keep_logs_in=args.keep_logs if (args.keep_logs or not ok) else None)
        if not ok and not args.keep_logs:
            print("  (%s member logs were in %s; rerun with --keep-logs DIR to keep them)" % (side, ens.dir))


def fmt_int(x):
    return "{:,.0f}".format(x).replace(",", " ")


def report(args, results):
    if args.workloads:
        print("\n## Throughput: medians over %d rounds (%d sessions x %d in flight, spread over 3 members, %d s)\n" % (
            args.rounds, args.sessions, args.in_flight, args.duration))
        print("| workload | system | ops/s | runs | p50 ms | p99 ms | read p50 | read p99 | write p50 | write p99 |")
        print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|")
    med = {}
    for name, _ in WORKLOADS:
        if name not in args.workloads:
            continue
        for side in SIDES:
            runs = [r["workloads"][name]["result"] for r in results.get(side, [])]
            if not runs:
                continue
            m = [statistics.median(x[i] for x in runs) for i in range(len(single.FIELDS))]
            med[(name, side)] = m
            print("| %s | %s | %s | %s | %s |" % (
                WORKLOAD_TITLES[name], NAMES[side], fmt_int(m[0]), " / ".join(fmt_int(x[0]) for x in runs),
                " | ".join("%.2f" % v for v in m[1:])))
        if (name, "warden") in med and (name, "zookeeper") in med:
            a, b = med[(name, "warden")], med[(name, "zookeeper")]
            print("| %s | **Warden / ZooKeeper** | **%s** | | %s |" % (
                WORKLOAD_TITLES[name], "%.2f" % (a[0] / b[0]) if b[0] else "n/a",
                " | ".join("%.2f" % (x / y) if y and x == x and y == y else "n/a" for x, y in zip(a[1:], b[1:]))))
    fo = {side: [t["seconds"] for r in results.get(side, []) for t in r["failover"]] for side in SIDES}
    if any(fo.values()):
        print("\n## Failover: SIGKILL of the leader to the first acknowledged write via a survivor\n")
        print("| system | trials | median s | max s | min s | p90 s |")
        print("|---|---:|---:|---:|---:|---:|")
        for side in SIDES:
            v = sorted(fo[side])
            if v:
                p90 = v[min(len(v) - 1, int(0.9 * len(v) + 0.5) - 1)]
                print("| %s | %d | %.3f | %.3f | %.3f | %.3f |" % (
                    NAMES[side], len(v), statistics.median(v), v[-1], v[0], p90))
        if fo["warden"] and fo["zookeeper"]:
            print("| **Warden / ZooKeeper** | | **%.2f** | **%.2f** | | |" % (
                statistics.median(fo["warden"]) / statistics.median(fo["zookeeper"]),
                max(fo["warden"]) / max(fo["zookeeper"])))
        for side in SIDES:
            if fo[side]:
                print("\n%s trials (s): %s" % (NAMES[side], " ".join("%.3f" % x for x in fo[side])))
    loads = [l for side in SIDES for r in results.get(side, []) for w in r["workloads"].values() for l in w["load"]]
    if loads:
        print("\nload average (1 min) around the throughput runs: %.2f-%.2f" % (min(loads), max(loads)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--failover-trials", type=int, default=21, help="per system, spread over the rounds")
    ap.add_argument("--sessions", type=int, default=16)
    ap.add_argument("--in-flight", type=int, default=16)
    ap.add_argument("--duration", type=int, default=10, help="measured seconds per workload")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--workloads", default="writes,reads,mixed", help="comma-separated subset of writes,reads,mixed,serial (serial: 1 session x 1 in flight, "
                         "on the member --spread gives session 0)")
    ap.add_argument("--extra-bench-args", default="", help="more zk_bench options (e.g. --keys 1000)")
    ap.add_argument("--probe-timeout", type=float, default=0.1,
                    help="seconds a probe waits for an answer before it sends another setData (default 0.1)")
    ap.add_argument("--probe-connect-timeout", type=float, default=0.5,
                    help="seconds a probe waits for a (re)connection to be accepted (default 0.5)")
    ap.add_argument("--tick-ms", type=int, default=2000, help="ZooKeeper tickTime (default 2000)")
    ap.add_argument("--init-limit", type=int, default=10, help="ZooKeeper initLimit in ticks (default 10)")
    ap.add_argument("--sync-limit", type=int, default=5, help="ZooKeeper syncLimit in ticks (default 5)")
    ap.add_argument("--rust-log", default="warn", help="RUST_LOG for the Warden members (default warn)")
    ap.add_argument("--bench", default=os.path.join(REPO, "target/release/zk_bench"))
    ap.add_argument("--warden", default=os.path.join(REPO, "target/release/warden-server"))
    ap.add_argument("--work-dir", help="parent of the data folders (default: a temporary folder beside the repo)")
    ap.add_argument("--keep-logs", help="copy the member logs here before removing each ensemble")
    ap.add_argument("--json", help="write all results to this file")
    ap.add_argument("--only", choices=SIDES)
    args = ap.parse_args()
    args.workloads = [w for w in args.workloads.split(",") if w]
    for path in (args.bench, args.warden):
        if not os.path.exists(path):
            sys.exit("%s is missing: cargo build --release --bins" % path)
    # SIGINT (even if inherited as ignored, as in a background job), SIGTERM
    # and SIGHUP unwind like Ctrl-C, so the finally blocks clean up.
    def interrupted(*_):
        raise KeyboardInterrupt()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupted)
    work = tempfile.mkdtemp(prefix="bench-ensemble-", dir=args.work_dir or os.path.dirname(REPO))
    sides = [args.only] if args.only else SIDES
    per_round = -(-args.failover_trials // args.rounds) if args.failover_trials else 0
    results = {side: [] for side in sides}
    print("machine: nproc %d, load average %s, kernel %s" % (
        os.cpu_count(), " ".join("%.2f" % l for l in os.getloadavg()), os.uname().release), flush=True)
    try:
        for r in range(args.rounds):
            for side in sides:
                print("round %d: %s" % (r + 1, side), flush=True)
                results[side].append(round_for(args, side, work, per_round))
    finally:
        for ens in list(LIVE):
            ens.stop()
            ens.remove()
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    report(args, results)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("bench_ensemble.py: interrupted; servers stopped and folders removed")
