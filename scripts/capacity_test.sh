#!/usr/bin/env bash
# Is the embedded transformer at its capacity? Trains the 12-block control of the -long run
# (configs/embedded-4x4c-deep.yaml: the shipped six blocks, six more starting as the identity), exports it and
# scores it beside the shipped model on held-out scenes 1-3 (report.md / report.json under runs/eval-*).
#
#   scripts/capacity_test.sh [MINUTES]    # one GPU; resumable: run it again to go on (MINUTES caps this chunk)
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-9}
python -m recammaster.cli train fit --config configs/embedded-4x4c-deep.yaml --max-minutes "$minutes" --no-progress
checkpoint=runs/embedded-4x4c-deep/checkpoints/step8000.ckpt
if [ ! -f "$checkpoint" ]; then
    echo "training not finished: run $0 again to go on"
    exit 0
fi
python -m recammaster.cli train export --base recammaster/assets/embedded --checkpoint "$checkpoint" \
    --model-config embedded-4x4c-deep -o runs/embedded-4x4c-deep-export --overwrite
for model in recammaster/assets/embedded runs/embedded-4x4c-deep-export; do
    python -m recammaster.cli eval synthetic --model-dir "$model" --scenes 3 --no-videos --no-progress \
        -o "runs/eval-$(basename "$model")" --overwrite
done
