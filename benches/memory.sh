#!/usr/bin/env bash
# memory.sh — peak RSS of `mcpt run` holding many concurrent connections (closed model).
#
# Usage: benches/memory.sh [-u USERS] [-d SECS] [-g GOAL_MIB] [-w WORKERS]
#   -u  closed-model users = concurrent connections (default 10000)
#   -d  duration, seconds (default 10)
#   -g  goal for mcpt's peak RSS, MiB (default 200)
#   -w  mcpt load workers (default: unset = mcpt's default, one per core of its affinity
#       mask = 1 under taskset -c 0)
#
# Starts `mcpt target --workers 1` on CPU 1 (free port), then runs `mcpt run` on CPU 0 with
#   model: closed, concurrent_users: USERS,
#   --set load_generation.max_concurrent_requests=max(20000, USERS)
# under /usr/bin/time -v. `ulimit -n` is raised to the hard limit (needs > USERS + 1000: both
# processes, which inherit it, hold USERS sockets). While it runs, the established
# connections to the target's port are counted once a second with `ss` (CPU 1, cheap) to show
# that USERS connections were really open at once.
#
# Summary: mcpt peak RSS (MiB) vs goal (PASS/FAIL), target peak RSS (VmHWM), max connections
# seen, requests, achieved rps, errors (total and by kind), p50/p99, and the target's own
# request count (GET /stats) as a cross-check. Exit status: 0 PASS, 1 FAIL (RSS over the goal,
# mcpt failed, or no report), 2 setup error.
# Environment: MCPT, BENCH_STATE, GEN_CPU, TGT_CPU (see benches/common.sh).
set -u
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

USERS=10000 DUR=10 GOAL=200 WORKERS=""
while getopts "u:d:g:w:h" o; do
  case $o in
    u) USERS=$OPTARG ;; d) DUR=$OPTARG ;; g) GOAL=$OPTARG ;; w) WORKERS=$OPTARG ;;
    *) awk 'NR>1 && /^#/ {sub(/^# ?/, ""); print; next} NR>1 {exit}' "$0"; exit 2 ;;
  esac
done
bench_init memory

need=$((USERS + 1000))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
  echo "ulimit -Hn is $hard; need at least $need open files for $USERS users (raise the hard limit)" >&2
  exit 2
fi
ulimit -n "$hard" || { echo "could not raise ulimit -n" >&2; exit 2; }
echo "ulimit -n $(ulimit -n)" >&2

PORT=$(free_port)
start_mcpt_target "$PORT" "$WORK/target.log"
URL="http://$HOST:$PORT/"
curl -s -m 5 -X DELETE "${URL}stats" >/dev/null

MAXREQ=$((USERS > 20000 ? USERS : 20000))
cat >"$WORK/plan.yaml" <<EOF
name: memory
tasks:
  - type: load_test
    parameters:
      targets: [{url: "$URL"}]
      duration: ${DUR}s
      model: closed
      concurrent_users: $USERS
EOF
cmd=("$MCPT" run "$WORK/plan.yaml" -q --output "$WORK/report.json"
     --set "load_generation.max_concurrent_requests=$MAXREQ")
[ -n "$WORKERS" ] && cmd+=(--set "load_generation.workers=$WORKERS")

# connection sampler: established sockets whose peer or local port is the target's, once a
# second (client side only, so: dport = PORT), max kept in $WORK/conns
( trap 'exit 0' TERM
  while :; do
    taskset -c "$TGT_CPU" ss -Htn state established "( dport = :$PORT )" 2>/dev/null | wc -l >>"$WORK/conns"
    sleep 1
  done ) &
SAMPLER_PID=$!

echo "running: ${cmd[*]}" >&2
run_gen "$WORK/mcpt" $((DUR + 120)) "${cmd[@]}"; RC=$?
stop_pid "$SAMPLER_PID" TERM; SAMPLER_PID=""
TGT_HWM=$(awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$TGT_PID/status" 2>/dev/null || echo nan)
curl -s -m 5 "${URL}stats" >"$WORK/target-stats.json"
stop_server "$TGT_PID"
RSS=$(peak_rss_mib "$WORK/mcpt")

echo
echo "===== memory summary: closed model, $USERS users, ${DUR}s, mcpt on CPU $GEN_CPU, target on CPU $TGT_CPU ====="
python3 - "$WORK" "$RSS" "$GOAL" "$RC" "$TGT_HWM" "$USERS" <<'PY'
import json, sys, math
work, rss, goal, rc, thwm, users = sys.argv[1:7]
rss, goal, users = float(rss), float(goal), int(users)
def load(p):
    try: return json.load(open(p))
    except Exception: return None
rep, st = load(f"{work}/report.json"), load(f"{work}/target-stats.json")
try: conns = max(int(x) for x in open(f"{work}/conns").read().split())
except Exception: conns = -1
ok = rc == "0" and rep is not None and not math.isnan(rss) and rss <= goal
print(f"mcpt peak RSS      {rss:.1f} MiB  (goal <= {goal:.0f} MiB)  {'PASS' if ok else 'FAIL'}")
print(f"mcpt exit status   {rc}")
print(f"target peak RSS    {thwm} MiB (VmHWM)")
print(f"max established    {conns} connections (sampled 1/s; {users} users)")
if rep:
    t = rep["tasks"][0]; e = t["errors"]
    print(f"requests           {t['total_requests']}  achieved {t['achieved_rps']:.1f} req/s over {t['duration_s']} s")
    print(f"errors             {e['total']} (connect {e['connect']}, timeout {e['timeout']}, status {e['status']}, body {e['body']})")
    print(f"latency ms         p50 {t['latency_ms']['p50']}  p99 {t['latency_ms']['p99']}  max {t['latency_ms']['max']}")
    if st:
        ok2 = t["total_requests"] - e["total"]
        print(f"target counted     {st['total']} requests (mcpt: {t['total_requests']} sent, {ok2} without error)")
else:
    print("no report written (see mcpt.err)")
print(f"results            {work}")
print("=====")
sys.exit(0 if ok else 1)
PY
