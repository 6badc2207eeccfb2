#!/usr/bin/env bash
# The gpu preset: the full grid (ALFWorld valid_unseen 134 games, TextWorldExpress twc, WebShop, HotPotQA; all
# objectives, 3 seeds), one runner per environment at once, sized for <= 9 minutes on one H200 with 16 CPU
# cores. Everything is written under one folder (default: reproduce-gpu/):
#   OUT/work/     teacher, data, caches, students, episodes (large; not for the repository)
#   OUT/results/  the small result JSON files, plots and README per environment
#   OUT/logs/     one log per environment (progress with time estimates)
# At the end the results are copied into docs/results/ and its READMEs re-rendered, ready to commit.
# Resumable: run it again after an interruption; finished stages are skipped.
# Status: ready, NOT yet run on a GPU (none was available when it was written).
#
#   bash examples/reproduce/gpu.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-reproduce-gpu}
PY=${PY:-.venv/bin/python}
export HF_HUB_OFFLINE=1 PATH="$(dirname "$PY"):$PATH"
mkdir -p "$OUT/logs" "$OUT/results"
"$PY" -m sadcli.models --ensure smollm2-135m
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/logs/device.txt"
start=$(date +%s)
pids=()
for env in alfworld twc webshop hotpotqa; do
  "$PY" examples/reproduce/run.py examples/reproduce/gpu.toml --env "$env" --workdir "$OUT/work" \
      --results "$OUT/results" > "$OUT/logs/$env.log" 2>&1 &
  pids+=($!)
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
echo "gpu preset: $(( ($(date +%s) - start) / 60 )) min, exit $status (logs in $OUT/logs/)" | tee -a "$OUT/logs/device.txt"
for d in "$OUT"/results/*/; do
  env=$(basename "$d")
  mkdir -p "docs/results/$env"
  cp -r "$d/gpu" "docs/results/$env/" 2>/dev/null || true
  "$PY" examples/reproduce/render.py "docs/results/$env"
done
exit $status
