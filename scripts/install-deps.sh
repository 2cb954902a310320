#!/usr/bin/env bash
# Installs what the tests need on a fresh machine: ClickHouse server and Prometheus tools
# from Debian, and the tansu broker with cargo install (cached under ~/.cache/cxp/tools).
set -euo pipefail
need=()
command -v clickhouse-server >/dev/null 2>&1 || need+=(clickhouse-server clickhouse-client)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v amtool >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
TOOLS=${CXP_TOOLS_DIR:-$HOME/.cache/cxp/tools}
if ! command -v tansu >/dev/null 2>&1 && [ ! -x "$TOOLS/bin/tansu" ]; then
  echo "installing the tansu broker (once per machine, about 10 minutes)" >&2
  cargo install tansu --locked --version 0.6.0 --features dynostore,libsql --root "$TOOLS"
fi
python3 -c "import chdb" 2>/dev/null || python3 -m pip install -q chdb-core
python3 -c "import yaml" 2>/dev/null || python3 -m pip install -q pyyaml
