# Shared by run-e2e.sh and run-schemathesis.sh (sourced, not run): build `rapat`,
# start `rapat serve` on free ports with a namespace and a database of its own,
# wait for /readyz, and on exit stop it, drop the database and delete the
# namespace's streams. The caller defines log() and die() and has run
# infra/services.sh (NATS_URL, DATABASE_URL); node and npm are needed for the
# clean-up (e2e/cleanup-nats.mjs and its NATS client, installed here if missing).
#
#   build_rapat                         sets rapat_bin
#   prepare_test_server NAME            sets run_id, namespace, database, db_url,
#                                       http_port, udp_port, base_url
#   start_test_server LOG KEEP VAR=...  starts it with its own settings plus
#                                       VAR=... ; KEEP=1 keeps database and streams

build_rapat() {
  log "building rapat"
  cargo build --bin rapat
  local target_dir=${CARGO_TARGET_DIR:-$repo_root/target}
  [[ $target_dir == /* ]] || target_dir=$repo_root/$target_dir
  rapat_bin=$target_dir/debug/rapat
  [[ -x $rapat_bin ]] || die "no binary at $rapat_bin after the build"
}

# A free TCP or UDP port on loopback, asked of the kernel.
free_port() { # tcp | udp
  if ! command -v node >/dev/null 2>&1; then
    python3 -c '
import socket, sys
kind = socket.SOCK_DGRAM if sys.argv[1] == "udp" else socket.SOCK_STREAM
with socket.socket(socket.AF_INET, kind) as s:
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])' "$1"
    return
  fi
  node -e '
    const kind = process.argv[1];
    if (kind === "udp") {
      const s = require("dgram").createSocket("udp4");
      s.bind(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });
    } else {
      const s = require("net").createServer();
      s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });
    }' "$1"
}

prepare_test_server() { # name
  run_id="$(date +%s)_$$"
  namespace="$1_${run_id}"
  database="rapat_$1_${run_id}"
  base_db_url=${DATABASE_URL%%\?*}
  db_query=""
  [[ $DATABASE_URL == *\?* ]] && db_query="?${DATABASE_URL#*\?}"
  db_url="${base_db_url%/*}/${database}${db_query}"
  http_port=$(free_port tcp)
  udp_port=$(free_port udp)
  base_url="http://127.0.0.1:${http_port}"
}

# The HTTP status of GET base_url + path, over bash's /dev/tcp (no curl needed).
http_status() { # path
  local status_line
  # shellcheck disable=SC2016 # expanded by the inner bash
  status_line=$(timeout 5 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" "$2" >&3
    IFS= read -r line <&3 && printf "%s\n" "$line"' _ "$http_port" "$1" 2>/dev/null) || return 1
  status_line=${status_line#HTTP/* }
  printf '%s\n' "${status_line%% *}"
}

test_server_pid=""
test_server_keep=""
# Helpers the caller started for the server (a TURN server), stopped with it.
test_server_helpers=()
stop_test_server() {
  local rc=$? pid
  for pid in "${test_server_helpers[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  if [[ -n $test_server_pid ]] && kill -0 "$test_server_pid" 2>/dev/null; then
    kill "$test_server_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$test_server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$test_server_pid" 2>/dev/null || true
  fi
  if [[ $test_server_keep != 1 ]]; then
    if command -v psql >/dev/null 2>&1; then
      psql "${base_db_url%/*}/postgres${db_query}" -qtAc "DROP DATABASE IF EXISTS \"${database}\" WITH (FORCE)" >/dev/null 2>&1 ||
        log "could not drop database ${database}"
    else
      log "psql not found: database ${database} is left behind"
    fi
    if command -v node >/dev/null 2>&1; then
      if [[ ! -d $repo_root/e2e/node_modules/nats ]]; then
        (cd "$repo_root/e2e" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error) >&2 ||
          log "npm ci in e2e/ failed"
      fi
      node "$repo_root/e2e/cleanup-nats.mjs" "$namespace" || log "could not delete the streams of namespace ${namespace}"
    else
      log "node not found: the streams of namespace ${namespace} are left behind"
    fi
  else
    log "kept database ${database} and namespace ${namespace}"
  fi
  exit "$rc"
}

start_test_server() { # log keep VAR=value...
  local server_log=$1 ready=0
  test_server_keep=$2
  shift 2
  trap stop_test_server EXIT
  trap 'exit 130' INT TERM
  log "starting rapat serve on ${base_url} (namespace ${namespace}, database ${database}, log ${server_log})"
  env RAPAT_NAMESPACE="$namespace" \
    DATABASE_URL="$db_url" \
    RAPAT_HTTP_ADDR="127.0.0.1:${http_port}" \
    RAPAT_SFU_UDP_ADDR="127.0.0.1:${udp_port}" \
    RAPAT_SFU_PUBLIC_IP=127.0.0.1 \
    RAPAT_JWT_SECRET="$(head -c 48 /dev/urandom | base64 | tr -d '\n')" \
    "$@" "$rapat_bin" serve >>"$server_log" 2>&1 &
  test_server_pid=$!
  for _ in $(seq 240); do
    kill -0 "$test_server_pid" 2>/dev/null || { tail -n 40 "$server_log" >&2; die "rapat serve exited before it was ready"; }
    if [[ $(http_status /readyz || true) == 200 ]]; then
      ready=1
      break
    fi
    sleep 0.25
  done
  ((ready)) || { tail -n 40 "$server_log" >&2; die "rapat serve was not ready within 60 s"; }
  log "server ready"
}
