"""The paper's Table 3 at small scale as one picture: each conditioning's ground-truth and camera scores side by side.

    python scripts/table3_figure.py OUT.png --runs runs/table3-long [--scored runs/table3-long] [--title TEXT]

Reads ``RUNS-<conditioning>-eval/report.json`` (``recammaster eval synthetic``) and, where it exists,
``SCORED-<conditioning>-scored/report.json`` (``recammaster eval score``) for frame, channel and view; a score
a conditioning lacks (no video registered with COLMAP, say) is drawn as a missing bar and labelled.
(docs/images/table3-long.png.)
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from recammaster.fileio import atomic_output

CONDITIONINGS = ("frame", "channel", "view")
# (label, where, key, higher is better)
PANELS = (
    ("PSNR (dB)", "eval", "psnr_model", True),
    ("SSIM", "eval", "ssim_model", True),
    ("follows the preset (%)", "eval", "follows", True),
    ("frame 0 PSNR (dB)", "eval", "frame0_psnr", True),
    ("RotErr (°, scene 1)", "scored", "rot_err_deg", False),
    ("matched pixels (scene 1)", "scored", "matched_pixels", True),
)


def scores(runs: str, scored: str, conditioning: str) -> dict[str, dict[str, float]]:
    """The eval report's means over presets and the scored report's means, by panel source."""
    report = json.loads(Path(f"{runs}-{conditioning}-eval/report.json").read_text())
    presets = report["presets"]
    evaluated = {key: float(np.mean([p[key] for p in presets])) for key in ("psnr_model", "ssim_model", "frame0_psnr")}
    evaluated["follows"] = 100 * report["overall"]["follows"]
    path = Path(f"{scored}-{conditioning}-scored/report.json")
    means = json.loads(path.read_text())["summary"]["means"] if path.is_file() else {}
    return {"eval": evaluated, "scored": {key: math.nan if value is None else value for key, value in means.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--runs", required=True, help="prefix of the <prefix>-<conditioning>-eval folders")
    parser.add_argument("--scored", help="prefix of the <prefix>-<conditioning>-scored folders (default: --runs)")
    parser.add_argument("--title", default="frame-, channel- and view-axis conditioning, the same training budget")
    args = parser.parse_args()
    table = {c: scores(args.runs, args.scored or args.runs, c) for c in CONDITIONINGS}
    figure = Figure(figsize=(10, 5.6), layout="constrained")
    axes = figure.subplots(2, 3).ravel()
    for axis, (label, where, key, higher) in zip(axes, PANELS, strict=True):
        values = [table[c][where].get(key, math.nan) for c in CONDITIONINGS]
        bars = axis.bar(CONDITIONINGS, np.nan_to_num(values), color=["tab:blue", "tab:orange", "tab:green"])
        for bar, value in zip(bars, values, strict=True):
            text = "none registered" if math.isnan(value) else f"{value:.3g}"
            axis.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom",
                          fontsize=8)  # fmt: skip
        axis.set_title(f"{label}, {'higher' if higher else 'lower'} is better", fontsize=9)
        axis.margins(y=0.15)
    figure.suptitle(args.title, fontsize=10)
    with atomic_output(args.out, overwrite=True) as temporary:
        figure.savefig(temporary, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
