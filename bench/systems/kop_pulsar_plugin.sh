#!/usr/bin/env bash
# StreamNative's KoP (Kafka-on-Pulsar protocol handler, a .nar) inside a Pulsar standalone
# broker of the version it was built for, from Maven Central jars. Used by bench/run.py (system
# "koP"); kept apart from scripts/pulsar.sh because KoP pins an older Pulsar than kop uses.
#
#   bench/systems/kop_pulsar_plugin.sh fetch                  resolve the NAR and the Pulsar jars
#   bench/systems/kop_pulsar_plugin.sh version                print the KoP version in use
#   bench/systems/kop_pulsar_plugin.sh start DATA_DIR [PORT]  Kafka listener on 127.0.0.1:PORT (9092)
#   bench/systems/kop_pulsar_plugin.sh stop DATA_DIR
#
# Environment:
#   KOP_VERSION      KoP release, x.y.z.m (default 4.0.6.5); it is built for Pulsar x.y.z
#   KOP_NAR          use this local .nar instead of resolving it from Maven Central
#   KOP_PULSAR_GROUP groupId of the Pulsar broker jars (default org.apache.pulsar)
#   KOP_PULSAR_VERSION  Pulsar version (default: x.y.z of KOP_VERSION)
#   KOP_ENTRY_FORMAT entryFormat (default kafka: stores Kafka batches as-is, KoP's fastest)
#   KOP_HEAP         JVM heap flags (default -Xmx1g -Xms256m, like scripts/kafka.sh)
#   KOP_START_TIMEOUT seconds to wait for the Kafka port (default 180)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KOP_VERSION="${KOP_VERSION:-4.0.6.5}"
PULSAR_GROUP="${KOP_PULSAR_GROUP:-org.apache.pulsar}"
PULSAR_VERSION="${KOP_PULSAR_VERSION:-$(echo "$KOP_VERSION" | cut -d. -f1-3)}"
CACHE="${KOP_CACHE:-$HOME/.cache/kop}/kop-plugin"
NAR_DIR="$CACHE/kop-$KOP_VERSION"
PULSAR_LIB="$CACHE/pulsar-$PULSAR_GROUP-$PULSAR_VERSION/lib"
JAVA="${JAVA:-java}"

die() { echo "kop_pulsar_plugin.sh: $*" >&2; exit 1; }

fetch_nar() {
  if [[ -n "${KOP_NAR:-}" ]]; then
    [[ -f "$KOP_NAR" ]] || die "KOP_NAR=$KOP_NAR does not exist"
    mkdir -p "$NAR_DIR"
    cp -f "$KOP_NAR" "$NAR_DIR/"
    return 0
  fi
  if compgen -G "$NAR_DIR/*.nar" >/dev/null; then
    return 0
  fi
  mkdir -p "$NAR_DIR"
  local gav="io.streamnative.pulsar.handlers:pulsar-protocol-handler-kafka:$KOP_VERSION:nar"
  local out
  if ! out="$(mvn -B -U -Dstyle.color=never dependency:copy -Dartifact="$gav" \
      -DoutputDirectory="$NAR_DIR" -Dmdep.useBaseVersion=true 2>&1)"; then
    echo "$out" | grep -E '^\[ERROR\]' | head -3 >&2
    die "cannot resolve the KoP NAR $gav from Maven Central (set KOP_NAR=/path/to/pulsar-protocol-handler-kafka-$KOP_VERSION.nar to use a local copy)"
  fi
}

fetch_pulsar() {
  if [[ -f "$PULSAR_LIB/.complete" ]]; then
    return 0
  fi
  local tmp="$PULSAR_LIB.tmp.$$" out
  rm -rf "$tmp"
  mkdir -p "$(dirname "$PULSAR_LIB")"
  if ! out="$(mvn -B -Dstyle.color=never -f "$HERE/kop-plugin/pom.xml" \
      -Dpulsar.groupId="$PULSAR_GROUP" -Dpulsar.version="$PULSAR_VERSION" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" 2>&1)"; then
    rm -rf "$tmp"
    echo "$out" | grep -E '^\[ERROR\]' | head -3 >&2
    die "cannot resolve $PULSAR_GROUP:pulsar-broker:$PULSAR_VERSION from Maven Central"
  fi
  touch "$tmp/.complete"
  rm -rf "$PULSAR_LIB"
  mv "$tmp" "$PULSAR_LIB"
}

cmd_fetch() {
  command -v mvn >/dev/null || die "mvn not found"
  fetch_nar
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
  cmd_fetch
  mkdir -p "$data"
  data="$(cd "$data" && pwd)"
  port_open "$port" && die "port 127.0.0.1:$port is already in use"
  local bport wport
  bport="$(free_port_from $((port + 1)))"
  wport="$(free_port_from $((bport + 1)))"
  mkdir -p "$data/handlers"
  cp -f "$NAR_DIR"/*.nar "$data/handlers/"
  local conf="$data/standalone.conf"
  cat >"$conf" <<EOF
# written by bench/systems/kop_pulsar_plugin.sh (KoP $KOP_VERSION on $PULSAR_GROUP $PULSAR_VERSION)
clusterName=standalone
bindAddress=127.0.0.1
advertisedAddress=127.0.0.1
brokerServicePort=$bport
webServicePort=$wport
managedLedgerDefaultEnsembleSize=1
managedLedgerDefaultWriteQuorum=1
managedLedgerDefaultAckQuorum=1
functionsWorkerEnabled=false
webSocketServiceEnabled=false
# --- KoP, as its README and docs/configuration.md describe it
messagingProtocols=kafka
protocolHandlerDirectory=$data/handlers
narExtractionDirectory=$data/nar
kafkaListeners=PLAINTEXT://127.0.0.1:$port
kafkaAdvertisedListeners=PLAINTEXT://127.0.0.1:$port
brokerEntryMetadataInterceptors=org.apache.pulsar.common.intercept.AppendIndexMetadataInterceptor
entryFormat=${KOP_ENTRY_FORMAT:-kafka}
allowAutoTopicCreationType=partitioned
allowAutoTopicCreation=true
defaultNumPartitions=1
brokerDeleteInactiveTopicsEnabled=false
# Kafka clients >= 3.2 enable idempotence by default; KoP needs both of these for it
kafkaTransactionCoordinatorEnabled=true
brokerDeduplicationEnabled=true
groupInitialRebalanceDelayMs=0
EOF
  local log="$data/pulsar.log"
  # shellcheck disable=SC2086
  nohup "$JAVA" ${KOP_HEAP:--Xmx1g -Xms256m} -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Dlog4j2.configurationFile="$HERE/kop-plugin/log4j2.xml" \
    -Dpulsar.allocator.exit_on_oom=true -Dio.netty.tryReflectionSetAccessible=true \
    --add-opens java.base/java.nio=ALL-UNNAMED --add-opens java.base/jdk.internal.misc=ALL-UNNAMED \
    --add-opens java.base/java.lang=ALL-UNNAMED --add-opens java.base/sun.nio.ch=ALL-UNNAMED \
    -cp "$PULSAR_LIB/*" org.apache.pulsar.PulsarStandaloneStarter \
    --config "$conf" --no-functions-worker --no-stream-storage \
    --bookkeeper-dir "$data/bookkeeper" --metadata-dir "$data/metadata" \
    </dev/null >"$log" 2>&1 &
  local pid=$!
  echo "$pid" >"$data/pulsar.pid"
  local deadline=$((SECONDS + ${KOP_START_TIMEOUT:-180}))
  until port_open "$port"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 30 "$log" >&2
      rm -f "$data/pulsar.pid"
      die "Pulsar standalone with KoP exited during start-up (log: $log)"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 30 "$log" >&2
      kill -KILL "$pid" 2>/dev/null || true
      rm -f "$data/pulsar.pid"
      die "KoP's Kafka port $port did not open within ${KOP_START_TIMEOUT:-180}s"
    fi
    sleep 0.2
  done
  echo "kop_pulsar_plugin.sh: KoP $KOP_VERSION on 127.0.0.1:$port (Pulsar pid $pid, log $log)" >&2
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

[[ $# -ge 1 ]] || { sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
sub="$1"
shift
case "$sub" in
  fetch) cmd_fetch ;;
  version) echo "$KOP_VERSION (Pulsar $PULSAR_GROUP:$PULSAR_VERSION)" ;;
  start) cmd_start "$@" ;;
  stop) cmd_stop "$@" ;;
  *) die "unknown command '$sub' (fetch, version, start, stop)" ;;
esac
