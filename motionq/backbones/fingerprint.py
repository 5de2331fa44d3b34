"""Content hash of a model folder: what a cache key needs to know about a model's weights.

Hashing is done on the files (configs, tokenizer, weights), without loading any model, so
planning a film stays fast. Results are memoised per file (path, size, mtime).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

_HASHED_SUFFIXES = {".json", ".safetensors", ".txt", ".model"}
_memo: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    """sha256 of one file, memoised on (path, size, mtime)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _memo:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _memo[key] = h.hexdigest()
    return _memo[key]


def folder_fingerprint(folder: Path) -> str:
    """A stable hash over every config and weight file of a diffusers model folder."""
    folder = Path(folder)
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.suffix in _HASHED_SUFFIXES and ".tmp" not in p.name:
            h.update(p.relative_to(folder).as_posix().encode())
            h.update(file_digest(p).encode())
    return h.hexdigest()[:16]
