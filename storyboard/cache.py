"""The render cache: `.storyboard/` beside the storyboard, one entry per shot cache key.

An entry is a folder `shots/<key>/` holding `frames.npy` (uint8, F x H x W x 3), optional extra
arrays (subject masks) and `meta.json`. It is built in a temporary folder and renamed into place
in one step, so a render killed at any moment (even kill -9) leaves either a whole entry or
none; leftovers of interrupted writes are swept on the next open. The sweep leaves alone the
temporary folders of processes that are still running (the name carries the writer's pid), so a
`storyboard plan` or a TUI re-plan never pulls a folder out from under a render in progress.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CACHE_DIRNAME = ".storyboard"
_TMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class CacheEntry:
    """A finished shot: its frames, metadata and any extra arrays (e.g. `masks`)."""

    key: str
    path: Path
    meta: dict

    @property
    def frames(self) -> np.ndarray:
        return np.load(self.path / "frames.npy", allow_pickle=False)

    def extra(self, name: str) -> np.ndarray | None:
        p = self.path / f"{name}.npy"
        return np.load(p, allow_pickle=False) if p.is_file() else None


class RenderCache:
    """Content-addressed store of rendered shots under `root` (usually `<film dir>/.storyboard`)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.shots = self.root / "shots"
        self.shots.mkdir(parents=True, exist_ok=True)
        self.sweep()

    @classmethod
    def beside(cls, storyboard_path: Path) -> "RenderCache":
        """The cache that belongs to a storyboard file."""
        return cls(Path(storyboard_path).resolve().parent / CACHE_DIRNAME)

    def sweep(self) -> None:
        """Remove half-written entries left by interrupted renders (writers no longer running),
        and put back an entry a dead `--force` writer had moved aside but not yet replaced."""
        for p in sorted(self.shots.glob(f"{_TMP_PREFIX}*")):
            try:
                age = time.time() - p.stat().st_mtime
            except OSError:
                continue
            if _writer_alive(p.name, age):
                continue
            if p.name.startswith(f"{_TMP_PREFIX}old-"):
                key = p.name[len(f"{_TMP_PREFIX}old-"):].rsplit("-", 2)[0]
                try:
                    if self.get(key) is None and (p / "meta.json").is_file():
                        shutil.rmtree(self._entry_dir(key), ignore_errors=True)
                        os.rename(p, self._entry_dir(key))
                        continue
                except (OSError, ValueError):
                    pass
            shutil.rmtree(p, ignore_errors=True)

    def _tmp_dir(self, tag: str) -> Path:
        # The pid lets `sweep` of another process tell live writers from leftovers; this
        # process remembers its own folders (a leftover may carry the same pid: PID 1 in a
        # container every time).
        path = self.shots / f"{_TMP_PREFIX}{tag}-{os.getpid()}-{time.monotonic_ns()}"
        _OURS.add(path.name)
        return path

    def _entry_dir(self, key: str) -> Path:
        if not key or any(c in key for c in "/\\.") :
            raise ValueError(f"invalid cache key {key!r}")
        return self.shots / key

    def has(self, key: str) -> bool:
        """Whether a whole, readable entry exists (a damaged one counts as missing: re-rendered)."""
        return self.get(key) is not None

    def get(self, key: str) -> CacheEntry | None:
        """The entry, or None when it is missing or damaged (unreadable metadata, no frames)."""
        d = self._entry_dir(key)
        try:
            meta = json.loads((d / "meta.json").read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict) or not (d / "frames.npy").is_file():
            return None
        return CacheEntry(key, d, meta)

    def put(self, key: str, frames: np.ndarray, meta: dict,
            extras: dict[str, np.ndarray] | None = None, replace: bool = False) -> CacheEntry:
        """Store a finished shot atomically; returns the entry. A valid entry already under
        `key` (another writer's: same key, same frames) is kept unless `replace` (--force)."""
        frames = np.ascontiguousarray(frames, dtype=np.uint8)
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be (F, H, W, 3) uint8, got {frames.shape}")
        final = self._entry_dir(key)
        if not replace and (existing := self.get(key)) is not None:
            return existing
        tmp = self._tmp_dir(key)
        aside: Path | None = None
        tmp.mkdir(parents=True)
        try:
            np.save(tmp / "frames.npy", frames, allow_pickle=False)
            for name, arr in (extras or {}).items():
                np.save(tmp / f"{name}.npy", np.asarray(arr), allow_pickle=False)
            meta = dict(meta, key=key, frames_shape=list(frames.shape), created=time.time())
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1, default=str))
            for p in tmp.iterdir():
                _fsync(p)
            if final.exists():
                # Replaced (or damaged): moved aside first; if this process dies before the
                # next rename, the next sweep puts the old entry back.
                aside = self._tmp_dir(f"old-{key}")
                try:
                    os.rename(final, aside)
                except FileNotFoundError:
                    aside = None
            try:
                os.rename(tmp, final)
            except OSError:
                if (existing := self.get(key)) is not None:  # another writer was quicker
                    return existing
                raise
            _fsync(self.shots)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # gone already when renamed into place
            _OURS.discard(tmp.name)
            if aside is not None:
                _OURS.discard(aside.name)
                if self.get(key) is None:  # the new entry did not make it: the old one back
                    try:
                        os.rename(aside, final)
                    except OSError:
                        pass  # left for the next sweep, which puts it back
                else:
                    shutil.rmtree(aside, ignore_errors=True)
        return CacheEntry(key, final, meta)

    def keys(self) -> list[str]:
        return sorted(p.name for p in self.shots.iterdir() if not p.name.startswith(_TMP_PREFIX))


#: Temporary folders this process is writing (its threads', e.g. the TUI's render worker).
_OURS: set[str] = set()
#: A temporary folder of another process is taken for a leftover after this long anyway (pids
#: get reused; Windows has no cheap liveness probe).
_STALE_AFTER_S = 24 * 3600


def _writer_alive(name: str, folder_age_s: float | None = None) -> bool:
    """Whether the writer of a temporary folder `.tmp-<tag>-<pid>-<ns>` may still be writing."""
    if name in _OURS:
        return True
    try:
        pid = int(name.rsplit("-", 2)[1])
    except (IndexError, ValueError):
        return False
    if pid == os.getpid():
        return False  # not in _OURS: a leftover of an earlier process that had our pid
    if folder_age_s is not None and folder_age_s > _STALE_AFTER_S:
        return False
    if os.name == "nt":
        return True  # os.kill(pid, 0) would send Ctrl-C there; rely on the age
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
