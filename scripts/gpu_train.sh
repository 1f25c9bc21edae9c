#!/usr/bin/env bash
# Train the texture generators (recognition-only and multitask base), the conditional enhancement
# coders and the single-layer reference codec, concurrently on one GPU (~16 min on an H100). Resumable: rerun it and every
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
texture() { python -m facecodec.train.texture "${common[@]}" --epochs 25 "$@"; }
enhancement() { python -m facecodec.train.enhancement "${common[@]}" "$@"; }

# The default profile's models: generator_recognition, enhancement_scalable (N=96) and the single-layer
# reference (N=96). The ablation: multitask base + generator, and N=64 coders for both chains.
enhancement --name single96 --single-layer --channels 96 --steps 20000 >>"$RUNS/logs/enhancement_single96.log" 2>&1 &
(texture --name recognition >>"$RUNS/logs/texture_recognition.log" 2>&1 && {
  enhancement --name scalable --texture recognition --channels 96 --steps 20000 \
    >>"$RUNS/logs/enhancement_scalable.log" 2>&1 &
  enhancement --name recognition --texture recognition --channels 64 --steps 12000 \
    >>"$RUNS/logs/enhancement_recognition.log" 2>&1 &
  wait
}) &
(texture --name multitask --multitask >>"$RUNS/logs/texture_multitask.log" 2>&1 &&
  enhancement --name multitask --texture multitask --channels 64 --steps 12000 \
    >>"$RUNS/logs/enhancement_multitask.log" 2>&1) &
wait
# Fine-tune both N=96 coders from those weights at a lower rate (the committed *_ft weights).
enhancement --name scalable_ft --texture recognition --channels 96 --steps 12000 --lr 1e-4 \
  --init "$RUNS/enhancement_scalable/checkpoint.pt" >>"$RUNS/logs/enhancement_scalable_ft.log" 2>&1 &
enhancement --name single96_ft --single-layer --channels 96 --steps 12000 --lr 1e-4 \
  --init "$RUNS/enhancement_single96/checkpoint.pt" >>"$RUNS/logs/enhancement_single96_ft.log" 2>&1 &
wait
echo "all jobs finished"
