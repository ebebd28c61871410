#!/usr/bin/env bash
# Make NATS (with JetStream) and PostgreSQL reachable for rapat, then print the
# NATS_URL and DATABASE_URL to use.
#
#   infra/services.sh [start]        ensure both answer; print NAME=value lines
#   infra/services.sh --env          same, printed as `export` lines:
#                                      eval "$(infra/services.sh --env)"
#   infra/services.sh status         report what answers and what this script runs
#   infra/services.sh stop           stop only what this script started
#   infra/services.sh nats-bin       print the path of a nats-server >= 2.10
#                                      (fetching Debian's when none is installed)
#   infra/services.sh smtp-python    print a python3 that has aiosmtpd, for the
#                                      email tests' SMTP server (infra/smtp-sink.py;
#                                      installs Debian's python3-aiosmtpd when root)
#   infra/services.sh turnserver-bin print the path of coturn's turnserver, for the
#                                      TURN relay test (installs Debian's coturn when root)
#   infra/services.sh nft-bin        print the path of nft, with which the ICE-TCP test
#                                      blocks UDP to the SFU (installs nftables when root)
#   infra/services.sh ffprobe-bin    print the path of ffprobe (ffmpeg beside it), with which
#                                      the recording test reads the files (installs ffmpeg when root)
#   infra/services.sh ip-bin         print the paths of ip and tc (iproute2), with
#   infra/services.sh tc-bin           which the shaped-network test builds a network
#                                      namespace and limits its link (installs iproute2 when root)
#   infra/services.sh cluster [start|stop|status]
#                                    a 3-node NATS cluster on loopback
#                                      (infra/nats-cluster.sh); prints its NATS_URL
#
# Environment: NATS_URL, DATABASE_URL, RAPAT_DATA_DIR, RAPAT_SERVICES_WAIT.
# See infra/README.md. Logs go to stderr; stdout carries only the URLs.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo_root=$(cd "$script_dir/.." && pwd -P)

NATS_URL=${NATS_URL:-nats://127.0.0.1:4222}
DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/rapat}
data_dir=${RAPAT_DATA_DIR:-$repo_root/.data}
[[ $data_dir == /* ]] || data_dir=$PWD/$data_dir
wait_secs=${RAPAT_SERVICES_WAIT:-60}

log() { printf 'services.sh: %s\n' "$*" >&2; }
die() { printf 'services.sh: error: %s\n' "$*" >&2; exit 1; }

usage() {
  sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
}

is_root() { [[ $(id -u) == 0 ]]; }

# ---------------------------------------------------------------- URL helpers

# parse_host_port URL DEFAULT_PORT -> "host port" (first URL of a comma list,
# userinfo, path and query stripped; IPv6 brackets removed)
parse_host_port() {
  local rest=$1 host port
  rest=${rest#*://}
  rest=${rest%%,*}
  rest=${rest%%/*}
  rest=${rest%%\?*}
  rest=${rest##*@}
  if [[ $rest == \[* ]]; then
    host=${rest%%]*}
    host=${host#[}
    port=${rest#*]}
    port=${port#:}
  else
    host=${rest%%:*}
    port=${rest#"$host"}
    port=${port#:}
  fi
  [[ -n $host ]] || host=127.0.0.1
  [[ -n $port ]] || port=$2
  [[ $port =~ ^[0-9]+$ ]] || die "cannot parse a port from URL host part '$rest'"
  printf '%s %s\n' "$host" "$port"
}

is_local_host() {
  case $1 in
    localhost | 127.* | ::1) return 0 ;;
    *) return 1 ;;
  esac
}

# address a locally started server binds to
bind_addr() {
  case $1 in
    localhost) echo 127.0.0.1 ;;
    *) echo "$1" ;;
  esac
}

tcp_open() { # host port
  # shellcheck disable=SC2016 # expanded by the inner bash
  timeout 5 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# nats_info host port -> prints the server's INFO line (NATS sends it first)
nats_info() {
  local line
  # shellcheck disable=SC2016 # expanded by the inner bash
  line=$(timeout 5 bash -c '
    exec 3<>"/dev/tcp/$1/$2" || exit 1
    IFS= read -r -t 4 line <&3 || exit 1
    printf "%s\n" "$line"
  ' _ "$1" "$2" 2>/dev/null) || return 1
  printf '%s\n' "${line%$'\r'}"
}

# probe_nats host port -> ok | nojs | notnats | down
probe_nats() {
  local info
  if info=$(nats_info "$1" "$2") && [[ $info == INFO* ]]; then
    if [[ $info =~ \"jetstream\":[[:space:]]*true ]]; then echo ok; else echo nojs; fi
  elif tcp_open "$1" "$2"; then
    echo notnats
  else
    echo down
  fi
}

# ------------------------------------------------------------ Postgres helpers

debian_pg_bindirs() { # /usr/lib/postgresql/<ver>/bin, newest first
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [[ -d $d ]] && printf '%s\n' "$d"
  done | sort -V -r
}

# Directory holding Postgres server binaries (initdb, pg_ctl). Prefers the
# version that created an existing data dir, then PATH, then the newest
# Debian /usr/lib/postgresql/<ver>/bin.
pg_bindir() {
  local v d p
  if [[ -s $pg_data/PG_VERSION ]]; then
    v=$(<"$pg_data/PG_VERSION")
    d=/usr/lib/postgresql/$v/bin
    if [[ -x $d/initdb && -x $d/pg_ctl ]]; then echo "$d"; return 0; fi
  fi
  if p=$(command -v pg_ctl) && p=$(readlink -f "$p") && [[ -x ${p%/*}/initdb ]]; then
    echo "${p%/*}"
    return 0
  fi
  while IFS= read -r d; do
    if [[ -x $d/initdb && -x $d/pg_ctl ]]; then echo "$d"; return 0; fi
  done < <(debian_pg_bindirs)
  return 1
}

# pg_tool NAME -> path of a Postgres client tool (psql, pg_isready)
pg_tool() {
  local d
  if command -v "$1" >/dev/null 2>&1; then command -v "$1"; return 0; fi
  while IFS= read -r d; do
    if [[ -x $d/$1 ]]; then echo "$d/$1"; return 0; fi
  done < <(debian_pg_bindirs)
  return 1
}

# probe_pg host port -> ok | starting | down
probe_pg() {
  local isready rc=0
  if isready=$(pg_tool pg_isready); then
    "$isready" -q -t 5 -h "$1" -p "$2" >/dev/null 2>&1 || rc=$?
    case $rc in
      0) echo ok ;;
      1) echo starting ;;
      *) echo down ;;
    esac
  elif tcp_open "$1" "$2"; then
    echo ok
  else
    echo down
  fi
}

# Can we log in with DATABASE_URL? Only checked when psql is available.
pg_login_check() {
  local psql out
  psql=$(pg_tool psql) || return 0
  if out=$(PGCONNECT_TIMEOUT=5 "$psql" -w -X -q -tA -d "$DATABASE_URL" -c 'select 1' 2>&1 </dev/null); then
    return 0
  fi
  if [[ $out == *"database \""*"\" does not exist"* ]]; then
    log "note: the database named in DATABASE_URL does not exist yet (rapat creates it on start)"
    return 0
  fi
  die "Postgres at $pg_host:$pg_port answers, but logging in with DATABASE_URL failed:
  ${out//$'\n'/$'\n'  }
Give DATABASE_URL the right user/password (or PGPASSWORD), or allow that login in pg_hba.conf."
}

# Where our own cluster lives. When root, the postgres system user must be
# able to reach it; if a parent of RAPAT_DATA_DIR is not searchable for that
# user (e.g. a clone under /root), fall back to a fixed spot under /var/tmp.
pg_base_dir() {
  local sum
  if is_root && id postgres >/dev/null 2>&1 && ! runuser -u postgres -- test -x "$data_dir" 2>/dev/null; then
    sum=$(printf '%s' "$data_dir" | cksum | cut -d' ' -f1)
    echo "/var/tmp/rapat-postgres-$sum"
  else
    echo "$data_dir"
  fi
}

set_pg_paths() {
  pg_base=$(pg_base_dir)
  pg_data=$pg_base/postgres
  pg_log=$pg_base/postgres.log
  pg_sock=$pg_base/postgres-socket
  # Unix socket paths are limited to ~107 bytes; use a short dir if needed.
  if ((${#pg_sock} + 20 > 100)); then
    pg_sock=/tmp/rapat-pgsock-$(printf '%s' "$pg_base" | cksum | cut -d' ' -f1)
  fi
}

as_pg() { # run a Postgres server tool as the right user
  if is_root; then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

# --------------------------------------------------------------- installation

apt_updated=
install_packages() { # package...
  if ! is_root; then
    die "missing: $*. Install with:
  sudo apt-get install -y $*
(or put the binaries on PATH / point NATS_URL and DATABASE_URL at running servers)"
  fi
  command -v apt-get >/dev/null 2>&1 ||
    die "missing: $* and no apt-get here; install them with your package manager"

  # Install binaries only: keep the distro from starting its default services
  # (its Postgres cluster wants a password over TCP). Both tweaks are removed
  # again right after.
  local policy=/usr/sbin/policy-rc.d added_policy='' cc_dir=/etc/postgresql-common/createcluster.d
  local cc_file=$cc_dir/zz-rapat-no-main-cluster.conf made_cc_dir='' rc=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && added_policy=1
  fi
  if [[ ! -d /etc/postgresql ]] || [[ -z $(ls -A /etc/postgresql 2>/dev/null) ]]; then
    [[ -d $cc_dir ]] || { mkdir -p "$cc_dir" && made_cc_dir=1; }
    printf 'create_main_cluster = false\n' >"$cc_file"
  fi

  export DEBIAN_FRONTEND=noninteractive
  if [[ -z $apt_updated ]]; then
    log "running apt-get update"
    apt-get -o DPkg::Lock::Timeout=300 update -q >&2 || rc=$?
    apt_updated=1
  fi
  if ((rc == 0)); then
    log "running apt-get install -y $*"
    apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "$@" >&2 || rc=$?
  fi

  rm -f "$cc_file"
  [[ -z $made_cc_dir ]] || rmdir "$cc_dir" 2>/dev/null || true
  [[ -z $added_policy ]] || rm -f "$policy"
  ((rc == 0)) || die "apt-get failed (exit $rc) while installing: $*"

}

# ------------------------------------------------ an SMTP server for tests

# The email tests run a loopback SMTP server (infra/smtp-sink.py) on aiosmtpd.
# Prints a python3 that imports it; installs Debian's package when none does.
smtp_python() {
  local python
  for python in /usr/bin/python3 "$(command -v python3 || true)"; do
    if [[ -n $python && -x $python ]] && "$python" -c 'import aiosmtpd' 2>/dev/null; then
      printf '%s\n' "$python"
      return 0
    fi
  done
  install_packages python3 python3-aiosmtpd
  /usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || die "python3-aiosmtpd did not install"
  printf '/usr/bin/python3\n'
}

# A binary from a Debian package, installed when missing (the distro's service is
# not started: install_packages keeps it from starting).
package_bin() { # binary package
  local found
  found=$(command -v "$1" || true)
  [[ -z $found && -x /usr/sbin/$1 ]] && found=/usr/sbin/$1
  [[ -z $found && -x /usr/bin/$1 ]] && found=/usr/bin/$1
  if [[ -z $found ]]; then
    install_packages "$2"
    found=$(command -v "$1" || true)
    [[ -z $found && -x /usr/sbin/$1 ]] && found=/usr/sbin/$1
    [[ -n $found ]] || die "$2 did not install $1"
  fi
  printf '%s\n' "$found"
}

# ------------------------------------------------------- a NATS that fsyncs

# rapat's acknowledged events must survive a power failure (SPEC §8): the NATS
# this script starts writes to disk before it acknowledges (`sync_interval:
# always` in nats.conf), which needs nats-server 2.10 or later. Debian 12 ships
# 2.9, so when no such server is installed the script takes Debian 13 (trixie)'s
# package: a stable release's build, security-supported, which runs on Debian 12
# (a static Go binary linked only to libc). It is unpacked under
# $RAPAT_DATA_DIR/nats-bin, not installed system-wide, so the distro's own
# nats-server is left alone. RAPAT_NATS_SUITE picks another Debian suite (sid).
durable_nats_min=2.10.0
nats_suite=${RAPAT_NATS_SUITE:-trixie}

nats_version() { # binary -> x.y.z
  "$1" --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n 1
}

version_at_least() { # have want
  [[ -n $1 ]] && printf '%s\n%s\n' "$2" "$1" | sort -V -C
}

installed_nats_bins() {
  local d
  command -v nats-server 2>/dev/null || true
  for d in /usr/sbin /usr/local/bin /usr/local/sbin "$HOME/go/bin"; do
    [[ -x $d/nats-server ]] && echo "$d/nats-server"
  done
  return 0
}

# durable_nats_bin -> path of a nats-server >= 2.10 (installed, or unpacked before)
durable_nats_bin() {
  local b
  while IFS= read -r b; do
    [[ -n $b && -x $b ]] || continue
    if version_at_least "$(nats_version "$b")" "$durable_nats_min"; then echo "$b"; return 0; fi
  done < <(installed_nats_bins; echo "$nats_unpacked")
  return 1
}

# Downloads Debian's nats-server package of $nats_suite with a private apt
# state (the machine's sources and lists stay as they are) and unpacks it.
fetch_durable_nats() {
  local apt_dir=$data_dir/apt deb
  command -v apt-get >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1 ||
    die "no nats-server >= $durable_nats_min here and no apt-get to fetch one. Install NATS >= $durable_nats_min
(https://docs.nats.io/running-a-nats-service/introduction/installation) or point NATS_URL at a running one."
  local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  [[ -r $keyring ]] || die "no $keyring (package debian-archive-keyring) to check Debian's $nats_suite packages with"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/sources"
  cat >"$apt_dir/sources/debian-$nats_suite.sources" <<SOURCES
Types: deb
URIs: http://deb.debian.org/debian
Suites: $nats_suite
Components: main
Signed-By: $keyring
SOURCES
  local -a apt_opts=(
    -q -o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$apt_dir/sources"
    -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o "Dir::State::status=/dev/null"
    -o "APT::Sandbox::User=$(id -un)"
  )
  log "fetching nats-server from Debian $nats_suite (this machine has none >= $durable_nats_min)"
  apt-get "${apt_opts[@]}" update >&2 || die "apt-get update for Debian $nats_suite failed"
  rm -f "$apt_dir"/nats-server_*.deb
  (cd "$apt_dir" && apt-get "${apt_opts[@]}" download "nats-server/$nats_suite" >&2) ||
    die "apt-get download nats-server/$nats_suite failed"
  deb=$(ls "$apt_dir"/nats-server_*.deb 2>/dev/null | head -n 1)
  [[ -n $deb ]] || die "apt-get download left no nats-server package in $apt_dir"
  rm -rf "$data_dir/nats-bin"
  dpkg-deb -x "$deb" "$data_dir/nats-bin" || die "cannot unpack $deb"
  version_at_least "$(nats_version "$nats_unpacked")" "$durable_nats_min" ||
    die "Debian $nats_suite's nats-server is $(nats_version "$nats_unpacked"), older than $durable_nats_min"
  log "nats-server $(nats_version "$nats_unpacked") unpacked in $data_dir/nats-bin"
}

# Says so when the NATS in use cannot fsync before acknowledging.
warn_if_nats_cannot_fsync() { # INFO line
  local version
  version=$(grep -oE '"version":"[0-9]+\.[0-9]+\.[0-9]+' <<<"$1" | grep -oE '[0-9.]+$' || true)
  if [[ -n $version ]] && ! version_at_least "$version" "$durable_nats_min"; then
    log "warning: NATS at $nats_host:$nats_port is $version: before $durable_nats_min it cannot write to disk before
  acknowledging, so acknowledged events can be lost on a power failure. For production use NATS >= $durable_nats_min
  with 'jetstream { sync_interval: always }' (infra/nats.conf); this script starts such a server when none answers."
  fi
}

# ------------------------------------------------------------------ starting

log_tail() { # file
  if [[ -r $1 ]]; then
    printf -- '--- last lines of %s ---\n' "$1" >&2
    tail -n 25 "$1" >&2 || true
    printf -- '---\n' >&2
  fi
}

pid_alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }

our_nats_pid() { # prints pid if the pid file points at a live nats-server of ours
  local pid cmdline
  [[ -s $nats_pidfile ]] || return 1
  pid=$(<"$nats_pidfile")
  pid_alive "$pid" || return 1
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *nats-server*" -sd $nats_store "* ]] || return 1
  echo "$pid"
}

start_nats() {
  local bin addr pid launched i state
  bin=$(durable_nats_bin) || die "no nats-server >= $durable_nats_min found"
  if pid=$(our_nats_pid); then
    die "a NATS started by this script from $data_dir is running (pid $pid) but $nats_host:$nats_port does not answer.
Run 'infra/services.sh stop' first, or use another RAPAT_DATA_DIR."
  fi
  addr=$(bind_addr "$nats_host")
  mkdir -p "$nats_store"
  rm -f "$nats_pidfile"
  log "starting nats-server $(nats_version "$bin") (JetStream, fsync before ack) on $addr:$nats_port, store $nats_store, log $nats_log"
  local -a launcher=()
  command -v setsid >/dev/null 2>&1 && launcher=(setsid)
  "${launcher[@]}" "$bin" -c "$script_dir/nats.conf" -js -a "$addr" -p "$nats_port" \
    -sd "$nats_store" -P "$nats_pidfile" >>"$nats_log" 2>&1 </dev/null 9>&- &
  launched=$!
  for ((i = 0; i < wait_secs * 4; i++)); do
    state=$(probe_nats "$nats_host" "$nats_port")
    case $state in
      ok) return 0 ;;
      nojs) log_tail "$nats_log"; die "the NATS started on $nats_host:$nats_port reports no JetStream" ;;
    esac
    if ! pid_alive "$launched" && ! our_nats_pid >/dev/null; then
      log_tail "$nats_log"
      die "nats-server exited during startup"
    fi
    sleep 0.25
  done
  log_tail "$nats_log"
  die "nats-server did not answer on $nats_host:$nats_port within ${wait_secs}s"
}

start_pg() {
  local bindir addr running_port i
  bindir=$(pg_bindir) || die "PostgreSQL server binaries (initdb, pg_ctl) not found"
  addr=$(bind_addr "$pg_host")
  if is_root; then
    id postgres >/dev/null 2>&1 ||
      useradd --system --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin postgres
    set_pg_paths # the postgres user may not have existed before
  fi
  [[ $pg_base == "$data_dir" ]] ||
    log "note: the postgres system user cannot reach $data_dir, so the cluster lives in $pg_base"
  mkdir -p "$pg_base" "$pg_data" "$pg_sock"
  touch "$pg_log"
  chmod 700 "$pg_data"
  if is_root; then
    chown postgres: "$pg_data" "$pg_sock" "$pg_log"
  fi

  if [[ ! -s $pg_data/PG_VERSION ]]; then
    [[ -z $(ls -A "$pg_data") ]] || die "$pg_data is not empty but is no Postgres data directory; remove it"
    log "initdb $pg_data (superuser postgres, trust auth for local and 127.0.0.1), using $bindir"
    if ! as_pg "$bindir/initdb" -D "$pg_data" -U postgres --auth=trust -E UTF8 --locale=C >>"$pg_log" 2>&1 9>&-; then
      log_tail "$pg_log"
      die "initdb failed"
    fi
  fi

  if as_pg "$bindir/pg_ctl" -D "$pg_data" status >/dev/null 2>&1 9>&-; then
    running_port=$(sed -n 4p "$pg_data/postmaster.pid" 2>/dev/null || true)
    if [[ $running_port != "$pg_port" ]]; then
      die "a Postgres started by this script from $pg_data is running on port ${running_port:-?}, not $pg_port.
Run 'infra/services.sh stop' first, or use another RAPAT_DATA_DIR."
    fi
  else
    log "starting postgres on $addr:$pg_port, data $pg_data, log $pg_log"
    if ! as_pg "$bindir/pg_ctl" -D "$pg_data" -l "$pg_log" -w -t "$wait_secs" \
      -o "-p $pg_port -k '$pg_sock' -c listen_addresses=$addr" start >/dev/null 2>&1 9>&-; then
      log_tail "$pg_log"
      die "pg_ctl start failed"
    fi
  fi

  for ((i = 0; i < wait_secs * 4; i++)); do
    [[ $(probe_pg "$pg_host" "$pg_port") == ok ]] && return 0
    sleep 0.25
  done
  log_tail "$pg_log"
  die "postgres did not answer on $pg_host:$pg_port within ${wait_secs}s"
}

wait_pg_starting() { # an existing server said "rejecting connections"
  local i
  for ((i = 0; i < wait_secs * 4; i++)); do
    [[ $(probe_pg "$pg_host" "$pg_port") == ok ]] && return 0
    sleep 0.25
  done
  die "Postgres at $pg_host:$pg_port keeps rejecting connections (starting up or shutting down?)"
}

# ------------------------------------------------------------------ commands

setup_common() {
  read -r nats_host nats_port < <(parse_host_port "$NATS_URL" 4222)
  read -r pg_host pg_port < <(parse_host_port "$DATABASE_URL" 5432)
  nats_store=$data_dir/nats
  nats_pidfile=$data_dir/nats.pid
  nats_log=$data_dir/nats.log
  nats_unpacked=$data_dir/nats-bin/usr/sbin/nats-server
  set_pg_paths
}

cmd_start() {
  local nats_state pg_state
  local -a missing=()
  setup_common
  mkdir -p "$data_dir"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$data_dir/.services.lock"
    flock -w 300 9 || die "timed out waiting for another services.sh run (lock $data_dir/.services.lock)"
  fi

  nats_state=$(probe_nats "$nats_host" "$nats_port")
  pg_state=$(probe_pg "$pg_host" "$pg_port")

  case $nats_state in
    nojs) die "NATS at $nats_host:$nats_port answers but has JetStream DISABLED (no \"jetstream\":true in its INFO).
rapat needs JetStream: restart that server with -js (or a 'jetstream {}' config block), or point NATS_URL elsewhere." ;;
    notnats) die "something listens on $nats_host:$nats_port but it does not speak NATS (no INFO line)" ;;
  esac

  if [[ $nats_state == down ]]; then
    is_local_host "$nats_host" ||
      die "NATS at $nats_host:$nats_port does not answer, and it is not a local address, so I will not start one"
    durable_nats_bin >/dev/null || fetch_durable_nats
  fi
  if [[ $pg_state == down ]]; then
    is_local_host "$pg_host" ||
      die "Postgres at $pg_host:$pg_port does not answer, and it is not a local address, so I will not start one"
    pg_bindir >/dev/null || missing+=(postgresql)
  fi
  if ((${#missing[@]})); then
    install_packages "${missing[@]}"
    # installing may have started distro services: look again
    nats_state=$(probe_nats "$nats_host" "$nats_port")
    pg_state=$(probe_pg "$pg_host" "$pg_port")
    [[ $nats_state == nojs ]] && die "after installing, NATS at $nats_host:$nats_port answers without JetStream (distro service?); stop it or change NATS_URL"
    [[ $nats_state == notnats ]] && die "after installing, $nats_host:$nats_port is taken by something that is not NATS"
  fi

  if [[ $nats_state == ok ]]; then
    log "NATS with JetStream answers at $nats_host:$nats_port"
    warn_if_nats_cannot_fsync "$(nats_info "$nats_host" "$nats_port" || true)"
  else
    start_nats
    log "NATS with JetStream started at $nats_host:$nats_port (stop: infra/services.sh stop)"
  fi

  case $pg_state in
    ok) log "Postgres answers at $pg_host:$pg_port" ;;
    starting) wait_pg_starting; log "Postgres answers at $pg_host:$pg_port" ;;
    *)
      start_pg
      log "Postgres started at $pg_host:$pg_port (stop: infra/services.sh stop)"
      ;;
  esac
  pg_login_check
}

cmd_stop() {
  local pid i bindir stopped=
  setup_common
  if pid=$(our_nats_pid); then
    log "stopping nats-server (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 60; i++)); do pid_alive "$pid" || break; sleep 0.25; done
    if pid_alive "$pid"; then
      log "nats-server still running, sending KILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    stopped=1
  fi
  rm -f "$nats_pidfile"

  if [[ -s $pg_data/postmaster.pid ]]; then
    pid=$(head -n 1 "$pg_data/postmaster.pid")
    if pid_alive "$pid"; then
      log "stopping postgres (pid $pid, data $pg_data)"
      if bindir=$(pg_bindir); then
        as_pg "$bindir/pg_ctl" -D "$pg_data" -m fast -w -t "$wait_secs" stop >/dev/null 2>&1 ||
          { log_tail "$pg_log"; die "pg_ctl stop failed"; }
      else
        kill -INT "$pid" 2>/dev/null || true
        for ((i = 0; i < wait_secs * 4; i++)); do pid_alive "$pid" || break; sleep 0.25; done
        pid_alive "$pid" && die "postgres (pid $pid) did not stop"
      fi
      stopped=1
    fi
  fi
  [[ -n $stopped ]] || log "nothing started by this script is running (data dir $data_dir)"
  return 0
}

cmd_status() {
  local pid
  setup_common
  log "NATS_URL=$NATS_URL: $(probe_nats "$nats_host" "$nats_port")"
  log "DATABASE_URL host $pg_host:$pg_port: $(probe_pg "$pg_host" "$pg_port")"
  if pid=$(our_nats_pid); then log "this script's nats-server runs: pid $pid"; fi
  if [[ -s $pg_data/postmaster.pid ]] && pid=$(head -n 1 "$pg_data/postmaster.pid") && pid_alive "$pid"; then
    log "this script's postgres runs: pid $pid, data $pg_data"
  fi
  return 0
}

print_urls() {
  if [[ -n $as_env ]]; then
    printf 'export NATS_URL=%q\n' "$NATS_URL"
    printf 'export DATABASE_URL=%q\n' "$DATABASE_URL"
  else
    printf 'NATS_URL=%s\n' "$NATS_URL"
    printf 'DATABASE_URL=%s\n' "$DATABASE_URL"
  fi
}

command=start
as_env=
if [[ ${1:-} == cluster ]]; then
  shift
  exec "$script_dir/nats-cluster.sh" "$@"
fi
for arg in "$@"; do
  case $arg in
    start | stop | status | nats-bin | smtp-python | turnserver-bin | nft-bin | ffprobe-bin | ip-bin | tc-bin) command=$arg ;;
    --env) as_env=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage; die "unknown argument: $arg" ;;
  esac
done

case $command in
  start) cmd_start; print_urls ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  nats-bin)
    setup_common
    mkdir -p "$data_dir"
    durable_nats_bin || { fetch_durable_nats >&2 && durable_nats_bin; }
    ;;
  smtp-python) smtp_python ;;
  turnserver-bin) package_bin turnserver coturn ;;
  nft-bin) package_bin nft nftables ;;
  ffprobe-bin) package_bin ffprobe ffmpeg ;;
  ip-bin) package_bin ip iproute2 ;;
  tc-bin) package_bin tc iproute2 ;;
esac
