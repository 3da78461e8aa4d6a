"""The synthetic multi-camera data engine: procedural scenes rendered by a torch ray caster into the
MultiCamVideo layout (see :mod:`recammaster.data.synth.engine`)."""

from recammaster.data.synth.characters import ANIMATIONS, CharacterSpec, pose_character
from recammaster.data.synth.engine import SynthResult, make_scene, render_scene, synthesize, to_render_scene
from recammaster.data.synth.render import RenderOutput, RenderScene, RenderTensors, render, render_tensors
from recammaster.data.synth.scene import SceneSpec, describe_scene, sample_scene
from recammaster.data.synth.stream import SyntheticPairs, SyntheticPairStream

__all__ = [
    "ANIMATIONS",
    "CharacterSpec",
    "RenderOutput",
    "RenderScene",
    "RenderTensors",
    "SceneSpec",
    "SynthResult",
    "SyntheticPairStream",
    "SyntheticPairs",
    "describe_scene",
    "make_scene",
    "pose_character",
    "render",
    "render_scene",
    "render_tensors",
    "sample_scene",
    "synthesize",
    "to_render_scene",
]
