#!/usr/bin/env bash
# Property-based test of the REST API against its own OpenAPI document:
#
#   infra/run-schemathesis.sh
#
# 1. makes NATS + Postgres reachable (infra/services.sh, as run-tests.sh does);
# 2. installs schemathesis (pinned below) from PyPI into a virtualenv under .data/
#    when it is missing;
# 3. builds `rapat` and starts `rapat serve` on free ports, with a namespace and a
#    database of its own and its rate limits raised (a fuzzer is one client sending
#    thousands of requests), and waits for /readyz;
# 4. registers a user, makes it an administrator (`rapat admin grant`, so the
#    admin-only routes are exercised too) and logs it in, and makes a room with a
#    second user in it, whose ids the run uses half of the time;
# 5. runs schemathesis with every check against /api/v1/openapi.json, bounded in
#    time, and fails on any failure: the server and its document must agree on
#    what is valid (what the document allows is accepted, what it forbids is
#    refused with a 4xx), every answer's status, content type, headers and body
#    must be documented, and nothing may answer 500;
# 6. stops the server, drops the database and deletes the namespace's streams.
#
# Environment:
#   RAPAT_SCHEMATHESIS_VENV=dir        the virtualenv (default: .data/schemathesis-venv)
#   RAPAT_SCHEMATHESIS_MAX_EXAMPLES=n  examples per operation and phase (default: 60)
#   RAPAT_SCHEMATHESIS_TIMEOUT=s       hard limit of the schemathesis run (default: 170)
#   RAPAT_SCHEMATHESIS_SEED=n          another seed (default: a fixed one, so CI is repeatable)
#   RAPAT_SCHEMATHESIS_KEEP=1          keep the database and the namespace's streams
# The server's log and schemathesis's reports go to .data/schemathesis/.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$repo_root"

log() { printf 'run-schemathesis.sh: %s\n' "$*" >&2; }
die() { printf 'run-schemathesis.sh: error: %s\n' "$*" >&2; exit 1; }

# Pinned: a new schemathesis release may add checks, which should arrive as a
# deliberate change here, not as a red CI run.
schemathesis_version=4.32.5

# ---------------------------------------------------------------- tools

service_env=$(infra/services.sh --env)
eval "$service_env"

if ! command -v cargo >/dev/null 2>&1 && [[ -x ${CARGO_HOME:-$HOME/.cargo}/bin/cargo ]]; then
  PATH=${CARGO_HOME:-$HOME/.cargo}/bin:$PATH
fi
command -v cargo >/dev/null 2>&1 || die "cargo not found; install Rust with rustup (see README.md)"
if ! command -v python3 >/dev/null 2>&1 && [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  log "installing Debian's python3 and python3-venv"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
fi
command -v python3 >/dev/null 2>&1 || die "python3 not found: sudo apt-get install -y python3 python3-venv"

venv=${RAPAT_SCHEMATHESIS_VENV:-$repo_root/.data/schemathesis-venv}
schemathesis=$venv/bin/schemathesis
if [[ ! -x $schemathesis ]] || [[ $("$schemathesis" --version 2>/dev/null) != *" $schemathesis_version" ]]; then
  log "installing schemathesis $schemathesis_version into $venv"
  if ! python3 -m venv "$venv" 2>/dev/null; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      python3 -m venv "$venv" || die "could not create a virtualenv in $venv"
    else
      die "python3 cannot create a virtualenv: sudo apt-get install -y python3-venv"
    fi
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$schemathesis_version" ||
    die "could not install schemathesis $schemathesis_version from PyPI"
fi
log "$("$schemathesis" --version)"
python="$venv/bin/python"

# shellcheck source=lib/test-server.sh
. infra/lib/test-server.sh
build_rapat

# ---------------------------------------------------------------- server

prepare_test_server schemathesis
artifacts=$repo_root/.data/schemathesis
mkdir -p "$artifacts"
server_log=$artifacts/server.log
: >"$server_log"
# Every rate limit raised far beyond what the run sends (429 is still documented
# on the routes that can answer it; a fuzzer should meet the validation, not the
# throttle).
start_test_server "$server_log" "${RAPAT_SCHEMATHESIS_KEEP:-}" \
  RAPAT_AUTH_RATE_BURST=100000 \
  RAPAT_AUTH_RATE_PER_MINUTE=100000 \
  RAPAT_ROOMS_PER_USER_PER_HOUR=100000 \
  RAPAT_ROOM_JOIN_FAILURES_PER_USER=100000 \
  RAPAT_ROOM_JOIN_FAILURES_PER_ROOM=100000 \
  RUST_LOG="${RUST_LOG:-warn}"

# ---------------------------------------------------------------- user

# Two users: the run's own (an administrator, so the admin-only routes are
# exercised too) and a second one in the run's room, so that the routes taking a
# room or a user id find real ones about half of the time.
api() { # method path json [token] -> response body
  "$python" -c '
import sys, urllib.request
headers = {"Content-Type": "application/json"}
if len(sys.argv) > 4:
    headers["Authorization"] = "Bearer " + sys.argv[4]
request = urllib.request.Request(sys.argv[2], data=sys.argv[3].encode(), headers=headers, method=sys.argv[1])
print(urllib.request.urlopen(request, timeout=30).read().decode())' "$1" "${base_url}$2" "$3" "${@:4}"
}
field() { "$python" -c 'import json, sys; value = json.load(sys.stdin)
for key in sys.argv[1:]: value = value[key]
print(value)' "$@"; }
password="Fuzz-$(head -c 12 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')-1"
sign_up() { # email -> access token
  api POST /api/v1/auth/register "{\"email\":\"$1\",\"password\":\"$password\",\"firstName\":\"Fuzz\",\"lastName\":\"Tester\"}" >/dev/null ||
    die "could not register $1"
  if [[ ${2:-} == admin ]]; then
    RAPAT_NAMESPACE="$namespace" DATABASE_URL="$db_url" "$rapat_bin" admin grant "$1" >>"$server_log" 2>&1 ||
      die "could not make $1 an administrator"
  fi
  api POST /api/v1/auth/login "{\"email\":\"$1\",\"password\":\"$password\"}" | field data token || die "could not log in as $1"
}
token=$(sign_up "fuzzer.${run_id}@example.com" admin)
other_token=$(sign_up "other.${run_id}@example.com")
other_id=$(api GET /api/v1/users/profile "" "$other_token" | field data id) || die "could not read the second user's id"
room_id=$(api POST /api/v1/rooms '{"name":"Fuzzed","maxUsers":50}' "$token" | field data id) || die "could not create the room"
api POST "/api/v1/rooms/${room_id}/join" '{}' "$other_token" >/dev/null || die "could not join the room"

# The settings below plus the ids of this run.
config=$artifacts/schemathesis.toml
cat infra/schemathesis.toml - >"$config" <<TOML

[dictionaries.rooms]
values = ["${room_id}"]

[dictionaries.users]
values = ["${other_id}"]

[parameters]
"path.roomId" = { dictionary = "rooms", probability = 0.5 }
"path.userId" = { dictionary = "users", probability = 0.5 }
"path.contactId" = { dictionary = "users", probability = 0.5 }
"body.contactId" = { dictionary = "users", probability = 0.5 }
TOML

# ---------------------------------------------------------------- run

# --checks all: every check schemathesis has (server errors, status codes,
#   content types, headers and bodies against the document, valid data accepted,
#   invalid data refused, auth ignored, missing headers, unsupported methods...).
# Phases examples, coverage (the boundaries of every documented constraint, valid
#   and invalid: what finds a document that is looser or stricter than the server)
#   and fuzzing. The stateful phase is left out: it needs links between operations,
#   which the document does not declare, and would mostly repeat the others.
# POST /auth/logout is left out: called with the run's token it revokes the
#   session every other request uses. Its body and answers are the auth tests'.
# infra/schemathesis.toml adds 413 to what refusing invalid data may answer, and
#   the 400s no schema can foresee.
max_examples=${RAPAT_SCHEMATHESIS_MAX_EXAMPLES:-60}
limit=${RAPAT_SCHEMATHESIS_TIMEOUT:-170}
seed=${RAPAT_SCHEMATHESIS_SEED:-20261126}
log "schemathesis: --checks all, --max-examples ${max_examples}, seed ${seed}, at most ${limit} s"
rc=0
timeout --kill-after=10 "$limit" "$schemathesis" --config-file "$config" run \
  "${base_url}/api/v1/openapi.json" \
  --url "$base_url" \
  --header "Authorization: Bearer ${token}" \
  --checks all \
  --phases examples,coverage,fuzzing \
  --max-examples "$max_examples" \
  --seed "$seed" \
  --workers 2 \
  --request-timeout 30 \
  --exclude-path /api/v1/auth/logout \
  --suppress-health-check all \
  --no-color \
  --report junit --report-dir "$artifacts" || rc=$?
if ((rc == 124 || rc == 137)); then
  log "schemathesis did not finish within ${limit} s"
fi
if ((rc != 0)); then
  log "schemathesis failed (exit $rc; seed ${seed}); the server's last lines:"
  tail -n 30 "$server_log" >&2 || true
fi
exit "$rc"
