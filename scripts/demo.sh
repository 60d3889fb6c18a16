#!/usr/bin/env bash
# make demo: the most complete part of dyno that exists today.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin out/demo
echo "demo: building dynoctl"
go build -o bin/dynoctl ./cmd/dynoctl

cat <<'TXT'

=== dyno demo ===
What this shows, in three steps, on ResNet-50 with profiles derived from
published device figures (examples/) and a real 3G bandwidth trace
(../shared/traces/norway-3g):
  1. DynO's static cost model: every arm (split, bits) ranked, and how the
     static choice moves with the link.
  2. Learning, SIMULATED: dyno's contextual bandit against the baselines on a
     low-end phone that throttles to half speed halfway through 20,000
     requests; regret against a per-request oracle and recovery after the
     change. Every figure here is simulated, not measured on a device.
  3. Offline evaluation of the trace log dyno left behind: what static DynO,
     device-only and cloud-only would have cost on the same traffic, with
     intervals, and a report folder with plots.
Not in this demo yet: the controller serving real executors. The controller
exists (dyno-controller, dynoctl status/pin/reset, see docs/controller.md),
but the device and cloud executors that would run the ONNX blocks and send
the activations do not, so the whole loop cannot run end to end today.

TXT
echo "--- 1. static DynO: ResNet-50 on a low-end phone, min-latency, accuracy floor 0.75, at 0.5 and 20 Mbit/s"
bin/dynoctl plan --dir examples/resnet50 --device phone-low --bandwidth 0.5 --bandwidth 20 --rtt 40 --floor 0.75 --top 4
echo
echo "--- 2. learning (simulated): scenarios/throttle-half.json, one seed, 20,000 requests"
rm -rf out/demo/traces
bin/dynoctl sim --scenario scenarios/throttle-half.json --seeds 1 --policies dyno,static,ans,egreedy,device,cloud \
  --traces out/demo/traces --curves out/demo/curves
echo "(learning curves: out/demo/curves; trace records: out/demo/traces)"
echo
echo "--- 3. offline evaluation: what would static DynO, device-only and cloud-only have cost on the traffic"
echo "    that epsilon-greedy logged in step 2? (Their simulated mean costs in step 2 are the truth to compare with.)"
bin/dynoctl eval --traces out/demo/traces/throttle-half-egreedy-seed0.jsonl --dir examples/resnet50 --device phone-low \
  --floor 0.745 --policies static,device,cloud --estimators ips,snips,dr,switch-dr --report out/demo/eval --no-progress
echo
echo "--- and on dyno's own log, which concentrates on the arms it learned are best: the diagnostics say why"
echo "    those estimates cannot be trusted"
bin/dynoctl eval --traces out/demo/traces/throttle-half-dyno-seed0.jsonl --dir examples/resnet50 --device phone-low \
  --floor 0.745 --policies static,device --estimators ips,snips,dr --bootstrap 0 --no-progress | tail -6
echo
echo "demo: done. Report with plots: out/demo/eval/report.md"
