#!/usr/bin/env bash
# The embedded default's second release (8x VAE, 2x2 patches; git commit 7799175) as a pipeline folder, from the
# repository's history: the transformer the 4x layouts' blocks start from (configs/embedded-4x*.yaml, warm_start)
# and the VAE and text path of the paper's Table 3 at small scale (docs/table3.md).
#
#   scripts/second_release.sh [FOLDER]     (default runs/embedded-8x; an existing folder is kept)
set -euo pipefail
RELEASE=7799175
FOLDER=${1:-runs/embedded-8x}
if [ -f "$FOLDER/model_index.json" ]; then exit 0; fi
mkdir -p "$FOLDER"
git archive "$RELEASE" recammaster/assets/embedded | tar -x --strip-components=3 -C "$FOLDER"
echo "wrote $FOLDER (the embedded default of commit $RELEASE)"
