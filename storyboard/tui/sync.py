"""Keeping the widgets in step with the studio (a mixin of StoryboardApp).

`_changed` runs after every edit: validate, refresh the lists, the problems and the editor,
re-plan in a worker, schedule the autosave. The `on_*` handlers take what the workers post
(plans, render progress, export results) and show it.
"""

from __future__ import annotations

from typing import Any

from textual.widgets import Input

from storyboard.tui.characters import CharacterList
from storyboard.tui.document import problem_target, write_recovery
from storyboard.tui.editor import Editor, _input_id
from storyboard.tui.errors_panel import ErrorsPanel
from storyboard.tui.messages import (
    CharacterHighlighted, ExportDone, FieldEdited, PlanReady, ProblemChosen, RenderDone, RenderQueued,
    ShotFinished, ShotHighlighted, ShotStarted, StepProgress,
)
from storyboard.tui.plan_view import PlanView
from storyboard.tui.preview import Preview
from storyboard.tui.shot_list import ShotList
from storyboard.tui.status_bar import StatusBar


class StudioSync:
    """Refreshing widgets and handling messages (mixed into StoryboardApp)."""

    # -- keeping widgets in step with the document ----------------------------------------------

    def _changed(self, *, editor: bool = False, select: tuple[str, Any] | None = None) -> None:
        """The document changed: validate, re-plan, refresh, schedule the autosave."""
        self.studio.revalidate()
        self._refresh(select=select, editor=editor)
        self._schedule_autosave()

    def _refresh(self, *, select: tuple[str, Any] | None = None, editor: bool = False) -> None:
        studio = self.studio
        if select is not None:
            self.selection = select
        self._fix_selection()
        shot_index = self.selection[1] if self.selection and self.selection[0] == "shot" else None
        char_name = self.selection[1] if self.selection and self.selection[0] == "character" else None
        self.query_one(ShotList).show(studio.shot_rows(), select=shot_index)
        self.query_one(CharacterList).show(studio.character_rows(), select=char_name)
        self.query_one(ErrorsPanel).show(studio.problems)
        if editor or select is not None:
            self._show_selection()
        self.query_one(Editor).mark_problems(studio.problems_for(*(self.selection or (None, None))))
        self._refresh_status()
        if studio.valid:
            self._plan_worker(studio.generation, studio.board)
        elif studio.plan is not None:
            self.query_one(PlanView).show_plan(
                studio.plan, frozenset(studio.cached),
                note="The storyboard has problems: this is the plan of its last valid version.")

    def _fix_selection(self) -> None:
        doc = self.studio.doc
        if doc is None:
            self.selection = None
            return
        if self.selection is None or (self.selection[0] == "shot" and not 0 <= self.selection[1] < doc.shot_count()):
            n = doc.shot_count()
            self.selection = ("shot", min(self.selection[1], n - 1) if self.selection else 0) if n else None
        elif self.selection[0] == "character" and self.selection[1] not in doc.character_names():
            self.selection = ("shot", 0) if doc.shot_count() else None

    def _show_selection(self) -> None:
        editor = self.query_one(Editor)
        doc = self.studio.doc
        if doc is None or self.selection is None:
            editor.show_nothing()
        elif self.selection[0] == "shot":
            editor.show_shot(doc, self.selection[1], self.studio.hints(self.selection[1]))
        elif self.selection[0] == "film":
            editor.show_film(doc, self.studio.film_hints())
        else:
            editor.show_character(doc, self.selection[1])
        editor.mark_problems(self.studio.problems_for(*(self.selection or (None, None))))
        self._update_preview()

    def _refresh_status(self) -> None:
        studio = self.studio
        bar = self.query_one(StatusBar)
        dirty = bool(studio.doc and studio.doc.dirty)
        bar.set(dirty=dirty, problems=len(studio.problems),
                job=studio.progress.describe() if studio.progress else "")
        sub_title = studio.path.name + (" ●" if dirty else "")
        if self.sub_title != sub_title:
            self.sub_title = sub_title
        # Re-checking bindings rebuilds the footer: only when what check_action looks at changed.
        state = (studio.doc is None, studio.rendering, self._shot_index() is not None,
                 bool(studio.doc and studio.doc.can_undo), bool(studio.doc and studio.doc.can_redo),
                 bool(studio.doc and studio.doc.character_names()), isinstance(self.focused, Input))
        if state != self._binding_state:
            self._binding_state = state
            self.refresh_bindings()

    def _update_preview(self) -> None:
        preview = self.query_one(Preview)
        studio = self.studio
        if self.selection is None or self.selection[0] != "shot":
            preview.show_frames(None, 8, message="Select a shot to preview it.")
            return
        planned = studio.planned(self.selection[1])
        fps = studio.plan.fps if studio.plan is not None else 8
        if planned is None:
            if not studio.valid:
                message = "Fix the problems to preview."
            elif studio.plan_error and studio.plan_generation == studio.generation:
                message = "No plan (see the Plan panel)."
            else:
                message = "Planning…"
            preview.show_frames(None, fps, message=message)
            return
        if planned.key not in studio.cached:
            preview.show_frames(None, fps, message=f"{planned.shot_id}: not rendered yet (R renders it)")
            return
        entry = self.cache.get(planned.key)
        if entry is None:
            preview.show_frames(None, fps, message=f"{planned.shot_id}: not rendered yet (R renders it)")
            return
        if preview.key == planned.key and preview.label == planned.shot_id:
            return  # already playing these frames
        preview.show_frames(entry.frames, fps, label=planned.shot_id, key=planned.key)

    def _schedule_autosave(self) -> None:
        if self._autosave is not None:
            self._autosave.stop()
        self._autosave = self.set_timer(self.autosave_delay, self.autosave_now)

    def autosave_now(self) -> None:
        """Write unsaved edits to the recovery file (removes it when there are none)."""
        if self.studio.doc is not None:
            try:
                write_recovery(self.studio.doc)
            except OSError as e:
                self.notify(f"Autosave failed: {e}", severity="error")

    # -- messages --------------------------------------------------------------------------------

    def on_plan_ready(self, message: PlanReady) -> None:
        studio = self.studio
        if not studio.apply_plan(message.generation, message.plan, message.cached, message.error):
            return
        view = self.query_one(PlanView)
        if message.error:
            view.show_message(f"Cannot plan: {message.error}")
        else:
            view.show_plan(studio.plan, frozenset(studio.cached))
        self.query_one(ShotList).show(studio.shot_rows())
        self._update_preview()

    def on_shot_highlighted(self, message: ShotHighlighted) -> None:
        if self.selection != ("shot", message.index):
            self.selection = ("shot", message.index)
            if self.studio.doc is not None:
                self.studio.doc.break_coalescing()  # a new item: the next edit is a new undo step
            self._show_selection()

    def on_character_highlighted(self, message: CharacterHighlighted) -> None:
        if self.selection != ("character", message.name):
            self.selection = ("character", message.name)
            if self.studio.doc is not None:
                self.studio.doc.break_coalescing()
            self._show_selection()

    def on_field_edited(self, message: FieldEdited) -> None:
        doc = self.studio.doc
        if doc is None:
            return
        try:
            if message.kind == "shot":
                doc.set_shot_text(message.key, message.field, message.text)
            elif message.kind == "film":
                doc.set_film_text(message.field, message.text)
            else:
                doc.set_character_text(message.key, message.field, message.text)
        except (IndexError, KeyError):
            return
        self.studio.revalidate()
        # The editor already shows what was typed: refresh everything else around it.
        self._refresh()
        if message.kind == "shot" and message.field == "id":
            self.query_one(Editor).show_shot(doc, message.key, self.studio.hints(message.key))
        self._schedule_autosave()

    def on_problem_chosen(self, message: ProblemChosen) -> None:
        target = problem_target(message.field)
        if target is None:
            self.notify(f"{message.field}: this setting is edited in a text editor.", severity="warning")
            return
        kind, key, field = target
        self._refresh(select=(kind, key), editor=True)
        try:
            self.query_one("#" + _input_id(kind, field), Input).focus()
        except Exception:
            self.query_one(Editor).focus_first()

    def on_render_queued(self, message: RenderQueued) -> None:
        self.studio.render_queued(message.keys)
        self._refresh_render()

    def on_shot_started(self, message: ShotStarted) -> None:
        self.studio.shot_started(message.shot_ids, message.keys)
        self._refresh_render()

    def on_step_progress(self, message: StepProgress) -> None:
        self.studio.step(message.shot_ids, message.keys, message.step, message.total)
        self._refresh_render()

    def on_shot_finished(self, message: ShotFinished) -> None:
        result = message.result
        self.studio.shot_finished(result)
        if result.status == "failed":
            self.notify(f"{result.shot_id}: render failed: {result.error}", severity="error", timeout=8)
        self._refresh_render()
        self._update_preview()

    def on_render_done(self, message: RenderDone) -> None:
        self.studio.render_done()
        self._cancel = None
        done = [r for r in message.results if r.status == "rendered"]
        failed = [r for r in message.results if r.status == "failed"]
        if message.error:
            self.notify(f"Render failed: {message.error}", severity="error", timeout=10)
        elif message.cancelled:
            self.notify(f"Render cancelled: {len(done)} finished shot(s) kept in the cache.", severity="warning")
        elif failed:
            self.notify(f"Rendered {len(done)} shot(s); {len(failed)} failed.", severity="error")
        else:
            self.notify(f"Rendered {len(done)} shot(s); everything selected is cached.")
        self._refresh_render()
        if self.studio.valid:  # re-read the cache: the plan view's "recomputes" list changed
            self._plan_worker(self.studio.generation, self.studio.board)
        self._update_preview()

    def _refresh_render(self) -> None:
        studio = self.studio
        self.query_one(ShotList).show(studio.shot_rows())
        if studio.plan is not None and studio.plan_generation == studio.generation:
            self.query_one(PlanView).show_plan(studio.plan, frozenset(studio.cached))
        self._refresh_status()

    def on_export_done(self, message: ExportDone) -> None:
        if message.error:
            self.notify(f"Export failed: {message.error}", severity="error", timeout=10)
        else:
            self.notify("Wrote " + ", ".join(str(p) for p in message.written.values()), timeout=8)
        self.query_one(StatusBar).set(note="")
