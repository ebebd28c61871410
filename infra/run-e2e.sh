#!/usr/bin/env bash
# The browser client's checks, then its end-to-end test in real headless Chromium:
#
#   infra/run-e2e.sh
#
# 1. makes NATS + Postgres reachable (infra/services.sh, as run-tests.sh does);
# 2. installs Debian's `nodejs`, `npm` and `chromium` when missing and this runs as root
#    (Playwright's own browser downloads are never used);
# 3. `npm ci` in e2e/ (@playwright/test, typescript, nats);
# 4. type-checks web/js with tsc (`npm run typecheck`) and runs the unit tests of
#    the meeting state (`npm run test:unit`, node --test); either failing fails the run;
# 5. builds `rapat` and starts `rapat serve` on a free port, with a namespace and
#    a database of its own, and waits for /readyz;
#    The server also listens for ICE-TCP and hands out TURN credentials for a
#    coturn `turnserver` started here on loopback (Debian's coturn, installed when
#    missing and root; nftables likewise, for the test that blocks UDP, and
#    iproute2's ip and tc, for the test that watches through a shaped link);
# 6. runs `npx playwright test` (e2e/negotiation.test.mjs, e2e/meeting.test.mjs)
#    against it, then stops the server, drops the database and deletes the
#    namespace's streams, and exits non-zero when a test failed.
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

log "type-checking web/js (tsc)"
(cd e2e && npm run --silent typecheck) || die "web/js does not type-check"
log "unit tests of the meeting state (node --test)"
(cd e2e && npm run --silent test:unit) || die "the web client's unit tests failed"

# shellcheck source=lib/test-server.sh
. infra/lib/test-server.sh
build_rapat

# ---------------------------------------------------------------- server

prepare_test_server e2e
mkdir -p e2e/artifacts
server_log=$repo_root/e2e/artifacts/server.log
: >"$server_log"
# connectivity.test.mjs: ICE-TCP with UDP to the SFU blocked (an nft rule the test
# adds and removes), relay-only media through a real coturn on loopback that
# checks the gateway's time-limited credentials (`use-auth-secret`), and a new
# peer connection after the SFU's DTLS is dropped (another nft rule).
nft_bin=$(infra/services.sh nft-bin)
turnserver_bin=$(infra/services.sh turnserver-bin)
# shaped.test.mjs: a watcher in a network namespace behind a `tc` token bucket.
ip_bin=$(infra/services.sh ip-bin)
tc_bin=$(infra/services.sh tc-bin)
ffprobe_bin=$(infra/services.sh ffprobe-bin)
tcp_port=$(free_port tcp)
turn_port=$(free_port udp)
turn_secret=$(head -c 24 /dev/urandom | base64 | tr -d '\n/+=')
turn_dir=$repo_root/e2e/artifacts/turn
mkdir -p "$turn_dir"
turn_log=$repo_root/e2e/artifacts/turnserver.log
log "starting turnserver on 127.0.0.1:${turn_port} (log ${turn_log})"
# -n: no config file; loopback peers allowed, since the SFU is on 127.0.0.1.
"$turnserver_bin" -n --listening-ip=127.0.0.1 --relay-ip=127.0.0.1 --listening-port="$turn_port" \
  --use-auth-secret --static-auth-secret="$turn_secret" --realm=rapat.test --fingerprint \
  --allow-loopback-peers --no-cli --no-tls --no-dtls --userdb="$turn_dir/turndb" \
  --pidfile="$turn_dir/turnserver.pid" --log-file=stdout --simple-log >"$turn_log" 2>&1 &
test_server_helpers+=("$!")

# Access tokens live 20 s (plus the server's 5 s leeway), so that the test meets
# expired tokens and the client's refresh path for real. Every browser signs up
# and in from 127.0.0.1, so the per-address auth limit is raised above the
# suite's few dozen registrations and logins.
start_test_server "$server_log" "${RAPAT_E2E_KEEP:-}" RAPAT_ACCESS_TTL_SECONDS=20 RUST_LOG="${RUST_LOG:-info}" \
  RAPAT_AUTH_RATE_BURST=100 RAPAT_RECORDINGS_DIR="$repo_root/e2e/artifacts/recordings" \
  RAPAT_SFU_TCP_ADDR="127.0.0.1:${tcp_port}" RAPAT_TURN_URLS="turn:127.0.0.1:${turn_port}" \
  RAPAT_TURN_SECRET="$turn_secret" RAPAT_TURN_TTL_SECONDS=600

# ---------------------------------------------------------------- test

# negotiation.test.mjs checks the client's peer connection against a stand-in
# SFU in the page; meeting.test.mjs runs a whole meeting through the server.
# playwright.config.mjs bounds the whole run (globalTimeout).
rc=0
export RAPAT_E2E_URL=$base_url CHROMIUM=$chromium PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
export RAPAT_E2E_IP=$ip_bin RAPAT_E2E_TC=$tc_bin RAPAT_E2E_FFPROBE=$ffprobe_bin
export RAPAT_E2E_NFT=$nft_bin RAPAT_E2E_SFU_UDP_PORT=$udp_port RAPAT_E2E_SFU_TCP_PORT=$tcp_port RAPAT_E2E_TURN_PORT=$turn_port
# Arguments go to Playwright: `infra/run-e2e.sh connectivity.test.mjs` runs one file.
(cd e2e && npx --no-install playwright test "$@") || rc=$?
if ((rc != 0)); then
  log "the test failed (exit $rc); the server's last lines:"
  tail -n 30 "$server_log" >&2 || true
fi
exit "$rc"
