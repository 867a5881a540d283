#!/usr/bin/env python3
"""Compares the training-loss curves of two runs of one configuration (the fp32 build as reference, the
bf16 build as candidate) from their metrics.jsonl files. Fails when the two runs logged different steps,
or when any step from --from-step on differs by more than --tolerance relative to the reference.
Per step, not smoothed: every logged loss is already a mean over a whole batch of tokens.

  compare_loss_curves.py FP32/metrics.jsonl BF16/metrics.jsonl --tolerance 0.02 [--from-step 10]
"""
import argparse
import json
import sys


def losses(path):
    """step -> training loss, from one JSON object per line."""
    with open(path) as f:
        return {r["step"]: r["loss"] for r in map(json.loads, filter(str.strip, f))}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("reference", help="metrics.jsonl of the reference run (fp32)")
    parser.add_argument("candidate", help="metrics.jsonl of the run checked against it (bf16)")
    parser.add_argument("--tolerance", type=float, required=True, help="largest relative difference allowed")
    parser.add_argument("--from-step", type=int, default=10, help="first step compared (early steps are noisy)")
    args = parser.parse_args()
    reference, candidate = losses(args.reference), losses(args.candidate)
    if reference.keys() != candidate.keys():
        print(f"the runs logged different steps: {len(reference)} in {args.reference}, "
              f"{len(candidate)} in {args.candidate}")
        return 1
    steps = sorted(s for s in reference if s >= args.from_step)
    if not steps:
        print(f"no step >= {args.from_step} to compare")
        return 1
    difference = {s: abs(candidate[s] - reference[s]) / abs(reference[s]) for s in steps}
    worst = max(steps, key=difference.get)
    over = [s for s in steps if difference[s] > args.tolerance]
    print(f"steps {steps[0]}-{steps[-1]}: max relative loss difference {difference[worst]:.2e} at step {worst} "
          f"(reference {reference[worst]:.6f}, candidate {candidate[worst]:.6f}); tolerance {args.tolerance:g}")
    if over:
        print(f"{len(over)} step(s) over the tolerance, first at step {over[0]}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
