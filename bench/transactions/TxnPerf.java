// Transactional produce throughput with kafka-clients: N records of S random bytes in
// transactions of B records, record i to partition i % P (so every transaction writes to every
// partition, one commit marker each). Prints one JSON object:
//   records, transactions, elapsed_s, rec_per_s, mb_per_s, txn_per_s,
//   commit_p50_ms / commit_p99_ms (commitTransaction() alone) and txn_p50_ms / txn_p99_ms
//   (beginTransaction() to the end of commitTransaction()).
//
//   java -cp DIR:KAFKA_LIB/* TxnPerf BOOTSTRAP TOPIC PARTITIONS RECORDS SIZE PER_TXN TXN_ID
import java.util.Arrays;
import java.util.Properties;
import java.util.Random;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class TxnPerf {
    public static void main(String[] a) {
        if (a.length != 7) {
            System.err.println("usage: TxnPerf BOOTSTRAP TOPIC PARTITIONS RECORDS SIZE PER_TXN TXN_ID");
            System.exit(2);
        }
        String topic = a[1];
        int partitions = Integer.parseInt(a[2]);
        int records = Integer.parseInt(a[3]);
        int size = Integer.parseInt(a[4]);
        int perTxn = Integer.parseInt(a[5]);
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, a[0]);
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, a[6]);
        p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        byte[] payload = new byte[size];
        new Random(1).nextBytes(payload);
        int txns = (records + perTxn - 1) / perTxn;
        long[] commitNs = new long[txns];
        long[] txnNs = new long[txns];
        long t0;
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            producer.initTransactions();
            t0 = System.nanoTime();
            int sent = 0;
            for (int t = 0; t < txns; t++) {
                long begin = System.nanoTime();
                producer.beginTransaction();
                for (int i = 0; i < perTxn && sent < records; i++, sent++) {
                    producer.send(new ProducerRecord<>(topic, sent % partitions, null, payload));
                }
                long commit = System.nanoTime();
                producer.commitTransaction();
                long end = System.nanoTime();
                commitNs[t] = end - commit;
                txnNs[t] = end - begin;
            }
        }
        double elapsed = (System.nanoTime() - t0) / 1e9;
        Arrays.sort(commitNs);
        Arrays.sort(txnNs);
        System.out.printf(
            "{\"records\": %d, \"transactions\": %d, \"elapsed_s\": %.4f, \"rec_per_s\": %.1f, "
                + "\"mb_per_s\": %.3f, \"txn_per_s\": %.1f, \"commit_p50_ms\": %.3f, "
                + "\"commit_p99_ms\": %.3f, \"txn_p50_ms\": %.3f, \"txn_p99_ms\": %.3f}%n",
            records, txns, elapsed, records / elapsed, records * (double) size / elapsed / 1e6,
            txns / elapsed, pct(commitNs, 50), pct(commitNs, 99), pct(txnNs, 50), pct(txnNs, 99));
    }

    /** The q-th percentile of sorted nanoseconds, in milliseconds (nearest rank). */
    private static double pct(long[] sorted, double q) {
        int i = (int) Math.min(sorted.length - 1, Math.max(0, Math.round(q / 100 * sorted.length) - 1));
        return sorted[i] / 1e6;
    }
}
