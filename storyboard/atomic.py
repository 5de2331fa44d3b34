"""Atomic file outputs: a reader sees the old file or the whole new one, never half of one.

Every stage that writes something a person or a later stage reads (films, clips, sheets,
timelines, cache entries) goes through here, so an interrupted render never leaves a truncated
mp4 that looks finished.

The pattern is the usual one: write a temporary file in the *same folder* (so ``os.replace``
is a rename on one filesystem, which POSIX and Windows both make atomic), flush it to disk,
rename it onto the target, then flush the folder so the rename itself survives a crash.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "temp_name_for"]

# Temporary names start with this so they are hidden and easy to spot / clean up.
TEMP_PREFIX = "."
TEMP_MARKER = ".tmp-"


def temp_name_for(target: str | os.PathLike[str], suffix: str | None = None) -> Path:
    """A fresh temporary path next to ``target`` that keeps its extension.

    The extension is kept because writers pick their format from it (moviepy picks the codec
    from ``.mp4``, OpenTimelineIO picks the adapter from ``.otio``, PIL the format from ``.png``).
    """
    target = Path(target)
    ext = target.suffix if suffix is None else suffix
    return target.with_name(f"{TEMP_PREFIX}{target.name}{TEMP_MARKER}{secrets.token_hex(6)}{ext}")


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    # Not every platform / filesystem lets a folder be opened or synced (Windows, some FUSE).
    with suppress(OSError):
        _fsync_path(folder)


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success move it onto ``path`` atomically.

    The caller writes the whole file at the yielded path (with any tool: ffmpeg, PIL, OTIO).
    When the ``with`` block ends normally the file is fsynced and ``os.replace``d onto
    ``path``. If the block raises, the temporary file is removed and ``path`` is left exactly
    as it was (absent, or the previous complete version).

    The temporary name keeps ``path``'s extension (or ``suffix`` if given) and is not created
    in advance, so writers that refuse to overwrite are fine, and the final file gets normal
    permissions from the umask (``mkstemp`` would make it 0600).

    Example::

        with atomic_path("out/film.mp4") as tmp:
            clip.write_videofile(str(tmp))
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name_for(target, suffix)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"the writer did not create {tmp} (meant for {target})")
        _fsync_path(tmp)
        os.replace(tmp, target)
    except BaseException:
        # BaseException too: a Ctrl-C mid-write must not leave a stray temp file behind.
        with suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(target.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and durably; returns ``Path(path)``."""
    with atomic_path(path) as tmp:
        with open(tmp, "xb") as f:
            f.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically and durably; returns ``Path(path)``."""
    return atomic_write_bytes(path, text.encode(encoding))
