#!/usr/bin/env bash
# End-to-end test of the browser client in real headless Chromium:
#
#   infra/run-e2e.sh
#
# 1. makes NATS + Postgres reachable (infra/services.sh, as run-tests.sh does);
# 2. installs Debian's `nodejs`, `npm` and `chromium` when missing and this runs as root
#    (Playwright's own browser downloads are never used);
# 3. `npm ci` in e2e/ (playwright-core only);
# 4. builds `rapat` and starts `rapat serve` on a free port, with a namespace and
#    a database of its own, and waits for /readyz;
# 5. runs e2e/negotiation.test.mjs and e2e/meeting.test.mjs against it, then
#    stops the server, drops the database and deletes the namespace's streams,
#    and exits non-zero when a test failed.
#
# Environment:
#   CHROMIUM=/path/to/chromium   the browser (default: chromium on PATH)
#   RAPAT_E2E_KEEP=1             keep the database and the namespace's streams
#   RAPAT_E2E_SKIP_MEDIA=1       skip the audio/video assertions (only while the
#                                SFU is being developed; the real run asserts media)
# The server's log goes to e2e/artifacts/server.log, screenshots next to it.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$repo_root"

log() { printf 'run-e2e.sh: %s\n' "$*" >&2; }
die() { printf 'run-e2e.sh: error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- tools

service_env=$(infra/services.sh --env)
eval "$service_env"

if ! command -v cargo >/dev/null 2>&1 && [[ -x ${CARGO_HOME:-$HOME/.cargo}/bin/cargo ]]; then
  PATH=${CARGO_HOME:-$HOME/.cargo}/bin:$PATH
fi
command -v cargo >/dev/null 2>&1 || die "cargo not found; install Rust with rustup (see README.md)"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    log "installing Debian's nodejs and npm"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
  command -v node >/dev/null 2>&1 || die "node not found; install Node.js 18 or later: sudo apt-get install -y nodejs npm"
  command -v npm >/dev/null 2>&1 || die "npm not found: sudo apt-get install -y npm"
fi

chromium=${CHROMIUM:-$(command -v chromium || true)}
if [[ -z $chromium ]]; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    log "installing Debian's chromium"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    chromium=$(command -v chromium) || die "chromium did not install"
  else
    die "chromium not found; install it with: sudo apt-get install -y chromium (or set CHROMIUM=/path/to/chromium)"
  fi
fi
log "browser: $chromium"

log "npm ci in e2e/"
(cd e2e && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)

log "building rapat"
cargo build --bin rapat
target_dir=${CARGO_TARGET_DIR:-$repo_root/target}
[[ $target_dir == /* ]] || target_dir=$repo_root/$target_dir
rapat_bin=$target_dir/debug/rapat
[[ -x $rapat_bin ]] || die "no binary at $rapat_bin after the build"

# ---------------------------------------------------------------- server

# A free TCP port for HTTP and a free UDP port for the SFU, asked of the kernel.
free_port() {
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

run_id="$(date +%s)_$$"
namespace="e2e_${run_id}"
database="rapat_e2e_${run_id}"
base_db_url=${DATABASE_URL%%\?*}
db_query=""
[[ $DATABASE_URL == *\?* ]] && db_query="?${DATABASE_URL#*\?}"
db_url="${base_db_url%/*}/${database}${db_query}"
http_port=$(free_port tcp)
udp_port=$(free_port udp)
base_url="http://127.0.0.1:${http_port}"

mkdir -p e2e/artifacts
server_log=$repo_root/e2e/artifacts/server.log
: >"$server_log"

server_pid=""
cleanup() {
  local rc=$?
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$server_pid" 2>/dev/null || true
  fi
  if [[ ${RAPAT_E2E_KEEP:-} != 1 ]]; then
    if command -v psql >/dev/null 2>&1; then
      psql "${base_db_url%/*}/postgres${db_query}" -qtAc "DROP DATABASE IF EXISTS \"${database}\" WITH (FORCE)" >/dev/null 2>&1 ||
        log "could not drop database ${database}"
    else
      log "psql not found: database ${database} is left behind"
    fi
    node e2e/cleanup-nats.mjs "$namespace" || log "could not delete the streams of namespace ${namespace}"
  else
    log "kept database ${database} and namespace ${namespace}"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Access tokens live 20 s (plus the server's 5 s leeway), so that the test meets
# expired tokens and the client's refresh path for real.
log "starting rapat serve on ${base_url} (namespace ${namespace}, database ${database}, log ${server_log})"
RAPAT_NAMESPACE=$namespace \
DATABASE_URL=$db_url \
RAPAT_HTTP_ADDR=127.0.0.1:${http_port} \
RAPAT_SFU_UDP_ADDR=127.0.0.1:${udp_port} \
RAPAT_SFU_PUBLIC_IP=127.0.0.1 \
RAPAT_JWT_SECRET=$(head -c 48 /dev/urandom | base64 | tr -d '\n') \
RAPAT_ACCESS_TTL_SECONDS=20 \
RUST_LOG=${RUST_LOG:-info} \
  "$rapat_bin" serve >>"$server_log" 2>&1 &
server_pid=$!

ready=0
for _ in $(seq 240); do
  kill -0 "$server_pid" 2>/dev/null || { tail -n 40 "$server_log" >&2; die "rapat serve exited before it was ready"; }
  if node -e 'fetch(process.argv[1]).then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "${base_url}/readyz"; then
    ready=1
    break
  fi
  sleep 0.25
done
((ready)) || { tail -n 40 "$server_log" >&2; die "rapat serve was not ready within 60 s"; }
log "server ready"

# ---------------------------------------------------------------- test

# negotiation.test.mjs checks the client's peer connection against a stand-in
# SFU in the page; meeting.test.mjs runs a whole meeting through the server.
rc=0
export RAPAT_E2E_URL=$base_url CHROMIUM=$chromium
node e2e/negotiation.test.mjs || rc=$?
node e2e/meeting.test.mjs || rc=$?
if ((rc != 0)); then
  log "the test failed (exit $rc); the server's last lines:"
  tail -n 30 "$server_log" >&2 || true
fi
exit "$rc"
