#!/usr/bin/env bash
# Real text end to end: xp_prep turns ../shared/data/tinyshakespeare.txt into byte-level shards, the
# demo model trains on them for 200 steps on 2 ranks, and the validation loss must fall below 3.0 nats
# per character — under the text's unigram entropy (3.31), so the model is using context.
#   XP_PYTHON=python3 train_shakespeare.sh CORPUS XP_PREP XP_TRAIN DECK CHECKER WORK_DIR MPIEXEC
set -euo pipefail
corpus=$1 xp_prep=$2 xp_train=$3 deck=$4 checker=$5 work=$6 mpiexec=$7
python=${XP_PYTHON:?set XP_PYTHON, or run through tests/run_python.sh}
if [[ ! -r "$corpus" ]]; then
  echo "skipped: corpus $corpus is absent (it lives in ../shared/data/)"
  exit 77
fi
rm -rf "$work" && mkdir -p "$work"
"$xp_prep" "$corpus" "$work/shakespeare"
"$mpiexec" -n 2 "$xp_train" "$deck" "train_data=$work/shakespeare_train_*.bin" \
    "val_data=$work/shakespeare_val_*.bin" steps=200 eval_every=100 log_every=50 run_dir="$work/run"
"$python" "$checker" "$work/run" --below 3.0
