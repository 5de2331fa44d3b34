"""Rich progress bars for a render: one bar for the shots, one for the denoising steps."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from motionq.api import Progress as StepProgress
from storyboard.plan import Plan
from storyboard.render import ShotResult


class RichListener:
    """A `RenderListener` drawing progress on a console (stderr, so stdout stays clean)."""

    def __init__(self, plan: Plan, console: Console):
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console, transient=False,
        )
        self.shots_task = self.progress.add_task("shots", total=len(plan.shots))
        self.steps_task = self.progress.add_task("steps", total=1, visible=False)

    def __enter__(self) -> "RichListener":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def shot_started(self, shot_ids: tuple[str, ...]) -> None:
        self.progress.update(self.steps_task, description=f"  {', '.join(shot_ids)}",
                             completed=0, visible=True)

    def step(self, p: StepProgress) -> None:
        self.progress.update(self.steps_task, total=p.total, completed=p.step,
                             description=f"  {', '.join(p.shot_ids)} ({p.phase})")

    def shot_finished(self, result: ShotResult) -> None:
        self.progress.advance(self.shots_task)
        self.progress.console.print(
            f"  {result.shot_id}: {result.status}"
            + (f" in {result.seconds:.1f} s" if result.status == "rendered" else ""),
            markup=False,
        )
