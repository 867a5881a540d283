"""h5py finds a checkpoint's full tensors by name (the index's virtual datasets), and they are the tp
shards stitched together the right way.

    test_checkpoint_h5py.py RUN_DIR     (a tp_size=2 pp_stages=2 run; its newest checkpoint is read)

Exit 77 (skipped) without numpy or h5py.
"""
import os
import sys

try:
    import h5py
    import numpy as np
except ImportError as missing:
    print(f"skipped: {missing}")
    sys.exit(77)


def shard(folder, stage, tp_rank, group, name):
    with h5py.File(os.path.join(folder, f"shard_pp{stage:02d}_tp{tp_rank:02d}.h5"), "r") as file:
        return file[f"/{group}/{name}"][...]


def check_stitching(index, folder, stage, name, group, tp):
    """The full tensor equals the tp shards joined along its split (in `parts` blocks for fused QKV)."""
    full_path = f"/stage_{stage}/{name}" if group == "param" else f"/optimizer/{group}/stage_{stage}/{name}"
    full = index[full_path][...]
    split, parts = index[full_path].attrs["split"].decode(), int(index[full_path].attrs["parts"])
    pieces = [shard(folder, stage, r, group, name) for r in range(tp)]
    if split == "row":
        stitched = np.concatenate(pieces, axis=1)
    elif split in ("column", "vocab"):  # each part's rows: rank 0's block, rank 1's block, ...
        blocks = [np.split(piece, parts, axis=0) for piece in pieces]
        stitched = np.concatenate([blocks[r][p] for p in range(parts) for r in range(tp)], axis=0)
    else:
        stitched = pieces[0]
        assert all(np.array_equal(piece, stitched) for piece in pieces[1:]), f"{name}: tp replicas differ"
    assert np.array_equal(full, stitched), f"{full_path} ({split}, {parts} parts) is not its shards stitched"
    return split


def main():
    ckpt = os.path.join(sys.argv[1], "ckpt")
    folder = os.path.join(ckpt, max(d for d in os.listdir(ckpt) if d.startswith("step_")))
    with h5py.File(os.path.join(folder, "index.h5"), "r") as index:
        attrs = {key: index.attrs[key] for key in ("tp", "pp", "n_layer", "n_embd", "seq_len", "vocab_size")}
        tp, pp, n_layer, C, T, V = (int(attrs[key]) for key in attrs)
        assert (tp, pp) == (2, 2), f"expected a tp=2 pp=2 checkpoint, got tp={tp} pp={pp}"
        Vp = (V + 127) // 128 * 128
        last = n_layer - 1
        shapes = {"/stage_0/wte.weight": (Vp, C), "/stage_0/wpe.weight": (T, C),
                  "/stage_0/h.0.ln_1.weight": (C,), "/stage_0/h.0.attn.qkv.weight": (3 * C, C),
                  "/stage_0/h.0.attn.qkv.bias": (3 * C,), "/stage_0/h.0.attn.proj.weight": (C, C),
                  "/stage_0/h.0.mlp.fc.weight": (4 * C, C), f"/stage_1/h.{last}.mlp.proj.weight": (C, 4 * C),
                  "/stage_1/wte.weight": (Vp, C), "/stage_1/ln_f.weight": (C,), "/stage_1/ln_f.bias": (C,)}
        for path, shape in shapes.items():
            for prefix in ("", "/optimizer/exp_avg", "/optimizer/exp_avg_sq"):
                assert index[prefix + path].shape == shape, f"{prefix + path}: {index[prefix + path].shape} != {shape}"
        # The tied embedding is one tensor, saved by both ends of the pipeline.
        assert np.array_equal(index["/stage_0/wte.weight"][...], index["/stage_1/wte.weight"][...])
        assert np.abs(index["/stage_0/h.0.attn.qkv.weight"][...]).max() > 0, "qkv weight is all zeros"

        # Full QKV rows = [q of rank 0, q of rank 1, k of rank 0, k of rank 1, v of rank 0, v of rank 1].
        qkv = index["/stage_0/h.0.attn.qkv.weight"][...]
        (q0, k0, v0), (q1, k1, v1) = (np.split(shard(folder, 0, r, "param", "h.0.attn.qkv.weight"), 3) for r in range(2))
        assert np.array_equal(qkv, np.concatenate([q0, q1, k0, k1, v0, v1])), "qkv rows are not the shards' q, k, v"

        checked = set()
        for stage in range(pp):
            for name in index[f"stage_{stage}"]:
                for group in ("param", "exp_avg", "exp_avg_sq"):
                    checked.add(check_stitching(index, folder, stage, name, group, tp))
        assert checked == {"row", "column", "vocab", "replicated"}, f"splits seen: {checked}"
    print(f"OK: {folder}: full tensors by name, each equal to its tp shards stitched ({sorted(checked)})")


if __name__ == "__main__":
    main()
