#!/usr/bin/env python3
"""PyTorch GPU baseline for xp_train's GPU benchmark: times full GPT-2 training steps.

The model of xp_train: learned position embeddings, pre-LN blocks, causal attention, tanh-GELU MLP
of width 4C, LM head tied to the token embedding, vocabulary padded to a multiple of 128 with the
padded logits excluded from the loss, no dropout. bf16 autocast (fp32 master weights), fused AdamW
(lr 6e-4, betas 0.9/0.95, eps 1e-8, weight decay 0.1 on 2-D weights only), global grad-norm clip 1.0.
Random tokens generated on the device each step: no data files.

Prints one JSON line: model, mode, batch, seq, tokens_per_s and step_ms (median of the last 10
steps, each timed between device synchronisations), tflops, mfu, peak_tflops, peak_memory_gib and
first_step_s (the first step, which holds torch.compile's compilation). Model FLOPs per
token are those of xp_train (src/train/metrics.cpp), so the MFUs compare:
    6 * (12 * L * C^2 + Vp * C) + 12 * L * T * C
(matmul weights including the LM head, forward + backward; attention scores and weighted values,
causal mask not discounted). MFU = FLOPs/token * tokens/s / --peak_tflops: 989.4 by default, the dense
bf16 datasheet peak of the H100 SXM and of the H200 (the same chip; a bf16 GEMM measures ~790 there).

    python3 tools/bench_torch_gpu.py --model 124m --batch 32 --mode compile
    /usr/bin/python3 tools/bench_torch_gpu.py --device cpu --model tiny --batch 2 --seq 32 --steps 3
"""
import argparse
import json
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

MODELS = {  # n_layer, n_embd, n_head
    "tiny": (2, 64, 2),
    "124m": (12, 768, 12),
    "350m": (24, 1024, 16),
    "1.5b": (48, 1600, 25),
}
VOCAB = 50257
TIMED = 10  # steps in the median: the last ones


def flops_per_token(L, C, Vp, T):
    """Training FLOPs per token, exactly xp::training_flops_per_token (src/train/metrics.cpp)."""
    return 6.0 * (12.0 * L * C * C + Vp * C) + 12.0 * L * T * C


def causal_attention(q, k, v):
    if hasattr(F, "scaled_dot_product_attention"):  # PyTorch >= 2.0: flash / memory-efficient kernels
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    T = q.shape[-2]  # fallback for old PyTorch (CPU smoke test only)
    mask = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    att = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    return att.masked_fill(~mask, float("-inf")).softmax(-1) @ v


class Block(nn.Module):
    def __init__(self, C, H):
        super().__init__()
        self.H = H
        self.ln1, self.ln2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.qkv, self.attn_proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.fc, self.mlp_proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=-1)
        q, k, v = (t.view(B, T, self.H, C // self.H).transpose(1, 2) for t in (q, k, v))
        y = causal_attention(q, k, v).transpose(1, 2).reshape(B, T, C)
        x = x + self.attn_proj(y)
        return x + self.mlp_proj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT2(nn.Module):
    def __init__(self, L, C, H, V, Vp, max_T):
        super().__init__()
        self.V = V
        self.wte, self.wpe = nn.Embedding(Vp, C), nn.Embedding(max_T, C)
        self.blocks = nn.ModuleList(Block(C, H) for _ in range(L))
        self.ln_f = nn.LayerNorm(C)
        for name, p in self.named_parameters():  # GPT-2 init; residual projections scaled by 1/sqrt(2L)
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * L) if name.endswith(("attn_proj.weight", "mlp_proj.weight")) else 0.02
                nn.init.normal_(p, std=std)
            elif name.endswith(".bias"):
                nn.init.zeros_(p)

    def forward(self, idx, targets):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for block in self.blocks:
            x = block(x)
        logits = F.linear(self.ln_f(x), self.wte.weight)  # tied LM head
        logits = logits[..., : self.V]  # padded columns are never predicted nor in the loss
        return F.cross_entropy(logits.float().reshape(-1, self.V), targets.reshape(-1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=list(MODELS), default="124m")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--mode", choices=["eager", "compile"], default="eager")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--peak_tflops", type=float, default=989.4,
                    help="per-device peak for the MFU (H100/H200 SXM dense bf16, datasheet)")
    a = ap.parse_args()
    if a.steps < 2:
        ap.error("--steps must be at least 2 (the first step is never timed)")
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    if cuda and not torch.cuda.is_available():
        ap.error("no CUDA device: pass --device cpu")
    if a.mode == "compile" and not hasattr(torch, "compile"):
        ap.error(f"torch.compile needs PyTorch >= 2.0 (this is {torch.__version__})")

    torch.manual_seed(1337)
    torch.set_float32_matmul_precision("high")  # TF32 for the few fp32 matmuls outside autocast
    L, C, H = MODELS[a.model]
    Vp = (VOCAB + 127) // 128 * 128  # 50304, as xp_train pads it
    model = GPT2(L, C, H, VOCAB, Vp, a.seq).to(dev)
    n_params = sum(p.numel() for p in model.parameters())
    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=6e-4, betas=(0.9, 0.95), eps=1e-8, **({"fused": True} if cuda else {}))
    step_fn = torch.compile(model) if a.mode == "compile" else model
    print(f"{a.model} B={a.batch} T={a.seq} {a.mode}, {n_params / 1e6:.1f} M parameters; "
          f"MFU against {a.peak_tflops} TFLOP/s", flush=True)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    times = []
    for step in range(a.steps):
        batch = torch.randint(0, VOCAB, (a.batch, a.seq + 1), device=dev)
        inputs, targets = batch[:, :-1], batch[:, 1:]
        sync()
        t0 = time.perf_counter()
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16):
            loss = step_fn(inputs, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
        print(f"step {step:3d} loss {loss.item():.4f} ms {times[-1]:.1f}", flush=True)

    ms = statistics.median(times[max(1, a.steps - TIMED):])  # never the first (allocation, compilation)
    tokens_per_s = a.batch * a.seq / (ms / 1e3)
    flops = flops_per_token(L, C, Vp, a.seq) * tokens_per_s
    print(json.dumps({
        "model": a.model, "mode": a.mode, "batch": a.batch, "seq": a.seq, "device": a.device,
        "n_params": n_params, "tokens_per_s": round(tokens_per_s, 1), "step_ms": round(ms, 3),
        "tflops": round(flops / 1e12, 3), "mfu": round(flops / (a.peak_tflops * 1e12), 5),
        "peak_tflops": a.peak_tflops, "first_step_s": round(times[0] / 1e3, 2),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated(dev) / 2**30, 3) if cuda else None,
        "torch": torch.__version__,
    }), flush=True)


if __name__ == "__main__":
    main()
