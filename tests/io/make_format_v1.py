"""Writes the format-1 checkpoint the tests load (ctest fixture io_format_v1) instead of keeping one in git.

    make_format_v1.py XP_TRAIN MPIEXEC DATA_DIR OUT_DIR

DATA_DIR (tests/io/data/format_v1) describes it: run.in, the deck of the 4-step tp 2 x pp 2 run whose
step 2 it is; config.toml, the resolved configuration 971cc86's xp_train stored in its index, verbatim;
metrics.jsonl, that run's losses, which the tests expect a resume to continue. This build's xp_train runs
the deck on 4 ranks; its step-2 checkpoint is then rewritten as format 1 wrote it: format_version 1, the
old configuration, and no stage map (format 2 added first_layer, last_layer, has_embedding and has_head
to each /stage_S group; format 1's reader takes the map from the tensor names). The shards are kept
byte for byte, so the sizes and CRC-32s the index records still hold. Anything else in the index that
format 1 did not have stops the script: a newer writer must not pass its additions off as format 1.
Result: OUT_DIR/step_000002. Exit 77 (skipped) without numpy or h5py.
"""
import os
import shutil
import subprocess
import sys

try:
    import h5py
    import numpy as np
except ImportError as missing:
    print(f"skipped: {missing}")
    sys.exit(77)

STEP_DIR = "step_000002"
RANKS = 4  # tp_size 2 x pp_stages 2, as run.in says

# Format 1's index, as 971cc86 wrote it (h5dump of the checkpoint once kept in git).
ROOT_ATTRIBUTES = {"format_version", "step", "seed", "dp", "tp", "pp", "zero_stage", "train_shard",
                   "train_position", "train_epoch", "n_layer", "n_head", "n_embd", "seq_len", "vocab_size",
                   "config"}
TENSOR_ATTRIBUTES = {"split", "parts"}
SHARD_RECORD_ATTRIBUTES = {"crc32", "bytes"}
SHARD_GROUPS = {"param", "exp_avg", "exp_avg_sq"}
# What format 2 added, and only that, is taken out.
STAGE_MAP_ATTRIBUTES = {"first_layer", "last_layer", "has_embedding", "has_head"}


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def expect_keys(what, found, expected):
    found = set(found)
    if found != expected:
        fail(f"{what}: has {sorted(found - expected)} that format 1 lacks, lacks {sorted(expected - found)}")


def replace_text_attribute(obj, name, text):
    """A fixed-size string of exactly len(text) bytes, written as xp_train's write_attribute writes it."""
    kind = h5py.h5t.C_S1.copy()
    kind.set_size(len(text))
    del obj.attrs[name]
    attribute = h5py.h5a.create(obj.id, name.encode(), kind, h5py.h5s.create(h5py.h5s.SCALAR))
    attribute.write(np.array(text, dtype=f"S{len(text)}"), mtype=kind)  # file type in memory: no NUL forced


def downgrade_index(path, config_text):
    with h5py.File(path, "r+") as index:
        expect_keys(f"{path} (root attributes)", index.attrs, ROOT_ATTRIBUTES)
        pp = int(index.attrs["pp"])
        stages = {f"stage_{s}" for s in range(pp)}
        expect_keys(f"{path} (top-level groups)", index, stages | {"optimizer", "shards"})
        expect_keys(f"{path}:/optimizer", index["optimizer"], SHARD_GROUPS - {"param"})
        for stage in stages:
            expect_keys(f"{path}:/{stage} (stage map)", index[stage].attrs, STAGE_MAP_ATTRIBUTES)
            for name in STAGE_MAP_ATTRIBUTES:
                del index[stage].attrs[name]
            for group in (index[stage], index["optimizer/exp_avg"][stage], index["optimizer/exp_avg_sq"][stage]):
                for tensor in group.values():
                    expect_keys(f"{path}:{tensor.name}", tensor.attrs, TENSOR_ATTRIBUTES)
                    if not tensor.is_virtual:
                        fail(f"{path}:{tensor.name} is not a virtual dataset over the shards")
        for record in index["shards"].values():
            expect_keys(f"{path}:{record.name}", record.attrs, SHARD_RECORD_ATTRIBUTES)
        index.attrs.modify("format_version", np.int64(1))
        replace_text_attribute(index, "config", config_text)


def main():
    if len(sys.argv) != 5:
        fail("usage: make_format_v1.py XP_TRAIN MPIEXEC DATA_DIR OUT_DIR")
    xp_train, mpiexec, data, out = sys.argv[1:]
    with open(os.path.join(data, "config.toml"), "rb") as file:
        config_text = file.read()
    shutil.rmtree(out, ignore_errors=True)
    run_dir = os.path.join(out, "run")
    os.makedirs(run_dir)
    command = [mpiexec, "-n", str(RANKS), xp_train, os.path.join(data, "run.in"), f"run_dir={run_dir}"]
    with open(os.path.join(out, "run.log"), "w") as log:
        if subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, timeout=240).returncode != 0:
            fail(f"{' '.join(command)} failed: see {log.name}")
    checkpoint = os.path.join(out, STEP_DIR)
    os.rename(os.path.join(run_dir, "ckpt", STEP_DIR), checkpoint)
    shutil.rmtree(run_dir)
    for shard in sorted(os.listdir(checkpoint)):
        if shard != "index.h5":
            with h5py.File(os.path.join(checkpoint, shard), "r") as file:
                expect_keys(f"{shard} (groups)", file, SHARD_GROUPS)
                expect_keys(f"{shard} (attributes)", file.attrs, set())
    downgrade_index(os.path.join(checkpoint, "index.h5"), config_text)
    print(f"wrote {checkpoint}: format 1, step 2 of {os.path.join(data, 'run.in')} on {RANKS} ranks")


if __name__ == "__main__":
    main()
