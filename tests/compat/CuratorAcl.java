// Apache Curator's ACL handling against one server: run as a single-file
// program, `java -cp <zookeeper and curator jars> CuratorAcl.java HOST:PORT`.
// Alice (`authorization("digest", "alice:pw")`) creates a node only she may
// use, with Curator's `withACL` and ZooKeeper's DigestAuthenticationProvider
// digest; bob and an anonymous client are refused with NoAuthException;
// alice reads it, sees her ACL with `getACL`, and `setACL` opens it to all.
// Prints PASS/FAIL per check and `all 4 checks passed` or `N checks failed`.

import java.nio.charset.StandardCharsets;
import java.util.Collections;
import java.util.List;
import java.util.UUID;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.retry.RetryNTimes;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.data.ACL;
import org.apache.zookeeper.data.Id;
import org.apache.zookeeper.server.auth.DigestAuthenticationProvider;

public class CuratorAcl {
    static int failed = 0;

    static void check(boolean ok, String name, String detail) {
        System.out.println((ok ? "PASS " : "FAIL ") + name + (ok ? "" : ": " + detail));
        if (!ok) {
            failed++;
        }
    }

    static CuratorFramework client(String host, String userPassword) {
        CuratorFrameworkFactory.Builder b = CuratorFrameworkFactory.builder()
                .connectString(host)
                .retryPolicy(new RetryNTimes(3, 100));
        if (userPassword != null) {
            b = b.authorization("digest", userPassword.getBytes(StandardCharsets.UTF_8));
        }
        CuratorFramework c = b.build();
        c.start();
        return c;
    }

    static String refused(CuratorFramework c, String path) {
        try {
            c.getData().forPath(path);
            return "read it";
        } catch (KeeperException.NoAuthException e) {
            return null;
        } catch (Exception e) {
            return e.toString();
        }
    }

    public static void main(String[] args) throws Exception {
        String host = args[0];
        CuratorFramework alice = client(host, "alice:pw");
        CuratorFramework bob = client(host, "bob:pw");
        CuratorFramework anon = client(host, null);
        String path = "/curator-acl-" + UUID.randomUUID();
        String digest = DigestAuthenticationProvider.generateDigest("alice:pw");
        List<ACL> onlyAlice = Collections.singletonList(
                new ACL(ZooDefs.Perms.ALL, new Id("digest", digest)));
        alice.create().withACL(onlyAlice).forPath(path, "secret".getBytes(StandardCharsets.UTF_8));

        String b = refused(bob, path);
        String a = refused(anon, path);
        check(b == null && a == null, "others refused", "bob: " + b + ", anonymous: " + a);
        String data = new String(alice.getData().forPath(path), StandardCharsets.UTF_8);
        check("secret".equals(data), "owner reads", "read " + data);
        List<ACL> acl = alice.getACL().forPath(path);
        check(acl.equals(onlyAlice), "getACL", "got " + acl);
        alice.setACL().withACL(ZooDefs.Ids.OPEN_ACL_UNSAFE).forPath(path);
        String after = refused(anon, path);
        check("read it".equals(after), "setACL opens it", "anonymous after setACL: " + after);

        alice.delete().forPath(path);
        for (CuratorFramework c : new CuratorFramework[] {alice, bob, anon}) {
            c.close();
        }
        System.out.println(failed == 0 ? "all 4 checks passed" : failed + " checks failed");
        System.exit(failed == 0 ? 0 : 1);
    }
}
