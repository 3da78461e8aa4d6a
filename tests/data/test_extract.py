"""``dataset extract``: split tar parts unpacked as one stream, resumed after an interruption, and kept safe."""

from __future__ import annotations

import io
import random
import tarfile
from pathlib import Path

import pytest

from recammaster.data.extract import ExtractError, extract_parts, sort_parts

PART_COUNT = 12  # more than 9, so that plain string sorting would put part10 before part2


def _split(data: bytes, folder: Path, count: int = PART_COUNT) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    size = -(-len(data) // count)
    parts = []
    for index in range(count):
        part = folder / f"MultiCamVideo-Dataset.part{index + 1}"
        part.write_bytes(data[index * size : (index + 1) * size])
        parts.append(part)
    return parts


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def archive_parts(multicam_root: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The session tree as a .tar.gz, split into 12 parts, listed in shuffled order."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(multicam_root, arcname=multicam_root.name)
    parts = _split(buffer.getvalue(), tmp_path_factory.mktemp("parts"))
    random.Random(0).shuffle(parts)
    return parts


def test_parts_sort_naturally_and_gaps_are_refused(tmp_path: Path):
    parts = _split(b"x" * 100, tmp_path)
    assert [p.name for p in sort_parts(reversed(parts))] == [f"MultiCamVideo-Dataset.part{i}" for i in range(1, 13)]
    with pytest.raises(ExtractError) as error:
        sort_parts([parts[0], parts[2]])
    assert str(error.value) == (
        "archive part 2 is missing between MultiCamVideo-Dataset.part1 and MultiCamVideo-Dataset.part3"
    )
    with pytest.raises(ExtractError, match="archive part not found"):
        sort_parts([tmp_path / "MultiCamVideo-Dataset.part99"])


def test_round_trip_with_verify(archive_parts: list[Path], multicam_root: Path, tmp_path: Path, run_dataset):
    output = tmp_path / "out"
    code, out, err = run_dataset("extract", *archive_parts, "-o", output, "--verify", "--no-progress")
    assert code == 0, err
    expected = _files(multicam_root)
    assert _files(output / multicam_root.name) == expected
    lines = out.strip().splitlines()
    assert lines[0].startswith(f"extracted {len(expected)} files, skipped 0 already present (")
    assert lines[-1] == "2 scenes checked: 2 ok, 0 with problems; resolution 32x32 (2 scenes)"


def test_resume_after_an_interrupted_run(archive_parts: list[Path], multicam_root: Path, tmp_path: Path, run_dataset):
    output = tmp_path / "out"
    first_half = sort_parts(archive_parts)[: PART_COUNT // 2]
    code, _, err = run_dataset("extract", *first_half, "-o", output, "--no-progress")
    assert code == 1
    assert err.startswith(
        "error: the archive in MultiCamVideo-Dataset.part1 .. MultiCamVideo-Dataset.part6 "
        "ends early or is damaged after"
    )
    assert "Run again with every part to resume" in err
    expected = _files(multicam_root)
    partial = _files(output / multicam_root.name)
    assert 0 < len(partial) < len(expected)
    assert all(expected[name] == data for name, data in partial.items())  # no half-written files
    assert not [p for p in output.rglob("*") if p.name.endswith(".partial")]

    result = extract_parts(archive_parts, output, progress=False)
    assert (result.skipped, result.extracted) == (len(partial), len(expected) - len(partial))
    assert _files(output / multicam_root.name) == expected


def _tar_with(member: tarfile.TarInfo, data: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        harmless = tarfile.TarInfo("MultiCamVideo-Dataset/readme.txt")
        harmless.size = 2
        archive.addfile(harmless, io.BytesIO(b"ok"))
        member.size = len(data) if member.isfile() else 0
        archive.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return buffer.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type, member.linkname = kind, link
    return member


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        (_member("../evil.txt"), "path leads outside"),
        (_member("MultiCamVideo-Dataset/../../evil.txt"), "path leads outside"),
        (_member("/tmp/evil.txt"), "absolute path"),
        (_member("MultiCamVideo-Dataset/link", tarfile.SYMTYPE, "../../evil.txt"), "link to '../../evil.txt' points"),
        (_member("MultiCamVideo-Dataset/link", tarfile.SYMTYPE, "/etc/passwd"), "link to absolute path '/etc/passwd'"),
        (_member("MultiCamVideo-Dataset/hard", tarfile.LNKTYPE, "../evil.txt"), "link to '../evil.txt' points"),
        (_member("MultiCamVideo-Dataset/fifo", tarfile.FIFOTYPE), "unsupported type"),
    ],
)
def test_unsafe_members_are_refused(member: tarfile.TarInfo, reason: str, tmp_path: Path, run_dataset):
    parts = _split(_tar_with(member, b"gotcha"), tmp_path / "parts", count=2)
    output = tmp_path / "deep" / "out"
    code, _, err = run_dataset("extract", *parts, "-o", output, "--no-progress")
    assert code == 1
    assert err.startswith(f"error: refusing archive member {member.name!r}: {reason}")
    assert not list(tmp_path.rglob("evil.txt"))
    assert not (output / "MultiCamVideo-Dataset" / "link").is_symlink()
    assert (output / "MultiCamVideo-Dataset" / "readme.txt").read_text() == "ok"  # members before it are kept


def test_links_inside_the_output_are_made(tmp_path: Path):
    parts = _split(_tar_with(_member("MultiCamVideo-Dataset/alias.txt", tarfile.SYMTYPE, "readme.txt")), tmp_path, 1)
    result = extract_parts(parts, tmp_path / "out", progress=False)
    alias = tmp_path / "out" / "MultiCamVideo-Dataset" / "alias.txt"
    assert (result.extracted, result.links) == (1, 1)
    assert alias.is_symlink()
    assert alias.read_text() == "ok"
    # Again: the link is replaced, not followed, and the file it points at is kept.
    extract_parts(parts, tmp_path / "out", progress=False)
    assert alias.read_text() == "ok"
