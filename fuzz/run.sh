#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 60) from its seed corpus in fuzz/corpus/<target>
# (new inputs libFuzzer finds go to target/fuzz-corpus/<target>, not into the repository),
# then prints each target's executions and whether it found a crash. Needs the nightly
# toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Exits non-zero on any crash.
#
#   fuzz/run.sh 600          # ten minutes per target
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_PER_TARGET=${1:-60}
targets=$(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^autoencoder-fuzz$')
cargo +nightly fuzz build --release >/dev/null 2>&1 || cargo +nightly fuzz build --release
failed=0
for t in $targets; do
  work="../target/fuzz-corpus/$t"
  mkdir -p "$work"
  log="../target/fuzz-corpus/$t.log"
  if cargo +nightly fuzz run --release "$t" "$work" "corpus/$t" -- \
      -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=4096 >"$log" 2>&1; then
    status="0 crashes"
  else
    status="CRASH (see $log and fuzz/artifacts/$t)"
    failed=1
  fi
  execs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -1)
  echo "$t: $execs executions in ${SECONDS_PER_TARGET}s, $status"
done
exit $failed
