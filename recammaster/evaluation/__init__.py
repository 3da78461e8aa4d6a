"""Measuring re-renderings: per-frame PSNR and SSIM, and ground-truth metrics per preset on held-out synthetic
scenes (``recammaster eval synthetic``)."""

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
