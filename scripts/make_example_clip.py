"""Write the bundled example clip (recammaster/assets/example/): a held-out synthetic scene, 81 frames at
128x128, seen by its first camera, and its caption. Run from the repository root; the same seed gives
the same frames.

    python scripts/make_example_clip.py
"""

from __future__ import annotations

import json
from pathlib import Path

from recammaster.data.synth.engine import make_scene
from recammaster.data.synth.scene import describe_scene
from recammaster.data.synth.stream import SyntheticPairStream
from recammaster.video import write_video

SEED, SCENE, SIZE = 2024, 3, 128  # seed 2024 is not a training seed
FOLDER = Path("recammaster/assets/example")


def main() -> None:
    spec = make_scene(SEED, SCENE)
    stream = SyntheticPairStream(SEED, size=SIZE, supersample=True)
    frames = stream.render(spec)[0].cpu().numpy()  # the scene's first camera, (81, H, W, 3) uint8
    write_video(FOLDER / "example.mp4", frames, fps=15, overwrite=True)
    caption = {"caption": describe_scene(spec), "seed": SEED, "scene": SCENE, "camera": 0}
    (FOLDER / "example.json").write_text(json.dumps(caption, indent=1) + "\n")
    print(f"wrote {FOLDER / 'example.mp4'}: {caption['caption']}")


if __name__ == "__main__":
    main()
