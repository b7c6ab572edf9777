#!/usr/bin/env bash
# Rebuild the shipped default model and index from ambient13 with the trainer's default settings:
#   models/edge-asc-amb13.onnx and index/edge-asc-amb13/
# Usage: scripts/build-default-artifacts.sh [DATA_DIR] [RUN_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${1:-../shared/data/ambient13}"
RUN="${2:-runs/default-amb13}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"

start=$(date +%s)
edge-asc train --data "$DATA" --out "$RUN" --config configs/default-amb13.yaml --threads 2 --export models/edge-asc-amb13.onnx
trained=$(date +%s)
edge-asc build-index --model models/edge-asc-amb13.onnx --data "$DATA" --out index/edge-asc-amb13
done_=$(date +%s)

echo "train + export: $((trained - start)) s; build-index: $((done_ - trained)) s"
du -b models/edge-asc-amb13.onnx index/edge-asc-amb13/* | awk '{printf "%10.2f MB  %s\n", $1/1e6, $2}'
du -cb models/edge-asc-amb13.onnx index/edge-asc-amb13 | tail -1 | awk '{printf "total %.2f MB\n", $1/1e6}'
sha256sum models/edge-asc-amb13.onnx
