#!/usr/bin/env bash
# The embedded default, every stage, each resumable: run it again (with more minutes) to continue.
#
#   scripts/train_embedded.sh VAE_MINUTES VAE_LONG_MINUTES FIT_MINUTES REFINE_MINUTES [EVAL_SCENES] [POOL_SCENES]
#
# 1. the VAE on short windows (configs/embedded-vae.yaml), 2. the VAE on whole clips (configs/embedded-vae-long.yaml),
# 3. the base pipeline (caption tokenizer, frozen text encoder) from stage 2's VAE, 4. the transformer on a scene
# pool (configs/embedded.yaml, 16,000 steps), 5. the transformer from 4's last weights on a new pool, its learning
# rate decaying to 0 (configs/embedded-refine.yaml, 14,000 steps), 6. export of the last weights to
# runs/embedded-export and the ground-truth preset evaluation of the export on EVAL_SCENES held-out scenes. Minutes
# are each stage's training time in this invocation; a stage given 0 minutes is skipped, and so are export and
# evaluation when EVAL_SCENES is 0.
set -euo pipefail
VAE_MINUTES=${1:-8}
VAE_LONG_MINUTES=${2:-4}
FIT_MINUTES=${3:-20}
REFINE_MINUTES=${4:-18}
EVAL_SCENES=${5:-8}
POOL=${6:+--pool-scenes $6}
RECAMMASTER=${RECAMMASTER:-recammaster}
VAE_CONFIG=${VAE_CONFIG:-configs/embedded-vae.yaml}   # other recipes (a CPU smoke test) through the environment
VAE_LONG_CONFIG=${VAE_LONG_CONFIG:-configs/embedded-vae-long.yaml}
FIT_CONFIG=${FIT_CONFIG:-configs/embedded.yaml}
REFINE_CONFIG=${REFINE_CONFIG:-configs/embedded-refine.yaml}
SIZE=${SIZE:-128}
TEXT_FROM=${TEXT_FROM-recammaster/assets/embedded}  # the shipped model's text path; TEXT_FROM= builds a new one

if [ "$VAE_MINUTES" != 0 ]; then
    $RECAMMASTER train vae --config "$VAE_CONFIG" --max-minutes "$VAE_MINUTES" --no-progress
fi
if [ "$VAE_LONG_MINUTES" != 0 ]; then
    $RECAMMASTER train vae --config "$VAE_LONG_CONFIG" --max-minutes "$VAE_LONG_MINUTES" --no-progress
fi
if [ ! -f runs/embedded-base/model_index.json ]; then
    $RECAMMASTER train embedded-base --vae runs/embedded-vae-long/vae ${TEXT_FROM:+--text-from "$TEXT_FROM"} \
        -o runs/embedded-base
fi
if [ "$FIT_MINUTES" != 0 ]; then
    $RECAMMASTER train fit --config "$FIT_CONFIG" --max-minutes "$FIT_MINUTES" --no-progress $POOL
fi
if [ "$REFINE_MINUTES" != 0 ]; then
    $RECAMMASTER train fit --config "$REFINE_CONFIG" --max-minutes "$REFINE_MINUTES" --no-progress $POOL
fi
if [ "$EVAL_SCENES" != 0 ]; then
    run=runs/embedded-refine  # stage 5's weights, else stage 4's
    [ -d $run/checkpoints ] || run=runs/embedded
    last=$(ls $run/checkpoints/step*.ckpt | sed 's/.*step\([0-9]*\)\.ckpt/\1/' | sort -n | tail -1)
    $RECAMMASTER train export --base runs/embedded-base --checkpoint "$run/checkpoints/step$last.ckpt" \
        -o runs/embedded-export --height "$SIZE" --width "$SIZE" --steps 16 --guidance 1 --overwrite
    $RECAMMASTER eval synthetic --model-dir runs/embedded-export --scenes "$EVAL_SCENES" -o runs/embedded-eval \
        --overwrite --no-progress
fi
