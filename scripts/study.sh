#!/usr/bin/env bash
# The evidence study (docs/results.md, "Evidence study on ..."): the dense and the pruned sweep
# on $DATASET (fashion-mnist by default, or mnist), each resumable (finished runs are skipped,
# so an interrupted study continues where it stopped), the hypothesis test on the dense model,
# then `gunlearn report` over both sweeps with each method's setting chosen on validation, then
# the study's section of docs/results.md rewritten from the results (scripts/study-md.py); DOC=
# skips that. About 2 hours on 2 cores per data set.
# The body is one block, read whole before it runs: editing the script mid-run is safe.
{
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
BIN=${BIN:-target/release/gunlearn}
DATASET=${DATASET:-fashion-mnist}   # examples/study-$DATASET.toml and study-$DATASET-pruned.toml
OUT=${OUT:-runs/study-$DATASET}
WORKERS=${WORKERS:-2}
scripts/fetch-data.sh "$DATASET" >/dev/null
"$BIN" sweep "examples/study-$DATASET.toml" --out "$OUT/dense" --workers "$WORKERS" --threads 1
# The hypothesis test on the dense model (scripts/study-hypothesis.py): class-wise Gan with its
# setting chosen on validation, 2 epochs instead of 1.
"$BIN" report "$OUT/dense" --select-on-validation -o "$OUT/report-dense" >/dev/null
python3 scripts/study-hypothesis.py "$OUT" 2 | xargs -r -P "$WORKERS" -n 1 "$BIN" run-job --threads 1
"$BIN" sweep "examples/study-$DATASET-pruned.toml" --out "$OUT/pruned" --workers "$WORKERS" --threads 1
"$BIN" report "$OUT/dense" "$OUT/pruned" --select-on-validation -o "$OUT/report" >/dev/null
DOC=${DOC-docs/results.md}
if [ -n "$DOC" ]; then
  cp "$OUT/report/gap.png" "docs/figures/study-$DATASET-gap.png"
  # Made whole first, so that a failure leaves the page as it was.
  section=$(python3 scripts/study-md.py "$OUT" "DATASET=$DATASET OUT=$OUT scripts/study.sh")
  printf '%s\n' "$section" | python3 scripts/replace-section.py "$DOC" "## Evidence study on $DATASET" --first
fi
exit 0
}
