"""Unpack the split MultiCamVideo archive as one stream: safe, resumable, checked.

The dataset ships as ``MultiCamVideo-Dataset.part*`` pieces of one tar archive, which upstream's README
joins with ``cat`` into a second copy on disk before running ``tar -xzvf``. Here the pieces are read in
natural order (part1, part2, ..., part10) through one reader and untarred as a stream (``tarfile`` mode
``'r|*'``, compression detected), so the joined archive never touches the disk.

- Resumable: a member whose file exists with the right size is skipped, so a stopped run (or one given
  only the parts downloaded so far) picks up where it ended.
- No half files: each member is written to a hidden temporary file beside its target, its size is
  checked, and only then is it renamed into place.
- Safe: absolute names, names that climb out of the output folder, links pointing outside it and
  device or FIFO members are refused with an error naming the member, before anything of it is written.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from recammaster.data.multicam import natural_key
from recammaster.errors import ReCamMasterError

COPY_CHUNK = 1 << 20
_TRAILING_NUMBER = re.compile(r"(\d+)$")


class ExtractError(ReCamMasterError, ValueError):
    """An archive that cannot be unpacked as asked: missing or incomplete parts, or an unsafe member."""


@dataclass
class ExtractResult:
    """What one extraction did."""

    extracted: int = 0  # files written
    skipped: int = 0  # files already there with the right size
    directories: int = 0
    links: int = 0
    bytes_read: int = 0  # archive bytes read (compressed)


# ---------------------------------------------------------------------------
# Parts
# ---------------------------------------------------------------------------


def sort_parts(parts: Sequence[str | Path]) -> list[Path]:
    """The part files in natural order, checked: all exist, none twice, no numbered part missing in between."""
    paths = sorted((Path(p) for p in parts), key=lambda p: natural_key(p.name))
    if not paths:
        raise ExtractError("no archive parts given")
    for path in paths:
        if not path.is_file():
            raise ExtractError(f"{path}: archive part not found")
    names = [p.name for p in paths]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ExtractError(f"{duplicates[0]}: archive part given twice")
    numbers = [_TRAILING_NUMBER.search(n) for n in names]
    if len(paths) > 1 and all(numbers):
        values = [int(m.group(1)) for m in numbers]
        gaps = sorted(set(range(values[0], values[-1] + 1)) - set(values))
        if gaps:
            raise ExtractError(f"archive part {gaps[0]} is missing between {names[0]} and {names[-1]}")
    return paths


class ChainedReader(io.RawIOBase):
    """Read several files one after another as if they were one, reporting each chunk's size."""

    def __init__(self, paths: Sequence[Path], on_read: Callable[[int], None] | None = None) -> None:
        super().__init__()
        self._paths = list(paths)
        self._handle: io.BufferedReader | None = None
        self._on_read = on_read
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        while True:
            if self._handle is None:
                if not self._paths:
                    return 0
                self._handle = open(self._paths.pop(0), "rb")  # noqa: SIM115 - closed at its end below
            count = self._handle.readinto(view)
            if count:
                self.bytes_read += count
                if self._on_read is not None:
                    self._on_read(count)
                return count
            self._handle.close()
            self._handle = None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        super().close()


# ---------------------------------------------------------------------------
# Members
# ---------------------------------------------------------------------------


def _inside(root: Path, relative: str) -> Path:
    """``root / relative`` resolved (links on disk followed); ValueError when that leaves ``root``."""
    target = (root / relative).resolve()
    if target != root and root not in target.parents:
        raise ValueError(relative)
    return target


def safe_destination(root: Path, member: tarfile.TarInfo) -> Path:
    """Where ``member`` goes under the resolved ``root``; raises :class:`ExtractError` for unsafe members."""
    name = member.name
    pure = PurePosixPath(name)
    if pure.is_absolute() or re.match(r"^[A-Za-z]:", name) or name.startswith("\\"):
        raise ExtractError(f"refusing archive member {name!r}: absolute path")
    if ".." in pure.parts:
        raise ExtractError(f"refusing archive member {name!r}: path leads outside {root}")
    try:
        # Resolve the folder only: a link member's own name must not be followed to its target.
        folder = _inside(root, str(pure.parent))
    except ValueError:
        raise ExtractError(f"refusing archive member {name!r}: path leads outside {root}") from None
    destination = folder / pure.name if pure.name else folder
    if member.issym() or member.islnk():
        link = member.linkname
        if PurePosixPath(link).is_absolute():
            raise ExtractError(f"refusing archive member {name!r}: link to absolute path {link!r}")
        # Symbolic links are relative to the link's folder, hard links to the archive root.
        base = str(PurePosixPath(name).parent / link) if member.issym() else link
        try:
            _inside(root, base)
        except ValueError:
            raise ExtractError(f"refusing archive member {name!r}: link to {link!r} points outside {root}") from None
    elif not (member.isfile() or member.isdir()):
        raise ExtractError(f"refusing archive member {name!r}: unsupported type (device, FIFO or other special file)")
    return destination


def _write_file(archive: tarfile.TarFile, member: tarfile.TarInfo, destination: Path) -> None:
    """Copy a member's data to a temporary file beside ``destination``, check its size, rename it in place."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".partial", dir=destination.parent)
    try:
        source = archive.extractfile(member)
        with os.fdopen(handle, "wb") as out:
            shutil.copyfileobj(source, out, COPY_CHUNK)
        written = os.path.getsize(temporary)
        if written != member.size:
            raise ExtractError(f"archive member {member.name!r}: got {written} bytes, the archive says {member.size}")
        os.chmod(temporary, (member.mode or 0o644) & 0o777 | 0o600)
        os.utime(temporary, (member.mtime, member.mtime))
        os.replace(temporary, destination)
    finally:
        Path(temporary).unlink(missing_ok=True)


def _make_link(member: tarfile.TarInfo, destination: Path, root: Path) -> None:
    if destination.is_symlink() or destination.exists():
        destination.unlink()
    destination.parent.mkdir(parents=True, exist_ok=True)
    if member.issym():
        os.symlink(member.linkname, destination)
    else:
        os.link(root / member.linkname, destination)


def extract_parts(parts: Sequence[str | Path], output: str | Path, *, progress: bool = True) -> ExtractResult:
    """Untar the concatenation of ``parts`` into ``output`` as a stream; see the module docstring.

    Raises :class:`ExtractError` when a member is unsafe, a file's size disagrees with the archive, or
    the archive ends early (parts missing at the end): files finished before that stay, and a later run
    with all parts skips them.
    """
    paths = sort_parts(parts)
    root = Path(output)
    root.mkdir(parents=True, exist_ok=True)
    root = root.resolve()
    result = ExtractResult()
    total = sum(p.stat().st_size for p in paths)
    with tqdm(total=total, unit="B", unit_scale=True, desc="extract", disable=not progress or None) as bar:
        reader = ChainedReader(paths, on_read=bar.update)
        try:
            with tarfile.open(fileobj=io.BufferedReader(reader, COPY_CHUNK), mode="r|*") as archive:
                for member in archive:
                    _extract_member(archive, member, root, result)
        except (tarfile.TarError, EOFError, zlib.error) as error:
            raise ExtractError(
                f"the archive in {paths[0].name} .. {paths[-1].name} ends early or is damaged after "
                f"{result.extracted + result.skipped} files ({error}); are all parts there and complete? "
                "Run again with every part to resume"
            ) from error
        finally:
            result.bytes_read = reader.bytes_read
            reader.close()
    return result


def _extract_member(archive: tarfile.TarFile, member: tarfile.TarInfo, root: Path, result: ExtractResult) -> None:
    destination = safe_destination(root, member)
    if member.isdir():
        destination.mkdir(parents=True, exist_ok=True)
        result.directories += 1
    elif member.issym() or member.islnk():
        _make_link(member, destination, root)
        result.links += 1
    elif destination.is_file() and destination.stat().st_size == member.size:
        result.skipped += 1  # the stream moves past the member's data on the next iteration
    else:
        _write_file(archive, member, destination)
        result.extracted += 1
