#!/usr/bin/env bash
# Writes the fuzz seeds under tests/fuzz-seeds/<target>/ (see src/fuzz.rs): the binary formats
# from the embedded digits with their real writers (scripts/fuzz-seeds.py), the example sweep
# files, and the job.json and audit.json files a real digits sweep plan and unlearning run
# write (gunlearn itself, a 1-epoch model; about a minute on 2 cores).
#   scripts/fuzz-seeds.sh            (BIN=target/release/gunlearn)
{
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
BIN=${BIN:-target/release/gunlearn}
SEEDS=tests/fuzz-seeds
python3 scripts/fuzz-seeds.py "$SEEDS"

mkdir -p "$SEEDS/sweep-toml" "$SEEDS/job-json" "$SEEDS/audit-json"
for f in digits-minimal cifar10-classwise study-mnist-pruned; do
  cp "examples/$f.toml" "$SEEDS/sweep-toml/$f.toml"
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The jobs of the smallest sweep's plan: train, attacker pre-training, unlearning.
"$BIN" sweep examples/digits-minimal.toml --out "$tmp/sweep" --dry-run > /dev/null
n=0
for job in $(find "$tmp/sweep" -name job.json | sort); do
  kind=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["kind"])' "$job")
  if [ ! -e "$SEEDS/job-json/$kind.json" ]; then
    cp "$job" "$SEEDS/job-json/$kind.json"
    n=$((n + 1))
  fi
done
[ "$n" -gt 0 ] || { echo "no job.json in the dry run's plan" >&2; exit 1; }

# A finished unlearning run's audit record (class-wise and random forgetting).
common=(--device cpu --threads 1 --quiet --batch_size 64)
"$BIN" train --dataset digits --arch resnet20 --epochs 1 "${common[@]}" --save_dir "$tmp/model"
"$BIN" unlearn --model "$tmp/model" --unlearn FT --unlearn_epochs 1 --class_to_replace 3 \
  --dataset digits "${common[@]}" --save_dir "$tmp/ft"
cp "$tmp/ft/audit.json" "$SEEDS/audit-json/ft-class3.json"
"$BIN" unlearn --model "$tmp/model" --unlearn GA --unlearn_epochs 1 --indexes_to_replace --forget_fraction 0.05 \
  --dataset digits "${common[@]}" --save_dir "$tmp/ga"
cp "$tmp/ga/audit.json" "$SEEDS/audit-json/ga-random5pc.json"
ls -l "$SEEDS"/*
exit 0
}
