#!/bin/sh
# Run every unit test binary given as an argument, a short run of each
# fuzz target, then the integration tests, each under a hard deadline, and
# print one closing line:
#   check: N passed, N failed, N skipped
# Environment: ECHOD (binary under test), ECHODCTL (the control client),
# PYTHON, SANITIZE (1: ASan+UBSan, tsan: ThreadSanitizer); FUZZ_DIR (where
# the fuzz targets were built; empty: skip them), FUZZ_SECONDS, FUZZ_CC;
# ECHOD_TEST_WORKER_COUNTS.
set -u

PYTHON=${PYTHON:-/usr/bin/python3}
passed=0 failed=0 skipped=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

if [ "${SANITIZE:-}" = 1 ]; then
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=66
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
elif [ "${SANITIZE:-}" = tsan ]; then
    # A race report ends the process with 66: the test sees the exit code.
    export TSAN_OPTIONS=halt_on_error=1:exitcode=66:second_deadlock_stack=1
fi

for t in "$@"; do
    echo "== unit: $(basename "$t")"
    timeout -k 10 120 "$t" >"$log" 2>&1
    rc=$?
    cat "$log"
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log")
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log")
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0}))
    if [ $rc -ne 0 ] && [ -z "$f" ]; then
        echo "!! $(basename "$t") exited $rc" >&2
        failed=$((failed + 1))
    fi
done

# Each fuzz target counts as one test: it passes when a run of
# FUZZ_SECONDS over its seed corpus finds nothing (fuzz/run.sh).
echo "== fuzz"
for src in fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    if [ "${SANITIZE:-}" = tsan ]; then
        echo "fuzz: $name skipped: the ThreadSanitizer run does not fuzz"
        skipped=$((skipped + 1))
        continue
    fi
    if [ -z "${FUZZ_DIR:-}" ]; then
        echo "fuzz: $name skipped: ${FUZZ_CC:-clang-14} cannot build a" \
            "libFuzzer target (Debian: clang-14 libclang-rt-14-dev)"
        skipped=$((skipped + 1))
        continue
    fi
    dict=fuzz/${name#fuzz_}.dict
    [ -f "$dict" ] || dict=
    if fuzz/run.sh run "$FUZZ_DIR/$name" "${FUZZ_SECONDS:-5}" - \
        "fuzz/corpus/${name#fuzz_}" ${dict:+"$dict"}; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
    fi
done

# The integration suite runs once per worker count in
# ECHOD_TEST_WORKER_COUNTS (default "1 4": one engine, and more engines
# than this machine has cores); each run's tests count on their own.
for w in ${ECHOD_TEST_WORKER_COUNTS:-1 4}; do
    echo "== integration (workers = $w)"
    ECHOD_TEST_WORKERS=$w timeout -k 20 1500 "$PYTHON" \
        tests/integration/run.py >"$log" 2>&1
    rc=$?
    cat "$log"
    line=$(grep -E '^integration: [0-9]+ passed' "$log" | tail -1)
    if [ -n "$line" ]; then
        set -- $line
        passed=$((passed + $2)); failed=$((failed + $4))
        skipped=$((skipped + $6))
    fi
    if [ $rc -ne 0 ] && [ -z "$line" ]; then
        echo "!! integration runner (workers = $w) exited $rc" >&2
        failed=$((failed + 1))
    fi
done

echo "check: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
