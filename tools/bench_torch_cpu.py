#!/usr/bin/env python3
"""PyTorch CPU baseline for the C++ trainer's benchmark: times full GPT-2 training steps.

Same model as the C++ trainer: float32, vocab padded to a multiple of 128 with
the padded logits excluded from the loss, tied LM head, no dropout; AdamW with
weight decay on 2-D params and grad-norm clipping at 1.0.
"""
import argparse
import math
import statistics
import time

import torch
import torch.nn.functional as F

WARMUP = 3  # first steps pay for allocation and thread-pool start-up


def init_params(L, C, Vp, max_T, gen):
    """GPT-2 init: N(0, 0.02) weights, residual projections scaled by 1/sqrt(2L)."""
    normal = lambda *s, std=0.02: torch.randn(*s, generator=gen) * std
    p = {"wte": normal(Vp, C), "wpe": normal(max_T, C), "lnf_w": torch.ones(C), "lnf_b": torch.zeros(C)}
    for l in range(L):
        p.update({
            f"{l}.ln1_w": torch.ones(C), f"{l}.ln1_b": torch.zeros(C),
            f"{l}.qkv_w": normal(3 * C, C), f"{l}.qkv_b": torch.zeros(3 * C),
            f"{l}.aproj_w": normal(C, C, std=0.02 / math.sqrt(2 * L)), f"{l}.aproj_b": torch.zeros(C),
            f"{l}.ln2_w": torch.ones(C), f"{l}.ln2_b": torch.zeros(C),
            f"{l}.fc_w": normal(4 * C, C), f"{l}.fc_b": torch.zeros(4 * C),
            f"{l}.mproj_w": normal(C, 4 * C, std=0.02 / math.sqrt(2 * L)), f"{l}.mproj_b": torch.zeros(C),
        })
    return {k: v.requires_grad_(True) for k, v in p.items()}


def gpt2_loss(p, L, H, V, inputs, targets):
    B, T = inputs.shape
    C = p["wte"].shape[1]
    hs = C // H
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    x = p["wte"][inputs] + p["wpe"][:T]
    for l in range(L):
        a = F.layer_norm(x, (C,), p[f"{l}.ln1_w"], p[f"{l}.ln1_b"], eps=1e-5)
        q, k, v = F.linear(a, p[f"{l}.qkv_w"], p[f"{l}.qkv_b"]).split(C, dim=-1)
        q, k, v = (t.view(B, T, H, hs).transpose(1, 2) for t in (q, k, v))
        att = ((q @ k.transpose(-2, -1)) / math.sqrt(hs)).masked_fill(~causal, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + F.linear(y, p[f"{l}.aproj_w"], p[f"{l}.aproj_b"])
        m = F.layer_norm(x, (C,), p[f"{l}.ln2_w"], p[f"{l}.ln2_b"], eps=1e-5)
        m = F.gelu(F.linear(m, p[f"{l}.fc_w"], p[f"{l}.fc_b"]), approximate="tanh")
        x = x + F.linear(m, p[f"{l}.mproj_w"], p[f"{l}.mproj_b"])
    x = F.layer_norm(x, (C,), p["lnf_w"], p["lnf_b"], eps=1e-5)
    logits = x @ p["wte"].T
    return F.cross_entropy(logits[..., :V].reshape(-1, V), targets.reshape(-1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in [("n_layer", 6), ("n_embd", 384), ("n_head", 6), ("vocab", 50257),
                          ("B", 4), ("T", 64), ("steps", 20), ("threads", 2), ("max_seq_len", 1024)]:
        ap.add_argument(f"--{name}", type=int, default=default)
    a = ap.parse_args()
    if a.steps <= WARMUP:
        ap.error(f"--steps must exceed the {WARMUP} warm-up steps")

    torch.set_num_threads(a.threads)
    gen = torch.Generator().manual_seed(1234)  # fixed seed: same params and batches every run
    Vp = (a.vocab + 127) // 128 * 128  # padded vocab, as in the C++ trainer
    p = init_params(a.n_layer, a.n_embd, Vp, max(a.max_seq_len, a.T), gen)
    params = list(p.values())
    opt = torch.optim.AdamW([{"params": [t for t in params if t.dim() == 2], "weight_decay": 0.1},
                             {"params": [t for t in params if t.dim() != 2], "weight_decay": 0.0}],
                            lr=6e-4, betas=(0.9, 0.95), eps=1e-8)

    times = []
    for step in range(a.steps):
        batch = torch.randint(0, a.vocab, (a.B, a.T + 1), generator=gen)
        inputs, targets = batch[:, :-1], batch[:, 1:]
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = gpt2_loss(p, a.n_layer, a.n_head, a.vocab, inputs, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ms = (time.perf_counter() - t0) * 1e3
        if step >= WARMUP:
            times.append(ms)
        print(f"step {step:3d} loss {loss.item():.4f} ms {ms:.1f}{' (warm-up)' if step < WARMUP else ''}",
              flush=True)

    med = statistics.median(times)
    print(f"torch_cpu: median_ms={med:.2f} tokens_per_s={a.B * a.T / (med / 1e3):.1f} "
          f"n_layer={a.n_layer} n_embd={a.n_embd} B={a.B} T={a.T} threads={a.threads}")


if __name__ == "__main__":
    main()
