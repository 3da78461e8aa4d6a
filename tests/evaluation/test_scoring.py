"""Scoring a folder of cases: each metric against its own module, failed COLMAP runs kept, the report files and CLI.

Held-out scene 1 of seed 1000 filmed along arc-left at 192 x 192 pixels and 17 frames is the one synthetic scene
COLMAP reconstructs reliably (see test_camera_accuracy.py). Three cases: the ground truth as the result, the copied
source as the result, and grey frames COLMAP cannot reconstruct. The CLI runs on 64-pixel crops of 9 frames.
"""

import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from recammaster.cameras.presets import get_preset
from recammaster.cameras.trajectory import Trajectory
from recammaster.data.synth.engine import make_scene, to_render_scene
from recammaster.data.synth.render import render_tensors
from recammaster.data.synth.scene import describe_scene
from recammaster.data.synth.stream import crop_intrinsics
from recammaster.errors import OutputExistsError
from recammaster.evaluation import distribution
from recammaster.evaluation.camera_accuracy import CameraAccuracyError
from recammaster.evaluation.cases import Case, CaseError, find_cases, write_case
from recammaster.evaluation.distribution import ClipNetwork, FeatureNetwork, Networks, compute_paper_metrics
from recammaster.evaluation.matching import matched_pixels
from recammaster.evaluation.metrics import psnr, ssim
from recammaster.evaluation.regions import region_scores, visible_mask
from recammaster.evaluation.scoring import check_settings, score_case, score_cases, write_report

SEED, SCENE, SIZE, FRAMES = 1000, 1, 192, 17
FAILED = "seed 0: COLMAP built no model from the 17 frames"


@pytest.fixture(scope="module")
def filmed() -> SimpleNamespace:
    """The scene from its first camera (the source) and along arc-left placed there (the ground truth)."""
    spec = make_scene(SEED, SCENE, FRAMES)
    start = spec.trajectories[0].poses
    request = get_preset("arc-left")(num_frames=FRAMES)
    poses = np.stack([start, request.placed_at(start[0]).poses])
    intrinsics = crop_intrinsics(spec.lens, SIZE, SIZE)
    rendered = render_tensors(to_render_scene(spec), poses, intrinsics, SIZE, depth=True)
    (source, target), depth = rendered.images.numpy(), rendered.depth.numpy()
    return SimpleNamespace(
        source=source, target=target, request=request, caption=describe_scene(spec), focal_px=float(intrinsics[0, 0]),
        visible=visible_mask(depth[1], depth[0], poses[1], poses[0], intrinsics),
    )  # fmt: skip


def tiny_networks() -> Networks:
    """A random conv net as Inception (FID), mean colour as CLIP's image tower; no I3D."""
    torch.manual_seed(0)
    inception = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    images = FeatureNetwork(lambda batch: batch.mean(dim=(2, 3)), size=None, value_range=(0.0, 1.0))
    clip = ClipNetwork(images, lambda captions: torch.ones(len(captions), 3))
    return Networks(inception=FeatureNetwork(inception.eval(), size=None, value_range=(-1.0, 1.0)), clip=clip)


@pytest.fixture(scope="module")
def cases(filmed) -> dict[str, Case]:
    grey = np.full_like(filmed.source, 128)
    full = {"caption": filmed.caption, "target": filmed.target, "visible": filmed.visible, "focal_px": filmed.focal_px}
    return {
        "copy": Case("copy", filmed.source, filmed.source, filmed.request, **full),
        "exact": Case("exact", filmed.source, filmed.target, filmed.request, **full),
        "grey": Case("grey", filmed.source, grey, filmed.request),  # no caption, no target
    }


@pytest.fixture(scope="module")
def networks() -> Networks:
    return tiny_networks()


@pytest.fixture(scope="module")
def report(cases, networks, tmp_path_factory):
    root = tmp_path_factory.mktemp("cases")
    for case in cases.values():
        write_case(root, case)
    return score_cases(find_cases(root), networks=networks, runs=1, sample_every=1, progress=False)


def scored(report, name):
    return next(case for case in report.cases if case.name == name)


def json_case(report, name):
    return next(case for case in json.loads(report.to_json())["cases"] if case["name"] == name)


# ---------------------------------------------------------------------------
# Per case
# ---------------------------------------------------------------------------


def test_the_ground_truth_as_result_scores_infinite_psnr_written_as_null(report, filmed):
    exact = scored(report, "exact")
    assert exact.values["psnr"] == math.inf
    assert exact.values["ssim"] == pytest.approx(1.0, abs=1e-12)
    assert (exact.values["psnr_visible"], exact.values["psnr_revealed"]) == (math.inf, math.inf)
    document = json_case(report, "exact")
    assert document["psnr"] is None
    assert document["psnr_per_frame"] == [None] * FRAMES
    assert document["ssim"] == pytest.approx(1.0, abs=1e-12)
    # COLMAP recovers the arc it was filmed along, with the focal length of intrinsics.json fixed
    assert (exact.camera.runs, exact.camera.failed_runs, exact.camera.num_frames) == (1, 0, FRAMES)
    assert exact.values["rot_err_deg"] < 60.0  # summed over 17 frames, as test_camera_accuracy bounds it
    assert document["camera"]["focal_px_given"] == document["camera"]["focal_px_per_run"][0] == filmed.focal_px


def test_the_copied_source_scores_exactly_what_the_metric_modules_give(report, filmed):
    copy = scored(report, "copy")
    np.testing.assert_array_equal(copy.psnr, psnr(filmed.source, filmed.target))
    np.testing.assert_array_equal(copy.ssim, ssim(filmed.source, filmed.target))
    assert copy.values["psnr"] == psnr(filmed.source, filmed.target)[1:].mean()  # frame 0 is given
    assert copy.values["ssim"] == ssim(filmed.source, filmed.target)[1:].mean()
    regions = region_scores(filmed.source, filmed.target, filmed.visible)
    for key in ("visible_fraction", "psnr_visible", "psnr_revealed", "ssim_visible", "ssim_revealed"):
        assert copy.values[key] == pytest.approx(np.nanmean(getattr(regions, key)[1:]), rel=1e-12), key
    assert copy.values["psnr_visible"] > copy.values["psnr_revealed"]  # what the source shows is easier to copy
    np.testing.assert_array_equal(copy.matched.inliers, matched_pixels(filmed.source, filmed.source).inliers)
    assert json_case(report, "copy")["psnr"] == copy.values["psnr"]


def test_a_case_colmap_cannot_register_is_counted_with_its_reason(report):
    grey = scored(report, "grey")
    assert (grey.camera.runs, grey.camera.failed_runs, grey.camera.failures) == (1, 1, [FAILED])
    assert math.isnan(grey.values["rot_err_deg"])
    assert math.isnan(grey.values["psnr"])  # no target
    assert report.failed_registrations == [{"case": "grey", "reason": FAILED}]
    document = json.loads(report.to_json())
    assert document["failed_registrations"] == [{"case": "grey", "reason": FAILED}]
    assert (document["summary"]["runs"], document["summary"]["failed_runs"]) == (3, 1)
    assert document["summary"]["cases_with_a_value"]["rot_err_deg"] == 2
    assert json_case(report, "grey")["rot_err_deg"] is None
    # means are over the cases that have the number: the failed case does not count as zero
    assert report.means["rot_err_deg"] == pytest.approx(np.mean([scored(report, n).values["rot_err_deg"]
                                                                 for n in ("copy", "exact")]))  # fmt: skip
    markdown = report.to_markdown()
    assert "| grey | 17 | 0/1 | – | – | 0.0 | – | – | – | – | – | – | – |" in markdown.splitlines()
    assert f"- grey: {FAILED}" in markdown.splitlines()
    assert "## COLMAP runs without a camera path: 1 of 3" in markdown


def test_distribution_metrics_use_the_networks_given_and_name_what_they_skip(report, cases, networks):
    direct = compute_paper_metrics([case.result for case in cases.values()], [case.source for case in cases.values()],
                                   ["x"] * 3, networks)  # fmt: skip
    assert report.settings["fid_fvd_reference"] == "source"  # the grey case has no target
    assert report.distribution.values == pytest.approx({key: direct.values[key] for key in ("FID", "CLIP-F", "CLIP-V")})
    assert report.distribution.skipped == {
        "FVD": "no i3d network given",
        "CLIP-T": "no caption.txt in grey",
        "FVD-V": "no i3d network given",
    }
    lines = report.to_markdown().splitlines()
    assert f"- FID: {direct.values['FID']:.4f}" in lines
    assert "- CLIP-T: skipped, no caption.txt in grey" in lines
    assert json.loads(report.to_json())["distribution"]["skipped"]["FVD"] == "no i3d network given"


def test_the_markdown_table_states_every_unit(report):
    lines = report.to_markdown().splitlines()
    assert lines[4] == ("| case | frames | registered runs | RotErr (°) | TransErr | Mat. Pix. | PSNR (dB) | SSIM | "
                        "visible | PSNR vis. (dB) | PSNR rev. (dB) | SSIM vis. | SSIM rev. |")  # fmt: skip
    assert [line.split(" | ")[0] for line in lines[6:10]] == ["| copy", "| exact", "| grey", "| mean"]
    units = lines[lines.index("## Units") + 2 :]
    assert units[0].startswith("- RotErr (°): degrees: ")
    assert units[3].startswith("- PSNR (dB): dB against the target, mean over frames 1..T-1")
    assert [unit.split(":")[0] for unit in units[-6:]] == [f"- {metric}" for metric in distribution.METRICS]


def test_a_setting_that_does_not_fit_a_case_names_the_case(cases):
    copy = cases["copy"]
    short = Case("short", copy.source[:5], copy.result[:5], Trajectory(copy.trajectory.poses[:5]))
    with pytest.raises(CaseError) as caught:
        score_case(short, runs=1)
    assert str(caught.value) == "case short: sample_every=4 keeps 2 frames; COLMAP needs at least 3"


@pytest.mark.parametrize(
    ("options", "message"),
    [({"runs": 0, "sample_every": 4}, "runs must be at least 1, got 0"),
     ({"runs": 1, "sample_every": 0}, "sample_every must be at least 1, got 0")],
)  # fmt: skip
def test_settings_are_checked_before_any_case_is_read(options, message):
    with pytest.raises(CameraAccuracyError, match=f"^{message}$"):
        check_settings(**options)
    with pytest.raises(CameraAccuracyError, match=f"^{message}$"):
        score_cases([Path("/nonexistent")], **options)


# ---------------------------------------------------------------------------
# Report files
# ---------------------------------------------------------------------------


def strict(text: str) -> dict:
    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not strict JSON")

    return json.loads(text, parse_constant=refuse)


def test_the_report_files_are_written_once(report, tmp_path):
    paths = write_report(report, tmp_path)
    assert paths == [tmp_path / name for name in ("report.json", "report.md", "scores.png", "psnr_per_frame.png")]
    assert strict((tmp_path / "report.json").read_text()) == json.loads(report.to_json())
    assert (tmp_path / "report.md").read_text() == report.to_markdown()
    for picture in ("scores.png", "psnr_per_frame.png"):
        with Image.open(tmp_path / picture) as image:
            assert image.size[0] >= 600
    with pytest.raises(OutputExistsError, match=f"^{re.escape(str(tmp_path / 'report.json'))}: exists already"):
        write_report(report, tmp_path)
    assert write_report(report, tmp_path, overwrite=True) == paths


# ---------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------


@pytest.fixture
def small_root(filmed, tmp_path) -> Path:
    """64-pixel crops of 9 frames, each case with a target: the ground truth, and grey frames."""
    crop = (slice(0, 9), slice(64, 128), slice(64, 128))
    source, target = filmed.source[crop], filmed.target[crop]
    trajectory = Trajectory(filmed.request.poses[:9])
    root = tmp_path / "cases"
    write_case(root, Case("exact", source, target, trajectory, caption="a room", target=target))
    write_case(root, Case("grey", source, np.full_like(source, 128), trajectory, caption="a room", target=target))
    return root


NO_INCEPTION = (
    "no Inception-v3 weights: pass the file pt_inception-2015-12-05-6726825d.pth (with torchvision or "
    "torch-fidelity installed), or install pytorch-fid or torch-fidelity to fetch it"
)


def test_cli_writes_the_report_and_refuses_to_overwrite(run, small_root, tmp_path, monkeypatch):
    monkeypatch.setattr(distribution, "_installed", lambda package: False)  # never fetch Inception weights
    out = tmp_path / "report"
    args = ("eval", "score", small_root, "-o", out, "--runs", 1, "--sample-every", 2, "--device", "cpu",
            "--no-progress")  # fmt: skip
    code, stdout, stderr = run(*args)
    assert code == 0, stderr
    assert stdout.startswith("# Scores of 2 cases\n")
    assert stdout.endswith(f"wrote {out}\n")
    assert stdout[: -len(f"wrote {out}\n")] == (out / "report.md").read_text()
    assert sorted(path.name for path in out.iterdir()) == ["psnr_per_frame.png", "report.json", "report.md",
                                                           "scores.png"]  # fmt: skip
    document = strict((out / "report.json").read_text())
    assert document["settings"]["cases"] == ["exact", "grey"]
    assert (document["settings"]["runs"], document["settings"]["sample_every"]) == (1, 2)
    assert document["settings"]["fid_fvd_reference"] == "target"  # every case has one
    assert document["distribution"] == {
        "values": {},
        "skipped": {
            "FID": NO_INCEPTION,
            "FVD": "no I3D file given (StyleGAN-V's i3d_torchscript.pt)",
            "CLIP-T": "no CLIP model given (a transformers CLIPModel folder or hub id)",
            "CLIP-F": "no CLIP model given (a transformers CLIPModel folder or hub id)",
            "FVD-V": "no I3D file given (StyleGAN-V's i3d_torchscript.pt)",
            "CLIP-V": "no CLIP model given (a transformers CLIPModel folder or hub id)",
        },
    }
    assert document["cases"][0]["psnr"] is None  # the ground truth as result
    assert run(*args) == (1, "", f"error: {out / 'report.json'}: exists already; pass --overwrite "
                                 "(overwrite=True) to replace it\n")  # fmt: skip
    assert run(*args, "--overwrite")[0] == 0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("missing",), "error: {tmp}/missing: no such folder\n"),
        (("{tmp}", "--runs", "0"), "error: runs must be at least 1, got 0\n"),
        (("{tmp}", "--sample-every", "0"), "error: sample_every must be at least 1, got 0\n"),
        (("{tmp}",), "error: {tmp}: no case folders: a case is a subfolder holding source.*, result.* and "
                     "trajectory.*\n"),
    ],
)  # fmt: skip
def test_cli_refuses_bad_input_in_one_line_before_scoring(run, tmp_path, arguments, message):
    arguments = [argument.replace("{tmp}", str(tmp_path)) for argument in arguments]
    if arguments[0] == "missing":
        arguments[0] = str(tmp_path / "missing")
    code, stdout, stderr = run("eval", "score", *arguments, "-o", tmp_path / "out")
    assert (code, stdout, stderr) == (1, "", message.replace("{tmp}", str(tmp_path)))
    assert not (tmp_path / "out").exists()
