#!/usr/bin/env bash
# The paper's Table 3 at small scale (docs/table3.md): train frame-, channel- and view-axis conditioning with the
# same budget (configs/table3.yaml, or CONFIG) and evaluate each on held-out synthetic scenes against the ground truth.
#
#   [CONFIG=configs/table3-long.yaml] [CASES=1] scripts/table3.sh [EVAL_SCENES] [CONDITIONING ...]
#
# configs/table3.yaml needs runs/embedded-base, the second release's VAE and text path (8x latents, as its model):
#     scripts/second_release.sh && recammaster train embedded-base --vae runs/embedded-8x/vae \
#     --text-from runs/embedded-8x -o runs/embedded-base
# (configs/table3-long.yaml names its own base in its header.) Each run resumes where it stopped; for a config
# NAME.yaml the runs are runs/NAME-<conditioning>, their evaluation reports runs/NAME-<conditioning>-eval, and with
# CASES=1 every result is also kept as a case in runs/NAME-<conditioning>-cases (PyAV needed), for the paper's
# metrics: recammaster eval score runs/NAME-<conditioning>-cases -o runs/NAME-<conditioning>-scored.
set -euo pipefail
EVAL_SCENES=${1:-3}
shift || true
RECAMMASTER=${RECAMMASTER:-recammaster}
CONFIG=${CONFIG:-configs/table3.yaml}
NAME=$(basename "$CONFIG" .yaml)
BASE=$(sed -n 's/^model_dir: *//p' "$CONFIG")
CONDITIONINGS=("$@")
if [ ${#CONDITIONINGS[@]} -eq 0 ]; then CONDITIONINGS=(frame channel view); fi
for c in "${CONDITIONINGS[@]}"; do
    run=runs/$NAME-$c
    $RECAMMASTER train fit --config "$CONFIG" --conditioning "$c" -o "$run" --no-progress
    if [ "$EVAL_SCENES" != 0 ]; then
        last=$(ls "$run"/checkpoints/step*.ckpt | sed 's/.*step\([0-9]*\)\.ckpt/\1/' | sort -n | tail -1)
        $RECAMMASTER eval synthetic --model-dir "$BASE" --checkpoint "$run/checkpoints/step$last.ckpt" \
            --scenes "$EVAL_SCENES" --size 128 --steps 16 --guidance 1 -o "$run-eval" --overwrite \
            --no-progress --no-videos ${CASES:+--cases "$run-cases"}
    fi
done
