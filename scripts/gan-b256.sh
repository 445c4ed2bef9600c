#!/usr/bin/env bash
# ResNet-18 at the reference's batch size, B = 256, through `gunlearn unlearn --unlearn Gan` with
# the default memory flags (`--gan_memory auto`) on this machine: auto estimates what keeping
# every graph would need, compares it with the memory available and, where it does not fit,
# recomputes the attacker-input passes. Learnable generated CIFAR-shaped data
# (bench/make_cifar.py): 2 800 training images, so that retain (378), forget (2 142) and
# validation (280) each fill a batch of 256; one epoch of the game (2 iterations) after a
# 1-iteration attacker pre-training, as only the memory is in question. Prints one markdown
# paragraph (docs/performance.md, "Memory of the adversarial iteration").
#
#   scripts/gan-b256.sh                      # 2 threads; ≈ 30 min on 2 cores
#   REPORT_ONLY=1 OUT=DIR scripts/gan-b256.sh  # the paragraph of an earlier run in DIR
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/gunlearn}
PYTHON=${PYTHON:-.venv/bin/python}
THREADS=${THREADS:-2}
OUT=${OUT:-$(mktemp -d)}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
if [ -z "${REPORT_ONLY:-}" ]; then
  mkdir -p "$OUT"
  "$PYTHON" bench/make_cifar.py "$OUT/cifar" --train 2800 --test 500 >&2
  "$BIN" train --dataset cifar10 --data "$OUT/cifar" --arch resnet18 --epochs 1 --threads "$THREADS" \
    --quiet --save_dir "$OUT/model" >&2
  /usr/bin/time -v -o "$OUT/time.txt" "$BIN" unlearn --model "$OUT/model" --unlearn Gan \
    --dataset cifar10 --data "$OUT/cifar" --test_subset 300 --indexes_to_replace --forget_fraction 0.85 \
    --unlearn_epochs 1 --attacker_iters 1 --threads "$THREADS" --quiet --save_dir "$OUT/gan" >&2
fi
python3 - "$OUT" "$THREADS" <<'PYEOF'
import json, os, re, sys
out, threads = sys.argv[1:3]
result = json.load(open(os.path.join(out, "gan", "eval_result.json")))
ran = result["config"]["ran"]
time = open(os.path.join(out, "time.txt")).read()
peak_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", time).group(1))
wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", time).group(1)
date = os.path.getmtime(os.path.join(out, "gan", "eval_result.json"))
import datetime
total_gb = int(re.search(r"MemTotal:\s+(\d+)", open("/proc/meminfo").read()).group(1)) * 1024 / 1e9
print(f"`scripts/gan-b256.sh` ({datetime.date.fromtimestamp(date)}, {os.cpu_count()} cores, {total_gb:.0f} GB of memory, "
      f"THREADS={threads}; generated data, 2 game iterations): with batch {result['config']['settings']['batch_size']} "
      f"and no memory flag, `unlearn` estimated keep's peak at {ran['gan_memory_keep_estimate_gb']:.1f} GB "
      f"against {ran['memory_available_gb']:.1f} GB available, ran `{ran['gan_memory']}` "
      f"(glibc returning freed memory: {str(ran['glibc_returns_freed_memory']).lower()}) and finished with a peak of "
      f"{peak_kib * 1024 / 1e9:.1f} GB for the whole process ({wall} wall clock, RTE {result['RTE_seconds']:.0f} s).")
PYEOF
