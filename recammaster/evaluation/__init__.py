"""Measuring re-renderings: per-frame PSNR and SSIM, and ground-truth metrics per preset on held-out synthetic
scenes (``recammaster eval synthetic``). The paper's other metrics live in their own modules, imported where
used because they need optional packages (``pip install recammaster[eval]``): ``camera_accuracy`` (RotErr and
TransErr through COLMAP), ``matching`` (matched pixels, SIFT + RANSAC), ``regions`` (PSNR and SSIM over the
pixels the source shows and those it does not) and ``distribution`` (FID, FVD, CLIP-T/F/V, FVD-V).
``cases`` reads and writes folders of generated videos, and ``scoring`` measures them with all of these
(``recammaster eval score``)."""

from recammaster.evaluation.metrics import mse, psnr, ssim
from recammaster.evaluation.synthetic import (
    CaseScores,
    HeldOutScene,
    PresetReport,
    PresetScores,
    evaluate_presets,
    held_out_scene,
    write_report,
)

__all__ = [
    "CaseScores",
    "HeldOutScene",
    "PresetReport",
    "PresetScores",
    "evaluate_presets",
    "held_out_scene",
    "mse",
    "psnr",
    "ssim",
    "write_report",
]
