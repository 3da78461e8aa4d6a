"""The fast mode's cost: reusing the source tokens' keys and values for N steps, on held-out synthetic scenes.

    python benchmarks/source_reuse.py [--scenes 1] [--reuse 1 2 4 16] [--model-dir DIR] [--device cpu]

For each N, the embedded default (or ``--model-dir``) re-renders held-out scenes along the ten presets
(``recammaster eval synthetic``'s protocol: seed 1000, the model's render defaults, noise seed 0) with
``source_reuse=N``, and reports seconds per video, PSNR and SSIM against the ground truth, preset following,
and PSNR against the exact mode's (N = 1) own output. The table is printed last.
"""

from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path

import numpy as np
import torch

from recammaster.evaluation.metrics import psnr
from recammaster.evaluation.synthetic import evaluate_presets
from recammaster.hub import embedded_model_dir
from recammaster.pipeline import ReCamMasterPipeline
from recammaster.pipeline.recammaster_pipeline import read_render_defaults


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=1)
    parser.add_argument("--reuse", type=int, nargs="+", default=[1, 2, 4, 16])
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.reuse[0] != 1:
        args.reuse.insert(0, 1)  # the exact mode is the reference
    folder = args.model_dir or embedded_model_dir()
    defaults = read_render_defaults(folder)
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    pipeline = ReCamMasterPipeline.load(folder, torch_dtype=dtype).to(args.device)
    pipeline.set_progress_bar_config(disable=True)

    exact: dict[tuple[int, int], np.ndarray] = {}
    rows = []
    for reuse in args.reuse:
        results: dict[tuple[int, int], np.ndarray] = {}
        render = functools.partial(pipeline, source_reuse=reuse)
        start = time.perf_counter()
        report = evaluate_presets(
            render, num_scenes=args.scenes, size=int(defaults["height"]), steps=int(defaults["num_inference_steps"]),
            guidance=float(defaults["guidance_scale"]), device=args.device, progress=False,
            on_result=lambda scene, preset, result, kept=results: kept.__setitem__((scene.index, preset), result),
        )  # fmt: skip
        seconds = (time.perf_counter() - start) / len(report.cases)
        if reuse == 1:
            exact = results
        against_exact = np.mean([psnr(results[key], exact[key]).mean() for key in results]) if reuse > 1 else np.inf
        rows.append((reuse, seconds, np.mean([c.psnr_model.mean() for c in report.cases]),
                     np.mean([c.ssim_model.mean() for c in report.cases]), report.follows, against_exact))  # fmt: skip
        print(f"source_reuse={reuse}: {seconds:.1f} s a video", flush=True)

    print(f"\n{folder}, {args.device}, {args.scenes} scene(s) x 10 presets, {defaults['num_inference_steps']} steps\n")
    print("| source_reuse | s / video | PSNR vs truth | SSIM vs truth | follows | PSNR vs exact |")
    print("|---|---|---|---|---|---|")
    for reuse, seconds, psnr_truth, ssim_truth, follows, against_exact in rows:
        print(
            f"| {reuse} | {seconds:.1f} | {psnr_truth:.2f} | {ssim_truth:.4f} | {follows:.0%} | {against_exact:.2f} |"
        )


if __name__ == "__main__":
    main()
