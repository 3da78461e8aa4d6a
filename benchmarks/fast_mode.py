"""The fast modes' cost on held-out synthetic scenes with ground truth: speed levers against the exact mode.

    python benchmarks/fast_mode.py [--scenes 1] [--model-dir DIR] [--device cpu] VARIANT ...

A variant is comma-separated pipeline options, e.g. ``source_reuse=2``, ``num_inference_steps=8``,
``num_inference_steps=8,solver=ab2``. The exact mode (the model's render defaults) runs first as the
reference. Each re-renders held-out scenes along the ten presets (``recammaster eval synthetic``'s
protocol: seed 1000, noise seed 0) and reports seconds per video, PSNR and SSIM against the ground truth,
preset following, and PSNR against the exact mode's own output. The table is printed last.
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

INTEGER_OPTIONS = ("source_reuse", "num_inference_steps")


def parse_variant(text: str) -> dict[str, int | str]:
    options = {}
    for item in filter(None, text.split(",")):
        key, separator, value = item.partition("=")
        if not separator:
            raise SystemExit(f"variant {text!r}: {item!r} is not option=value")
        options[key] = int(value) if key in INTEGER_OPTIONS else value
    return options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="+", help="comma-separated pipeline options, e.g. source_reuse=2")
    parser.add_argument("--scenes", type=int, default=1)
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    folder = args.model_dir or embedded_model_dir()
    defaults = read_render_defaults(folder)
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    pipeline = ReCamMasterPipeline.load(folder, torch_dtype=dtype).to(args.device)
    pipeline.set_progress_bar_config(disable=True)

    exact: dict[tuple[int, int], np.ndarray] = {}
    rows = []
    for variant in ["", *args.variants]:
        options = parse_variant(variant)
        steps = int(options.pop("num_inference_steps", defaults["num_inference_steps"]))
        results: dict[tuple[int, int], np.ndarray] = {}
        render = functools.partial(pipeline, **options)  # evaluate_presets passes the steps
        start = time.perf_counter()
        report = evaluate_presets(
            render, num_scenes=args.scenes, size=int(defaults["height"]), steps=steps,
            guidance=float(defaults["guidance_scale"]), device=args.device, progress=False,
            on_result=lambda scene, preset, result, kept=results: kept.__setitem__((scene.index, preset), result),
        )  # fmt: skip
        seconds = (time.perf_counter() - start) / len(report.cases)
        if not variant:
            exact = results
        against_exact = np.mean([psnr(results[key], exact[key]).mean() for key in results]) if variant else np.inf
        rows.append((variant or "exact", seconds, np.mean([c.psnr_model.mean() for c in report.cases]),
                     np.mean([c.ssim_model.mean() for c in report.cases]), report.follows, against_exact))  # fmt: skip
        print(f"{variant or 'exact'}: {seconds:.1f} s a video", flush=True)

    print(f"\n{folder}, {args.device}, {args.scenes} scene(s) x 10 presets, exact = {defaults}\n")
    print("| variant | s / video | PSNR vs truth | SSIM vs truth | follows | PSNR vs exact |")
    print("|---|---|---|---|---|---|")
    for name, seconds, psnr_truth, ssim_truth, follows, against_exact in rows:
        cells = [
            name,
            f"{seconds:.1f}",
            f"{psnr_truth:.2f}",
            f"{ssim_truth:.4f}",
            f"{follows:.0%}",
            f"{against_exact:.2f}",
        ]
        print(f"| {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
