"""The paper's metrics over a folder of generated videos (``recammaster eval score``), and the report.

The cases are folders of :mod:`recammaster.evaluation.cases` (source, result, requested trajectory, and for
synthetic scenes the ground truth). Per case, with the modules that define each metric:

- camera accuracy (:mod:`~recammaster.evaluation.camera_accuracy`): RotErr in degrees and TransErr (unitless),
  each summed over the compared frames, from COLMAP on frames 0, k, 2k, ... (``sample_every`` = k); means over
  the runs that registered every frame. Runs that did not are counted and kept with their reasons, and a case
  none of whose runs registered stays in the report with no camera numbers;
- matched pixels (:mod:`~recammaster.evaluation.matching`): RANSAC inliers between the source and result frames
  of one time, on the same frames, mean over them; it stands in for the paper's GIM count (see there);
- with a target: PSNR (dB) and SSIM per frame (:mod:`~recammaster.evaluation.metrics`), and with a visible mask
  also over the pixels the source shows and those it does not (:mod:`~recammaster.evaluation.regions`). Video
  numbers are means over frames 1..T-1, since frame 0 is the source's and given (as
  :mod:`~recammaster.evaluation.synthetic`); a frame whose region is empty has no value and is left out.

Over all cases: FID, FVD, CLIP-T/F/V and FVD-V (:mod:`~recammaster.evaluation.distribution`) with the networks
given. FID and FVD compare with the targets when every case has one, else with the sources (the paper's
setting, where in-the-wild sources have no ground truth). A metric that cannot be computed (no network, too few
frames, cases without a caption for CLIP-T) is listed with the reason. Summary rows are means over the cases
that have the number.

:func:`write_report` writes ``report.json`` (strict JSON: infinite and missing values as null), ``report.md``,
``scores.png`` (bars per case) and, with targets, ``psnr_per_frame.png``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from recammaster.errors import OutputExistsError
from recammaster.evaluation.camera_accuracy import (
    DEFAULT_RUNS,
    DEFAULT_SAMPLE_EVERY,
    CameraAccuracy,
    CameraAccuracyError,
    camera_accuracy,
)
from recammaster.evaluation.cases import Case, CaseError, read_case
from recammaster.evaluation.distribution import METRICS, MetricReport, Networks, compute_paper_metrics
from recammaster.evaluation.matching import MatchedPixels, matched_pixels
from recammaster.evaluation.metrics import psnr, ssim
from recammaster.evaluation.regions import RegionScores, region_scores
from recammaster.evaluation.synthetic import PLOT_PSNR_CAP_DB, SCORED_FRAMES, _plain
from recammaster.fileio import atomic_output, write_text_atomic

Array = np.ndarray

# Per-case numbers: key -> (heading in report.md, number format, unit and meaning).
CASE_METRICS = {
    "rot_err_deg": ("RotErr (°)", ".2f", "degrees: angle between the requested and the COLMAP rotation, both relative "
                    "to frame 0, summed over the compared frames; mean over the runs that registered every frame"),
    "trans_err": ("TransErr", ".3f", "unitless: distance between the camera positions relative to frame 0, each path "
                  "scaled to size 1, summed over the compared frames; mean over the runs that registered every frame"),
    "matched_pixels": ("Mat. Pix.", ".1f", "count: RANSAC inliers of SIFT matches between the source and result "
                       "frames of one time, mean over the scored frames; a stand-in for the paper's GIM count, "
                       "comparable only with numbers measured here"),
    "psnr": ("PSNR (dB)", ".2f", "dB against the target, mean over frames 1..T-1; inf (null in JSON): identical"),
    "ssim": ("SSIM", ".4f", "unitless, 1 = identical: SSIM against the target, mean over frames 1..T-1"),
    "visible_fraction": ("visible", ".0%", "share of the target's pixels that the source shows, mean over frames "
                         "1..T-1"),
    "psnr_visible": ("PSNR vis. (dB)", ".2f", "dB on the target pixels the source shows, mean over frames 1..T-1"),
    "psnr_revealed": ("PSNR rev. (dB)", ".2f", "dB on the target pixels the source does not show, mean over frames "
                      "1..T-1"),
    "ssim_visible": ("SSIM vis.", ".4f", "unitless: SSIM of the windows centred on pixels the source shows, mean "
                     "over frames 1..T-1"),
    "ssim_revealed": ("SSIM rev.", ".4f", "unitless: SSIM of the windows centred on pixels the source does not "
                      "show, mean over frames 1..T-1"),
}  # fmt: skip
CAMERA_KEYS = ("rot_err_deg", "trans_err", "matched_pixels")  # every case has them
TARGET_KEYS = ("psnr", "ssim")  # cases with a target
REGION_KEYS = ("visible_fraction", "psnr_visible", "psnr_revealed", "ssim_visible", "ssim_revealed")  # and a mask
DISTRIBUTION_UNITS = {
    "FID": "squared Fréchet distance of Inception-v3 features of every frame; lower is better",
    "FVD": "squared Fréchet distance of I3D features of 16-frame clips; lower is better",
    "CLIP-T": "cosine of the caption's and each frame's CLIP embeddings, in [-1, 1]; the paper prints it x100",
    "CLIP-F": "cosine of consecutive frames' CLIP embeddings, in [-1, 1]; the paper prints it x100",
    "FVD-V": "FVD between the results and their source videos; lower is better",
    "CLIP-V": "cosine of the CLIP embeddings of source and result frames of one time, in [-1, 1]; x100 in the paper",
}
REPORT_FILES = ("report.json", "report.md", "scores.png", "psnr_per_frame.png")


def nan_mean(values: Sequence[float] | Array) -> float:
    """Mean of the values that are not NaN (inf counts); NaN when there are none."""
    values = np.asarray(values, dtype=np.float64)
    kept = values[~np.isnan(values)]
    return float(kept.mean()) if kept.size else math.nan


def frame_mean(per_frame: Array | None) -> float:
    """A video's number: the mean over frames 1..T-1 (frame 0 is given) of the frames that have a value."""
    return math.nan if per_frame is None else nan_mean(per_frame[SCORED_FRAMES])


# ---------------------------------------------------------------------------
# One case
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ScoredCase:
    """One case's measurements, per run and per frame; :attr:`values` gives its numbers."""

    name: str
    num_frames: int
    focal_px: float | None  # the focal length COLMAP was given (intrinsics.json); None: estimated
    camera: CameraAccuracy
    matched: MatchedPixels
    psnr: Array | None = None  # (T,) dB against the target
    ssim: Array | None = None  # (T,)
    regions: RegionScores | None = None

    @cached_property
    def values(self) -> dict[str, float]:
        """Every key of :data:`CASE_METRICS`; NaN where the case has no such number (no target, no registered run)."""
        regions = {key: frame_mean(None if self.regions is None else getattr(self.regions, key)) for key in REGION_KEYS}
        return {
            "rot_err_deg": self.camera.rot_err_deg,
            "trans_err": self.camera.trans_err,
            "matched_pixels": self.matched.mean,
            "psnr": frame_mean(self.psnr),
            "ssim": frame_mean(self.ssim),
            **regions,
        }

    def to_dict(self) -> dict[str, Any]:
        """The case in report.json: its numbers, every COLMAP run and the per-frame values."""
        camera = self.camera
        return {
            "name": self.name,
            "frames": self.num_frames,
            **self.values,
            "camera": {
                "runs": camera.runs,
                "failed_runs": camera.failed_runs,
                "failures": camera.failures,
                "compared_frames": camera.num_frames,
                "focal_px_given": self.focal_px,
                "focal_px_per_run": [estimate.focal_px for estimate in camera.estimates],
                "rot_err_deg_per_run": camera.rot_errs_deg,
                "trans_err_per_run": camera.trans_errs,
            },
            "matched_pixels_per_frame": asdict(self.matched),
            "psnr_per_frame": self.psnr,
            "ssim_per_frame": self.ssim,
            "regions_per_frame": None if self.regions is None else asdict(self.regions),
        }


def check_settings(runs: int, sample_every: int) -> None:
    """Refuse COLMAP settings that cannot work before any case is read (camera_accuracy would, per case)."""
    if runs < 1:
        raise CameraAccuracyError(f"runs must be at least 1, got {runs}")
    if sample_every < 1:
        raise CameraAccuracyError(f"sample_every must be at least 1, got {sample_every}")


def score_case(
    case: Case, *, runs: int = DEFAULT_RUNS, sample_every: int = DEFAULT_SAMPLE_EVERY, num_threads: int = 1
) -> ScoredCase:
    """Camera accuracy and matched pixels of ``case`` on frames 0, ``sample_every``, ...; PSNR/SSIM on every frame.

    COLMAP runs ``runs`` times with ``num_threads`` threads (1: repeatable; -1: every core).
    """
    try:
        camera = camera_accuracy(case.result, case.trajectory.poses, runs=runs, focal_px=case.focal_px,
                                 sample_every=sample_every, num_threads=num_threads)  # fmt: skip
        matched = matched_pixels(case.source, case.result, every=sample_every)
        target = case.target
        scores = {} if target is None else {"psnr": psnr(case.result, target), "ssim": ssim(case.result, target)}
        if case.visible is not None:
            scores["regions"] = region_scores(case.result, target, case.visible)
    except ValueError as error:  # frames too few or too small for a metric: say which case
        raise CaseError(case.label, str(error)) from error
    return ScoredCase(case.name, len(case.result), case.focal_px, camera, matched, **scores)


# ---------------------------------------------------------------------------
# All cases
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ScoreReport:
    """Every case's scores, the distribution metrics over all cases, and the settings that made them."""

    settings: dict[str, Any]
    cases: list[ScoredCase]
    distribution: MetricReport

    @property
    def means(self) -> dict[str, float]:
        """Per metric, the mean over the cases that have it (NaN when none has)."""
        return {key: nan_mean([case.values[key] for case in self.cases]) for key in CASE_METRICS}

    @property
    def failed_registrations(self) -> list[dict[str, str]]:
        """Every COLMAP run that found no camera path, with its case and reason."""
        return [{"case": case.name, "reason": reason} for case in self.cases for reason in case.camera.failures]

    @property
    def shown_keys(self) -> list[str]:
        """The per-case metrics worth a column: camera and matching always, the others where some case has them."""
        keys = list(CAMERA_KEYS)
        for optional, field_name in ((TARGET_KEYS, "psnr"), (REGION_KEYS, "regions")):
            if any(getattr(case, field_name) is not None for case in self.cases):
                keys += optional
        return keys

    def to_json(self) -> str:
        """Strict JSON: infinite PSNR (identical frames) and missing numbers (NaN) are null."""
        counts = {key: sum(not math.isnan(case.values[key]) for case in self.cases) for key in CASE_METRICS}
        payload = {
            "settings": self.settings,
            "units": {key: unit for key, (_, _, unit) in CASE_METRICS.items()} | DISTRIBUTION_UNITS,
            "summary": {
                "cases": len(self.cases),
                "means": self.means,
                "cases_with_a_value": counts,
                "runs": sum(case.camera.runs for case in self.cases),
                "failed_runs": sum(case.camera.failed_runs for case in self.cases),
            },
            "distribution": {"values": self.distribution.values, "skipped": self.distribution.skipped},
            "failed_registrations": self.failed_registrations,
            "cases": [case.to_dict() for case in self.cases],
        }
        return json.dumps(_plain(payload), indent=1, allow_nan=False) + "\n"

    def to_markdown(self) -> str:
        """A row per case and a mean row, the distribution metrics, failed COLMAP runs and every unit."""
        s, keys = self.settings, self.shown_keys
        lines = [
            f"# Scores of {len(self.cases)} cases",
            "",
            f"COLMAP runs per case: {s['runs']}, on frames 0, {s['sample_every']}, {2 * s['sample_every']}, ... "
            f"(threads: {s['num_threads']}); registered runs: those that placed every one of these frames. Matched "
            "pixels on the same frames. Video numbers are means over frames 1..T-1; the mean row is over the cases "
            "that have the number; – means none.",
            "",
            "| case | frames | registered runs | " + " | ".join(CASE_METRICS[key][0] for key in keys) + " |",
            "|---" * (len(keys) + 3) + "|",
        ]

        def row(name: str, frames: int | str, registered: str, values: dict[str, float]) -> str:
            cells = " | ".join(_cell(values[key], CASE_METRICS[key][1]) for key in keys)
            return f"| {name} | {frames} | {registered} | {cells} |"

        for case in self.cases:
            camera = case.camera
            lines.append(row(case.name, case.num_frames, f"{camera.runs - camera.failed_runs}/{camera.runs}",
                             case.values))  # fmt: skip
        runs = sum(case.camera.runs for case in self.cases)
        failed = self.failed_registrations
        lines.append(row("mean", "", f"{runs - len(failed)}/{runs}", self.means))

        reference = s["fid_fvd_reference"]
        lines += ["", f"## Distribution metrics (all cases; FID and FVD against the {reference} videos)", ""]
        for metric in METRICS:
            if metric in self.distribution.values:
                lines.append(f"- {metric}: {self.distribution.values[metric]:.4f}")
            else:
                lines.append(f"- {metric}: skipped, {self.distribution.skipped[metric]}")

        lines += ["", f"## COLMAP runs without a camera path: {len(failed)} of {runs}", ""]
        lines += [f"- {failure['case']}: {failure['reason']}" for failure in failed] or ["None."]

        lines += ["", "## Units", ""]
        lines += [f"- {CASE_METRICS[key][0]}: {CASE_METRICS[key][2]}" for key in keys]
        lines += [f"- {metric}: {unit}" for metric, unit in DISTRIBUTION_UNITS.items()]
        return "\n".join(lines) + "\n"


def _cell(value: float, spec: str) -> str:
    if math.isnan(value):
        return "–"
    return ("inf" if value > 0 else "-inf") if math.isinf(value) else format(value, spec)


def _without_clip_t(report: MetricReport, uncaptioned: Sequence[str]) -> MetricReport:
    """CLIP-T moved to the skipped metrics: it needs every case's caption."""
    values = {metric: value for metric, value in report.values.items() if metric != "CLIP-T"}
    skipped = report.skipped | {"CLIP-T": f"no caption.txt in {', '.join(uncaptioned)}"}
    return MetricReport(values, {metric: skipped[metric] for metric in METRICS if metric in skipped})


def score_cases(
    folders: Sequence[str | Path],
    *,
    networks: Networks | None = None,
    runs: int = DEFAULT_RUNS,
    sample_every: int = DEFAULT_SAMPLE_EVERY,
    num_threads: int = 1,
    progress: bool = True,
) -> ScoreReport:
    """Read and score each case folder (:func:`recammaster.evaluation.cases.find_cases` lists them), then the
    distribution metrics over all of them with ``networks`` (None: none, every such metric skipped).

    Every case's source and result (and target) stay in memory until the distribution metrics have seen them.
    """
    check_settings(runs, sample_every)
    if not folders:
        raise CaseError("folders", "no case folders given")
    scored, sources, results, targets, captions = [], [], [], [], []
    for folder in tqdm(folders, desc="scoring", unit="case", disable=not progress):
        case = read_case(folder)
        scored.append(score_case(case, runs=runs, sample_every=sample_every, num_threads=num_threads))
        sources.append(case.source)
        results.append(case.result)
        targets.append(case.target)
        captions.append(case.caption)
    with_targets = all(target is not None for target in targets)
    distribution = compute_paper_metrics(results, sources, [caption or "" for caption in captions],
                                         networks or Networks(), targets if with_targets else None)  # fmt: skip
    uncaptioned = [case.name for case, caption in zip(scored, captions, strict=True) if caption is None]
    if uncaptioned and "CLIP-T" in distribution.values:
        distribution = _without_clip_t(distribution, uncaptioned)
    settings = {"cases": [case.name for case in scored], "folders": [str(folder) for folder in folders],
                "runs": runs, "sample_every": sample_every, "num_threads": num_threads,
                "fid_fvd_reference": "target" if with_targets else "source"}  # fmt: skip
    return ScoreReport(settings, scored, distribution)


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------


def report_paths(out_dir: str | Path) -> list[Path]:
    """Every file :func:`write_report` may write: report.json, report.md, scores.png, psnr_per_frame.png."""
    return [Path(out_dir) / name for name in REPORT_FILES]


def check_output(out_dir: str | Path, *, overwrite: bool = False) -> None:
    """Refuse a folder that holds a report already unless ``overwrite``: before scoring, not after."""
    for path in report_paths(out_dir):
        if path.exists() and not overwrite:
            raise OutputExistsError(path)


def _save(figure: Figure, path: Path, overwrite: bool) -> None:
    with atomic_output(path, overwrite=overwrite) as temporary:
        figure.savefig(temporary, dpi=100)


def plot_scores(report: ScoreReport, path: str | Path, *, overwrite: bool = False) -> Path:
    """Bars per case of RotErr, TransErr, matched pixels and, with targets, PSNR (capped) and SSIM."""
    keys = [key for key in report.shown_keys if key in CAMERA_KEYS + TARGET_KEYS]
    names = [case.name for case in report.cases]
    positions = np.arange(len(names))
    figure = Figure(figsize=(max(6.0, 0.6 * len(names) + 2), 2.2 * len(keys) + 0.6), layout="constrained")
    panels = np.atleast_1d(figure.subplots(len(keys), 1, sharex=True))
    for axis, key in zip(panels, keys, strict=True):
        values = np.array([case.values[key] for case in report.cases])
        cap = PLOT_PSNR_CAP_DB if key == "psnr" else math.inf
        axis.bar(positions, np.nan_to_num(np.minimum(values, cap), nan=0.0), width=0.6)
        for position, value in zip(positions, values, strict=True):
            if math.isnan(value):  # no bar: say that the case has no such number
                axis.annotate("–", (position, 0), ha="center", va="bottom")
        label = CASE_METRICS[key][0]
        axis.set_ylabel(f"{label}, inf at {cap:.0f}" if key == "psnr" else label, fontsize=9)
        axis.grid(axis="y", alpha=0.3)
    crowded = len(names) > 6  # long rows of names are tilted so that they do not overlap
    panels[-1].set_xticks(
        positions, names, rotation=30 if crowded else 0, ha="right" if crowded else "center", fontsize=8
    )
    figure.suptitle(f"{len(names)} cases; RotErr and TransErr summed over the compared frames", fontsize=10)
    _save(figure, Path(path), overwrite)
    return Path(path)


def plot_psnr_per_frame(report: ScoreReport, path: str | Path, *, overwrite: bool = False) -> Path:
    """PSNR against the target over time, a line per case with a target; identical frames drawn at the cap."""
    figure = Figure(figsize=(7.0, 4.0), layout="constrained")
    axis = figure.subplots()
    for case in report.cases:
        if case.psnr is not None:
            axis.plot(np.minimum(case.psnr, PLOT_PSNR_CAP_DB), marker=".", label=case.name)
    axis.set_xlabel("frame")
    axis.set_ylabel(f"PSNR (dB), capped at {PLOT_PSNR_CAP_DB:.0f}")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    _save(figure, Path(path), overwrite)
    return Path(path)


def write_report(report: ScoreReport, out_dir: str | Path, *, overwrite: bool = False) -> list[Path]:
    """Write report.json, report.md, scores.png and, when some case has a target, psnr_per_frame.png.

    Existing report files are refused (:class:`OutputExistsError`, before anything is written) unless
    ``overwrite``; then an earlier psnr_per_frame.png that this report would not write is removed, so that every
    file in the folder is of this report.
    """
    check_output(out_dir, overwrite=overwrite)
    json_path, markdown_path, scores_path, per_frame_path = report_paths(out_dir)
    written = [
        write_text_atomic(json_path, report.to_json(), overwrite=overwrite),
        write_text_atomic(markdown_path, report.to_markdown(), overwrite=overwrite),
        plot_scores(report, scores_path, overwrite=overwrite),
    ]
    if any(case.psnr is not None for case in report.cases):
        written.append(plot_psnr_per_frame(report, per_frame_path, overwrite=overwrite))
    else:
        per_frame_path.unlink(missing_ok=True)
    return written
