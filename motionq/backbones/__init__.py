"""Backbones by name: the registry that `load_backbone` resolves.

A backbone name maps to "module:factory"; modules are imported lazily so that asking for the
tiny test model never imports the code of a large one. A path to a folder in diffusers layout
works too (see `motionq.backbones.pipeline.load_pipeline_folder`).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from motionq.api import DEFAULT_VARIANT, Backbone, BackboneError

_REGISTRY: dict[str, str] = {
    "animatic": "motionq.backbones.animatic:load_animatic",
    "tiny": "motionq.backbones.tiny:load_tiny",
    "wan2.1": "motionq.backbones.wan:load_wan21",
}

DEFAULT_BACKBONE = "animatic"


def available() -> list[str]:
    """Registered backbone names."""
    return sorted(_REGISTRY)


def register(name: str, target: str) -> None:
    """Register a backbone factory given as "module:function"."""
    _REGISTRY[name] = target


def model_folder(name_or_path: str) -> Path:
    """The local folder holding a model's files, without loading it.

    A registered backbone's module provides `model_folder()` (building the folder first if it is
    generated, like the tiny test model); anything else must be a folder path.
    """
    if name_or_path in _REGISTRY:
        module_name = _REGISTRY[name_or_path].split(":")[0]
        return Path(importlib.import_module(module_name).model_folder())
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    raise BackboneError(
        f"unknown model '{name_or_path}' (registered: {', '.join(available())}; "
        "or a path to a local model folder in diffusers layout)"
    )


def model_fingerprint(name_or_path: str) -> str:
    """Hash of a model's weights and configs (for cache keys); loads no model."""
    from motionq.backbones.fingerprint import folder_fingerprint

    folder = model_folder(name_or_path)
    if not (folder / "model_index.json").is_file():
        raise BackboneError(f"model '{name_or_path}': no model_index.json in {folder}")
    return folder_fingerprint(folder)


def model_settings(name_or_path: str) -> dict:
    """A registered backbone's own method defaults (shared-key weight, intervened blocks, ...),
    without loading it: cache keys need them next to `model_fingerprint`. {} for a plain folder,
    which renders with the method's defaults."""
    if name_or_path in _REGISTRY:
        module = importlib.import_module(_REGISTRY[name_or_path].split(":")[0])
        settings = getattr(module, "method_settings", None)
        return dict(settings()) if settings is not None else {}
    return {}


def default_variant(name_or_path: str) -> str:
    """The consistency variant a model renders with when a storyboard or request names none:
    the registered module's `DEFAULT_VARIANT` if it has one (the built-in model: "refine", see
    docs/consistency.md), else the paper's full method (`motionq.api.DEFAULT_VARIANT`).
    Loads no model."""
    if name_or_path in _REGISTRY:
        module = importlib.import_module(_REGISTRY[name_or_path].split(":")[0])
        return str(getattr(module, "DEFAULT_VARIANT", DEFAULT_VARIANT))
    return DEFAULT_VARIANT


def load_backbone(name_or_path: str, **options) -> Backbone:
    """Load a backbone by registered name, or from a local folder in diffusers layout."""
    if name_or_path in _REGISTRY:
        module_name, func = _REGISTRY[name_or_path].split(":")
        return getattr(importlib.import_module(module_name), func)(**options)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        from motionq.backbones.pipeline import load_pipeline_folder

        return load_pipeline_folder(path, **options)
    raise BackboneError(
        f"unknown model '{name_or_path}' (registered: {', '.join(available())}; "
        "or a path to a local model folder in diffusers layout)"
    )
