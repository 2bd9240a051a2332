#!/bin/sh
# Run one libFuzzer target for a bounded time, or check that the compiler
# can build one.
#
#   fuzz/run.sh probe CC
#       exit 0 if CC links a libFuzzer target (clang-14 needs the package
#       libclang-rt-14-dev for the runtime), 1 otherwise
#   fuzz/run.sh run BINARY SECONDS CORPUS SEEDS [DICT]
#       fuzz for SECONDS; new inputs go to CORPUS ("-": a temporary
#       directory, removed afterwards), SEEDS (fuzz/corpus/NAME) is only
#       read, so the tree stays clean
#
# `run` works in an empty temporary directory, writes any crash, leak,
# timeout or out-of-memory input to $FUZZ_ARTIFACTS (default
# build-fuzz/artifacts), and ends with one line:
#   fuzz: NAME passed: RUNS runs in S s (E exec/s), cov C ft F, N inputs
#   fuzz: NAME FAILED (exit X): ... , input in FILE
# Exit status: 0 passed, 1 failed.
set -u

top=$(cd "$(dirname "$0")/.." && pwd)

probe() {
    d=$(mktemp -d) || return 1
    printf '%s\n' 'int LLVMFuzzerTestOneInput(const unsigned char *d,' \
        'unsigned long n);' \
        'int LLVMFuzzerTestOneInput(const unsigned char *d,' \
        'unsigned long n) { return d == 0 && n > 0; }' >"$d/p.c"
    "$1" -fsanitize=fuzzer,address,undefined -o "$d/p" "$d/p.c" \
        >/dev/null 2>&1 && "$d/p" -runs=1 >/dev/null 2>&1
    rc=$?
    rm -rf "$d"
    return $rc
}

abs() {
    case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac
}

# Pull "name: value" out of libFuzzer's final statistics.
stat() {
    sed -n "s/^stat::$1: *//p" "$2" | tail -1
}

run() {
    bin=$1 secs=$2 corpus=$3 seeds=$4 dict=${5:-}
    name=$(basename "$bin")
    # The fuzzer runs elsewhere: make the names it gets absolute.
    bin=$(abs "$bin") seeds=$(abs "$seeds")
    [ -z "$dict" ] || dict=$(abs "$dict")
    [ "$corpus" = - ] || corpus=$(abs "$corpus")
    art=${FUZZ_ARTIFACTS:-$top/build-fuzz/artifacts}
    mkdir -p "$art" || return 1
    art=$(cd "$art" && pwd)
    work=$(mktemp -d) || return 1
    keep=$corpus
    if [ "$corpus" = - ]; then
        corpus=$work/corpus
    fi
    mkdir -p "$corpus" "$work/cwd" || return 1
    log=$work/log

    # The leak check runs after every input (-detect_leaks=1, the
    # default); fuzz/lsan.supp names the leaks of libconfig itself.
    (
        cd "$work/cwd" &&
        LSAN_OPTIONS=suppressions=$top/fuzz/lsan.supp:print_suppressions=0 \
        timeout -k 10 $((secs + 120)) "$bin" -max_total_time="$secs" \
            -timeout=5 -rss_limit_mb=2048 -print_final_stats=1 \
            -artifact_prefix="$art/$name-" ${dict:+-dict="$dict"} \
            "$corpus" "$seeds"
    ) >"$log" 2>&1
    rc=$?

    runs=$(stat number_of_executed_units "$log")
    eps=$(stat average_exec_per_sec "$log")
    last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1)
    cov=$(printf '%s\n' "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
    ft=$(printf '%s\n' "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
    units=$(find "$corpus" -type f | wc -l)
    if [ "$keep" = - ]; then
        units="$units new inputs"
    else
        units="$units inputs in $keep"
    fi
    grep -E '^INFO: Seed:' "$log"
    if [ $rc -eq 0 ]; then
        echo "fuzz: $name passed: ${runs:-?} runs in $secs s" \
            "(${eps:-?} exec/s), cov ${cov:-?} ft ${ft:-?}, $units"
    else
        tail -n 60 "$log"
        input=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" |
            tail -1)
        echo "fuzz: $name FAILED (exit $rc) after ${runs:-?} runs," \
            "input in ${input:-(none written)}"
        echo "fuzz: replay with: $bin ${input:-FILE}"
    fi
    rm -rf "$work"
    [ $rc -eq 0 ]
}

case ${1:-} in
probe) [ $# -eq 2 ] || exit 64; probe "$2" ;;
run) [ $# -ge 5 ] && [ $# -le 6 ] || exit 64; shift; run "$@" ;;
*)
    echo "usage: $0 probe CC | run BINARY SECONDS CORPUS SEEDS [DICT]" >&2
    exit 64
    ;;
esac
