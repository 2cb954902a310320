#!/usr/bin/env bash
# Soak: the pipeline's memory over a 10-minute run at a steady rate (see benches/soak.rs),
# with the broker and ClickHouse started and stopped as for the end-to-end benchmark.
#
#   scripts/bench-soak.sh                                  # 600 s at 1,500 msg/s
#   CXP_SOAK_SECS=1800 CXP_SOAK_RATE=3000 scripts/bench-soak.sh
exec "$(dirname "$0")/bench-e2e.sh" soak
