#!/usr/bin/env bash
# Run a real Apache Pulsar standalone (broker + in-process bookie + RocksDB metadata) for kop's
# tests, from Maven Central jars. Needs only Java 17+, Maven, curl. See scripts/pulsar/README.md.
#
#   scripts/pulsar.sh fetch              download the jars once into the cache (idempotent)
#   scripts/pulsar.sh start DATA_DIR     start in the background, wait until the admin API answers
#   scripts/pulsar.sh stop DATA_DIR      SIGTERM, wait, SIGKILL after PULSAR_STOP_TIMEOUT
#   scripts/pulsar.sh status DATA_DIR    exit 0 when running and healthy
#   scripts/pulsar.sh env DATA_DIR       print KOP_PULSAR_URL=... / KOP_PULSAR_ADMIN_URL=... lines
#   scripts/pulsar.sh lib                print the jar directory (fetching first), e.g. for the
#                                        Pulsar Java client: java -cp "$(scripts/pulsar.sh lib)/*"
#   scripts/pulsar.sh offloaders         print a directory holding the filesystem offloader nar
#                                        (fetching it once), for offloadersDirectory=...
#
# Environment: KOP_CACHE, KOP_PULSAR_VERSION, PULSAR_BROKER_PORT, PULSAR_WEB_PORT, PULSAR_JAVA,
# PULSAR_MEM, PULSAR_START_TIMEOUT, PULSAR_STOP_TIMEOUT, PULSAR_KEEP_DATA, PULSAR_EXTRA_CONF,
# PULSAR_ADMIN_TOKEN (the readiness check's token, for a standalone with authentication),
# PULSAR_FUNCTIONS_WORKER_CONF (a functions_worker.yml: run the standalone's functions worker),
# KOP_PULSAR_OFFLOADER_VERSION (the filesystem offloader's version, see below).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$HERE/pulsar/pom.xml"
BASE_CONF="$HERE/pulsar/standalone.conf"
LOG4J_CONF="$HERE/pulsar/log4j2.xml"
MAIN_CLASS=org.apache.pulsar.PulsarStandaloneStarter

CACHE="${KOP_CACHE:-$HOME/.cache/kop}"
DEFAULT_VERSION="$(sed -n 's:.*<pulsar.version>\(.*\)</pulsar.version>.*:\1:p' "$POM" | head -n1)"
VERSION="${KOP_PULSAR_VERSION:-$DEFAULT_VERSION}"
LIB="$CACHE/pulsar-$VERSION/lib"
BROKER_PORT="${PULSAR_BROKER_PORT:-6650}"
WEB_PORT="${PULSAR_WEB_PORT:-8080}"
START_TIMEOUT="${PULSAR_START_TIMEOUT:-180}"
STOP_TIMEOUT="${PULSAR_STOP_TIMEOUT:-30}"
MEM_OPTS="${PULSAR_MEM:--Xms256m -Xmx1g -XX:MaxDirectMemorySize=512m}"
# Maven Central serves org.apache.pulsar:tiered-storage-file-system up to 4.0.8 in the 4.x line
# (no 4.1.x or 4.2.x, under any packaging); its ".jar" is the offloader nar itself (classes,
# META-INF/services/pulsar-offloader.yaml and the Hadoop jars in META-INF/bundled-dependencies).
OFFLOADER_VERSION="${KOP_PULSAR_OFFLOADER_VERSION:-4.0.8}"

log() { printf 'pulsar.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

java_bin() {
    if [[ -n "${PULSAR_JAVA:-}" ]]; then
        printf '%s\n' "$PULSAR_JAVA"
    elif [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
        printf '%s\n' "$JAVA_HOME/bin/java"
    else
        command -v java || die "java not found (need Java 17+; set PULSAR_JAVA or JAVA_HOME)"
    fi
}

check_java() {
    local java major
    java="$(java_bin)"
    major="$("$java" -XshowSettings:properties -version 2>&1 |
        sed -n 's/^ *java.specification.version = \([0-9]*\).*/\1/p')"
    [[ -n "$major" && "$major" -ge 17 ]] || die "$java is Java '${major:-?}'; Pulsar $VERSION needs 17+"
}

# ---------------------------------------------------------------------------------------------
# fetch

pom_digest() { sha256sum "$POM" | cut -d' ' -f1; }

cmd_fetch() {
    local stamp="$LIB/.complete" want
    want="$VERSION $(pom_digest)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        log "Pulsar $VERSION jars cached in $LIB"
        return 0
    fi
    command -v mvn >/dev/null || die "mvn not found (Maven is needed to download Pulsar $VERSION)"
    mkdir -p "$CACHE"
    # One downloader at a time per version (tests may start several brokers at once).
    exec 9>"$CACHE/pulsar-$VERSION.lock"
    flock 9
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        exec 9>&-
        return 0
    fi
    local tmp="$CACHE/pulsar-$VERSION/lib.tmp.$$" t0
    rm -rf "$tmp"
    mkdir -p "$tmp"
    t0="$(now)"
    log "downloading org.apache.pulsar:pulsar-broker:$VERSION and its runtime dependencies ..."
    if ! mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
        -Dpulsar.version="$VERSION" -DincludeScope=runtime -DoutputDirectory="$tmp" >&2; then
        rm -rf "$tmp"
        die "maven could not resolve Pulsar $VERSION (see the output above)"
    fi
    ls "$tmp"/pulsar-broker-"$VERSION".jar >/dev/null 2>&1 || die "pulsar-broker-$VERSION.jar missing"
    rm -rf "$LIB"
    mv "$tmp" "$LIB"
    printf '%s\n' "$want" >"$stamp"
    exec 9>&-
    log "Pulsar $VERSION: $(find "$LIB" -name '*.jar' | wc -l) jars, $(du -sh "$LIB" | cut -f1)," \
        "resolved in $(elapsed "$t0") s -> $LIB"
}

# The filesystem offloader, as a nar in a directory of its own (the broker loads every *.nar of
# offloadersDirectory).
cmd_offloaders() {
    local dir="$CACHE/pulsar-offloaders-$OFFLOADER_VERSION"
    local nar="$dir/tiered-storage-file-system-$OFFLOADER_VERSION.nar"
    if [[ ! -f "$nar" ]]; then
        command -v mvn >/dev/null || die "mvn not found (Maven is needed to download the offloader)"
        mkdir -p "$CACHE"
        exec 9>"$CACHE/pulsar-offloaders-$OFFLOADER_VERSION.lock"
        flock 9
        if [[ ! -f "$nar" ]]; then
            local tmp="$dir.tmp.$$"
            rm -rf "$tmp"
            mkdir -p "$tmp"
            log "downloading org.apache.pulsar:tiered-storage-file-system:$OFFLOADER_VERSION ..."
            if ! mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy \
                -Dartifact="org.apache.pulsar:tiered-storage-file-system:$OFFLOADER_VERSION:jar" \
                -DoutputDirectory="$tmp" >&2; then
                rm -rf "$tmp"
                die "maven could not resolve tiered-storage-file-system $OFFLOADER_VERSION"
            fi
            mkdir -p "$dir"
            mv "$tmp/tiered-storage-file-system-$OFFLOADER_VERSION.jar" "$nar"
            rm -rf "$tmp"
        fi
        exec 9>&-
    fi
    printf '%s\n' "$dir"
}

# ---------------------------------------------------------------------------------------------
# helpers for a data dir

data_dir_arg() {
    [[ $# -ge 1 && -n "$1" ]] || usage
    mkdir -p "$1"
    (cd "$1" && pwd)
}

# Pid of the standalone recorded in DIR, if that process is alive and really ours.
running_pid() {
    local dir="$1" pid
    [[ -f "$dir/pulsar.pid" ]] || return 1
    pid="$(cat "$dir/pulsar.pid")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$MAIN_CLASS" || return 1
    printf '%s\n' "$pid"
}

# Read a key from the effective config written at start (ports may differ from the env).
conf_value() {
    sed -n "s/^$2=//p" "$1/standalone.conf" 2>/dev/null | tail -n1
}

admin_url_of() { printf 'http://127.0.0.1:%s\n' "$(conf_value "$1" webServicePort)"; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

rss_mib() { awk '/^VmRSS:/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo '?'; }

# True once the standalone has created public/default and the broker's own health check
# (a produce + consume round trip on a system topic) passes.
admin_ready() {
    local admin="$1" auth=()
    # A standalone with authentication answers the admin API to a super user's token only.
    [[ -n "${PULSAR_ADMIN_TOKEN:-}" ]] && auth=(-H "Authorization: Bearer $PULSAR_ADMIN_TOKEN")
    curl -sf --max-time 5 "${auth[@]}" "$admin/admin/v2/namespaces/public" 2>/dev/null | grep -q 'public/default' &&
        [[ "$(curl -sf --max-time 20 "${auth[@]}" "$admin/admin/v2/brokers/health" 2>/dev/null)" == ok ]]
}

log_tail() {
    local dir="$1"
    log "---- last 40 lines of $dir/pulsar.log ----"
    tail -n 40 "$dir/pulsar.log" >&2 2>/dev/null || true
    log "----"
}

# ---------------------------------------------------------------------------------------------
# start / stop / status

cmd_start() {
    local dir pid
    dir="$(data_dir_arg "$@")"
    if pid="$(running_pid "$dir")"; then
        if admin_ready "$(admin_url_of "$dir")"; then
            log "already running in $dir (pid $pid)"
            return 0
        fi
        die "a standalone (pid $pid) in $dir is running but not healthy; run: $0 stop $dir"
    fi
    command -v curl >/dev/null || die "curl not found"
    check_java
    cmd_fetch
    for port in "$BROKER_PORT" "$WEB_PORT"; do
        port_in_use "$port" && die "127.0.0.1:$port is already in use (set PULSAR_BROKER_PORT/PULSAR_WEB_PORT)"
    done

    if [[ "${PULSAR_KEEP_DATA:-0}" != 1 ]]; then
        rm -rf "$dir/metadata" "$dir/bookkeeper"
    fi
    {
        cat "$BASE_CONF"
        printf '\n# added by scripts/pulsar.sh\nbrokerServicePort=%s\nwebServicePort=%s\n' \
            "$BROKER_PORT" "$WEB_PORT"
        if [[ -n "${PULSAR_EXTRA_CONF:-}" ]]; then
            printf '# from PULSAR_EXTRA_CONF=%s\n' "$PULSAR_EXTRA_CONF"
            cat "$PULSAR_EXTRA_CONF"
        fi
    } >"$dir/standalone.conf"
    : >"$dir/pulsar.log"

    # The functions worker stays off unless a worker config is given (it costs start-up time).
    local worker_args=(-nfw)
    if [[ -n "${PULSAR_FUNCTIONS_WORKER_CONF:-}" ]]; then
        cp "$PULSAR_FUNCTIONS_WORKER_CONF" "$dir/functions_worker.yml"
        worker_args=(-fwc "$dir/functions_worker.yml")
    fi
    local java t0
    java="$(java_bin)"
    t0="$(now)"
    # Word splitting of MEM_OPTS is intended.
    # shellcheck disable=SC2086
    (
        cd "$dir"
        exec setsid "$java" $MEM_OPTS -XX:+ExitOnOutOfMemoryError \
            -Dlog4j2.configurationFile="$LOG4J_CONF" \
            -Dio.netty.tryReflectionSetAccessible=true \
            -Dpulsar.allocator.exit_on_oom=true \
            --add-opens java.base/java.io=ALL-UNNAMED \
            --add-opens java.base/java.util.zip=ALL-UNNAMED \
            --add-opens java.base/sun.net=ALL-UNNAMED \
            --add-opens java.management/sun.management=ALL-UNNAMED \
            --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED \
            --add-opens java.base/jdk.internal.platform=ALL-UNNAMED \
            -cp "$LIB/*" "$MAIN_CLASS" \
            --config "$dir/standalone.conf" "${worker_args[@]}" -nss -a 127.0.0.1 \
            --metadata-dir "$dir/metadata" --bookkeeper-dir "$dir/bookkeeper" \
            </dev/null >>"$dir/pulsar.log" 2>&1
    ) &
    pid=$!
    printf '%s\n' "$pid" >"$dir/pulsar.pid"
    local admin="http://127.0.0.1:$WEB_PORT"
    local deadline=$((SECONDS + START_TIMEOUT))
    while ! admin_ready "$admin"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log_tail "$dir"
            rm -f "$dir/pulsar.pid"
            die "Pulsar exited during start-up (see $dir/pulsar.log)"
        fi
        if ((SECONDS >= deadline)); then
            log_tail "$dir"
            cmd_stop "$dir" || true
            die "Pulsar's admin API did not answer within ${START_TIMEOUT}s (PULSAR_START_TIMEOUT)"
        fi
        sleep 0.5
    done
    printf 'KOP_PULSAR_URL=pulsar://127.0.0.1:%s\nKOP_PULSAR_ADMIN_URL=%s\n' \
        "$BROKER_PORT" "$admin" >"$dir/pulsar.env"
    log "Pulsar $VERSION ready in $(elapsed "$t0") s: pulsar://127.0.0.1:$BROKER_PORT, $admin" \
        "(pid $pid, RSS $(rss_mib "$pid") MiB, log $dir/pulsar.log)"
}

cmd_stop() {
    local dir pid
    dir="$(data_dir_arg "$@")"
    if ! pid="$(running_pid "$dir")"; then
        rm -f "$dir/pulsar.pid"
        log "not running in $dir"
        return 0
    fi
    local t0
    t0="$(now)"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            log "pid $pid still alive after ${STOP_TIMEOUT}s, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
            break
        fi
        sleep 0.2
    done
    rm -f "$dir/pulsar.pid" "$dir/pulsar.env"
    log "stopped pid $pid in $(elapsed "$t0") s"
}

cmd_status() {
    local dir pid admin
    dir="$(data_dir_arg "$@")"
    if ! pid="$(running_pid "$dir")"; then
        echo "not running ($dir)"
        return 3
    fi
    admin="$(admin_url_of "$dir")"
    if admin_ready "$admin"; then
        echo "running: pid $pid, pulsar://127.0.0.1:$(conf_value "$dir" brokerServicePort), $admin," \
            "RSS $(rss_mib "$pid") MiB"
        return 0
    fi
    echo "running but not healthy: pid $pid, admin $admin"
    return 1
}

cmd_env() {
    local dir
    dir="$(data_dir_arg "$@")"
    [[ -f "$dir/pulsar.env" ]] || die "no running Pulsar started from $dir"
    cat "$dir/pulsar.env"
}

[[ $# -ge 1 ]] || usage
command="$1"
shift
case "$command" in
    fetch) cmd_fetch ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    status) cmd_status "$@" ;;
    env) cmd_env "$@" ;;
    lib) cmd_fetch && printf '%s\n' "$LIB" ;;
    offloaders) cmd_offloaders ;;
    *) usage ;;
esac
