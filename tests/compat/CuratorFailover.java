// Apache Curator (Debian's libcurator-recipes-java) across the loss of the
// member its client is connected to: run as a single-file program,
// `java -cp <zookeeper and curator jars> CuratorFailover.java HOSTS`.
// It holds an InterProcessMutex, a LeaderLatch and a CuratorCache, prints
// `READY SESSION HOST:PORT` (the member it is on), waits for a line
// `KILLED` on stdin, then checks that the session goes on (never LOST, the
// same id), that the lock is still its own (another session cannot take it
// until it is released, then can), that leadership was never given up, and
// that the cache sees a change made after the loss. The client uses
// SessionConnectionStateErrorPolicy, as Curator advises for recipes that
// should survive a server's loss: only a lost session counts as an error.
// Prints PASS/FAIL per check and `all 4 checks passed` or `N checks failed`.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.leader.LeaderLatchListener;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.framework.state.SessionConnectionStateErrorPolicy;
import org.apache.curator.retry.RetryNTimes;

public class CuratorFailover {
    static int failed = 0;

    static void check(boolean ok, String name, String detail) {
        System.out.println((ok ? "PASS " : "FAIL ") + name + (ok ? "" : ": " + detail));
        if (!ok) {
            failed++;
        }
    }

    static CuratorFramework client(String hosts) {
        CuratorFramework c = CuratorFrameworkFactory.builder()
                .connectString(hosts)
                .sessionTimeoutMs(6000)
                .connectionTimeoutMs(4000)
                .retryPolicy(new RetryNTimes(200, 100))
                .connectionStateErrorPolicy(new SessionConnectionStateErrorPolicy())
                .build();
        c.start();
        return c;
    }

    public static void main(String[] args) throws Exception {
        String hosts = args[0];
        List<ConnectionState> states = Collections.synchronizedList(new ArrayList<>());
        CuratorFramework cf = client(hosts);
        cf.getConnectionStateListenable().addListener((c, s) -> states.add(s));
        if (!cf.blockUntilConnected(20, TimeUnit.SECONDS)) {
            System.out.println("FAIL connect: no session within 20 s");
            System.exit(1);
        }
        String root = "/curator-failover-" + UUID.randomUUID();
        cf.create().forPath(root, "before".getBytes(StandardCharsets.UTF_8));

        InterProcessMutex lock = new InterProcessMutex(cf, root + "/lock");
        if (!lock.acquire(20, TimeUnit.SECONDS)) {
            System.out.println("FAIL lock: not acquired within 20 s");
            System.exit(1);
        }
        AtomicInteger lostLeadership = new AtomicInteger();
        LeaderLatch latch = new LeaderLatch(cf, root + "/leader");
        latch.addListener(new LeaderLatchListener() {
            public void isLeader() {
            }

            public void notLeader() {
                lostLeadership.incrementAndGet();
            }
        });
        latch.start();
        if (!latch.await(20, TimeUnit.SECONDS)) {
            System.out.println("FAIL leader latch: no leadership within 20 s");
            System.exit(1);
        }
        CountDownLatch changed = new CountDownLatch(1);
        CuratorCache cache = CuratorCache.build(cf, root);
        cache.listenable().addListener(CuratorCacheListener.builder()
                .forChanges((before, after) -> {
                    if (after.getPath().equals(root)
                            && new String(after.getData(), StandardCharsets.UTF_8).equals("after")) {
                        changed.countDown();
                    }
                })
                .build());
        CountDownLatch primed = new CountDownLatch(1);
        cache.listenable().addListener(CuratorCacheListener.builder()
                .forInitialized(primed::countDown).build());
        cache.start();
        if (!primed.await(20, TimeUnit.SECONDS)) {
            System.out.println("FAIL cache: not initialized within 20 s");
            System.exit(1);
        }

        long session = cf.getZookeeperClient().getZooKeeper().getSessionId();
        // ZooKeeper.toString() names the server: "... remoteserver:HOST/IP:PORT ...".
        String text = cf.getZookeeperClient().getZooKeeper().toString();
        int at = text.indexOf("remoteserver:");
        String remote = at < 0 ? "unknown" : text.substring(at + 13).split(" ")[0];
        String port = remote.substring(remote.lastIndexOf(':') + 1);
        System.out.println("READY " + Long.toHexString(session) + " 127.0.0.1:" + port);
        System.out.flush();

        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line = in.readLine();
        if (!"KILLED".equals(line)) {
            System.out.println("FAIL protocol: expected KILLED, got " + line);
            System.exit(1);
        }
        // Curator's retry policy carries the write across the reconnect.
        cf.setData().forPath(root, "after".getBytes(StandardCharsets.UTF_8));
        long now = cf.getZookeeperClient().getZooKeeper().getSessionId();
        check(now == session && !states.contains(ConnectionState.LOST), "session",
                "id " + Long.toHexString(now) + ", states " + states);

        CuratorFramework other = client(hosts);
        InterProcessMutex theirs = new InterProcessMutex(other, root + "/lock");
        boolean stolen = theirs.acquire(1, TimeUnit.SECONDS);
        boolean mine = lock.isOwnedByCurrentThread();
        lock.release();
        boolean handedOver = !stolen && theirs.acquire(20, TimeUnit.SECONDS);
        check(mine && !stolen && handedOver, "lock",
                "owned " + mine + ", taken by another session while held " + stolen
                        + ", taken after release " + handedOver);
        if (handedOver) {
            theirs.release();
        }
        other.close();

        check(latch.hasLeadership() && lostLeadership.get() == 0, "leader latch",
                "leader " + latch.hasLeadership() + ", lost leadership " + lostLeadership.get() + " times");
        check(changed.await(20, TimeUnit.SECONDS), "cache", "no change to \"after\" within 20 s");
        cache.close();
        latch.close();
        cf.close();
        System.out.println(failed == 0 ? "all 4 checks passed" : failed + " checks failed");
        System.exit(failed == 0 ? 0 : 1);
    }
}
