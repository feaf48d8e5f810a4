#!/bin/sh
# cli_limits.sh LOOM DATA_DIR — the loom program on untrusted paths: `demo --data` and `diagnose`
# refuse devices at once (/dev/zero hung demo and made diagnose read toward 4 GiB), and
# `diagnose` measures one bounded batch: 256 samples by default, --samples N otherwise.
set -u
LOOM=$1
DATA=$2
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail=0
check() { # description, then a command whose status must be 0
    d=$1
    shift
    if "$@"; then echo "ok: $d"; else echo "FAILED: $d"; fail=1; fi
}
timeout 20 "$LOOM" demo --data /dev/zero --epochs 1 > "$TMP/out" 2>&1
check "demo --data /dev/zero is refused" test $? -eq 1
check "  naming the file" grep -q "/dev/zero: not a regular file" "$TMP/out"
timeout 120 "$LOOM" demo --epochs 1 --quiet --save "$TMP/m.loom" > /dev/null 2>&1
check "demo saves a model" test -s "$TMP/m.loom"
timeout 20 "$LOOM" diagnose "$TMP/m.loom" /dev/zero > "$TMP/out" 2>&1
check "diagnose on /dev/zero is refused" test $? -eq 1
check "  naming the file" grep -q "/dev/zero: not a regular file" "$TMP/out"
timeout 60 "$LOOM" diagnose "$TMP/m.loom" "$DATA/digits_diag.npz" > "$TMP/out" 2>&1
check "diagnose measures 256 samples by default" grep -q "(256 samples)" "$TMP/out"
timeout 60 "$LOOM" diagnose --samples 7 "$TMP/m.loom" "$DATA/digits_diag.npz" > "$TMP/out" 2>&1
check "diagnose --samples 7 measures 7" grep -q "(7 samples)" "$TMP/out"
timeout 20 "$LOOM" diagnose --samples 0 "$TMP/m.loom" "$DATA/digits_diag.npz" > "$TMP/out" 2>&1
check "diagnose --samples 0 is refused" test $? -eq 2
exit $fail
