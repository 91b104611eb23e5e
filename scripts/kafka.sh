#!/usr/bin/env bash
# The reference Apache Kafka 4.x broker (KRaft, single node) and the Kafka Java tools,
# from Maven Central jars. See scripts/kafka/README.md for the interface.
#
#   scripts/kafka.sh fetch                      resolve the jars into the cache (idempotent)
#   scripts/kafka.sh classpath                  print the classpath ("DIR/lib/*")
#   scripts/kafka.sh fetch-streams              also resolve the Kafka Streams jar (DIR/streams)
#   scripts/kafka.sh streams-classpath          print the classpath with Kafka Streams on it
#   scripts/kafka.sh fetch-connect-file         also resolve the FileStream connectors; prints a Kafka
#                                               Connect plugin.path (DIR/connect-plugins; bench/connect_run.py)
#   scripts/kafka.sh version                    print the Kafka version used
#   scripts/kafka.sh start DATA_DIR [PORT]      start a broker on 127.0.0.1:PORT (default 9092)
#   scripts/kafka.sh stop DATA_DIR              stop it (SIGTERM, then SIGKILL after a timeout)
#   scripts/kafka.sh status DATA_DIR            exit 0 if the broker of DATA_DIR is running
#   scripts/kafka.sh run-class CLASS [ARGS...]  run a Java main class with the jars on the classpath
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
CACHE="${KOP_CACHE:-$HOME/.cache/kop}"
KDIR="$CACHE/kafka-$KAFKA_VERSION"
JAVA="${JAVA:-java}"

die() { echo "kafka.sh: $*" >&2; exit 1; }

cmd_fetch() {
  if [[ -f "$KDIR/lib/.complete" ]]; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (needed once to fetch the Kafka jars)"
  mkdir -p "$KDIR"
  local tmp="$KDIR/lib.tmp.$$"
  rm -rf "$tmp"
  echo "kafka.sh: fetching Apache Kafka $KAFKA_VERSION jars into $KDIR/lib" >&2
  if ! mvn -q -B -Dstyle.color=never -f "$HERE/kafka/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" >&2; then
    rm -rf "$tmp"
    die "mvn could not resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION"
  fi
  touch "$tmp/.complete"
  rm -rf "$KDIR/lib"
  mv "$tmp" "$KDIR/lib"
}

cmd_classpath() {
  cmd_fetch
  echo "$KDIR/lib/*"
}

# Kafka Streams is not in lib/ (the broker and tools do not need it): a directory of its own, so a
# cache fetched before it was needed stays valid.
cmd_fetch_streams() {
  cmd_fetch
  if [[ -f "$KDIR/streams/.complete" ]]; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (needed once to fetch the Kafka Streams jar)"
  local tmp="$KDIR/streams.tmp.$$"
  rm -rf "$tmp"
  echo "kafka.sh: fetching Kafka Streams $KAFKA_VERSION into $KDIR/streams" >&2
  if ! mvn -q -B -Dstyle.color=never -f "$HERE/kafka/streams-pom.xml" -Dkafka.version="$KAFKA_VERSION" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" >&2; then
    rm -rf "$tmp"
    die "mvn could not resolve org.apache.kafka:kafka-streams:$KAFKA_VERSION"
  fi
  touch "$tmp/.complete"
  rm -rf "$KDIR/streams"
  mv "$tmp" "$KDIR/streams"
}

# The FileStream source/sink connectors, as a Kafka Connect plugin: DIR/connect-plugins is a
# worker's plugin.path, DIR/connect-plugins/filestream the plugin (the Connect runtime itself
# is in lib/). Maven Central has no connect-file 4.4.0, so 4.3.1 is used with a one-class shim
# (scripts/kafka/connect-file-shim) for the AppInfoParser that 4.4 moved. Prints the path.
cmd_fetch_connect_file() {
  cmd_fetch
  local plugins="$KDIR/connect-plugins"
  if [[ -f "$plugins/filestream/.complete" ]]; then
    echo "$plugins"
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (needed once to fetch the connect-file jar)"
  command -v javac >/dev/null || die "javac not found (needed once to build the connect-file shim)"
  local tmp="$plugins/filestream.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp/classes"
  echo "kafka.sh: fetching connect-file into $plugins/filestream" >&2
  if ! mvn -q -B -Dstyle.color=never -f "$HERE/kafka/connect-file-pom.xml" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" >&2; then
    rm -rf "$tmp"
    die "mvn could not resolve org.apache.kafka:connect-file (scripts/kafka/connect-file-pom.xml)"
  fi
  javac -d "$tmp/classes" -cp "$KDIR/lib/*" \
    "$HERE/kafka/connect-file-shim/org/apache/kafka/common/utils/AppInfoParser.java" >&2 ||
    die "building the connect-file shim failed"
  jar cf "$tmp/connect-file-shim.jar" -C "$tmp/classes" . && rm -rf "$tmp/classes"
  touch "$tmp/.complete"
  rm -rf "$plugins/filestream"
  mv "$tmp" "$plugins/filestream"
  echo "$plugins"
}

cmd_streams_classpath() {
  cmd_fetch_streams
  echo "$KDIR/lib/*:$KDIR/streams/*"
}

# port_open PORT -> 0 if something accepts on 127.0.0.1:PORT
port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

free_port_from() {
  local p="$1"
  while port_open "$p"; do
    p=$((p + 1))
  done
  echo "$p"
}

run_java_tool() {
  local cls="$1"
  shift
  # shellcheck disable=SC2086
  exec "$JAVA" ${KAFKA_TOOLS_HEAP:--Xmx512m} -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile="$HERE/kafka/tools-log4j2.properties" \
    -Dkop.tools.loglevel="${KAFKA_TOOLS_LOG_LEVEL:-warn}" \
    ${KAFKA_OPTS:-} -cp "$KDIR/lib/*" "$cls" "$@"
}

cmd_run_class() {
  [[ $# -ge 1 ]] || die "usage: kafka.sh run-class CLASS [ARGS...]"
  cmd_fetch
  run_java_tool "$@"
}

pid_of() {
  local f="$1/kafka.pid"
  [[ -f "$f" ]] || return 1
  local pid
  pid="$(cat "$f")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

cmd_status() {
  [[ $# -ge 1 ]] || die "usage: kafka.sh status DATA_DIR"
  pid_of "$1" >/dev/null
}

cmd_start() {
  [[ $# -ge 1 ]] || die "usage: kafka.sh start DATA_DIR [PORT]"
  local data="$1" port="${2:-9092}"
  cmd_fetch
  mkdir -p "$data"
  data="$(cd "$data" && pwd)"
  if pid_of "$data" >/dev/null; then
    die "a broker is already running for $data (pid $(cat "$data/kafka.pid"))"
  fi
  port_open "$port" && die "port 127.0.0.1:$port is already in use"
  local cport="${KAFKA_CONTROLLER_PORT:-$(free_port_from $((port + 1)))}"
  local props="$data/server.properties" log="$data/kafka.log"

  cat >"$props" <<EOF
# written by scripts/kafka.sh start
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$data/logs
num.partitions=4
default.replication.factor=1
auto.create.topics.enable=true
group.initial.rebalance.delay.ms=0
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Share-group tests use lock durations of a few seconds (Kafka's floor is 15 s by default).
group.share.min.record.lock.duration.ms=1000
EOF
  # Extra broker settings, one key=value per line (e.g. "message.max.bytes=2000000").
  if [[ -n "${KAFKA_EXTRA_PROPS:-}" ]]; then
    printf '%s\n' "$KAFKA_EXTRA_PROPS" >>"$props"
  fi

  if [[ ! -f "$data/logs/meta.properties" ]]; then
    local cid
    # A cluster id is 16 random bytes in URL-safe base64; one starting with "-" would be read as
    # an option by the formatter, so draw again until it doesn't.
    cid="-"
    while [[ "$cid" == -* ]]; do
      cid="$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    done
    if ! "$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
        -Dlog4j2.configurationFile="$HERE/kafka/tools-log4j2.properties" \
        -cp "$KDIR/lib/*" kafka.tools.StorageTool format -t "$cid" -c "$props" --standalone \
        --feature share.version=1 --feature streams.version=1 \
        >"$data/format.log" 2>&1; then
      cat "$data/format.log" >&2
      die "formatting $data/logs failed"
    fi
  fi

  # shellcheck disable=SC2086
  nohup "$JAVA" ${KAFKA_HEAP_OPTS:--Xmx1g -Xms256m} -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$HERE/kafka/broker-log4j2.properties" \
    -Dkop.broker.loglevel="${KAFKA_LOG_LEVEL:-info}" \
    ${KAFKA_OPTS:-} -cp "$KDIR/lib/*" kafka.Kafka "$props" \
    </dev/null >"$log" 2>&1 &
  local pid=$!
  echo "$pid" >"$data/kafka.pid"

  local timeout="${KAFKA_START_TIMEOUT:-120}" waited=0
  local fail=""
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      fail="the broker exited"
      break
    fi
    if port_open "$port"; then
      break
    fi
    if ((waited >= timeout * 5)); then
      fail="port $port did not open within ${timeout}s"
      break
    fi
    sleep 0.2
    waited=$((waited + 1))
  done
  if [[ -z "$fail" ]]; then
    # a metadata round trip (ListTopics) proves the broker serves requests
    local deadline=$((SECONDS + timeout))
    until "$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
        -Dlog4j2.configurationFile="$HERE/kafka/tools-log4j2.properties" \
        -Dkop.tools.loglevel=error \
        -cp "$KDIR/lib/*" org.apache.kafka.tools.TopicCommand \
        --bootstrap-server "127.0.0.1:$port" --list >/dev/null 2>"$data/check.log"; do
      if ! kill -0 "$pid" 2>/dev/null; then
        fail="the broker exited"
        break
      fi
      if ((SECONDS >= deadline)); then
        fail="the broker did not answer a metadata request within ${timeout}s"
        break
      fi
      sleep 0.5
    done
  fi
  if [[ -n "$fail" ]]; then
    echo "kafka.sh: $fail; last lines of $log:" >&2
    tail -n 40 "$log" >&2 || true
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$data/kafka.pid"
    exit 1
  fi
  echo "kafka.sh: Apache Kafka $KAFKA_VERSION on 127.0.0.1:$port (pid $pid, log $log)" >&2
}

cmd_stop() {
  [[ $# -ge 1 ]] || die "usage: kafka.sh stop DATA_DIR"
  local data="$1" pid
  if ! pid="$(pid_of "$data")"; then
    rm -f "$data/kafka.pid"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local timeout="${KAFKA_STOP_TIMEOUT:-30}" i=0
  while kill -0 "$pid" 2>/dev/null; do
    if ((i >= timeout * 10)); then
      echo "kafka.sh: pid $pid still running after ${timeout}s, sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
    i=$((i + 1))
  done
  rm -f "$data/kafka.pid"
}

usage() {
  sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

[[ $# -ge 1 ]] || usage
sub="$1"
shift
case "$sub" in
  fetch) cmd_fetch ;;
  classpath) cmd_classpath ;;
  fetch-streams) cmd_fetch_streams ;;
  streams-classpath) cmd_streams_classpath ;;
  fetch-connect-file) cmd_fetch_connect_file ;;
  version) echo "$KAFKA_VERSION" ;;
  start) cmd_start "$@" ;;
  stop) cmd_stop "$@" ;;
  status) cmd_status "$@" ;;
  run-class) cmd_run_class "$@" ;;
  -h | --help | help) usage ;;
  *) die "unknown command '$sub' (fetch, fetch-streams, fetch-connect-file, classpath, streams-classpath, version, start, stop, status, run-class)" ;;
esac
