#!/usr/bin/env bash
# xp_generate on real checkpoints, and samples during training. A tp=2 run prints a sample after its
# last step and writes a checkpoint; xp_generate on that checkpoint with the sample's settings and seed
# must print the same bytes (the same weights, another program), at tp=2 and at tp=1; so must the samples
# of a pp=2 run and a tp=2 × pp=2 run (4 ranks), whose stages each run their own layers and whose rank 0
# (stage 0) prints tokens the last stage drew. Greedy text is the same at tp=1 and tp=2 and from the pp=2
# run's checkpoint of the same steps. Bad requests give one clear error and a non-zero exit.
#   test_xp_generate.sh XP_TRAIN XP_GENERATE DECK WORK_DIR MPIEXEC
set -euo pipefail
xp_train=$1 xp_generate=$2 deck=$3 work=$4 mpiexec=$5
fail() { echo "FAIL: $*" >&2; exit 1; }

rm -rf "$work" && mkdir -p "$work"
tokens=24 prompt=$'\n' seed=$((1337 + 4))  # samples after step s use the seed seed + s
sample=(sample_every=4 sample_tokens=$tokens temperature=0.9 top_k=20)
options=(--prompt "$prompt" --tokens $tokens --temperature 0.9 --top_k 20 --seed $seed)
common=(steps=4 log_every=100 batch_size=2)
bytes=$((1 + tokens))  # byte-level: one byte per token, the prompt's one included

# The sample text (prompt + continuation) that training output $1 printed after step 4, into file $2.
training_sample() {
  local header offset text
  header=$(grep -a -b -o "xp_train: sample after step 4 ([^)]*seed $seed):" "$1") ||
      fail "no sample after step 4 with seed $seed in $1"
  offset=${header%%:*} text=${header#*:}
  tail -c +$((offset + ${#text} + 2)) "$1" | head -c $bytes >"$2"
  [[ $(grep -a -c "xp_train: sample after step" "$1") == 1 ]] || fail "expected exactly one sample in $1"
}

echo "== training with tp=2 prints a sample after step 4"
"$mpiexec" -n 2 "$xp_train" "$deck" "${common[@]}" "${sample[@]}" tp_size=2 run_dir="$work/tp2" >"$work/train.out"
training_sample "$work/train.out" "$work/train_sample"

echo "== xp_generate on its checkpoint: the same text at tp=2 and tp=1"
ckpt=$work/tp2/ckpt/step_000004
"$mpiexec" -n 2 "$xp_generate" "$ckpt" "${options[@]}" >"$work/tp2.out"
"$xp_generate" "$ckpt" "${options[@]}" >"$work/tp1.out"
head -c $bytes "$work/tp2.out" >"$work/tp2_sample"
head -c $bytes "$work/tp1.out" >"$work/tp1_sample"
cmp "$work/train_sample" "$work/tp2_sample" || fail "xp_generate at tp=2 differs from the training sample"
cmp "$work/tp2_sample" "$work/tp1_sample" || fail "the same seed gave other text at tp=1 than at tp=2"
od -c "$work/tp1_sample" | head -3

echo "== pipeline runs print samples: pp=2 and tp=2 x pp=2, each the same as xp_generate on its checkpoint"
"$mpiexec" -n 2 "$xp_train" "$deck" "${common[@]}" "${sample[@]}" pp_stages=2 run_dir="$work/pp2" >"$work/pp2.out"
training_sample "$work/pp2.out" "$work/pp2_train_sample"
"$mpiexec" -n 2 "$xp_generate" "$work/pp2/ckpt/step_000004" "${options[@]}" >"$work/pp2_generate.out"
head -c $bytes "$work/pp2_generate.out" >"$work/pp2_sample"
cmp "$work/pp2_train_sample" "$work/pp2_sample" || fail "the pp=2 run's sample differs from xp_generate at tp=2"
"$mpiexec" -n 4 "$xp_train" "$deck" "${common[@]}" "${sample[@]}" tp_size=2 pp_stages=2 run_dir="$work/tp2pp2" \
    >"$work/tp2pp2.out"
training_sample "$work/tp2pp2.out" "$work/tp2pp2_train_sample"
"$xp_generate" "$work/tp2pp2/ckpt/step_000004" "${options[@]}" >"$work/tp2pp2_generate.out"
head -c $bytes "$work/tp2pp2_generate.out" >"$work/tp2pp2_sample"
cmp "$work/tp2pp2_train_sample" "$work/tp2pp2_sample" || fail "the tp=2 x pp=2 run's sample differs from xp_generate"

# The pp=2 run trains the same model; its weights differ from the tp=2 run's by rounding (~1e-6), far
# below the gaps between the top logits, so greedy text is the same.
echo "== the pp=2 run's checkpoint of the same steps, loaded at tp=2, gives the same greedy text"
"$mpiexec" -n 2 "$xp_generate" "$work/pp2/ckpt/step_000004" --prompt "$prompt" --tokens $tokens --temperature 0 \
    >"$work/pp2_greedy.out"
"$xp_generate" "$ckpt" --prompt "$prompt" --tokens $tokens --temperature 0 >"$work/tp1_greedy.out"
"$mpiexec" -n 2 "$xp_generate" "$ckpt" --prompt "$prompt" --tokens $tokens --temperature 0 >"$work/tp2_greedy.out"
cmp "$work/tp1_greedy.out" "$work/tp2_greedy.out" || fail "greedy text differs between tp=1 and tp=2"
cmp "$work/tp1_greedy.out" "$work/pp2_greedy.out" || fail "greedy text of the pp=2 run's checkpoint differs"

echo "== errors: one clear message, non-zero exit"
expect_error() {
  local pattern=$1
  shift
  local status=0
  "$@" >"$work/error.out" 2>&1 || status=$?
  [[ $status != 0 ]] || fail "exit 0 for: $*"
  grep -aq -- "$pattern" "$work/error.out" || { cat "$work/error.out"; fail "no '$pattern' for: $*"; }
  echo "ok: $pattern"
}
expect_error "exceed the model's context seq_len 64" "$xp_generate" "$ckpt" --prompt "ab" --tokens 63
expect_error "must both divide by the rank count" "$mpiexec" -n 3 "$xp_generate" "$ckpt" --prompt "ab" --tokens 4
expect_error "is not a directory" "$xp_generate" "$work/nothing" --prompt "ab" --tokens 4
expect_error "--prompt and --tokens are required" "$xp_generate" "$ckpt" --tokens 4
expect_error "option --temperature expects a number" "$xp_generate" "$ckpt" --prompt a --tokens 4 --temperature hot
expect_error "option --tokens expects an integer" "$xp_generate" "$ckpt" --prompt a --tokens 2.5
expect_error "option --seed expects an integer" "$xp_generate" "$ckpt" --prompt a --tokens 4 --seed 18446744073709551616
expect_error "exceed seq_len 64" "$xp_train" "$deck" "${common[@]}" sample_every=2 sample_tokens=64 run_dir="$work/long"
echo "PASS"
