#!/usr/bin/env bash
# compare.sh — mcpt beside wrk, h2load and oha on nginx over http, https and h2, plus the
# open-model and memory checks of issue 15 (acceptance 2–5). Prints each ratio vs the peer.
#
# Usage: benches/compare.sh [-r REPS] [-d SECS] [-c CONNS] [-T "wrk oha h2load"] [-R RATE]
#                           [-o SECS] [-P MS] [-u USERS] [MODE ...]
#   -r  repetitions (default 5); figures are per-column medians, tools interleaved and the
#       order rotated by one per repetition
#   -d  duration of each closed-model run, seconds (default 10)
#   -c  connections for http/https and the open model (default 64)
#   -T  peers to run where they apply (default "wrk oha h2load"; oha is skipped with a notice
#       when not installed: cargo install --locked oha). "base" adds a second mcpt build,
#       MCPT_BASE (e.g. the commit before a change), run like mcpt in http, https and h2: a
#       before/after ratio measured in the same interleaved series
#   -R  open-model rate (default 50000);  -o  its duration, seconds (default 10)
#   -P  open model only: stop the generator (SIGSTOP, then SIGCONT) for MS milliseconds half-way
#       through, as a host that stops running this VM would (default 0: no pause)
#   -u  connections of the memory mode (default 10000)
# MODES (default: http https h2 open memory):
#   http    closed model, CONNS connections, keep-alive: wrk -t1, oha, mcpt (concurrent_users
#           CONNS). Ratio mcpt/wrk (acceptance 2) and CPU per request (acceptance 4).
#   https   the same over TLS 1.3 (keep-alive); mcpt verifies against the bench CA (tls.ca);
#           wrk does not verify, oha runs with --insecure.
#   h2      HTTP/2 over TLS (ALPN): h2load -t1 -c 8 -m 100 vs mcpt http_version "2",
#           connections 8, concurrent_users 800; oha --http2 -c 8 -p 100. nginx logs every
#           request that did not arrive over HTTP/2 on that port; any such line fails the run.
#   open    mcpt open model, RATE rps for SECS (acceptance 3): nginx's count vs RATE*SECS
#           ±0.1%, ≥ 95% of seconds within ±5% of the plan (mcpt's timeline), late starts
#           < 1%, corrected p99 < 10 ms; oha -q RATE --latency-correction as the peer. Both
#           on CONNS connections (mcpt: concurrent_users 1000 in flight, connections CONNS),
#           as wrk2 and oha keep a fixed set: unbounded, a stall of the host (steal) leaves a
#           backlog that opens a socket per waiting request while nginx is saturated, and
#           the recovery takes longer (RESULTS.md, "open model and connections").
#   memory  closed model, USERS keep-alive connections, over http and https: peak RSS of mcpt
#           (goal ≤ 100 MiB over http, acceptance 5) beside wrk's; nginx's active connections
#           are read half-way through to show they were open.
#   soak    (not in the default set) mcpt closed model for 60 s and 600 s over http: peak RSS
#           of the long run ≤ 1.2 × the short one (acceptance 5).
#   wakes   (not in the default set) mcpt closed model, CONNS users, 3 s, under `strace -f -y`:
#           writes to an eventfd (a runtime waking a thread) per request nginx counted, by
#           thread (needs strace; the slowdown under strace makes it a count, not a speed).
#
# Setup: one nginx (1 worker, access_log off, keep-alive without a request limit, its config
# and a self-signed CA + leaf made with the openssl CLI in a temp dir) on 127.0.0.1, with an
# http, an https and an h2 port, and a status port (stub_status). Generator pinned to GEN_CPU
# (default 0) and nginx to TGT_CPU (default 1) with taskset. Every count is nginx's:
# stub_status `requests` read before and after each run (minus the read itself). CPU per
# request = the generator's user + system time (getrusage of the reaped process, as
# /usr/bin/time -v reports it: /proc/PID/stat utime + stime at its end) over nginx's count.
# Peak RSS: "Maximum resident set size" of /usr/bin/time -v. steal_pct: the host's steal time
# over the run, in % of the machine's CPU time (/proc/stat); summaries print it, and a run
# above 2% is flagged: its figures measure a contended host.
#
# A mode the built mcpt cannot run (the plan keys tls/http_version, or https/h2 sending, not in
# this build) is not skipped silently: a one-second probe run is made first, and the mode
# prints "needs the merged engine" with mcpt's reason; the script then exits 3.
# Exit status: 0 all ran, 1 a PASS/FAIL criterion failed, 2 setup error, 3 a mode could not run.
# Output: $WORK/raw.tsv (every run), summaries on stdout. Environment: MCPT, BENCH_STATE,
# GEN_CPU, TGT_CPU (see benches/common.sh); nothing is killed by name.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
PY="$BENCH_DIR/compare.py"

REPS=5 DUR=10 CONNS=64 PEERS="wrk oha h2load" RATE=50000 OSECS=10 PAUSE_MS=0 MUSERS=10000
while getopts "r:d:c:T:R:o:P:u:h" o; do
  case $o in
    r) REPS=$OPTARG ;; d) DUR=$OPTARG ;; c) CONNS=$OPTARG ;; T) PEERS=$OPTARG ;;
    R) RATE=$OPTARG ;; o) OSECS=$OPTARG ;; P) PAUSE_MS=$OPTARG ;; u) MUSERS=$OPTARG ;;
    *) awk 'NR>1 && /^#/ {sub(/^# ?/, ""); print; next} NR>1 {exit}' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
MODES="${*:-http https h2 open memory}"
[ -x "$MCPT" ] || { echo "no mcpt binary at $MCPT (cargo build --release --locked)" >&2; exit 2; }
for t in nginx openssl curl wrk h2load; do
  command -v "$t" >/dev/null || { echo "missing tool: $t (apt-get install nginx openssl curl wrk nghttp2-client)" >&2; exit 2; }
done
bench_init compare
HAVE_OHA=0
if [ -x "$OHA" ]; then HAVE_OHA=1
else case " $PEERS " in *" oha "*) echo "notice: oha not installed; its rows are left out" >&2 ;; esac; fi
peer_on() {
  case " $PEERS " in
    *" $1 "*) case $1 in oha) [ "$HAVE_OHA" = 1 ] ;; base) [ -x "${MCPT_BASE:-}" ] ;; esac ;;
    *) return 1 ;;
  esac
}
case " $PEERS " in *" base "*) [ -x "${MCPT_BASE:-}" ] || { echo "-T base needs MCPT_BASE, an mcpt binary" >&2; exit 2; } ;; esac
ulimit -n "$(ulimit -Hn)" 2>/dev/null
RAW="$WORK/raw.tsv"
printf 'mode\trep\ttool\tcounted\tsecs\trps\ttool_rps\tp50_ms\tp99_ms\tcpu_s\tus_per_req\trss_mib\terrors\trc\tsteal_pct\n' >"$RAW"
FAILED_MODES="" CRIT_FAIL=0

# make_certs DIR: a CA (ca.pem) and a leaf for 127.0.0.1/localhost signed by it (leaf.pem/key).
make_certs() {
  local d=$1
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=mcpt bench CA" -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null &&
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$d/leaf.key" -out "$d/leaf.csr" 2>/dev/null &&
  printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >"$d/leaf.ext" &&
  openssl x509 -req -in "$d/leaf.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
    -days 2 -extfile "$d/leaf.ext" -out "$d/leaf.pem" 2>/dev/null ||
  { echo "openssl could not make the bench certificates" >&2; exit 2; }
}

# start_bench_nginx DIR: nginx with the http, https, h2 and status ports (P_HTTP, P_HTTPS,
# P_H2, P_STAT); sets NGINX_PID (the master) and NGINX_WORKER.
start_bench_nginx() {
  local nd=$1
  mkdir -p "$nd"
  make_certs "$nd"
  P_HTTP=$(free_port) P_HTTPS=$(free_port) P_H2=$(free_port) P_STAT=$(free_port)
  { nginx_conf_head "$nd" 30000; cat <<EOF
  http2_max_concurrent_streams 128;
  ssl_certificate $nd/leaf.pem; ssl_certificate_key $nd/leaf.key;
  ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:SSL:10m;
  map \$server_protocol \$not_h2 { "HTTP/2.0" 0; default 1; }
  server {
    listen $HOST:$P_HTTP backlog=4096;
    listen $HOST:$P_HTTPS ssl backlog=4096;
    location = / { default_type text/plain; return 200 "Hello, World!"; }
  }
  server {
    listen $HOST:$P_H2 ssl http2 backlog=4096;
    access_log $nd/not-h2.log combined if=\$not_h2;
    location = / { default_type text/plain; return 200 "Hello, World!"; }
  }
  server {
    listen $HOST:$P_STAT;
    location = /status { stub_status; }
  }
}
EOF
  } >"$nd/nginx.conf"
  : >"$nd/not-h2.log"
  "${TGT_PIN[@]}" nginx -p "$nd/" -c "$nd/nginx.conf" -e "$nd/error.log" &
  NGINX_PID=$!
  SERVER_PIDS+=("$NGINX_PID") SERVER_SIGS+=(QUIT)
  wait_port "$P_STAT" "$NGINX_PID" || { echo "nginx did not come up (see $nd/error.log)" >&2; exit 2; }
  NGINX_WORKER=$(pgrep -P "$NGINX_PID" | head -1)
  NOT_H2_LOG="$nd/not-h2.log" CA="$nd/ca.pem"
}

# nginx_requests: stub_status `requests` (this read included).
nginx_requests() { curl -s -m 5 "http://$HOST:$P_STAT/status" | awk 'NR == 3 {print $3}'; }
nginx_active() { curl -s -m 5 "http://$HOST:$P_STAT/status" | awk 'NR == 1 {print $3}'; }

url_of() { # url_of MODE
  case $1 in
    http | memory | soak | open) echo "http://$HOST:$P_HTTP/" ;;
    https | memory-tls) echo "https://$HOST:$P_HTTPS/" ;;
    h2) echo "https://$HOST:$P_H2/" ;;
  esac
}

# mcpt_plan FILE MODE USERS SECS: the plan of one mcpt run (closed model unless MODE is open).
mcpt_plan() {
  local f=$1 mode=$2 users=$3 secs=$4 extra=""
  case $mode in
    https | memory-tls) extra="tls: {ca: \"$CA\"}" ;;
    h2) extra="tls: {ca: \"$CA\"}
      http_version: \"2\"
      connections: 8" ;;
    open) extra="model: open
      base_rps: $RATE
      connections: $CONNS" ;;
  esac
  [ "$mode" = open ] || extra="model: closed
      $extra"
  cat >"$f" <<YAML
name: compare-$mode
tasks:
  - type: load_test
    parameters:
      targets: [{url: "$(url_of "$mode")"}]
      duration: ${secs}s
      concurrent_users: $users
      $extra
YAML
}

# tool_cmd TOOL MODE BASE USERS SECS: sets CMD, the command line of one generator run.
tool_cmd() {
  local tool=$1 mode=$2 base=$3 users=$4 secs=$5 url
  url=$(url_of "$mode")
  case $tool in
    wrk) CMD=(wrk -t1 -c"$users" -d"${secs}s" --latency "$url") ;;
    h2load) CMD=(h2load -t1 -c 8 -m 100 -D "$secs" "$url") ;;
    oha)
      CMD=("$OHA" -z "${secs}s" --no-tui --output-format json)
      case $mode in
        https) CMD+=(--insecure -c "$users") ;;
        h2) CMD+=(--insecure --http2 -c 8 -p 100) ;;
        open) CMD+=(-c "$CONNS" -q "$RATE" --latency-correction) ;;
        *) CMD+=(-c "$users") ;;
      esac
      CMD+=("$url") ;;
    mcpt | base)
      mcpt_plan "$base.yaml" "$mode" "$users" "$secs"
      local bin=$MCPT
      [ "$tool" = base ] && bin=$MCPT_BASE
      CMD=("$bin" run "$base.yaml" -q --output "$base.json" --set load_generation.workers=1
           --set load_generation.max_concurrent_requests=$((users > 20000 ? users : 20000))) ;;
  esac
}

# cpu_ticks: the machine's CPU time so far, "total steal" in clock ticks (/proc/stat). This is
# a virtual machine: the host's steal time (vCPUs ready but not run) slows every tool alike,
# and a run with much of it measures the host, not the tools.
cpu_ticks() { awk '/^cpu /{t=0; for (i=2; i<=NF; i++) t+=$i; print t, $9; exit}' /proc/stat; }

# pause_gen MS: stops the running generator for MS ms and prints its PID. The generator is
# the process at the end of run_gen's chain (timeout, /usr/bin/time, the tool: taskset
# execs it), found from this script's own children.
pause_gen() {
  local p="" c
  # run_gen's `timeout`: among this script's own children (servers and samplers are too)
  for c in $(cat /proc/$$/task/*/children); do
    [ "$(cat /proc/"$c"/comm 2>/dev/null)" = timeout ] && p=$c
  done
  [ -n "$p" ] || { echo "no generator running" >&2; return 1; }
  for _ in 1 2; do
    c=$(cat /proc/"$p"/task/*/children 2>/dev/null | tr ' ' '\n' | grep . | head -1)
    [ -n "$c" ] || { echo "no generator under $p" >&2; return 1; }
    p=$c
  done
  python3 -c "import os, signal, time
os.kill($p, signal.SIGSTOP); time.sleep($1 / 1000); os.kill($p, signal.SIGCONT)"
  echo "$p"
}

# run_one MODE REP TOOL USERS SECS: one measured run, counted by nginx; appends to RAW.
run_one() {
  local mode=$1 rep=$2 tool=$3 users=$4 secs=$5 base="$WORK/$1.$3.$2" before after rc
  local cpu_before cpu_after
  local h2lines=0
  tool_cmd "$tool" "$mode" "$base" "$users" "$secs"
  [ "$mode" = h2 ] && h2lines=$(wc -l <"$NOT_H2_LOG")
  before=$(nginx_requests)
  cpu_before=$(cpu_ticks)
  if [ "$mode" = memory ] || [ "$mode" = memory-tls ]; then
    (sleep $((secs / 2 + 1)); nginx_active >"$base.active") &
    SAMPLER_PID=$!
  fi
  if [ "$mode" = open ] && [ "$PAUSE_MS" != 0 ]; then
    (sleep "$(python3 -c "print($secs / 2 + 0.5)")"; pause_gen "$PAUSE_MS" >"$base.pause") &
    SAMPLER_PID=$!
  fi
  run_gen "$base" $((secs + 90)) "${CMD[@]}"; rc=$?
  if [ -n "$SAMPLER_PID" ]; then wait "$SAMPLER_PID" 2>/dev/null; SAMPLER_PID=""; fi
  after=$(nginx_requests)
  cpu_after=$(cpu_ticks)
  if [ "$mode" = h2 ] && [ "$(wc -l <"$NOT_H2_LOG")" != "$h2lines" ]; then
    echo "warning: $tool sent requests that were not HTTP/2 (see $NOT_H2_LOG)" >&2
    rc=97
  fi
  python3 "$PY" parse "$mode" "$rep" "$tool" "$base" "$rc" $((after - before - 1)) "$secs" \
    "$cpu_before" "$cpu_after" >>"$RAW"
  [ "$rc" = 0 ] || echo "warning: $tool ($mode, rep $rep) exited with $rc (see $base.err)" >&2
  sleep 1   # let TIME_WAIT / CPU settle between runs
}

# probe MODE: can this mcpt run MODE? A one-second run that must send without an error.
probe() {
  local mode=$1 base="$WORK/probe.$1" why
  [ "$mode" = open ] || [ "$mode" = http ] || [ "$mode" = memory ] || [ "$mode" = soak ] && return 0
  tool_cmd mcpt "$mode" "$base" 4 1
  run_gen "$base" 60 "${CMD[@]}"
  why=$(python3 "$PY" probe "$base" "$?")
  if [ -n "$why" ] || { [ "$mode" = h2 ] && [ -s "$NOT_H2_LOG" ]; }; then
    [ -n "$why" ] || why="requests reached nginx's h2 port without HTTP/2"
    echo "$mode: needs the merged engine ($why)"
    FAILED_MODES+=" $mode"
    return 1
  fi
}

# closed MODE PEER...: REPS interleaved repetitions of mcpt and the peers; prints the summary.
closed() {
  local mode=$1 users=$CONNS rep i tool; shift
  local -a tools=(mcpt "$@")
  [ "$mode" = h2 ] && users=800
  echo "== $mode: ${tools[*]}, $REPS x ${DUR}s" >&2
  tool_cmd "${tools[1]:-mcpt}" "$mode" "$WORK/warm.$mode" "$users" 1
  timeout -k 5 60 "${GEN_PIN[@]}" "${CMD[@]}" >/dev/null 2>&1   # warm-up, not counted
  for rep in $(seq "$REPS"); do
    for i in $(seq 0 $((${#tools[@]} - 1))); do
      tool=${tools[$(((i + rep - 1) % ${#tools[@]}))]}
      echo "  rep $rep/$REPS: $tool" >&2
      run_one "$mode" "$rep" "$tool" "$users" "$DUR"
    done
  done
  python3 "$PY" summary "$RAW" "$mode" "${tools[1]:-}" || CRIT_FAIL=1
}

# open_check: acceptance 3 with mcpt, oha -q as the peer.
open_check() {
  echo "== open: $RATE rps x ${OSECS}s" >&2
  run_one open 1 mcpt 1000 "$OSECS"
  peer_on oha && run_one open 1 oha 1000 "$OSECS"
  python3 "$PY" open "$RAW" "$WORK/open.mcpt.1.json" "$RATE" "$OSECS" || CRIT_FAIL=1
}

# memory_check: acceptance 5, USERS connections over http and https, wrk beside mcpt.
memory_check() {
  local m
  for m in memory memory-tls; do
    [ "$m" = memory-tls ] && { probe https || continue; }
    echo "== $m: $MUSERS connections x ${DUR}s" >&2
    run_one "$m" 1 mcpt "$MUSERS" "$DUR"
    peer_on wrk && run_one "$m" 1 wrk "$MUSERS" "$DUR"
  done
  python3 "$PY" memory "$RAW" "$WORK" || CRIT_FAIL=1
}

soak_check() {
  echo "== soak: 60 s and 600 s, $CONNS connections" >&2
  run_one soak 1 mcpt "$CONNS" 60
  run_one soak 2 mcpt "$CONNS" 600
  python3 "$PY" soak "$RAW" || CRIT_FAIL=1
}

# wakes_check: eventfd writes per request, by thread, from strace.
wakes_check() {
  local base="$WORK/wakes" before after
  command -v strace >/dev/null || { echo "wakes: missing tool strace (apt-get install strace)" >&2; exit 2; }
  mcpt_plan "$base.yaml" http "$CONNS" 3
  before=$(nginx_requests)
  run_gen "$base" 120 strace -f -y -qq -e trace=write,writev,sendto,sendmsg -o "$base.strace" \
    "$MCPT" run "$base.yaml" -q --output "$base.json" --set load_generation.workers=1
  after=$(nginx_requests)
  python3 "$PY" wakes "$base.strace" $((after - before - 1))
}

start_bench_nginx "$WORK/nginx"
echo "nginx $NGINX_PID (worker $NGINX_WORKER): http $P_HTTP, https $P_HTTPS, h2 $P_H2, status $P_STAT; results in $WORK" >&2
for mode in $MODES; do
  case $mode in
    http) peers=(); peer_on wrk && peers+=(wrk); peer_on oha && peers+=(oha); peer_on base && peers+=(base); closed http "${peers[@]}" ;;
    https) probe https && { peers=(); peer_on wrk && peers+=(wrk); peer_on oha && peers+=(oha); peer_on base && peers+=(base); closed https "${peers[@]}"; } ;;
    h2) probe h2 && { peers=(); peer_on h2load && peers+=(h2load); peer_on oha && peers+=(oha); peer_on base && peers+=(base); closed h2 "${peers[@]}"; } ;;
    open) open_check ;;
    memory) memory_check ;;
    soak) soak_check ;;
    wakes) wakes_check ;;
    *) echo "unknown mode $mode" >&2; exit 2 ;;
  esac
done
echo "raw runs: $RAW"
[ -z "$FAILED_MODES" ] || { echo "could not run:$FAILED_MODES (needs the merged engine)"; exit 3; }
exit "$CRIT_FAIL"
