#!/usr/bin/env bash
# The per-example forgetting audit on digits (SPEC §6b) for docs/results.md: N = 32 retrained
# models and, per method, 32 unlearning runs from one original; resumable (finished models are
# kept). Then rewrites the "Per-example forgetting audit" section of docs/results.md from the
# results (scripts/audit-md.py); DOC= skips that.
{
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
BIN=${BIN:-target/release/gunlearn}
OUT=${OUT:-runs/audit-digits}
N=${N:-32}
# The original memorises: 20 epochs at batch 64 without augmentation (train − test well above
# the health check's 2 points); every retrained model uses the same recipe.
cmd=("$BIN" audit --dataset digits --arch resnet20 --epochs 20 --batch_size 64 --decreasing_lr 10,15
     --no_augment --forget random:100 --methods retrain,raw,FT,Gan,SalUn --n "$N" --out "$OUT"
     --workers 2 --threads 1 --quiet)
"${cmd[@]}"
DOC=${DOC-docs/results.md}
if [ -n "$DOC" ]; then
  # Made whole first, so that a failure leaves the page as it was.
  section=$(python3 scripts/audit-md.py "$OUT" "scripts/audit-digits.sh   # ${cmd[*]:1}")
  printf '%s\n' "$section" | python3 scripts/replace-section.py "$DOC" "## Per-example forgetting audit"
fi
exit 0
}
