#!/usr/bin/env bash
# A 3-node NATS cluster on loopback, for rapat with RAPAT_STREAM_REPLICAS=3.
#
#   infra/services.sh cluster start    start the nodes (those not running); print NATS_URL
#   infra/services.sh cluster stop     stop the nodes this script started
#   infra/services.sh cluster status   report each node
#
# Node i (1..3) listens for clients on 127.0.0.1:<base+i-1> (base:
# RAPAT_NATS_CLUSTER_PORT, default 4231), for its peers on that port + 2000 and
# for monitoring on + 4000. Its configuration, store and log are in
# $RAPAT_DATA_DIR/nats-cluster/n<i>. It runs the nats-server >= 2.10 that
# `services.sh nats-bin` provides, with JetStream writing to disk before it
# acknowledges (`sync_interval: always`). Logs go to stderr; stdout carries only
# the NATS_URL (comma-separated, as rapat takes it).
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo_root=$(cd "$script_dir/.." && pwd -P)
data_dir=${RAPAT_DATA_DIR:-$repo_root/.data}
[[ $data_dir == /* ]] || data_dir=$PWD/$data_dir
base=${RAPAT_NATS_CLUSTER_PORT:-4231}
wait_secs=${RAPAT_SERVICES_WAIT:-60}
cluster_dir=$data_dir/nats-cluster
nodes=(1 2 3)

log() { printf 'nats-cluster: %s\n' "$*" >&2; }
die() { printf 'nats-cluster: error: %s\n' "$*" >&2; exit 1; }

[[ $base =~ ^[0-9]+$ ]] && ((base > 0 && base + 4002 < 65536)) || die "RAPAT_NATS_CLUSTER_PORT=$base is not a usable port"

client_port() { echo $((base + $1 - 1)); }
route_port() { echo $((base + 2000 + $1 - 1)); }
monitor_port() { echo $((base + 4000 + $1 - 1)); }
node_dir() { echo "$cluster_dir/n$1"; }

nats_url() {
  local i urls=()
  for i in "${nodes[@]}"; do urls+=("nats://127.0.0.1:$(client_port "$i")"); done
  local IFS=,
  echo "${urls[*]}"
}

node_pid() { # prints the pid of node i when it runs
  local pidfile pid
  pidfile=$(node_dir "$1")/nats.pid
  [[ -s $pidfile ]] || return 1
  pid=$(<"$pidfile")
  kill -0 "$pid" 2>/dev/null || return 1
  [[ $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) == *nats-server* ]] || return 1
  echo "$pid"
}

healthy() { # node i answers /healthz (JetStream up, meta leader known) with 200
  local status
  # shellcheck disable=SC2016 # expanded by the inner bash
  status=$(timeout 3 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" >&3
    IFS= read -r -t 2 line <&3 || exit 1
    printf "%s\n" "$line"
  ' _ "$(monitor_port "$1")" 2>/dev/null) || return 1
  [[ $status == *" 200"* ]]
}

write_config() { # node i
  local i=$1 dir routes=() j
  dir=$(node_dir "$i")
  for j in "${nodes[@]}"; do routes+=("nats-route://127.0.0.1:$(route_port "$j")"); done
  mkdir -p "$dir/store"
  cat >"$dir/nats.conf" <<CONF
# Written by infra/nats-cluster.sh; rewritten on every start.
server_name: rapat-n$i
listen: 127.0.0.1:$(client_port "$i")
http: 127.0.0.1:$(monitor_port "$i")
max_payload: 1MB
jetstream {
  store_dir: "$dir/store"
  # Write to disk before acknowledging (SPEC §8); needs NATS >= 2.10.
  sync_interval: always
}
cluster {
  name: rapat
  listen: 127.0.0.1:$(route_port "$i")
  routes: [$(IFS=,; echo "${routes[*]}")]
}
CONF
}

cmd_start() {
  local bin i pid deadline
  bin=$("$script_dir/services.sh" nats-bin) || die "no nats-server >= 2.10 (see infra/services.sh nats-bin)"
  mkdir -p "$cluster_dir"
  for i in "${nodes[@]}"; do
    if pid=$(node_pid "$i"); then
      log "node $i runs already (pid $pid)"
      continue
    fi
    write_config "$i"
    log "starting node $i: clients 127.0.0.1:$(client_port "$i"), routes :$(route_port "$i"), log $(node_dir "$i")/nats.log"
    local -a launcher=()
    command -v setsid >/dev/null 2>&1 && launcher=(setsid)
    "${launcher[@]}" "$bin" -c "$(node_dir "$i")/nats.conf" -P "$(node_dir "$i")/nats.pid" \
      >>"$(node_dir "$i")/nats.log" 2>&1 </dev/null &
  done
  # A node is healthy once the others answer: wait for all of them together.
  deadline=$((SECONDS + wait_secs))
  for i in "${nodes[@]}"; do
    until healthy "$i"; do
      if ((SECONDS >= deadline)); then
        tail -n 20 "$(node_dir "$i")/nats.log" >&2 || true
        die "node $i is not healthy after ${wait_secs}s"
      fi
      sleep 0.25
    done
  done
  log "3-node cluster up; run rapat with RAPAT_STREAM_REPLICAS=3 and this NATS_URL"
  printf 'NATS_URL=%s\n' "$(nats_url)"
}

cmd_stop() {
  local i pid n stopped=
  for i in "${nodes[@]}"; do
    pid=$(node_pid "$i") || continue
    log "stopping node $i (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((n = 0; n < 60; n++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    rm -f "$(node_dir "$i")/nats.pid"
    stopped=1
  done
  [[ -n $stopped ]] || log "no node of this script's cluster runs (data dir $data_dir)"
  return 0
}

cmd_status() {
  local i pid state
  for i in "${nodes[@]}"; do
    if pid=$(node_pid "$i"); then
      if healthy "$i"; then state=healthy; else state="not healthy"; fi
      log "node $i: pid $pid, 127.0.0.1:$(client_port "$i"), $state"
    else
      log "node $i: not running"
    fi
  done
  log "NATS_URL=$(nats_url)"
}

case ${1:-start} in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  -h | --help) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2 ;;
  *) die "unknown argument: $1 (start, stop or status)" ;;
esac
