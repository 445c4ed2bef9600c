#!/usr/bin/env bash
# Evidence study v2 (docs/results.md, "Evidence study v2 on fashion-mnist"): every method at its
# reference optimizer steps (examples/study-v2-fashion-mnist.toml), resumable (finished runs are
# skipped, so an interrupted study continues where it stopped), then `gunlearn report --select`
# (each method's setting chosen on the selection split) and, once the sweep is complete, the
# study's section of docs/results.md rewritten from the results (scripts/study-v2-md.py); DOC=
# skips that. Many CPU hours on 2 cores: run it with nohup.
# The body is one block, read whole before it runs: editing the script mid-run is safe.
{
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
# The study is committed without checkpoints, so a later session on another machine trains the
# original again; libtorch picks its kernels by the CPU's instruction set (AVX-512 here, AVX2
# elsewhere), and the two round differently, so the same training gives other weights and every
# finished run would be stale (a sweep reruns the runs whose recorded input hash differs).
# Pinned to AVX2, which every x86-64 machine we use has, the weights come out the same.
export ATEN_CPU_CAPABILITY=${ATEN_CPU_CAPABILITY:-avx2}
export ONEDNN_MAX_CPU_ISA=${ONEDNN_MAX_CPU_ISA:-AVX2}
export MKL_CBWR=${MKL_CBWR:-AVX2}
BIN=${BIN:-target/release/gunlearn}
FILE=${FILE:-examples/study-v2-fashion-mnist.toml}
V1_FILE=${V1_FILE:-examples/study-fashion-mnist.toml}
OUT=${OUT:-studies/study-v2-fm}
WORKERS=${WORKERS:-2}
scripts/fetch-data.sh fashion-mnist >/dev/null
"$BIN" sweep "$FILE" --out "$OUT/dense" --dry-run --estimate --workers "$WORKERS" | sed -n '/^Estimated/,$p'
# The 1 000-image study's schedule, for the write-up's comparison (its dry run: plan and steps.csv).
"$BIN" sweep "$V1_FILE" --out "$OUT/v1-schedule" --dry-run >/dev/null
"$BIN" sweep "$FILE" --out "$OUT/dense" --workers "$WORKERS" --threads 1
"$BIN" report "$OUT/dense" --select -o "$OUT/report" >/dev/null
DOC=${DOC-docs/results.md}
if [ -n "$DOC" ] && [ -x scripts/study-v2-md.py ]; then
  cp "$OUT/report/gap.png" docs/figures/study-v2-fm-gap.png
  # Made whole first, so that a failure leaves the page as it was.
  section=$(python3 scripts/study-v2-md.py "$OUT" "scripts/study-v2.sh")
  printf '%s\n' "$section" | python3 scripts/replace-section.py "$DOC" "## Evidence study v2 on fashion-mnist" --first
fi
exit 0
}
