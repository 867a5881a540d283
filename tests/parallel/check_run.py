#!/usr/bin/env python3
"""Check a finished xp_train run: metrics.jsonl has one line per step (1..steps, in order), each with a
finite loss and the expected layout, and training moved the loss down (last step below the first).

    check_run.py RUN_DIR --steps 10 --dp 2 --tp 1 --pp 1
"""
import argparse
import json
import math
import sys
from pathlib import Path


def problems_of(run_dir: Path, steps: int, layout: dict) -> list:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return [f"{path} does not exist"]
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            return [f"{path}:{number}: not JSON ({error})"]
    step_records = [r for r in records if "step" in r]
    problems = []
    if len(step_records) != steps:
        problems.append(f"{len(step_records)} step lines, expected {steps}")
    for index, record in enumerate(step_records, start=1):
        if record["step"] != index:
            problems.append(f"line {index} is step {record['step']}, expected {index}")
        loss = record.get("loss")
        if not isinstance(loss, (int, float)) or not math.isfinite(loss):
            problems.append(f"step {record['step']}: loss {loss!r} is not finite")
        for key, expected in layout.items():
            if record.get(key) != expected:
                problems.append(f"step {record['step']}: {key}={record.get(key)!r}, expected {expected}")
    losses = [r.get("loss") for r in step_records]
    if len(losses) >= 2 and all(isinstance(x, (int, float)) for x in losses) and not losses[-1] < losses[0]:
        problems.append(f"last loss {losses[-1]} is not below the first {losses[0]}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--steps", type=int, required=True)
    for key in ("dp", "tp", "pp"):
        parser.add_argument(f"--{key}", type=int, required=True)
    args = parser.parse_args()
    problems = problems_of(args.run_dir, args.steps, {"dp": args.dp, "tp": args.tp, "pp": args.pp})
    if problems:
        print(f"FAIL: {args.run_dir}")
        for problem in problems:
            print(f"  {problem}")
        return 1
    print(f"ok: {args.steps} steps, dp={args.dp} tp={args.tp} pp={args.pp}, loss fell")
    return 0


if __name__ == "__main__":
    sys.exit(main())
