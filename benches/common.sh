# common.sh — helpers sourced by benches/{throughput,memory,rate_accuracy}.sh (not run directly).
#
# Provides: MCPT (the binary), WORK (a fresh results directory, kept after the run), free_port,
# port_up, start_mcpt_target, start_nginx, run_gen (bounded, backgrounded generator run under
# /usr/bin/time -v), stop_pid, bench_cleanup (installed as the EXIT trap by bench_init).
#
# Environment:
#   MCPT         mcpt binary (default: <repo>/target/release/mcpt; built with
#                `cargo build --release` when missing)
#   BENCH_STATE  parent directory of the per-run results directory (default ${TMPDIR:-/tmp})
#   GEN_CPU      CPU list for the load generator (default 0)
#   TGT_CPU      CPU list for the target server (default 1)
#
# Safety: everything listens on / sends to 127.0.0.1 only; every generator run is wrapped in
# `timeout`; every server started here is recorded by PID and stopped by that PID on exit
# (trap); nothing is ever killed by name.

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$BENCH_DIR/.." && pwd)"
HOST=127.0.0.1
MCPT="${MCPT:-$REPO/target/release/mcpt}"
GEN_CPU="${GEN_CPU:-0}"
TGT_CPU="${TGT_CPU:-1}"
GEN_PIN=(taskset -c "$GEN_CPU")
TGT_PIN=(taskset -c "$TGT_CPU")
OHA="$(command -v oha || echo "$HOME/.cargo/bin/oha")"

SERVER_PIDS=()   # servers started by this script (stopped on exit)
SERVER_SIGS=()   # the signal that stops each one gracefully (nginx: QUIT)
GPID=""          # PID of the running generator's `timeout` wrapper, if any
SAMPLER_PID=""   # PID of a background sampler loop, if any

stop_pid() { # stop_pid PID [SIGNAL]: graceful signal, wait up to 5 s, then KILL; reaps it
  local pid=$1 sig=${2:-TERM}
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
  kill -"$sig" "$pid" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}

bench_cleanup() {
  if [ -n "$GPID" ]; then stop_pid "$GPID" TERM; GPID=""; fi   # timeout forwards to its group
  if [ -n "$SAMPLER_PID" ]; then stop_pid "$SAMPLER_PID" TERM; SAMPLER_PID=""; fi
  local i
  for i in "${!SERVER_PIDS[@]}"; do stop_pid "${SERVER_PIDS[$i]}" "${SERVER_SIGS[$i]}"; done
  SERVER_PIDS=() SERVER_SIGS=()
}

# bench_init NAME: results directory, traps, binary and tool checks.
bench_init() {
  local name=$1
  trap 'bench_cleanup' EXIT
  trap 'exit 130' INT TERM
  for t in taskset timeout python3 curl /usr/bin/time; do
    command -v "$t" >/dev/null || { echo "missing tool: $t" >&2; exit 2; }
  done
  if [ ! -x "$MCPT" ]; then
    echo "building mcpt ($MCPT missing) ..." >&2
    (cd "$REPO" && cargo build --release -q) || { echo "cargo build failed" >&2; exit 2; }
  fi
  [ -x "$MCPT" ] || { echo "no mcpt binary at $MCPT" >&2; exit 2; }
  WORK="$(mktemp -d "${BENCH_STATE:-${TMPDIR:-/tmp}}/mcpt-$name.XXXXXX")"
}

# free_port: a TCP port on 127.0.0.1 nobody listens on right now (the kernel's choice).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
port_up() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }
wait_port() { # wait_port PORT PID: until PORT accepts (5 s), failing early when PID died
  for _ in $(seq 100); do
    port_up "$1" && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  port_up "$1"
}

# start_mcpt_target PORT LOG: `mcpt target --workers 1` on TGT_CPU; sets TGT_PID.
start_mcpt_target() {
  local port=$1 log=$2
  if port_up "$port"; then echo "port $port already in use" >&2; exit 1; fi
  "${TGT_PIN[@]}" "$MCPT" target --host "$HOST" --port "$port" --workers 1 >"$log" 2>&1 &
  TGT_PID=$!
  SERVER_PIDS+=("$TGT_PID") SERVER_SIGS+=(TERM)
  wait_port "$port" "$TGT_PID" || { echo "mcpt target did not come up (see $log)" >&2; exit 1; }
}

# nginx_conf_head DIR CONNS: the top of a bench nginx config, up to and including the common
# lines inside `http {` (1 worker pinned to TGT_CPU, access log off, keep-alive without a
# request limit, temp paths in DIR); the caller adds its servers and the closing brace.
nginx_conf_head() {
  local nd=$1 conns=$2 mask
  # worker_cpu_affinity takes a bit mask, rightmost = CPU 0 (only a single CPU number is supported)
  mask=$(python3 -c "print(format(1 << int('$TGT_CPU'), 'b'))" 2>/dev/null) || mask=10
  cat <<EOF
daemon off;
worker_processes 1;
worker_cpu_affinity $mask;
worker_rlimit_nofile 65536;
pid $nd/nginx.pid;
error_log $nd/error.log warn;
events { worker_connections $conns; use epoll; multi_accept on; }
http {
  access_log off; server_tokens off;
  keepalive_timeout 65; keepalive_requests 100000000;
  client_body_temp_path $nd/tmp_body; proxy_temp_path $nd/tmp_proxy;
  fastcgi_temp_path $nd/tmp_fastcgi; uwsgi_temp_path $nd/tmp_uwsgi; scgi_temp_path $nd/tmp_scgi;
EOF
}

# start_nginx PORT DIR: nginx, 1 worker, static 200 "Hello, World!" on /, config as in
# /work/shared/bench/peers.sh (worker pinned to TGT_CPU); sets TGT_PID (the master).
start_nginx() {
  local port=$1 nd=$2
  command -v nginx >/dev/null || { echo "nginx not installed" >&2; exit 2; }
  if port_up "$port"; then echo "port $port already in use" >&2; exit 1; fi
  mkdir -p "$nd"
  { nginx_conf_head "$nd" 16384; cat <<EOF
  server {
    listen $HOST:$port backlog=4096;
    location = / { default_type text/plain; return 200 "Hello, World!"; }
  }
}
EOF
  } >"$nd/nginx.conf"
  "${TGT_PIN[@]}" nginx -p "$nd/" -c "$nd/nginx.conf" -e "$nd/error.log" &
  TGT_PID=$!
  SERVER_PIDS+=("$TGT_PID") SERVER_SIGS+=(QUIT)
  wait_port "$port" "$TGT_PID" || { echo "nginx did not come up (see $nd/error.log)" >&2; exit 1; }
}

# stop_server PID: stop one server started above (and forget it).
stop_server() {
  local pid=$1 i
  for i in "${!SERVER_PIDS[@]}"; do
    if [ "${SERVER_PIDS[$i]}" = "$pid" ]; then
      stop_pid "$pid" "${SERVER_SIGS[$i]}"
      unset 'SERVER_PIDS[i]' 'SERVER_SIGS[i]'
      SERVER_PIDS=("${SERVER_PIDS[@]}") SERVER_SIGS=("${SERVER_SIGS[@]}")
      return 0
    fi
  done
}

# run_gen BASE LIMIT CMD...: runs CMD on GEN_CPU under `timeout LIMIT` and /usr/bin/time -v;
# stdout -> BASE.out, stderr -> BASE.err, time -v -> BASE.time. Backgrounded + wait so a
# TERM/INT to the script is handled at once. Returns the command's exit status.
run_gen() {
  local base=$1 lim=$2; shift 2
  timeout -k 5 "$lim" /usr/bin/time -v -o "$base.time" "${GEN_PIN[@]}" "$@" >"$base.out" 2>"$base.err" &
  GPID=$!
  wait "$GPID"
  local rc=$?
  GPID=""
  return $rc
}

# peak_rss_mib BASE: "Maximum resident set size" from BASE.time, in MiB
peak_rss_mib() {
  awk '/Maximum resident set size/ {printf "%.1f\n", $NF/1024; f=1} END {if (!f) print "nan"}' "$1.time" 2>/dev/null || echo nan
}
