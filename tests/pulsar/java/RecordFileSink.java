// A Pulsar IO sink run by Pulsar's own functions worker (the test standalone's, thread runtime):
// it writes every message it is given, one JSON line each, to the file its config names
// ({"path": ...}): topic, key, value (base64), properties and event time, exactly as Pulsar
// hands them to a sink. For tests/pulsar/test_pulsar_io_sink.py, which reads the Kafka records
// kop stored as Pulsar messages (pulsar_entry_format = "pulsar") back from that file.
//
// A generic sink: it does not know kop. Everything kop wrote reaches it, kop's epoch markers
// (property kop.type=marker) and kop's own kop.* properties included; the test (like any
// Pulsar application, docs/pulsar-native-records.md) sets those aside.
//
// Compiled at test time against pulsar-io-core and pulsar-functions-api from the standalone's
// Maven Central jars:
//   javac -cp "$(scripts/pulsar.sh lib)/*" -d OUT tests/pulsar/java/RecordFileSink.java
// and submitted as a jar (what `pulsar-admin sinks create --archive X.jar --classname
// RecordFileSink` sends).

import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.nio.file.StandardOpenOption;
import java.util.Base64;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import org.apache.pulsar.functions.api.Record;
import org.apache.pulsar.io.core.Sink;
import org.apache.pulsar.io.core.SinkContext;

public class RecordFileSink implements Sink<byte[]> {
    private Writer out;

    @Override
    public void open(Map<String, Object> config, SinkContext context) throws Exception {
        Object path = config.get("path");
        if (path == null) {
            throw new IllegalArgumentException("RecordFileSink needs the config \"path\"");
        }
        out = Files.newBufferedWriter(Paths.get(path.toString()), StandardCharsets.UTF_8,
                StandardOpenOption.CREATE, StandardOpenOption.APPEND);
    }

    @Override
    public void write(Record<byte[]> record) throws Exception {
        StringBuilder line = new StringBuilder("{\"topic\":");
        string(line, record.getTopicName());
        line.append(",\"key\":");
        string(line, record.getKey());
        line.append(",\"value\":");
        byte[] value = record.getValue();
        string(line, Optional.ofNullable(value).map(v -> Base64.getEncoder().encodeToString(v)));
        line.append(",\"event_time\":");
        line.append(record.getEventTime().map(String::valueOf).orElse("null"));
        line.append(",\"properties\":{");
        boolean first = true;
        for (Map.Entry<String, String> e : new TreeMap<>(record.getProperties()).entrySet()) {
            if (!first) {
                line.append(',');
            }
            first = false;
            string(line, Optional.of(e.getKey()));
            line.append(':');
            string(line, Optional.ofNullable(e.getValue()));
        }
        line.append("}}\n");
        synchronized (this) {
            out.write(line.toString());
            out.flush();
        }
        // Written (and flushed) before the message is acknowledged: at least once.
        record.ack();
    }

    @Override
    public void close() throws Exception {
        if (out != null) {
            out.close();
        }
    }

    /** A JSON string, or null. */
    private static void string(StringBuilder sb, Optional<String> s) {
        if (s.isEmpty()) {
            sb.append("null");
            return;
        }
        sb.append('"');
        for (char c : s.get().toCharArray()) {
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                default -> {
                    if (c < 0x20) {
                        sb.append(String.format("\\u%04x", (int) c));
                    } else {
                        sb.append(c);
                    }
                }
            }
        }
        sb.append('"');
    }
}
