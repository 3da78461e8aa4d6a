"""Everything ReCamMaster knows about cameras: conventions, the camera condition, trajectories.

Pictures (``plot``, ``preview``) and the MultiCamVideo sampling rules (``sampling``) are imported from
their modules directly; they are not needed to condition the model.
"""

from recammaster.cameras.conventions import (
    camera_condition,
    latent_frame_indices,
    opencv_to_ue,
    relative_poses,
    ue_to_opencv,
)
from recammaster.cameras.files import (
    OFFICIAL_START_POSE,
    load_trajectory,
    trajectory_from_opencv_array,
    write_multicam_json,
)
from recammaster.cameras.keyframes import trajectory_from_document
from recammaster.cameras.lens import MULTICAM_LENSES, Lens
from recammaster.cameras.multicam_json import read_camera_extrinsics, write_camera_extrinsics
from recammaster.cameras.presets import (
    OFFICIAL_PRESET_NAMES,
    OFFICIAL_REACH,
    PRESETS,
    get_preset,
    parse_preset_spec,
)
from recammaster.cameras.speed import SpeedCurve, parse_speed
from recammaster.cameras.trajectory import Trajectory, combine, sequence, static

__all__ = [
    "MULTICAM_LENSES",
    "OFFICIAL_PRESET_NAMES",
    "OFFICIAL_REACH",
    "OFFICIAL_START_POSE",
    "PRESETS",
    "Lens",
    "SpeedCurve",
    "Trajectory",
    "camera_condition",
    "combine",
    "get_preset",
    "latent_frame_indices",
    "load_trajectory",
    "opencv_to_ue",
    "parse_preset_spec",
    "parse_speed",
    "read_camera_extrinsics",
    "relative_poses",
    "sequence",
    "static",
    "trajectory_from_document",
    "trajectory_from_opencv_array",
    "ue_to_opencv",
    "write_camera_extrinsics",
    "write_multicam_json",
]
