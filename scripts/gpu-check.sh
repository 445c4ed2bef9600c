#!/usr/bin/env bash
# One GPU check, under 8 minutes on one H100: confirms CUDA is used, times a ResNet-18 training
# step (batch 256), one adversarial iteration (batch 256) and evaluation throughput — ours and
# the PyTorch implementation under bench/ in the same run, as ratios — and runs a short
# adversarial unlearning end to end (train 1 epoch, unlearn Gan for a few hundred iterations,
# evaluate) on CIFAR-10-format data generated on the spot.
#
# Needs only: the gunlearn binary (built anywhere, $GUNLEARN or target/release/gunlearn), bench/,
# and a Python with PyTorch 2.11 (+ numpy). libtorch is taken from that PyTorch through
# LD_LIBRARY_PATH. Writes gpu-check.json and gpu-check.txt (the printed tables) to $OUT when set.
#
# Settings (environment): GPU_CHECK_DEVICE (cuda; cpu to try the script without a GPU),
# GPU_CHECK_SMALL=1 (tiny sizes, for a CPU smoke test), PYTHON, GUNLEARN, GPU_CHECK_THREADS,
# GPU_CHECK_GAN_SECONDS (time allowed for the end-to-end Gan epochs, default 210: the epoch count,
# 3 to 5, is derived from the measured iteration time so the whole check stays under 8 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."

DEVICE=${GPU_CHECK_DEVICE:-cuda}
SMALL=${GPU_CHECK_SMALL:-0}
BIN=${GUNLEARN:-target/release/gunlearn}
PY=${PYTHON:-python3}
if ! "$PY" -c 'import torch' 2>/dev/null; then
    [ -x .venv/bin/python ] && PY=.venv/bin/python
fi
"$PY" -c 'import torch, numpy' || { echo "gpu-check: $PY lacks torch or numpy (set PYTHON)" >&2; exit 2; }
[ -x "$BIN" ] || { echo "gpu-check: $BIN not found (build with 'make build' or set GUNLEARN)" >&2; exit 2; }
# An absolute path (the benchmarks run the PyTorch side from another folder); the file itself is
# not resolved, so a virtualenv's python keeps its environment.
PY=$(command -v "$PY")
PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")

# libtorch and the CUDA libraries of the installed PyTorch wheel (nvidia/*/lib, any depth).
TORCH_LIB=$("$PY" -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
NV_LIBS=$("$PY" - <<'PYEOF'
import glob, os
try:
    import nvidia
    roots = list(nvidia.__path__)
except ImportError:
    roots = []
dirs = set()
for root in roots:
    for f in glob.glob(os.path.join(root, "**", "lib*.so*"), recursive=True):
        dirs.add(os.path.dirname(f))
print(":".join(sorted(dirs)))
PYEOF
)
export LD_LIBRARY_PATH="$TORCH_LIB${NV_LIBS:+:$NV_LIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

RESULTS=${OUT:-$(mktemp -d)}
mkdir -p "$RESULTS"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
LOG="$RESULTS/gpu-check.txt"
: >"$LOG"
THREADS=()
[ -n "${GPU_CHECK_THREADS:-}" ] && THREADS=(--threads "$GPU_CHECK_THREADS")

if [ "$SMALL" = 1 ]; then
    ARCH=resnet20; BATCH=16; GAN_BATCH=8; STEPS=1; WARM=0; EVAL_N=512
    TRAIN_N=600; TEST_N=200; UNLEARN_BATCH=32; GAN_EPOCHS=1; ATTACKER_ITERS=5
else
    ARCH=resnet18; BATCH=256; GAN_BATCH=256; STEPS=10; WARM=3; EVAL_N=60000
    TRAIN_N=25000; TEST_N=5000; UNLEARN_BATCH=256; GAN_EPOCHS=auto; ATTACKER_ITERS=100
fi

say() { echo "$@" | tee -a "$LOG"; }
# stage NAME COMMAND...: runs it, appends its output to the log, records seconds and exit code.
# A failing stage does not stop the check: the later, independent stages still run, and the
# summary names what failed, so that one run on a GPU machine tells everything it can.
stage() {
    local name=$1; shift
    say ""; say "== $name: $*"
    local t0=$SECONDS rc=0
    "$@" 2>&1 | tee -a "$LOG" || rc=$?
    echo "$name $((SECONDS - t0)) $rc" >>"$WORK/stage-seconds"
    [ "$rc" = 0 ] || say "!! stage $name failed with exit code $rc"
}

say "gpu-check $(date -u +%Y-%m-%dT%H:%M:%SZ) device=$DEVICE small=$SMALL"
say "binary $BIN"
say "python $PY"
stage environment "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(), "device", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")'
if command -v nvidia-smi >/dev/null; then
    stage nvidia-smi nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
fi

stage bench-train "$BIN" bench train --device "$DEVICE" --archs "$ARCH" --batches "$BATCH" \
    --steps "$STEPS" --warmup "$WARM" --python "$PY" --bench_dir bench "${THREADS[@]}"
stage bench-gan "$BIN" bench gan --device "$DEVICE" --large --archs "$ARCH" --batches "$GAN_BATCH" \
    --steps "$STEPS" --warmup "$WARM" --python "$PY" --bench_dir bench "${THREADS[@]}"
stage bench-eval "$BIN" bench eval --device "$DEVICE" --arch "$ARCH" --n "$EVAL_N" \
    --steps 3 --warmup 1 --python "$PY" --bench_dir bench "${THREADS[@]}"
# Our adversarial iteration's other settings, our side only: the recomputed attacker-input
# passes (--gan_memory recompute, less memory) and β = 0 (no graphs for those passes).
stage gan-recompute "$BIN" bench gan --device "$DEVICE" --large --archs "$ARCH" --batches "$GAN_BATCH" \
    --steps 3 --warmup 1 --gan_memory recompute --no_reference --python "$PY" --bench_dir bench "${THREADS[@]}"
stage gan-beta0 "$BIN" bench gan --device "$DEVICE" --large --archs "$ARCH" --batches "$GAN_BATCH" \
    --steps 3 --warmup 1 --beta 0 --no_reference --python "$PY" --bench_dir bench "${THREADS[@]}"

if [ "$GAN_EPOCHS" = auto ]; then
    # Our measured seconds per adversarial iteration (last bench-gan table row) sets how many
    # epochs (80 retain batches each at these sizes) fit the budget: 3 to 5.
    GAN_EPOCHS=$("$PY" - "$LOG" "${GPU_CHECK_GAN_SECONDS:-210}" "$TRAIN_N" "$UNLEARN_BATCH" <<'PYEOF'
import math, sys
log, budget, train_n, batch = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
part = open(log).read().split("== bench-gan:")[1].split("\n== ")[0]
rows = [l for l in part.splitlines() if l.startswith("| ") and not l.startswith("| iteration")]
try:
    seconds = float(rows[-1].strip("|").split("|")[1])
except (IndexError, ValueError):
    seconds = float("nan")
per_epoch = math.ceil(round(round(train_n * 0.9) * 0.9) / batch)
epochs = 4 if not seconds > 0 else max(3, min(5, int(budget // (seconds * per_epoch))))
print(epochs)
PYEOF
)
    say "end-to-end Gan epochs: $GAN_EPOCHS (budget ${GPU_CHECK_GAN_SECONDS:-210} s)"
fi

stage make-data "$PY" bench/make_cifar.py "$WORK/cifar" --train "$TRAIN_N" --test "$TEST_N"
stage train "$BIN" train --dataset cifar10 --data "$WORK/cifar" --arch "$ARCH" --epochs 1 \
    --batch_size "$UNLEARN_BATCH" --save_dir "$WORK/original" --device "$DEVICE" --quiet "${THREADS[@]}"
stage unlearn-gan "$BIN" unlearn --model "$WORK/original" --unlearn Gan --dataset cifar10 \
    --data "$WORK/cifar" --indexes_to_replace --unlearn_lr 0.01 --unlearn_epochs "$GAN_EPOCHS" \
    --batch_size "$UNLEARN_BATCH" --attacker_iters "$ATTACKER_ITERS" --save_dir "$WORK/gan" \
    --device "$DEVICE" --quiet "${THREADS[@]}"
stage eval "$BIN" eval --model "$WORK/gan" --dataset cifar10 --data "$WORK/cifar" \
    --indexes_to_replace --save_dir "$WORK/eval" --device "$DEVICE" --quiet "${THREADS[@]}"

status=0
"$PY" - "$LOG" "$WORK" "$RESULTS/gpu-check.json" "$DEVICE" <<'PYEOF' | tee -a "$LOG" || status=$?
import json, os, re, sys
log, work, out, device = sys.argv[1:5]
text = open(log).read()
stages = {}
for line in open(os.path.join(work, "stage-seconds")):
    name, seconds, rc = line.split()
    stages[name] = {"seconds": int(seconds), "exit_code": int(rc)}
failed = [n for n, s in stages.items() if s["exit_code"] != 0]
summary = {"device_requested": device, "stages": stages, "failed_stages": failed,
           "ratio_meaning": "images/s rows: throughput ours/PyTorch (> 1 = we are faster); "
                            "s/iteration row: time ours/PyTorch (< 1 = we are faster)"}

def section(name):
    parts = text.split(f"== {name}:")
    return parts[1].split("\n== ")[0] if len(parts) > 1 else ""

rows = {}
for sec, key in (("bench-train", "train_step"), ("bench-gan", "adversarial_iteration"), ("bench-eval", "evaluation")):
    table = [l for l in section(sec).splitlines() if l.startswith("| ") and not re.match(r"\| (step|iteration|evaluation) \|", l)]
    try:
        cells = [c.strip() for c in table[-1].strip("|").split("|")]
        rows[key] = {"name": cells[0], "ours": float(cells[1]), "pytorch": float(cells[2]), "ratio": float(cells[3]),
                     "unit": "s/iteration" if key == "adversarial_iteration" else "images/s"}
    except (IndexError, ValueError):
        rows[key] = None
summary["benchmarks"] = rows
variants = {}
for sec, key in (("gan-recompute", "recompute"), ("gan-beta0", "beta_0")):
    m = re.search(r"ours\s+([0-9.]+) s/it", section(sec))
    variants[key] = float(m.group(1)) if m else None
summary["gan_variants_seconds"] = variants

def load(*path):
    try:
        return json.load(open(os.path.join(work, *path)))
    except (OSError, ValueError):
        return None

model, gan, ev = load("original", "model.json"), load("gan", "eval_result.json"), load("eval", "eval_result.json")
m = re.search(r"device (\S+),", section("bench-train"))
seen = {"bench": m.group(1) if m else None,
        "train_model_json": model and model.get("device"),
        "unlearn_eval_result": gan and gan.get("device"),
        "eval_result": ev and ev.get("device")}
summary["devices_seen"] = seen
if gan:
    try:
        iterations = len(open(os.path.join(work, "gan", "unlearn_log.csv")).read().strip().splitlines()) - 1
    except OSError:
        iterations = None
    summary["end_to_end"] = {"iterations": iterations, "rte_seconds": gan["RTE_seconds"], "timings": gan["timings"],
                             "ua": gan["UA"], "ra": gan["RA"], "ta": gan["TA"], "mia_efficacy": gan["MIA_efficacy"],
                             "train_accuracy": model and model.get("accuracy")}
want = "cuda:0" if device in ("cuda", "cuda:0") else device
summary["device_ok"] = all(v == want for v in seen.values())
json.dump(summary, open(out + ".tmp", "w"), indent=2)
os.replace(out + ".tmp", out)

print("\n| check | ours | PyTorch | ratio ours/PyTorch |\n|---|---|---|---|")
for key, r in rows.items():
    if r:
        print(f"| {r['name']} ({r['unit']}) | {r['ours']} | {r['pytorch']} | {r['ratio']} |")
    else:
        print(f"| {key} | – | – | failed or missing (see the log) |")
keep = rows.get("adversarial_iteration")
for key, seconds in variants.items():
    rel = f" ({seconds / keep['ours']:.2f} × keep)" if seconds and keep else ""
    print(f"ours, adversarial iteration, {key}: {seconds if seconds else 'failed or missing'} s{rel}")
e = summary.get("end_to_end")
if e:
    print(f"\nend to end: {e['iterations']} adversarial iterations, RTE {e['rte_seconds']:.1f} s, UA {e['ua']:.2f}, "
          f"RA {e['ra']:.2f}, TA {e['ta']:.2f}, MIA-efficacy {e['mia_efficacy']:.2f}")
else:
    print("\nend to end: no result (see the log)")
print(f"devices used: {seen} -> {'OK' if summary['device_ok'] else 'NOT all ' + want}")
print("stages:", {n: (s["seconds"], s["exit_code"]) for n, s in stages.items()})
if failed:
    print("FAILED stages:", ", ".join(failed))
sys.exit(0 if summary["device_ok"] and not failed else 1)
PYEOF
say "results: $RESULTS/gpu-check.json, $RESULTS/gpu-check.txt"
exit "$status"
