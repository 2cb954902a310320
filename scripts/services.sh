#!/usr/bin/env bash
# Start or stop the real services the integration tests, benches and local runs use, all as
# user processes on loopback:
#   - Apache Kafka 4.4 (KRaft, one combined broker+controller node), from Maven Central jars;
#   - Apicurio Registry 3.3 (in-memory), whose /apis/ccompat/v7 is the Confluent registry API;
#   - ClickHouse server (Debian's), with its own data dir and ports.
# Everything runtime lives under $CXP_SERVICES_DIR (default /tmp/cxp-services), downloads under
# $CXP_TOOLS_DIR (default ~/.cache/cxp/tools) and ~/.m2, so nothing leaks between runs and warm
# runs download nothing. scripts/install-deps.sh fetches the jars.
#
#   scripts/services.sh start          # all three; prints the env exports the tests read
#   scripts/services.sh stop
#   scripts/services.sh kafka-up DIR PORT CPORT     # one more broker (data in DIR; formats
#                                                   # DIR on first use, reuses it after)
#   scripts/services.sh kafka-up DIR PORT CPORT SASL_PORT  # ... plus a SASL/PLAIN listener
#                                                   # (user cx, password cx-secret) under
#                                                   # Kafka's StandardAuthorizer: PLAINTEXT
#                                                   # clients are super users, cx is bound by
#                                                   # ACLs (everything allowed where a resource
#                                                   # has none)
#   scripts/services.sh kafka-up-tls DIR PORT CPORT BASE CERTS  # ... plus TLS listeners with
#                                                   # the certificates scripts/make-certs.sh
#                                                   # made in CERTS: SSL on BASE, SASL_SSL
#                                                   # (SCRAM-SHA-256/512 and PLAIN, user cx,
#                                                   # password cx-secret) on BASE+1, SSL with
#                                                   # an expired certificate on BASE+2, SSL
#                                                   # requiring a client certificate on BASE+3
#   scripts/services.sh kafka-down DIR [KILL]       # stop it (KILL: SIGKILL, no clean shutdown)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
DIR=${CXP_SERVICES_DIR:-/tmp/cxp-services}
TOOLS=${CXP_TOOLS_DIR:-$HOME/.cache/cxp/tools}
KAFKA_VERSION=4.4.0
APICURIO_VERSION=3.3.3
KAFKA_LIB=$TOOLS/kafka-$KAFKA_VERSION/lib
APICURIO_HOME=$TOOLS/apicurio-registry-$APICURIO_VERSION
KAFKA_PORT=${CXP_KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${CXP_KAFKA_CONTROLLER_PORT:-19093}
REGISTRY_PORT=${CXP_REGISTRY_PORT:-18081}
CH_HTTP_PORT=${CXP_CH_HTTP_PORT:-18123}
CH_TCP_PORT=${CXP_CH_TCP_PORT:-19000}
CH_HTTPS_PORT=${CXP_CH_HTTPS_PORT:-18443}
REGISTRY_HTTPS_PORT=${CXP_REGISTRY_HTTPS_PORT:-18444}

now_ms() { date +%s%3N; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_free() { # port
  for _ in $(seq 1 40); do port_free "$1" && return 0; sleep 0.25; done
  echo "port $1 is already in use: stop what holds it (scripts/services.sh stop)" >&2
  return 1
}

# Waits until `check` succeeds, failing early if the process behind pidfile died.
wait_ready() { # what pidfile seconds check...
  local what=$1 pidfile=$2 limit=$3; shift 3
  local deadline=$(( $(date +%s) + limit ))
  until "$@" >/dev/null 2>&1; do
    kill -0 "$(cat "$pidfile")" 2>/dev/null || { echo "$what exited at startup; see $(dirname "$pidfile")" >&2; return 1; }
    [ "$(date +%s)" -lt "$deadline" ] || { echo "$what not ready within ${limit}s; see $(dirname "$pidfile")" >&2; return 1; }
    sleep 0.2
  done
}

# Apicurio 3.3 is compiled for Java 21; the machine's default java may be 17.
java_for_registry() {
  local j v
  for j in "${CXP_REGISTRY_JAVA:-}" "${JAVA_HOME:+$JAVA_HOME/bin/java}" /usr/lib/jvm/temurin-25-jdk-amd64/bin/java /usr/lib/jvm/*/bin/java java; do
    [ -n "$j" ] && command -v "$j" >/dev/null 2>&1 || continue
    v=$("$j" -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}')
    if [ "${v%%.*}" -ge 21 ] 2>/dev/null; then echo "$j"; return; fi
  done
  echo "no Java 21 or newer found for the schema registry (set CXP_REGISTRY_JAVA)" >&2
  return 1
}

kafka_ready() { # dir port: the broker logs this once it serves requests on its listener
  grep -q "Kafka Server started" "$1/kafka.log" && ! port_free "$2"
}

# One KRaft node. Formats its log dir on first use; a restart reuses the data (that is what
# the broker-restart test needs).
kafka_up() { # dir port cport [sasl_port]
  local d=$1 port=$2 cport=$3 sport=${4:-}
  [ -d "$KAFKA_LIB" ] || { echo "Kafka jars missing in $KAFKA_LIB: run scripts/install-deps.sh" >&2; return 1; }
  wait_free "$port"; wait_free "$cport"
  mkdir -p "$d/logs"
  cat >"$d/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$d/logs
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
log.cleaner.dedupe.buffer.size=2097152
auto.create.topics.enable=false
PROPS
  if [ -n "$sport" ]; then
    wait_free "$sport"
    sed -i "s|^listeners=.*|listeners=PLAINTEXT://127.0.0.1:$port,SASL_PLAINTEXT://127.0.0.1:$sport,CONTROLLER://127.0.0.1:$cport|; s|^advertised.listeners=.*|advertised.listeners=PLAINTEXT://127.0.0.1:$port,SASL_PLAINTEXT://127.0.0.1:$sport|; s|^listener.security.protocol.map=.*|listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT|" "$d/server.properties"
    cat >>"$d/server.properties" <<PROPS
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_cx="cx-secret";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:ANONYMOUS
allow.everyone.if.no.acl.found=true
PROPS
  fi
  local scram=()
  if [ -n "${TLS_BASE:-}" ]; then
    local b=$TLS_BASE c=$TLS_CERTS
    local l1=$b l2=$((b + 1)) l3=$((b + 2)) l4=$((b + 3))
    for p in $l1 $l2 $l3 $l4; do wait_free "$p"; done
    sed -i "s|^listeners=.*|listeners=PLAINTEXT://127.0.0.1:$port,SSL://127.0.0.1:$l1,SASL_SSL://127.0.0.1:$l2,EXPIRED://127.0.0.1:$l3,MTLS://127.0.0.1:$l4,CONTROLLER://127.0.0.1:$cport|; s|^advertised.listeners=.*|advertised.listeners=PLAINTEXT://127.0.0.1:$port,SSL://127.0.0.1:$l1,SASL_SSL://127.0.0.1:$l2,EXPIRED://127.0.0.1:$l3,MTLS://127.0.0.1:$l4|; s|^listener.security.protocol.map=.*|listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL,EXPIRED:SSL,MTLS:SSL|" "$d/server.properties"
    cat >>"$d/server.properties" <<PROPS
ssl.keystore.type=PKCS12
ssl.keystore.location=$c/server.p12
ssl.keystore.password=changeit
ssl.key.password=changeit
ssl.truststore.type=PEM
ssl.truststore.location=$c/truststore.pem
listener.name.expired.ssl.keystore.type=PKCS12
listener.name.expired.ssl.keystore.location=$c/expired.p12
listener.name.expired.ssl.keystore.password=changeit
listener.name.expired.ssl.key.password=changeit
listener.name.mtls.ssl.client.auth=required
sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512,PLAIN
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_cx="cx-secret";
PROPS
    # SCRAM credentials live in the cluster metadata: Kafka's own tool writes them at format.
    scram=(--add-scram 'SCRAM-SHA-256=[name=cx,password=cx-secret]'
           --add-scram 'SCRAM-SHA-512=[name=cx,password=cx-secret]')
  fi
  if [ ! -f "$d/logs/meta.properties" ]; then
    # A random cluster id (base64url of 16 bytes); one starting with '-' would be read as an
    # option by the tool's argument parser (1 start in 64 failed that way).
    local id
    id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | cut -c1-22)
    while [ "${id#-}" != "$id" ]; do id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | cut -c1-22); done
    java -cp "$KAFKA_LIB/*" kafka.tools.StorageTool format -t "$id" \
      -c "$d/server.properties" "${scram[@]}" >"$d/format.log" 2>&1 || { cat "$d/format.log" >&2; return 1; }
  fi
  # exec, so the recorded pid is the JVM's own and kafka-down can reach it.
  [ -f "$d/kafka.log" ] && mv "$d/kafka.log" "$d/kafka.log.$(date +%s%N)"
  (exec java -Xms256m -Xmx512m -XX:+UseG1GC -cp "$KAFKA_LIB/*" kafka.Kafka "$d/server.properties") \
    </dev/null >"$d/kafka.log" 2>&1 &
  echo $! >"$d/kafka.pid"
  wait_ready kafka "$d/kafka.pid" 120 kafka_ready "$d" "$port"
}

kafka_down() { # dir [KILL]
  local d=$1 sig=${2:-TERM}
  [ -f "$d/kafka.pid" ] || return 0
  local pid; pid=$(cat "$d/kafka.pid")
  kill "-$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$d/kafka.pid"
}

registry_up() {
  local java; java=$(java_for_registry)
  [ -f "$APICURIO_HOME/quarkus-run.jar" ] || { echo "Apicurio missing in $APICURIO_HOME: run scripts/install-deps.sh" >&2; return 1; }
  wait_free "$REGISTRY_PORT"; wait_free "$REGISTRY_HTTPS_PORT"
  mkdir -p "$DIR/registry"
  # The management interface (health, metrics) is switched off: it would listen on 0.0.0.0.
  (cd "$DIR/registry" && exec "$java" -Xms128m -Xmx512m \
      -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$REGISTRY_PORT" \
      -Dquarkus.management.enabled=false -Dquarkus.log.level=WARN \
      -Dquarkus.http.access-log.enabled=false \
      -Dquarkus.http.ssl-port="$REGISTRY_HTTPS_PORT" \
      -Dquarkus.http.ssl.certificate.files="$DIR/certs/server.pem" \
      -Dquarkus.http.ssl.certificate.key-files="$DIR/certs/server.key" \
      -jar "$APICURIO_HOME/quarkus-run.jar") </dev/null >"$DIR/registry/registry.log" 2>&1 &
  echo $! >"$DIR/registry/registry.pid"
}

clickhouse_up() {
  wait_free "$CH_HTTP_PORT"; wait_free "$CH_TCP_PORT"; wait_free "$CH_HTTPS_PORT"
  mkdir -p "$DIR/ch/data" "$DIR/ch/tmp" "$DIR/ch/user_files" "$DIR/ch/format_schemas"
  cat >"$DIR/ch/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>$DIR/ch/server.log</log><errorlog>$DIR/ch/server.err.log</errorlog><size>100M</size><count>2</count></logger>
  <http_port>$CH_HTTP_PORT</http_port>
  <https_port>$CH_HTTPS_PORT</https_port>
  <tcp_port>$CH_TCP_PORT</tcp_port>
  <openSSL><server>
    <certificateFile>$DIR/certs/server.pem</certificateFile>
    <privateKeyFile>$DIR/certs/server.key</privateKeyFile>
    <verificationMode>none</verificationMode>
    <loadDefaultCAFile>false</loadDefaultCAFile>
    <cacheSessions>true</cacheSessions>
    <disableProtocols>sslv2,sslv3,tlsv1,tlsv1_1</disableProtocols>
    <preferServerCiphers>true</preferServerCiphers>
  </server></openSSL>
  <listen_host>127.0.0.1</listen_host>
  <max_connections>256</max_connections>
  <keep_alive_timeout>3</keep_alive_timeout>
  <max_concurrent_queries>100</max_concurrent_queries>
  <uncompressed_cache_size>1073741824</uncompressed_cache_size>
  <mark_cache_size>536870912</mark_cache_size>
  <path>$DIR/ch/data/</path>
  <tmp_path>$DIR/ch/tmp/</tmp_path>
  <user_files_path>$DIR/ch/user_files/</user_files_path>
  <format_schema_path>$DIR/ch/format_schemas/</format_schema_path>
  <users_config>$DIR/ch/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mlock_executable>false</mlock_executable>
</yandex>
XML
  cat >"$DIR/ch/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
XML
  # The compose stack's read-only Grafana user, from the very file the stack mounts, with two
  # substitutions for this server: a literal password (18.16 has no from_env) and the database
  # the check uses. A writer with a password, for the secrets checks.
  mkdir -p "$DIR/ch/users.d"
  sed -e 's|<clickhouse>|<yandex>|; s|</clickhouse>|</yandex>|' \
      -e 's|<password from_env="GRAFANA_CLICKHOUSE_PASSWORD"/>|<password>grafana-test-secret</password>|' \
      -e 's|<database>cx</database>|<database>cx_ro_check</database>|' \
      "$HERE/../deploy/clickhouse/grafana-user.xml" >"$DIR/ch/users.d/grafana.xml"
  cat >"$DIR/ch/users.d/writer.xml" <<XML
<?xml version="1.0"?>
<yandex><users><cx_writer><password>ch-writer-secret-1</password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></cx_writer></users></yandex>
XML
  (cd "$DIR/ch" && exec clickhouse-server --config-file="$DIR/ch/config.xml") </dev/null >"$DIR/ch/stdout.log" 2>&1 &
  echo $! >"$DIR/ch/ch.pid"
}

start() {
  rm -rf "$DIR"; mkdir -p "$DIR"
  local t0; t0=$(now_ms)
  # Certificates for the HTTPS ports of ClickHouse and the registry, made now (CA in certs/).
  "$HERE/make-certs.sh" "$DIR/certs"
  # The registry and ClickHouse start in the background while Kafka formats and boots.
  registry_up
  clickhouse_up
  kafka_up "$DIR/kafka" "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"
  local t_kafka; t_kafka=$(now_ms)
  wait_ready registry "$DIR/registry/registry.pid" 120 curl -sf "http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7/subjects"
  local t_registry; t_registry=$(now_ms)
  wait_ready clickhouse "$DIR/ch/ch.pid" 60 curl -sf "http://127.0.0.1:$CH_HTTP_PORT/?query=SELECT%201"
  echo "services up in $(( $(now_ms) - t0 )) ms (kafka ready at $(( t_kafka - t0 )) ms, registry at $(( t_registry - t0 )) ms; in parallel)" >&2
  echo "export CXP_KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT"
  echo "export CXP_SCHEMA_REGISTRY_URL=http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7"
  echo "export CXP_CLICKHOUSE_URL=http://127.0.0.1:$CH_HTTP_PORT"
  echo "export CXP_SERVICES_DIR=$DIR"
  echo "export CXP_KAFKA_LIB=$KAFKA_LIB"
  echo "export CXP_TEST_CA=$DIR/certs/ca.pem"
  echo "export CXP_CLICKHOUSE_HTTPS_URL=https://127.0.0.1:$CH_HTTPS_PORT"
  echo "export CXP_SCHEMA_REGISTRY_HTTPS_URL=https://127.0.0.1:$REGISTRY_HTTPS_PORT/apis/ccompat/v7"
}

stop_pid() { # pidfile
  [ -f "$1" ] || return 0
  local pid; pid=$(cat "$1")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 80); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$1"
}

stop() {
  # Extra brokers the tests started (kafka-up) live under $DIR too.
  for f in "$DIR"/*/kafka.pid "$DIR"/*/*/kafka.pid; do [ -f "$f" ] && kafka_down "$(dirname "$f")"; done
  stop_pid "$DIR/registry/registry.pid"
  stop_pid "$DIR/ch/ch.pid"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  kafka-up) kafka_up "$2" "$3" "$4" "${5:-}" ;;
  kafka-up-tls) TLS_BASE=$5 TLS_CERTS=$6 kafka_up "$2" "$3" "$4" ;;
  kafka-down) kafka_down "$2" "${3:-TERM}" ;;
  *) echo "usage: $0 start|stop|kafka-up DIR PORT CPORT [SASL_PORT]|kafka-down DIR [KILL]" >&2; exit 2 ;;
esac
