// LockBench: the `zkw bench --workload lock` cycle with Apache Curator's InterProcessMutex
// (the Debian package libcurator-recipes-java), for the comparison in bench/compare.sh --lock.
//
// N clients (one CuratorFramework session each, one thread each; session i on server i mod n)
// contend on one mutex; a cycle is acquire -> getData + conditional setData of a counter
// znode -> release. Prints ONE JSON line with the keys of `zkw bench --workload lock`:
// workload, clients, cycles, secs, cycles_per_sec, acquire_p50_us, acquire_p99_us, errors,
// counter_ok. The bench root /zkw-curator-lock-<hex> is deleted afterwards.
//
// Run (Java 17 source launcher):
//   java -cp "$(bench/compare.sh --curator-classpath)" bench/LockBench.java HOSTS CLIENTS SECS

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.retry.RetryNTimes;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.data.Stat;

public class LockBench {
    static final int SESSION_TIMEOUT_MS = 10_000;
    static final int CONNECT_TIMEOUT_MS = 20_000;
    /** Bound on one acquire, in seconds (a fair wait behind every other session's cycle). */
    static final long ACQUIRE_TIMEOUT_S = 60;
    static final int RETRIES = 3;
    static final int RETRY_SLEEP_MS = 100;
    /** Slack on top of the duration before a worker thread is considered stuck, in ms. */
    static final long JOIN_SLACK_MS = 120_000;

    static CuratorFramework connect(String hosts) throws InterruptedException {
        CuratorFramework client = CuratorFrameworkFactory.newClient(
                hosts, SESSION_TIMEOUT_MS, CONNECT_TIMEOUT_MS,
                new RetryNTimes(RETRIES, RETRY_SLEEP_MS));
        client.start();
        if (!client.blockUntilConnected(CONNECT_TIMEOUT_MS, TimeUnit.MILLISECONDS)) {
            throw new IllegalStateException("cannot connect to " + hosts);
        }
        return client;
    }

    static long percentile(List<Long> sorted, double q) {
        if (sorted.isEmpty()) {
            return 0;
        }
        return sorted.get(Math.min(sorted.size() - 1, (int) (q * sorted.size())));
    }

    public static void main(String[] args) throws Exception {
        String servers = args.length > 0 ? args[0] : "127.0.0.1:2181";
        int clients = args.length > 1 ? Integer.parseInt(args[1]) : 16;
        double seconds = args.length > 2 ? Double.parseDouble(args[2]) : 10.0;
        String[] list = servers.split(",");
        String root = String.format("/zkw-curator-lock-%016x", new java.util.Random().nextLong());
        String counter = root + "/counter";
        CuratorFramework admin = connect(servers);
        admin.create().forPath(root, new byte[0]);
        admin.create().forPath(counter, "0".getBytes());

        List<CuratorFramework> sessions = new ArrayList<>();
        for (int i = 0; i < clients; i++) {
            StringBuilder hosts = new StringBuilder();
            for (int k = 0; k < list.length; k++) {
                hosts.append(k == 0 ? "" : ",").append(list[(i + k) % list.length]);
            }
            sessions.add(connect(hosts.toString()));
        }
        List<Long> acquires = Collections.synchronizedList(new ArrayList<>());
        AtomicLong cycles = new AtomicLong();
        AtomicLong errors = new AtomicLong();
        AtomicLong increments = new AtomicLong();
        long start = System.nanoTime();
        long deadline = start + (long) (seconds * 1e9);
        List<Thread> threads = new ArrayList<>();
        for (CuratorFramework session : sessions) {
            Thread t = new Thread(() -> {
                InterProcessMutex mutex = new InterProcessMutex(session, root + "/lock");
                try {
                    while (System.nanoTime() < deadline) {
                        long t0 = System.nanoTime();
                        if (!mutex.acquire(ACQUIRE_TIMEOUT_S, TimeUnit.SECONDS)) {
                            errors.incrementAndGet();
                            return;
                        }
                        acquires.add((System.nanoTime() - t0) / 1000);
                        try {
                            Stat stat = new Stat();
                            byte[] data = session.getData().storingStatIn(stat).forPath(counter);
                            long value = Long.parseLong(new String(data));
                            session.setData().withVersion(stat.getVersion())
                                    .forPath(counter, Long.toString(value + 1).getBytes());
                            increments.incrementAndGet();
                            cycles.incrementAndGet();
                        } catch (KeeperException.BadVersionException lost) {
                            errors.incrementAndGet(); // a lost update: the lock did not exclude
                        } finally {
                            mutex.release();
                        }
                    }
                } catch (Exception e) {
                    System.err.println("LockBench: " + e);
                    errors.incrementAndGet();
                }
            });
            t.start();
            threads.add(t);
        }
        for (Thread t : threads) {
            t.join((long) (seconds * 1000) + JOIN_SLACK_MS);
        }
        double secs = (System.nanoTime() - start) / 1e9;
        admin.sync().forPath(counter);
        long value = Long.parseLong(new String(admin.getData().forPath(counter)));
        admin.delete().deletingChildrenIfNeeded().forPath(root);
        for (CuratorFramework session : sessions) {
            session.close();
        }
        admin.close();
        List<Long> sorted = new ArrayList<>(acquires);
        Collections.sort(sorted);
        System.out.printf(
                "{\"workload\":\"lock-curator\",\"clients\":%d,\"cycles\":%d,\"secs\":%.3f,"
                        + "\"cycles_per_sec\":%.3f,\"acquire_p50_us\":%d,\"acquire_p99_us\":%d,"
                        + "\"errors\":%d,\"counter_ok\":%b}%n",
                clients, cycles.get(), secs, cycles.get() / secs, percentile(sorted, 0.5),
                percentile(sorted, 0.99), errors.get(), value == increments.get());
        System.exit(errors.get() == 0 && value == increments.get() ? 0 : 1);
    }
}
