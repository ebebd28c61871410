#!/usr/bin/env bash
# Start NATS + Postgres if needed (infra/services.sh), export NATS_URL and
# DATABASE_URL, then run the whole workspace test suite:
#   cargo nextest run --workspace --no-fail-fast [args]   (+ doc tests, see below)
#   cargo test --workspace --no-fail-fast [args]          (without cargo-nextest)
# Extra arguments go to nextest / cargo test. nextest does not run doc tests, so
# they run first with `cargo test --doc` when no extra arguments were given.
# Without extra arguments the browser end-to-end test (infra/run-e2e.sh: real
# headless Chromium against `rapat serve`) runs last; RAPAT_SKIP_E2E=1 skips it.
# Before it, schemathesis checks the REST API against its OpenAPI document
# (infra/run-schemathesis.sh); RAPAT_SKIP_SCHEMATHESIS=1 skips it. Before that,
# the fault suite (tests/faults: NATS, Postgres and rapat killed under load, one
# fault at a time, a few minutes) runs as a step of its own; RAPAT_SKIP_FAULTS=1
# skips it.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$repo_root"

service_env=$(infra/services.sh --env)
eval "$service_env"
export NATS_URL DATABASE_URL
# Fault tests start nats-servers of their own (rapat-testkit): use one that can
# fsync before acknowledging, as production should, when one can be had.
if [[ -z ${RAPAT_TEST_NATS_SERVER:-} ]] && nats_bin=$(infra/services.sh nats-bin); then
  export RAPAT_TEST_NATS_SERVER=$nats_bin
fi

# The recording test reads its files with Debian's ffprobe and ffmpeg.
if [[ -z ${RAPAT_TEST_FFPROBE:-} ]] && ffprobe_bin=$(infra/services.sh ffprobe-bin); then
  export RAPAT_TEST_FFPROBE=$ffprobe_bin
fi

# The email tests' SMTP server runs on Debian's python3-aiosmtpd.
if [[ -z ${RAPAT_TEST_SMTP_PYTHON:-} ]] && smtp_python=$(infra/services.sh smtp-python); then
  export RAPAT_TEST_SMTP_PYTHON=$smtp_python
fi

if ! command -v cargo >/dev/null 2>&1 && [[ -x ${CARGO_HOME:-$HOME/.cargo}/bin/cargo ]]; then
  PATH=${CARGO_HOME:-$HOME/.cargo}/bin:$PATH
fi
if ! command -v cargo >/dev/null 2>&1; then
  cat >&2 <<'MSG'
run-tests.sh: cargo not found. Install Rust with rustup:
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y
  . "$HOME/.cargo/env"
MSG
  exit 1
fi

echo "run-tests.sh: NATS_URL=$NATS_URL DATABASE_URL=$DATABASE_URL" >&2

if cargo nextest --version >/dev/null 2>&1; then
  # nextest does not run doc tests: run them first, so that nextest's summary is
  # the last thing printed.
  doc_rc=0
  if (($# == 0)); then
    cargo test --workspace --doc --no-fail-fast || doc_rc=$?
  fi
  rc=0
  cargo nextest run --workspace --no-fail-fast "$@" || rc=$?
  ((rc != 0)) || rc=$doc_rc
else
  rc=0
  cargo test --workspace --no-fail-fast "$@" || rc=$?
fi

if (($# == 0)) && [[ ${RAPAT_SKIP_FAULTS:-} != 1 ]]; then
  # One fault at a time (each kills processes and loads the machine), output
  # shown: every fault prints its table; all rows are printed together after.
  faults_rc=0
  RAPAT_FAULTS_REPORT=$(mktemp)
  export RAPAT_FAULTS_REPORT
  if cargo nextest --version >/dev/null 2>&1; then
    # --no-capture also runs the tests one at a time.
    cargo nextest run -p rapat --test faults --run-ignored only --no-capture --no-fail-fast || faults_rc=$?
  else
    cargo test -p rapat --test faults -- --ignored --test-threads 1 --nocapture || faults_rc=$?
  fi
  echo "== fault suite (tests/faults)"
  echo "| fault | writes sent | acknowledged | acked during fault | lost | applied twice | false failures | unknown (unsettled) | longest wait | read models forked | lost to injected disk loss |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  cat "$RAPAT_FAULTS_REPORT"
  rm -f "$RAPAT_FAULTS_REPORT"
  unset RAPAT_FAULTS_REPORT
  ((rc != 0)) || rc=$faults_rc
fi

if (($# == 0)) && [[ ${RAPAT_SKIP_SCHEMATHESIS:-} != 1 ]]; then
  schemathesis_rc=0
  infra/run-schemathesis.sh || schemathesis_rc=$?
  ((rc != 0)) || rc=$schemathesis_rc
fi

if (($# == 0)) && [[ ${RAPAT_SKIP_E2E:-} != 1 ]]; then
  e2e_rc=0
  infra/run-e2e.sh || e2e_rc=$?
  ((rc != 0)) || rc=$e2e_rc
fi
exit "$rc"
