"""Test setup shared by every test file.

The dev machine has 2 cores shared with a long training job: torch runs on ONE thread with a
passive OpenMP wait policy (two spinning torch processes slow each other down 20-80x), and
nothing may reach the network (the hub is unreachable here; offline mode fails fast instead of
timing out). These must be set before torch / huggingface_hub are imported, hence at the top.
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"
os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

from pathlib import Path

import numpy as np
import pytest

try:  # torch is optional for tests that don't need it, but when present: one thread
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    torch = None


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory) -> Path:
    """The tiny random Wan, saved once per test session in diffusers layout."""
    from motionq.backbones.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("models") / "tiny-wan")


@pytest.fixture(scope="session")
def tiny_backbone(tiny_folder):
    """The tiny Wan loaded through the generic folder loader (CPU, fp32)."""
    from motionq.backbones.tiny import load_tiny

    return load_tiny(tiny_folder)


def make_moving_square(num_frames: int = 9, size: tuple[int, int] = (32, 32), seed: int = 0) -> np.ndarray:
    """A coloured square moving in a straight line over a flat background: uint8 (F, H, W, 3)."""
    rs = np.random.RandomState(seed)
    h, w = size
    clip = np.empty((num_frames, h, w, 3), np.uint8)
    clip[:] = rs.randint(0, 80, 3)
    colour = rs.randint(100, 256, 3)
    side = max(2, min(h, w) // 3)
    x0, y0 = rs.randint(0, max(1, w - side)), rs.randint(0, max(1, h - side))
    dx, dy = rs.randint(-2, 3, 2)
    for i in range(num_frames):
        x = int(np.clip(x0 + dx * i, 0, w - side))
        y = int(np.clip(y0 + dy * i, 0, h - side))
        clip[i, y : y + side, x : x + side] = colour
    return clip


@pytest.fixture
def moving_square():
    return make_moving_square
