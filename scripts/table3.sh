#!/usr/bin/env bash
# The paper's Table 3 at small scale (docs/table3.md): train frame-, channel- and view-axis conditioning with the
# same budget (configs/table3.yaml) and evaluate each on held-out synthetic scenes against the ground truth.
#
#   scripts/table3.sh [EVAL_SCENES] [CONDITIONING ...]
#
# Needs runs/embedded-base, the second release's VAE and text path (8x latents, as configs/table3.yaml's model):
#     scripts/second_release.sh && recammaster train embedded-base --vae runs/embedded-8x/vae \
#     --text-from runs/embedded-8x -o runs/embedded-base
# Each run resumes where it stopped; evaluation reports go to runs/table3-<conditioning>-eval.
set -euo pipefail
EVAL_SCENES=${1:-3}
shift || true
RECAMMASTER=${RECAMMASTER:-recammaster}
CONDITIONINGS=("$@")
if [ ${#CONDITIONINGS[@]} -eq 0 ]; then CONDITIONINGS=(frame channel view); fi
for c in "${CONDITIONINGS[@]}"; do
    $RECAMMASTER train fit --config configs/table3.yaml --conditioning "$c" -o "runs/table3-$c" --no-progress
    if [ "$EVAL_SCENES" != 0 ]; then
        last=$(ls runs/table3-$c/checkpoints/step*.ckpt | sed 's/.*step\([0-9]*\)\.ckpt/\1/' | sort -n | tail -1)
        $RECAMMASTER eval synthetic --model-dir runs/embedded-base --checkpoint "runs/table3-$c/checkpoints/step$last.ckpt" \
            --scenes "$EVAL_SCENES" --size 128 --steps 16 --guidance 1 -o "runs/table3-$c-eval" --overwrite \
            --no-progress --no-videos
    fi
done
