"""The one small interface between an application (the storyboard tool) and motionq.

An application describes *what* to render as plain data (`ShotRequest`, `GroupRequest`) and
hands it to a `Backbone`, which returns frames. Everything about *how* (attention control,
motion transfer, multi-shot consistency) stays behind `Backbone.render_group`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, asdict
from pathlib import Path
from typing import Callable, Mapping, Protocol, runtime_checkable

import numpy as np


__all__ = [
    "DEFAULT_VARIANT", "PAPER_REFINE_RANGE", "PAPER_VARIANTS", "SHEET_LABEL_HEIGHT", "VARIANTS", "VARIANT_FIELDS",
    "Backbone", "BackboneError", "ConsistencyConfig", "Frames", "GroupRequest", "MotionSpec", "Progress",
    "ProgressFn", "SheetRow", "ShotRequest", "available_models", "contact_sheet_image", "default_variant",
    "file_digest", "load_backbone", "model_fingerprint", "model_settings", "package_version",
]

#: The paper's consistency variants, in the order it ablates them.
PAPER_VARIANTS: tuple[str, ...] = (
    "vanilla",
    "sdsa",
    "sdsa+qpres",
    "sdsa+qpres+qflow",
    "sdsa+qpres+qflow+refine",
)
#: Every variant a request may name: the paper's, plus "refine" (ours): the refinement alone,
#: without shared attention or Q intervention. On the built-in model sharing subject keys costs
#: motion and aligns no identity, and the refinement does the aligning (docs/consistency.md).
VARIANTS: tuple[str, ...] = PAPER_VARIANTS + ("refine",)
#: The paper's full method with refinement: the variant of a storyboard that names none, for a
#: model that names no default of its own (`motionq.backbones.default_variant`; the built-in
#: model names "refine", docs/consistency.md).
DEFAULT_VARIANT = "sdsa+qpres+qflow+refine"


@dataclass(frozen=True)
class MotionSpec:
    """A motion-reference clip for zero-shot motion transfer by query injection."""

    clip: Path
    strength: float = 0.6


#: The paper's refinement range (VideoCrafter2, DDPM timesteps): what an unset `refine_range`
#: means for a model that carries no range of its own (`model_settings(...)["refine_range"]`).
PAPER_REFINE_RANGE: tuple[int, int] = (590, 950)
#: The `ConsistencyConfig` fields each variant reads (the rest cannot change its frames).
VARIANT_FIELDS: dict[str, tuple[str, ...]] = {
    "vanilla": (),
    "sdsa": ("sdsa_range",),
    "sdsa+qpres": ("sdsa_range",),  # Q-Preservation over the whole SDSA range: no t_pres
    "sdsa+qpres+qflow": ("sdsa_range", "t_pres", "keyframe_every"),
    "sdsa+qpres+qflow+refine": ("sdsa_range", "t_pres", "keyframe_every", "refine_range"),
    "refine": ("refine_range",),
}


@dataclass(frozen=True)
class ConsistencyConfig:
    """Settings of the multi-shot consistency method (timesteps on the 0..1000 scale).

    A step with timestep t (1000 = pure noise) is intervened on when it lies in a range.
    """

    variant: str = "vanilla"
    sdsa_range: tuple[int, int] = (550, 950)
    t_pres: int = 750
    keyframe_every: int = 3
    #: None: the model's own range (`MultiShotOptions.refine_range`; the paper's (590, 950)
    #: unless the backbone carries another).
    refine_range: tuple[int, int] | None = None
    anchors: str = "auto"  # "auto": planner picks; "off": joint rendering of the whole group

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ShotRequest:
    """One shot to render. `subjects` are the character prompt texts present in the shot,
    used to locate the characters (subject masks) for consistency."""

    shot_id: str
    prompt: str
    num_frames: int
    seed: int
    steps: int = 20
    guidance: float = 4.0
    negative_prompt: str = ""
    subjects: tuple[str, ...] = ()
    characters: tuple[str, ...] = ()
    motion: MotionSpec | None = None


@dataclass(frozen=True)
class GroupRequest:
    """Shots rendered together so that shared characters stay consistent."""

    shots: tuple[ShotRequest, ...]
    consistency: ConsistencyConfig = field(default_factory=ConsistencyConfig)
    #: Anchor mode: these shots are anchors, rendered together (their subject keys/values may be
    #: reused from the backbone's anchor cache); every other shot renders alone against them.
    anchor_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Progress:
    """A progress event: `step` of `total` denoising steps done for `shot_ids`."""

    shot_ids: tuple[str, ...]
    step: int
    total: int
    phase: str = "sample"


ProgressFn = Callable[[Progress], None]

#: A rendered shot: uint8 array of shape (frames, height, width, 3).
Frames = np.ndarray


@runtime_checkable
class Backbone(Protocol):
    """A text-to-video model behind the motionq method."""

    name: str

    def fingerprint(self) -> str:
        """A stable hash of everything in the model that changes its output (weights, config)."""

    def native_size(self) -> tuple[int, int]:
        """(height, width) the model generates at; the edit is scaled from this."""

    def render_group(
        self, request: GroupRequest, progress: ProgressFn | None = None
    ) -> Mapping[str, Frames]:
        """Render every shot of the group; returns frames by shot id.

        A backbone may also offer `runtime() -> dict[str, str]` (device, dtype, library
        versions); the storyboard records it beside each rendered shot when present."""


class BackboneError(RuntimeError):
    """A model could not be found or loaded; the message says what to do."""


# -- models by name, without the application importing motionq's internals ------------------
# Lazy imports: planning a film needs fingerprints and settings, and must not pay for torch.


def package_version() -> str:
    """The installed version of storyboard-motionq (both commands print it with --version)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("storyboard-motionq")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


def available_models() -> list[str]:
    """Names of the registered backbones (any local folder in diffusers layout works too)."""
    from motionq import backbones

    return backbones.available()


def load_backbone(name_or_path: str, **options) -> Backbone:
    """Load a backbone by registered name ("animatic", "tiny", "wan2.1") or from a local folder
    in diffusers layout. Raises `BackboneError` saying what is missing."""
    from motionq import backbones

    return backbones.load_backbone(name_or_path, **options)


def model_fingerprint(name_or_path: str) -> str:
    """Hash of a model's weights and configs (for cache keys); loads no model."""
    from motionq import backbones

    return backbones.model_fingerprint(name_or_path)


def model_settings(name_or_path: str) -> dict:
    """A model's own method defaults (blocks, weights, ranges) that change its frames; loads no model."""
    from motionq import backbones

    return backbones.model_settings(name_or_path)


def default_variant(name_or_path: str) -> str:
    """The consistency variant a model renders with when a request names none; loads no model."""
    from motionq import backbones

    return backbones.default_variant(name_or_path)


def file_digest(path: str | Path) -> str:
    """Content hash of a file (memoised by size and mtime): what a motion clip adds to a cache key."""
    from motionq.backbones.fingerprint import file_digest as digest

    return digest(Path(path))


# Contact-sheet drawing, loaded on first use: it brings OpenCV and PIL, which validating and
# planning a film do not need.
_SHEET_NAMES = {"SHEET_LABEL_HEIGHT": "LABEL_HEIGHT", "SheetRow": "SheetRow",
                "contact_sheet_image": "contact_sheet_image"}


def __getattr__(name: str):
    if name in _SHEET_NAMES:
        from motionq import sheets

        return getattr(sheets, _SHEET_NAMES[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
