"""Frames of several videos side by side: one row per video, one column per frame, for comparing models by eye.

    python scripts/frame_grid.py OUT.png LABEL=VIDEO [LABEL=VIDEO ...] [--frames 0 40 80] [--title TEXT] [--overwrite]

Videos of another frame size than the first are scaled to it.

(docs/images/embedded-releases.png: the bundled clip and two releases' re-renders of it.)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from recammaster.fileio import atomic_output
from recammaster.video import read_video

GAP = 4  # white pixels between pictures


def mosaic(videos: list[Path], frames: list[int]) -> np.ndarray:
    """One image: a row per video of its ``frames``, side by side, with white gaps; videos of another size than
    the first are scaled to its size (models made for different frame sizes)."""
    rows, size = [], None
    for video in videos:
        pictures = read_video(video, max(frames) + 1)[frames]
        size = size or (pictures.shape[2], pictures.shape[1])
        if (pictures.shape[2], pictures.shape[1]) != size:
            pictures = np.stack(
                [np.asarray(Image.fromarray(p).resize(size, Image.Resampling.BICUBIC)) for p in pictures]
            )
        white = np.full((pictures.shape[1], GAP, 3), 255, np.uint8)
        rows.append(np.concatenate([part for picture in pictures for part in (picture, white)][:-1], axis=1))
    white = np.full((GAP, rows[0].shape[1], 3), 255, np.uint8)
    return np.concatenate([part for row in rows for part in (row, white)][:-1], axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", type=Path)
    parser.add_argument("videos", nargs="+", help="LABEL=VIDEO, one row each")
    parser.add_argument("--frames", type=int, nargs="+", default=[0, 40, 80])
    parser.add_argument("--title", default="")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    args = parser.parse_args()
    if Path(args.output).exists() and not args.overwrite:
        parser.error(f"{args.output} exists already; pass --overwrite to replace it")
    rows = [entry.split("=", 1) for entry in args.videos]
    if any(len(row) != 2 for row in rows):
        parser.error("each video is LABEL=VIDEO")
    image = mosaic([Path(video) for _, video in rows], args.frames)
    side = (image.shape[0] + GAP) / len(rows)  # a picture and its gap, in pixels
    figure = Figure(figsize=(image.shape[1] / 80 + 1.6, image.shape[0] / 80 + 0.6))
    axis = figure.add_axes((1.4 / figure.get_figwidth(), 0.02, 1 - 1.5 / figure.get_figwidth(), 0.9))
    axis.imshow(image)
    axis.set_xticks([(column + 0.5) * side - GAP / 2 for column in range(len(args.frames))],
                    [f"frame {frame}" for frame in args.frames], fontsize=8)  # fmt: skip
    axis.xaxis.tick_top()
    axis.set_yticks([(row + 0.5) * side - GAP / 2 for row in range(len(rows))], [label for label, _ in rows],
                    fontsize=8)  # fmt: skip
    axis.tick_params(length=0)
    axis.set_frame_on(False)
    figure.suptitle(args.title, fontsize=9)
    with atomic_output(args.output, overwrite=args.overwrite) as temporary:
        figure.savefig(temporary, format="png", dpi=100)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
