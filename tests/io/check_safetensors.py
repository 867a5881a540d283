"""Checks an `xp_ckpt export --to safetensors` file against the checkpoint index it came from.

    check_safetensors.py MODEL.safetensors INDEX.h5

The header must be valid safetensors (8-byte little-endian length, JSON padded to 8 bytes, contiguous
data offsets); every Hugging Face GPT-2 name must be there with its shape, wte cut to vocab_size rows;
every tensor must equal the index's (Conv1D weights transposed). When `transformers` is importable the
file is also loaded into a GPT2LMHeadModel. Exit 77 (skipped) without numpy or h5py.
"""
import json
import os
import struct
import sys
import tempfile

try:
    import h5py
    import numpy as np
except ImportError as missing:
    print(f"skipped: {missing}")
    sys.exit(77)

# Hugging Face suffix -> (our suffix, transposed: Conv1D keeps (in, out)).
BLOCK = {
    "ln_1.weight": ("ln_1.weight", False), "ln_1.bias": ("ln_1.bias", False),
    "attn.c_attn.weight": ("attn.qkv.weight", True), "attn.c_attn.bias": ("attn.qkv.bias", False),
    "attn.c_proj.weight": ("attn.proj.weight", True), "attn.c_proj.bias": ("attn.proj.bias", False),
    "ln_2.weight": ("ln_2.weight", False), "ln_2.bias": ("ln_2.bias", False),
    "mlp.c_fc.weight": ("mlp.fc.weight", True), "mlp.c_fc.bias": ("mlp.fc.bias", False),
    "mlp.c_proj.weight": ("mlp.proj.weight", True), "mlp.c_proj.bias": ("mlp.proj.bias", False),
}


def read_safetensors(path):
    with open(path, "rb") as file:
        blob = file.read()
    (length,) = struct.unpack("<Q", blob[:8])
    assert length % 8 == 0 and 8 + length <= len(blob), f"bad header length {length}"
    header = json.loads(blob[8:8 + length].decode("utf-8"))
    assert header.pop("__metadata__") == {"format": "pt"}, "metadata must say format pt"
    data = blob[8 + length:]
    tensors, end = {}, 0
    for name, entry in sorted(header.items(), key=lambda item: item[1]["data_offsets"][0]):
        begin, stop = entry["data_offsets"]
        assert entry["dtype"] == "F32" and begin == end, f"{name}: dtype {entry['dtype']}, offset {begin} != {end}"
        values = np.frombuffer(data[begin:stop], dtype="<f4")
        assert values.size == int(np.prod(entry["shape"])), f"{name}: {values.size} values for {entry['shape']}"
        tensors[name], end = values.reshape(entry["shape"]), stop
    assert end == len(data), f"data is {len(data)} bytes, offsets cover {end}"
    return tensors


def find(index, name):
    """A tensor of the index by name, in whichever stage holds it."""
    for stage in sorted(key for key in index if key.startswith("stage_")):
        if name in index[stage]:
            return index[stage][name][...]
    raise AssertionError(f"index has no tensor {name}")


def expected(index):
    n_layer, vocab = int(index.attrs["n_layer"]), int(index.attrs["vocab_size"])
    tensors = {"transformer.wte.weight": find(index, "wte.weight")[:vocab],
               "transformer.wpe.weight": find(index, "wpe.weight"),
               "transformer.ln_f.weight": find(index, "ln_f.weight"),
               "transformer.ln_f.bias": find(index, "ln_f.bias")}
    for layer in range(n_layer):
        for theirs, (ours, transposed) in BLOCK.items():
            full = find(index, f"h.{layer}.{ours}")
            tensors[f"transformer.h.{layer}.{theirs}"] = full.T if transposed else full
    return tensors


def load_into_transformers(path, index):
    try:
        import torch
        import transformers
    except ImportError:
        print("transformers is not importable: loading into GPT2LMHeadModel skipped")
        return
    config = transformers.GPT2Config(n_layer=int(index.attrs["n_layer"]), n_head=int(index.attrs["n_head"]),
                                     n_embd=int(index.attrs["n_embd"]), n_positions=int(index.attrs["seq_len"]),
                                     vocab_size=int(index.attrs["vocab_size"]))
    with tempfile.TemporaryDirectory() as folder:
        config.save_pretrained(folder)
        os.symlink(os.path.abspath(path), os.path.join(folder, "model.safetensors"))
        model = transformers.GPT2LMHeadModel.from_pretrained(folder)
    wte = find(index, "wte.weight")[:config.vocab_size]
    assert np.array_equal(model.lm_head.weight.detach().numpy(), wte), "lm_head is not the tied wte"
    assert np.array_equal(model.transformer.h[0].attn.c_attn.weight.detach().numpy(),
                          find(index, "h.0.attn.qkv.weight").T), "c_attn.weight did not load"
    logits = model(torch.arange(8).unsqueeze(0)).logits
    assert logits.shape == (1, 8, config.vocab_size) and torch.isfinite(logits).all()
    print(f"loaded into transformers {transformers.__version__} GPT2LMHeadModel: logits {tuple(logits.shape)}")


def main():
    path, index_path = sys.argv[1], sys.argv[2]
    tensors = read_safetensors(path)
    with h5py.File(index_path, "r") as index:
        want = expected(index)
        assert set(tensors) == set(want), f"names differ: {sorted(set(tensors) ^ set(want))}"
        for name, values in want.items():
            assert tensors[name].shape == values.shape, f"{name}: shape {tensors[name].shape}, want {values.shape}"
            assert np.array_equal(tensors[name], values), f"{name} differs from the index"
        vocab = int(index.attrs["vocab_size"])
        assert tensors["transformer.wte.weight"].shape[0] == vocab, "wte must have vocab_size rows"
        load_into_transformers(path, index)
    print(f"OK: {path}: {len(tensors)} tensors with Hugging Face GPT-2 names and shapes equal the index "
          f"(wte {vocab} rows, c_attn.weight = qkv.weight transposed)")


if __name__ == "__main__":
    main()
