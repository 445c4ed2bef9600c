#!/usr/bin/env bash
# Where the memory of one adversarial iteration goes, and what each way of handling it costs in
# time (docs/performance.md, "Memory of the adversarial iteration"): `gunlearn bench gan` on
# ResNet-18 at batch $BATCH, each configuration in a process of its own (a fresh heap), then one
# markdown table. Per configuration: seconds per iteration, minor page faults, the process's
# peak resident memory (VmHWM), and, at the sampled peak, how much of it is heap in use, freed
# memory glibc kept for reuse, and the rest (code, libraries), with the highest heap in use.
# Our PyTorch port (bench/gan_step.py) runs beside the first configuration; with
# GUNLEARN_REFERENCE_LOOP=DIR the reference implementation's own loop does too.
#
#   scripts/gan-memory.sh                  # ResNet-18, batch 64, 2 threads
#   BATCH=128 scripts/gan-memory.sh
#   ARCH=resnet20 BATCH=4 THREADS=1 scripts/gan-memory.sh   # a quick smoke run
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
bench=("$BIN" bench gan --archs "$ARCH" --batches "$BATCH" --large --steps "$STEPS" --warmup 1 --threads "$THREADS")
"${bench[@]}" --json "$OUT/keep.json" >&2
"${bench[@]}" --no_reference --no_keep_memory --json "$OUT/keep-return.json" >&2
GLIBC_TUNABLES=glibc.malloc.hugetlb=1 "${bench[@]}" --no_reference --no_keep_memory --json "$OUT/keep-return-thp.json" >&2
"${bench[@]}" --no_reference --gan_memory recompute --no_keep_memory --json "$OUT/recompute-return.json" >&2
python3 - "$OUT" "$ARCH" "$BATCH" "$THREADS" "$STEPS" <<'PYEOF'
import json, os, platform, subprocess, sys, datetime
out, arch, batch, threads, steps = sys.argv[1:6]
def load(name):
    return json.load(open(os.path.join(out, name + ".json")))[0]
first = load("keep")
rows = [
    ("ours: every graph kept, glibc keeps freed memory (`keep`, as `unlearn` runs it when it fits)", first["ours"]),
    ("ours: every graph kept, glibc returns freed memory (`--no_keep_memory`)", load("keep-return")["ours"]),
    ("ours: every graph kept, glibc returns freed memory, transparent huge pages (`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`)", load("keep-return-thp")["ours"]),
    ("ours: attacker-input passes recomputed, glibc returns freed memory (`recompute`)", load("recompute-return")["ours"]),
    ("our PyTorch port (`bench/gan_step.py`, PyTorch's allocator settings)", first["pytorch"]),
]
if first.get("reference_loop"):
    rows.append(("the reference implementation's own loop (`GUNLEARN_REFERENCE_LOOP`)", first["reference_loop"]))
port = first["pytorch"]["seconds"]
gib = lambda b: "?" if b is None else f"{b / 2**30:.1f}"
cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
print(f"`{' '.join(['ARCH=' + arch, 'BATCH=' + batch, 'THREADS=' + threads, 'STEPS=' + steps, 'scripts/gan-memory.sh'])}`, "
      f"{datetime.date.today()}, {os.cpu_count()} cores ({cpu}), {arch} at batch {batch}, {threads} threads, "
      f"median of {steps} iteration(s) after 1 warm-up, each row its own process:\n")
print("| configuration | s / iteration | time ÷ the port's | minor faults / iteration | peak RSS (GiB) | at the peak: heap in use | freed, kept by glibc | rest | highest heap in use |")
print("|---|---|---|---|---|---|---|---|---|")
for name, side in rows:
    b = side.get("breakdown") or {}
    heap = b.get("heap") or {}
    rest = None if not b else b["resident"] - heap["in_use"] - heap["free_kept"]
    faults = side.get("minor_faults")
    print(f"| {name} | {side['seconds']:.2f} | {side['seconds'] / port:.2f} | "
          f"{'?' if faults is None else f'{faults / 1e6:.2f} M'} | "
          f"{'?' if side.get('peak_gb') is None else format(side['peak_gb'], '.1f')} | "
          f"{gib(heap.get('in_use'))} | {gib(heap.get('free_kept'))} | {gib(rest)} | {gib(b.get('max_in_use'))} |")
estimate = first.get("keep_estimate_gb")
if estimate is not None:
    print(f"\n`--gan_memory auto` estimated `keep`'s peak here at {estimate:.1f} GiB before the first "
          "iteration (resident memory then, plus 1.25 × 23·B × the heap one forward pass holds per "
          "image): what it compares with the memory available.")
PYEOF
