"""Messages of the terminal studio: small dataclasses, posted by widgets and worker threads.

Widgets say what the user did (`FieldEdited`, `ShotHighlighted`); workers say what happened
off the UI thread (`PlanReady`, `ShotStarted`, `StepProgress`, `ShotFinished`, `RenderDone`,
`ExportDone`). The app is the only place that changes the document or the render state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message


# -- from widgets -----------------------------------------------------------------------------


@dataclass
class ShotHighlighted(Message):
    """The cursor of the shot list moved to shot `index`."""

    index: int


@dataclass
class CharacterHighlighted(Message):
    """The cursor of the character list moved to character `name`."""

    name: str


@dataclass
class FieldEdited(Message):
    """The user typed into an editor field: `target` is ("shot", index) or ("character", name)."""

    kind: str
    key: Any
    field: str
    text: str


@dataclass
class ProblemChosen(Message):
    """The user picked a problem in the problems panel: go to what it is about."""

    field: str


# -- from workers -----------------------------------------------------------------------------


@dataclass
class PlanReady(Message):
    """A plan of document version `generation` (or why there is none: `error`)."""

    generation: int
    plan: Any = None  # storyboard.plan.Plan
    storyboard: Any = None  # storyboard.schema.Storyboard
    cached: frozenset[str] = frozenset()  # keys the cache holds
    error: str | None = None


@dataclass
class RenderQueued(Message):
    """A render began: these cache keys wait their turn."""

    keys: tuple[str, ...]


@dataclass
class ShotStarted(Message):
    """The backbone started on these shots (ids of the job's plan) and keys."""

    shot_ids: tuple[str, ...]
    keys: tuple[str, ...]


@dataclass
class StepProgress(Message):
    """Step `step` of `total` done for the shots being rendered.

    Progress comes faster than a terminal redraws: a newer one replaces an older one still
    waiting in the queue (`can_replace`), so the UI never lags behind the render.
    """

    shot_ids: tuple[str, ...]
    keys: tuple[str, ...]
    step: int
    total: int
    phase: str = "sample"

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StepProgress)


@dataclass
class ShotFinished(Message):
    """A shot is done: `result` is a storyboard.render.ShotResult."""

    result: Any


@dataclass
class RenderDone(Message):
    """The render worker ended: results per shot, whether it was cancelled, or a fatal error."""

    results: list = field(default_factory=list)
    cancelled: bool = False
    error: str | None = None


@dataclass
class ExportDone(Message):
    """An export ended: paths written by format, or the error."""

    written: dict = field(default_factory=dict)
    error: str | None = None
