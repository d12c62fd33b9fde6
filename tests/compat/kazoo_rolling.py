#!/usr/bin/env python3
"""kazoo sessions through a rolling restart of a Warden ensemble, for
`tests/tests/ensemble/rolling.rs`, which drives it: the test passes every
member's ZooKeeper address as --hosts, waits for `READY`, SIGTERMs and
restarts each member in turn, then writes `DONE` on stdin.

    python3 tests/compat/kazoo_rolling.py --hosts M1,M2,M3 [--sessions 10]

Each of the sessions creates an ephemeral node, sets a `DataWatch` on a
node of its own, and writes that node over and over (a counter, retried
with kazoo's `KazooRetry` on ConnectionLoss, as kazoo users do: a stopping
member closes its ZooKeeper connections, and the session moves). After
`DONE` the writers stop and the script checks, for every session:

- session: the same session id as at the start, and never `LOST`;
- ephemeral: its ephemeral node is there and its own;
- writes: the node holds the last value the session wrote;
- data watch: the `DataWatch` saw that last value, and the values it saw
  only ever grew (a one-shot watch may skip values between two reads, as
  in ZooKeeper, but never goes back).

Prints `PASS <name>` / `FAIL <name>: …` per check and `all 4 checks
passed` when all did; exit status 1 if any failed, 2 if kazoo is missing.
"""

import argparse
import sys
import threading
import uuid

try:
    from kazoo.client import KazooClient
    from kazoo.protocol.states import KazooState
    from kazoo.retry import KazooRetry
except ImportError as e:  # pragma: no cover - the message is the point
    sys.stderr.write(
        "kazoo_rolling.py: kazoo is not importable (%s): "
        "pip install -r tests/compat/requirements.txt\n" % e
    )
    sys.exit(2)

from kazoo_compat import TIMEOUT, CheckList, expect, wait_for  # noqa: E402


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Session:
    def __init__(self, hosts, root, i):
        self.client = KazooClient(
            hosts=hosts,
            timeout=10.0,
            connection_retry=KazooRetry(max_tries=-1, delay=0.05, max_delay=0.5),
        )
        self.states = []
        self.client.add_listener(self.states.append)
        self.client.start(timeout=TIMEOUT)
        self.session = self.client.client_id[0]
        self.eph = "%s/e%d" % (root, i)
        self.node = "%s/w%d" % (root, i)
        self.client.create(self.eph, b"", ephemeral=True)
        self.client.create(self.node, b"0")
        self.seen = []
        self.client.DataWatch(self.node)(
            lambda value, stat: self.seen.append(int(value)) if value is not None else None
        )
        self.written = 0
        self.errors = []
        self.stop = threading.Event()
        self.retry = KazooRetry(max_tries=-1, delay=0.05, max_delay=0.5, deadline=30)
        self.thread = threading.Thread(target=self.write, daemon=True)

    def write(self):
        while not self.stop.is_set():
            k = self.written + 1
            try:
                self.retry(self.client.set, self.node, b"%d" % k)
                self.written = k
            except Exception as e:  # noqa: BLE001 - reported by a check
                self.errors.append("%s: %s" % (type(e).__name__, e))
                return
            self.stop.wait(0.02)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", required=True)
    ap.add_argument("--sessions", type=int, default=10)
    args = ap.parse_args()

    root = "/kazoo-rolling-%s" % uuid.uuid4().hex
    setup = KazooClient(hosts=args.hosts, timeout=10.0)
    setup.start(timeout=TIMEOUT)
    setup.ensure_path(root)
    sessions = [Session(args.hosts, root, i) for i in range(args.sessions)]
    for s in sessions:
        wait_for(lambda s=s: s.seen[:1] == [0], "a DataWatch's first call")
        s.thread.start()
    wait_for(lambda: all(s.written > 0 for s in sessions), "every session's first write")
    say("READY %d" % len(sessions))

    line = sys.stdin.readline().strip()
    if line != "DONE":
        sys.exit("kazoo_rolling.py: expected DONE on stdin, got %r" % line)
    for s in sessions:
        s.stop.set()
    for s in sessions:
        s.thread.join(TIMEOUT)

    check = CheckList()

    @check("session")
    def _session():
        for i, s in enumerate(sessions):
            expect(KazooState.LOST not in s.states, "session %d was lost: %r" % (i, s.states))
            expect(
                s.client.client_id[0] == s.session,
                "session %d changed: %x -> %x" % (i, s.session, s.client.client_id[0]),
            )

    @check("ephemeral")
    def _ephemeral():
        for i, s in enumerate(sessions):
            stat = s.client.exists(s.eph)
            expect(stat is not None, "session %d's ephemeral is gone" % i)
            expect(stat.ephemeralOwner == s.session, "session %d's ephemeral is not its own" % i)

    @check("writes")
    def _writes():
        for i, s in enumerate(sessions):
            expect(not s.errors, "session %d's writes failed: %r" % (i, s.errors))
            value, _ = s.client.get(s.node)
            expect(
                int(value) == s.written,
                "session %d's node holds %s, but it last wrote %d" % (i, value, s.written),
            )

    @check("data watch")
    def _watch():
        for i, s in enumerate(sessions):
            wait_for(
                lambda s=s: s.seen[-1:] == [s.written],
                "session %d's DataWatch to see its last write %d (saw %r)"
                % (i, s.written, s.seen[-5:]),
            )
            expect(
                all(a < b for a, b in zip(s.seen, s.seen[1:])),
                "session %d's DataWatch went back: %r" % (i, s.seen),
            )

    failed = check.run(say)
    total = sum(s.written for s in sessions)
    say("%d writes by %d sessions" % (total, len(sessions)))
    setup.delete(root, recursive=True)
    for c in [s.client for s in sessions] + [setup]:
        c.stop()
        c.close()
    check.verdict(failed, say)


if __name__ == "__main__":
    main()
