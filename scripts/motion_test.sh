#!/usr/bin/env bash
# Do the characters keep their motion after a change of loss or data? Trains fine-tuning runs of the shipped
# transformer side by side on one GPU, exports them and scores them beside the shipped model: scripts/source_use.py
# (runs/source_use.json; runs/source_use_still.json with a source camera that stands still; with --motion,
# runs/motion.json and runs/motion_still.json) and `eval synthetic` on held-out scenes 1-3, with their own sources
# and with sources that stand still (runs/eval-moving-*/report.md, runs/eval-still-*/report.md; skipped with EVAL=0).
# Runs that share a pool file wait for the first to write it; runs with pools of their own render them at once.
#
#   scripts/motion_test.sh [MINUTES [CONFIG ...]]   # one GPU; resumable: run it again to go on (MINUTES caps a chunk)
#
# Session 14: configs/embedded-4x4c-chars16.yaml and -chars16-flat.yaml (the default); session 15:
# configs/embedded-4x4c-walkers.yaml and -walkers-still.yaml, then -still-sources.yaml and -still-sources-chars4.yaml.
# Session 16: configs/embedded-4x4c-tripod.yaml and -tripod-chars16.yaml (every source stands still).
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-9}
shift || true
runs=("$@")
[ ${#runs[@]} -gt 0 ] || runs=(embedded-4x4c-chars16 embedded-4x4c-chars16-flat)
setting() { sed -n "s/^$2: *\([^ #]*\).*/\1/p" "configs/$1.yaml"; }
mkdir -p runs
pools=() pids=()
for run in "${runs[@]}"; do
    pool=$(setting "$run" pool_file)
    for earlier in "${!pools[@]}"; do  # a pool being rendered by an earlier run: wait for its file
        if [ "${pools[$earlier]}" = "$pool" ]; then
            while [ ! -f "$pool" ] && kill -0 "${pids[$earlier]}" 2>/dev/null; do sleep 5; done
        fi
    done
    python -m recammaster.cli train fit --config "configs/$run.yaml" --max-minutes "$minutes" --no-progress \
        >> "runs/$run.log" 2>&1 &
    pools+=("$pool") pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
models=(recammaster/assets/embedded)
for run in "${runs[@]}"; do
    checkpoint=runs/$run/checkpoints/step$(setting "$run" max_steps).ckpt
    if [ ! -f "$checkpoint" ]; then
        echo "$run: training not finished: run $0 again to go on"
        exit 0
    fi
    python -m recammaster.cli train export --base recammaster/assets/embedded --checkpoint "$checkpoint" \
        -o "runs/$run-export" --overwrite
    models+=("runs/$run-export")
done
# the measurements all at once: each is small next to the GPU
python scripts/source_use.py "${models[@]/#/--model-dir=}" -o runs/source_use.json > runs/source_use.log 2>&1 &
measures=($!)
python scripts/source_use.py "${models[@]/#/--model-dir=}" --still-source -o runs/source_use_still.json \
    > runs/source_use_still.log 2>&1 &
measures+=($!)
python scripts/source_use.py "${models[@]/#/--model-dir=}" --motion -o runs/motion.json > runs/motion_scores.log 2>&1 &
measures+=($!)
python scripts/source_use.py "${models[@]/#/--model-dir=}" --motion --still-source -o runs/motion_still.json \
    > runs/motion_still.log 2>&1 &
measures+=($!)
for model in "${models[@]}"; do
    [ "${EVAL:-1}" = 0 ] && break
    for source in moving still; do
        options=() && [ $source = still ] && options=(--still-source)
        name=runs/eval-$source-$(basename "$model")
        python -m recammaster.cli eval synthetic --model-dir "$model" --scenes 3 --no-videos --no-progress \
            "${options[@]}" -o "$name" --overwrite > "$name.log" 2>&1 &
        measures+=($!)
    done
done
for pid in "${measures[@]}"; do wait "$pid"; done
