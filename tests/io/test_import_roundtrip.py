"""export → import round-trips bitwise: a tp=2 run's checkpoint (4 steps, so every tensor and moment is
trained and nonzero) goes to safetensors and back with `xp_ckpt import`; every tensor of the imported
checkpoint equals the original bit for bit (wte's real rows; its padding rows are zero), the moments are
zero and the step 0; exporting the imported checkpoint again gives the same file byte for byte.

    test_import_roundtrip.py XP_TRAIN XP_CKPT DECK WORK_DIR MPIEXEC

Exit 77 (skipped) without numpy or h5py.
"""
import filecmp
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


def run(*command):
    print("+", " ".join(command), flush=True)
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(done.stdout, end="")
    if done.returncode != 0:
        sys.exit(f"FAIL: exit {done.returncode}: {' '.join(command)}")
    return done.stdout


def tensors(index_path):
    """{(moment, name): values} of every full tensor the index holds, whichever stage holds it."""
    found = {}
    with h5py.File(index_path, "r") as index:
        attrs = {key: int(np.asarray(index.attrs[key]).item()) for key in ("step", "vocab_size", "n_head")}
        groups = [("param", index)] + [(moment, index["optimizer"][moment]) for moment in ("exp_avg", "exp_avg_sq")]
        for moment, group in groups:
            for stage in (key for key in group if key.startswith("stage_")):
                for name, dataset in group[stage].items():
                    found.setdefault((moment, name), dataset[...])
    return found, attrs


def main():
    xp_train, xp_ckpt, deck, work, mpiexec = sys.argv[1:6]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    # vocab 250 pads to 256 rows: the export drops 6, the import must give them back as zeros.
    run(mpiexec, "-n", "2", xp_train, deck, "steps=4", "vocab_size=250", "tp_size=2", "log_every=100",
        f"run_dir={work}/run")
    original = f"{work}/run/ckpt/step_000004"
    first, second = f"{work}/first.safetensors", f"{work}/second.safetensors"
    run(xp_ckpt, "export", original, "--to", "safetensors", "-o", first)
    report = run(xp_ckpt, "import", first, "-o", f"{work}/imported", "--n_head", "4")
    assert "n_head 4 (given)" in report, "import did not say where n_head came from"
    run(xp_ckpt, "verify", f"{work}/imported")
    run(xp_ckpt, "export", f"{work}/imported", "--to", "safetensors", "-o", second)

    want, want_attrs = tensors(f"{original}/index.h5")
    got, got_attrs = tensors(f"{work}/imported/index.h5")
    assert set(got) == set(want), f"tensor names differ: {sorted(set(got) ^ set(want))}"
    vocab = want_attrs["vocab_size"]
    compared = 0
    for (moment, name), values in sorted(want.items()):
        mine = got[(moment, name)]
        assert mine.shape == values.shape and mine.dtype == values.dtype, f"{moment} {name}: {mine.shape} {mine.dtype}"
        if moment != "param":
            assert not mine.any(), f"{moment} of {name} is not zero after import"
            assert values.any(), f"{moment} of {name} is zero in the trained run: the check would prove nothing"
            continue
        real = slice(0, vocab) if name == "wte.weight" else slice(None)
        # Bitwise: compare the bytes, so -0.0 against 0.0 or a NaN payload would count as a difference.
        assert mine[real].tobytes() == values[real].tobytes(), f"{name} differs after export → import"
        if name == "wte.weight":
            assert mine.shape[0] == 256 and not mine[vocab:].any(), "wte's padding rows are not zero"
        compared += 1
    assert got_attrs == {"step": 0, "vocab_size": vocab, "n_head": 4}, f"imported index says {got_attrs}"
    assert filecmp.cmp(first, second, shallow=False), "exporting the imported checkpoint gives another file"
    print(f"OK: {compared} tensors round-trip bitwise (wte {vocab} of 256 rows, padding zero), moments zero, "
          f"step 0; the re-export equals the export byte for byte")


if __name__ == "__main__":
    main()
