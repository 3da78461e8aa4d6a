"""Speed curves: how far along its path a camera is at each moment.

A curve maps normalised time u in [0, 1] to progress in [0, 1] with curve(0) = 0 and curve(1) = 1.
The exponential curve is MultiCamVideo's variable-speed rule (seed README, "Camera Movement Speed"):
progress = (1 - exp(-a u)) / (1 - exp(-a)); a > 0 starts fast and slows down, a < 0 the reverse.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from recammaster.errors import TrajectoryError

Array = np.ndarray


@dataclass(frozen=True)
class SpeedCurve:
    """A named speed curve; ``kind`` is 'linear', 'ease' or 'exponential' (with parameter ``a``)."""

    kind: str = "linear"
    a: float = 0.0

    def __call__(self, u: Array) -> Array:
        u = np.asarray(u, dtype=np.float64)
        return _CURVES[self.kind](u, self.a)

    def __str__(self) -> str:
        return f"exponential({self.a:g})" if self.kind == "exponential" else self.kind


def _exponential(u: Array, a: float) -> Array:
    if abs(a) < 1e-9:
        return u
    return np.expm1(-a * u) / np.expm1(-a)


def _ease(u: Array, _: float) -> Array:
    return u * u * (3.0 - 2.0 * u)  # smoothstep: starts and stops gently


_CURVES: dict[str, Callable[[Array, float], Array]] = {
    "linear": lambda u, _: u,
    "ease": _ease,
    "exponential": _exponential,
}

_EXPONENTIAL_TEXT = re.compile(r"exp(?:onential)?\(\s*([-+0-9.eE]+)\s*\)")


def parse_speed(spec: str | Mapping | SpeedCurve | None) -> SpeedCurve:
    """A speed curve from 'linear', 'ease', 'exponential(2.5)' or {'exponential': 2.5}."""
    if spec is None:
        return SpeedCurve()
    if isinstance(spec, SpeedCurve):
        return spec
    if isinstance(spec, Mapping) and len(spec) == 1 and "exponential" in spec:
        return SpeedCurve("exponential", float(spec["exponential"]))
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text in ("linear", "ease"):
            return SpeedCurve(text)
        match = _EXPONENTIAL_TEXT.fullmatch(text)
        if match:
            return SpeedCurve("exponential", float(match.group(1)))
    raise TrajectoryError(f"unknown speed curve {spec!r}; use 'linear', 'ease' or 'exponential(A)' (A > 0 starts fast)")
