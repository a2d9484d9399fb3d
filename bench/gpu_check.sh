#!/usr/bin/env bash
# GPU check: bench fast, fast decoder_every=4, decoder off and reference at batch 8/16/32 (full
# franka_f5_h3 size) with TFLOP/s against the card's peak, the step's profile at batch 32
# (profile_<gpu>.txt/.json next to the JSON), the 16 GiB proof (a capped real run at batch 32
# and a capped probe), the feature-cache equivalence, a short supervised run with telemetry
# and one CEM plan at the public defaults, the same run on every GPU where there are two or
# more (DDP); one table at the end. Parts start while --budget-s (default 450 s) lasts.
# Needs python3 with torch, torchvision, numpy, rich, click, nvidia-ml-py; sqlite-utils and its
# small dependencies are installed from .whl/ when present (the lent machine has no network).
set -uo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total,driver_version,temperature.gpu,power.draw --format=csv,noheader || true
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
python3 bench/gpu_check.py --out "${OUT:-bench/results}/gpu_check.json" "$@"
