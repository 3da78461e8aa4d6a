#!/usr/bin/env bash
# Do the characters keep their motion after a change of loss or data? Trains fine-tuning runs of the shipped
# transformer side by side on one GPU, exports them and scores them beside the shipped model with
# scripts/measure_models.sh (its runs/*.json and runs/eval-*/report.md; EVAL=0 skips `eval synthetic`).
# Runs that share a pool file wait for the first to write it; runs with pools of their own render them at once.
#
#   scripts/motion_test.sh [MINUTES [CONFIG ...]]   # one GPU; resumable: run it again to go on (MINUTES caps a chunk)
#
# Session 14: configs/embedded-4x4c-chars16.yaml and -chars16-flat.yaml (the default); session 15:
# configs/embedded-4x4c-walkers.yaml and -walkers-still.yaml, then -still-sources.yaml and -still-sources-chars4.yaml.
# Session 16: configs/embedded-4x4c-tripod.yaml and -tripod-chars16.yaml (every source stands still). Session 17:
# configs/embedded-fine.yaml (96x96 frames, 2x2 patches; each model is measured at its own frame size).
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
        --model-config "$(setting "$run" model_config)" --height "$(setting "$run" height)" \
        --width "$(setting "$run" width)" -o "runs/$run-export" --overwrite
    models+=("runs/$run-export")
done
scripts/measure_models.sh "${models[@]}"
