// A Pulsar Function run by Pulsar's own functions runtime (the test standalone's functions
// worker, thread runtime): it uppercases the value of every Kafka record that kop stored as a
// Pulsar message (pulsar_entry_format = "pulsar") and writes it to the function's output topic
// with the record's key, event time and headers (its properties without kop's own "kop.*").
//
// Compiled at test time against pulsar-functions-api from the standalone's Maven Central jars:
//   javac -cp "$(scripts/pulsar.sh lib)/*" -d OUT tests/pulsar/java/UppercaseFunction.java
// and submitted as a jar by tests/pulsar/test_pulsar_functions.py.

import java.nio.charset.StandardCharsets;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import org.apache.pulsar.client.api.Schema;
import org.apache.pulsar.client.api.TypedMessageBuilder;
import org.apache.pulsar.functions.api.Context;
import org.apache.pulsar.functions.api.Function;
import org.apache.pulsar.functions.api.Record;

public class UppercaseFunction implements Function<byte[], Void> {
    @Override
    public Void process(byte[] value, Context context) throws Exception {
        Record<?> record = context.getCurrentRecord();
        Map<String, String> props = record.getProperties();
        String type = props.get("kop.type");
        // kop's epoch markers carry no record; a "batch" without "kop.format" is an opaque
        // Kafka batch (transactional), which a Pulsar application cannot read record by record.
        if ("marker".equals(type) || ("batch".equals(type) && !props.containsKey("kop.format"))) {
            return null;
        }
        Map<String, String> headers = new TreeMap<>();
        for (Map.Entry<String, String> e : props.entrySet()) {
            if (!e.getKey().startsWith("kop.")) {
                headers.put(e.getKey(), e.getValue());
            }
        }
        String upper = new String(value, StandardCharsets.UTF_8).toUpperCase(Locale.ROOT);
        TypedMessageBuilder<byte[]> out = context
                .newOutputMessage(context.getOutputTopic(), Schema.BYTES)
                .value(upper.getBytes(StandardCharsets.UTF_8))
                .properties(headers);
        record.getKey().ifPresent(out::key);
        record.getEventTime().ifPresent(out::eventTime);
        // Sent before the input is acknowledged (returning null acknowledges it).
        out.send();
        return null;
    }
}
