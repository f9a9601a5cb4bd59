#!/usr/bin/env bash
# throughput.sh — closed-model throughput of wrk, oha and mcpt side by side on loopback.
#
# Usage: benches/throughput.sh [-d SECS] [-r REPS] [-c CONNS] [-T "wrk oha mcpt"]
#                              [-t "nginx mcpt"] [-w WARMUP_SECS] [-P]
#   -d  duration of each run, seconds (default 10)
#   -r  repetitions (default 3); figures printed are per-column medians over the repetitions
#   -c  connections / closed-model users (default 64; > 1000 adds
#       --set load_generation.max_concurrent_requests=20000 for mcpt)
#   -T  tools, in this order in the first repetition (default "wrk oha mcpt")
#   -t  targets (default "nginx mcpt"):
#         nginx  nginx, 1 worker, static 200 "Hello, World!" (config as in
#                /work/shared/bench/peers.sh, on a free port)
#         mcpt   `mcpt target --workers 1`, path /
#   -w  warm-up per target before the measured runs, seconds (default 1; 0 = none)
#   -P  also run /work/shared/bench/peers.sh -t nginx -T "wrk oha" (same -d -r -c) afterwards
#       and print its lines as a cross-check (peers.sh uses its own nginx on fixed port 8080)
#
# Each target is started once and every tool runs against that same instance; within each
# repetition the tools are interleaved (wrk, oha, mcpt), and the order is rotated by one per
# repetition so no tool always runs first. Generator pinned to CPU 0 (taskset -c 0), target
# to CPU 1 (nginx: worker_cpu_affinity). Settings: wrk -t1 --latency; oha --no-tui
# --output-format json (tokio sizes its workers from the affinity mask, so 1 worker); mcpt run
# with model: closed, concurrent_users = CONNS, --set load_generation.workers=1 (= its default
# under taskset -c 0). Peak RSS is "Maximum resident set size" of /usr/bin/time -v.
#
# peers.sh: NOT used for the main rows. It supports only its own nginx/hyper targets on fixed
# ports, restarts the target per call and cannot run mcpt, so the tools could neither share
# one target instance nor be interleaved with mcpt. This script instead reuses peers.sh's
# nginx config and its parsing approach (wrk: "Requests/sec", "50%"/"99%" latency lines,
# socket errors + non-2xx; oha: summary.requestsPerSec, latencyPercentiles.p50/p99 x1000,
# non-2xx + errorDistribution minus "aborted due to deadline"; mcpt: the JSON report's
# tasks[0].achieved_rps, latency_ms.p50/p99, errors.total). -P runs peers.sh as a cross-check.
#
# Output: raw per-run TSV in $WORK/raw.tsv (printed at the end) and a summary block:
#   target tool n rps p50_ms p99_ms rss_mib errors gen_cpu%      (medians; errors summed)
#   ratios mcpt/wrk and mcpt/oha of rps, p50, p99 and RSS per target.
# Environment: MCPT, BENCH_STATE, GEN_CPU, TGT_CPU (see benches/common.sh).
set -u
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DUR=10 REPS=3 CONNS=64 TOOLS="wrk oha mcpt" TARGETS="nginx mcpt" WARM=1 PEERS=0
while getopts "d:r:c:T:t:w:Ph" o; do
  case $o in
    d) DUR=$OPTARG ;; r) REPS=$OPTARG ;; c) CONNS=$OPTARG ;; T) TOOLS=$OPTARG ;;
    t) TARGETS=$OPTARG ;; w) WARM=$OPTARG ;; P) PEERS=1 ;;
    *) awk 'NR>1 && /^#/ {sub(/^# ?/, ""); print; next} NR>1 {exit}' "$0"; exit 2 ;;
  esac
done
bench_init throughput
for t in $TOOLS; do
  case $t in
    wrk) command -v wrk >/dev/null || { echo "wrk not installed" >&2; exit 2; } ;;
    oha) [ -x "$OHA" ] || { echo "oha not installed" >&2; exit 2; } ;;
    mcpt) ;;
    *) echo "unknown tool $t" >&2; exit 2 ;;
  esac
done
ulimit -n "$(ulimit -Hn)" 2>/dev/null
RAW="$WORK/raw.tsv"
printf 'target\trep\ttool\trps\tp50_ms\tp99_ms\trss_mib\terrors\tgen_cpu_pct\trc\n' >"$RAW"
LIM=$((DUR + 60))

# run_tool TARGET REP TOOL URL: one measured run; appends a line to RAW.
run_tool() {
  local tgt=$1 rep=$2 tool=$3 url=$4 base="$WORK/$1.$3.$2" rc
  local -a cmd
  case $tool in
    wrk) cmd=(wrk -t1 -c"$CONNS" -d"${DUR}s" --latency "$url") ;;
    oha) cmd=("$OHA" -c "$CONNS" -z "${DUR}s" --no-tui --output-format json "$url") ;;
    mcpt)
      cat >"$base.yaml" <<EOF
name: throughput
tasks:
  - type: load_test
    parameters:
      targets: [{url: "$url"}]
      duration: ${DUR}s
      model: closed
      concurrent_users: $CONNS
EOF
      cmd=("$MCPT" run "$base.yaml" -q --output "$base.json" --set load_generation.workers=1)
      [ "$CONNS" -gt 1000 ] && cmd+=(--set load_generation.max_concurrent_requests=20000) ;;
  esac
  run_gen "$base" "$LIM" "${cmd[@]}"; rc=$?
  python3 - "$BENCH_DIR" "$tgt" "$rep" "$tool" "$base" "$rc" <<'PY' >>"$RAW"
import re, sys
sys.path.insert(0, sys.argv[1])
from compare import NAN, read, tool_figures   # the same parsing as compare.sh's
tgt, rep, tool, base, rc = sys.argv[2:7]
rps = p50 = p99 = NAN; err = ""
try:
    rps, p50, p99, err = tool_figures(tool, base)
except Exception as e:
    print(f"parse error {tool} ({base}): {e!r}", file=sys.stderr)
tim = read(base + ".time")
rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", tim)
rss = int(rss.group(1)) / 1024 if rss else NAN
cpu = re.search(r"Percent of CPU this job got: (\d+)%", tim)
print(f"{tgt}\t{rep}\t{tool}\t{rps:.1f}\t{p50:.3f}\t{p99:.3f}\t{rss:.1f}\t{err}\t{cpu.group(1) if cpu else ''}\t{rc}")
PY
  [ "$rc" = 0 ] || echo "warning: $tool against $tgt (rep $rep) exited with $rc (see $base.err)" >&2
}

read -r -a TOOLARR <<<"$TOOLS"
NT=${#TOOLARR[@]}
for tgt in $TARGETS; do
  port=$(free_port)
  case $tgt in
    nginx) start_nginx "$port" "$WORK/nginx" ;;
    mcpt) start_mcpt_target "$port" "$WORK/mcpt-target.log" ;;
    *) echo "unknown target $tgt" >&2; exit 2 ;;
  esac
  url="http://$HOST:$port/"
  echo "target $tgt on $url (pid $TGT_PID)" >&2
  if [ "$WARM" -gt 0 ]; then
    if command -v wrk >/dev/null; then
      timeout -k 5 $((WARM + 30)) "${GEN_PIN[@]}" wrk -t1 -c"$CONNS" -d"${WARM}s" "$url" >/dev/null 2>&1
    else
      timeout -k 5 $((WARM + 30)) "${GEN_PIN[@]}" "$OHA" -c "$CONNS" -z "${WARM}s" --no-tui "$url" >/dev/null 2>&1
    fi
    sleep 1
  fi
  for rep in $(seq "$REPS"); do
    for i in $(seq 0 $((NT - 1))); do
      tool=${TOOLARR[$(((i + rep - 1) % NT))]}
      echo "  rep $rep/$REPS: $tool" >&2
      run_tool "$tgt" "$rep" "$tool" "$url"
      sleep 1   # let TIME_WAIT / CPU settle between tools
    done
  done
  stop_server "$TGT_PID"
  sleep 1
done

PEERS_OUT=""
if [ "$PEERS" = 1 ]; then
  echo "cross-check: peers.sh -t nginx -T 'wrk oha' -d $DUR -r $REPS -c $CONNS" >&2
  PEERS_OUT=$(timeout -k 10 $(((DUR + 40) * REPS * 2 + 60)) /work/shared/bench/peers.sh -t nginx -T "wrk oha" \
    -d "$DUR" -r "$REPS" -c "$CONNS" -o "$WORK/peers-raw.tsv" 2>"$WORK/peers.err")
fi

echo
echo "raw runs ($RAW):"
column -t -s $'\t' "$RAW" 2>/dev/null || cat "$RAW"
echo
echo "===== throughput summary: closed model, $CONNS conns, ${DUR}s x $REPS reps, gen CPU $GEN_CPU, target CPU $TGT_CPU ====="
python3 - "$RAW" "$TARGETS" "$TOOLS" <<'PY'
import sys, math, statistics as st
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
targets, tools = sys.argv[2].split(), sys.argv[3].split()
def med(v):
    v = [x for x in v if not math.isnan(x)]
    return st.median(v) if v else float("nan")
print(f"{'target':7} {'tool':5} {'n':>2} {'rps':>10} {'p50_ms':>8} {'p99_ms':>8} {'rss_MiB':>8} {'errors':>7} {'gen_cpu%':>8}")
for tg in targets:
    m = {}
    for tl in tools:
        r = [x for x in rows if x[0] == tg and x[2] == tl]
        if not r: continue
        f = lambda i: med([float(x[i]) for x in r])
        m[tl] = (f(3), f(4), f(5), f(6))
        errs = sum(int(x[7]) for x in r if x[7].isdigit())
        bad = sum(1 for x in r if x[9] != "0" or not x[7].isdigit())
        cpu = med([float(x[8]) for x in r if x[8]])
        print(f"{tg:7} {tl:5} {len(r):>2} {m[tl][0]:>10.0f} {m[tl][1]:>8.3f} {m[tl][2]:>8.3f} {m[tl][3]:>8.1f} {errs:>7} {cpu:>8.0f}"
              + (f"   ({bad} failed/unparsed run(s))" if bad else ""))
    for peer in ("wrk", "oha"):
        if "mcpt" in m and peer in m:
            a, b = m["mcpt"], m[peer]
            rt = lambda i: a[i] / b[i] if b[i] else float("nan")
            print(f"{tg:7} mcpt/{peer}: rps {rt(0):.3f}  p50 {rt(1):.2f}  p99 {rt(2):.2f}  rss {rt(3):.2f}")
PY
if [ -n "$PEERS_OUT" ]; then
  echo "peers.sh cross-check (nginx :8080, tool rps p50_ms p99_ms rss_mb):"
  echo "$PEERS_OUT" | sed 's/^/  /'
elif [ "$PEERS" = 1 ]; then
  echo "peers.sh cross-check failed (see $WORK/peers.err)"
fi
echo "results: $WORK"
echo "====="
