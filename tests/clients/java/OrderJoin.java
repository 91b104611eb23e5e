// Kafka Streams joining orders with customers under the KIP-1071 Streams rebalance protocol
// (group.protocol=streams, at_least_once), for tests/e2e/test_e2e_streams_copartition.py.
//
//   OrderJoin BOOTSTRAP APPLICATION_ID ORDERS CUSTOMERS OUTPUT STATE_DIR MODE [INSTANCE_ID]
//
// ORDERS: key the order id, value "CUSTOMER:ITEM". CUSTOMERS: key the customer id, value the
// name, read as a KTable (store "customers", so its changelog is APPLICATION_ID-customers-changelog).
// MODE `rekey`: the orders are re-keyed by customer (selectKey), which puts a repartition topic
// in a copartition group with CUSTOMERS, then joined: OUTPUT gets key the customer id, value
// "ORDER:ITEM@NAME". MODE `direct`: the orders are joined as they are keyed, so ORDERS and
// CUSTOMERS themselves form the copartition group.
// With INSTANCE_ID the instance is a static member (group.instance.id) and its client.id is
// INSTANCE_ID. Prints {"state": ...} on every state change and {"error": ...} when a stream
// thread dies (the client then shuts down). Runs until killed; SIGTERM closes it (leaving the
// group as a static member leaves, when it is one).
import java.time.Duration;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.state.Stores;

public final class OrderJoin {
    public static void main(String[] args) throws Exception {
        if (args.length != 7 && args.length != 8) {
            System.err.println("usage: OrderJoin BOOTSTRAP APPLICATION_ID ORDERS CUSTOMERS OUTPUT STATE_DIR rekey|direct [INSTANCE_ID]");
            System.exit(2);
        }
        Properties p = new Properties();
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, args[1]);
        p.put(StreamsConfig.STATE_DIR_CONFIG, args[5]);
        p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 100);
        p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
        p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        p.put(StreamsConfig.GROUP_PROTOCOL_CONFIG, "streams");
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
        if (args.length == 8) {
            p.put(StreamsConfig.CLIENT_ID_CONFIG, args[7]);
            p.put(StreamsConfig.consumerPrefix(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG), args[7]);
        }

        StreamsBuilder b = new StreamsBuilder();
        KTable<String, String> customers = b.table(args[3], Consumed.with(Serdes.String(), Serdes.String()),
            Materialized.as(Stores.inMemoryKeyValueStore("customers")));
        KStream<String, String> orders = b.stream(args[2], Consumed.with(Serdes.String(), Serdes.String()))
            .mapValues((orderId, v) -> orderId + ":" + v);
        if (args[6].equals("rekey")) {
            // value "ORDER:CUSTOMER:ITEM" -> key CUSTOMER, value "ORDER:ITEM"
            orders = orders
                .selectKey((orderId, v) -> v.split(":")[1])
                .mapValues(v -> {
                    String[] f = v.split(":");
                    return f[0] + ":" + f[2];
                });
        } else if (!args[6].equals("direct")) {
            System.err.println("MODE must be rekey or direct");
            System.exit(2);
        }
        orders.join(customers, (order, name) -> order + "@" + name)
            .to(args[4], Produced.with(Serdes.String(), Serdes.String()));

        KafkaStreams streams = new KafkaStreams(b.build(), p);
        streams.setStateListener((now, before) -> {
            System.out.println("{\"state\": \"" + now + "\"}");
            System.out.flush();
        });
        streams.setUncaughtExceptionHandler(e -> {
            Throwable root = e;
            while (root.getCause() != null) {
                root = root.getCause();
            }
            String msg = (root.getClass().getSimpleName() + ": " + root.getMessage())
                .replace("\\", "\\\\").replace("\"", "\\\"");
            System.out.println("{\"error\": \"" + msg + "\"}");
            System.out.flush();
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        CountDownLatch stop = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close(Duration.ofSeconds(10));
            stop.countDown();
        }));
        streams.start();
        stop.await();
    }
}
