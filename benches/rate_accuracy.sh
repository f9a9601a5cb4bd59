#!/usr/bin/env bash
# rate_accuracy.sh — does mcpt's open model deliver the planned request rate? Counted by the target.
#
# Usage: benches/rate_accuracy.sh [-r REPS] [-d SECS] [-b RPS] [-l RAMP_BASE] [-p RAMP_PEAK]
#                                 [-a uniform|poisson] [-c USERS]
#   -r  repetitions of each scenario (default 3); scenarios are interleaved (const, ramp, ...)
#   -d  duration of each run, seconds (default 10)
#   -b  constant scenario rate (default 1500)            -> expected b*d = 15000
#   -l  ramp_up base rate (default 200)
#   -p  ramp_up peak rate (default 2000)                 -> expected (l+p)/2*d = 11000
#   -a  arrivals (default uniform)
#   -c  concurrent_users, the in-flight cap (default 100)
#
# Scenarios (open model, `mcpt run` on CPU 0, `mcpt target --workers 1` on CPU 1, free port):
#   const: base_rps b for d seconds.
#   ramp:  pattern ramp_up, base_rps l -> peak_rps p linearly over the whole duration.
# Before every run the target's counters are reset (DELETE /stats); after it, GET /stats gives
# `total` and `per_second` (requests received in each second since the first one).
# Criteria (printed PASS/FAIL; exit 1 if any fails, 2 on a setup error):
#   total       every run: target total within ±1% of the planned count (∫ rate over [0, d)).
#   per-second  pooled over all runs of a scenario: >= 95% of seconds within ±5% of the planned
#               count of that second, ∫ rate over [k, k+1): const b; ramp
#               l + (p-l)/d * (k + 1/2) (exact for a linear rate; 290 + 180k for the defaults).
#               Only seconds 0 .. d-1 are graded; requests the target saw after second d-1
#               ("spill", e.g. late ones) still count in the total and are shown.
# Also shown per run: mcpt's own report (total_requests, planned_requests, errors, late_starts)
# to compare with the target's count.
# Environment: MCPT, BENCH_STATE, GEN_CPU, TGT_CPU (see benches/common.sh).
set -u
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

REPS=3 DUR=10 CONST=1500 RBASE=200 RPEAK=2000 ARR=uniform USERS=100
while getopts "r:d:b:l:p:a:c:h" o; do
  case $o in
    r) REPS=$OPTARG ;; d) DUR=$OPTARG ;; b) CONST=$OPTARG ;; l) RBASE=$OPTARG ;;
    p) RPEAK=$OPTARG ;; a) ARR=$OPTARG ;; c) USERS=$OPTARG ;;
    *) awk 'NR>1 && /^#/ {sub(/^# ?/, ""); print; next} NR>1 {exit}' "$0"; exit 2 ;;
  esac
done
bench_init rate
ulimit -n "$(ulimit -Hn)" 2>/dev/null

PORT=$(free_port)
start_mcpt_target "$PORT" "$WORK/target.log"
URL="http://$HOST:$PORT/"
RAW="$WORK/runs.jsonl"
: >"$RAW"

plan() { # plan SCENARIO FILE
  local rate
  if [ "$1" = const ]; then rate="base_rps: $CONST"
  else rate="base_rps: $RBASE
      peak_rps: $RPEAK
      pattern: ramp_up"
  fi
  cat >"$2" <<EOF
name: rate-$1
tasks:
  - type: load_test
    parameters:
      targets: [{url: "$URL"}]
      duration: ${DUR}s
      model: open
      arrivals: $ARR
      concurrent_users: $USERS
      $rate
EOF
}

for rep in $(seq "$REPS"); do
  for sc in const ramp; do
    base="$WORK/$sc.$rep"
    plan "$sc" "$base.yaml"
    curl -s -m 5 -X DELETE "${URL}stats" >/dev/null || { echo "DELETE /stats failed" >&2; exit 2; }
    st=$(curl -s -m 5 "${URL}stats")
    case $st in *'"total":0'*) ;; *) echo "target counters not reset: $st" >&2; exit 2 ;; esac
    echo "rep $rep/$REPS: $sc" >&2
    run_gen "$base" $((DUR + 60)) "$MCPT" run "$base.yaml" -q --output "$base.json"; rc=$?
    sleep 0.2
    curl -s -m 5 "${URL}stats" >"$base.stats" || echo '{}' >"$base.stats"
    [ "$rc" = 0 ] || echo "warning: mcpt exited with $rc (see $base.err)" >&2
    python3 - "$sc" "$rep" "$base" "$rc" >>"$RAW" <<'PY'
import json, sys
sc, rep, base, rc = sys.argv[1:5]
def load(p):
    try: return json.load(open(p))
    except Exception: return None
st, rp = load(base + ".stats") or {}, load(base + ".json")
t = rp["tasks"][0] if rp else {}
print(json.dumps({"sc": sc, "rep": int(rep), "rc": int(rc), "total": st.get("total"),
    "per_second": st.get("per_second", []), "mcpt_total": t.get("total_requests"),
    "mcpt_planned": t.get("planned_requests"), "mcpt_errors": (t.get("errors") or {}).get("total"),
    "late_starts": t.get("late_starts"), "achieved_rps": t.get("achieved_rps"),
    "p99_ms": (t.get("latency_ms") or {}).get("p99")}))
PY
    sleep 1
  done
done
stop_server "$TGT_PID"

echo
echo "===== rate accuracy summary: open model ($ARR arrivals), ${DUR}s x $REPS reps, mcpt on CPU $GEN_CPU, target on CPU $TGT_CPU ====="
python3 - "$RAW" "$DUR" "$CONST" "$RBASE" "$RPEAK" "$WORK" <<'PY'
import json, sys
raw, d, c, l, p, work = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
runs = [json.loads(x) for x in open(raw) if x.strip()]
# planned count in second k = ∫_k^{k+1} rate; rate linear => rate at the midpoint
exp_sec = {"const": [c] * d, "ramp": [l + (p - l) / d * (k + 0.5) for k in range(d)]}
exp_tot = {s: sum(v) for s, v in exp_sec.items()}
desc = {"const": f"constant {c:g} rps", "ramp": f"ramp_up {l:g}->{p:g} rps"}
fails = 0
for sc in ("const", "ramp"):
    rs = [r for r in runs if r["sc"] == sc]
    E, ES = exp_tot[sc], exp_sec[sc]
    print(f"[{sc}] {desc[sc]} over {d} s: expected {E:g} requests (±1% = {E*0.99:.0f}..{E*1.01:.0f})")
    print(f"   planned/s: {' '.join(f'{x:g}' for x in ES)}")
    tot_ok = bool(rs); within = graded = 0
    for r in rs:
        tot, ps = r["total"], r["per_second"] or []
        dev = (tot - E) / E * 100 if tot is not None else float("nan")
        ok = tot is not None and abs(tot - E) <= 0.01 * E and r["rc"] == 0
        tot_ok &= ok
        secs = ps[:d] + [0] * max(0, d - len(ps))
        w = [abs(n - e) <= 0.05 * e for n, e in zip(secs, ES)]
        within += sum(w); graded += len(w)
        spill = sum(ps[d:])
        print(f"   rep {r['rep']}: target {tot} ({dev:+.2f}%) {'ok' if ok else 'OUT'}; "
              f"mcpt sent {r['mcpt_total']}, planned {r['mcpt_planned']}, errors {r['mcpt_errors']}, "
              f"late {r['late_starts']}, p99 {r['p99_ms']} ms, rc {r['rc']}")
        print(f"          per second: {' '.join(str(n) + ('' if ok_ else '*') for n, ok_ in zip(secs, w))}"
              f"  spill {spill} ({len(ps)} s seen; * = outside ±5%)")
    frac = within / graded if graded else 0.0
    sec_ok = graded > 0 and frac >= 0.95
    fails += (not tot_ok) + (not sec_ok)
    print(f"   {'PASS' if tot_ok else 'FAIL'}  total within ±1% in every run")
    print(f"   {'PASS' if sec_ok else 'FAIL'}  seconds within ±5%: {within}/{graded} = {frac*100:.1f}% (goal >= 95%)")
print(f"overall: {'PASS' if fails == 0 else f'FAIL ({fails} criteria)'}")
print(f"results: {work}")
print("=====")
sys.exit(1 if fails else 0)
PY
