"""Content hash of a model folder: what a cache key needs to know about a model's weights.

Hashing is done on the files (configs, tokenizer, weights), without loading any model, so
planning a film stays fast. Results are memoised per file (path, size, mtime): in the process,
and for large files also on disk (`file-digests.json` in motionq's cache folder), so that every
`storyboard plan` does not re-read gigabytes of Wan 2.1 weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

from motionq.paths import cache_dir

_HASHED_SUFFIXES = {".json", ".safetensors", ".txt", ".model"}
_memo: dict[tuple[str, int, int], str] = {}
#: Files at least this large have their digest kept on disk across processes.
PERSIST_BYTES = 64 << 20


def _store() -> Path:
    return cache_dir() / "file-digests.json"


def _read_store() -> dict[str, str]:
    try:
        data = json.loads(_store().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # absent or damaged: hash again


def _write_store(key: str, digest: str) -> None:
    data = _read_store()
    data[key] = digest
    path = _store()
    # Per process and thread: the TUI plans in worker threads, which must not share a temp file.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(data, indent=0))
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # a read-only or full cache only costs time


def file_digest(path: Path) -> str:
    """sha256 of one file, memoised on (path, size, mtime)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key in _memo:
        return _memo[key]
    persist = st.st_size >= PERSIST_BYTES
    skey = "|".join(map(str, key))
    digest = _read_store().get(skey) if persist else None
    if digest is None:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        digest = h.hexdigest()
        if persist:
            _write_store(skey, digest)
    _memo[key] = digest
    return digest


def folder_fingerprint(folder: Path) -> str:
    """A stable hash over every config and weight file of a diffusers model folder."""
    folder = Path(folder)
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.suffix in _HASHED_SUFFIXES and ".tmp" not in p.name:
            h.update(p.relative_to(folder).as_posix().encode())
            h.update(file_digest(p).encode())
    return h.hexdigest()[:16]
