"""The long work of the studio, run in worker threads: planning, rendering and exporting.

Everything here goes through the same code as the command line (load_text -> build_plan ->
RenderCache.beside -> RenderJob -> export_all), so a shot the studio rendered is a shot
`storyboard render` finds cached, and the other way round. Results travel back to the UI as
messages (storyboard.tui.messages); nothing here touches a widget.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable

from textual.message_pump import MessagePump

from motionq.api import Backbone, Progress
from storyboard.cache import RenderCache
from storyboard.plan import Plan, build_plan
from storyboard.render import RenderJob, ShotResult
from storyboard.schema import Storyboard
from storyboard.tui.messages import ExportDone, PlanReady, RenderDone, RenderQueued, ShotFinished, ShotStarted, StepProgress

#: Seconds between two step-progress messages (the last step of a shot always gets through).
PROGRESS_INTERVAL = 0.05

BackboneLoader = Callable[[str], Backbone]


def default_backbone_loader(model: str) -> Backbone:
    """What `storyboard render` uses: the backbone registry."""
    from motionq.api import load_backbone

    return load_backbone(model)


def plan_for(storyboard: Storyboard) -> tuple[Plan, frozenset[str]]:
    """The plan of a validated storyboard and the cache keys already rendered (as the CLI sees them)."""
    plan = build_plan(storyboard)
    cache = RenderCache.beside(storyboard.path)
    return plan, frozenset(s.key for s in plan.shots if cache.has(s.key))


def make_plan(target: MessagePump, generation: int, storyboard: Storyboard) -> None:
    """Worker body: plan `storyboard` and post PlanReady (with the error when planning fails,
    e.g. a model that can't be found)."""
    try:
        plan, cached = plan_for(storyboard)
    except Exception as exc:  # a plan view that says why beats a crashed studio
        target.post_message(PlanReady(generation, error=f"{type(exc).__name__}: {exc}", storyboard=storyboard))
        return
    target.post_message(PlanReady(generation, plan=plan, storyboard=storyboard, cached=cached))


class MessageListener:
    """A RenderListener that turns render events into messages for the UI thread.

    Step events are throttled to one per PROGRESS_INTERVAL (plus every shot's last step); the
    message queue coalesces what still piles up (StepProgress.can_replace).
    """

    def __init__(self, target: MessagePump, plan: Plan):
        self.target = target
        self.keys = {s.shot_id: s.key for s in plan.shots}
        self._last = 0.0
        self._current: tuple[str, ...] = ()

    def _keys(self, ids: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(self.keys[i] for i in ids if i in self.keys)

    def shot_started(self, shot_ids: tuple[str, ...]) -> None:
        self._current = tuple(shot_ids)
        self.target.post_message(ShotStarted(tuple(shot_ids), self._keys(tuple(shot_ids))))

    def step(self, progress: Progress) -> None:
        now = time.monotonic()
        if progress.step < progress.total and now - self._last < PROGRESS_INTERVAL:
            return
        self._last = now
        # Progress names every shot in the backbone call (anchors too): report the targets.
        ids = self._current or tuple(progress.shot_ids)
        self.target.post_message(StepProgress(ids, self._keys(ids), progress.step, progress.total, progress.phase))

    def shot_finished(self, result: ShotResult) -> None:
        self.target.post_message(ShotFinished(result))


class BackboneCache:
    """Loaded backbones by model name: loading is the slow part, do it once per session."""

    def __init__(self, loader: BackboneLoader):
        self.loader = loader
        self._loaded: dict[str, Backbone] = {}
        self._lock = threading.Lock()

    def get(self, model: str) -> Backbone:
        with self._lock:
            if model not in self._loaded:
                self._loaded[model] = self.loader(model)
            return self._loaded[model]


def new_job(plan: Plan, backbones: BackboneCache, shots: list[str] | None) -> RenderJob:
    """A render job of the CLI's kind (cache beside the storyboard); the listener is set later."""
    cache = RenderCache.beside(plan.storyboard)
    return RenderJob(plan, cache, lambda: backbones.get(plan.model), shots=shots)


def run_job(target: MessagePump, job: RenderJob) -> None:
    """Worker body: run a render job, posting progress; always ends with RenderDone."""
    job.listener = MessageListener(target, job.plan)
    queued = tuple(s.key for s in job.to_store())
    target.post_message(RenderQueued(queued))
    try:
        results = job.run()
    except Exception as exc:  # e.g. the model can't be loaded: say so, keep the studio alive
        target.post_message(RenderDone([], job.cancel.is_set(), f"{type(exc).__name__}: {exc}"))
        return
    target.post_message(RenderDone(results, job.cancel.is_set() or any(r.status == "cancelled" for r in results)))


def run_export(target: MessagePump, storyboard: Storyboard, plan: Plan, formats: tuple[str, ...]) -> None:
    """Worker body: write exports from the cache exactly as `storyboard export` does."""
    from storyboard.cli import UserError, outputs_for, export_all

    try:
        cache = RenderCache.beside(plan.storyboard)
        written = export_all(storyboard, plan, cache, outputs_for(storyboard, None), formats=formats)
    except UserError as exc:
        target.post_message(ExportDone(error=str(exc)))
        return
    except Exception as exc:
        target.post_message(ExportDone(error=f"{type(exc).__name__}: {exc}"))
        return
    target.post_message(ExportDone({k: Path(v) for k, v in written.items()}))
