#!/usr/bin/env bash
# Reproduces facecodec/weights/base_learned_r{1..9}.npz (+ .json with validation figures).
# r1-r5 were trained on the RANSAC-aligned cache, r6-r9 on the least-squares one (today's prepare).
# Needs data/faces from `python -m facecodec.train.prepare` (~15 min on 2 cores). ~3 min per rate point.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
for point in "1 0.004 128" "2 0.002 128" "3 0.001 128" "4 0.0005 128" "5 0.00025 128" "6 0.0028 32" "7 0.0012 64" \
    "8 0.0007 64" "9 0.0006 96"; do
  set -- $point
  $PY -m facecodec.train.feature_codec --rate-id "$1" --lmbda "$2" --latent "$3"
done
