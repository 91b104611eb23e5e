#!/usr/bin/env bash
# StreamNative's KoP (Kafka-on-Pulsar protocol handler, a .nar, archived in 2024) inside the
# io.streamnative Pulsar standalone it was built for, from Maven Central jars. Used by
# bench/run.py (system "koP"); kept apart from scripts/pulsar.sh because KoP pins an older Pulsar.
# The recipe (build from source, BOM import, NIC speed, idempotence settings) is the one of the
# team's kop-reference tool; the NAR and jars are cached where that tool caches them, so either
# one builds them for both.
#
#   bench/systems/kop_pulsar_plugin.sh fetch                  build the NAR (once), fetch the jars
#   bench/systems/kop_pulsar_plugin.sh version                print the KoP version in use
#   bench/systems/kop_pulsar_plugin.sh start DATA_DIR [PORT]  Kafka listener on 127.0.0.1:PORT (9092)
#   bench/systems/kop_pulsar_plugin.sh stop DATA_DIR
#
# Environment:
#   KOP_GIT          a clone or bare mirror of github.com/streamnative/kop: the NAR is built
#                    from its tag v$KOP_VERSION (Maven Central does not serve KoP's NARs)
#   KOP_NAR          or: use this local .nar
#   KOP_VERSION      KoP release (default 3.1.1.1), run in io.streamnative:pulsar-broker:$KOP_VERSION
#   KOPREF           cache (default ~/.cache/kop-reference): protocols/*.nar, pulsar-VERSION/lib
#   KOP_ENTRY_FORMAT entryFormat (default kafka: stores Kafka batches as-is, KoP's fast mode)
#   KOP_HEAP         JVM memory flags (default -Xms256m -Xmx1g -XX:MaxDirectMemorySize=512m)
#   KOP_START_TIMEOUT seconds to wait for the Kafka port and Pulsar's health check (default 300)
#
# Kafka Java clients >= 3.9 cannot connect to KoP 3.1.1.1 (ApiVersions v4+ makes it close the
# connection): drive it with librdkafka or the Kafka 3.8.x Java tools.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KOP_VERSION="${KOP_VERSION:-3.1.1.1}"
KOPREF="${KOPREF:-$HOME/.cache/kop-reference}"
NAR="$KOPREF/protocols/pulsar-protocol-handler-kafka-$KOP_VERSION.nar"
PULSAR_LIB="$KOPREF/pulsar-$KOP_VERSION/lib"
SRC="$KOPREF/src"
JAVA="${JAVA:-java}"

die() { echo "kop_pulsar_plugin.sh: $*" >&2; exit 1; }
say() { echo "kop_pulsar_plugin.sh: $*" >&2; }

write_settings() {
  # KoP's and Pulsar's poms list repositories that are unreachable here: every repository is
  # sent to the central repository Maven itself is configured with (read from its super-POM).
  local central mhome
  mhome="$(mvn -v 2>/dev/null | sed -n 's/^Maven home: //p')"
  central="$(unzip -p "$mhome"/lib/maven-model-builder-*.jar org/apache/maven/model/pom-4.0.0.xml \
    | sed -n 's|.*<url>\(https\{0,1\}://[^<]*\)</url>.*|\1|p' | head -n1)"
  [[ -n "$central" ]] || die "could not read the central repository URL from Maven's super-POM"
  mkdir -p "$KOPREF"
  cat >"$KOPREF/settings.xml" <<EOF
<settings>
  <mirrors>
    <mirror><id>central-only</id><mirrorOf>*</mirrorOf><url>$central</url></mirror>
  </mirrors>
</settings>
EOF
}

build_nar() {
  if [[ -n "${KOP_NAR:-}" ]]; then
    [[ -f "$KOP_NAR" ]] || die "KOP_NAR=$KOP_NAR does not exist"
    mkdir -p "$(dirname "$NAR")"
    cp -f "$KOP_NAR" "$NAR"
    return 0
  fi
  [[ -f "$NAR" ]] && return 0
  if [[ ! -d "$SRC/.git" ]]; then
    [[ -n "${KOP_GIT:-}" ]] || die "no KoP NAR in $NAR: set KOP_GIT to a clone or bare mirror of" \
      "streamnative/kop to build it (Maven Central does not serve it), or KOP_NAR to a .nar"
    # a real checkout: git-commit-id-plugin fails the build without a .git directory
    git clone -q --no-checkout "$KOP_GIT" "$SRC"
  fi
  git -C "$SRC" -c advice.detachedHead=false checkout -q -f "v$KOP_VERSION"
  # The one dependency not on Maven Central: apicurio's JSON schema module needs
  # com.github.everit-org.json-schema:org.everit.json.schema (a JitPack coordinate); the same
  # library is on Central as com.github.erosb:everit-json-schema.
  python3 - "$SRC/schema-registry/pom.xml" <<'EOF'
import sys
path = sys.argv[1]
text = open(path).read()
if "com.github.erosb" not in text:
    old = """      <artifactId>apicurio-registry-schema-compatibility-json</artifactId>
      <version>${apicurio.version}</version>
    </dependency>"""
    new = """      <artifactId>apicurio-registry-schema-compatibility-json</artifactId>
      <version>${apicurio.version}</version>
      <exclusions>
        <exclusion>
          <groupId>com.github.everit-org.json-schema</groupId>
          <artifactId>org.everit.json.schema</artifactId>
        </exclusion>
      </exclusions>
    </dependency>
    <dependency>
      <groupId>com.github.erosb</groupId>
      <artifactId>everit-json-schema</artifactId>
      <version>1.14.0</version>
    </dependency>"""
    if text.count(old) != 1:
        sys.exit("schema-registry/pom.xml is not as expected; patch it by hand")
    open(path, "w").write(text.replace(old, new))
EOF
  say "building KoP v$KOP_VERSION (kafka-impl and what it needs; ~5 min cold)"
  (cd "$SRC" && nice -n 15 mvn -B -q -s "$KOPREF/settings.xml" \
    -DskipTests -Dmaven.test.skip=true -Dcheckstyle.skip=true -Dspotbugs.skip=true \
    -Dlicense.skip=true -Dmaven.javadoc.skip=true -pl kafka-impl -am package)
  mkdir -p "$(dirname "$NAR")"
  cp -f "$SRC"/kafka-impl/target/pulsar-protocol-handler-kafka-"$KOP_VERSION".nar "$NAR"
}

fetch_pulsar() {
  [[ -f "$PULSAR_LIB/.complete" ]] && return 0
  local tmp="$PULSAR_LIB.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$(dirname "$PULSAR_LIB")"
  say "downloading io.streamnative:pulsar-broker:$KOP_VERSION and its runtime dependencies"
  if ! nice -n 15 mvn -B -q -s "$KOPREF/settings.xml" -f "$HERE/kop-plugin/pom.xml" \
      -Dpulsar.version="$KOP_VERSION" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" >&2; then
    rm -rf "$tmp"
    die "cannot resolve io.streamnative:pulsar-broker:$KOP_VERSION from Maven Central"
  fi
  touch "$tmp/.complete"
  rm -rf "$PULSAR_LIB"
  mv "$tmp" "$PULSAR_LIB"
}

cmd_fetch() {
  command -v mvn >/dev/null || die "mvn not found"
  write_settings
  build_nar
  fetch_pulsar
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port_from() {
  local p="$1"
  while port_open "$p"; do p=$((p + 1)); done
  echo "$p"
}

cmd_start() {
  [[ $# -ge 1 ]] || die "usage: start DATA_DIR [PORT]"
  local data="$1" port="${2:-9092}"
  [[ -f "$NAR" && -f "$PULSAR_LIB/.complete" ]] || cmd_fetch
  mkdir -p "$data"
  data="$(cd "$data" && pwd)"
  port_open "$port" && die "port 127.0.0.1:$port is already in use"
  local bport wport
  bport="$(free_port_from $((port + 1)))"
  wport="$(free_port_from $((bport + 1)))"
  local conf="$data/standalone.conf"
  cat >"$conf" <<EOF
# written by bench/systems/kop_pulsar_plugin.sh (KoP $KOP_VERSION on io.streamnative Pulsar)
clusterName=standalone
bindAddress=127.0.0.1
advertisedAddress=127.0.0.1
brokerServicePort=$bport
webServicePort=$wport
managedLedgerDefaultEnsembleSize=1
managedLedgerDefaultWriteQuorum=1
managedLedgerDefaultAckQuorum=1
dbStorage_writeCacheMaxSizeMb=32
dbStorage_readAheadCacheMaxSizeMb=32
dbStorage_rocksDB_blockCacheSize=16777216
defaultRetentionTimeInMinutes=-1
defaultRetentionSizeInMB=-1
functionsWorkerEnabled=false
transactionCoordinatorEnabled=false
webSocketServiceEnabled=false
# Pulsar 3.1 exits at start on a VM whose NIC speed it cannot read
loadBalancerOverrideBrokerNicSpeedGbps=10
# --- KoP, as its README and docs/configuration.md describe it
messagingProtocols=kafka
protocolHandlerDirectory=$(dirname "$NAR")
narExtractionDirectory=$data/nar
kafkaListeners=PLAINTEXT://127.0.0.1:$port
kafkaAdvertisedListeners=PLAINTEXT://127.0.0.1:$port
brokerEntryMetadataInterceptors=org.apache.pulsar.common.intercept.AppendIndexMetadataInterceptor
entryFormat=${KOP_ENTRY_FORMAT:-kafka}
allowAutoTopicCreationType=partitioned
allowAutoTopicCreation=true
brokerDeleteInactiveTopicsEnabled=false
# Kafka clients >= 3.0 are idempotent by default: without these two, InitProducerId makes KoP
# close the connection and the producer retries forever
kafkaTransactionCoordinatorEnabled=true
brokerDeduplicationEnabled=true
groupInitialRebalanceDelayMs=0
EOF
  local log="$data/pulsar.log"
  # shellcheck disable=SC2086
  (
    cd "$data"
    exec setsid "$JAVA" ${KOP_HEAP:--Xms256m -Xmx1g -XX:MaxDirectMemorySize=512m} \
      -XX:+ExitOnOutOfMemoryError -Dlog4j2.configurationFile="$HERE/kop-plugin/log4j2.xml" \
      -Dio.netty.tryReflectionSetAccessible=true -Dpulsar.allocator.exit_on_oom=true \
      --add-opens java.base/java.io=ALL-UNNAMED --add-opens java.base/java.util.zip=ALL-UNNAMED \
      --add-opens java.base/sun.net=ALL-UNNAMED \
      --add-opens java.management/sun.management=ALL-UNNAMED \
      --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED \
      --add-opens java.base/jdk.internal.platform=ALL-UNNAMED \
      -cp "$PULSAR_LIB/*" org.apache.pulsar.PulsarStandaloneStarter \
      --config "$conf" -nfw -nss -a 127.0.0.1 \
      --metadata-dir "$data/metadata" --bookkeeper-dir "$data/bookkeeper" \
      </dev/null >"$log" 2>&1
  ) &
  local pid=$!
  echo "$pid" >"$data/pulsar.pid"
  local deadline=$((SECONDS + ${KOP_START_TIMEOUT:-300}))
  until port_open "$port" &&
    [[ "$(curl -sf --max-time 20 "http://127.0.0.1:$wport/admin/v2/brokers/health" 2>/dev/null)" == ok ]]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 30 "$log" >&2
      rm -f "$data/pulsar.pid"
      die "Pulsar standalone with KoP exited during start-up (log: $log)"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 30 "$log" >&2
      kill -KILL "$pid" 2>/dev/null || true
      rm -f "$data/pulsar.pid"
      die "KoP was not ready within ${KOP_START_TIMEOUT:-300}s (log: $log)"
    fi
    sleep 0.2
  done
  say "KoP $KOP_VERSION on 127.0.0.1:$port (Pulsar pid $pid, log $log)"
}

cmd_stop() {
  [[ $# -ge 1 ]] || die "usage: stop DATA_DIR"
  local f="$1/pulsar.pid" pid i=0
  [[ -f "$f" ]] || return 0
  pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do
      if ((i >= 300)); then
        kill -KILL "$pid" 2>/dev/null || true
        break
      fi
      sleep 0.1
      i=$((i + 1))
    done
  fi
  rm -f "$f"
}

[[ $# -ge 1 ]] || { sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
sub="$1"
shift
case "$sub" in
  fetch) cmd_fetch ;;
  version) echo "$KOP_VERSION (Pulsar io.streamnative:$KOP_VERSION)" ;;
  start) cmd_start "$@" ;;
  stop) cmd_stop "$@" ;;
  *) die "unknown command '$sub' (fetch, version, start, stop)" ;;
esac
