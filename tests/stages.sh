#!/bin/sh
# stages.sh - runs make test's stages side by side (Makefile, `test`).
#
#   tests/stages.sh "STAGE STAGE ..." "STAGE ..." ... [-- "STAGE ..." ...]
#
# Each argument is a lane: its stages (make targets) run one after another;
# the lanes of a phase run at the same time; "--" ends a phase, and the
# next starts when every lane of the one before has ended. A stage's
# output goes to
# build/test/STAGE.log, not to the terminal, so that lanes do not mix: one
# line is printed as each stage starts and ends (status, seconds), and at
# the end the summary line of every stage and the tail of the log of each
# that failed. Every stage runs even when another failed; the exit status
# is 1 when any failed. MAKE names the make to call (default make).
set -u

MAKE=${MAKE:-make}
dir=build/test
mkdir -p "$dir"
stages=
for lane in "$@"; do
    [ "$lane" = -- ] || stages="$stages $lane"
done
for s in $stages; do
    rm -f "$dir/$s.log" "$dir/$s.rc"
done

t_start=$(date +%s)

lane() {
    for s in $1; do
        t0=$(date +%s)
        echo "test: $s started"
        $MAKE --no-print-directory "$s" >"$dir/$s.log" 2>&1
        rc=$?
        echo "$rc" >"$dir/$s.rc"
        t=$(($(date +%s) - t0))
        if [ "$rc" -eq 0 ]; then
            echo "test: $s ok (${t}s)"
        else
            echo "test: $s FAILED (${t}s, exit $rc; $dir/$s.log)"
        fi
    done
}

pids=
for l in "$@" --; do
    if [ "$l" = -- ]; then
        for p in $pids; do
            wait "$p"
        done
        pids=
        continue
    fi
    lane "$l" &
    pids="$pids $!"
done

failed=
echo "test: summary ($(($(date +%s) - t_start))s wall; load $(cut -d' ' -f1-3 /proc/loadavg))"
for s in $stages; do
    rc=$(cat "$dir/$s.rc" 2>/dev/null || echo "?")
    # the last line that says how it went: "unit: N passed, N failed",
    # pytest's "N passed in 12s", a fuzz result, or the log's last line
    line=$(grep -E '^(unit|store): |passed|failed|error|no finding|fuzz_' "$dir/$s.log" 2>/dev/null |
        tail -n 1)
    [ -n "$line" ] || line=$(tail -n 1 "$dir/$s.log" 2>/dev/null)
    printf '  %-13s %s  %s\n' "$s" "$([ "$rc" = 0 ] && echo ok || echo "FAILED($rc)")" "$line"
    [ "$rc" = 0 ] || failed="$failed $s"
done
for s in $failed; do
    echo "=== $s: the end of $dir/$s.log"
    tail -n 60 "$dir/$s.log"
done
[ -z "$failed" ]
