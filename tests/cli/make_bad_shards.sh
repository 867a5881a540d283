#!/usr/bin/env bash
# Writes broken llm.c token shards for the CLI tests: make_bad_shards.sh DIR
#   DIR/bad_magic/shard_000.bin  a 1024-byte header of zeros (magic 0) and 4096 tokens
#   DIR/truncated/shard_000.bin  a good header promising 100000 tokens, followed by only 16
set -eu
dir=$1
rm -rf "$dir/bad_magic" "$dir/truncated"
mkdir -p "$dir/bad_magic" "$dir/truncated"

head -c $((1024 + 2 * 4096)) /dev/zero >"$dir/bad_magic/shard_000.bin"

# int32 little-endian: magic 20240520 = 0x0134d888, version 1, token count 100000 = 0x000186a0.
{
  printf '\x88\xd8\x34\x01\x01\x00\x00\x00\xa0\x86\x01\x00'
  head -c $((1024 - 12)) /dev/zero
  head -c $((2 * 16)) /dev/zero
} >"$dir/truncated/shard_000.bin"
