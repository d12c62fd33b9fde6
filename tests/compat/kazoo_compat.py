#!/usr/bin/env python3
"""Compatibility checks: the kazoo ZooKeeper client and its recipes against a
server speaking the ZooKeeper protocol (Warden's `--zk-listen`, or Apache
ZooKeeper itself, which is how these checks were validated).

    python3 tests/compat/kazoo_compat.py --hosts 127.0.0.1:2181 [--only NAME,...]

Every check prints `PASS <name>` or `FAIL <name>: <what went wrong>`; the
exit status is 1 if any check failed, 2 if kazoo is not installed
(`pip install -r tests/compat/requirements.txt`), 0 otherwise. Each check
works under its own random root, so a run leaves nothing shared behind
and can be repeated against the same server. Waits poll a condition with
a deadline; none is a fixed sleep.
"""

import argparse
import sys
import threading
import time
import traceback
import uuid

try:
    import kazoo
    from kazoo.client import KazooClient
    from kazoo.exceptions import (
        AuthFailedError,
        BadVersionError,
        InvalidACLError,
        NoAuthError,
        NoChildrenForEphemeralsError,
        NodeExistsError,
        NoNodeError,
        NotEmptyError,
        RolledBackError,
    )
    from kazoo.protocol.states import EventType
    from kazoo.security import ACL, CREATOR_ALL_ACL, Id, make_digest_acl, make_digest_acl_credential
    from kazoo.recipe.cache import TreeCache, TreeEvent
except ImportError as e:  # pragma: no cover - the message is the point
    sys.stderr.write(
        "kazoo_compat.py: kazoo is not importable (%s): "
        "pip install -r tests/compat/requirements.txt\n" % e
    )
    sys.exit(2)

TIMEOUT = 20.0


class CheckFailed(Exception):
    """A compatibility check saw something other than what ZooKeeper does."""


def expect(cond, msg):
    if not cond:
        raise CheckFailed(msg)


def expect_eq(got, want, what):
    if got != want:
        raise CheckFailed("%s: expected %r, got %r" % (what, want, got))


def expect_raises(exc, fn, what):
    try:
        fn()
    except exc:
        return
    except Exception as e:  # noqa: BLE001 - reported
        raise CheckFailed("%s: expected %s, got %s: %s" % (what, exc.__name__, type(e).__name__, e))
    raise CheckFailed("%s: expected %s, got no error" % (what, exc.__name__))


class CheckList:
    """Named checks run in order by the failover scripts: register with
    `@check("name")`, then `check.run(say)` prints `PASS name` or
    `FAIL name: …` for each and returns how many failed; `checks.verdict`
    prints the last line (`all N checks passed` / `F of N checks failed`)
    and exits 1 if any failed."""

    def __init__(self):
        self.list = []

    def __call__(self, name):
        def register(fn):
            self.list.append((name, fn))
            return fn

        return register

    def run(self, say):
        failed = 0
        for name, fn in self.list:
            try:
                fn()
                say("PASS %s" % name)
            except Exception as e:  # noqa: BLE001 - reported
                failed += 1
                say("FAIL %s: %s: %s" % (name, type(e).__name__, e))
        return failed

    def verdict(self, failed, say):
        if failed:
            say("%d of %d checks failed" % (failed, len(self.list)))
            sys.exit(1)
        say("all %d checks passed" % len(self.list))


def wait_for(cond, what, timeout=TIMEOUT):
    """Polls `cond` until true, or fails the check after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return
        if time.monotonic() > deadline:
            raise CheckFailed("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(0.02)


class Proxy:
    """A loopback TCP proxy in front of the server, so a check can drop a
    client's connection (`cut`) and keep it from reconnecting (`hold`)."""

    def __init__(self, target):
        import socket

        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.settimeout(0.05)
        self.addr = "127.0.0.1:%d" % self.listener.getsockname()[1]
        self.conns = []
        self.held = threading.Event()
        self.stopped = threading.Event()
        self.lock = threading.Lock()
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import socket

        while not self.stopped.is_set():
            if self.held.is_set():
                time.sleep(0.02)
                continue
            try:
                client, _ = self.listener.accept()
            except (socket.timeout, OSError):
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns.append((client, server))
                self.accepted += 1
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.close()
            except OSError:
                pass

    def cut(self):
        import socket

        with self.lock:
            conns, self.conns = self.conns, []
        for pair in conns:
            for sock in pair:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.stopped.set()
        self.cut()
        self.listener.close()


class Checks:
    """The checks, each a method `check_<name>`; clients are made per check."""

    def __init__(self, hosts):
        self.hosts = hosts
        self.clients = []

    def client(self, **kw):
        c = KazooClient(hosts=self.hosts, timeout=10.0, **kw)
        c.start(timeout=15)
        self.clients.append(c)
        return c

    def close_all(self):
        for c in self.clients:
            try:
                c.stop()
                c.close()
            except Exception:  # noqa: BLE001 - best-effort cleanup
                pass
        self.clients = []

    @staticmethod
    def root(c, name):
        path = "/kazoo-compat/%s-%s" % (name, uuid.uuid4().hex[:8])
        c.ensure_path(path)
        return path

    def check_connect(self):
        c = self.client()
        expect(c.connected, "client not connected after start()")
        expect(c.client_id is not None and c.client_id[0] != 0, "no session id: %r" % (c.client_id,))
        version = c.server_version()
        expect(
            isinstance(version, tuple) and len(version) >= 3 and all(isinstance(v, int) for v in version),
            "server_version() (envi's zookeeper.version) should parse to a tuple of ints, got %r" % (version,),
        )
        expect(version >= (3, 4, 0), "server version %r is older than 3.4" % (version,))
        expect(c.exists("/") is not None, "exists('/') is None")
        expect("zookeeper" in c.get_children("/"), "/zookeeper missing from get_children('/')")
        print("  server version %s" % ".".join(map(str, version)))

    def check_crud(self):
        c = self.client()
        r = self.root(c, "crud")
        p = r + "/node"
        expect_eq(c.create(p, b"v1"), p, "create's returned path")
        data, stat = c.get(p)
        expect_eq(data, b"v1", "get after create")
        expect_eq(stat.version, 0, "version after create")
        expect_eq(stat.dataLength, 2, "dataLength")
        expect_eq(stat.ephemeralOwner, 0, "ephemeralOwner of a persistent node")
        expect_raises(NodeExistsError, lambda: c.create(p, b"x"), "create of an existing node")
        stat = c.set(p, b"v2", version=0)
        expect_eq(stat.version, 1, "version after set")
        expect_raises(BadVersionError, lambda: c.set(p, b"v3", version=0), "set with a stale version")
        expect_eq(c.get(p)[0], b"v2", "get after set")
        c.create(p + "/child", b"")
        expect_eq(c.get_children(p), ["child"], "get_children")
        children, stat = c.get_children(p, include_data=True)
        expect_eq(stat.numChildren, 1, "numChildren")
        expect_raises(NotEmptyError, lambda: c.delete(p), "delete of a node with children")
        expect_raises(NoNodeError, lambda: c.get(r + "/missing"), "get of a missing node")
        expect_raises(NoNodeError, lambda: c.create(r + "/a/b", b""), "create under a missing parent")
        expect_eq(c.create(r + "/a/b", b"", makepath=True), r + "/a/b", "create with makepath")
        expect_raises(BadVersionError, lambda: c.delete(p + "/child", version=5), "delete with a bad version")
        c.delete(p, recursive=True)
        expect(c.exists(p) is None, "node still exists after recursive delete")
        big = bytes(range(256)) * 1024
        c.create(r + "/big", big)
        expect_eq(c.get(r + "/big")[0], big, "256 KiB of binary data round-trips")

    def check_sequential_ephemeral(self):
        c1 = self.client()
        r = self.root(c1, "seq")
        a = c1.create(r + "/item-", b"", sequence=True)
        b = c1.create(r + "/item-", b"", sequence=True)
        expect(a.startswith(r + "/item-") and len(a) == len(r + "/item-") + 10, "sequential name %r" % a)
        expect(int(b[-10:]) > int(a[-10:]), "sequence numbers %s then %s do not increase" % (a, b))
        c2 = self.client()
        e = c2.create(r + "/eph", b"mine", ephemeral=True)
        es = c2.create(r + "/eph-seq-", b"", ephemeral=True, sequence=True)
        stat = c1.exists(e)
        expect(stat is not None, "the other client does not see the ephemeral node")
        expect_eq(stat.ephemeralOwner, c2.client_id[0], "ephemeralOwner")
        expect_raises(
            NoChildrenForEphemeralsError, lambda: c2.create(e + "/child", b""), "a child under an ephemeral"
        )
        c2.stop()
        c2.close()
        wait_for(
            lambda: c1.exists(e) is None and c1.exists(es) is None,
            "the ephemeral nodes to go when their session closes",
        )

    def check_watches(self):
        c = self.client()
        other = self.client()
        r = self.root(c, "watch")
        p = r + "/w"
        events = []
        c.exists(p, watch=events.append)
        other.create(p, b"1")
        wait_for(lambda: len(events) == 1, "exists watch (NodeCreated)")
        expect_eq(events[0].type, EventType.CREATED, "exists watch event type")
        expect_eq(events[0].path, p, "exists watch event path")
        c.get(p, watch=events.append)
        other.set(p, b"2")
        wait_for(lambda: len(events) == 2, "data watch (NodeDataChanged)")
        expect_eq(events[1].type, EventType.CHANGED, "get watch event type")
        other.set(p, b"3")
        c.get_children(p, watch=events.append)
        other.create(p + "/kid", b"")
        wait_for(lambda: len(events) == 3, "child watch (NodeChildrenChanged)")
        expect_eq(events[2].type, EventType.CHILD, "child watch event type (one-shot: the second set fired nothing)")

        seen_data = []
        c.DataWatch(p, lambda data, stat: seen_data.append(data))
        wait_for(lambda: seen_data[-1:] == [b"3"], "DataWatch's first call")
        other.set(p, b"4")
        wait_for(lambda: seen_data[-1:] == [b"4"], "DataWatch after a set")
        seen_kids = []
        c.ChildrenWatch(p, lambda kids: seen_kids.append(sorted(kids)))
        wait_for(lambda: seen_kids[-1:] == [["kid"]], "ChildrenWatch's first call")
        other.create(p + "/kid2", b"")
        wait_for(lambda: seen_kids[-1:] == [["kid", "kid2"]], "ChildrenWatch after a create")
        other.delete(p, recursive=True)
        wait_for(lambda: seen_data[-1:] == [None], "DataWatch sees the delete (data None)")

    def check_reconnect(self):
        """A dropped connection keeps the session: kazoo reconnects to the
        same session, its ephemeral node stays, and its DataWatch and
        ChildrenWatch (which re-register after a reconnect) see what
        changed while it was away."""
        proxy = Proxy(self.hosts.split(",")[0])
        try:
            other = self.client()
            r = self.root(other, "reconnect")
            other.create(r + "/n", b"0")
            c = KazooClient(hosts=proxy.addr, timeout=10.0, connection_retry=dict(max_tries=-1, max_delay=0.2))
            c.start(timeout=15)
            self.clients.append(c)
            session = c.client_id
            c.create(r + "/eph", b"", ephemeral=True)
            states, seen_data, seen_kids = [], [], []
            c.add_listener(lambda st: states.append(str(st)))
            c.DataWatch(r + "/n", lambda data, stat: seen_data.append(data))
            c.ChildrenWatch(r, lambda kids: seen_kids.append(sorted(kids)))
            wait_for(lambda: seen_data and seen_kids, "the watches' first calls")
            proxy.held.set()
            proxy.cut()
            wait_for(lambda: "SUSPENDED" in states, "kazoo to notice the dropped connection")
            other.set(r + "/n", b"1")
            other.create(r + "/new", b"")
            proxy.held.clear()
            wait_for(lambda: states[-1:] == ["CONNECTED"], "kazoo to reconnect")
            expect_eq(c.client_id, session, "the session after reconnecting")
            wait_for(lambda: seen_data[-1:] == [b"1"], "DataWatch to see the change made while away")
            wait_for(lambda: seen_kids[-1:] == [["eph", "n", "new"]], "ChildrenWatch to see the new child")
            expect(other.exists(r + "/eph") is not None, "the ephemeral node went with the connection")
            expect(proxy.accepted >= 2, "kazoo did not reconnect through the proxy")
        finally:
            proxy.close()

    def check_transactions(self):
        c = self.client()
        r = self.root(c, "txn")
        c.create(r + "/x", b"0")
        t = c.transaction()
        t.create(r + "/y", b"new")
        t.set_data(r + "/x", b"1", version=0)
        t.check(r + "/x", 1)
        t.create(r + "/s-", b"", sequence=True)
        results = t.commit()
        expect_eq(len(results), 4, "number of results")
        expect_eq(results[0], r + "/y", "create result")
        expect_eq(results[1].version, 1, "set_data result's version")
        expect_eq(results[2], True, "check result")
        expect(str(results[3]).startswith(r + "/s-"), "sequential create result %r" % (results[3],))
        expect_eq(c.get(r + "/x")[0], b"1", "data after the transaction")

        t = c.transaction()
        t.create(r + "/z", b"")
        t.delete(r + "/y")
        t.check(r + "/x", 7)
        results = t.commit()
        expect(isinstance(results[0], RolledBackError), "first op of a failed txn: %r" % (results[0],))
        expect(isinstance(results[1], RolledBackError), "second op of a failed txn: %r" % (results[1],))
        expect(isinstance(results[2], BadVersionError), "the failing check: %r" % (results[2],))
        expect(c.exists(r + "/z") is None, "a failed transaction created a node")
        expect(c.exists(r + "/y") is not None, "a failed transaction deleted a node")

    def check_lock(self):
        c1, c2 = self.client(), self.client()
        r = self.root(c1, "lock")
        l1 = c1.Lock(r + "/lock", "one")
        l2 = c2.Lock(r + "/lock", "two")
        expect(l1.acquire(timeout=10), "first acquire")
        expect(not l2.acquire(blocking=False), "a second client got a held lock")
        expect_eq(l2.contenders(), ["one"], "contenders while held")
        l1.release()
        expect(l2.acquire(timeout=10), "acquire after release")
        l2.release()
        # Three threads on three sessions, recording their critical sections.
        record, lock = [], threading.Lock()
        errors = []

        def worker(i):
            try:
                cl = KazooClient(hosts=self.hosts, timeout=10.0)
                cl.start(timeout=15)
                try:
                    lk = cl.Lock(r + "/lock", "w%d" % i)
                    for _ in range(5):
                        with lk:
                            start = time.monotonic()
                            time.sleep(0.005)
                            with lock:
                                record.append((start, time.monotonic()))
                finally:
                    cl.stop()
                    cl.close()
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))

        ts = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        expect(not errors, "lock workers failed: %s" % errors)
        expect_eq(len(record), 15, "critical sections recorded")
        record.sort()
        for (s1, e1), (s2, _) in zip(record, record[1:]):
            expect(e1 <= s2, "two holders overlapped: [%f,%f] and one from %f" % (s1, e1, s2))

    def check_election(self):
        c1, c2 = self.client(), self.client()
        r = self.root(c1, "elect")
        leaders = []
        release = {"a": threading.Event(), "b": threading.Event()}

        def lead(name):
            leaders.append(name)
            release[name].wait(30)

        e1 = c1.Election(r + "/e", "a")
        e2 = c2.Election(r + "/e", "b")
        t1 = threading.Thread(target=e1.run, args=(lead, "a"))
        t1.start()
        wait_for(lambda: leaders == ["a"], "the first contender to lead")
        t2 = threading.Thread(target=e2.run, args=(lead, "b"))
        t2.start()
        wait_for(lambda: len(e1.contenders()) == 2, "two contenders")
        expect_eq(e1.contenders()[0], "a", "the leader is listed first")
        expect_eq(leaders, ["a"], "only one leader at a time")
        release["a"].set()
        t1.join(10)
        wait_for(lambda: leaders == ["a", "b"], "leadership to pass to the second contender")
        release["b"].set()
        t2.join(10)

    def check_partitioner(self):
        c1, c2 = self.client(), self.client()
        r = self.root(c1, "part")
        items = ["a", "b", "c", "d", "e"]
        p1 = c1.SetPartitioner(r + "/p", set=items, identifier="m1", time_boundary=0.5)
        p2 = c2.SetPartitioner(r + "/p", set=items, identifier="m2", time_boundary=0.5)

        def settle():
            return all([settle_one(p1), settle_one(p2)])

        wait_for(settle, "both partitioners to acquire")
        s1, s2 = set(p1), set(p2)
        expect(s1 and s2, "each member gets a share: %r / %r" % (s1, s2))
        expect(not (s1 & s2), "an item went to both members: %r" % (s1 & s2))
        expect_eq(s1 | s2, set(items), "the union of the partitions")
        p2.finish()
        # p1 stays `acquired` with its old share until it hears of the party
        # change (release, then allocate again): wait for the full set.
        wait_for(
            lambda: settle_one(p1) and set(p1) == set(items),
            "the remaining member to take everything",
        )
        p1.finish()

    def check_barrier(self):
        c1, c2 = self.client(), self.client()
        r = self.root(c1, "barrier")
        b1 = c1.Barrier(r + "/b")
        b1.create()
        expect(not c2.Barrier(r + "/b").wait(timeout=0.2), "wait returned while the barrier is up")
        passed = []
        t = threading.Thread(target=lambda: passed.append(c2.Barrier(r + "/b").wait(timeout=20)))
        t.start()
        b1.remove()
        t.join(25)
        expect_eq(passed, [True], "the waiter passes once the barrier is removed")

        results, errors = [], []

        def member(client, name):
            try:
                db = client.DoubleBarrier(r + "/db", 2, identifier=name)
                db.enter()
                results.append(("in", name))
                db.leave()
                results.append(("out", name))
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))

        t1 = threading.Thread(target=member, args=(c1, "one"))
        t1.start()
        # The first member alone must wait at the entry.
        time_limit = time.monotonic() + 0.5
        while time.monotonic() < time_limit:
            expect(not results, "a double barrier let one of two members in")
            time.sleep(0.02)
        t2 = threading.Thread(target=member, args=(c2, "two"))
        t2.start()
        t1.join(30)
        t2.join(30)
        expect(not errors, "double barrier members failed: %s" % errors)
        expect_eq(sorted(results), [("in", "one"), ("in", "two"), ("out", "one"), ("out", "two")], "members")
        expect([k for k, _ in results[:2]] == ["in", "in"], "a member left before both entered: %r" % results)

    def check_counter(self):
        c1, c2 = self.client(), self.client()
        r = self.root(c1, "counter")
        n1 = c1.Counter(r + "/n")
        n1 += 5
        n1 -= 2
        expect_eq(n1.value, 3, "counter value")
        expect_eq(n1.pre_value, 5, "pre_value")
        expect_eq(n1.post_value, 3, "post_value")

        def bump(client):
            n = client.Counter(r + "/n")
            for _ in range(20):
                n += 1

        ts = [threading.Thread(target=bump, args=(c,)) for c in (c1, c2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        expect_eq(c2.Counter(r + "/n").value, 43, "value after 40 concurrent increments")
        f = c1.Counter(r + "/f", default=0.0)
        f += 1.5
        expect_eq(f.value, 1.5, "float counter")

    def check_queue(self):
        c1, c2 = self.client(), self.client()
        r = self.root(c1, "queue")
        q1 = c1.Queue(r + "/q")
        q2 = c2.Queue(r + "/q")
        for item in (b"one", b"two", b"three"):
            q1.put(item)
        q1.put(b"urgent", priority=1)
        expect_eq(len(q2), 4, "queue length")
        expect_eq([q2.get() for _ in range(4)], [b"urgent", b"one", b"two", b"three"], "queue order")
        expect(q2.get() is None, "get on an empty queue")

        lq1 = c1.LockingQueue(r + "/lq")
        lq2 = c2.LockingQueue(r + "/lq")
        lq1.put_all([b"a", b"b"])
        lq1.put(b"c", priority=200)
        expect_eq(len(lq2), 3, "locking queue length")
        got = lq2.get(timeout=10)
        expect_eq(got, b"a", "first locking-queue item")
        expect(lq2.holds_lock(), "the consumer holds the item's lock")
        expect_eq(lq1.get(timeout=10), b"b", "a second consumer skips the locked item")
        expect(lq2.consume(), "consume")
        expect(lq1.release(), "release puts the item back")
        expect_eq(lq2.get(timeout=10), b"b", "the released item comes back")
        expect(lq2.consume(), "consume")
        expect_eq(lq1.get(timeout=10), b"c", "the last item")
        expect(lq1.consume(), "consume")
        expect_eq(len(lq1), 0, "the locking queue is empty")

    def check_tree_cache(self):
        c = self.client()
        other = self.client()
        r = self.root(c, "tree")
        other.create(r + "/a", b"1")
        other.create(r + "/a/b", b"2")
        events = []
        cache = TreeCache(c, r)
        cache.listen(lambda ev: events.append((ev.event_type, ev.event_data and ev.event_data.path)))
        cache.start()
        try:
            wait_for(lambda: (TreeEvent.INITIALIZED, None) in events, "the cache to initialize")
            expect_eq(cache.get_data(r + "/a/b").data, b"2", "cached data")
            expect_eq(set(cache.get_children(r)), {"a"}, "cached children")
            other.create(r + "/c", b"3")
            other.set(r + "/a", b"1b")
            other.delete(r + "/a/b")
            wait_for(lambda: (TreeEvent.NODE_ADDED, r + "/c") in events, "NODE_ADDED for a new node")
            wait_for(lambda: (TreeEvent.NODE_UPDATED, r + "/a") in events, "NODE_UPDATED after a set")
            wait_for(lambda: (TreeEvent.NODE_REMOVED, r + "/a/b") in events, "NODE_REMOVED after a delete")
            expect_eq(cache.get_data(r + "/a").data, b"1b", "cached data after a set")
            expect(cache.get_data(r + "/a/b") is None, "a deleted node is still cached")
            expect_eq(set(cache.get_children(r)), {"a", "c"}, "cached children after changes")
        finally:
            cache.close()


    def check_auth(self):
        """Digest auth (addauth, and connect-time auth_data, unicode
        credentials): a node only alice may use is refused to bob and to an
        anonymous client, exists() still answers them; an unknown scheme fails
        with AuthFailedError, synchronously or not; makepath stops at a node
        whose CREATOR_ALL ACL belongs to another user."""
        alice = self.client(auth_data=[("digest", "alice:s\u00e9cret")])
        bob = self.client()
        bob.add_auth("digest", "bob:secret")
        anon = self.client()
        r = self.root(anon, "auth")
        p = r + "/alices"
        alice.create(p, b"x", acl=[make_digest_acl("alice", "s\u00e9cret", all=True)])
        expect_eq(alice.get(p)[0], b"x", "alice reads her node")
        for who, c in (("bob", bob), ("anonymous", anon)):
            expect_raises(NoAuthError, lambda c=c: c.get(p), "%s reads alice's node" % who)
            expect_raises(NoAuthError, lambda c=c: c.set(p, b"y"), "%s writes alice's node" % who)
            expect_raises(NoAuthError, lambda c=c: c.create(p + "/kid", b""), "%s creates under it" % who)
            expect(c.exists(p) is not None, "exists needs no permission (%s)" % who)
        alice.set(p, b"y")
        bad = KazooClient(hosts=self.hosts, timeout=10.0)
        self.clients.append(bad)
        bad.start(timeout=15)
        expect_raises(AuthFailedError, lambda: bad.add_auth("nosuchscheme", "x"), "addauth with an unknown scheme")
        # Asynchronously, as kazoo's test_async_auth and test_async_auth_failure.
        late = self.client()
        expect(late.add_auth_async("digest", "late:pw").get(timeout=TIMEOUT) is True, "add_auth_async")
        failing = KazooClient(hosts=self.hosts, timeout=10.0)
        self.clients.append(failing)
        failing.start(timeout=15)
        expect_raises(AuthFailedError, lambda: failing.add_auth_async("nosuchscheme", "x").get(timeout=TIMEOUT),
                      "add_auth_async with an unknown scheme")
        # makepath through a node another user's CREATOR_ALL ACL closes, as
        # kazoo's test_create_makepath_incompatible_acls: the credential is
        # itself a digest string, used as the password.
        credential = make_digest_acl_credential("username", "password")
        owner = self.client(auth_data=[("digest", credential)])
        owner.create(r + "/1/2", b"val2", makepath=True, acl=CREATOR_ALL_ACL)
        expect_raises(NoAuthError, lambda: anon.create(r + "/1/2/3/4/5", b"val2", makepath=True),
                      "makepath through a CREATOR_ALL node of another user")


    def check_acl_rules(self):
        """ACLs as ZooKeeper > 3.4 treats them: duplicate entries removed, an
        `auth` entry without authentication refused (InvalidACL), CREATOR_ALL
        after addauth stored as the creator's digest, getACL hiding digest
        hashes from a client without ADMIN, and /zookeeper/config read-only."""
        c = self.client()
        r = self.root(c, "acl-rules")
        dup = [ACL(31, Id("world", "anyone")), ACL(31, Id("world", "anyone"))]
        c.create(r + "/dup", b"", acl=dup)
        acl, _ = c.get_acls(r + "/dup")
        expect_eq(len(acl), 1, "duplicate ACL entries kept")
        expect_raises(InvalidACLError, lambda: c.create(r + "/creator", b"", acl=[ACL(31, Id("auth", ""))]),
                      "CREATOR_ALL without addauth")
        owner = self.client(auth_data=[("digest", "carol:pw")])
        owner.create(r + "/carols", b"", acl=[ACL(31, Id("auth", "")), ACL(1, Id("world", "anyone"))])
        acl, _ = owner.get_acls(r + "/carols")
        expect_eq([(a.perms, a.id.scheme, a.id.id.split(":")[0]) for a in acl],
                  [(31, "digest", "carol"), (1, "world", "anyone")], "CREATOR_ALL stored as the creator's digest")
        expect(acl[0].id.id != "carol:x", "the owner sees the hash")
        acl, _ = c.get_acls(r + "/carols")
        expect_eq(acl[0].id.id, "carol:x", "getACL without ADMIN hides the hash")
        acl, _ = c.get_acls("/zookeeper/config")
        expect_eq([(a.perms, a.id.scheme, a.id.id) for a in acl], [(1, "world", "anyone")],
                  "/zookeeper/config's ACL")
        expect_raises(NoAuthError, lambda: c.set("/zookeeper/config", b"x"), "a client writes /zookeeper/config")

    def check_null_data(self):
        """Null data apart from empty data, as ZooKeeper keeps it:
        `create(path, None)` and `set(path, None)` read back as None, empty
        bytes as b"", and a watcher sees None (kazoo's transactions take
        bytes only)."""
        c = self.client()
        r = self.root(c, "null-data")
        c.create(r + "/null", None)
        c.create(r + "/empty", b"")
        expect_eq(c.get(r + "/null")[0], None, "create(path, None) reads back")
        expect_eq(c.get(r + "/empty")[0], b"", "create(path, b'') reads back")
        expect_eq(c.get(r + "/null")[1].data_length, 0, "null data's length")
        c.set(r + "/empty", None)
        c.set(r + "/null", b"")
        expect_eq(c.get(r + "/empty")[0], None, "set(path, None) reads back")
        expect_eq(c.get(r + "/null")[0], b"", "set(path, b'') reads back")
        c.create(r + "/t-null", None)
        seen = []
        c.DataWatch(r + "/t-null", lambda data, stat: seen.append(data))
        wait_for(lambda: seen == [None], "a DataWatch on null data")
        c.set(r + "/t-null", b"x")
        wait_for(lambda: seen == [None, b"x"], "a DataWatch seeing data after null")


def settle_one(p):
    if p.release:
        p.release_set()
    elif p.allocating:
        p.wait_for_acquire(timeout=0.1)
    return p.acquired

ORDER = [
    "connect",
    "crud",
    "sequential_ephemeral",
    "watches",
    "reconnect",
    "transactions",
    "lock",
    "election",
    "partitioner",
    "barrier",
    "counter",
    "queue",
    "tree_cache",
    "auth",
    "acl_rules",
    "null_data",
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", required=True, help="ZooKeeper connect string, e.g. 127.0.0.1:2181")
    ap.add_argument("--only", help="comma-separated checks to run (default: all): " + ",".join(ORDER))
    ap.add_argument("--verbose", action="store_true", help="print a traceback for each failure")
    args = ap.parse_args()
    names = args.only.split(",") if args.only else ORDER
    unknown = [n for n in names if n not in ORDER]
    if unknown:
        ap.error("unknown checks: %s" % ", ".join(unknown))
    print("kazoo %s against %s" % (getattr(kazoo, "__version__", "?"), args.hosts), flush=True)
    checks = Checks(args.hosts)
    failed = []
    for name in names:
        start = time.monotonic()
        try:
            getattr(checks, "check_" + name)()
            print("PASS %s (%.2f s)" % (name, time.monotonic() - start), flush=True)
        except Exception as e:  # noqa: BLE001 - every failure is reported
            failed.append(name)
            kind = "" if isinstance(e, CheckFailed) else type(e).__name__ + ": "
            print("FAIL %s: %s%s" % (name, kind, e), flush=True)
            if args.verbose or not isinstance(e, CheckFailed):
                traceback.print_exc(file=sys.stdout)
        finally:
            checks.close_all()
    if failed:
        print("kazoo compatibility: %d of %d checks FAILED: %s" % (len(failed), len(names), ", ".join(failed)))
        sys.exit(1)
    print("kazoo compatibility: all %d checks passed" % len(names))


if __name__ == "__main__":
    main()
