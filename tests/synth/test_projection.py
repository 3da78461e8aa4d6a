"""The written camera files agree with the pictures: a known 3D point, projected with the JSON camera
and the lens of the folder name, lands where the renderer draws it."""

import dataclasses
import re

import numpy as np

from recammaster.cameras.conventions import ue_to_opencv
from recammaster.cameras.lens import SENSOR_SIZE_MM
from recammaster.cameras.multicam_json import read_camera_extrinsics
from recammaster.data.synth.engine import make_scene, render_scene, scene_folder, write_scene
from recammaster.data.synth.scene import Material, Sphere

SIZE, FRAMES = 96, 5
MARKER_RADIUS = 0.1


def _project(point: np.ndarray, camera_to_world: np.ndarray, focal_mm: float) -> tuple[float, float, float]:
    """Pinhole projection (written out here, on purpose): pixel column u, row v (pixel centres at +0.5), depth."""
    rotation, position = camera_to_world[:3, :3], camera_to_world[:3, 3]
    x, y, z = rotation.T @ (point - position)  # OpenCV camera frame: x right, y down, z forward
    focal_px = focal_mm / SENSOR_SIZE_MM * SIZE
    return focal_px * x / z + SIZE / 2, focal_px * y / z + SIZE / 2, z


def test_a_marker_lands_on_its_projected_pixel(tmp_path):
    spec = make_scene(11, 1, FRAMES)
    x, y = spec.characters[0].position
    marker = np.array([x + 0.3, y - 0.2, 2.6])  # above every character's head, clear of the props' sight lines
    marked = dataclasses.replace(
        spec, spheres=(*spec.spheres, Sphere(tuple(marker), MARKER_RADIUS, Material("flat", "pink", "pink")))
    )
    plain = render_scene(spec, SIZE, depth=True).depth
    output = render_scene(marked, SIZE, depth=True)
    folder = scene_folder(tmp_path, marked, 1)
    write_scene(folder, marked, output)

    cameras = read_camera_extrinsics(folder / "cameras" / "camera_extrinsics.json")
    focal_mm = float(re.fullmatch(r"f([\d.]+)_aperture[\d.]+", folder.parent.name).group(1))
    checked = 0
    for index, name in enumerate(sorted(cameras)):
        poses = ue_to_opencv(cameras[name])
        for frame in (0, FRAMES - 1):
            u, v, z = _project(marker, poses[frame], focal_mm)
            if z <= 0 or not (3 <= u <= SIZE - 3 and 3 <= v <= SIZE - 3):
                continue
            # The marker's pixels: where it is nearer than whatever the plain scene shows there.
            silhouette = output.depth[index, frame] < plain[index, frame] - 1e-3
            expected_pixels = np.pi * (MARKER_RADIUS * SIZE * focal_mm / SENSOR_SIZE_MM / z) ** 2
            if silhouette.sum() < max(1.0, 0.6 * expected_pixels):
                continue  # hidden behind something
            assert silhouette[int(v), int(u)], (name, frame)  # the projected pixel shows the marker
            rows, columns = np.nonzero(silhouette)
            assert abs(columns.mean() + 0.5 - u) <= 1.0, (name, frame)
            assert abs(rows.mean() + 0.5 - v) <= 1.0, (name, frame)
            assert abs(np.median(output.depth[index, frame][silhouette]) - z) < 2 * MARKER_RADIUS
            checked += 1
    assert checked >= 8  # most cameras see the marker
