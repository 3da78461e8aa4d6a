"""Compare VAE recipes for the same training time: which learns fastest from scratch?

    python scripts/vae_sweep.py --config configs/embedded-vae.yaml --minutes 1.5 \\
        "lr3e-4 clip_frames=17" "lr1e-3 clip_frames=5 batch_size=16 learning_rate=1e-3 warmup_steps=100"

Each variant is a name and ``option=value`` changes to the config (values read as YAML); each trains from
scratch in ``OUT/<name>`` for ``--minutes`` of training in this one process (the synthetic renderer compiles
once), then the held-out PSNR, steps and seconds per step are printed as a table, written to
``OUT/sweep.md``, and the best variant's name to ``OUT/best``. A variant's run folder resumes like any
``train vae`` run: ``recammaster train vae --config OUT/<name>/config.yaml --max-minutes 10``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from recammaster.fileio import write_text_atomic
from recammaster.training.vae import METRICS_FILE, VaeConfig, train_vae


def parse_value(text: str) -> object:
    """YAML, but 1e-3 is a number (YAML 1.1 wants 1.0e-3)."""
    try:
        return float(text) if "e" in text.lower() and not text.isalpha() else yaml.safe_load(text)
    except ValueError:
        return yaml.safe_load(text)


def parse_variant(text: str) -> tuple[str, dict]:
    name, *changes = text.split()
    values = {}
    for change in changes:
        key, separator, value = change.partition("=")
        if not separator:
            raise SystemExit(f"variant {name!r}: {change!r} is not option=value")
        values[key] = parse_value(value)
    return name, values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="+", help='"name option=value ..."')
    parser.add_argument("--config", type=Path, default=Path("configs/embedded-vae.yaml"))
    parser.add_argument("--minutes", type=float, default=1.5, help="training time of each variant")
    parser.add_argument("--out", type=Path, default=Path("runs/vae-sweep"))
    args = parser.parse_args()

    rows = []
    for variant in args.variants:
        name, changes = parse_variant(variant)
        config = VaeConfig.from_yaml(args.config, **changes, output_dir=str(args.out / name), max_minutes=args.minutes)
        run_dir = train_vae(config, progress=False)
        metrics = json.loads((run_dir / METRICS_FILE).read_text())
        seconds_per_step = metrics["train_minutes"] * 60 / max(metrics["steps"], 1)
        rows.append((name, metrics["psnr_db"], metrics["steps"], seconds_per_step, " ".join(variant.split()[1:])))
        print(f"{name}: {metrics['psnr_db']:.2f} dB after {metrics['steps']} steps", flush=True)

    table = ["| variant | held-out PSNR (dB) | steps | s/step | changes |", "|---|---|---|---|---|"]
    table += [f"| {name} | {db:.2f} | {steps} | {sps:.3f} | {changes} |" for name, db, steps, sps, changes in rows]
    text = "\n".join(table) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "sweep.md", text, overwrite=True)
    write_text_atomic(args.out / "best", max(rows, key=lambda row: row[1])[0] + "\n", overwrite=True)
    print(text)


if __name__ == "__main__":
    main()
