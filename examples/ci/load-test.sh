#!/bin/sh
# Runs a load test on an mcpt cluster from a CI job and passes its verdict on as the job's.
#
#   MCPT_ORCHESTRATOR  the orchestrator's address, e.g. http://mcpt.internal:8080 (required)
#   MCPT_TOKEN         its API token (api.token), if it has one
#   MCPT_PLAN          the plan (default: plan.yaml beside this script)
#   MCPT_REPORT_DIR    where report.json and report.html go (default: mcpt-report)
#   MCPT               the mcpt binary (default: mcpt on the PATH)
#
# Exit code: mcpt's own. 0 passed, 3 a threshold failed, 2 the plan is invalid, 1 the
# cluster could not run it (unreachable, failed, lost), 130 interrupted.
set -u

here=$(cd "$(dirname "$0")" && pwd)
: "${MCPT_ORCHESTRATOR:?set MCPT_ORCHESTRATOR to the orchestrator's address, e.g. http://mcpt.internal:8080}"
plan=${MCPT_PLAN:-$here/plan.yaml}
reports=${MCPT_REPORT_DIR:-mcpt-report}
mcpt=${MCPT:-mcpt}

mkdir -p "$reports" || exit 1
set -- run "$plan" --orchestrator "$MCPT_ORCHESTRATOR" \
    --output "$reports/report.json" --html "$reports/report.html"
if [ -n "${MCPT_TOKEN:-}" ]; then
    set -- "$@" --token "$MCPT_TOKEN"
fi

"$mcpt" "$@"
code=$?
case $code in
    0) echo "load test passed" ;;
    3) echo "load test FAILED: a threshold failed (see $reports/report.html)" ;;
    2) echo "load test not run: the plan or the command line is invalid" ;;
    130) echo "load test interrupted" ;;
    *) echo "load test not completed: the cluster could not run it (exit $code)" ;;
esac >&2
exit $code
