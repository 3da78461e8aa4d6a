#!/usr/bin/env bash
# Do the characters keep their motion when the loss weighs them more (configs/embedded-4x4c-chars16.yaml), and
# when every noise level counts alike too (configs/embedded-4x4c-chars16-flat.yaml)? Trains both side by side on one
# GPU (the first renders the shared pool, the second starts once it is written), then exports them and scores them
# beside the shipped model: `eval synthetic` on held-out scenes 1-3 (runs/eval-*/report.md) and
# scripts/source_use.py (runs/source_use.json).
#
#   scripts/motion_test.sh [MINUTES]    # one GPU; resumable: run it again to go on (MINUTES caps each run's chunk)
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-9}
runs=(embedded-4x4c-chars16 embedded-4x4c-chars16-flat)
pool=runs/embedded-4x4c-pool-seed4.pt
mkdir -p runs
train() {
    python -m recammaster.cli train fit --config "configs/$1.yaml" --max-minutes "$minutes" --no-progress \
        >> "runs/$1.log" 2>&1
}
train "${runs[0]}" &
first=$!
while [ ! -f "$pool" ] && kill -0 "$first" 2>/dev/null; do sleep 5; done
train "${runs[1]}" &
second=$!
wait "$first"
wait "$second"
models=(recammaster/assets/embedded)
for run in "${runs[@]}"; do
    checkpoint=runs/$run/checkpoints/step5000.ckpt
    if [ ! -f "$checkpoint" ]; then
        echo "$run: training not finished: run $0 again to go on"
        exit 0
    fi
    python -m recammaster.cli train export --base recammaster/assets/embedded --checkpoint "$checkpoint" \
        -o "runs/$run-export" --overwrite
    models+=("runs/$run-export")
done
for model in "${models[@]}"; do
    python -m recammaster.cli eval synthetic --model-dir "$model" --scenes 3 --no-videos --no-progress \
        -o "runs/eval-$(basename "$model")" --overwrite
done
python scripts/source_use.py "${models[@]/#/--model-dir=}" -o runs/source_use.json
