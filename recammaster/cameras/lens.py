"""Camera lenses of MultiCamVideo and the pinhole intrinsics they give.

The dataset was rendered with four focal/aperture presets on a 23.76 mm square sensor (seed README,
"Camera Parameters"). ReCamMaster itself takes no intrinsics; the synthetic data engine and the
trajectory previews use them to render.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SENSOR_SIZE_MM = 23.76


@dataclass(frozen=True)
class Lens:
    """A focal length and aperture (f-number) on MultiCamVideo's square sensor."""

    focal_length_mm: float
    aperture: float
    sensor_size_mm: float = SENSOR_SIZE_MM

    @property
    def folder_name(self) -> str:
        """Dataset folder of this lens, e.g. ``f18_aperture10`` or ``f35_aperture2.4``."""
        return f"f{self.focal_length_mm:g}_aperture{self.aperture:g}"

    @property
    def horizontal_fov_deg(self) -> float:
        return float(np.degrees(2 * np.arctan(self.sensor_size_mm / (2 * self.focal_length_mm))))

    def intrinsics(self, width: int, height: int) -> np.ndarray:
        """3x3 pinhole matrix for a width x height image whose width spans the sensor (square pixels).

        A centre crop of the square render to another aspect keeps this focal length in pixels.
        """
        focal_px = self.focal_length_mm / self.sensor_size_mm * width
        return np.array([[focal_px, 0.0, width / 2], [0.0, focal_px, height / 2], [0.0, 0.0, 1.0]])


MULTICAM_LENSES = (Lens(18, 10), Lens(24, 5), Lens(35, 2.4), Lens(50, 2.4))
