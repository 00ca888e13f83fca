#!/bin/bash
# fuzz.sh [-j JOBS] SECONDS TARGET... - runs each libFuzzer target for
# SECONDS on its corpus (build/fuzz/corpus/TARGET, grown here, not
# committed) and its seeds (tests/fuzz/seeds/TARGET), JOBS of them at a time
# (default 1), and prints one line each, in the order given: executions,
# CPU seconds, and whether it found anything (its log is
# build/fuzz/TARGET.log; a crash input is left as build/fuzz/crash-*).
# Exit 1 when a target failed. tests/fuzz/README.md.
set -u
# libfyaml's own leak (tests/lsan.supp), as in every test build
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0}
jobs=1
if [ "${1:-}" = "-j" ]; then
    jobs=$2
    shift 2
fi
secs=$1
shift
TIMEFORMAT='%U %S'

# One target: its result line goes to build/fuzz/TARGET.result. A leak
# found with ASan's fast unwinder (whose stacks stop at the library
# function that called malloc) is run again with full stacks: when
# tests/lsan.supp then suppresses it (a library's own leak, such as
# libjq's parser's), it is no finding, and the target fuzzes on for the
# rest of its time.
run_one() {
    local t=$1 log="build/fuzz/$1.log" cpu rc runs cpu_s left art known="" start=$SECONDS
    mkdir -p "build/fuzz/corpus/$t"
    : >"$log"
    while :; do
        left=$((secs - (SECONDS - start)))
        [ "$left" -lt 1 ] && left=1
        cpu=$( { time "build/fuzz/fuzz_$t" -max_total_time="$left" -max_len=4096 -timeout=10 \
            -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix=build/fuzz/ \
            "build/fuzz/corpus/$t" "tests/fuzz/seeds/$t" >>"$log" 2>&1; echo "rc=$?" >>"$log"; } 2>&1 )
        cpu_s=$(echo "$cpu ${cpu_s:-0}" | awk '{printf "%.1f", $1 + $2 + $3}')
        rc=$(sed -n 's/^rc=//p' "$log" | tail -1)
        [ "$rc" = 0 ] && break
        art=$(sed -n 's/.*Test unit written to \(build\/fuzz\/leak-[0-9a-f]*\).*/\1/p' "$log" | tail -1)
        case " $known " in
        *" $art "*) ;;
        *)
            if [ -z "$art" ] || ! ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0" \
                "build/fuzz/fuzz_$t" "$art" >>"$log" 2>&1; then
                break
            fi
            known="$known $art" ;;
        esac
        echo "the leak of $art is suppressed with full stacks: fuzzing on" >>"$log"
        [ $((SECONDS - start)) -ge "$secs" ] && { rc=0; break; }
    done
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | awk '{n += $1} END {print n}')
    if [ "$rc" = 0 ]; then
        echo "fuzz_$t: ${runs:-?} runs, ${cpu_s} s CPU, no finding${known:+ (suppressed library leaks:$known)}" \
            >"build/fuzz/$t.result"
    else
        { echo "fuzz_$t: FAILED after ${runs:-?} runs, ${cpu_s} s CPU (see $log):"
          grep -m3 -E "ERROR|SUMMARY|Test unit written" "$log" | sed 's/^/  /'; } \
            >"build/fuzz/$t.result"
    fi
}

mkdir -p build/fuzz
running=0
for t in "$@"; do
    rm -f "build/fuzz/$t.result"
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
done
wait
passed=0
failed=0
for t in "$@"; do
    cat "build/fuzz/$t.result"
    if grep -q "no finding" "build/fuzz/$t.result"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
    fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
