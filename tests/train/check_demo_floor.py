#!/usr/bin/env python3
"""Checks a finished demo run: the last validation loss in <run_dir>/metrics.jsonl is within
`tolerance` (relative) of the synthetic source's entropy floor ln(branching), and the loss fell."""
import json
import math
import sys


def main(run_dir, branching, tolerance):
    with open(f"{run_dir}/metrics.jsonl") as f:
        records = [json.loads(line) for line in f if line.strip()]
    val = [r["val_loss"] for r in records if "val_loss" in r]
    floor = math.log(branching)
    if not val:
        print("no val_loss in metrics.jsonl")
        return 1
    first, last = records[0]["loss"], val[-1]
    print(f"first loss {first:.4f}, final val_loss {last:.4f}, floor ln({branching}) = {floor:.4f}, "
          f"gap {100 * (last / floor - 1):.2f}% (allowed {100 * tolerance:.0f}%)")
    ok = floor * (1 - 0.01) <= last <= floor * (1 + tolerance) and last < 0.5 * first
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
