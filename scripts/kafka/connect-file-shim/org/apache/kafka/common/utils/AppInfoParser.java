package org.apache.kafka.common.utils;

/**
 * Kafka 4.4 moved AppInfoParser to org.apache.kafka.common.utils.internals; the FileStream
 * connectors of connect-file 4.3.1 (the last on Maven Central) still call the old class for
 * their version. This forwards that one call, so they load under the 4.4 Connect runtime.
 */
public final class AppInfoParser {
    private AppInfoParser() {}

    public static String getVersion() {
        return org.apache.kafka.common.utils.internals.AppInfoParser.getVersion();
    }
}
