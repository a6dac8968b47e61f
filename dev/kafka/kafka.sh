#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft) broker for development and tests, no Docker.
#
# Usage: dev/kafka/kafka.sh {start|stop|status|kill9|restart-hard}
#
#   start         Reuse a broker already answering at $JOURNEYS_KAFKA_BOOTSTRAP, otherwise
#                 fetch jars (once, via Maven), format storage (once) and start one in the
#                 background, then wait until it answers a metadata request.
#   stop          SIGTERM the broker started by this script (pid file), SIGKILL after 30 s.
#                 No-op if we did not start one.
#   status        Print pid / reachability. Exit 0 if the broker answers, 1 otherwise.
#   kill9         SIGKILL the broker started by this script (for fault-injection tests).
#   restart-hard  kill9, then start again on the same data dir.
#
# Environment:
#   JOURNEYS_KAFKA_BOOTSTRAP  host:port of the broker            (default 127.0.0.1:9092)
#   KAFKA_CONTROLLER_PORT     KRaft controller port              (default 9093)
#   JOURNEYS_KAFKA_HOME       cache root                         (default <repo>/.cache/kafka)
#   KAFKA_DATA_DIR            data dir (logs, pid, kraft storage) (default <repo>/.cache/kafka/data)
#   KAFKA_HEAP_OPTS           JVM heap                           (default -Xmx512m -Xms256m)
#   KAFKA_JVM_OPTS            extra JVM options for the broker
#   KAFKA_START_TIMEOUT       seconds to wait for readiness      (default 60)
#   PYTHON                    python used for the fast readiness probe (default python3;
#                             needs kafka-python or aiokafka, else TopicCommand is used)
#   JAVA_HOME / MVN           java and maven locations
#
# Security (opt-in; unset = the PLAINTEXT listener above, unchanged):
#   KAFKA_SCRAM_USERS         "name:password[,name:password]": SCRAM-SHA-512 and -256 users, created
#                             when the data dir is formatted (first start only); the client listener
#                             then needs SASL (characters allowed: A-Z a-z 0-9 . _ - @ +)
#   KAFKA_LISTENER_PROTOCOL   PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL for the client listener at
#                             $JOURNEYS_KAFKA_BOOTSTRAP (default SASL_PLAINTEXT with SCRAM users, else PLAINTEXT)
#   KAFKA_SSL_PEM_DIR         for SSL/SASL_SSL: ca.pem (trusted CA), broker.pem (certificate chain),
#                             broker.key (unencrypted PKCS#8 key)
#   KAFKA_SSL_CLIENT_AUTH     none | requested | required (mutual TLS)            (default none)
#   KAFKA_INTERNAL_PORT       PLAINTEXT loopback listener for inter-broker traffic, used when the
#                             client listener is not PLAINTEXT                   (default controller port + 1)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/../.." && pwd)"

BOOTSTRAP="${JOURNEYS_KAFKA_BOOTSTRAP:-127.0.0.1:9092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_HOME_DIR="${JOURNEYS_KAFKA_HOME:-$REPO/.cache/kafka}"
LIBS_DIR="$KAFKA_HOME_DIR/libs"
DATA_DIR="${KAFKA_DATA_DIR:-$KAFKA_HOME_DIR/data}"
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx512m -Xms256m}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-60}"
PYTHON_BIN="${PYTHON:-python3}"
MVN_BIN="${MVN:-mvn}"

POM="$SCRIPT_DIR/pom.xml"
LOG4J_CONF="$SCRIPT_DIR/log4j2.properties"
STAMP="$LIBS_DIR/.pom.sha256"
SERVER_PROPS="$DATA_DIR/server.properties"
KRAFT_DIR="$DATA_DIR/kraft-logs"
LOG_DIR="$DATA_DIR/logs"
PID_FILE="$DATA_DIR/kafka.pid"
OUT_FILE="$DATA_DIR/kafka.out"
TOOLS_PROPS="$DATA_DIR/tools-client.properties"
SSL_DIR="$DATA_DIR/ssl"
SCRAM_USERS="${KAFKA_SCRAM_USERS:-}"
if [[ -n "$SCRAM_USERS" ]]; then PROTOCOL="${KAFKA_LISTENER_PROTOCOL:-SASL_PLAINTEXT}"; else PROTOCOL="${KAFKA_LISTENER_PROTOCOL:-PLAINTEXT}"; fi
PEM_DIR="${KAFKA_SSL_PEM_DIR:-}"
CLIENT_AUTH="${KAFKA_SSL_CLIENT_AUTH:-none}"

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { printf 'kafka.sh: ERROR: %s\n' "$*" >&2; exit 1; }

# --- bootstrap address -----------------------------------------------------------
[[ "$BOOTSTRAP" != *,* ]] || die "JOURNEYS_KAFKA_BOOTSTRAP must be a single host:port (got '$BOOTSTRAP')"
HOST="${BOOTSTRAP%:*}"
PORT="${BOOTSTRAP##*:}"
[[ "$HOST" != "$BOOTSTRAP" && "$PORT" =~ ^[0-9]+$ ]] \
    || die "JOURNEYS_KAFKA_BOOTSTRAP must look like host:port (got '$BOOTSTRAP')"
[[ "$CONTROLLER_PORT" =~ ^[0-9]+$ ]] || die "KAFKA_CONTROLLER_PORT must be a number (got '$CONTROLLER_PORT')"
[[ "$CONTROLLER_PORT" != "$PORT" ]] || die "KAFKA_CONTROLLER_PORT ($CONTROLLER_PORT) must differ from the broker port"
is_local_host() { [[ "$HOST" == 127.0.0.1 || "$HOST" == localhost ]]; }

# --- security (opt-in) -----------------------------------------------------------
case "$PROTOCOL" in
    PLAINTEXT|SSL|SASL_PLAINTEXT|SASL_SSL) ;;
    *) die "KAFKA_LISTENER_PROTOCOL must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (got '$PROTOCOL')" ;;
esac
secured() { [[ "$PROTOCOL" != PLAINTEXT ]]; }
uses_sasl() { [[ "$PROTOCOL" == SASL_* ]]; }
uses_tls() { [[ "$PROTOCOL" == *SSL ]]; }
SCRAM_NAMES=()
SCRAM_PASSWORDS=()
if [[ -n "$SCRAM_USERS" ]]; then
    IFS=',' read -r -a _pairs <<<"$SCRAM_USERS"
    for _pair in "${_pairs[@]}"; do
        [[ "$_pair" =~ ^([A-Za-z0-9._@+-]+):([A-Za-z0-9._@+-]+)$ ]] \
            || die "KAFKA_SCRAM_USERS must be name:password[,name:password], characters A-Z a-z 0-9 . _ - @ +"
        SCRAM_NAMES+=("${BASH_REMATCH[1]}")
        SCRAM_PASSWORDS+=("${BASH_REMATCH[2]}")
    done
fi
if uses_sasl; then
    (( ${#SCRAM_NAMES[@]} )) || die "KAFKA_LISTENER_PROTOCOL=$PROTOCOL needs KAFKA_SCRAM_USERS=name:password[,...]"
elif (( ${#SCRAM_NAMES[@]} )); then
    die "KAFKA_SCRAM_USERS is set but KAFKA_LISTENER_PROTOCOL=$PROTOCOL does not use SASL"
fi
if uses_tls; then
    for _f in ca.pem broker.pem broker.key; do
        [[ -n "$PEM_DIR" && -f "$PEM_DIR/$_f" ]] || die "KAFKA_LISTENER_PROTOCOL=$PROTOCOL needs KAFKA_SSL_PEM_DIR with $_f"
    done
    PEM_DIR="$(cd "$PEM_DIR" && pwd)"
fi
case "$CLIENT_AUTH" in
    none|requested|required) ;;
    *) die "KAFKA_SSL_CLIENT_AUTH must be none, requested or required (got '$CLIENT_AUTH')" ;;
esac
[[ "$CLIENT_AUTH" == none ]] || uses_tls || die "KAFKA_SSL_CLIENT_AUTH=$CLIENT_AUTH needs KAFKA_LISTENER_PROTOCOL=SSL or SASL_SSL"
INTERNAL_PORT="${KAFKA_INTERNAL_PORT:-$((CONTROLLER_PORT + 1))}"
if secured; then
    [[ "$INTERNAL_PORT" =~ ^[0-9]+$ && "$INTERNAL_PORT" != "$PORT" && "$INTERNAL_PORT" != "$CONTROLLER_PORT" ]] \
        || die "KAFKA_INTERNAL_PORT ($INTERNAL_PORT) must be a port other than the broker and controller ports"
fi

# --- java ------------------------------------------------------------------------
find_java() {
    if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
        JAVA="$JAVA_HOME/bin/java"
    elif command -v java >/dev/null 2>&1; then
        JAVA="$(command -v java)"
    else
        die "java not found (need Java 17+; install a JDK/JRE or set JAVA_HOME)"
    fi
    local v
    v="$("$JAVA" -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')"
    v="${v%%.*}"
    [[ "$v" =~ ^[0-9]+$ && "$v" -ge 17 ]] || die "Kafka 4.x needs Java 17+, but $JAVA reports version '${v:-?}'"
}

# --- jars ------------------------------------------------------------------------
ensure_libs() {
    local want
    want="$(sha256sum "$POM" | awk '{print $1}')"
    if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]] && compgen -G "$LIBS_DIR/*.jar" >/dev/null; then
        return 0
    fi
    command -v "$MVN_BIN" >/dev/null 2>&1 || die "maven ('$MVN_BIN') not found; needed once to fetch the Kafka jars into $LIBS_DIR"
    log "fetching Kafka jars into $LIBS_DIR (one-off; Maven Central) ..."
    mkdir -p "$KAFKA_HOME_DIR"
    [[ -e "$KAFKA_HOME_DIR/.gitignore" ]] || printf '*\n' >"$KAFKA_HOME_DIR/.gitignore"
    local tmp="$KAFKA_HOME_DIR/libs.tmp.$$"
    rm -rf "$tmp"
    local mvn_log="$KAFKA_HOME_DIR/mvn.log"
    if ! "$MVN_BIN" -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
            -DincludeScope=runtime -DoutputDirectory="$tmp" >"$mvn_log" 2>&1; then
        rm -rf "$tmp"
        tail -n 30 "$mvn_log" >&2 || true
        die "maven dependency:copy-dependencies failed (full output: $mvn_log)"
    fi
    compgen -G "$tmp/kafka_2.13-*.jar" >/dev/null || { rm -rf "$tmp"; die "maven did not produce kafka_2.13 jar in $tmp"; }
    printf '%s\n' "$want" >"$tmp/.pom.sha256"
    rm -rf "$LIBS_DIR"
    mv "$tmp" "$LIBS_DIR"
    log "jars ready ($(ls "$LIBS_DIR"/*.jar | wc -l) files)"
}

# --- config ----------------------------------------------------------------------
write_server_properties() {
    mkdir -p "$DATA_DIR" "$KRAFT_DIR" "$LOG_DIR"
    local listeners="PLAINTEXT://127.0.0.1:${PORT},CONTROLLER://127.0.0.1:${CONTROLLER_PORT}"
    local advertised="PLAINTEXT://${HOST}:${PORT}" inter=PLAINTEXT
    local protocol_map="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    if secured; then  # clients on $PROTOCOL; inter-broker traffic on a PLAINTEXT loopback port
        listeners="${PROTOCOL}://127.0.0.1:${PORT},INTERNAL://127.0.0.1:${INTERNAL_PORT},CONTROLLER://127.0.0.1:${CONTROLLER_PORT}"
        advertised="${PROTOCOL}://${HOST}:${PORT},INTERNAL://127.0.0.1:${INTERNAL_PORT}"
        inter=INTERNAL
        protocol_map="${PROTOCOL}:${PROTOCOL},INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT"
    fi
    cat >"$SERVER_PROPS" <<EOF
# Generated by dev/kafka/kafka.sh -- edits are overwritten on every start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:${CONTROLLER_PORT}
listeners=${listeners}
advertised.listeners=${advertised}
controller.listener.names=CONTROLLER
inter.broker.listener.name=${inter}
listener.security.protocol.map=${protocol_map}
log.dirs=${KRAFT_DIR}

num.partitions=4
default.replication.factor=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0

# After kill -9 the controller (same JVM) still remembers the old broker incarnation and
# rejects re-registration (DUPLICATE_BROKER_REGISTRATION) until its session expires
# (default 9 s) -- a short session makes restart-hard come back ~6 s faster.
broker.session.timeout.ms=3000
broker.heartbeat.interval.ms=500
EOF
    write_security_properties >>"$SERVER_PROPS"
    write_tools_props
}

# Broker settings of a secured client listener (prints nothing for PLAINTEXT).
write_security_properties() {
    local name m
    name="$(tr '[:upper:]' '[:lower:]' <<<"$PROTOCOL")"
    if uses_sasl; then
        printf '\n# SCRAM users live in the KRaft metadata (StorageTool format --add-scram).\n'
        printf 'sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256\n'
        for m in scram-sha-512 scram-sha-256; do
            printf 'listener.name.%s.%s.sasl.jaas.config=%s required;\n' "$name" "$m" \
                org.apache.kafka.common.security.scram.ScramLoginModule
        done
    fi
    if uses_tls; then
        write_pem_keystore
        printf '\nssl.keystore.type=PEM\nssl.keystore.location=%s\n' "$SSL_DIR/keystore.pem"
        printf 'ssl.truststore.type=PEM\nssl.truststore.location=%s\n' "$PEM_DIR/ca.pem"
        # listener-prefixed: a plain ssl.client.auth is ignored on SASL_SSL listeners (KIP-684)
        printf 'listener.name.%s.ssl.client.auth=%s\n' "$name" "$CLIENT_AUTH"
    fi
}

# A PEM keystore is one file: the private key, then the certificate chain.
write_pem_keystore() {
    mkdir -p "$SSL_DIR"
    (umask 077 && cat "$PEM_DIR/broker.key" "$PEM_DIR/broker.pem" >"$SSL_DIR/keystore.pem")
}

# Client settings for the Kafka CLI tools (readiness fallback). Holds a SCRAM password: mode 0600.
write_tools_props() {
    mkdir -p "$DATA_DIR"
    (
        umask 077
        rm -f "$TOOLS_PROPS"
        exec >"$TOOLS_PROPS"
        printf 'request.timeout.ms=3000\ndefault.api.timeout.ms=5000\n'
        if secured; then printf 'security.protocol=%s\n' "$PROTOCOL"; fi
        if uses_sasl; then
            printf 'sasl.mechanism=SCRAM-SHA-512\n'
            printf 'sasl.jaas.config=%s required username="%s" password="%s";\n' \
                org.apache.kafka.common.security.scram.ScramLoginModule "${SCRAM_NAMES[0]}" "${SCRAM_PASSWORDS[0]}"
        fi
        if uses_tls; then
            printf 'ssl.truststore.type=PEM\nssl.truststore.location=%s\n' "$PEM_DIR/ca.pem"
            if [[ "$CLIENT_AUTH" != none ]]; then  # the broker's certificate doubles as the tools' one
                write_pem_keystore
                printf 'ssl.keystore.type=PEM\nssl.keystore.location=%s\n' "$SSL_DIR/keystore.pem"
            fi
        fi
    )
}

# java with the broker classpath; $1 = log file name under $LOG_DIR, rest = args
run_java() {
    local logfile="$1"; shift
    mkdir -p "$LOG_DIR"
    "$JAVA" -cp "$LIBS_DIR/*" \
        -Dlog4j2.configurationFile="$LOG4J_CONF" \
        -Dkafka.logs.dir="$LOG_DIR" -Dkafka.log.file="$logfile" -Dkafka.root.loglevel=WARN \
        "$@"
}

format_storage() {
    if [[ -f "$KRAFT_DIR/meta.properties" ]]; then
        (( ${#SCRAM_NAMES[@]} == 0 )) \
            || log "data dir already formatted: KAFKA_SCRAM_USERS applies to a new KAFKA_DATA_DIR only (kept the users it was formatted with)"
        return 0
    fi
    local cluster_id
    cluster_id="$(run_java tools.log -Xmx256m -XX:TieredStopAtLevel=1 kafka.tools.StorageTool random-uuid | tail -n1)"
    [[ "$cluster_id" =~ ^[A-Za-z0-9_-]{22}$ ]] || die "StorageTool random-uuid returned '$cluster_id'"
    log "formatting KRaft storage in $KRAFT_DIR (cluster id $cluster_id)"
    local scram=() i m
    for i in "${!SCRAM_NAMES[@]}"; do
        for m in SCRAM-SHA-512 SCRAM-SHA-256; do
            scram+=(--add-scram "$m=[name=${SCRAM_NAMES[$i]},password=${SCRAM_PASSWORDS[$i]}]")
        done
    done
    (( ${#SCRAM_NAMES[@]} == 0 )) || log "adding SCRAM-SHA-512/256 credentials for: ${SCRAM_NAMES[*]}"
    run_java tools.log -Xmx256m -XX:TieredStopAtLevel=1 kafka.tools.StorageTool format \
        -t "$cluster_id" -c "$SERVER_PROPS" ${scram[@]+"${scram[@]}"} >>"$LOG_DIR/tools.log" 2>&1 \
        || die "StorageTool format failed; see $LOG_DIR/tools.log"
}

# --- probes ----------------------------------------------------------------------
port_open() { timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null; }
tcp_open() { port_open "$HOST" "$PORT"; }

# Python probe: loops until a metadata request succeeds or $2 seconds pass.
# exit 0 ok, 1 timeout/error, 3 no usable kafka client library.
# A secured listener: KAFKA_SH_PROTOCOL, _USER, _PASSWORD, _CAFILE, _CERTFILE, _KEYFILE (env).
PY_PROBE='
import os, ssl, sys, time, logging
logging.disable(logging.CRITICAL)
bs, deadline = sys.argv[1], time.monotonic() + float(sys.argv[2])
def security():
    env = os.environ.get
    protocol = env("KAFKA_SH_PROTOCOL") or "PLAINTEXT"
    if protocol == "PLAINTEXT":
        return {}
    sec = {"security_protocol": protocol}
    if protocol.startswith("SASL_"):
        sec.update(sasl_mechanism="SCRAM-SHA-512", sasl_plain_username=env("KAFKA_SH_USER"),
                   sasl_plain_password=env("KAFKA_SH_PASSWORD"))
    if protocol.endswith("SSL"):
        ctx = ssl.create_default_context(cafile=env("KAFKA_SH_CAFILE"))
        if env("KAFKA_SH_CERTFILE"):
            ctx.load_cert_chain(env("KAFKA_SH_CERTFILE"), env("KAFKA_SH_KEYFILE"))
        sec["ssl_context"] = ctx
    return sec
SEC = security()
try:
    from kafka import KafkaAdminClient
    def once():
        cfg = dict(bootstrap_servers=bs, client_id="kafka-sh-probe", request_timeout_ms=3000, **SEC)
        for k in ("bootstrap_timeout_ms", "api_version_auto_timeout_ms"):
            if k in KafkaAdminClient.DEFAULT_CONFIG:
                cfg[k] = 3000
        a = KafkaAdminClient(**cfg)
        try:
            a.list_topics()
        finally:
            a.close()
except ImportError:
    try:
        import asyncio
        from aiokafka.admin import AIOKafkaAdminClient
    except ImportError:
        sys.exit(3)
    async def _once():
        a = AIOKafkaAdminClient(bootstrap_servers=bs, client_id="kafka-sh-probe", request_timeout_ms=3000, **SEC)
        await a.start()
        try:
            await a.list_topics()
        finally:
            await a.close()
    def once():
        asyncio.run(asyncio.wait_for(_once(), 5))
err = None
while True:
    try:
        once()
        sys.exit(0)
    except Exception as e:
        err = e
    if time.monotonic() >= deadline:
        print("probe: %r" % (err,), file=sys.stderr)
        sys.exit(1)
    time.sleep(0.3)
'

# answers_metadata TIMEOUT_SECONDS -> 0 if the broker answers a metadata request in time.
answers_metadata() {
    local timeout="$1" deadline=$((SECONDS + $1)) rc
    if command -v "$PYTHON_BIN" >/dev/null 2>&1; then
        rc=0
        local cert="" key=""
        if [[ "$CLIENT_AUTH" != none ]]; then cert="$PEM_DIR/broker.pem" key="$PEM_DIR/broker.key"; fi
        KAFKA_SH_PROTOCOL="$PROTOCOL" KAFKA_SH_USER="${SCRAM_NAMES[0]:-}" KAFKA_SH_PASSWORD="${SCRAM_PASSWORDS[0]:-}" \
            KAFKA_SH_CAFILE="${PEM_DIR:+$PEM_DIR/ca.pem}" KAFKA_SH_CERTFILE="$cert" KAFKA_SH_KEYFILE="$key" \
            "$PYTHON_BIN" -c "$PY_PROBE" "$BOOTSTRAP" "$timeout" 2>/dev/null || rc=$?
        [[ $rc -ne 3 ]] && return "$rc"
    fi
    # Fallback: TopicCommand (JVM start ~1-2 s per attempt).
    [[ -n "${JAVA:-}" ]] || find_java
    compgen -G "$LIBS_DIR/kafka-tools-*.jar" >/dev/null || return 1
    [[ -f "$TOOLS_PROPS" ]] || write_tools_props
    while :; do
        if tcp_open && run_java tools.log -Xmx128m -XX:TieredStopAtLevel=1 -Xshare:auto \
                org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" \
                --command-config "$TOOLS_PROPS" --list >/dev/null 2>&1; then
            return 0
        fi
        (( SECONDS < deadline )) || return 1
        sleep 0.5
    done
}

# --- pid handling ----------------------------------------------------------------
# alive PID: process exists and is not a zombie (an orphaned JVM is reparented to
# whatever init runs here; if that reaps slowly, `kill -0` alone would report a corpse).
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    local state
    state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)"
    [[ "$state" != Z && "$state" != X ]]
}

# wait_dead PID: until the process is gone and its listeners are closed. With a
# multi-threaded JVM the main thread can already show as a zombie while the other threads
# (and hence the sockets) are still being torn down, so also wait for the ports.
wait_dead() {
    local i
    for ((i = 0; i < 150; i++)); do
        if ! alive "$1" && ! tcp_open && ! port_open 127.0.0.1 "$CONTROLLER_PORT" \
                && { ! secured || ! port_open 127.0.0.1 "$INTERNAL_PORT"; }; then
            return 0
        fi
        sleep 0.1
    done
    log "warning: pid $1 or its ports ($PORT/$CONTROLLER_PORT) still busy after 15s"
}

# Prints the pid of the broker we started, if it is still alive and really ours.
our_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid; pid="$(cat "$PID_FILE" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    alive "$pid" || return 1
    # Guard against pid reuse: must be a kafka.Kafka JVM using our server.properties.
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "kafka.Kafka $SERVER_PROPS" || return 1
    printf '%s\n' "$pid"
}

# --- commands --------------------------------------------------------------------
cmd_start() {
    mkdir -p "$DATA_DIR"
    if [[ -d "$KAFKA_HOME_DIR" && ! -e "$KAFKA_HOME_DIR/.gitignore" ]]; then
        printf '*\n' >"$KAFKA_HOME_DIR/.gitignore"   # keep the cache out of git
    fi
    exec 9>"$DATA_DIR/.kafka-sh.lock"
    flock -w 120 9 2>/dev/null || true   # serialise concurrent starts (best effort)

    local t0=$SECONDS pid
    if pid="$(our_pid)"; then
        log "broker started by kafka.sh already running (pid $pid); checking that it answers ..."
        answers_metadata "$START_TIMEOUT" || die "broker pid $pid does not answer at $BOOTSTRAP; see $LOG_DIR/server.log"
        log "broker ready at $BOOTSTRAP (pid $pid)"
        return 0
    fi
    if tcp_open; then
        if answers_metadata 10; then
            log "a Kafka broker already answers at $BOOTSTRAP; using it (not starting another)"
            return 0
        fi
        die "$BOOTSTRAP accepts TCP connections but does not answer as Kafka; port in use by something else?"
    fi
    is_local_host || die "no broker answers at $BOOTSTRAP and it is not a loopback address; refusing to start a local one (use 127.0.0.1:<port>)"

    find_java
    ensure_libs
    write_server_properties
    format_storage

    log "starting Kafka broker at $BOOTSTRAP (controller 127.0.0.1:$CONTROLLER_PORT, data $DATA_DIR)"
    if secured; then
        log "client listener $PROTOCOL${SCRAM_NAMES[0]:+ (SCRAM users: ${SCRAM_NAMES[*]})}$(uses_tls && echo ", TLS client auth $CLIENT_AUTH"); inter-broker PLAINTEXT on 127.0.0.1:$INTERNAL_PORT"
    fi
    # shellcheck disable=SC2086  # HEAP_OPTS / KAFKA_JVM_OPTS are intentionally word-split
    nohup "$JAVA" $HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
        -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$LOG4J_CONF" \
        -Dkafka.logs.dir="$LOG_DIR" -Dkafka.log.file=server.log \
        ${KAFKA_JVM_OPTS:-} \
        -cp "$LIBS_DIR/*" kafka.Kafka "$SERVER_PROPS" \
        >>"$OUT_FILE" 2>&1 </dev/null 9>&- &
    pid=$!
    printf '%s\n' "$pid" >"$PID_FILE"

    # Wait for the port to open (cheap), then for a real metadata answer.
    local deadline=$((SECONDS + START_TIMEOUT))
    until tcp_open; do
        if ! alive "$pid"; then
            rm -f "$PID_FILE"
            tail -n 20 "$OUT_FILE" >&2 || true
            die "broker exited during startup; see $OUT_FILE and $LOG_DIR/server.log"
        fi
        (( SECONDS < deadline )) || die "broker (pid $pid) did not open $BOOTSTRAP within ${START_TIMEOUT}s; see $LOG_DIR/server.log"
        sleep 0.2
    done
    local left=$((deadline - SECONDS)); (( left > 1 )) || left=1
    answers_metadata "$left" \
        || die "broker (pid $pid) did not answer metadata at $BOOTSTRAP within ${START_TIMEOUT}s; see $LOG_DIR/server.log"
    log "broker ready at $BOOTSTRAP (pid $pid) in $((SECONDS - t0))s; logs: $LOG_DIR/server.log"
}

cmd_stop() {
    local pid
    if ! pid="$(our_pid)"; then
        rm -f "$PID_FILE"
        log "no broker started by kafka.sh is running (nothing to stop)"
        return 0
    fi
    log "stopping broker (pid $pid) ..."
    kill -TERM "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 300; i++)); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then
        log "broker did not exit within 30s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait_dead "$pid"
    rm -f "$PID_FILE"
    log "stopped"
}

cmd_kill9() {
    local pid
    if ! pid="$(our_pid)"; then
        rm -f "$PID_FILE"
        log "no broker started by kafka.sh is running (nothing to kill)"
        return 0
    fi
    log "SIGKILL broker (pid $pid)"
    kill -KILL "$pid" 2>/dev/null || true
    wait_dead "$pid"
    rm -f "$PID_FILE"
}

cmd_status() {
    local pid answering=no
    if tcp_open && answers_metadata 5; then answering=yes; fi
    if pid="$(our_pid)"; then
        echo "kafka: started by kafka.sh, pid $pid, bootstrap $BOOTSTRAP, answering=$answering, data $DATA_DIR"
    elif [[ $answering == yes ]]; then
        echo "kafka: a broker NOT started by kafka.sh answers at $BOOTSTRAP"
    else
        echo "kafka: not running (nothing answers at $BOOTSTRAP)"
    fi
    [[ $answering == yes ]]
}

case "${1:-}" in
    start)        cmd_start ;;
    stop)         cmd_stop ;;
    status)       cmd_status ;;
    kill9)        cmd_kill9 ;;
    restart-hard) cmd_kill9; cmd_start ;;
    -h|--help|help)
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' ;;
    *)  echo "usage: $(basename "$0") {start|stop|status|kill9|restart-hard}" >&2; exit 2 ;;
esac
