#!/usr/bin/env bash
# Checks what `make test` relies on: `scripts/influxd.sh with CMD` stops an
# influxd it started for CMD (also when CMD fails), and leaves alone one that
# was already running. It uses its own free port, never the one tests share.
set -euo pipefail
cd "$(dirname "$0")/.."
port=
for _ in $(seq 1 100); do
  p=$((20000 + RANDOM % 30000))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && ! (exec 3<>"/dev/tcp/127.0.0.1/$((p + 1))") 2>/dev/null; then
    port=$p
    break
  fi
done
[ -n "$port" ] || { echo "influxd-check: no free port" >&2; exit 1; }
export DYNO_INFLUXD_PORT=$port
url=http://127.0.0.1:$port
up() { curl -sf "$url/ping" >/dev/null 2>&1; }
fail() { ./scripts/influxd.sh stop 2>/dev/null || true; echo "influxd-check: $*" >&2; exit 1; }

./scripts/influxd.sh build
up && fail "something already answers on $url"
# Started for the command, stopped after it, the command's status kept.
rc=0
./scripts/influxd.sh with bash -c "curl -sf $url/ping >/dev/null && exit 7" 2>/dev/null || rc=$?
[ "$rc" -eq 7 ] || fail "with: exit $rc, want the command's 7 (or influxd was not up during it)"
up && fail "with left the influxd it started running"
# Already running: used and left running.
./scripts/influxd.sh start >/dev/null 2>&1
./scripts/influxd.sh with true 2>/dev/null || fail "with failed beside a running influxd"
up || fail "with stopped an influxd it had not started"
./scripts/influxd.sh stop 2>/dev/null
up && fail "stop left it running"
rm -rf ".cache/influxd/$port"
echo "influxd-check: make test stops the influxd it starts and leaves a running one alone (port $port)" >&2
