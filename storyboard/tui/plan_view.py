"""The plan view: film summary, consistency groups with their anchors, and what a render would
recompute (the shots whose cache keys have no entry yet)."""

from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static


def plan_text(plan, cached: frozenset[str], note: str = "") -> Group:
    """A rich renderable describing `plan` (a storyboard.plan.Plan)."""
    head = Text()
    head.append(plan.title, style="bold")
    head.append(f"  {plan.duration:.2f} s · {plan.fps} fps · {plan.size[0]}x{plan.size[1]}\n", style="dim")
    head.append("model ", style="dim")
    head.append(plan.model)
    head.append(" · consistency ", style="dim")
    head.append(plan.consistency.variant)
    parts: list = [head]
    if note:
        parts.append(Text(note, style="yellow"))

    stale = [s for s in plan.shots if s.key not in cached]
    todo = Text()
    if stale:
        todo.append(f"\nA render recomputes {len(stale)} of {len(plan.shots)}\n", style="bold underline")
        for s in stale:
            todo.append(f"  {s.shot_id:<14}", style="yellow")
            todo.append(f" {s.key[:12]}  {s.request.num_frames} fr\n", style="dim")
    else:
        todo.append("\nEverything is cached: a render recomputes nothing\n", style="green")
    parts.append(todo)
    groups = Text()
    groups.append("\nConsistency groups\n", style="bold underline")
    for g in plan.groups:
        groups.append(f"{g.id} ", style="bold")
        # Vanilla renders every shot on its own, whatever the grouping.
        mode = "independent" if plan.consistency.variant == "vanilla" and len(g.shot_ids) > 1 else g.mode
        groups.append(mode, style="cyan")
        if g.characters:
            groups.append("  " + ", ".join(g.characters), style="magenta")
        groups.append("\n  ")
        for n, sid in enumerate(g.shot_ids):
            if n:
                groups.append(", ")
            groups.append(sid, style="bold" if sid in g.anchors else "")
            if sid in g.anchors:
                groups.append("⚓", style="yellow")
        groups.append("\n")
    parts.append(groups)

    return Group(*parts)


class PlanView(VerticalScroll):
    """Scrollable plan summary, refreshed whenever the document is re-planned."""

    BORDER_TITLE = "Plan"

    def compose(self):
        yield Static("Planning…", id="plan-body")

    _shown: object = None

    def show_plan(self, plan, cached: frozenset[str], note: str = "") -> None:
        # Re-planned on every keystroke: redraw only when what is shown changes.
        signature = (plan.title, plan.duration, plan.fps, tuple(plan.size), plan.model, plan.consistency,
                     tuple((g.id, g.mode, g.shot_ids, g.characters, g.anchors) for g in plan.groups),
                     tuple((s.shot_id, s.key, s.request.num_frames) for s in plan.shots), cached, note)
        if signature != self._shown:
            self._shown = signature
            self.query_one("#plan-body", Static).update(plan_text(plan, cached, note))

    def show_message(self, message: str, style: str = "red") -> None:
        if (message, style) != self._shown:
            self._shown = (message, style)
            self.query_one("#plan-body", Static).update(Text(message, style=style))
