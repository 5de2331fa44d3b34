"""The built-in "animatic" model: a small Wan-architecture text-to-video model trained on the
procedural sprite world (see docs/model-card.md).

The names that need torch (building and loading the pipeline) are imported on first use, so the
registry can ask this package for its weights folder and method settings while planning a film
without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from motionq.backbones.animatic.settings import DEFAULT_VARIANT, WEIGHTS_DIR, method_settings, model_folder

_FROM_BUILD = ("AnimaticConfig", "build_pipeline", "load_animatic", "published_config")

__all__ = ["DEFAULT_VARIANT", "WEIGHTS_DIR", "AnimaticConfig", "build_pipeline", "load_animatic", "method_settings",
           "model_folder", "published_config"]


def __getattr__(name: str) -> Any:
    if name in _FROM_BUILD:
        return getattr(importlib.import_module("motionq.backbones.animatic.build"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
