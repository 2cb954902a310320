#!/usr/bin/env bash
# The whole test suite: installs what is missing (scripts/install-deps.sh), starts Apache
# Kafka, the schema registry and ClickHouse on loopback (scripts/services.sh), runs every
# test (unit and property tests in a debug build and in release, integration, the crash and
# rebalance battery, 60 s of fuzzing per target: scripts/fuzz.sh), stops the services.
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh crash` runs the tests whose name
# contains "crash"; the integration suite is one binary, `--test it`).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/cxp/target}
export CXP_SERVICES_DIR=${CXP_SERVICES_DIR:-$(mktemp -d /tmp/cxp-test.XXXXXX)}
scripts/install-deps.sh
trap 'scripts/services.sh stop' EXIT
env_file=$(mktemp)
scripts/services.sh start > "$env_file"
# shellcheck disable=SC1090
source "$env_file"
python3 tests/modern/check_ddl.py
cargo build --release --locked --bin cx-pipeline
python3 tests/deploy/check_deploy.py
# Unit and property tests in a debug build too: overflow checks and debug_asserts on.
cargo test --locked --lib "$@"
cargo test --release --locked --lib --bins --tests "$@"
# The whole suite (no filter) also fuzzes each target for a bounded time.
if [ $# -eq 0 ]; then
  scripts/fuzz.sh "${CXP_FUZZ_SECONDS:-60}"
fi
