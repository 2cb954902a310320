#!/usr/bin/env bash
# Soak: the pipeline's memory over a 10-minute run at a steady rate (see benches/soak.rs).
# Starts the broker and ClickHouse like the test suite does and stops them afterwards.
#
#   scripts/bench-soak.sh                                  # 600 s at 1,500 msg/s
#   CXP_SOAK_SECS=1800 CXP_SOAK_RATE=3000 scripts/bench-soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/cxp/target}
export CXP_SERVICES_DIR=${CXP_SERVICES_DIR:-$(mktemp -d /tmp/cxp-soak.XXXXXX)}
scripts/install-deps.sh
cargo build --release --locked --bin cx-pipeline
cargo build --release --locked --bench soak
trap 'scripts/services.sh stop' EXIT
env_file=$(mktemp)
scripts/services.sh start > "$env_file"
# shellcheck disable=SC1090
source "$env_file"
ch_version=$(dpkg-query -W -f '${Version}' clickhouse-server 2>/dev/null || echo unknown)
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -m); broker: tansu (sqlite); ClickHouse $ch_version"
cargo bench --locked --bench soak
