#!/usr/bin/env bash
# Fuzzes the decoders, the framing, checkpoint decoding and config parsing (fuzz/, libFuzzer
# through cargo-fuzz, on the stable toolchain without a sanitizer; debug assertions and
# overflow checks on). Each target runs SECONDS (default 60) from the checked-in seeds
# (fuzz/seeds/<target>, rebuilt by `CXP_WRITE_SEEDS=1 cargo test --test it fuzz_seeds`) plus
# a corpus kept under ~/.cache/cxp/fuzz-corpus, and reports its executions. A crash, a
# timeout (10 s per input) or an allocation over 1 GiB fails the run; the input is saved in
# fuzz/artifacts/<target>/ and becomes a regression test.
#
#   scripts/fuzz.sh            # every target, 60 s each (what CI runs)
#   scripts/fuzz.sh 3600 decode  # a long run of one target
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
targets=${*:-decode framing checkpoint config}
if ! cargo fuzz --version 2>/dev/null | grep -q "0.13.2"; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi
target_dir=$HOME/.cache/cxp/fuzz-target
cargo fuzz build -s none --target-dir "$target_dir"
for t in $targets; do
  corpus=$HOME/.cache/cxp/fuzz-corpus/$t
  mkdir -p "$corpus"
  log=$(mktemp)
  if ! cargo fuzz run -s none --target-dir "$target_dir" "$t" "$corpus" "fuzz/seeds/$t" -- \
      -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
      -malloc_limit_mb=1024 -print_final_stats=1 > "$log" 2>&1; then
    tail -60 "$log"
    echo "fuzz: $t failed; the input is in fuzz/artifacts/$t/" >&2
    exit 1
  fi
  execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log")
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1)
  echo "fuzz: $t: ${execs:-?} executions in $secs s ($cov)"
  rm -f "$log"
done
