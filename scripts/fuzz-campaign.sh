#!/usr/bin/env bash
# The fuzz campaign of docs/fuzzing.md: every target of examples/fuzz.rs for SECONDS (default
# 600) each, one after the other, at low priority, logging to LOGS/<target>.log (default
# /work/fuzz-logs); crashing inputs go to LOGS/crashes/. Runs a copy of the fuzz binary, so a
# rebuild meanwhile changes nothing. Then: python3 scripts/fuzz-table.py LOGS > table.
#   nohup scripts/fuzz-campaign.sh > /dev/null 2>&1 &
{
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${SECONDS_EACH:-600}
LOGS=${LOGS:-/work/fuzz-logs}
SEED=${SEED:-1}
TARGETS=${TARGETS:-"idx gzip cifar-bin cifar-pickle mat5 safetensors torch-pickle sweep-toml job-json audit-json"}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
mkdir -p "$LOGS"
BIN="$LOGS/fuzz-bin"
cp target/release/examples/fuzz "$BIN"
git rev-parse HEAD > "$LOGS/commit"
git status --short src examples > "$LOGS/dirty"
for t in $TARGETS; do
  echo "START target=$t date=$(date -u +%FT%TZ) seconds=$SECONDS_EACH seed=$SEED" > "$LOGS/$t.log"
  nice -n 15 "$BIN" --target "$t" --seconds "$SECONDS_EACH" --seed "$SEED" \
    --seeds tests/fuzz-seeds --crashes "$LOGS/crashes" >> "$LOGS/$t.log" 2>&1 || echo "FAILED rc=$?" >> "$LOGS/$t.log"
  echo "END date=$(date -u +%FT%TZ)" >> "$LOGS/$t.log"
done
exit 0
}
