"""GPT-2 weights from outside: a random small GPT-2 written here in Hugging Face's layout with numpy and
json alone (transformer. names, Conv1D weights (in, out), wte of 50257 rows, the attn.bias and
attn.masked_bias buffers, config.json beside it), imported with `xp_ckpt import`, gives in xp_train
(init_from, the loss of step 1, which is taken before any update) the loss a float64 PyTorch forward of
those weights gives on the same tokens — at 1 rank, tp=2, pp=2 and dp=2 with zero_stage=1; a run that
can resume its own checkpoint resumes instead. The same weights without the prefix, with a tied lm_head
and --n_head instead of config.json, and F16 and BF16 files of representable values, import to the same
checkpoint as their F32 file. An untied head, a config.json that contradicts the tensors, a missing
tensor and a deck whose shape differs are refused with the file and the key named.

    test_hf_import.py XP_TRAIN XP_CKPT WORK_DIR MPIEXEC

Tolerance: xp_train computes in fp32 against a float64 reference: 1e-5 relative, as the reference test
(tests/reference/gpt2_torch.py; XP_REFERENCE_TOLERANCE for bf16 builds). Measured ~1e-7; the loss is
logged with 7 significant digits (5e-8). Exit 77 (skipped) without numpy or torch.
"""
import json
import math
import os
import shutil
import struct
import subprocess
import sys

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as missing:
    print(f"skipped: {missing}")
    sys.exit(77)

TOL = float(os.environ.get("XP_REFERENCE_TOLERANCE", "1e-5"))
N_LAYER, N_HEAD, N_EMBD, SEQ_LEN, VOCAB = 2, 4, 64, 32, 50257
BATCH = 4  # sequences of the one global batch


def hf_weights(rng):
    """A random GPT-2 by Hugging Face's names and shapes. Large enough values that the loss is far from
    ln(vocab) and each weight matters: logits of std ~2 over the vocabulary."""
    C = N_EMBD
    normal = lambda *shape, std=0.1: rng.normal(0.0, std, shape).astype(np.float32)
    w = {"transformer.wte.weight": normal(VOCAB, C, std=0.3), "transformer.wpe.weight": normal(SEQ_LEN, C)}
    for layer in range(N_LAYER):
        h = f"transformer.h.{layer}."
        w[h + "ln_1.weight"], w[h + "ln_1.bias"] = 1 + normal(C), normal(C)
        w[h + "attn.c_attn.weight"], w[h + "attn.c_attn.bias"] = normal(C, 3 * C), normal(3 * C)  # Conv1D (in, out)
        w[h + "attn.c_proj.weight"], w[h + "attn.c_proj.bias"] = normal(C, C), normal(C)
        w[h + "ln_2.weight"], w[h + "ln_2.bias"] = 1 + normal(C), normal(C)
        w[h + "mlp.c_fc.weight"], w[h + "mlp.c_fc.bias"] = normal(C, 4 * C), normal(4 * C)
        w[h + "mlp.c_proj.weight"], w[h + "mlp.c_proj.bias"] = normal(4 * C, C), normal(C)
        # Buffers older transformers versions save: the causal mask and the masked score.
        w[h + "attn.bias"] = np.tril(np.ones((SEQ_LEN, SEQ_LEN), np.float32))[None, None]
        w[h + "attn.masked_bias"] = np.array(-1e4, np.float32)
    w["transformer.ln_f.weight"], w["transformer.ln_f.bias"] = 1 + normal(C), normal(C)
    return w


def stored(values, dtype):
    """The little-endian bytes of fp32 `values` as safetensors dtype F32, F16 or BF16 (BF16: the upper
    half of each fp32, numpy having no bfloat16)."""
    if dtype == "BF16":
        return (values.astype("<f4").reshape(-1).view("<u4") >> 16).astype("<u2").tobytes()
    return values.astype({"F32": "<f4", "F16": "<f2"}[dtype]).tobytes()


def write_safetensors(path, tensors, dtype="F32"):
    """safetensors by its specification: u64 little-endian header length, JSON header, row-major data."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, values in tensors.items():
        size = len(stored(values, dtype))
        header[name] = {"dtype": dtype, "shape": list(values.shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(text)) + text)
        for values in tensors.values():
            out.write(stored(values, dtype))


def write_shard(path, tokens):
    """llm.c's token shard: 256 int32 header (magic 20240520, version 1, token count), uint16 tokens."""
    header = np.zeros(256, np.int32)
    header[:3] = [20240520, 1, tokens.size]
    with open(path, "wb") as out:
        out.write(header.tobytes() + tokens.astype("<u2").tobytes())


def hf_loss(w, tokens):
    """GPT2LMHeadModel's loss, written from Hugging Face's modeling_gpt2 conventions in float64:
    Conv1D is x @ W + b with W (in, out), gelu_new (tanh), LayerNorm eps 1e-5, the head tied to wte."""
    p = {name: torch.from_numpy(values).double() for name, values in w.items()}
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    B, T = inputs.shape
    C, hs = N_EMBD, N_EMBD // N_HEAD
    ln = lambda x, name: F.layer_norm(x, (C,), p[name + ".weight"], p[name + ".bias"], eps=1e-5)
    conv1d = lambda x, name: x @ p[name + ".weight"] + p[name + ".bias"]
    x = p["transformer.wte.weight"][inputs] + p["transformer.wpe.weight"][:T]
    for layer in range(N_LAYER):
        h = f"transformer.h.{layer}."
        q, k, v = conv1d(ln(x, h + "ln_1"), h + "attn.c_attn").split(C, dim=2)
        q, k, v = (t.view(B, T, N_HEAD, hs).transpose(1, 2) for t in (q, k, v))
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(hs)
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        y = scores.masked_fill(~causal, float("-inf")).softmax(dim=-1) @ v
        x = x + conv1d(y.transpose(1, 2).reshape(B, T, C), h + "attn.c_proj")
        x = x + conv1d(F.gelu(conv1d(ln(x, h + "ln_2"), h + "mlp.c_fc"), approximate="tanh"), h + "mlp.c_proj")
    logits = ln(x, "transformer.ln_f") @ p["transformer.wte.weight"].T
    return F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1)).item()


def run(*command, fail=False, quiet=False):
    print("+", " ".join(command), flush=True)
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(done.stdout.splitlines()[-1] if quiet and done.stdout else done.stdout, end="\n" if quiet else "")
    if (done.returncode != 0) != fail:
        sys.exit(f"FAIL: exit {done.returncode}{' (a refusal was expected)' if fail else ''}: {' '.join(command)}")
    return done.stdout


def refused(words, *command):
    output = run(*command, fail=True)
    for word in words:
        if word not in output:
            sys.exit(f"FAIL: the refusal does not name {word!r}")


def main():
    xp_train, xp_ckpt, work, mpiexec = sys.argv[1:5]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(f"{work}/hf")
    rng = np.random.default_rng(20240520)
    weights = hf_weights(rng)
    model = f"{work}/hf/model.safetensors"
    write_safetensors(model, weights)
    with open(f"{work}/hf/config.json", "w") as out:  # what transformers' GPT2Config.save_pretrained writes
        json.dump({"model_type": "gpt2", "n_layer": N_LAYER, "n_head": N_HEAD, "n_embd": N_EMBD,
                   "n_positions": SEQ_LEN, "n_ctx": SEQ_LEN, "vocab_size": VOCAB}, out)
    # The global batch: BATCH rows of SEQ_LEN + 1 tokens overlapping by one, as llm.c reads a shard;
    # the top of the vocabulary included.
    tokens = rng.integers(0, VOCAB, BATCH * SEQ_LEN + 1)
    tokens[:3] = [VOCAB - 1, VOCAB - 2, 0]
    write_shard(f"{work}/train_000000.bin", tokens)
    rows = np.stack([tokens[b * SEQ_LEN:b * SEQ_LEN + SEQ_LEN + 1] for b in range(BATCH)])
    reference = hf_loss(weights, torch.from_numpy(rows).long())

    report = run(xp_ckpt, "import", model, "-o", f"{work}/imported")
    assert f"n_head {N_HEAD} (from {work}/hf/config.json)" in report, "import did not say where n_head came from"

    shape = [f"n_layer={N_LAYER}", f"n_head={N_HEAD}", f"n_embd={N_EMBD}", f"seq_len={SEQ_LEN}", f"vocab_size={VOCAB}"]
    common = shape + ["steps=1", f"train_data={work}/train_*.bin", "log_every=1",
                      "final_checkpoint=false", "eval_every=0", f"init_from={work}/imported"]
    failures = []
    # The same global batch of BATCH rows in every layout: dp=2 replicas read half of it each.
    whole, half = f"batch_size={BATCH}", f"batch_size={BATCH // 2}"
    # The 1-rank run also checkpoints step 1, which the resume check below continues from.
    layouts = {"1 rank": (1, [whole, "final_checkpoint=true"]), "tp=2": (2, [whole, "tp_size=2"]),
               "pp=2": (2, [whole, "pp_stages=2"]), "dp=2 zero_stage=1": (2, [half, "dp_size=2", "zero_stage=1"])}
    for label, (ranks, layout) in layouts.items():
        run_dir = f"{work}/run_{label.replace(' ', '_')}"
        run(mpiexec, "-n", str(ranks), xp_train, *common, *layout, f"run_dir={run_dir}")
        with open(f"{run_dir}/metrics.jsonl") as log:
            loss = json.loads(log.readline())["loss"]
        rel = abs(loss - reference) / reference
        print(f"{label}: xp_train loss {loss:.7g}, PyTorch float64 {reference:.7g}, rel {rel:.2e} (tolerance {TOL:g})")
        if not rel <= TOL:
            failures.append(label)
    # The weights matter: xp_train's own initialisation gives a loss nowhere near it.
    fresh = f"{work}/run_fresh"
    run(xp_train, *common[:-1], whole, f"run_dir={fresh}")
    with open(f"{fresh}/metrics.jsonl") as log:
        fresh_loss = json.loads(log.readline())["loss"]
    print(f"without init_from: loss {fresh_loss:.7g}")
    if abs(fresh_loss - reference) / reference < 1e-2:
        failures.append("the reference does not tell imported weights from fresh ones")

    # Without the prefix, a tied lm_head, no config.json (--n_head): the same checkpoint tensor for tensor.
    os.makedirs(f"{work}/bare")
    bare = {name.removeprefix("transformer."): values for name, values in weights.items()}
    bare["lm_head.weight"] = weights["transformer.wte.weight"]
    write_safetensors(f"{work}/bare/model.safetensors", bare)
    run(xp_ckpt, "import", f"{work}/bare/model.safetensors", "-o", f"{work}/bare_ckpt", "--n_head", str(N_HEAD))
    diff = run(xp_ckpt, "diff", f"{work}/imported", f"{work}/bare_ckpt", quiet=True)
    if "abs 0.000e+00" not in diff.splitlines()[-1] or "only in" in diff:
        failures.append("the file without the prefix imports to another checkpoint")

    # A resumable run resumes, whatever init_from says: its own checkpoint of step 1 wins.
    resumed = f"{work}/run_1_rank"
    output = run(xp_train, *common, whole, "steps=2", "resume=latest", f"run_dir={resumed}")
    if "resumed from" not in output or "weights from" in output:
        failures.append("init_from overrode resume = latest")

    # F16 and BF16 files import exactly: each equals the F32 file of the same (representable) values.
    # No config.json and no --n_head here: n_head is GPT-2's n_embd/64 = 1, and the tool says so.
    halves = {"F16": lambda v: v.astype(np.float16).astype(np.float32),  # subnormal halves included
              "BF16": lambda v: (v.reshape(-1).view(np.uint32) & 0xFFFF0000).view(np.float32).reshape(v.shape)}
    for dtype, representable in halves.items():
        os.makedirs(f"{work}/{dtype}")
        values = {name: representable(v) for name, v in bare.items()}
        write_safetensors(f"{work}/{dtype}/half.safetensors", values, dtype)
        write_safetensors(f"{work}/{dtype}/full.safetensors", values)
        report = run(xp_ckpt, "import", f"{work}/{dtype}/half.safetensors", "-o", f"{work}/{dtype}/half")
        if "n_head 1 (GPT-2's n_embd/64" not in report:
            failures.append(f"{dtype}: import did not say n_head is n_embd/64")
        run(xp_ckpt, "import", f"{work}/{dtype}/full.safetensors", "-o", f"{work}/{dtype}/full")
        diff = run(xp_ckpt, "diff", f"{work}/{dtype}/half", f"{work}/{dtype}/full", quiet=True)
        if "abs 0.000e+00" not in diff.splitlines()[-1]:
            failures.append(f"{dtype} does not import as the F32 of the same values")

    # Refusals: each names the file and what is wrong.
    untied = dict(bare, **{"lm_head.weight": weights["transformer.wte.weight"] * 2})
    write_safetensors(f"{work}/untied.safetensors", untied)
    refused(["untied.safetensors", "lm_head.weight differs"], xp_ckpt, "import", f"{work}/untied.safetensors",
            "-o", f"{work}/untied", "--n_head", "4")
    missing = {name: values for name, values in bare.items() if name != "h.1.mlp.c_fc.bias"}
    write_safetensors(f"{work}/missing.safetensors", missing)
    refused(["missing.safetensors", "h.1.mlp.c_fc.bias"], xp_ckpt, "import", f"{work}/missing.safetensors",
            "-o", f"{work}/missing", "--n_head", "4")
    os.makedirs(f"{work}/contradicted")
    shutil.copy(model, f"{work}/contradicted/model.safetensors")
    with open(f"{work}/contradicted/config.json", "w") as out:
        json.dump({"n_layer": 12, "n_head": 12, "n_embd": 768}, out)
    refused(["contradicted/config.json", "n_layer 12"], xp_ckpt, "import", f"{work}/contradicted/model.safetensors",
            "-o", f"{work}/contradicted_ckpt")
    refused([f"{work}/imported", "n_embd 64", "n_embd 128"], xp_train, *common, whole, "n_embd=128",
            f"run_dir={work}/run_mismatch")

    if failures:
        sys.exit("FAIL: " + "; ".join(failures))
    print(f"OK: Hugging Face layout imported; xp_train's step-1 loss equals PyTorch's {reference:.7g} within "
          f"{TOL:g} at 1 rank, tp=2, pp=2 and dp=2 zero_stage=1; resume wins over init_from; refusals name the cause")


if __name__ == "__main__":
    main()
