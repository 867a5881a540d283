#!/usr/bin/env python3
"""Plot loss and throughput from a training run's metrics.jsonl.

Usage: plot_metrics.py RUN_DIR_OR_METRICS_JSONL [-o out.png]
Top panel: train loss (line) and val_loss (markers) vs step.
Bottom panel: tokens/s vs step. Default output: <run_dir>/metrics.png.
"""
import argparse
import json
import os
import sys

import matplotlib
matplotlib.use("Agg")  # headless: no display on CI or cluster nodes
import matplotlib.pyplot as plt


def read_metrics(path):
    """Return (train_rows, eval_rows) as lists of dicts, in file order."""
    train, evals = [], []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                # a run killed mid-write can leave a truncated last line
                print(f"warning: {path}:{lineno}: not JSON, skipped", file=sys.stderr)
                continue
            if "step" not in row:
                continue
            if row.get("kind") == "eval" or "val_loss" in row:
                evals.append(row)
            if row.get("kind", "step") == "step" and "loss" in row:
                train.append(row)
    return train, evals


def series(rows, key):
    # Only rows that actually carry the key, so partial lines don't break the plot.
    pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", help="run directory or metrics.jsonl file")
    ap.add_argument("-o", "--out", help="output PNG (default <run_dir>/metrics.png)")
    args = ap.parse_args()

    path = os.path.join(args.path, "metrics.jsonl") if os.path.isdir(args.path) else args.path
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(path)), "metrics.png")
    train, evals = read_metrics(path)

    fig, (ax_loss, ax_tps) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    ax_loss.plot(*series(train, "loss"), label="train loss", lw=1)
    vx, vy = series(evals, "val_loss")
    if vx:
        ax_loss.plot(vx, vy, "o", color="C3", label="val loss")
    ax_loss.set_ylabel("loss")
    ax_loss.grid(alpha=0.3)
    ax_loss.legend()

    ax_tps.plot(*series(train, "tokens_per_s"), color="C2", lw=1)
    ax_tps.set_ylabel("tokens/s")
    ax_tps.set_xlabel("step")
    ax_tps.grid(alpha=0.3)

    # Title the figure with the parallel layout when the run recorded it.
    last = train[-1] if train else {}
    if all(k in last for k in ("dp", "tp", "pp")):
        fig.suptitle(f"dp={last['dp']} tp={last['tp']} pp={last['pp']}")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    print(out)


if __name__ == "__main__":
    main()
