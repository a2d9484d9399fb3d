#!/usr/bin/env bash
# GPU check: full-size franka_f5_h3 trainer at batch 8/16/32 (bf16) and 32 (fp32), one table.
# Needs only python3 with torch, torchvision and numpy (no install). Writes $OUT/gpu_check.json
# when OUT is set, else bench/results/gpu_check.json.
set -uo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total,driver_version,temperature.gpu,power.draw --format=csv,noheader || true
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD"
out="${OUT:-bench/results}/gpu_check.json"
python3 bench/gpu_check.py --out "$out" "$@"
