#!/usr/bin/env bash
# Build every model dyno ships into models/ (ignored by git), skipping what is
# already built:
#
#   models/<name>/model.onnx        the whole model
#   models/<name>/blocks/*.onnx     one ONNX file per block
#   models/<name>/model.json        the manifest (shapes, FLOPs, params)
#   models/<name>/profiles/*.json   block latencies on this host: <class>.json as
#                                   device, <class>-cloud.json as cloud
#   models/<name>/accuracy.json     accuracy of every arm (split, bits)
#
# The zoo (resnet50, mobilenetv2, tinynet) is generated with seeded weights;
# mnist is the reference classifier, trained here (about two minutes on two
# cores) and cached. Each step writes a stamp (a hash of the code and
# settings it depends on) and is skipped while the stamp matches; profiles
# are also stamped with the host name. FORCE=1 rebuilds everything.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out="$root/models"
bin="$root/.cache/bin"
mkdir -p "$out" "$bin"

say() { echo "models: $*"; }

# hash FILES... prints a short hash of the files' contents and names, plus
# $EXTRA (settings).
hash() {
  { for f in "$@"; do echo "== $f"; cat "$f"; done; echo "== settings ${EXTRA:-}"; } | sha256sum | cut -c1-16
}
gofiles() { find "$@" -maxdepth 1 -name '*.go' ! -name '*_test.go' | LC_ALL=C sort; }

# fresh DIR STEP STAMP: true if DIR/.stamp-STEP holds STAMP.
fresh() { [ -z "${FORCE:-}" ] && [ -f "$1/.stamp-$2" ] && [ "$(cat "$1/.stamp-$2")" = "$3" ]; }
stamp() { echo "$3" >"$1/.stamp-$2"; }

say "building dynoctl and dyno-executor into .cache/bin"
go build -o "$bin/" ./cmd/dynoctl ./cmd/dyno-executor
dynoctl="$bin/dynoctl"
executor="$bin/dyno-executor"

seed=1
split_code=$(gofiles model model/onnxpb)
host=$(uname -n)

# The zoo.
for name in resnet50 mobilenetv2 tinynet; do
  dir="$out/$name"
  mkdir -p "$dir"
  # shellcheck disable=SC2086
  s=$(EXTRA="zoo $name seed=$seed" hash $split_code)
  if fresh "$dir" build "$s" && [ -f "$dir/model.json" ]; then
    say "$name: up to date (stamp $s)"
  else
    say "$name: generating with seed $seed and splitting at its units"
    "$dynoctl" model zoo --name "$name" --seed "$seed" --out "$out"
    stamp "$dir" build "$s"
    rm -f "$dir"/.stamp-profile-* "$dir"/.stamp-calibrate
  fi
done

# The reference classifier: training is cached on its own stamp, so a
# change to the splitter re-splits without retraining.
dir="$out/mnist"
mkdir -p "$dir"
# shellcheck disable=SC2046
t=$(EXTRA="mnist seed=$seed epochs=3 batch=64 lr=0.05 momentum=0.9 workers=2" hash $(gofiles model/mnist) model/build.go model/tensor.go)
if fresh "$dir" train "$t" && [ -f "$dir/model.onnx" ]; then
  say "mnist: trained model up to date (stamp $t, $(grep -o '"test_accuracy": [0-9.]*' "$dir/train.json" 2>/dev/null || echo 'no train.json'))"
else
  say "mnist: training the reference classifier (3 epochs on 60,000 images; about two minutes)"
  start=$(date +%s)
  "$dynoctl" model mnist --out "$dir" --seed "$seed" --epochs 3
  say "mnist: trained in $(( $(date +%s) - start )) s"
  stamp "$dir" train "$t"
  stamp "$dir" build "none"
fi
# shellcheck disable=SC2086
s=$(EXTRA="mnist split train=$t" hash $split_code)
if fresh "$dir" build "$s" && [ -f "$dir/model.json" ]; then
  say "mnist: split up to date (stamp $s)"
else
  say "mnist: splitting"
  # --force: profiles and the accuracy table of an earlier split are
  # cleared (they are rebuilt below).
  "$dynoctl" model split "$dir/model.onnx" --out "$dir" --name mnist --force
  stamp "$dir" build "$s"
  rm -f "$dir"/.stamp-profile-* "$dir"/.stamp-calibrate
fi

# Profiles of this host, both roles (emulation runs device and cloud here).
profile_code=$(gofiles executor/profile executor/ort executor/packing)
class="$(uname -m | sed 's/x86_64/amd64/;s/aarch64/arm64/')-$(nproc)cpu" # as profile.DefaultClass
for name in resnet50 mobilenetv2 tinynet mnist; do
  dir="$out/$name"
  runs=30
  case $name in resnet50) runs=8 ;; mobilenetv2) runs=15 ;; esac
  # shellcheck disable=SC2086
  s=$(EXTRA="profile $name runs=$runs host=$host build=$(cat "$dir/.stamp-build")" hash $profile_code)
  if fresh "$dir" profile "$s" && [ -f "$dir/profiles/$class.json" ] && [ -f "$dir/profiles/$class-cloud.json" ]; then
    say "$name: profiles for $host up to date"
    continue
  fi
  say "$name: profiling on $host as device class $class ($runs runs per block)"
  "$executor" profile "$dir" --role device --class "$class" --runs "$runs" --warmup 2 2>&1 | (grep -v 'level=INFO' || true)
  say "$name: profiling on $host as cloud class $class-cloud"
  "$executor" profile "$dir" --role cloud --class "$class-cloud" --runs "$runs" --warmup 2 2>&1 | (grep -v 'level=INFO' || true)
  stamp "$dir" profile "$s"
done

# Accuracy tables: the labelled MNIST test set for the classifier, top-1
# agreement on random inputs for the zoo (cheap: a few inputs for the large
# models; calibrate them on real data with `dyno-executor calibrate --data
# DIR` and a folder of .npy inputs, see docs/models.md).
for spec in "mnist mnist 2000" "tinynet random 64" "mobilenetv2 random 8" "resnet50 random 2"; do
  read -r name data samples <<<"$spec"
  dir="$out/$name"
  # shellcheck disable=SC2086
  s=$(EXTRA="calibrate $name $data $samples build=$(cat "$dir/.stamp-build")" hash $profile_code)
  if fresh "$dir" calibrate "$s" && [ -f "$dir/accuracy.json" ]; then
    say "$name: accuracy table up to date"
    continue
  fi
  say "$name: calibrating every (split, bits) on $samples $data inputs"
  start=$(date +%s)
  "$executor" calibrate "$dir" --data "$data" --samples "$samples" 2>&1 | (grep -v 'level=INFO' || true)
  say "$name: calibrated in $(( $(date +%s) - start )) s"
  stamp "$dir" calibrate "$s"
done
say "done: $(cd "$out" && ls -d */ | tr -d / | tr '\n' ' ')in $out"
