"""recammaster: an independent, weight-compatible implementation of ReCamMaster.

ReCamMaster (Bai et al., "ReCamMaster: Camera-Controlled Generative Rendering from A Single Video",
ICCV 2025) re-films a dynamic scene along a new camera trajectory. The package is laid out as the data
flows: ``cameras`` (trajectories and the camera condition) -> models -> pipeline -> video out.
"""

__version__ = "0.1.0"
