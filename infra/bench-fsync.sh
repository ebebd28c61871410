#!/usr/bin/env bash
# What writing to disk before acknowledging costs the write side: the append
# benchmark (commands/benches/append.rs) run twice in one go, against two NATS
# servers of the same version started here on free ports: one with
# infra/nats.conf (`sync_interval: always`, what rapat ships) and one with NATS's
# default (fsync every two minutes). Extra arguments are passed to both runs as
# environment, e.g. BENCH_SECONDS=10 BENCH_IN_FLIGHT=1,64 infra/bench-fsync.sh
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$repo_root"

bin=$(infra/services.sh nats-bin)
version=$("$bin" --version)

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start() { # name config -> port
  local port
  port=$(free_port)
  "$bin" -c "$2" -js -a 127.0.0.1 -p "$port" -sd "$work/$1" >"$work/$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 80); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && { echo "$port"; return 0; }
    sleep 0.25
  done
  echo "bench-fsync.sh: nats-server ($1) did not start" >&2
  exit 1
}

printf 'jetstream {}\nmax_payload: 1MB\n' >"$work/default.conf"
synced=$(start synced infra/nats.conf)
unsynced=$(start unsynced "$work/default.conf")

cargo bench -p rapat-commands --bench append --no-run >/dev/null 2>&1 || cargo bench -p rapat-commands --bench append --no-run
echo "== $version, sync_interval: always (fsync before every acknowledgement; what rapat ships)"
env NATS_URL=nats://127.0.0.1:$synced "$@" cargo bench -q -p rapat-commands --bench append
echo
echo "== $version, NATS's default (fsync every 2 minutes)"
env NATS_URL=nats://127.0.0.1:$unsynced "$@" cargo bench -q -p rapat-commands --bench append
