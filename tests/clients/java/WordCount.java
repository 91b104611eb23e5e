// Kafka Streams word count with processing.guarantee=exactly_once_v2, for
// tests/e2e/test_e2e_transactions_streams.py; with a sixth argument `streams`, at_least_once
// under the KIP-1071 Streams rebalance protocol (group.protocol=streams), for
// tests/e2e/test_e2e_streams_groups.py. With a seventh argument HOST:PORT, that is the
// instance's application.server (Interactive Queries), and it prints what it knows of every
// instance whenever that changes: {"iq": {"host:port": {"active": ["topic-p", ...],
// "standby": [...]}}, "w00": "host:port"} (the last: queryMetadataForKey's active host of
// the word w00 in the store).
//
//   WordCount BOOTSTRAP APPLICATION_ID INPUT OUTPUT STATE_DIR [streams [HOST:PORT]]
//
// Lines of INPUT are split on spaces; every word's running count goes to OUTPUT (key: the word,
// value: the count as a decimal string), one update per input word (no record cache), so a
// read_committed reader of OUTPUT sees exactly 1, 2, ... n per word. Runs until killed; prints
// {"state": ...} on every state change.
import java.time.Duration;
import java.util.Arrays;
import java.util.Properties;
import java.util.TreeMap;
import java.util.TreeSet;
import org.apache.kafka.common.TopicPartition;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyQueryMetadata;
import org.apache.kafka.streams.StreamsMetadata;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.state.Stores;

public final class WordCount {
    public static void main(String[] args) throws Exception {
        boolean streamsProtocol = (args.length == 6 || args.length == 7) && args[5].equals("streams");
        String applicationServer = args.length == 7 ? args[6] : null;
        if (args.length != 5 && !streamsProtocol) {
            System.err.println("usage: WordCount BOOTSTRAP APPLICATION_ID INPUT OUTPUT STATE_DIR [streams [HOST:PORT]]");
            System.exit(2);
        }
        Properties p = new Properties();
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, args[1]);
        p.put(StreamsConfig.STATE_DIR_CONFIG, args[4]);
        p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 100);
        p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
        if (streamsProtocol) {
            // session and heartbeat timing are the group coordinator's under this protocol
            p.put(StreamsConfig.GROUP_PROTOCOL_CONFIG, "streams");
            p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
            if (applicationServer != null) {
                p.put(StreamsConfig.APPLICATION_SERVER_CONFIG, applicationServer);
            }
        } else {
            p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
            // the server is killed mid-run: fail over quickly instead of after 45 s / 5 min
            p.put(StreamsConfig.consumerPrefix("session.timeout.ms"), 6000);
            p.put(StreamsConfig.consumerPrefix("heartbeat.interval.ms"), 1000);
            p.put(StreamsConfig.producerPrefix("transaction.timeout.ms"), 10000);
        }

        StreamsBuilder b = new StreamsBuilder();
        b.stream(args[2], Consumed.with(Serdes.String(), Serdes.String()))
            .flatMapValues(line -> Arrays.asList(line.split(" ")))
            .groupBy((key, word) -> word, Grouped.with(Serdes.String(), Serdes.String()))
            .count(Materialized.as(Stores.inMemoryKeyValueStore("counts")))
            .toStream()
            .mapValues(count -> Long.toString(count))
            .to(args[3], Produced.with(Serdes.String(), Serdes.String()));

        KafkaStreams streams = new KafkaStreams(b.build(), p);
        streams.setStateListener((now, before) -> {
            System.out.println("{\"state\": \"" + now + "\"}");
            System.out.flush();
        });
        // a thread that dies of the server going away is replaced, as a long-running app would do
        streams.setUncaughtExceptionHandler(e -> {
            System.err.println("stream thread failed: " + e);
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.REPLACE_THREAD;
        });
        CountDownLatch stop = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close(Duration.ofSeconds(10));
            stop.countDown();
        }));
        streams.start();
        if (applicationServer != null) {
            Thread iq = new Thread(() -> printQueryMetadata(streams));
            iq.setDaemon(true);
            iq.start();
        }
        stop.await();
    }

    private static String partitions(java.util.Set<TopicPartition> tps) {
        TreeSet<String> names = new TreeSet<>();
        for (TopicPartition tp : tps) {
            names.add("\"" + tp.topic() + "-" + tp.partition() + "\"");
        }
        return "[" + String.join(", ", names) + "]";
    }

    /** Prints the IQ metadata of every instance, and w00's host, whenever they change. */
    private static void printQueryMetadata(KafkaStreams streams) {
        String last = "";
        while (true) {
            try {
                Thread.sleep(200);
                if (streams.state() != KafkaStreams.State.RUNNING) {
                    continue;
                }
                TreeMap<String, String> hosts = new TreeMap<>();
                for (StreamsMetadata m : streams.metadataForAllStreamsClients()) {
                    hosts.put(m.hostInfo().host() + ":" + m.hostInfo().port(),
                        "{\"active\": " + partitions(m.topicPartitions())
                            + ", \"standby\": " + partitions(m.standbyTopicPartitions()) + "}");
                }
                KeyQueryMetadata key = streams.queryMetadataForKey(
                    "counts", "w00", Serdes.String().serializer());
                StringBuilder out = new StringBuilder("{\"iq\": {");
                String sep = "";
                for (var e : hosts.entrySet()) {
                    out.append(sep).append('"').append(e.getKey()).append("\": ").append(e.getValue());
                    sep = ", ";
                }
                out.append("}, \"w00\": \"").append(key.activeHost().host()).append(':')
                    .append(key.activeHost().port()).append("\"}");
                String now = out.toString();
                if (!now.equals(last)) {
                    System.out.println(now);
                    System.out.flush();
                    last = now;
                }
            } catch (InterruptedException e) {
                return;
            } catch (RuntimeException e) {
                // not yet queryable (rebalancing): try again
            }
        }
    }
}
