#!/usr/bin/env bash
# make bench: the benchmark summaries. Each prints figures against a
# baseline measured in the same run (machines are noisy), never a bare time.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "=== activation packing: 1 M-element float32 tensor, one goroutine (executor/packing) ==="
go run ./executor/packing/internal/packbench
if [ -d bandit ] && ls bandit/*_bench_test.go >/dev/null 2>&1; then
  echo
  echo "=== bandit: choose and learn with 100 arms (go test -bench) ==="
  go test -run '^$' -bench . -benchmem ./bandit/
fi
