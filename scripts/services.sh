#!/usr/bin/env bash
# Start or stop the real services the integration tests and local runs use:
# the tansu Kafka-API broker (sqlite storage) and a ClickHouse server run as a
# user process with its own data dir and ports. Everything lives under
# $CXP_SERVICES_DIR (default: a fresh temp dir) so no state leaks between runs.
#
#   scripts/services.sh start   # prints the env exports the tests read
#   scripts/services.sh stop
set -euo pipefail

DIR=${CXP_SERVICES_DIR:-/tmp/cxp-services}
TOOLS=${CXP_TOOLS_DIR:-$HOME/.cache/cxp/tools}
KAFKA_PORT=${CXP_KAFKA_PORT:-19092}
CH_HTTP_PORT=${CXP_CH_HTTP_PORT:-18123}
CH_TCP_PORT=${CXP_CH_TCP_PORT:-19000}

ensure_tansu() {
  if command -v tansu >/dev/null 2>&1; then command -v tansu; return; fi
  if [ -x "$TOOLS/bin/tansu" ]; then echo "$TOOLS/bin/tansu"; return; fi
  echo "installing tansu 0.6.0 into $TOOLS (about 10 minutes, once per machine)" >&2
  cargo install tansu --locked --version 0.6.0 --features dynostore,libsql --root "$TOOLS" >&2
  echo "$TOOLS/bin/tansu"
}

wait_port() { # host port what
  for _ in $(seq 1 120); do
    if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then return 0; fi
    sleep 0.5
  done
  echo "$3 did not open $1:$2" >&2; return 1
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() {
  for port in "$KAFKA_PORT" "$CH_HTTP_PORT" "$CH_TCP_PORT"; do
    for _ in $(seq 1 40); do port_free "$port" && break; sleep 0.25; done
    port_free "$port" || { echo "port $port is already in use: stop what holds it (scripts/services.sh stop)" >&2; exit 1; }
  done
  rm -rf "$DIR"; mkdir -p "$DIR/tansu" "$DIR/ch/data" "$DIR/ch/tmp" "$DIR/ch/user_files" "$DIR/ch/format_schemas"
  local tansu; tansu=$(ensure_tansu)
  # exec, so the recorded pid is the server's own and `stop` can reach it.
  (cd "$DIR/tansu" && exec "$tansu" broker \
      --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
      --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
      --storage-engine sqlite://tansu.db) </dev/null >"$DIR/tansu.log" 2>&1 &
  echo $! >"$DIR/tansu.pid"

  cat >"$DIR/ch/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>$DIR/ch/server.log</log><errorlog>$DIR/ch/server.err.log</errorlog><size>100M</size><count>2</count></logger>
  <http_port>$CH_HTTP_PORT</http_port>
  <tcp_port>$CH_TCP_PORT</tcp_port>
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
  (cd "$DIR/ch" && exec clickhouse-server --config-file="$DIR/ch/config.xml") </dev/null >"$DIR/ch/stdout.log" 2>&1 &
  echo $! >"$DIR/ch.pid"

  wait_port 127.0.0.1 "$KAFKA_PORT" tansu
  wait_port 127.0.0.1 "$CH_HTTP_PORT" clickhouse
  for p in tansu ch; do
    kill -0 "$(cat "$DIR/$p.pid")" 2>/dev/null || { echo "$p exited at startup; see $DIR" >&2; exit 1; }
  done
  echo "export CXP_KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT"
  echo "export CXP_CLICKHOUSE_URL=http://127.0.0.1:$CH_HTTP_PORT"
}

stop() {
  for p in tansu ch; do
    if [ -f "$DIR/$p.pid" ]; then
      kill "$(cat "$DIR/$p.pid")" 2>/dev/null || true
      for _ in $(seq 1 40); do kill -0 "$(cat "$DIR/$p.pid")" 2>/dev/null || break; sleep 0.25; done
      kill -9 "$(cat "$DIR/$p.pid")" 2>/dev/null || true
      rm -f "$DIR/$p.pid"
    fi
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
