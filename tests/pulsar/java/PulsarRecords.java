// A plain Java Pulsar consumer (Pulsar's own client, from the standalone's Maven Central jars)
// reading the first N messages of a topic that are not kop's markers, one JSON line each:
// {"key":..., "value":..., "eventTime":..., "properties":{...}}.
//
//   java -cp "$(scripts/pulsar.sh lib)/*" tests/pulsar/java/PulsarRecords.java URL TOPIC N
//
// Launched as a single source file (no build step); used by tests/pulsar/test_pulsar_native_records.py.

import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import org.apache.pulsar.client.api.Consumer;
import org.apache.pulsar.client.api.Message;
import org.apache.pulsar.client.api.PulsarClient;
import org.apache.pulsar.client.api.SubscriptionInitialPosition;

public class PulsarRecords {
    public static void main(String[] args) throws Exception {
        String url = args[0], topic = args[1];
        int wanted = Integer.parseInt(args[2]);
        try (PulsarClient client = PulsarClient.builder().serviceUrl(url).build();
                Consumer<byte[]> consumer = client.newConsumer()
                        .topic(topic)
                        .subscriptionName("java-records")
                        .subscriptionInitialPosition(SubscriptionInitialPosition.Earliest)
                        .subscribe()) {
            int seen = 0;
            while (seen < wanted) {
                Message<byte[]> msg = consumer.receive(20, TimeUnit.SECONDS);
                if (msg == null) {
                    System.err.println("timed out after " + seen + " messages");
                    System.exit(1);
                }
                consumer.acknowledge(msg);
                if ("marker".equals(msg.getProperty("kop.type"))) {
                    continue; // kop's epoch marker: no record
                }
                seen++;
                StringBuilder line = new StringBuilder("{\"key\":").append(quote(msg.getKey()));
                line.append(",\"value\":")
                        .append(quote(new String(msg.getValue(), StandardCharsets.UTF_8)));
                line.append(",\"eventTime\":").append(msg.getEventTime());
                line.append(",\"properties\":{");
                boolean first = true;
                for (Map.Entry<String, String> e : new TreeMap<>(msg.getProperties()).entrySet()) {
                    line.append(first ? "" : ",").append(quote(e.getKey())).append(':')
                            .append(quote(e.getValue()));
                    first = false;
                }
                System.out.println(line.append("}}"));
            }
        }
    }

    private static String quote(String s) {
        if (s == null) {
            return "null";
        }
        StringBuilder out = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') {
                out.append('\\').append(c);
            } else if (c < 0x20 || c > 0x7e) {
                out.append(String.format("\\u%04x", (int) c));
            } else {
                out.append(c);
            }
        }
        return out.append('"').toString();
    }
}
