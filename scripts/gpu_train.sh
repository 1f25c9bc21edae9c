#!/usr/bin/env bash
# Train the texture generators (recognition-only and multitask base), the two conditional enhancement
# coders and the single-layer reference codec, concurrently on one GPU. Resumable: rerun it and every
# job continues from its checkpoint. The same commands run on CPU with --device cpu (slower).
#
#   scripts/gpu_train.sh [FACES] [RUNS] [DEVICE]     e.g. scripts/gpu_train.sh .gpu/train_faces.npz runs cuda
#
# FACES is a `python -m facecodec.train.pack` file or the data/faces cache. Logs: RUNS/logs/*.log.
# Export and validation afterwards (CPU, onnxruntime): see facecodec/weights/README.md.
set -euo pipefail
FACES=${1:-data/faces}
RUNS=${2:-runs}
DEVICE=${3:-cuda}
mkdir -p "$RUNS/logs"
common=(--faces "$FACES" --runs "$RUNS" --device "$DEVICE" --resume)
texture() { python -m facecodec.train.texture "${common[@]}" --epochs 25 --max-minutes 4.5 "$@"; }
enhancement() { python -m facecodec.train.enhancement "${common[@]}" "$@"; }

enhancement --name single --single-layer --steps 14000 --max-minutes 21 >>"$RUNS/logs/enhancement_single.log" 2>&1 &
(texture --name recognition >>"$RUNS/logs/texture_recognition.log" 2>&1 &&
  enhancement --name recognition --texture recognition --steps 12000 --max-minutes 16.5 \
    >>"$RUNS/logs/enhancement_recognition.log" 2>&1) &
(texture --name multitask --multitask >>"$RUNS/logs/texture_multitask.log" 2>&1 &&
  enhancement --name multitask --texture multitask --steps 12000 --max-minutes 16.5 \
    >>"$RUNS/logs/enhancement_multitask.log" 2>&1) &
wait
echo "all jobs finished"
