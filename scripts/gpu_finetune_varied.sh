#!/usr/bin/env bash
# Fine-tune the committed N=96 enhancement coders (profile `scalable` and its single-layer reference)
# on varied faces: a `facecodec.train.pack --cfp ...` pack (LFW/CelebA/AT&T training identities + CFP
# 001-250, in-the-wild and profile photos) plus one camera-like degraded copy of every training face
# (`--augment`). Both jobs start from the exported weights in facecodec/weights/ (no checkpoint
# needed) and run side by side on one GPU; the same command runs on CPU with DEVICE=cpu (slowly).
#
#   scripts/gpu_finetune_varied.sh [FACES] [RUNS] [DEVICE] [MINUTES]
#
# Export and validation afterwards (CPU): python -m facecodec.train.enhancement --name scalable_varied
# --texture recognition --export (and --name single96_varied --single-layer --export).
set -euo pipefail
FACES=${1:-.gpu/varied_faces.npz}
RUNS=${2:-runs}
DEVICE=${3:-cuda}
MINUTES=${4:-0}
mkdir -p "$RUNS/logs"
common=(--faces "$FACES" --runs "$RUNS" --device "$DEVICE" --resume --channels 96 --augment
        --lr 1e-4 --steps 9000 --max-minutes "$MINUTES")
W=facecodec/weights
python -m facecodec.train.enhancement --name scalable_varied --texture recognition \
  --init "$W/enhancement_scalable_ft.npz" "${common[@]}" >>"$RUNS/logs/enhancement_scalable_varied.log" 2>&1 &
python -m facecodec.train.enhancement --name single96_varied --single-layer \
  --init "$W/enhancement_single96_ft.npz" "${common[@]}" >>"$RUNS/logs/enhancement_single96_varied.log" 2>&1 &
wait
echo "all jobs finished"
