#!/usr/bin/env python3
"""Checks a finished run from its <run_dir>/metrics.jsonl: the loss fell (final validation loss below
half the first training loss) and the final validation loss is either within a relative tolerance of
the synthetic source's entropy floor ln(branching), or below a given bound.

  check_val_loss.py RUN_DIR --floor BRANCHING --tolerance 0.05
  check_val_loss.py RUN_DIR --below 3.0
"""
import argparse
import json
import math
import sys


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("--floor", type=int, help="branching of the synthetic source")
    parser.add_argument("--tolerance", type=float, default=0.05)
    parser.add_argument("--below", type=float)
    args = parser.parse_args()
    with open(f"{args.run_dir}/metrics.jsonl") as f:
        records = [json.loads(line) for line in f if line.strip()]
    val = [r["val_loss"] for r in records if "val_loss" in r]
    if not val:
        print("no val_loss in metrics.jsonl")
        return 1
    first, last = records[0]["loss"], val[-1]
    ok = last < 0.5 * first
    if args.floor:
        floor = math.log(args.floor)
        # Below the entropy would mean the loss or the data is wrong, not that the model is good.
        ok = ok and floor * 0.99 <= last <= floor * (1 + args.tolerance)
        print(f"first loss {first:.4f}, final val_loss {last:.4f}, floor ln({args.floor}) = {floor:.4f}, "
              f"gap {100 * (last / floor - 1):.2f}% (allowed {100 * args.tolerance:.0f}%)")
    if args.below is not None:
        ok = ok and last < args.below
        print(f"first loss {first:.4f}, final val_loss {last:.4f}, required below {args.below}")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
