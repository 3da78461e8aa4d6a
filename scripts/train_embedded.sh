#!/usr/bin/env bash
# The embedded default, every stage, each resumable: run it again (with more minutes) to continue.
#
#   scripts/train_embedded.sh VAE VAE_LONG VAE_DECODER FIT REFINE REFINE_2 [EVAL_SCENES] [POOL_SCENES]
#
# 1. the VAE on short windows (configs/embedded-vae.yaml), 2. the VAE on whole clips (configs/embedded-vae-long.yaml),
# 3. its decoder alone, the encoder and so the latents unchanged (configs/embedded-vae-decoder.yaml), 4. the base
# pipeline (caption tokenizer, frozen text encoder) from stage 3's VAE, 5. the transformer on a scene pool
# (configs/embedded.yaml, 16,000 steps), 6. the transformer from 5's last weights on a new pool, its learning rate
# decaying to 0 (configs/embedded-refine.yaml, 14,000 steps), 7. once more from 6's last weights on a third pool
# (configs/embedded-refine-2.yaml, 5,000 steps), 8. export of the last weights to runs/embedded-export and the
# ground-truth preset evaluation of the export on EVAL_SCENES held-out scenes. The first six arguments are each
# stage's training minutes in this invocation; a stage given 0 minutes is skipped, and so are export and
# evaluation when EVAL_SCENES is 0.
#
# LAYOUT=4x runs the recipe of the VAE with 4x latents instead (docs/embedded.md, "The 4x VAE"): its three VAE
# stages (configs/embedded-4x-vae*.yaml: whole clips, 17-frame windows, whole clips), the base from its last
# stage, and two transformer stages (configs/embedded-4x.yaml, warm-started from the second release's blocks, and
# configs/embedded-4x-refine.yaml); REFINE_2 is then skipped. BASE_VAE names another VAE for its base (a VAE
# trained elsewhere, say). LAYOUT=4x4c runs the recipe of the 4x VAE with 4 latent channels: one VAE stage
# (configs/embedded-4x4c-vae.yaml, warm-started from the 4x VAE its warm_start names), its decoder trained on with
# the characters weighed more (VAE_DECODER: configs/embedded-4x4c-characters-vae-decoder.yaml; the latents stay
# the first stage's), the base from that VAE, and three transformer stages (configs/embedded-4x4c.yaml, -refine.yaml
# and, as REFINE_2, -twins.yaml: pairs repeated on scenes whose characters stand still); VAE_LONG is skipped.
set -euo pipefail
VAE_MINUTES=${1:-8}
VAE_LONG_MINUTES=${2:-4}
VAE_DECODER_MINUTES=${3:-16}
FIT_MINUTES=${4:-20}
REFINE_MINUTES=${5:-18}
REFINE_2_MINUTES=${6:-7}
EVAL_SCENES=${7:-8}
POOL=${8:+--pool-scenes $8}
RECAMMASTER=${RECAMMASTER:-recammaster}
if [ "${LAYOUT:-8x}" = 4x ]; then
    PREFIX=embedded-4x
    STAGES=(vae vae-windows vae-whole "" refine)  # config names after the prefix; vae-whole's VAE makes the base
    BASE_VAE=${BASE_VAE:-runs/embedded-4x-vae-whole/vae}
    REFINE_2_MINUTES=0
elif [ "${LAYOUT:-8x}" = 4x4c ]; then
    PREFIX=embedded-4x4c
    STAGES=(vae "" characters-vae-decoder "" refine twins)
    BASE_VAE=${BASE_VAE:-runs/embedded-4x4c-characters-vae-decoder/vae}  # the first stage's latents, its decoder
    VAE_LONG_MINUTES=0
else
    PREFIX=embedded
    STAGES=(vae vae-long vae-decoder "" refine refine-2)
    BASE_VAE=runs/embedded-vae-decoder/vae  # stage 3 kept stage 2's encoder: its VAE serves both
fi
config() { echo "configs/$PREFIX${1:+-$1}.yaml"; }
VAE_CONFIG=${VAE_CONFIG:-$(config "${STAGES[0]}")}  # other recipes (a CPU smoke test) through the environment
VAE_LONG_CONFIG=${VAE_LONG_CONFIG:-$(config "${STAGES[1]}")}
VAE_DECODER_CONFIG=${VAE_DECODER_CONFIG:-$(config "${STAGES[2]}")}
FIT_CONFIG=${FIT_CONFIG:-$(config "${STAGES[3]}")}
REFINE_CONFIG=${REFINE_CONFIG:-$(config "${STAGES[4]}")}
REFINE_2_CONFIG=${REFINE_2_CONFIG:-$(config "${STAGES[5]:-}")}
BASE=runs/$PREFIX-base
SIZE=${SIZE:-128}
TEXT_FROM=${TEXT_FROM-recammaster/assets/embedded}  # the shipped model's text path; TEXT_FROM= builds a new one

if [ "$VAE_MINUTES" != 0 ]; then
    $RECAMMASTER train vae --config "$VAE_CONFIG" --max-minutes "$VAE_MINUTES" --no-progress
fi
if [ "$VAE_LONG_MINUTES" != 0 ]; then
    $RECAMMASTER train vae --config "$VAE_LONG_CONFIG" --max-minutes "$VAE_LONG_MINUTES" --no-progress
fi
if [ "$VAE_DECODER_MINUTES" != 0 ]; then
    $RECAMMASTER train vae --config "$VAE_DECODER_CONFIG" --max-minutes "$VAE_DECODER_MINUTES" --no-progress
fi
if [ ! -f $BASE/model_index.json ]; then
    $RECAMMASTER train embedded-base --vae $BASE_VAE ${TEXT_FROM:+--text-from "$TEXT_FROM"} -o $BASE
fi
if [[ "$(sed -n 's/^warm_start: *//p' "$FIT_CONFIG")" == runs/embedded-8x/* ]] && [ "$FIT_MINUTES" != 0 ]; then
    "$(dirname "$0")/second_release.sh"  # the 4x layouts' blocks start from the second release's (runs/embedded-8x)
fi
if [ "$FIT_MINUTES" != 0 ]; then
    $RECAMMASTER train fit --config "$FIT_CONFIG" --max-minutes "$FIT_MINUTES" --no-progress $POOL
fi
if [ "$REFINE_MINUTES" != 0 ]; then
    $RECAMMASTER train fit --config "$REFINE_CONFIG" --max-minutes "$REFINE_MINUTES" --no-progress $POOL
fi
if [ "$REFINE_2_MINUTES" != 0 ]; then
    $RECAMMASTER train fit --config "$REFINE_2_CONFIG" --max-minutes "$REFINE_2_MINUTES" --no-progress $POOL
fi
if [ "$EVAL_SCENES" != 0 ]; then
    run=  # the last transformer stage that ran
    for stage in "$FIT_CONFIG" "$REFINE_CONFIG" ${STAGES[5]:+"$REFINE_2_CONFIG"}; do
        folder=$(sed -n 's/^output_dir: *//p' "$stage")
        if [ -d "$folder/checkpoints" ]; then run=$folder; fi
    done
    [ -n "$run" ] || { echo "no transformer stage has checkpoints yet: train one first" >&2; exit 1; }
    last=$(ls $run/checkpoints/step*.ckpt | sed 's/.*step\([0-9]*\)\.ckpt/\1/' | sort -n | tail -1)
    $RECAMMASTER train export --base $BASE --checkpoint "$run/checkpoints/step$last.ckpt" \
        -o runs/$PREFIX-export --height "$SIZE" --width "$SIZE" --steps 16 --guidance 1 --overwrite
    $RECAMMASTER eval synthetic --model-dir runs/$PREFIX-export --scenes "$EVAL_SCENES" -o runs/$PREFIX-eval \
        --overwrite --no-progress
fi
