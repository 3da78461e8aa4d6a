#!/usr/bin/env bash
# Do a saved pipeline's characters keep their motion, and what does it cost? Every measurement of sessions 14-17 at
# once (each is small next to a GPU): scripts/source_use.py (runs/source_use.json; runs/source_use_still.json with a
# source camera that stands still; with --motion, runs/motion.json and runs/motion_still.json) and `eval synthetic`
# on held-out scenes 1-3, with their own sources and with sources that stand still (runs/eval-moving-MODEL/report.md,
# runs/eval-still-MODEL/report.md; skipped with EVAL=0). Each model runs at its own frame size and steps.
#
#   scripts/measure_models.sh MODEL_DIR ...            # e.g. recammaster/assets/embedded runs/embedded-fine-export
#   STEPS=10 scripts/measure_models.sh MODEL_DIR ...   # sample with 10 steps instead (names end in -steps10)
set -euo pipefail
cd "$(dirname "$0")/.."
models=("$@")
[ ${#models[@]} -gt 0 ] || { echo "usage: $0 MODEL_DIR ..." >&2; exit 2; }
mkdir -p runs
tag=${STEPS:+-steps$STEPS}
steps=() && [ -n "${STEPS:-}" ] && steps=(--steps "$STEPS")
measures=()
if [ -z "${STEPS:-}" ]; then  # one step from pure noise: the number of sampling steps does not enter
    python scripts/source_use.py "${models[@]/#/--model-dir=}" -o runs/source_use.json > runs/source_use.log 2>&1 &
    measures+=($!)
    python scripts/source_use.py "${models[@]/#/--model-dir=}" --still-source -o runs/source_use_still.json \
        > runs/source_use_still.log 2>&1 &
    measures+=($!)
fi
python scripts/source_use.py "${models[@]/#/--model-dir=}" --motion "${steps[@]}" -o "runs/motion$tag.json" \
    > "runs/motion_scores$tag.log" 2>&1 &
measures+=($!)
python scripts/source_use.py "${models[@]/#/--model-dir=}" --motion --still-source "${steps[@]}" \
    -o "runs/motion_still$tag.json" > "runs/motion_still$tag.log" 2>&1 &
measures+=($!)
for model in "${models[@]}"; do
    [ "${EVAL:-1}" = 0 ] && break
    for source in moving still; do
        options=("${steps[@]}") && [ $source = still ] && options+=(--still-source)
        name=runs/eval-$source-$(basename "$model")$tag
        python -m recammaster.cli eval synthetic --model-dir "$model" --scenes 3 --no-videos --no-progress \
            "${options[@]}" -o "$name" --overwrite > "$name.log" 2>&1 &
        measures+=($!)
    done
done
for pid in "${measures[@]}"; do wait "$pid"; done
