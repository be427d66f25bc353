#!/usr/bin/env bash
# `make test`: the checks (`make checks`: buf, generated code, ruff, mypy, promtool) beside
# the test suite, not before it. The checks take ~20 s, most of it mypy on one core, while
# the suite leaves a tenth of the two cores idle or more. A failed check is shown as soon
# as it fails, the tests go on, and `make test` fails at the end.
#   scripts/check-and-test.sh MAKE -- PYTEST_COMMAND...
set -uo pipefail
make_cmd=$1
shift 2
checks_log=$(mktemp)
trap 'rm -f "$checks_log"' EXIT

(
  if "$make_cmd" --no-print-directory checks >"$checks_log" 2>&1; then
    exit 0
  fi
  cat "$checks_log"
  echo "make test: a check failed (above); the tests go on, and make test will fail" >&2
  exit 1
) &
checks=$!
"$@"
tests=$?
wait "$checks"
checked=$?
if ((checked == 0)); then
  echo "--- the checks (make checks), run beside the tests: passed"
  cat "$checks_log"
fi
((tests != 0)) && exit "$tests"
exit "$checked"
