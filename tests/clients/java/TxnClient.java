// Transactional kafka-clients scenarios for tests/e2e/test_e2e_transactions_java.py.
//
//   TxnClient serve BOOTSTRAP       one command per stdin line, one JSON answer per stdout line
//                                   (one JVM serves a module's scenarios: JVM start-up is the cost)
//   TxnClient copy BOOTSTRAP IN OUT GROUP TXN_ID PER_TXN PAUSE_MS
//                                   consume-transform-produce until IN is copied; killed by tests
//
// Commands of `serve` (space-separated):
//   cac TOPIC TXN_ID PARTITIONS N    commit, abort, commit of N records each; read back both ways
//   fence TOPIC TXN_ID               two producers with one transactional id: what the older gets
//   open NAME TOPIC TXN_ID TIMEOUT_MS PARTITIONS N   begin, send N records, flush; keep it open
//   end NAME commit|abort            end an open transaction; the error it gets, if any
//   close NAME                       close a producer opened by `open` (no end of its transaction)
//   read TOPIC PARTITIONS ISOLATION  every value per partition, up to the end for that isolation
//   quit
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.AuthorizationException;
import org.apache.kafka.common.errors.InvalidProducerEpochException;
import org.apache.kafka.common.errors.OutOfOrderSequenceException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class TxnClient {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Duration WAIT = Duration.ofSeconds(60);

    private final String bootstrap;
    private final Map<String, KafkaProducer<String, String>> open = new HashMap<>();

    private TxnClient(String bootstrap) {
        this.bootstrap = bootstrap;
    }

    public static void main(String[] args) throws Exception {
        if (args.length >= 2 && args[0].equals("serve")) {
            new TxnClient(args[1]).serve();
        } else if (args.length == 8 && args[0].equals("copy")) {
            new TxnClient(args[1]).copy(args[2], args[3], args[4], args[5],
                Integer.parseInt(args[6]), Long.parseLong(args[7]));
        } else {
            System.err.println("usage: TxnClient serve BOOTSTRAP | copy BOOTSTRAP IN OUT GROUP TXN_ID PER_TXN PAUSE_MS");
            System.exit(2);
        }
    }

    private KafkaProducer<String, String> producer(String txnId, int timeoutMs) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txnId);
        p.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, timeoutMs);
        p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 60000);
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 60000);
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 15000);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        return new KafkaProducer<>(p);
    }

    private KafkaConsumer<String, String> consumer(String isolation, String group, int maxPollRecords) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, maxPollRecords);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        if (group != null) {
            p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            // a killed copier's membership must not hold its successor's partitions for 45 s
            p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 6000);
            p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 1000);
        }
        return new KafkaConsumer<>(p);
    }

    // ---- serve ----

    private void serve() throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        System.out.println(JSON.writeValueAsString(Map.of("ready", true)));
        System.out.flush();
        String line;
        while ((line = in.readLine()) != null) {
            String[] a = line.trim().split(" ");
            if (a[0].equals("quit")) {
                break;
            }
            Map<String, Object> out;
            try {
                out = command(a);
            } catch (Exception e) {
                out = new LinkedHashMap<>();
                out.put("error", describe(e));
            }
            System.out.println(JSON.writeValueAsString(out));
            System.out.flush();
        }
        for (KafkaProducer<String, String> p : open.values()) {
            p.close(Duration.ZERO);
        }
    }

    private Map<String, Object> command(String[] a) throws Exception {
        switch (a[0]) {
            case "cac":
                return commitAbortCommit(a[1], a[2], Integer.parseInt(a[3]), Integer.parseInt(a[4]));
            case "fence":
                return fence(a[1], a[2]);
            case "open":
                return openTxn(a[1], a[2], a[3], Integer.parseInt(a[4]), Integer.parseInt(a[5]),
                    Integer.parseInt(a[6]));
            case "end":
                return endTxn(a[1], a[2].equals("commit"));
            case "close": {
                KafkaProducer<String, String> p = open.remove(a[1]);
                if (p != null) {
                    p.close(Duration.ZERO);
                }
                return Map.of("closed", p != null);
            }
            case "read":
                return Map.of("values", read(a[1], Integer.parseInt(a[2]), a[3]));
            default:
                throw new IllegalArgumentException("unknown command " + a[0]);
        }
    }

    /** An exception and its causes as "Class: message" lines, outermost first. */
    private static List<String> describe(Throwable e) {
        List<String> out = new ArrayList<>();
        for (Throwable t = e; t != null && out.size() < 5; t = t.getCause()) {
            out.add(t.getClass().getSimpleName() + ": " + t.getMessage());
        }
        return out;
    }

    private static void send(KafkaProducer<String, String> p, String topic, int partitions, String prefix, int n)
            throws InterruptedException, ExecutionException {
        List<java.util.concurrent.Future<RecordMetadata>> acks = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            acks.add(p.send(new ProducerRecord<>(topic, i % partitions, "k" + i, prefix + "-" + i)));
        }
        p.flush();
        for (java.util.concurrent.Future<RecordMetadata> f : acks) {
            f.get();
        }
    }

    private Map<String, Object> commitAbortCommit(String topic, String txnId, int partitions, int n) throws Exception {
        try (KafkaProducer<String, String> p = producer(txnId, 60000)) {
            p.initTransactions();
            p.beginTransaction();
            send(p, topic, partitions, "java-c1", n);
            p.commitTransaction();
            p.beginTransaction();
            send(p, topic, partitions, "java-a", n);
            p.abortTransaction();
            p.beginTransaction();
            send(p, topic, partitions, "java-c2", n);
            p.commitTransaction();
        }
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("read_committed", read(topic, partitions, "read_committed"));
        out.put("read_uncommitted", read(topic, partitions, "read_uncommitted"));
        return out;
    }

    private Map<String, Object> fence(String topic, String txnId) throws Exception {
        Map<String, Object> out = new LinkedHashMap<>();
        KafkaProducer<String, String> old = producer(txnId, 60000);
        try {
            old.initTransactions();
            old.beginTransaction();
            send(old, topic, 1, "old-1", 1);
            try (KafkaProducer<String, String> young = producer(txnId, 60000)) {
                young.initTransactions(); // fences `old` and aborts its open transaction
                young.beginTransaction();
                send(young, topic, 1, "young", 1);
                young.commitTransaction();
            }
            try {
                send(old, topic, 1, "old-2", 1);
                out.put("old_send_error", null);
            } catch (Exception e) {
                out.put("old_send_error", describe(e));
            }
            try {
                old.commitTransaction();
                out.put("old_commit_error", null);
            } catch (Exception e) {
                out.put("old_commit_error", describe(e));
            }
        } finally {
            old.close(Duration.ZERO);
        }
        out.put("read_committed", read(topic, 1, "read_committed"));
        return out;
    }

    private Map<String, Object> openTxn(String name, String topic, String txnId, int timeoutMs, int partitions, int n)
            throws Exception {
        KafkaProducer<String, String> p = producer(txnId, timeoutMs);
        open.put(name, p);
        p.initTransactions();
        p.beginTransaction();
        send(p, topic, partitions, name, n);
        return Map.of("open", true);
    }

    private Map<String, Object> endTxn(String name, boolean commit) {
        KafkaProducer<String, String> p = open.get(name);
        Map<String, Object> out = new LinkedHashMap<>();
        try {
            if (commit) {
                p.commitTransaction();
            } else {
                p.abortTransaction();
            }
            out.put("error", null);
        } catch (Exception e) {
            out.put("error", describe(e));
        }
        return out;
    }

    /** Every value per partition from the beginning up to the end offset as seen with `isolation`. */
    private Map<Integer, List<String>> read(String topic, int partitions, String isolation) {
        Map<Integer, List<String>> out = new LinkedHashMap<>();
        List<TopicPartition> tps = new ArrayList<>();
        for (int i = 0; i < partitions; i++) {
            tps.add(new TopicPartition(topic, i));
            out.put(i, new ArrayList<>());
        }
        try (KafkaConsumer<String, String> c = consumer(isolation, null, 500)) {
            c.assign(tps);
            c.seekToBeginning(tps);
            Map<TopicPartition, Long> end = c.endOffsets(tps, WAIT);
            long deadline = System.currentTimeMillis() + WAIT.toMillis();
            while (tps.stream().anyMatch(tp -> c.position(tp, WAIT) < end.get(tp))) {
                if (System.currentTimeMillis() > deadline) {
                    throw new IllegalStateException("timed out reading " + topic + " up to " + end);
                }
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    out.get(r.partition()).add(r.value());
                }
            }
        }
        return out;
    }

    // ---- copy ----

    /** Copies every record of IN to the same partition of OUT as "copied:" + value, PER_TXN records
     *  per transaction with the input offsets in the same transaction; pauses PAUSE_MS inside each
     *  transaction, after printing {"open": total} (so a kill can land mid-transaction). Prints
     *  {"committed": total} per transaction and exits once every assigned partition's position
     *  reaches its end offset. A transaction that fails with an abortable error (the server went
     *  away) is aborted and the input consumed again from the group's committed offsets. */
    private void copy(String input, String output, String group, String txnId, int perTxn, long pauseMs)
            throws Exception {
        try (KafkaConsumer<String, String> c = consumer("read_committed", group, perTxn);
             KafkaProducer<String, String> p = producer(txnId, 30000)) {
            p.initTransactions();
            c.subscribe(List.of(input));
            long total = 0;
            long deadline = System.currentTimeMillis() + 120_000;
            while (System.currentTimeMillis() < deadline) {
                ConsumerRecords<String, String> batch = c.poll(Duration.ofMillis(200));
                if (batch.isEmpty()) {
                    if (!c.assignment().isEmpty() && caughtUp(c)) {
                        System.out.println(JSON.writeValueAsString(Map.of("done", total)));
                        return;
                    }
                    continue;
                }
                try {
                    p.beginTransaction();
                    Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                    for (ConsumerRecord<String, String> r : batch) {
                        p.send(new ProducerRecord<>(output, r.partition(), r.key(), "copied:" + r.value()));
                        offsets.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
                    }
                    p.sendOffsetsToTransaction(offsets, c.groupMetadata());
                    p.flush();
                    System.out.println(JSON.writeValueAsString(Map.of("open", total + batch.count())));
                    System.out.flush();
                    Thread.sleep(pauseMs);
                    p.commitTransaction();
                } catch (ProducerFencedException | InvalidProducerEpochException | OutOfOrderSequenceException
                         | AuthorizationException e) {
                    throw e; // fatal: another copier took over, or the producer cannot go on
                } catch (KafkaException e) {
                    // abortable (e.g. the server went away mid-transaction): abort, then consume
                    // again from the committed offsets, as an exactly-once application does
                    System.err.println("aborting the transaction: " + e);
                    p.abortTransaction();
                    rewind(c);
                    System.out.println(JSON.writeValueAsString(Map.of("aborted", describe(e))));
                    System.out.flush();
                    continue;
                }
                total += batch.count();
                System.out.println(JSON.writeValueAsString(Map.of("committed", total)));
                System.out.flush();
            }
            throw new IllegalStateException("copy did not finish within 120 s");
        }
    }

    /** Every assigned partition back to the group's committed offset (the beginning if none). */
    private static void rewind(KafkaConsumer<String, String> c) {
        Map<TopicPartition, OffsetAndMetadata> committed = c.committed(c.assignment(), WAIT);
        for (TopicPartition tp : c.assignment()) {
            OffsetAndMetadata o = committed.get(tp);
            if (o != null) {
                c.seek(tp, o.offset());
            } else {
                c.seekToBeginning(List.of(tp));
            }
        }
    }

    private static boolean caughtUp(KafkaConsumer<String, String> c) {
        Map<TopicPartition, Long> end = c.endOffsets(c.assignment(), WAIT);
        return end.entrySet().stream().allMatch(e -> c.position(e.getKey(), WAIT) >= e.getValue());
    }
}
