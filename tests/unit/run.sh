#!/bin/sh
# run.sh - runs each unit test binary in its own process with a timeout,
# prints its TAP, and a closing "N passed, N failed" line. UNIT_TIMEOUT
# (seconds, default 300) bounds each binary: generous, since make test runs
# the unit tests beside the black-box ones on a busy host.
pass=0
fail=0
for t in "$@"; do
    echo "# $t"
    out=$(timeout "${UNIT_TIMEOUT:-300}" "$t" 2>&1)
    rc=$?
    echo "$out"
    n_ok=$(printf '%s\n' "$out" | grep -c '^ok ')
    n_bad=$(printf '%s\n' "$out" | grep -c '^not ok ')
    pass=$((pass + n_ok))
    fail=$((fail + n_bad))
    if [ $rc -ne 0 ] && [ "$n_bad" -eq 0 ]; then
        echo "not ok - $t exited with status $rc"
        fail=$((fail + 1))
    fi
done
echo "unit: $pass passed, $fail failed"
[ $fail -eq 0 ]
