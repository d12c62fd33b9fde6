#!/usr/bin/env python3
"""Runs a reference Apache ZooKeeper server (Debian's `zookeeper` package) on
loopback with its own temporary data folder, for validating the
compatibility tests and for the benchmark.

    python3 tests/compat/zookeeper.py [--port N] [--data-dir DIR] [--tick-ms MS] [--heap SIZE] [--enforce-quota]

Prints `READY 127.0.0.1:PORT DATADIR` once the server answers `ruok`, then
stays in the foreground until SIGINT/SIGTERM, when it stops the server and
removes the data folder (unless --data-dir was given). The server runs
with ZooKeeper's defaults, including `forceSync=yes` (an fsync per
transaction log write); `--print-config` shows the generated zoo.cfg.
"""

import argparse
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

JARS = "/usr/share/java"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def four_letter(port, cmd, timeout=2.0):
    """Sends a four-letter-word command; returns the reply ('' on failure)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(cmd.encode())
            out = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                out += chunk
            return out.decode(errors="replace")
    except OSError:
        return ""


def classpath(conf_dir):
    jars = [os.path.join(JARS, "zookeeper.jar"), os.path.join(JARS, "zookeeper-jute.jar")]
    missing = [j for j in jars if not os.path.exists(j)]
    if missing:
        sys.exit(
            "zookeeper.py: %s missing: install Debian's ZooKeeper "
            "(apt-get install -y --no-install-recommends zookeeper)" % ", ".join(missing)
        )
    extra = []
    for pattern in ("slf4j-api.jar", "slf4j-simple.jar", "netty-*.jar",
                    "metrics-core.jar", "commons-cli.jar", "commons-io.jar",
                    "snappy-java.jar"):
        extra += sorted(glob.glob(os.path.join(JARS, pattern)))
    return ":".join([conf_dir] + jars + extra)


def server_command(conf_dir, cfg, main_class="org.apache.zookeeper.server.ZooKeeperServerMain",
                   props=()):
    """The java command line of a server reading `cfg` (512 MiB heap,
    warnings only, and any extra `-D` properties); QuorumPeerMain for an
    ensemble member."""
    java = shutil.which("java") or "/usr/bin/java"
    return ([java, "-Xmx512m", "-Dzookeeper.jmx.log4j.disable=true",
             "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn"] + list(props)
            + ["-cp", classpath(conf_dir), main_class, cfg])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=0, help="client port (default: a free one)")
    ap.add_argument("--data-dir", help="data folder (default: a new temporary one, removed at exit)")
    ap.add_argument("--tick-ms", type=int, default=2000, help="tickTime (ZooKeeper's default 2000)")
    ap.add_argument("--print-config", action="store_true", help="print zoo.cfg to stderr")
    ap.add_argument("--heap", default="512m", help="the JVM's -Xmx (default 512m)")
    ap.add_argument("--enforce-quota", action="store_true",
                    help="refuse writes past hard quotas (zookeeper.enforceQuota=true), as warden-server --enforce-quota")
    args = ap.parse_args()

    port = args.port or free_port()
    own_dir = args.data_dir is None
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="zk-ref-")
    os.makedirs(data_dir, exist_ok=True)
    conf_dir = tempfile.mkdtemp(prefix="zk-conf-")
    cfg = os.path.join(conf_dir, "zoo.cfg")
    with open(cfg, "w") as f:
        f.write(
            "tickTime=%d\n"
            "dataDir=%s\n"
            "clientPort=%d\n"
            "clientPortAddress=127.0.0.1\n"
            "maxClientCnxns=0\n"
            "admin.enableServer=false\n"
            "4lw.commands.whitelist=*\n"
            "forceSync=yes\n" % (args.tick_ms, os.path.join(data_dir, "data"), port)
        )
    if args.print_config:
        sys.stderr.write(open(cfg).read())
    log = open(os.path.join(conf_dir, "server.log"), "w")
    # A later -Xmx wins over server_command's default.
    props = ["-Xmx" + args.heap]
    if args.enforce_quota:
        props.append("-Dzookeeper.enforceQuota=true")
    proc = subprocess.Popen(server_command(conf_dir, cfg, props=props), stdout=log,
                            stderr=subprocess.STDOUT)

    def stop(*_):
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(conf_dir, ignore_errors=True)
        if own_dir:
            shutil.rmtree(data_dir, ignore_errors=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    deadline = time.monotonic() + 60
    while four_letter(port, "ruok", 0.5) != "imok":
        if proc.poll() is not None or time.monotonic() > deadline:
            log.flush()
            sys.stderr.write(open(os.path.join(conf_dir, "server.log")).read())
            proc.kill()
            sys.exit("zookeeper.py: the server did not start")
        time.sleep(0.1)
    print("READY 127.0.0.1:%d %s" % (port, data_dir), flush=True)
    proc.wait()
    sys.exit("zookeeper.py: the server exited with %s" % proc.returncode)


if __name__ == "__main__":
    main()
