#!/usr/bin/env bash
# flow.sh — what a user flow costs beside the plain path (issue 16, acceptance 4): the
# generator's CPU per request of a three-step flow against a plain target list, in the same
# interleaved series, and the peak RSS of 10,000 virtual users running the flow.
#
# Usage: benches/flow.sh [-r REPS] [-d SECS] [-c USERS] [-T "plain flow"] [-x RATIO]
#                        [-u MUSERS] [-t THINK] [-g GOAL_MIB] [MODE ...]
#   -r  repetitions (default 5); figures are per-variant medians, variants interleaved and the
#       order rotated by one per repetition
#   -d  duration of each run, seconds (default 10)
#   -c  closed-model users of the speed mode (default 64)
#   -T  variants of the speed mode (default "plain flow"):
#         plain     targets: [GET /me with a fixed valid `authorization: Bearer TOKEN`]
#         flow      flow: POST /login (JSON body {user: "u{{ vu }}", password}), capture
#                   token ($.token), check status 200; GET /me twice with
#                   `authorization: "Bearer {{ token }}"`, check status 200 (cookies on, the
#                   default: the login's mcpt_session cookie goes back with each /me)
#         nocookie  the flow with `cookies: false` (to tell the jar's share)
#         mix       plain targets in the flow's proportions: POST /login with a fixed JSON body
#                   (weight 1) and GET /me with plain's token (weight 2): the target's work of
#                   the flow without the flow's machinery (to tell a slower target's share)
#   -x  goal for flow/plain CPU per request (default 1.3)
#   -u  closed-model users of the memory mode (default 10000)
#   -t  think time at the end of each memory-mode iteration (default 1s)
#   -g  goal for mcpt's peak RSS in the memory mode, MiB (default 200)
# MODES (default: speed memory):
#   speed   closed model, USERS users, SECS per run, `load_generation.workers=1`. CPU per
#           request = the generator's user + system time (/usr/bin/time -v: getrusage of the
#           reaped process, i.e. /proc/PID/stat utime + stime at its end) over the requests
#           the target counted (GET /stats `total`, reset with DELETE /stats before each run).
#           PASS when median(flow) / median(plain) <= RATIO and the target refused no token.
#   memory  closed model, MUSERS users running the flow with a `think: THINK` step after the
#           two /me, SECS: mcpt's peak RSS ("Maximum resident set size", the VmHWM of the
#           process) vs GOAL; established connections sampled once a second with `ss`.
#
# Target: `mcpt target --workers 1` (this build) on TGT_CPU (default 1), generator on GEN_CPU
# (default 0), both with taskset. Tokens are HMACs under a key drawn when the target starts:
# plain's token is fetched with curl from the same target process. steal_pct: the host's
# steal time over the run in % of all CPU time (/proc/stat); a run above 2% is flagged.
# Other benches share the machine: run it under the bench lock, e.g.
#   flock /tmp/bench.lock benches/flow.sh
# Exit status: 0 all PASS, 1 a criterion failed, 2 setup error. Output: $WORK/raw.tsv (every
# run), summaries on stdout. Environment: MCPT, BENCH_STATE, GEN_CPU, TGT_CPU (see
# benches/common.sh); nothing is killed by name.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

REPS=5 DUR=10 USERS=64 VARIANTS="plain flow" RATIO=1.3 MUSERS=10000 THINK=1s GOAL=200
while getopts "r:d:c:T:x:u:t:g:h" o; do
  case $o in
    r) REPS=$OPTARG ;; d) DUR=$OPTARG ;; c) USERS=$OPTARG ;; T) VARIANTS=$OPTARG ;;
    x) RATIO=$OPTARG ;; u) MUSERS=$OPTARG ;; t) THINK=$OPTARG ;; g) GOAL=$OPTARG ;;
    *) awk 'NR>1 && /^#/ {sub(/^# ?/, ""); print; next} NR>1 {exit}' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
MODES="${*:-speed memory}"
for v in $VARIANTS; do
  case $v in plain | flow | nocookie | mix) ;; *) echo "unknown variant $v" >&2; exit 2 ;; esac
done
bench_init flow

need=$((MUSERS + 1000))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
  echo "ulimit -Hn is $hard; need at least $need open files for $MUSERS users" >&2
  exit 2
fi
ulimit -n "$hard" || { echo "could not raise ulimit -n" >&2; exit 2; }

PORT=$(free_port)
start_mcpt_target "$PORT" "$WORK/target.log"
BASE_URL="http://$HOST:$PORT"
TOKEN=$(curl -s -m 5 -H 'content-type: application/json' -d '{"user":"plain","password":"pw"}' \
  "$BASE_URL/login" | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])') ||
  { echo "no token from $BASE_URL/login" >&2; exit 2; }
[ "$(curl -s -m 5 -o /dev/null -w '%{http_code}' -H "authorization: Bearer $TOKEN" "$BASE_URL/me")" = 200 ] ||
  { echo "$BASE_URL/me refused the token" >&2; exit 2; }
echo "mcpt target $TGT_PID on $BASE_URL (CPU $TGT_CPU); generator on CPU $GEN_CPU; results in $WORK" >&2

RAW="$WORK/raw.tsv"
printf 'mode\trep\tvariant\tcounted\tlogin\tme\trejected\tsecs\trps\tcpu_s\tus_per_req\trss_mib\terrors\tchecks_failed\titerations\trc\tsteal_pct\tconns\n' >"$RAW"
CRIT_FAIL=0

# cpu_ticks: "total steal" of the machine in clock ticks (/proc/stat), as in compare.sh.
cpu_ticks() { awk '/^cpu /{t=0; for (i=2; i<=NF; i++) t+=$i; print t, $9; exit}' /proc/stat; }

# plan VARIANT USERS SECS THINK: the plan of one run, on stdout.
plan() {
  local v=$1 users=$2 secs=$3 think=$4 head
  head="name: flow-bench-$v
tasks:
  - type: load_test
    parameters:
      duration: ${secs}s
      model: closed
      concurrent_users: $users"
  if [ "$v" = plain ]; then
    cat <<YAML
$head
      targets:
        - url: "$BASE_URL/me"
          headers: {authorization: "Bearer $TOKEN"}
YAML
    return
  fi
  if [ "$v" = mix ]; then
    cat <<YAML
$head
      targets:
        - {url: "$BASE_URL/login", method: POST, body: {user: "plain", password: "pw"}, weight: 1}
        - {url: "$BASE_URL/me", headers: {authorization: "Bearer $TOKEN"}, weight: 2}
YAML
    return
  fi
  cat <<YAML
$head
      cookies: $([ "$v" = nocookie ] && echo false || echo true)
      flow:
        - name: login
          request:
            method: POST
            url: "$BASE_URL/login"
            body: {user: "u{{ vu }}", password: "pw"}
          capture: {token: {json: "\$.token"}}
          check: {status: 200}
        - name: me
          request:
            url: "$BASE_URL/me"
            headers: {authorization: "Bearer {{ token }}"}
          check: {status: 200}
        - name: me
          request:
            url: "$BASE_URL/me"
            headers: {authorization: "Bearer {{ token }}"}
          check: {status: 200}
YAML
  [ "$think" = 0 ] || echo "        - think: $think"
}

# run_one MODE REP VARIANT USERS SECS THINK: one measured run, counted by the target.
run_one() {
  local mode=$1 rep=$2 v=$3 users=$4 secs=$5 think=$6 base="$WORK/$1.$3.$2" rc t0 t1
  plan "$v" "$users" "$secs" "$think" >"$base.yaml"
  curl -s -m 5 -X DELETE "$BASE_URL/stats" >/dev/null
  : >"$base.conns"
  if [ "$mode" = memory ]; then
    ( trap 'exit 0' TERM
      while :; do
        taskset -c "$TGT_CPU" ss -Htn state established "( dport = :$PORT )" 2>/dev/null | wc -l >>"$base.conns"
        sleep 1
      done ) &
    SAMPLER_PID=$!
  fi
  t0=$(cpu_ticks)
  run_gen "$base" $((secs + 120)) "$MCPT" run "$base.yaml" -q --output "$base.json" \
    --set load_generation.workers=1 \
    --set "load_generation.max_concurrent_requests=$((users > 20000 ? users : 20000))"
  rc=$?
  t1=$(cpu_ticks)
  if [ -n "$SAMPLER_PID" ]; then stop_pid "$SAMPLER_PID" TERM; SAMPLER_PID=""; fi
  curl -s -m 5 "$BASE_URL/stats" >"$base.stats.json"
  python3 - "$mode" "$rep" "$v" "$base" "$rc" "$secs" "$t0" "$t1" >>"$RAW" <<'PY'
import json, re, sys
mode, rep, v, base, rc, secs, t0, t1 = sys.argv[1:9]
nan = float("nan")
def load(p):
    try: return json.load(open(p))
    except Exception: return None
st, rep_json = load(base + ".stats.json") or {}, load(base + ".json")
try: tim = open(base + ".time").read()
except OSError: tim = ""
cpu = sum(float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", tim))
m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", tim)
rss = int(m.group(1)) / 1024 if m else nan
counted = st.get("total", 0)
paths = st.get("paths", {})
errors = checks = iters = -1
if rep_json:
    t = rep_json["tasks"][0]
    errors = t["errors"]["total"]
    checks = sum(r.get("checks_failed", 0) for r in t.get("requests", []))
    iters = (t.get("iterations") or {}).get("completed", -1)
(a0, s0), (a1, s1) = (map(int, x.split()) for x in (t0, t1))
steal = (s1 - s0) / (a1 - a0) * 100 if a1 > a0 else nan
try: conns = max(int(x) for x in open(base + ".conns").read().split())
except Exception: conns = -1
us = cpu / counted * 1e6 if counted else nan
print("\t".join(str(x) for x in [mode, rep, v, counted, paths.get("/login", 0), paths.get("/me", 0),
      st.get("rejected_tokens", -1), secs, f"{counted / float(secs):.1f}", f"{cpu:.2f}", f"{us:.3f}",
      f"{rss:.1f}", errors, checks, iters, rc, f"{steal:.2f}", conns]))
PY
  [ "$rc" = 0 ] || echo "warning: $v ($mode, rep $rep) exited with $rc (see $base.err)" >&2
  sleep 1   # let TIME_WAIT / CPU settle between runs
}

speed() {
  local rep i v
  local -a vs=($VARIANTS)
  echo "== speed: ${vs[*]}, $USERS users, $REPS x ${DUR}s (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  for v in "${vs[@]}"; do   # warm-up, not counted
    plan "$v" "$USERS" 1 0 >"$WORK/warm.$v.yaml"
    timeout -k 5 60 "${GEN_PIN[@]}" "$MCPT" run "$WORK/warm.$v.yaml" -q --output "$WORK/warm.$v.json" \
      --set load_generation.workers=1 >/dev/null 2>&1
  done
  for rep in $(seq "$REPS"); do
    for i in $(seq 0 $((${#vs[@]} - 1))); do
      v=${vs[$(((i + rep - 1) % ${#vs[@]}))]}
      echo "  rep $rep/$REPS: $v" >&2
      run_one speed "$rep" "$v" "$USERS" "$DUR" 0
    done
  done
  python3 - "$RAW" "$RATIO" <<'PY' || CRIT_FAIL=1
import csv, statistics, sys
raw, goal = sys.argv[1], float(sys.argv[2])
rows = [r for r in csv.DictReader(open(raw), delimiter="\t") if r["mode"] == "speed"]
med = lambda xs: statistics.median(xs) if xs else float("nan")
print(f"\n===== speed: closed model, CPU per request the target counted (median of runs) =====")
print(f"{'variant':9} {'runs':>4} {'rps':>9} {'cpu_s':>6} {'us/req':>7} {'rss_MiB':>7} {'errors':>6} "
      f"{'checks':>6} {'rejected':>8} {'steal% med/max':>14}  us/req of each run")
meds, ok = {}, True
for v in dict.fromkeys(r["variant"] for r in rows):
    rs = [r for r in rows if r["variant"] == v]
    f = lambda k: med([float(r[k]) for r in rs])
    meds[v] = f("us_per_req")
    steals = [float(r["steal_pct"]) for r in rs]
    rej = sum(int(r["rejected"]) for r in rs)
    bad = [r for r in rs if r["rc"] != "0" or int(r["errors"]) != 0 or rej]
    ok = ok and not bad
    print(f"{v:9} {len(rs):>4} {f('rps'):>9.0f} {f('cpu_s'):>6.2f} {meds[v]:>7.3f} {f('rss_mib'):>7.1f} "
          f"{sum(int(r['errors']) for r in rs):>6} {sum(int(r['checks_failed']) for r in rs):>6} {rej:>8} "
          f"{med(steals):>6.1f}/{max(steals):<6.1f}  "
          + " ".join(r["us_per_req"] + ("!" if float(r["steal_pct"]) > 2 else "") for r in rs))
for v in meds:
    if v == "plain": continue
    ratio = meds[v] / meds.get("plain", float("nan"))
    verdict = ("PASS" if ratio <= goal else "FAIL") if v == "flow" else "(diagnostic)"
    ok = ok and (v != "flow" or ratio <= goal)
    print(f"{v}/plain CPU per request: {ratio:.3f}  (goal <= {goal})  {verdict}")
if "mix" in meds and "flow" in meds:
    print(f"flow/mix CPU per request: {meds['flow'] / meds['mix']:.3f}  (diagnostic: the flow's "
          "machinery alone, the target's work being the same)")
print("! = steal above 2% in that run; errors/checks/rejected are totals over the runs")
print("=====")
sys.exit(0 if ok else 1)
PY
}

memory() {
  echo "== memory: flow, $MUSERS users, think $THINK, ${DUR}s (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  run_one memory 1 flow "$MUSERS" "$DUR" "$THINK"
  local hwm
  hwm=$(awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$TGT_PID/status" 2>/dev/null || echo nan)
  python3 - "$RAW" "$GOAL" "$MUSERS" "$hwm" <<'PY' || CRIT_FAIL=1
import csv, sys
raw, goal, users, thwm = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
r = [r for r in csv.DictReader(open(raw), delimiter="\t") if r["mode"] == "memory"][-1]
rss = float(r["rss_mib"])
ok = r["rc"] == "0" and rss <= goal and r["rejected"] == "0"
print(f"\n===== memory: flow, closed model, {users} users =====")
print(f"mcpt peak RSS      {rss:.1f} MiB  (goal <= {goal:.0f} MiB)  {'PASS' if ok else 'FAIL'}")
print(f"mcpt exit status   {r['rc']}   steal {r['steal_pct']}%   target peak RSS {thwm} MiB (VmHWM)")
print(f"max established    {r['conns']} connections (sampled 1/s)")
print(f"target counted     {r['counted']} ({r['login']} /login, {r['me']} /me), {r['rps']} req/s, "
      f"rejected tokens {r['rejected']}")
print(f"mcpt               {r['iterations']} iterations completed, {r['errors']} errors, "
      f"{r['checks_failed']} failed checks, CPU {r['cpu_s']} s ({r['us_per_req']} us/req)")
print("=====")
sys.exit(0 if ok else 1)
PY
}

for mode in $MODES; do
  case $mode in
    speed) speed ;;
    memory) memory ;;
    *) echo "unknown mode $mode" >&2; exit 2 ;;
  esac
done
echo "raw runs: $RAW"
exit "$CRIT_FAIL"
