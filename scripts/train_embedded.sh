#!/usr/bin/env bash
# The embedded default, every stage, each resumable: run it again (with larger minutes) to continue.
#
#   scripts/train_embedded.sh VAE_MINUTES FIT_MINUTES [EVAL_SCENES] [POOL_SCENES]
#
# 1. the VAE (configs/embedded-vae.yaml), 2. the base pipeline (caption tokenizer, frozen text encoder),
# 3. the transformer on a scene pool (configs/embedded.yaml), 4. export to runs/embedded-export,
# 5. the ground-truth preset evaluation of the export. Minutes are each stage's training time in this invocation.
set -euo pipefail
VAE_MINUTES=${1:-4}
FIT_MINUTES=${2:-20}
EVAL_SCENES=${3:-8}
POOL=${4:+--pool-scenes $4}
RECAMMASTER=${RECAMMASTER:-recammaster}
VAE_CONFIG=${VAE_CONFIG:-configs/embedded-vae.yaml}   # other recipes (a CPU smoke test) through the environment
FIT_CONFIG=${FIT_CONFIG:-configs/embedded.yaml}
SIZE=${SIZE:-128}

$RECAMMASTER train vae --config "$VAE_CONFIG" --max-minutes "$VAE_MINUTES" --no-progress
if [ ! -f runs/embedded-base/model_index.json ]; then
    $RECAMMASTER train embedded-base --vae runs/embedded-vae/vae -o runs/embedded-base
fi
$RECAMMASTER train fit --config "$FIT_CONFIG" --max-minutes "$FIT_MINUTES" --no-progress $POOL
last=$(ls runs/embedded/checkpoints/step*.ckpt | sed 's/.*step\([0-9]*\)\.ckpt/\1/' | sort -n | tail -1)
$RECAMMASTER train export --base runs/embedded-base --checkpoint "runs/embedded/checkpoints/step$last.ckpt" \
    -o runs/embedded-export --height "$SIZE" --width "$SIZE" --steps 16 --guidance 1 --overwrite
$RECAMMASTER eval synthetic --model-dir runs/embedded-export --scenes "$EVAL_SCENES" -o runs/embedded-eval \
    --overwrite --no-progress
