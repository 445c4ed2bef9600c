#!/usr/bin/env bash
# α grid for FF (fisher_new) and IU (wfisher) in the Fashion-MNIST setting of
# scripts/fashion-mnist-results.sh (same data flags, same original model and Retrain runs).
# Every run goes to $OUT/alpha-grid/<scenario>/<method>-<alpha>; finished runs (with an
# eval_result.json) are skipped, so the script resumes. It then prints, per run, UA, RA,
# validation accuracy, MIA-efficacy and the score = mean |Δ| to the Retrain run of the same
# scenario over UA, RA, MIA-efficacy and validation accuracy (never test accuracy), and per
# method the α with the lowest mean score over both scenarios.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
BIN=${BIN:-target/release/gunlearn}
OUT=${OUT:-runs/fashion-mnist}
THREADS=${THREADS:-1}       # one thread per run: the grid runs in sequence beside other work
SUBSET=${SUBSET:-5000}      # as scripts/fashion-mnist-results.sh
TEST_SUBSET=${TEST_SUBSET:-2000}
EPOCHS=${EPOCHS:-12}
BATCH=${BATCH:-128}
CLASS=${CLASS:-3}
FF_GRID=${FF_GRID:-"1e-9 1e-8 1e-7 1e-6 1e-5"}
# IU: {0.1, 1, 5, 10, 20} alone put its best at its lower edge (0.1), so the grid reaches down.
IU_GRID=${IU_GRID:-"0.01 0.03 0.1 0.3 1 5 10 20"}
scripts/fetch-data.sh fashion-mnist >/dev/null
data=(--dataset fashion-mnist --data data/fashion-mnist --train_subset "$SUBSET" --test_subset "$TEST_SUBSET")
common=(--threads "$THREADS" --quiet)
milestones="$((EPOCHS / 2)),$((EPOCHS * 3 / 4))"
if ! grep -q '"test"' "$OUT/original/model.json" 2>/dev/null; then
  # The same training command as scripts/fashion-mnist-results.sh (complete once its final
  # evaluation recorded the test accuracy; --resume continues an interrupted one).
  "$BIN" train "${data[@]}" "${common[@]}" --arch resnet20 --epochs "$EPOCHS" --batch_size "$BATCH" \
    --lr 0.1 --decreasing_lr "$milestones" --save_dir "$OUT/original" --resume
fi
forget_flags() { # scenario
  if [ "$1" = classwise ]; then echo --class_to_replace "$CLASS"; else echo --indexes_to_replace; fi
}
unlearn() { # dir method flags...
  local dir=$1 method=$2; shift 2
  [ -f "$dir/eval_result.json" ] && return 0
  echo "$(date +%T) $dir" >&2
  "$BIN" unlearn --model "$OUT/original" --unlearn "$method" "${data[@]}" "${common[@]}" \
    --batch_size "$BATCH" --decreasing_lr "$milestones" --save_dir "$dir" "$@"
}
for scenario in classwise random; do
  read -ra forget <<< "$(forget_flags $scenario)"
  for a in $FF_GRID; do
    unlearn "$OUT/alpha-grid/$scenario/fisher_new-$a" fisher_new "${forget[@]}" --alpha "$a"
  done
  for a in $IU_GRID; do
    unlearn "$OUT/alpha-grid/$scenario/wfisher-$a" wfisher "${forget[@]}" --alpha "$a"
  done
  # The Retrain run, with scripts/fashion-mnist-results.sh's command, if that script has not
  # made it yet.
  unlearn "$OUT/$scenario/retrain" retrain "${forget[@]}" --unlearn_lr 0.1 --unlearn_epochs "$EPOCHS"
done
python3 - "$OUT" "$FF_GRID" "$IU_GRID" <<'EOF' | tee "$OUT/alpha-grid/table.md"
import json, sys
out, grids = sys.argv[1], {"fisher_new": sys.argv[2].split(), "wfisher": sys.argv[3].split()}

def metrics(path):
    d = json.load(open(path))
    acc = d["accuracy"]
    return {"UA": 100 - acc["forget"], "RA": acc["retain"], "val": acc["val"],
            "MIA": 100 * d["SVC_MIA_forget_efficacy"]["confidence"]}

print("| scenario | method | α | UA | RA | val acc | MIA-efficacy | score (mean |Δ| to Retrain) |")
print("|---|---|---|---|---|---|---|---|")
scores = {}
for scenario in ["classwise", "random"]:
    gold = metrics(f"{out}/{scenario}/retrain/eval_result.json")
    print(f"| {scenario} | retrain | — | {gold['UA']:.2f} | {gold['RA']:.2f} | {gold['val']:.2f} | {gold['MIA']:.2f} | 0 |")
    for method, grid in grids.items():
        for a in grid:
            m = metrics(f"{out}/alpha-grid/{scenario}/{method}-{a}/eval_result.json")
            score = sum(abs(m[k] - gold[k]) for k in gold) / len(gold)
            scores.setdefault((method, a), []).append(score)
            print(f"| {scenario} | {method} | {a} | {m['UA']:.2f} | {m['RA']:.2f} | {m['val']:.2f} | {m['MIA']:.2f} | {score:.2f} |")
print()
for method, grid in grids.items():
    means = {a: sum(scores[(method, a)]) / 2 for a in grid}
    best = min(grid, key=lambda a: means[a])
    listed = ", ".join(f"{a}: {means[a]:.2f}" for a in grid)
    print(f"{method}: mean score over both scenarios {{{listed}}}; best α = {best}")
EOF
