#!/usr/bin/env python3
"""kazoo across the failover of a Warden ensemble, for
`tests/tests/ensemble/zookeeper.rs`, which drives it: the test starts three
members, passes their ZooKeeper addresses as --hosts (the leader's first),
and kills the leader when this script asks.

    python3 tests/compat/kazoo_failover.py --hosts LEADER,M2,M3

Client A connects to the hosts in the order given (`randomize_hosts=False`,
so to the leader), creates an ephemeral node, sets a kazoo `DataWatch` on
a node, and takes a `Lock`; client B (random host) is the other party. Then the script prints
`READY <session id hex> <host:port A is connected to>` and waits for a
line `KILLED` on stdin (the test has SIGKILLed that member and the others
have a new leader). After it, checks that A's session outlived the kill:

- session: A reconnects to another member with the same session id and
  never sees `LOST`; its ephemeral node is still its own.
- lock: A still holds its lock (its node is there, A's); B cannot take it
  while A holds it, and takes it once A releases it.
- data watch: B's change after the kill reaches A's `DataWatch`, exactly
  once, with nothing called in between. (Not a plain one-shot watch: kazoo
  itself calls those with a `NONE` event when the connection drops and
  forgets them, as its documentation says; `DataWatch` is the recipe that
  re-reads and re-watches on reconnect.)

Every check prints `PASS <name>` or `FAIL <name>: <what went wrong>`; the
last line is `all N checks passed` when every one did. Exit status 1 if any
check failed, 2 if kazoo is missing. Waits poll a condition with a
deadline; none is a fixed sleep.
"""

import argparse
import sys
import time
import uuid

try:
    from kazoo.client import KazooClient
    from kazoo.protocol.states import KazooState
except ImportError as e:  # pragma: no cover - the message is the point
    sys.stderr.write(
        "kazoo_failover.py: kazoo is not importable (%s): "
        "pip install -r tests/compat/requirements.txt\n" % e
    )
    sys.exit(2)

# The checks' vocabulary is kazoo_compat's (this folder is on sys.path
# when the script runs).
from kazoo_compat import TIMEOUT, CheckList, expect, wait_for  # noqa: E402


def peer(client):
    """`host:port` of the server `client` is connected to, or None."""
    sock = getattr(client._connection, "_socket", None)
    try:
        host, port = sock.getpeername()[:2]
        return "%s:%d" % (host, port)
    except (AttributeError, OSError):
        return None


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", required=True)
    args = ap.parse_args()

    root = "/kazoo-failover-%s" % uuid.uuid4().hex
    data, eph, lock_path = root + "/data", root + "/eph", root + "/lock"

    a = KazooClient(hosts=args.hosts, timeout=10.0, randomize_hosts=False)
    states = []
    a.add_listener(states.append)
    a.start(timeout=TIMEOUT)
    b = KazooClient(hosts=args.hosts, timeout=10.0)
    b.start(timeout=TIMEOUT)

    a.create(data, b"0", makepath=True)
    a.create(eph, b"", ephemeral=True)
    called = []
    a.DataWatch(data)(lambda value, stat: called.append(value))
    wait_for(lambda: called == [b"0"], "the DataWatch's first call")
    lock = a.Lock(lock_path, "a")
    expect(lock.acquire(timeout=TIMEOUT), "A could not take the lock")
    session = a.client_id[0]
    before = peer(a)
    say("READY %x %s" % (session, before))

    line = sys.stdin.readline().strip()
    if line != "KILLED":
        sys.exit("kazoo_failover.py: expected KILLED on stdin, got %r" % line)

    check = CheckList()

    @check("session")
    def _session():
        wait_for(
            lambda: a.state == KazooState.CONNECTED and peer(a) not in (None, before),
            "A to reconnect to another member (states %r)" % states,
        )
        expect(KazooState.LOST not in states, "A's session was lost: states %r" % states)
        expect(
            KazooState.SUSPENDED in states,
            "A never saw its member go (states %r): was it on the killed one?" % states,
        )
        expect(
            a.client_id[0] == session,
            "A's session changed: %x -> %x" % (session, a.client_id[0]),
        )
        stat = a.exists(eph)
        expect(stat is not None, "A's ephemeral node is gone")
        expect(
            stat.ephemeralOwner == session,
            "the ephemeral's owner is %x, not A's %x" % (stat.ephemeralOwner, session),
        )

    @check("lock")
    def _lock():
        expect(lock.is_acquired, "A's lock no longer says it is acquired")
        stat = a.exists(lock_path + "/" + lock.node)
        expect(stat is not None, "A's lock node %s is gone" % lock.node)
        expect(stat.ephemeralOwner == session, "A's lock node is not A's")
        other = b.Lock(lock_path, "b")
        expect(not other.acquire(blocking=False), "B took the lock while A holds it")
        lock.release()
        expect(other.acquire(timeout=TIMEOUT), "B did not get the lock A released")
        other.release()

    @check("data watch")
    def _watch():
        b.set(data, b"1")
        wait_for(lambda: called[-1:] == [b"1"], "the DataWatch to see B's change (%r)" % called)
        expect(called == [b"0", b"1"], "the DataWatch was called with %r" % called)

    failed = check.run(say)
    a.delete(root, recursive=True)
    for c in (a, b):
        c.stop()
        c.close()
    check.verdict(failed, say)


if __name__ == "__main__":
    main()
