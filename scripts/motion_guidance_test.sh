#!/usr/bin/env bash
# What does motion guidance do to a model's re-renders? For every saved pipeline and every motion guidance scale,
# `recammaster eval synthetic` on held-out scenes 1-3 (runs/guided/eval-MODEL-gG/report.md) and
# scripts/source_use.py --motion on scenes 1-10 (runs/guided/motion-MODEL-gG.json), all at once on one GPU; the
# tables are printed last. Each model runs at its own frame size and steps.
#
#   scripts/motion_guidance_test.sh "1 2 3" MODEL_DIR ...   # e.g. recammaster/assets/embedded runs/mixed-export
#   STEPS=12 scripts/motion_guidance_test.sh "3" MODEL_DIR  # 12 sampling steps (names end in -s12)
set -euo pipefail
cd "$(dirname "$0")/.."
scales=$1
shift
models=("$@")
[ ${#models[@]} -gt 0 ] || { echo "usage: $0 \"SCALE ...\" MODEL_DIR ..." >&2; exit 2; }
mkdir -p runs/guided
steps=() && [ -n "${STEPS:-}" ] && steps=(--steps "$STEPS")
pids=()
for model in "${models[@]}"; do
    for scale in $scales; do
        name=$(basename "$model")-g$scale${STEPS:+-s$STEPS}
        python -m recammaster.cli eval synthetic --model-dir "$model" --scenes 3 --motion-guidance "$scale" \
            "${steps[@]}" --no-videos --no-progress -o "runs/guided/eval-$name" --overwrite \
            > "runs/guided/eval-$name.log" 2>&1 &
        pids+=($!)
        python scripts/source_use.py --model-dir "$model" --motion --scenes 10 --motion-guidance "$scale" \
            "${steps[@]}" -o "runs/guided/motion-$name.json" > "runs/guided/motion-$name.log" 2>&1 &
        pids+=($!)
    done
done
for pid in "${pids[@]}"; do wait "$pid"; done
for model in "${models[@]}"; do
    for scale in $scales; do
        name=$(basename "$model")-g$scale${STEPS:+-s$STEPS}
        echo "## $name"
        grep "^| all" "runs/guided/eval-$name/report.md"
        tail -1 "runs/guided/motion-$name.log"
    done
done
