#!/bin/sh
# Builds the libFuzzer targets of loom's readers and importers (data files, model files, the Keras
# importer, architectures built through the C API) and runs each for a bounded time.
#   fuzz/run.sh [seconds per target, default 60] [target ...]
# Targets run side by side, one process each, at most $JOBS (default: the CPU count) at once. Prints the executions each reached; exits non-zero
# if any target found a crash, a leak or undefined behaviour (the input is kept in
# fuzz/build/crashes/). Needs clang with libFuzzer (Debian: clang, libclang-rt-14-dev) and zlib
# (zlib1g-dev).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
SECS=${1:-60}
[ $# -gt 0 ] && shift
TARGETS=${*:-npy npz idx csv model arch keras}
CC=${CC:-clang}
OUT="$HERE/build"
mkdir -p "$OUT/crashes"

SRCS="$ROOT/src/io/ndarray.c $ROOT/src/io/npy.c $ROOT/src/io/npz.c $ROOT/src/io/idx.c $ROOT/src/io/csv.c"
for t in $TARGETS; do
    echo "building fuzz_$t"
    # the model-file reader and the architecture builder need the whole library (and cJSON); the
    # data readers only theirs; the Keras importer also HDF5 and libzip (pkg-config: hdf5-serial, libzip)
    extra=
    case $t in
        model|arch) srcs=$(echo "$ROOT"/src/*/*.c); libs="-lcjson -lz -lm -lpthread" ;;
        keras) srcs=$(echo "$ROOT"/src/*/*.c)
               libs="-lcjson -lz -lm -lpthread $(pkg-config --libs hdf5-serial libzip)" || exit 2
               extra="-DLOOM_HAVE_HDF5=1 -DLOOM_HAVE_LIBZIP=1 $(pkg-config --cflags hdf5-serial libzip)" ;;
        *) srcs=$SRCS; libs="-lz -lm" ;;
    esac
    $CC -std=c11 $extra -g -O1 -fsanitize=fuzzer,address,undefined,float-cast-overflow -fno-sanitize-recover=undefined \
        -D_POSIX_C_SOURCE=200809L -I"$ROOT/include" -I"$ROOT/src" \
        "$HERE/fuzz_$t.c" $srcs $libs -o "$OUT/fuzz_$t" || exit 2
done

# At most as many targets at once as there are CPUs, so each gets a whole core.
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 1)}
running=0
for t in $TARGETS; do
    case $t in npy) dict=npy.dict ;; npz) dict=zip.dict ;; csv) dict=csv.dict ;; keras) dict=keras.dict ;; *) dict= ;; esac
    mkdir -p "$OUT/corpus_$t"
    # New inputs go to build/corpus_<t>; the committed seeds in corpus/<t> are only read.
    # a fixed seed keeps CI's runs repeatable (the time limit still varies the count a little)
    ( cd "$OUT" && "./fuzz_$t" -seed=1 -max_total_time="$SECS" -max_len=8192 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$OUT/crashes/${t}-" ${dict:+-dict="$HERE/$dict"} \
        "corpus_$t" "$HERE/corpus/$t" > "$OUT/fuzz_$t.log" 2>&1; echo $? > "$OUT/fuzz_$t.rc" ) &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then
        wait
        running=0
    fi
done
wait

status=0
for t in $TARGETS; do
    rc=$(cat "$OUT/fuzz_$t.rc")
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$OUT/fuzz_$t.log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$OUT/fuzz_$t.log" | tail -n 1)
    if [ "$rc" -eq 0 ]; then
        echo "fuzz_$t: ok, ${runs:-?} executions in ${SECS}s (${cov:-cov: ?})"
    else
        echo "fuzz_$t: FAILED (exit $rc) after ${runs:-?} executions; see $OUT/fuzz_$t.log and $OUT/crashes/"
        grep -E 'ERROR|runtime error|SUMMARY' "$OUT/fuzz_$t.log" | head -n 5
        status=1
    fi
done
exit $status
