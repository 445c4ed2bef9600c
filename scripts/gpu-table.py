#!/usr/bin/env python3
"""Turns the output of scripts/gpu-check.sh into the markdown for docs/performance.md.

    scripts/gpu-table.py RESULTS_DIR      (the folder holding gpu-check.json and gpu-check.txt)

Prints the "Results on a GPU" table (card, driver and date read from the run's log), the
performance targets (docs/performance.md) with a verdict each, and the distance of the adversarial iteration from
the FP32 bound computed in docs/performance.md (19.6 TFLOP per iteration at batch 256).
Standard library only, so it runs wherever the check ran.
"""

import json
import re
import sys
from pathlib import Path

# One adversarial iteration, ResNet-18, batch 256: 5 888 images × 3.329 GFLOP (docs/performance.md).
ITERATION_TFLOP = 5888 * 3.329e9 / 1e12
# FP32 (CUDA-core) peak of the cards whose name the table recognises, TFLOP/s (NVIDIA's data
# sheets); other cards get no distance-from-bound row.
FP32_PEAK = {"H100": 67.0, "H200": 67.0, "A100": 19.5, "V100": 15.7, "L40S": 91.6, "L4": 30.3, "RTX 4090": 82.6}


def card_line(log):
    """(name, driver) from the nvidia-smi CSV line of the log, or ("?", "?")."""
    m = re.search(r"^name, driver_version.*\n(.+)$", log, re.M)
    if not m:
        return "?", "?"
    cells = [c.strip() for c in m.group(1).split(",")]
    return cells[0], (cells[1] if len(cells) > 1 else "?")


def main(results_dir):
    folder = Path(results_dir)
    summary = json.loads((folder / "gpu-check.json").read_text())
    log = (folder / "gpu-check.txt").read_text()
    name, driver = card_line(log)
    date = re.search(r"^gpu-check (\S+)", log, re.M)
    date = date.group(1)[:10] if date else "?"
    bench = summary.get("benchmarks", {})

    def row(key, label, unit, fmt):
        r = bench.get(key)
        if not r:
            return f"| {label} ({unit}) | failed | | (see gpu-check.txt) |"
        # The benchmark's own name for what it timed (e.g. "resnet18 b256", "eval resnet18 n60000").
        return (f"| {label}, {r['name']} ({unit}) | {fmt.format(r['ours'])} | "
                f"{fmt.format(r['pytorch'])} | {r['ratio']:.3f} |")

    print(f"| check (card: {name}, driver: {driver}, date: {date}) | ours | PyTorch 2.11 | ratio ours/PyTorch |")
    print("|---|---|---|---|")
    print(row("train_step", "training step", "images/s", "{:.0f}"))
    print(row("adversarial_iteration", "adversarial iteration", "s", "{:.3f}"))
    print(row("evaluation", "evaluation", "images/s", "{:.0f}"))
    # Our iteration's other settings (our side only; the PyTorch column is the same `keep` run).
    variants = summary.get("gan_variants_seconds") or {}
    for key, label in (("recompute", "`--gan_memory recompute`"), ("beta_0", "β = 0")):
        if key in variants:
            seconds = variants[key]
            print(f"| adversarial iteration, {label} (s) | {seconds:.3f} | | |" if seconds
                  else f"| adversarial iteration, {label} (s) | failed | | (see gpu-check.txt) |")
    e2e = summary.get("end_to_end")
    if e2e:
        print(f"| end to end: {e2e['iterations']} Gan iterations, RTE (s) | {e2e['rte_seconds']:.1f} | | |")
        print(f"\nEnd to end: UA {e2e['ua']:.2f}, RA {e2e['ra']:.2f}, TA {e2e['ta']:.2f}, "
              f"MIA-efficacy {e2e['mia_efficacy']:.2f} (generated data; a pipeline check, not a result).")

    print("\nTargets (same card, same run):")
    targets = [("train_step", "training step throughput ≥ 1.0 × PyTorch", lambda r: r >= 1.0),
               ("adversarial_iteration", "adversarial iteration time ≤ 0.7 × PyTorch", lambda r: r <= 0.7),
               ("evaluation", "evaluation throughput ≥ 2 × PyTorch", lambda r: r >= 2.0)]
    for key, text, ok in targets:
        r = bench.get(key)
        verdict = "no figure" if not r else ("met" if ok(r["ratio"]) else "NOT met")
        print(f"- {text}: {verdict}" + (f" (ratio {r['ratio']:.3f})" if r else ""))

    gan = bench.get("adversarial_iteration")
    peak = next((v for k, v in FP32_PEAK.items() if k in name), None)
    if gan and gan["name"] != "resnet18 b256":
        print(f"\nBound: computed for ResNet-18 at batch 256 only, this run timed {gan['name']}.")
    elif gan and peak:
        bound = ITERATION_TFLOP / peak
        print(f"\nBound: {ITERATION_TFLOP:.1f} TFLOP per iteration at {peak:.0f} TFLOP/s FP32 = {bound:.3f} s; "
              f"measured {gan['ours']:.3f} s = {gan['ours'] / bound:.2f} × the bound "
              f"({100 * bound / gan['ours']:.0f} % of FP32 peak); PyTorch {gan['pytorch']:.3f} s.")
    elif gan:
        print(f"\nBound: card {name!r} has no FP32 peak in scripts/gpu-table.py; add it to compare.")
    if summary.get("failed_stages"):
        print("\nFailed stages:", ", ".join(summary["failed_stages"]))
    if not summary.get("device_ok", False):
        print("\nWARNING: not every stage ran on the requested device:", summary.get("devices_seen"))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
