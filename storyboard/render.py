"""Plan -> motionq -> cache: render what the cache lacks, one finished shot at a time.

The unit of work follows the plan's groups: a shot alone (vanilla variant or a single-shot
group), a whole group jointly, or anchors first and then each other shot against them. Every
shot is stored the moment its unit finishes, so an interrupted render keeps everything already
done and the next run resumes from there. Progress and results are reported through a small
listener object, which the CLI turns into rich progress bars and the TUI into messages.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from motionq.api import Backbone, GroupRequest, Progress
from storyboard.cache import RenderCache
from storyboard.plan import Plan, PlannedShot


class RenderCancelled(Exception):
    """The user cancelled; finished shots are kept in the cache."""


@dataclass
class ShotResult:
    """What happened to one shot (`status`: rendered, cached, failed or cancelled)."""

    shot_id: str
    status: str
    seconds: float = 0.0
    key: str = ""
    error: str | None = None

    def to_json(self) -> dict:
        d = {"id": self.shot_id, "status": self.status, "seconds": round(self.seconds, 3), "key": self.key}
        if self.error:
            d["error"] = self.error
        return d


class RenderListener(Protocol):
    def shot_started(self, shot_ids: tuple[str, ...]) -> None: ...
    def step(self, progress: Progress) -> None: ...
    def shot_finished(self, result: ShotResult) -> None: ...


class _Silent:
    def shot_started(self, shot_ids):  # noqa: D401 - protocol no-ops
        pass

    def step(self, progress):
        pass

    def shot_finished(self, result):
        pass


@dataclass
class RenderJob:
    """A render of some or all shots of a plan."""

    plan: Plan
    cache: RenderCache
    load_backbone: Callable[[], Backbone]
    shots: list[str] | None = None  # None: every shot
    force: bool = False
    listener: RenderListener = field(default_factory=_Silent)
    cancel: threading.Event = field(default_factory=threading.Event)
    _backbone: Backbone | None = None

    # -- public -------------------------------------------------------------------------------
    def status(self) -> dict[str, str]:
        """`cached` or `stale` (not yet rendered) for every shot of the plan."""
        return {s.shot_id: "cached" if self.cache.has(s.key) else "stale" for s in self.plan.shots}

    def run(self) -> list[ShotResult]:
        """Render every selected shot whose key has no cache entry (all of them with `force`)."""
        wanted = set(self.shots) if self.shots is not None else {s.shot_id for s in self.plan.shots}
        unknown = wanted - {s.shot_id for s in self.plan.shots}
        if unknown:
            raise KeyError(f"unknown shot id(s): {', '.join(sorted(unknown))}")
        results: dict[str, ShotResult] = {}
        try:
            for members, todo, units in self._work(wanted):
                for s in members:
                    if s.shot_id in wanted and s not in todo:
                        results[s.shot_id] = ShotResult(s.shot_id, "cached", 0.0, s.key)
                        self.listener.shot_finished(results[s.shot_id])
                for unit, targets, anchor_ids in units:
                    self._render_unit(unit, targets, anchor_ids, results)
        except RenderCancelled:
            for s in self.plan.shots:
                if s.shot_id in wanted and s.shot_id not in results:
                    results[s.shot_id] = ShotResult(s.shot_id, "cancelled", 0.0, s.key)
        return [results[s.shot_id] for s in self.plan.shots if s.shot_id in results]

    def to_store(self) -> list[PlannedShot]:
        """The shots `run` will render and store, in order: the selected shots not cached (all
        of them with `force`) and the uncached shots their backbone calls produce with them."""
        wanted = set(self.shots) if self.shots is not None else {s.shot_id for s in self.plan.shots}
        return [t for _, _, units in self._work(wanted) for _, targets, _ in units for t in targets]

    # -- internals ----------------------------------------------------------------------------
    def _work(self, wanted: set[str]):
        """Per consistency group: (members, selected shots to render, backbone calls)."""
        for group in self.plan.groups:
            members = [self.plan.shot(i) for i in group.shot_ids]
            todo = [s for s in members if s.shot_id in wanted and (self.force or not self.cache.has(s.key))]
            yield members, todo, (self._units(group, members, todo) if todo else [])

    def _units(self, group, members: list[PlannedShot], todo: list[PlannedShot]):
        """Split the work of a group into backbone calls:
        (shots in the call, shots to store, anchor ids to name in the request)."""
        if group.mode in ("single", "independent"):
            return [([s], [s], ()) for s in todo]

        def with_uncached(shots: list[PlannedShot]) -> list[PlannedShot]:
            # A call renders all of `shots`: keep the uncached ones too (`--shots` asked for
            # fewer), rather than computing them again on the next render.
            return [s for s in shots if s in todo or not self.cache.has(s.key)]

        if group.mode == "joint":
            # The frames of every member depend on all of them: render them together.
            return [(members, with_uncached(members), ())]
        # Anchor mode: naming the anchors (also in the anchors' own call) lets the backbone
        # record their keys/values once and reuse them for every other shot.
        anchors = [s for s in members if s.anchor]
        anchor_ids = tuple(s.shot_id for s in anchors)
        units = []
        # The anchors first, in a call of their own, whenever one of them is asked for or not
        # cached yet: every other call renders them too (the backbone keeps their keys/values),
        # and a shot's failure must not be reported against anchors nobody asked for.
        anchor_todo = with_uncached(anchors)
        if anchor_todo:
            units.append((anchors, anchor_todo, anchor_ids))
        units += [(anchors + [s], [s], anchor_ids) for s in todo if not s.anchor]
        return units

    def backbone(self) -> Backbone:
        if self._backbone is None:
            self._backbone = self.load_backbone()
        return self._backbone

    def _render_unit(self, unit: list[PlannedShot], targets: list[PlannedShot],
                     anchor_ids: tuple[str, ...], results: dict[str, ShotResult]) -> None:
        ids = tuple(s.shot_id for s in targets)
        self.listener.shot_started(ids)
        if self.cancel.is_set():
            raise RenderCancelled()
        t0 = time.perf_counter()

        def on_progress(p: Progress) -> None:
            if self.cancel.is_set():
                raise RenderCancelled()
            self.listener.step(p)

        request = GroupRequest(
            shots=tuple(s.request for s in unit), consistency=self.plan.consistency, anchor_ids=anchor_ids
        )
        try:
            if self._backbone is None:
                # Importing torch and loading weights takes seconds: say so instead of "0%".
                self.listener.step(Progress(ids, 0, 1, phase="loading model"))
            frames = self.backbone().render_group(request, on_progress)
        except RenderCancelled:
            raise
        except Exception as exc:  # a failed shot must not lose the others
            for s in targets:
                results[s.shot_id] = ShotResult(s.shot_id, "failed", time.perf_counter() - t0, s.key,
                                                f"{type(exc).__name__}: {exc}")
                self.listener.shot_finished(results[s.shot_id])
            return
        seconds = (time.perf_counter() - t0) / len(targets)
        for s in targets:
            out = frames[s.shot_id]
            masks = getattr(out, "masks", None)
            arr = np.asarray(out)
            extras = {"masks": masks} if masks is not None else None
            try:
                self.cache.put(s.key, arr, self._meta(s, seconds), extras, replace=self.force)
            except OSError as exc:  # disk full, permissions: report the shot, keep the others
                results[s.shot_id] = ShotResult(s.shot_id, "failed", seconds, s.key,
                                                f"could not store the shot in {self.cache.root}: {exc}")
                self.listener.shot_finished(results[s.shot_id])
                continue
            results[s.shot_id] = ShotResult(s.shot_id, "rendered", seconds, s.key)
            self.listener.shot_finished(results[s.shot_id])

    def _meta(self, s: PlannedShot, seconds: float) -> dict:
        r = s.request
        return {
            "shot_id": s.shot_id, "prompt": r.prompt, "seed": r.seed, "steps": r.steps,
            "guidance": r.guidance, "num_frames": r.num_frames, "model": self.plan.model,
            "model_fingerprint": self.plan.model_fingerprint,
            "variant": self.plan.consistency.variant, "seconds": seconds,
            "motion": None if r.motion is None else {"clip": str(r.motion.clip), "strength": r.motion.strength},
            # where it was made (device, dtype, versions): provenance, not part of the key
            "runtime": self._runtime(),
        }

    def _runtime(self) -> dict | None:
        runtime = getattr(self._backbone, "runtime", None)  # optional in the Backbone protocol
        try:
            return runtime() if callable(runtime) else None
        except Exception:  # provenance must never cost a finished shot
            return None
