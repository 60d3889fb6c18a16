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

echo
echo "=== offline evaluation: records per second through IPS and SNIPS on one core, against decoding alone ==="
echo "    (a 100,000-record log of ResNet-50 with 127 arms, logged by epsilon-greedy: the dense worst case)"
mkdir -p out/bench
if [[ ! -s out/bench/traces/throttle-half-egreedy-seed0.jsonl ]]; then
  rm -rf out/bench/traces
  go run ./cmd/dynoctl sim --scenario scenarios/throttle-half.json --seeds 1 --requests 100000 \
    --policies egreedy --traces out/bench/traces >/dev/null
fi
go build -o out/bench/dynoctl ./cmd/dynoctl
out/bench/dynoctl eval --throughput --traces out/bench/traces/throttle-half-egreedy-seed0.jsonl \
  --dir examples/resnet50 --device phone-low --floor 0.745 --policies static --estimators ips,snips --bootstrap 0
