#!/usr/bin/env bash
# xp_ckpt on a checkpoint of an older format (the format-1 one make_format_v1.py writes, see
# test_checkpoint_format_mpi.cpp): verify passes (every shard's size and CRC-32), info reads the format
# and the stage map, and the safetensors export equals the index (check_safetensors.py; exit 77 from it
# = skipped: no h5py/numpy).
#   test_old_formats.sh XP_CKPT FORMAT_V1_CHECKPOINT PYTHON CHECKER WORK_DIR
set -euo pipefail
xp_ckpt=$1 ckpt=$2 python=$3 checker=$4 work=$5
fail() { echo "FAIL: $*" >&2; exit 1; }
rm -rf "$work" && mkdir -p "$work"
# Absent where ctest's fixture io_format_v1 was skipped (no numpy/h5py), as the last step would be.
[[ -f $ckpt/index.h5 ]] || { echo "skipped: no format-1 checkpoint at $ckpt (ctest fixture io_format_v1)"; exit 77; }

echo "== verify a format-1 checkpoint"
message=$("$xp_ckpt" verify "$ckpt")
echo "$message"
grep -q '^OK: .*: step 2, 4 shard(s) match' <<<"$message" || fail "verify did not pass the format-1 checkpoint"

echo "== info: its format and the stage map read off its tensor names"
info=$("$xp_ckpt" info "$ckpt")
head -n 6 <<<"$info"
grep -q '^step  *2 (format version 1, ' <<<"$info" || fail "info does not say format version 1"
grep -Eq '^stages +0: layer 0 \+ embedding; 1: layer 1 \+ head ' <<<"$info" || fail "info lacks the stage map"
grep -Eq 'h\.1\.attn\.qkv\.weight +48 x 16 +column \(3 parts\)' <<<"$info" || fail "info lacks h.1.attn.qkv.weight"

echo "== export to safetensors"
"$xp_ckpt" export "$ckpt" --to safetensors -o "$work/format_v1.safetensors"
exec "$python" "$checker" "$work/format_v1.safetensors" "$ckpt/index.h5"
