#!/usr/bin/env bash
# Installs what the build and the tests need on a fresh machine, all of it cached so warm runs
# download nothing: OpenSSL's headers (librdkafka's TLS), ClickHouse server and Prometheus tools
# from Debian; Apache Kafka's broker jars and
# Apicurio Registry from Maven Central (through ~/.m2 into ~/.cache/cxp/tools); chdb and
# PyYAML from PyPI for the modern-dialect and deploy checks.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
need=()
command -v clickhouse-server >/dev/null 2>&1 || need+=(clickhouse-server clickhouse-client)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v amtool >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v mvn >/dev/null 2>&1 || need+=(maven)
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# librdkafka is built with TLS and SCRAM against the system's OpenSSL (security fixes come
# with the distribution's updates, no rebuild of a vendored copy).
dpkg -s libssl-dev >/dev/null 2>&1 || need+=(libssl-dev)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
# libFuzzer (scripts/fuzz.sh, through libfuzzer-sys) is C++.
command -v g++ >/dev/null 2>&1 || need+=(g++)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

TOOLS=${CXP_TOOLS_DIR:-$HOME/.cache/cxp/tools}
KAFKA_VERSION=4.4.0
APICURIO_VERSION=3.3.3
kafka_lib=$TOOLS/kafka-$KAFKA_VERSION/lib
if [ ! -f "$kafka_lib/kafka_2.13-$KAFKA_VERSION.jar" ]; then
  echo "resolving Apache Kafka $KAFKA_VERSION from Maven Central" >&2
  rm -rf "$kafka_lib.tmp"
  (cd "$HERE/services" && mvn -B -q -Dkafka.version="$KAFKA_VERSION" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$kafka_lib.tmp")
  rm -rf "$kafka_lib"; mv "$kafka_lib.tmp" "$kafka_lib"
fi
apicurio=$TOOLS/apicurio-registry-$APICURIO_VERSION
if [ ! -f "$apicurio/quarkus-run.jar" ]; then
  echo "resolving Apicurio Registry $APICURIO_VERSION from Maven Central" >&2
  rm -rf "$apicurio.tmp"; mkdir -p "$apicurio.tmp"
  mvn -B -q dependency:copy -Dartifact="io.apicurio:apicurio-registry-app:$APICURIO_VERSION:tar.gz:all" \
      -DoutputDirectory="$apicurio.tmp"
  tar -xzf "$apicurio.tmp/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz" -C "$apicurio.tmp"
  rm -f "$apicurio.tmp/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz"
  rm -rf "$apicurio"; mv "$apicurio.tmp" "$apicurio"
fi

python3 -c "import chdb" 2>/dev/null || python3 -m pip install -q chdb-core
python3 -c "import yaml" 2>/dev/null || python3 -m pip install -q pyyaml
