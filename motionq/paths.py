"""Where motionq keeps its caches (kept free of heavy imports: planning a film uses it)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """motionq's cache root: $MOTIONQ_CACHE, else ~/.cache/motionq."""
    return Path(os.environ.get("MOTIONQ_CACHE", "~/.cache/motionq")).expanduser()
