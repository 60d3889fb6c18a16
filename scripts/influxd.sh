#!/usr/bin/env bash
# influxd 1.8.3 for the tests and the demo, built from the Go module proxy
# into .cache/bin (no downloads of prebuilt binaries).
#
#   scripts/influxd.sh build   build .cache/bin/influxd if missing (about 2-4 minutes)
#   scripts/influxd.sh start   build, then start it on a loopback port with Flux on
#                              (data in .cache/influxd/PORT/, log in .cache/influxd/PORT/influxd.log);
#                              prints the URL; no-op when already running
#   scripts/influxd.sh stop    stop the one started here
#   scripts/influxd.sh with CMD...
#                              run CMD with influxd serving: when one started here
#                              is running already it is used and left running;
#                              otherwise one is started for CMD and stopped after
#                              it (also when CMD fails or is interrupted); exits
#                              with CMD's status
#   scripts/influxd.sh url     print the URL of the running one
#
# DYNO_INFLUXD_PORT picks the HTTP port (default 18086).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bin=$root/.cache/bin/influxd
port=${DYNO_INFLUXD_PORT:-18086}
data=$root/.cache/influxd/$port
url=http://127.0.0.1:$port

build() {
  if [ -x "$bin" ]; then
    return
  fi
  echo "influxd: building influxd 1.8.3 from the Go module proxy into .cache/bin (about 2-4 minutes, once)" >&2
  mkdir -p "$root/.cache/bin"
  GOBIN=$root/.cache/bin go install github.com/influxdata/influxdb/cmd/influxd@v1.8.3
  echo "influxd: built $bin" >&2
}

running() {
  [ -f "$data/influxd.pid" ] && kill -0 "$(cat "$data/influxd.pid")" 2>/dev/null
}

start() {
  build
  if running; then
    echo "$url"
    return
  fi
  # Something else on the port (another checkout's influxd, say) would
  # answer the ping below while ours fails to bind: refuse instead.
  if curl -sf "$url/ping" >/dev/null 2>&1; then
    echo "influxd: another server already answers on $url (not the one of $data): stop it, or set DYNO_INFLUXD_PORT to a free port" >&2
    exit 1
  fi
  mkdir -p "$data"
  cat >"$data/influxd.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:$((port + 1))"
[meta]
  dir = "$data/meta"
[data]
  dir = "$data/data"
  wal-dir = "$data/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:$port"
  flux-enabled = true
  log-enabled = false
[monitor]
  store-enabled = false
CONF
  nohup "$bin" -config "$data/influxd.conf" >"$data/influxd.log" 2>&1 &
  echo $! >"$data/influxd.pid"
  for _ in $(seq 1 100); do
    if running && curl -sf "$url/ping" >/dev/null 2>&1; then
      # The database the controller writes to (bucket "dyno/autogen").
      curl -sf -XPOST "$url/query" --data-urlencode "q=CREATE DATABASE dyno" >/dev/null
      echo "influxd: serving on $url (Flux on; database dyno, bucket dyno/autogen)" >&2
      echo "$url"
      return
    fi
    sleep 0.1
  done
  echo "influxd: did not start; see $data/influxd.log" >&2
  exit 1
}

stop() {
  if running; then
    local pid
    pid=$(cat "$data/influxd.pid")
    kill "$pid"
    # Wait for it to let go of its port and files.
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    rm -f "$data/influxd.pid"
    echo "influxd: stopped (pid $pid)" >&2
  fi
}

# with runs "$@" against a running influxd, stopping it afterwards only when
# it was started for "$@".
with() {
  if running; then
    echo "influxd: using the one already serving on $url (left running)" >&2
    "$@"
    return
  fi
  trap stop EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  start >/dev/null
  "$@"
}

case "${1:-start}" in
  build) build ;;
  start) start ;;
  stop) stop ;;
  url) running && echo "$url" ;;
  with)
    shift
    [ $# -gt 0 ] || { echo "usage: $0 with CMD [ARG...]" >&2; exit 2; }
    with "$@"
    ;;
  *) echo "usage: $0 build|start|stop|url|with CMD..." >&2; exit 2 ;;
esac
