// KafkaShareConsumer (KIP-932) scenarios for tests/e2e/test_e2e_share_groups.py.
//
//   ShareClient serve BOOTSTRAP          one command per stdin line, one JSON answer per stdout line
//   ShareClient hold BOOTSTRAP GROUP TOPIC N
//                                        acquire records (one poll's), acknowledge nothing, print them, then
//                                        wait to be killed (a consumer that dies holding records)
//
// Commands of `serve` (space-separated):
//   earliest GROUP                   share.auto.offset.reset=earliest for GROUP (a group config;
//                                    servers without group configs: ignored)
//   config GROUP NAME VALUE          sets a group config of GROUP
//   split GROUP TOPIC N CONSUMERS    CONSUMERS consumers (implicit acknowledgement) share TOPIC
//                                    until N distinct values arrived: per-consumer counts, duplicates
//   release GROUP TOPIC              explicit acknowledgement: release the first record, accept
//                                    the rest, then wait for it again: its delivery counts
//   drain GROUP TOPIC N TIMEOUT_MS   one consumer accepts until N distinct values or the
//                                    timeout: each value with the delivery count it came with
//   bench GROUP TOPIC N CONSUMERS    CONSUMERS consumers accept N records: records/s
//   limit GROUP TOPIC IDLE_MS        explicit acknowledgement: release every record, until none
//                                    came for IDLE_MS after the first: each value with its delivery counts
//   lock GROUP TOPIC                 the acquisition lock timeout of the first records' ShareFetch
//   ackeach GROUP TOPIC N            accepts N records one ShareAcknowledge each (bench/: the
//                                    share-state documents they write)
//   takeover GROUP TOPIC N CONSUMERS TIMEOUT_MS
//                                    CONSUMERS consumers (explicit acknowledgement, 20 records a
//                                    poll: share.acquire.mode=record_limit) accept records,
//                                    committing each poll's, until the share partition's start
//                                    offset reached N (every record done on the server) or N
//                                    acceptances were confirmed: each delivery (value, count,
//                                    whether a confirmed acceptance of it preceded it), the
//                                    confirmed count, the values delivered but never confirmed,
//                                    the start offset last read
//   renew GROUP TOPIC N HOLD_MS      explicit acknowledgement: once it holds all N records, renews
//                                    their locks (acknowledge RENEW, commitSync) for HOLD_MS, then
//                                    accepts them, while a second consumer of the group polls:
//                                    the delivery counts each got, renewals, commit errors
//   acquire GROUP TOPIC MODE MAX WANT WAIT_MS
//                                    a consumer with share.acquire.mode=MODE and max.poll.records
//                                    MAX polls once and holds what it got; a second consumer
//                                    polls until it has WANT values or WAIT_MS passed: both lists
//   parity GROUP TOPIC N             explicit acknowledgement: accepts the records at odd offsets,
//                                    releases those at even ones (again when they come back),
//                                    until N distinct records were seen: accepted per partition
//   quit
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ListShareGroupOffsetsSpec;
import org.apache.kafka.clients.consumer.AcknowledgeType;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaShareConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.StringDeserializer;

public final class ShareClient {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final long WAIT_MS = 60_000;

    private final String bootstrap;

    private ShareClient(String bootstrap) {
        this.bootstrap = bootstrap;
    }

    public static void main(String[] args) throws Exception {
        if (args.length == 2 && args[0].equals("serve")) {
            new ShareClient(args[1]).serve();
        } else if (args.length == 5 && args[0].equals("hold")) {
            new ShareClient(args[1]).hold(args[2], args[3], Integer.parseInt(args[4]));
        } else {
            System.err.println("usage: ShareClient serve BOOTSTRAP | hold BOOTSTRAP GROUP TOPIC N");
            System.exit(2);
        }
    }

    private void serve() throws Exception {
        BufferedReader in =
                new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        answer(Map.of("ready", true));
        String line;
        while ((line = in.readLine()) != null) {
            String[] w = line.trim().split(" ");
            Object out;
            try {
                switch (w[0]) {
                    case "quit":
                        return;
                    case "earliest":
                        out = config(w[1], "share.auto.offset.reset", "earliest");
                        break;
                    case "config":
                        out = config(w[1], w[2], w[3]);
                        break;
                    case "split":
                        out = split(w[1], w[2], Integer.parseInt(w[3]), Integer.parseInt(w[4]));
                        break;
                    case "limit":
                        out = limit(w[1], w[2], Long.parseLong(w[3]));
                        break;
                    case "lock":
                        out = lock(w[1], w[2]);
                        break;
                    case "ackeach":
                        out = ackEach(w[1], w[2], Integer.parseInt(w[3]));
                        break;
                    case "release":
                        out = release(w[1], w[2]);
                        break;
                    case "drain":
                        out = drain(w[1], w[2], Integer.parseInt(w[3]), Long.parseLong(w[4]));
                        break;
                    case "takeover":
                        out = takeover(w[1], w[2], Integer.parseInt(w[3]), Integer.parseInt(w[4]),
                                Long.parseLong(w[5]));
                        break;
                    case "renew":
                        out = renew(w[1], w[2], Integer.parseInt(w[3]), Long.parseLong(w[4]));
                        break;
                    case "acquire":
                        out = acquire(w[1], w[2], w[3], Integer.parseInt(w[4]),
                                Integer.parseInt(w[5]), Long.parseLong(w[6]));
                        break;
                    case "parity":
                        out = parity(w[1], w[2], Integer.parseInt(w[3]));
                        break;
                    case "bench":
                        out = bench(w[1], w[2], Integer.parseInt(w[3]), Integer.parseInt(w[4]));
                        break;
                    default:
                        out = Map.of("error", "unknown command " + w[0]);
                }
            } catch (Exception e) {
                out = Map.of("error", e.toString());
            }
            answer(out);
        }
    }

    private static void answer(Object out) throws Exception {
        System.out.println(JSON.writeValueAsString(out));
        System.out.flush();
    }

    private KafkaShareConsumer<String, String> consumer(String group, String mode) {
        return consumer(group, mode, 500);
    }

    private KafkaShareConsumer<String, String> consumer(String group, String mode, int maxPoll) {
        return consumer(group, mode, maxPoll, null);
    }

    private KafkaShareConsumer<String, String> consumer(
            String group, String mode, int maxPoll, String acquireMode) {
        Properties p = new Properties();
        if (acquireMode != null) {
            p.put("share.acquire.mode", acquireMode);
        }
        p.put("max.poll.records", Integer.toString(maxPoll));
        p.put("bootstrap.servers", bootstrap);
        p.put("group.id", group);
        p.put("share.acknowledgement.mode", mode);
        p.put("key.deserializer", StringDeserializer.class.getName());
        p.put("value.deserializer", StringDeserializer.class.getName());
        return new KafkaShareConsumer<>(p);
    }

    private Object config(String group, String name, String value) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        try (Admin admin = Admin.create(p)) {
            ConfigResource r = new ConfigResource(ConfigResource.Type.GROUP, group);
            AlterConfigOp op = new AlterConfigOp(
                    new ConfigEntry(name, value),
                    AlterConfigOp.OpType.SET);
            admin.incrementalAlterConfigs(Map.of(r, List.of(op))).all().get();
            return Map.of("set", true);
        } catch (Exception e) {
            return Map.of("set", false, "why", e.toString());
        }
    }

    /** Consumers, each in its own thread, accept until n distinct values arrived. */
    private Object split(String group, String topic, int n, int consumers) throws Exception {
        Map<String, Integer> seen = new ConcurrentHashMap<>();
        AtomicInteger dups = new AtomicInteger();
        int[] counts = new int[consumers];
        long deadline = System.currentTimeMillis() + WAIT_MS;
        List<Thread> threads = new ArrayList<>();
        List<Throwable> errors = Collections.synchronizedList(new ArrayList<>());
        for (int i = 0; i < consumers; i++) {
            final int me = i;
            Thread t = new Thread(() -> {
                try (KafkaShareConsumer<String, String> c = consumer(group, "implicit")) {
                    c.subscribe(List.of(topic));
                    while (seen.size() < n && System.currentTimeMillis() < deadline) {
                        for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                            counts[me]++;
                            if (seen.merge(r.value(), 1, Integer::sum) > 1) {
                                dups.incrementAndGet();
                            }
                            // A slow consumer: the other one gets records meanwhile.
                            Thread.sleep(1);
                        }
                    }
                    c.commitSync();
                } catch (Throwable e) {
                    errors.add(e);
                }
            });
            t.start();
            threads.add(t);
        }
        for (Thread t : threads) {
            t.join();
        }
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("counts", java.util.Arrays.stream(counts).boxed().toList());
        out.put("distinct", seen.size());
        out.put("duplicates", dups.get());
        out.put("errors", errors.stream().map(Throwable::toString).toList());
        return out;
    }

    /**
     * Consumers accept what they get, committing each poll's acknowledgements, until n distinct
     * values were acknowledged (a server may die meanwhile: errors are retried by polling on).
     * Each delivery is recorded with its delivery count and whether the value had already been
     * acknowledged with success when it came (which must never happen).
     */
    private Object takeover(String group, String topic, int n, int consumers, long timeoutMs)
            throws Exception {
        Set<String> acked = ConcurrentHashMap.newKeySet();
        List<List<Object>> deliveries = Collections.synchronizedList(new ArrayList<>());
        long deadline = System.currentTimeMillis() + timeoutMs;
        AtomicBoolean stop = new AtomicBoolean();
        List<Thread> threads = new ArrayList<>();
        List<String> errors = Collections.synchronizedList(new ArrayList<>());
        for (int i = 0; i < consumers; i++) {
            Thread t = new Thread(() -> {
                try (KafkaShareConsumer<String, String> c = consumer(group, "explicit", 20, "record_limit")) {
                    c.subscribe(List.of(topic));
                    while (!stop.get()) {
                        List<String> polled = new ArrayList<>();
                        try {
                            for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                                int dc = r.deliveryCount().map(Short::intValue).orElse(-1);
                                deliveries.add(List.of(r.value(), dc, acked.contains(r.value())));
                                c.acknowledge(r, AcknowledgeType.ACCEPT);
                                polled.add(r.value());
                            }
                            if (polled.isEmpty()) {
                                continue;
                            }
                            // Slow consumers: the run lasts long enough to kill a server in it.
                            Thread.sleep(20);
                            var results = c.commitSync();
                            if (results.values().stream().allMatch(java.util.Optional::isEmpty)) {
                                acked.addAll(polled);
                            }
                        } catch (Exception e) {
                            errors.add(e.toString());
                        }
                    }
                }
            });
            t.start();
            threads.add(t);
        }
        // An acceptance whose commit failed at the kill may still have been applied (Kafka
        // allows it: its outcome is unknown to the client), so the server's start offset, not
        // the client's confirmations, tells when every record is done.
        long start = -1;
        TopicPartition tp = new TopicPartition(topic, 0);
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        try (Admin admin = Admin.create(p)) {
            while (acked.size() < n && start < n && System.currentTimeMillis() < deadline) {
                Thread.sleep(500);
                try {
                    var spec = new ListShareGroupOffsetsSpec().topicPartitions(List.of(tp));
                    var info = admin.listShareGroupOffsets(Map.of(group, spec))
                            .partitionsToOffsetInfo(group)
                            .get(10, TimeUnit.SECONDS)
                            .get(tp);
                    if (info != null) {
                        start = info.startOffset();
                    }
                } catch (Exception e) {
                    // The coordinator was just killed: asked again next round.
                }
            }
        } finally {
            stop.set(true);
            for (Thread t : threads) {
                t.join();
            }
        }
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("acked", acked.size());
        out.put("start_offset", start);
        List<String> unconfirmed = new ArrayList<>();
        synchronized (deliveries) {
            for (List<Object> d : deliveries) {
                if (!acked.contains((String) d.get(0)) && !unconfirmed.contains((String) d.get(0))) {
                    unconfirmed.add((String) d.get(0));
                }
            }
        }
        out.put("unconfirmed", unconfirmed);
        out.put("deliveries", deliveries);
        out.put("errors", errors.subList(0, Math.min(errors.size(), 20)));
        return out;
    }

    /** A consumer of the group in its own thread, polling until stopped: value -> counts. */
    private final class Watcher implements AutoCloseable {
        final Map<String, List<Integer>> got = new ConcurrentHashMap<>();
        final List<String> errors = Collections.synchronizedList(new ArrayList<>());
        private volatile boolean stop;
        private final Thread thread;

        Watcher(String group, String topic, int want, long deadline) {
            thread = new Thread(() -> {
                try (KafkaShareConsumer<String, String> c = consumer(group, "implicit")) {
                    c.subscribe(List.of(topic));
                    while (!stop && got.size() < want && System.currentTimeMillis() < deadline) {
                        for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(100))) {
                            got.computeIfAbsent(r.value(), k -> new ArrayList<>())
                                    .add(r.deliveryCount().map(Short::intValue).orElse(-1));
                        }
                    }
                    c.commitSync();
                } catch (Throwable e) {
                    errors.add(e.toString());
                }
            });
            thread.start();
        }

        @Override
        public void close() throws InterruptedException {
            stop = true;
            thread.join();
        }
    }

    /**
     * Holds all n records, renewing their acquisition locks for holdMs (RENEW, then commitSync;
     * the consumer gives renewed records back on a later poll), then accepts them; a second
     * consumer of the group polls meanwhile and one second more.
     */
    private Object renew(String group, String topic, int n, long holdMs) throws Exception {
        Map<String, List<Integer>> seen = new LinkedHashMap<>();
        List<String> errors = new ArrayList<>();
        int renewals = 0;
        Watcher other = null;
        Object lockMs = -1;
        try (KafkaShareConsumer<String, String> c = consumer(group, "explicit")) {
            c.subscribe(List.of(topic));
            long deadline = System.currentTimeMillis() + WAIT_MS;
            long until = Long.MAX_VALUE;
            Set<String> accepted = new java.util.HashSet<>();
            while (accepted.size() < n && System.currentTimeMillis() < deadline) {
                if (other != null && System.currentTimeMillis() >= until) {
                    // Done when every record was accepted here or went to the other consumer.
                    Set<String> done = new java.util.HashSet<>(accepted);
                    done.addAll(other.got.keySet());
                    if (done.size() >= n) {
                        break;
                    }
                }
                ConsumerRecords<String, String> recs = c.poll(Duration.ofMillis(100));
                boolean renewing = System.currentTimeMillis() < until;
                for (ConsumerRecord<String, String> r : recs) {
                    seen.computeIfAbsent(r.value(), k -> new ArrayList<>())
                            .add(r.deliveryCount().map(Short::intValue).orElse(-1));
                    if (renewing) {
                        c.acknowledge(r, AcknowledgeType.RENEW);
                    } else {
                        c.acknowledge(r, AcknowledgeType.ACCEPT);
                        accepted.add(r.value());
                    }
                }
                if (recs.isEmpty()) {
                    continue;
                }
                if (renewing) {
                    renewals++;
                }
                for (var e : c.commitSync().entrySet()) {
                    e.getValue().ifPresent(x -> errors.add(x.toString()));
                }
                lockMs = c.acquisitionLockTimeoutMs().orElse(-1);
                if (other == null && seen.size() == n) {
                    // It holds them all: renewals start now, and so does the other consumer.
                    until = System.currentTimeMillis() + holdMs;
                    other = new Watcher(group, topic, n, deadline);
                }
                // A slow application: half a second per poll's records.
                Thread.sleep(500);
            }
            Thread.sleep(1000);
        } finally {
            if (other != null) {
                other.close();
            }
        }
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("seen", seen);
        out.put("renewals", renewals);
        out.put("errors", errors.subList(0, Math.min(errors.size(), 5)));
        out.put("other", other == null ? Map.of() : other.got);
        out.put("other_errors", other == null ? List.of() : other.errors);
        out.put("lock_ms", lockMs);
        return out;
    }

    /**
     * A consumer in acquire mode `mode` polls once with max.poll.records `max` and holds what it
     * got; another consumer of the group then polls until it has `want` values or waitMs.
     */
    private Object acquire(String group, String topic, String mode, int max, int want, long waitMs)
            throws Exception {
        List<String> first = new ArrayList<>();
        Map<String, List<Integer>> other;
        try (KafkaShareConsumer<String, String> c = consumer(group, "explicit", max, mode)) {
            c.subscribe(List.of(topic));
            long deadline = System.currentTimeMillis() + WAIT_MS;
            while (first.isEmpty() && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    first.add(r.value());
                }
            }
            try (Watcher w = new Watcher(group, topic, want, System.currentTimeMillis() + waitMs)) {
                w.thread.join();
                other = w.got;
            }
        }
        return Map.of("first", first, "other", new java.util.TreeMap<>(other));
    }

    /** Releases the first record it gets and waits for it to come back. */
    private Object release(String group, String topic) {
        Map<String, Object> out = new LinkedHashMap<>();
        try (KafkaShareConsumer<String, String> c = consumer(group, "explicit")) {
            c.subscribe(List.of(topic));
            long deadline = System.currentTimeMillis() + WAIT_MS;
            String released = null;
            List<Integer> counts = new ArrayList<>();
            while (System.currentTimeMillis() < deadline) {
                ConsumerRecords<String, String> recs = c.poll(Duration.ofMillis(200));
                for (ConsumerRecord<String, String> r : recs) {
                    int dc = r.deliveryCount().map(Short::intValue).orElse(-1);
                    if (released == null) {
                        released = r.value();
                        counts.add(dc);
                        c.acknowledge(r, AcknowledgeType.RELEASE);
                    } else if (r.value().equals(released)) {
                        counts.add(dc);
                        c.acknowledge(r, AcknowledgeType.ACCEPT);
                    } else {
                        c.acknowledge(r, AcknowledgeType.ACCEPT);
                    }
                }
                if (!recs.isEmpty()) {
                    c.commitSync();
                }
                if (counts.size() >= 2) {
                    break;
                }
            }
            out.put("value", released);
            out.put("counts", counts);
        }
        return out;
    }

    /** Releases every record it gets until none came for idleMs; value -> delivery counts. */
    private Object limit(String group, String topic, long idleMs) {
        Map<String, List<Integer>> got = new LinkedHashMap<>();
        try (KafkaShareConsumer<String, String> c = consumer(group, "explicit")) {
            c.subscribe(List.of(topic));
            long start = System.currentTimeMillis();
            long last = start;
            // The idle time counts from the last records (joining the group may take a while).
            while ((got.isEmpty() || System.currentTimeMillis() - last < idleMs)
                    && System.currentTimeMillis() - start < WAIT_MS) {
                ConsumerRecords<String, String> recs = c.poll(Duration.ofMillis(200));
                for (ConsumerRecord<String, String> r : recs) {
                    got.computeIfAbsent(r.value(), k -> new ArrayList<>())
                            .add(r.deliveryCount().map(Short::intValue).orElse(-1));
                    c.acknowledge(r, AcknowledgeType.RELEASE);
                }
                if (!recs.isEmpty()) {
                    c.commitSync();
                    last = System.currentTimeMillis();
                }
            }
        }
        return Map.of("got", got);
    }

    /**
     * Accepts the records at odd offsets and releases those at even ones until n distinct
     * records were seen, committing each poll's acknowledgements: partition -> accepted.
     */
    private Object parity(String group, String topic, int n) {
        Set<String> seen = new java.util.HashSet<>();
        Map<Integer, Integer> accepted = new java.util.TreeMap<>();
        try (KafkaShareConsumer<String, String> c = consumer(group, "explicit")) {
            c.subscribe(List.of(topic));
            long deadline = System.currentTimeMillis() + WAIT_MS;
            while (seen.size() < n && System.currentTimeMillis() < deadline) {
                ConsumerRecords<String, String> recs = c.poll(Duration.ofMillis(200));
                for (ConsumerRecord<String, String> r : recs) {
                    boolean odd = r.offset() % 2 == 1;
                    if (seen.add(r.partition() + "-" + r.offset()) && odd) {
                        accepted.merge(r.partition(), 1, Integer::sum);
                    }
                    c.acknowledge(r, odd ? AcknowledgeType.ACCEPT : AcknowledgeType.RELEASE);
                }
                if (!recs.isEmpty()) {
                    c.commitSync();
                }
            }
        }
        return Map.of("accepted", accepted, "seen", seen.size());
    }

    /** Accepts n records, committing each acknowledgement on its own: seconds taken. */
    private Object ackEach(String group, String topic, int n) {
        int done = 0;
        long start = System.nanoTime();
        try (KafkaShareConsumer<String, String> c = consumer(group, "explicit")) {
            c.subscribe(List.of(topic));
            long deadline = System.currentTimeMillis() + 10 * WAIT_MS;
            while (done < n && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    c.acknowledge(r, AcknowledgeType.ACCEPT);
                    c.commitSync();
                    done++;
                }
            }
        }
        return Map.of("acked", done, "seconds", (System.nanoTime() - start) / 1e9);
    }

    /** Polls until records come: the acquisition lock timeout the broker gave them. */
    private Object lock(String group, String topic) {
        try (KafkaShareConsumer<String, String> c = consumer(group, "implicit")) {
            c.subscribe(List.of(topic));
            long deadline = System.currentTimeMillis() + WAIT_MS;
            while (System.currentTimeMillis() < deadline) {
                if (!c.poll(Duration.ofMillis(200)).isEmpty()) {
                    c.commitSync();
                    return Map.of("lock_ms", c.acquisitionLockTimeoutMs().orElse(-1));
                }
            }
        }
        return Map.of("lock_ms", -2);
    }

    /** Accepts until n distinct values or the timeout; value -> delivery counts seen. */
    private Object drain(String group, String topic, int n, long timeoutMs) {
        Map<String, List<Integer>> got = new LinkedHashMap<>();
        try (KafkaShareConsumer<String, String> c = consumer(group, "implicit")) {
            c.subscribe(List.of(topic));
            long deadline = System.currentTimeMillis() + timeoutMs;
            while (got.size() < n && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    got.computeIfAbsent(r.value(), k -> new ArrayList<>())
                            .add(r.deliveryCount().map(Short::intValue).orElse(-1));
                }
            }
            c.commitSync();
        }
        return Map.of("got", got);
    }

    /** Consumers accept n records between them: records per second. */
    private Object bench(String group, String topic, int n, int consumers) throws Exception {
        AtomicInteger total = new AtomicInteger();
        List<Thread> threads = new ArrayList<>();
        long deadline = System.currentTimeMillis() + 120_000;
        long[] firstAt = {Long.MAX_VALUE};
        for (int i = 0; i < consumers; i++) {
            Thread t = new Thread(() -> {
                try (KafkaShareConsumer<String, String> c = consumer(group, "implicit")) {
                    c.subscribe(List.of(topic));
                    while (total.get() < n && System.currentTimeMillis() < deadline) {
                        int got = c.poll(Duration.ofMillis(100)).count();
                        if (got > 0) {
                            synchronized (firstAt) {
                                firstAt[0] = Math.min(firstAt[0], System.nanoTime());
                            }
                            total.addAndGet(got);
                        }
                    }
                    c.commitSync();
                }
            });
            t.start();
            threads.add(t);
        }
        for (Thread t : threads) {
            t.join();
        }
        double secs = (System.nanoTime() - firstAt[0]) / 1e9;
        return Map.of("records", total.get(), "seconds", secs, "per_second", total.get() / secs);
    }

    /** Acquires n records, acknowledges none, prints them, then waits to be killed. */
    private void hold(String group, String topic, int n) throws Exception {
        KafkaShareConsumer<String, String> c = consumer(group, "explicit");
        c.subscribe(List.of(topic));
        List<String> held = new ArrayList<>();
        long deadline = System.currentTimeMillis() + WAIT_MS;
        // One poll that returns records (explicit mode: another poll would need them
        // acknowledged first).
        while (held.isEmpty() && System.currentTimeMillis() < deadline) {
            for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                held.add(r.value());
            }
        }
        answer(Map.of("held", held));
        Thread.sleep(Long.MAX_VALUE);
    }
}
