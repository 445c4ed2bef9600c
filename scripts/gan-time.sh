#!/usr/bin/env bash
# Time of one adversarial iteration as `unlearn` runs it by default when the graphs fit (every
# graph kept, glibc returning freed memory, channels-last activations on the CPU) against our
# PyTorch port (bench/gan_step.py) and, with GUNLEARN_REFERENCE_LOOP=DIR (a checkout of the
# reference implementation, run with a Python that has its packages), the reference code's own
# loop, all in one `gunlearn bench gan` command; then our side once more in the reference's
# N×C×H×W layout, to show what the layout contributes. Prints one markdown table
# (docs/performance.md, "Time of the adversarial iteration").
#
#   scripts/gan-time.sh                                   # ResNet-18, batch 64, 2 threads
#   GUNLEARN_REFERENCE_LOOP=~/Gunlearn BATCH=128 scripts/gan-time.sh
#   ARCH=resnet20 BATCH=4 THREADS=1 STEPS=1 scripts/gan-time.sh   # a quick smoke run
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/gunlearn}
ARCH=${ARCH:-resnet18}
BATCH=${BATCH:-64}
THREADS=${THREADS:-2}
STEPS=${STEPS:-2}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
bench=("$BIN" bench gan --archs "$ARCH" --batches "$BATCH" --large --steps "$STEPS" --warmup 1 --threads "$THREADS" --no_keep_memory)
"${bench[@]}" --json "$OUT/default.json" >&2
GUNLEARN_REFERENCE_LOOP= "${bench[@]}" --no_reference --layout nchw --json "$OUT/nchw.json" >&2
python3 - "$OUT" "$ARCH" "$BATCH" "$THREADS" "$STEPS" "${GUNLEARN_REFERENCE_LOOP:-}" <<'PYEOF'
import datetime, json, os, subprocess, sys
out, arch, batch, threads, steps, checkout = sys.argv[1:7]
first = json.load(open(os.path.join(out, "default.json")))[0]
nchw = json.load(open(os.path.join(out, "nchw.json")))[0]["ours"]
rows = [
    ("gunlearn, `unlearn`'s default (channels-last, glibc returns freed memory)", first["ours"]),
    ("gunlearn, `--layout nchw` (the reference's layout)", nchw),
    ("our PyTorch port (`bench/gan_step.py`)", first["pytorch"]),
]
ref = first.get("reference_loop")
if ref:
    rows.append(("the reference implementation's own loop (`GUNLEARN_REFERENCE_LOOP`)", ref))
base = ref or first["pytorch"]
base_name = "the reference loop's" if ref else "the port's"
cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
env = (f"GUNLEARN_REFERENCE_LOOP=DIR " if ref else "")
print(f"`{env}ARCH={arch} BATCH={batch} THREADS={threads} STEPS={steps} scripts/gan-time.sh`, "
      f"{datetime.date.today()}, {os.cpu_count()} cores ({cpu}), {arch} at batch {batch}, {threads} threads, "
      f"median of {steps} iteration(s) after 1 warm-up:\n")
print(f"| side | s / iteration | time ÷ {base_name} | peak RSS (GiB) |")
print("|---|---|---|---|")
for name, side in rows:
    peak = side.get("peak_gb")
    print(f"| {name} | {side['seconds']:.2f} | {side['seconds'] / base['seconds']:.2f} | "
          f"{'?' if peak is None else format(peak, '.1f')} |")
PYEOF
