#!/usr/bin/env bash
# Start NATS + Postgres if needed (infra/services.sh), then run `rapat serve`.
# Extra arguments are passed to `rapat serve`.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$repo_root"

# Capture first so a failing services.sh stops us (eval "$(...)" would not).
service_env=$(infra/services.sh --env)
eval "$service_env"

# rustup installs into ~/.cargo/bin, which non-login shells may not have on PATH.
if ! command -v cargo >/dev/null 2>&1 && [[ -x ${CARGO_HOME:-$HOME/.cargo}/bin/cargo ]]; then
  PATH=${CARGO_HOME:-$HOME/.cargo}/bin:$PATH
fi
if ! command -v cargo >/dev/null 2>&1; then
  cat >&2 <<'MSG'
run-server.sh: cargo not found. Install Rust with rustup:
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y
  . "$HOME/.cargo/env"
MSG
  exit 1
fi

# Access tokens are signed with RAPAT_JWT_SECRET. For a local server keep one in
# the git-ignored data folder, so logins survive a restart.
if [[ -z ${RAPAT_JWT_SECRET:-} ]]; then
  secret_file=${RAPAT_DATA_DIR:-$repo_root/.data}/jwt-secret
  if [[ ! -s $secret_file ]]; then
    mkdir -p "$(dirname "$secret_file")"
    (umask 077 && head -c 48 /dev/urandom | base64 | tr -d '\n' >"$secret_file")
  fi
  RAPAT_JWT_SECRET=$(<"$secret_file")
  export RAPAT_JWT_SECRET
fi

exec cargo run --release --bin rapat -- serve "$@"
