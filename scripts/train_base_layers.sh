#!/usr/bin/env bash
# Reproduces facecodec/weights/base_learned_r{1..5}.npz (+ .json with validation figures).
# Needs data/faces from `python -m facecodec.train.prepare` (~15 min on 2 cores). ~3 min per rate point.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
for point in "1 0.004" "2 0.002" "3 0.001" "4 0.0005" "5 0.00025"; do
  set -- $point
  $PY -m facecodec.train.feature_codec --rate-id "$1" --lmbda "$2"
done
