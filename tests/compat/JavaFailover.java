// Apache ZooKeeper's own Java client (what Curator is built on) across the
// loss of the member it is connected to: run as a single-file program,
// `java -cp <zookeeper jars> JavaFailover.java HOSTS`. It prints
// `READY SESSION HOST:PORT` (the member it is on), waits for a line
// `KILLED` on stdin, then checks that the same session goes on (never
// Expired), that its ephemeral node is still its own, and that a data
// watch set before the loss fires for a change made after it. Prints
// PASS/FAIL per check and `all 3 checks passed` or `N checks failed`.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.Stat;

public class JavaFailover {
    static int failed = 0;

    static void check(boolean ok, String name, String detail) {
        System.out.println((ok ? "PASS " : "FAIL ") + name + (ok ? "" : ": " + detail));
        if (!ok) {
            failed++;
        }
    }

    public static void main(String[] args) throws Exception {
        List<Watcher.Event.KeeperState> states = Collections.synchronizedList(new ArrayList<>());
        CountDownLatch connected = new CountDownLatch(1);
        ZooKeeper zk = new ZooKeeper(args[0], 4000, e -> {
            if (e.getType() == Watcher.Event.EventType.None) {
                states.add(e.getState());
                if (e.getState() == Watcher.Event.KeeperState.SyncConnected) {
                    connected.countDown();
                }
            }
        });
        if (!connected.await(20, TimeUnit.SECONDS)) {
            System.out.println("FAIL connect: no session within 20 s");
            System.exit(1);
        }
        String root = "/java-failover-" + UUID.randomUUID();
        zk.create(root, new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        String ephemeral = zk.create(root + "/mine", new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE,
                CreateMode.EPHEMERAL);
        long session = zk.getSessionId();
        CountDownLatch changed = new CountDownLatch(1);
        zk.getData(root, e -> {
            if (e.getType() == Watcher.Event.EventType.NodeDataChanged) {
                changed.countDown();
            }
        }, null);
        // ZooKeeper.toString() names the server: "... remoteserver:HOST/IP:PORT ...".
        String text = zk.toString();
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
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (true) {
            try {
                zk.setData(root, "1".getBytes(StandardCharsets.UTF_8), -1);
                break;
            } catch (KeeperException.ConnectionLossException e) {
                if (System.nanoTime() > deadline) {
                    throw e;
                }
                Thread.sleep(50);
            }
        }
        check(zk.getSessionId() == session
                && !states.contains(Watcher.Event.KeeperState.Expired),
                "session", "id " + Long.toHexString(zk.getSessionId()) + ", states " + states);
        Stat stat = zk.exists(ephemeral, false);
        check(stat != null && stat.getEphemeralOwner() == session, "ephemeral",
                stat == null ? "gone" : "owner " + Long.toHexString(stat.getEphemeralOwner()));
        check(changed.await(20, TimeUnit.SECONDS), "data watch", "no NodeDataChanged within 20 s");
        zk.close();
        System.out.println(failed == 0 ? "all 3 checks passed" : failed + " checks failed");
        System.exit(failed == 0 ? 0 : 1);
    }
}
