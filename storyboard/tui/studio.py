"""The studio's state, without widgets: the document, its problems, its plan and render states.

The app feeds it events (an edit, a plan from a worker, render progress) and asks it what to
show (rows of the shot list, a shot's status, the hints of the editor). Keeping this out of
the widgets keeps the App thin and makes the bookkeeping testable on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storyboard.errors import Problem, StoryboardError
from storyboard.load import load_text
from storyboard.schema import DEFAULT_MOTION_STRENGTH, DEFAULT_SHOT_DURATION, DEFAULT_TRANSITION_DURATION, REFERENCE_RE
from storyboard.tui.document import DocumentError, StoryDocument, problem_target
from storyboard.tui.shot_list import ShotRow


@dataclass
class RenderProgress:
    """Where the running render is: shots done out of queued, and the current step."""

    queued: int = 0
    done: int = 0
    step: int = 0
    total: int = 0
    current: tuple[str, ...] = ()

    def describe(self) -> str:
        text = f"rendering {self.done}/{self.queued} shots"
        if self.current:
            text += f" · {', '.join(self.current)}"
            if self.total:
                text += f" step {self.step}/{self.total}"
        return text + " · c cancels"


@dataclass
class Studio:
    """Everything the studio knows about the storyboard being edited."""

    path: Path
    allow_outside: bool = False
    doc: StoryDocument | None = None
    open_problems: list[Problem] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    board: Any = None  # the last valid storyboard.schema.Storyboard (None while invalid)
    generation: int = 0  # bumped on every change of the document
    plan: Any = None  # storyboard.plan.Plan of `plan_generation`
    plan_generation: int = -1
    plan_error: str | None = None
    cached: set[str] = field(default_factory=set)  # cache keys known to be rendered
    render_state: dict[str, str] = field(default_factory=dict)  # key -> queued / rendering N% / failed (...)
    progress: RenderProgress | None = None
    _finished_at: dict[str, int] = field(default_factory=dict)  # key -> generation it finished in

    # -- document --------------------------------------------------------------------------------

    def open(self) -> bool:
        """Open the file; False (with `open_problems`) when it can't be edited structurally."""
        try:
            self.doc = StoryDocument.open(self.path)
        except DocumentError as e:
            self.doc = None
            self.open_problems = e.problems
            self.problems = list(e.problems)
            return False
        self.open_problems = []
        self.revalidate()
        return True

    def revalidate(self) -> None:
        """Validate the document text (as `storyboard validate` would) after any change."""
        self.generation += 1
        assert self.doc is not None
        try:
            self.board = load_text(self.doc.to_text(), self.path, fmt=self.doc.fmt, allow_outside=self.allow_outside)
            self.problems = []
        except StoryboardError as e:
            self.board = None
            self.problems = e.problems

    @property
    def valid(self) -> bool:
        return self.doc is not None and not self.problems

    # -- what to show ----------------------------------------------------------------------------

    def planned(self, index: int):
        """The planned shot at `index` of the document, if the plan knows a shot of that id."""
        if self.plan is None or self.doc is None or not 0 <= index < self.doc.shot_count():
            return None
        shot_id = self.doc.shot_ids()[index]
        try:
            return self.plan.shot(shot_id)
        except KeyError:
            return None

    def _problem_indices(self) -> set[int]:
        out = set()
        for p in self.problems:
            target = problem_target(p.field)
            if target and target[0] == "shot":
                out.add(target[1])
        return out

    def status(self, index: int, bad: set[int] | None = None) -> str:
        """cached / stale / queued / rendering N% / failed (error) / invalid / no plan / ? (planning)."""
        bad = self._problem_indices() if bad is None else bad
        if index in bad:
            return "invalid"
        planned = self.planned(index)
        if planned is None:
            # No plan at all (e.g. the model can't be found: the plan view says why).
            return "no plan" if self.plan is None and self.plan_error else "?"
        if planned.key in self.render_state:
            return self.render_state[planned.key]
        return "cached" if planned.key in self.cached else "stale"

    def shot_rows(self) -> list[ShotRow]:
        if self.doc is None:
            return []
        bad = self._problem_indices()
        rows = []
        for i in range(self.doc.shot_count()):
            shot = self.doc.shot(i)
            dur = shot.get("duration", DEFAULT_SHOT_DURATION)
            prompt = shot.get("prompt")
            names = list(dict.fromkeys(
                [*(REFERENCE_RE.findall(prompt) if isinstance(prompt, str) else []),
                 *(n for n in shot.get("characters") or [] if isinstance(n, str))]
            )) if isinstance(shot.get("characters", []), list) else []
            rows.append(ShotRow(
                shot_id=str(shot.get("id", "")),
                duration=repr(float(dur)) if isinstance(dur, (int, float)) and not isinstance(dur, bool) else str(dur),
                characters=",".join(names),
                status=self.status(i, bad),
            ))
        return rows

    def character_rows(self) -> list[tuple[str, str, int]]:
        if self.doc is None:
            return []
        rows = []
        shots = [self.doc.shot(i) for i in range(self.doc.shot_count())]
        for name in self.doc.character_names():
            uses = 0
            for shot in shots:
                prompt = shot.get("prompt") if isinstance(shot.get("prompt"), str) else ""
                listed = shot.get("characters") if isinstance(shot.get("characters"), list) else []
                uses += f"{{{name}}}" in prompt or name in listed
            rows.append((name, str(self.doc.character(name).get("prompt", "")), uses))
        return rows

    def hints(self, index: int) -> dict[str, str]:
        """Editor placeholders: what applies when a field is left empty."""
        film = self.doc.film() if self.doc else {}
        seed = film.get("seed", 0)
        return {
            "id": "letters, digits, _ and -",
            "prompt": "{name} inserts a character",
            "characters": "from {name} in the prompt",
            "duration": f"{DEFAULT_SHOT_DURATION} s",
            "seed": f"auto: {seed + index}" if isinstance(seed, int) else "auto",
            "steps": f"film: {film.get('steps', 20)}",
            "guidance": f"film: {film.get('guidance', 4.0)}",
            "motion.clip": "e.g. clips/bounce.mp4",
            "motion.strength": f"{DEFAULT_MOTION_STRENGTH}",
            "transition.type": "cut | crossfade | fade",
            "transition.duration": f"{DEFAULT_TRANSITION_DURATION}",
            "negative_prompt": "film's",
        }

    def film_hints(self) -> dict[str, str]:
        """Film placeholders: the defaults that apply when a setting is left out."""
        from storyboard.schema import Film

        defaults = Film()
        return {
            "title": defaults.title, "model": f"{defaults.model} (or tiny, wan2.1, a folder)",
            "fps": str(defaults.fps), "size": f"{defaults.width}x{defaults.height}",
            "seed": str(defaults.seed), "steps": str(defaults.steps), "guidance": str(defaults.guidance),
            "negative_prompt": "none",
        }

    def problems_for(self, kind: str | None, key: Any) -> dict[str, str]:
        """Field -> message for the problems of one shot or character."""
        out: dict[str, str] = {}
        for p in self.problems:
            target = problem_target(p.field)
            if target and target[0] == kind and target[1] == key:
                out[target[2]] = f"{out[target[2]]}\n{p.message}" if target[2] in out else p.message
        return out

    # -- plans and renders -----------------------------------------------------------------------

    def apply_plan(self, generation: int, plan, cached: frozenset[str], error: str | None) -> bool:
        """Take a plan from a worker; False when a newer document version already exists."""
        if generation != self.generation:
            return False
        self.plan_generation = generation
        self.plan_error = error
        if plan is not None:
            self.plan = plan
            # The worker looked at the cache while this document version was current: shots
            # that finished since it began may be missing from its snapshot; keep those.
            recent = {k for k, g in self._finished_at.items() if g >= generation}
            self.cached = set(cached) | (recent & {s.key for s in plan.shots})
        return True

    @property
    def rendering(self) -> bool:
        return self.progress is not None

    def render_queued(self, keys: tuple[str, ...]) -> None:
        self.progress = RenderProgress(queued=len(keys))
        for key in keys:
            self.render_state[key] = "queued"

    def shot_started(self, shot_ids: tuple[str, ...], keys: tuple[str, ...]) -> None:
        if self.progress is not None:
            self.progress.current, self.progress.step, self.progress.total = shot_ids, 0, 0
        for key in keys:
            self.render_state[key] = "rendering 0%"

    def step(self, shot_ids: tuple[str, ...], keys: tuple[str, ...], step: int, total: int) -> None:
        if self.progress is not None:
            self.progress.current, self.progress.step, self.progress.total = shot_ids, step, total
        pct = int(100 * step / total) if total else 0
        for key in keys:
            self.render_state[key] = f"rendering {pct}%"

    def shot_finished(self, result) -> None:
        """A ShotResult: rendered / cached -> cached; failed -> failed (error)."""
        if result.status in ("rendered", "cached"):
            self.cached.add(result.key)
            self._finished_at[result.key] = self.generation
            self.render_state.pop(result.key, None)
        elif result.status == "failed":
            self.render_state[result.key] = f"failed ({result.error})"
        elif result.status == "cancelled":
            self.render_state.pop(result.key, None)
        if self.progress is not None and result.status != "cached":
            self.progress.done += 1

    def render_done(self) -> None:
        """The render ended: queued or half-rendered shots go back to cached/stale."""
        self.progress = None
        for key, state in list(self.render_state.items()):
            if not state.startswith("failed"):
                del self.render_state[key]
