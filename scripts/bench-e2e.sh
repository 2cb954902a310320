#!/usr/bin/env bash
# End-to-end benchmark: raw consume rate vs the full pipeline on the same topics of the same
# broker, side by side in one run, printed as a table (see benches/e2e.rs). Starts the
# broker (Apache Kafka) and ClickHouse like the test suite does and stops them afterwards. With `soak`, runs
# benches/soak.rs instead (scripts/bench-soak.sh).
#
#   scripts/bench-e2e.sh                       # 2,000,000 messages, 3 alternating runs
#   CXP_BENCH_EVENTS=5000000 CXP_BENCH_RUNS=5 scripts/bench-e2e.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/cxp/target}
export CXP_SERVICES_DIR=${CXP_SERVICES_DIR:-$(mktemp -d /tmp/cxp-bench.XXXXXX)}
scripts/install-deps.sh
cargo build --release --locked --bin cx-pipeline
bench=${1:-e2e}
cargo build --release --locked --bench "$bench"
trap 'scripts/services.sh stop' EXIT
env_file=$(mktemp)
scripts/services.sh start > "$env_file"
# shellcheck disable=SC1090
source "$env_file"
ch_version=$(dpkg-query -W -f '${Version}' clickhouse-server 2>/dev/null || echo unknown)
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -m); broker: Apache Kafka 4.4.0 (KRaft, one node, JVM -Xmx512m); ClickHouse $ch_version"
cargo bench --locked --bench "$bench"
