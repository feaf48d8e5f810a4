#!/usr/bin/env bash
# cli_e2e.sh — the loom program run the way a user runs it (registered with ctest as cli_e2e):
# fit the shipped digits from a .loom file, save, resume (bit-exact against an uninterrupted run),
# evaluate, predict into .npz, convert, plot (SVG, PNG and DOT parsed back), the CSV log, the HTML
# report (rendered in headless Chromium when installed: a screenshot that is not blank, one point
# per epoch on every curve), the .keras round trip once the Keras importer is in, and every usage
# error with its exit status and message; with ../shared, variable-length padded data with lengths.
#   cli_e2e.sh LOOM DATA_DIR PYTHON WORK_DIR [SHARED_DIR]
set -u
LOOM=$1 DATA=$2 PY=$3 WORK=$4 SHARED=${5:-}
HERE=$(cd "$(dirname "$0")" && pwd)
CHECK="$PY $HERE/cli_check.py"
# the ASan build: Graphviz's own leaks are not loom's (tests/lsan_graphviz.supp says which)
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$HERE/lsan_graphviz.supp"
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK" || exit 1
failures=0 checks=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { checks=$((checks + 1)); }

# run STATUS PATTERN CMD...: CMD exits with STATUS and its output (stdout + stderr) matches PATTERN
run() {
  local want=$1 pattern=$2
  shift 2
  "$@" >out.txt 2>&1
  local got=$?
  ok
  if [ "$got" != "$want" ]; then
    fail "'$*' exited $got, expected $want:"; sed 's/^/    /' out.txt | head -20
  elif ! grep -q -e "$pattern" out.txt; then
    fail "'$*' (exit $got) did not say '$pattern':"; sed 's/^/    /' out.txt | head -20
  fi
}
must() { ok; "$@" || fail "check failed: $*"; }

D=$DATA/digits.npz
# ---------------------------------------------------------------- the .loom workflow
run 0 "Saved the untrained seed model" "$LOOM" demo --epochs 0 --save model.loom
run 0 "Saved half.loom (2 epochs trained)" "$LOOM" fit model.loom --data "$D" --validation-split 0.2 --epochs 2 \
  --save half.loom --csv-log log.csv --checkpoint 'ck_{epoch}.loom' --verbose 2
must test -f ck_1.loom
must test -f ck_2.loom
must test "$(wc -l <log.csv)" = 3
must grep -q '^epoch,C_accuracy,C_loss,D_loss,D_mae,loss,val_C_accuracy,val_C_loss,val_D_loss,val_D_mae,val_loss$' log.csv
run 0 "Saved full.loom (4 epochs trained)" "$LOOM" fit model.loom --data "$D" --validation-split 0.2 --epochs 4 --save full.loom --quiet --verbose 0
run 0 "epochs 3 to 4" "$LOOM" fit half.loom --resume --data "$D" --validation-split 0.2 --epochs 4 --save resumed.loom \
  --csv-log log.csv
must test "$(wc -l <log.csv)" = 5
must test "$(cut -d, -f1 log.csv | tr '\n' ' ')" = "epoch 0 1 2 3 "
# into a pipe: a progress line inside the epoch every --progress-seconds, besides the epoch's line
"$LOOM" fit model.loom --data "$D" --epochs 1 --batch-size 1 --progress-seconds 0.005 | cat >pipe.txt
must grep -q '^1797/1797 ' pipe.txt
must grep -qE '^ *[0-9]{1,4}/1797 - ETA [0-9]+s - ' pipe.txt
must sh -c "! grep -q \"$(printf '\r')\" pipe.txt"
run 0 "nothing to do" "$LOOM" fit resumed.loom --resume --data "$D" --validation-split 0.2 --epochs 4 --quiet
# resumed = uninterrupted, to the bit
run 0 "1797 samples -> p_full.npz: C, D" "$LOOM" predict full.loom "$D" -o p_full.npz
run 0 "p_resumed.npz" "$LOOM" predict resumed.loom "$D" -o p_resumed.npz
must cmp p_full.npz p_resumed.npz
run 0 "C (1797, 10)" $CHECK npz p_full.npz C=1797x10 D=1797x64 softmax:C
run 0 "p_stored.npz" "$LOOM" predict resumed.loom "$D" -o p_stored.npz --no-compress --batch-size 7
run 0 "D (1797, 64)" $CHECK npz p_stored.npz C=1797x10 D=1797x64
# the model trained: accuracy on the digits well above chance
run 0 "C_accuracy" "$LOOM" evaluate resumed.loom "$D" --quiet
acc=$(awk '$1 == "C_accuracy" {print $2}' out.txt)
must awk -v a="$acc" 'BEGIN { exit !(a > 0.85) }'
run 0 "resumed.loom -> converted.loom" "$LOOM" convert resumed.loom converted.loom
run 0 "p_conv.npz" "$LOOM" predict converted.loom "$D" -o p_conv.npz
must cmp p_full.npz p_conv.npz
run 0 "Do the losses agree\|cosine" "$LOOM" diagnose resumed.loom "$DATA/digits_diag.npz"
run 0 "Total params\|params" "$LOOM" summary resumed.loom
# flags override the file's compile settings
run 0 "Saved sgd.loom" "$LOOM" fit model.loom --data "$D" --epochs 1 --optimizer sgd --lr 0.05 --loss-weight D=0 \
  --loss C=categorical_crossentropy --metric C=accuracy --balance static --save sgd.loom --quiet
run 0 "C_accuracy" "$LOOM" evaluate sgd.loom "$D" --quiet
must sh -c "! grep -q D_mae out.txt" # --metric replaced the file's metrics

# CSV columns bound by name (C_0 .. C_9), by a range (D) and by a list
$CHECK make-csv "$DATA/digits.csv" digits.csv 400
run 0 "Saved csv.loom (2 epochs" "$LOOM" fit model.loom --data digits.csv --map D=pixels_0:pixels_63 --epochs 2 --save csv.loom --quiet
run 0 "on digits.csv (400 samples)" "$LOOM" evaluate csv.loom digits.csv --map D=pixels_0:pixels_63 --quiet
run 0 "400 samples -> p_csv.npz" "$LOOM" predict csv.loom digits.csv -o p_csv.npz
run 0 "C (400, 10)" $CHECK npz p_csv.npz C=400x10 D=400x64 softmax:C
run 1 "output D: digits.csv: no column D_0" "$LOOM" fit model.loom --data digits.csv --quiet
run 1 "names 2 columns, D needs 64" "$LOOM" fit model.loom --data digits.csv --map D=pixels_0,pixels_1 --quiet
run 1 "no such column range" "$LOOM" fit model.loom --data digits.csv --map D=pixels_9:pixels_2 --quiet

# ---------------------------------------------------------------- plots
run 0 "m.dot" "$LOOM" plot resumed.loom -o m.dot --losses --show-shapes --show-dtype
run 0 "reach colours and legend right" $CHECK dot m.dot
must grep -q 'output: (None, 10)' m.dot
must grep -q 'dtype: float32' m.dot
run 0 "m_lr.dot" "$LOOM" plot resumed.loom -o m_lr.dot --rankdir LR
must grep -q 'rankdir=LR' m_lr.dot
if command -v dot >/dev/null; then
  ok; dot -Tcanon m.dot >/dev/null 2>dot_err.txt || fail "Graphviz's dot cannot parse m.dot: $(cat dot_err.txt)"
fi
if "$LOOM" plot resumed.loom -o probe.svg >/dev/null 2>probe.txt; then
  run 0 "m.svg" "$LOOM" plot resumed.loom -o m.svg --losses --show-shapes
  run 0 "has C_loss" $CHECK svg m.svg C_loss D_loss "C_loss: weight 0.5" "output: (None, 64)"
  run 0 "m.png" "$LOOM" plot resumed.loom -o m.png --losses --dpi 72
  run 0 "drawn" $CHECK png m.png 150 150
else
  run 1 "without Graphviz" "$LOOM" plot resumed.loom -o m.svg
  echo "SKIP: SVG and PNG plots: this loom has no Graphviz ($(cat probe.txt))"
fi

# ---------------------------------------------------------------- the report
run 0 "Saved r.loom" "$LOOM" fit model.loom --data "$D" --validation-split 0.2 --epochs 3 --balance dwa \
  --diagnostics-every 10 --report run.html --csv-log r.csv --save r.loom --quiet
run 0 "self-contained" $CHECK html run.html
must grep -q 'data-epochs="3"' run.html
must grep -q 'Finished: 3 of 3 epochs' run.html
# rewritten after every epoch: watch a run (one sample per step, so epochs take a while) and
# catch the page between epochs, still asking the browser to reload it
# (many epochs, so that no machine finishes them before the first look; stopped once seen)
"$LOOM" fit model.loom --data "$D" --epochs 2000 --batch-size 1 --report live.html --quiet >/dev/null 2>&1 &
fit_pid=$!
seen=""
for _ in $(seq 1 3000); do
  rm -f snap.html; cp live.html snap.html 2>/dev/null # one read of the page: it is replaced by a rename
  if [ -f snap.html ] && grep -q 'Training: [0-9]* of 2000 epochs' snap.html; then
    seen=$(grep -o 'Training: [0-9]* of 2000 epochs' snap.html)
    grep -q 'http-equiv="refresh"' snap.html || seen="no refresh"
    break
  fi
  kill -0 $fit_pid 2>/dev/null || break
  sleep 0.02
done
kill $fit_pid 2>/dev/null
wait $fit_pid 2>/dev/null
ok; case $seen in "Training: "*) ;; *) fail "never saw the report between epochs (${seen:-nothing})" ;; esac
# a run that finishes leaves the page final: no more reloads
"$LOOM" fit model.loom --data "$D" --epochs 2 --report live.html --quiet >/dev/null 2>&1
must grep -q 'Finished: 2 of 2 epochs' live.html
must sh -c "! grep -q 'http-equiv=\"refresh\"' live.html"
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [ -n "$CHROMIUM" ]; then
  CH="timeout 90 $CHROMIUM --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run --user-data-dir=$WORK/chromium"
  $CH --window-size=1200,2000 --screenshot="$WORK/shot.png" "file://$WORK/run.html" >chromium.txt 2>&1
  run 0 "drawn" $CHECK png shot.png 1000 1000
  $CH --dump-dom "file://$WORK/run.html" >dom.html 2>chromium.txt
  run 0 "each with 3 points" $CHECK dom dom.html 3 loss val_loss C_loss val_C_loss D_loss val_D_loss C_accuracy \
    val_C_accuracy D_mae C_weight D_weight "grad_cos/C~D"
else
  echo "SKIP: rendering the report: chromium is not installed (Debian: apt-get install chromium)"
fi

# ---------------------------------------------------------------- .keras (loom_model_import / export)
if "$LOOM" convert resumed.loom digits.keras >probe.txt 2>&1; then
  run 0 "Saved from_keras.loom" "$LOOM" fit digits.keras --data "$D" --validation-split 0.2 --epochs 1 --save from_keras.loom --quiet
  run 0 "C_accuracy" "$LOOM" evaluate from_keras.loom "$D" --quiet
  run 0 "p_keras.npz" "$LOOM" predict digits.keras "$D" -o p_keras.npz
  run 0 "C (1797, 10)" $CHECK npz p_keras.npz C=1797x10 D=1797x64 softmax:C
else
  echo "SKIP: .keras fit: this loom cannot write .keras yet ($(head -c 300 probe.txt))"
fi

# ---------------------------------------------------------------- variable-length data with lengths
# A real Keras model with a null time axis (../shared's sentiment model: Embedding without
# mask_zero -> GlobalAveragePooling1D, so padding changes the mean): padded to 30 steps with
# member x_lengths = 12 for every sample, each batch is trimmed to 12 steps, so fitting and
# predicting give the bits of the unpadded (N, 12) data; without the lengths the padding counts.
SENT=${SHARED:+$SHARED/keras-models/sentiment_embed.keras}
if [ -n "$SENT" ] && [ -f "$SENT" ] && "$PY" -c "import numpy" 2>/dev/null; then
  "$PY" - <<'PYEOF'
import numpy as np
rng = np.random.default_rng(5)
n, T, L = 96, 30, 12
ids = rng.integers(1, 10000, size=(n, L)).astype(np.float32)
y = rng.integers(0, 2, size=(n, 1)).astype(np.float32)
padded = np.zeros((n, T), np.float32)
padded[:, :L] = ids
np.savez("short.npz", x=ids, dense=y)
np.savez("padded.npz", x=padded, x_lengths=np.full(n, L, np.float32), dense=y)
np.savez("nolengths.npz", x=padded, dense=y)
np.savez("badlengths.npz", x=padded, x_lengths=np.full(n, T + 1, np.float32), dense=y)
np.savez("fraclengths.npz", x=padded, x_lengths=np.full(n, 2.5, np.float32), dense=y)
PYEOF
  fitv() { "$LOOM" fit "$SENT" --data "$1" --map embedding_input=x --epochs 2 --batch-size 16 --seed 3 --save "$2" --quiet; }
  run 0 "Saved v_short.loom" fitv short.npz v_short.loom
  run 0 "Saved v_padded.loom" fitv padded.npz v_padded.loom
  run 0 "p_short.npz" "$LOOM" predict v_short.loom short.npz --map embedding_input=x -o p_short.npz
  run 0 "p_padded.npz" "$LOOM" predict v_padded.loom padded.npz --map embedding_input=x -o p_padded.npz
  must cmp p_short.npz p_padded.npz
  run 0 "p_nolen.npz" "$LOOM" predict v_padded.loom nolengths.npz --map embedding_input=x -o p_nolen.npz
  must sh -c "! cmp -s p_short.npz p_nolen.npz"
  run 0 "loss" "$LOOM" evaluate v_padded.loom padded.npz --map embedding_input=x --quiet
  run 1 "member x_lengths: sample 0 has length 31; lengths are whole numbers in 1..30" \
    "$LOOM" fit "$SENT" --data badlengths.npz --map embedding_input=x --quiet
  run 1 "sample 0 has length 2.5" "$LOOM" evaluate v_padded.loom fraclengths.npz --map embedding_input=x
else
  echo "SKIP: variable-length data with lengths: no ${SENT:-shared folder} or no NumPy"
fi

# ---------------------------------------------------------------- usage errors: status 2 and the usage
run 2 "usage: loom COMMAND" "$LOOM"
run 2 "unknown command frobnicate" "$LOOM" frobnicate
run 2 "no command frobnicate" "$LOOM" help frobnicate
run 2 "usage: loom fit MODEL" "$LOOM" fit
run 2 "an argument is missing" "$LOOM" fit
run 2 "--data TRAIN.npz is required" "$LOOM" fit model.loom
run 2 "--epochs: 'x' is not a number" "$LOOM" fit model.loom --data "$D" --epochs x
run 2 "--epochs: -3 is out of range" "$LOOM" fit model.loom --data "$D" --epochs -3
run 2 "--batch-size: '1.5' is not a number" "$LOOM" fit model.loom --data "$D" --batch-size 1.5
run 2 "--lr: 'fast' is not a number" "$LOOM" fit model.loom --data "$D" --lr fast
run 2 "--validation-split: 1.5 is out of range" "$LOOM" fit model.loom --data "$D" --validation-split 1.5
run 2 "--epochs needs a value" "$LOOM" fit model.loom --data "$D" --epochs
run 2 "unknown option --epoch" "$LOOM" fit model.loom --data "$D" --epoch 3
run 2 "--quiet takes no value" "$LOOM" fit model.loom --data "$D" --quiet=yes
run 2 "unexpected argument 'extra'" "$LOOM" fit model.loom extra --data "$D"
run 2 "not both" "$LOOM" fit model.loom --data "$D" --validation-data "$D" --validation-split 0.2
run 2 "would recompile" "$LOOM" fit model.loom --resume --data "$D" --loss mse
run 2 "--loss C=nosuch: no such loss" "$LOOM" fit model.loom --data "$D" --loss C=nosuch
run 2 "--loss C=: give OUT=VALUE" "$LOOM" fit model.loom --data "$D" --loss C=
run 2 "--loss-weight D=heavy: 'heavy' is not a number" "$LOOM" fit model.loom --data "$D" --loss-weight D=heavy
run 2 "--optimizer nadam: not one of" "$LOOM" fit model.loom --data "$D" --optimizer nadam
run 2 "--balance magic: not one of" "$LOOM" fit model.loom --data "$D" --balance magic
run 2 "--save out.txt: cannot write this format" "$LOOM" fit model.loom --data "$D" --save out.txt
run 2 "--checkpoint c.bin: checkpoints are .loom files" "$LOOM" fit model.loom --data "$D" --checkpoint c.bin
run 2 "--report r.txt: the report is an .html file" "$LOOM" fit model.loom --data "$D" --report r.txt
run 2 "-o PRED.npz is required" "$LOOM" predict model.loom "$D"
run 2 "usage: loom evaluate" "$LOOM" evaluate model.loom
run 2 "unexpected argument" "$LOOM" evaluate model.loom "$D" more
run 2 "arguments are missing\|an argument is missing" "$LOOM" convert model.loom
run 2 "cannot write this format" "$LOOM" convert model.loom model.txt
run 2 "the extension must be .svg, .png or .dot" "$LOOM" plot model.loom -o model.jpg
run 2 "--rankdir UP: give TB, LR, BT or RL" "$LOOM" plot model.loom -o m.dot --rankdir UP
run 2 "--dpi: 'hi' is not a number" "$LOOM" plot model.loom -o m.png --dpi hi
run 2 "-o FILE is required" "$LOOM" plot model.loom
run 2 "--epochs: 'many' is not a number" "$LOOM" demo --epochs many
# ---------------------------------------------------------------- run-time errors: status 1, naming the culprit
run 1 "nosuch.loom" "$LOOM" fit nosuch.loom --data "$D"
run 1 "nosuch.npz" "$LOOM" fit model.loom --data nosuch.npz
run 1 "input pixels: .*no member 'image'.*--map pixels=MEMBER" "$LOOM" fit model.loom --data "$D" --map pixels=image
run 1 "--map Z=pixels: the model has no input or output Z" "$LOOM" fit model.loom --data "$D" --map Z=pixels
run 1 "member C holds 10 values per sample, input pixels needs 64" "$LOOM" evaluate model.loom "$D" --map pixels=C
run 1 "--loss Z=mse: the model has no output Z" "$LOOM" fit model.loom --data "$D" --loss Z=mse
run 1 "no_dir/p.npz" "$LOOM" predict model.loom "$D" -o no_dir/p.npz
run 1 "no_dir/log.csv" "$LOOM" fit model.loom --data "$D" --csv-log no_dir/log.csv --quiet
run 1 "no_dir/run.html" "$LOOM" fit model.loom --data "$D" --report no_dir/run.html --quiet
run 1 "nosuch.loom" "$LOOM" plot nosuch.loom -o m.dot
# ---------------------------------------------------------------- help: status 0, every option with its default
run 0 "loom [0-9]" "$LOOM" --version
run 0 "Commands:" "$LOOM" help
run 0 "Commands:" "$LOOM" --help
for cmd in fit evaluate predict convert summary diagnose plot demo fashion; do
  run 0 "usage: loom $cmd" "$LOOM" help "$cmd"
  run 0 "usage: loom $cmd" "$LOOM" "$cmd" --help
done
run 0 "usage: loom summary" "$LOOM" summary --help # not a file named --help
# fashion's dtype policy (docs/fashion.md): only the two Keras names, checked before any data is read
run 2 "bad option or value: --dtype mixed_float16" "$LOOM" fashion --dtype mixed_float16 --data no_dir
run 0 "mixed_bfloat16" "$LOOM" fashion --help
"$LOOM" help fit >fit_help.txt
for opt in --data --validation-data --validation-split --map --loss --loss-weight --metric --optimizer --lr --epochs \
  --batch-size --balance --threads --seed --save --checkpoint --resume --csv-log --report --progress-seconds; do
  ok; grep -q -e "^  $opt\b" fit_help.txt || fail "loom help fit does not list $opt"
done
must grep -q -e "--batch-size B .*\[default: 32\]" fit_help.txt
must grep -q -e "--epochs N .*\[default: 1\]" fit_help.txt

echo "cli_e2e: $checks checks, $failures failed"
[ "$failures" = 0 ]
