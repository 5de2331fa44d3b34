"""What the keys do: the studio's actions (a mixin of StoryboardApp).

Each action edits the document through storyboard.tui.document, or starts work in a worker
(storyboard.tui.rendering), then lets the app bring the widgets up to date (`_changed`).
Dialogs come back through callbacks.
"""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING, Any, Callable

from textual.widgets import Input

from storyboard.schema import NAME_RE
from storyboard.tui.characters import CharacterList
from storyboard.tui.contact_sheet import ContactSheet, SheetShot
from storyboard.tui.dialogs import ConfirmOverwrite, ConfirmQuit, ExportDialog, NamePrompt
from storyboard.tui.document import discard_recovery
from storyboard.tui.editor import Editor
from storyboard.tui.errors_panel import ErrorsPanel
from storyboard.tui.plan_view import PlanView
from storyboard.tui.preview import Preview
from storyboard.tui.shot_list import ShotList
from storyboard.tui.status_bar import StatusBar

if TYPE_CHECKING:
    from storyboard.tui.app import StoryboardApp


def _guarded(method: Callable) -> Callable:
    """An action that edits the document: a structure it can't handle (a shot that isn't a
    table, say) becomes a message, not a crash; validation already says what is wrong."""

    @functools.wraps(method)
    def wrapper(self: "StoryboardApp", *args: Any) -> Any:
        try:
            return method(self, *args)
        except (IndexError, KeyError, ValueError, TypeError) as e:
            self.notify(f"Can't do that here: {e}", severity="error")
            return None

    return wrapper


class StudioActions:
    """The `action_*` methods of the studio (mixed into StoryboardApp)."""

    def _shot_index(self) -> int | None:
        if self.selection and self.selection[0] == "shot":
            return self.selection[1]
        if self.studio.doc and self.studio.doc.shot_count():
            return self.query_one(ShotList).cursor_row
        return None

    def _character(self) -> str | None:
        if self.selection and self.selection[0] == "character":
            return self.selection[1]
        return self.query_one(CharacterList).selected

    def action_focus_editor(self) -> None:
        self.query_one(Editor).focus_first()

    def action_edit_film(self) -> None:
        if self.studio.doc is None:
            return
        self._refresh(select=("film", None), editor=True)
        self.query_one(Editor).focus_first()

    @_guarded
    def action_add_shot(self) -> None:
        assert self.studio.doc is not None
        index = self.studio.doc.add_shot(after=self._shot_index())
        self._changed(select=("shot", index))
        self.query_one(ShotList).focus()

    @_guarded
    def action_duplicate_shot(self) -> None:
        index = self._shot_index()
        if index is None or self.studio.doc is None:
            return
        new = self.studio.doc.duplicate_shot(index)
        self._changed(select=("shot", new))

    @_guarded
    def action_delete(self) -> None:
        doc = self.studio.doc
        if doc is None:
            return
        if isinstance(self.focused, CharacterList) or (self.selection and self.selection[0] == "character"
                                                       and not isinstance(self.focused, ShotList)):
            name = self._character()
            if name is None:
                return
            doc.delete_character(name)
            self.notify(f"Deleted character {name} (ctrl+z undoes).")
            self._changed(select=("shot", 0) if doc.shot_count() else None)
            return
        index = self._shot_index()
        if index is None:
            return
        shot_id = doc.shot_ids()[index]
        nxt = doc.delete_shot(index)
        self.notify(f"Deleted shot {shot_id or index + 1} (ctrl+z undoes).")
        self._changed(select=("shot", nxt) if nxt is not None else None)

    @_guarded
    def _move(self, delta: int) -> None:
        index = self._shot_index()
        if index is None or self.studio.doc is None:
            return
        new = self.studio.doc.move_shot(index, delta)
        if new != index:
            self._changed(select=("shot", new))

    def action_move_up(self) -> None:
        self._move(-1)

    def action_move_down(self) -> None:
        self._move(1)

    @_guarded
    def action_reroll_seed(self) -> None:
        index = self._shot_index()
        if index is None or self.studio.doc is None:
            return
        seed = self.studio.doc.reroll_seed(index)
        self.notify(f"Shot {index + 1}: seed {seed}.")
        self._changed(select=("shot", index), editor=True)

    def _check_new_name(self, current: str | None = None) -> Callable[[str], str | None]:
        names = set(self.studio.doc.character_names()) if self.studio.doc else set()

        def check(name: str) -> str | None:
            if not NAME_RE.fullmatch(name):
                return "letters, digits, _ and - only"
            if name in names and name != current:
                return f"'{name}' already exists"
            return None

        return check

    def action_add_character(self) -> None:
        def done(name: str | None) -> None:
            if not name or self.studio.doc is None:
                return
            _guarded(lambda app: app.studio.doc.add_character(name))(self)
            if name not in self.studio.doc.character_names():
                return
            self._changed(select=("character", name))
            self.query_one("#character-prompt", Input).focus()

        self.push_screen(NamePrompt("New character name", "", self._check_new_name()), done)

    def action_rename_character(self) -> None:
        old = self._character()
        if old is None:
            self.notify("Select a character first (tab to the character list).", severity="warning")
            return

        def done(new: str | None) -> None:
            if not new or new == old or self.studio.doc is None:
                return
            count = _guarded(lambda app: app.studio.doc.rename_character(old, new))(self)
            if count is None:
                return
            self.notify(f"Renamed {old} to {new}; {count} shot(s) updated.")
            self._changed(select=("character", new), editor=True)

        self.push_screen(NamePrompt(f"Rename character {old}", old, self._check_new_name(old)), done)

    def _start_render(self, shots: list[str] | None) -> None:
        studio = self.studio
        if studio.rendering or self._cancel is not None:
            self.notify("A render is running (c cancels it).", severity="warning")
            return
        if not studio.valid:
            self.notify(f"Fix the {len(studio.problems)} problem(s) first.", severity="error")
            return
        self._cancel = threading.Event()
        self._render_worker(studio.board, shots, self._cancel)

    def action_render_all(self) -> None:
        self._start_render(None)

    def action_render_selected(self) -> None:
        index = self._shot_index()
        if index is None or self.studio.doc is None:
            return
        self._start_render([self.studio.doc.shot_ids()[index]])

    def action_cancel_render(self) -> None:
        if self._cancel is not None:
            self._cancel.set()
            self.query_one(StatusBar).set(job="cancelling… (finished shots are kept)")

    def action_leave_editor(self) -> None:
        """Back from the editor to the list its item is in."""
        in_character = self.selection is not None and self.selection[0] == "character"
        self.query_one(CharacterList if in_character else ShotList).focus()

    def action_export(self) -> None:
        studio = self.studio
        if not studio.valid or studio.plan is None or studio.plan_generation != studio.generation:
            self.notify("Fix the problems (and wait for the plan) before exporting.", severity="error")
            return
        from storyboard.cli import outputs_for

        targets = {k: str(v) for k, v in outputs_for(studio.board, None).items() if k in ("mp4", "otio", "png")}

        def done(choice: str | None) -> None:
            if choice is None:
                return
            formats = ("mp4", "otio", "png") if choice == "all" else (choice,)
            self.query_one(StatusBar).set(note=f"exporting {', '.join(formats)}…")
            self._export_worker(studio.board, studio.plan, formats)

        self.push_screen(ExportDialog(targets), done)

    def action_contact_sheet(self) -> None:
        studio = self.studio
        if studio.doc is None:
            return
        shots = []
        for i, shot_id in enumerate(studio.doc.shot_ids()):
            planned = studio.planned(i)
            frames = None
            if planned is not None and planned.key in studio.cached:
                entry = self.cache.get(planned.key)
                frames = entry.frames if entry is not None else None
            prompt = planned.request.prompt if planned is not None else studio.doc.shot_field_text(i, "prompt")
            shots.append(SheetShot(shot_id, prompt, frames))
        title = studio.plan.title if studio.plan is not None else studio.path.name
        self.push_screen(ContactSheet(title, shots))

    def action_toggle_play(self) -> None:
        self.query_one(Preview).toggle()

    def action_toggle_keys(self) -> None:
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def action_save(self) -> None:
        doc = self.studio.doc
        if doc is None:
            return
        if doc.disk_changed():
            self.push_screen(ConfirmOverwrite(self.studio.path.name),
                             lambda choice: self._save() if choice == "overwrite" else None)
            return
        self._save()

    def _save(self) -> bool:
        doc = self.studio.doc
        assert doc is not None
        try:
            doc.save()
        except OSError as e:
            self.notify(f"Could not save {doc.path}: {e}", severity="error", timeout=10)
            return False
        discard_recovery(doc.path)
        problems = len(self.studio.problems)
        self.notify(f"Saved {doc.path.name}" + (f" (with {problems} problem(s))" if problems else "."),
                    severity="warning" if problems else "information")
        self._refresh_status()
        return True

    def action_undo(self) -> None:
        if self.studio.doc is not None:
            step = self.studio.doc.undo()
            if step is not None:
                self.notify(f"Undid: {step.label}", timeout=2)
                self._changed(select=step.focus, editor=True)

    def action_redo(self) -> None:
        if self.studio.doc is not None:
            step = self.studio.doc.redo()
            if step is not None:
                self.notify(f"Redid: {step.label}", timeout=2)
                self._changed(select=step.focus, editor=True)

    def action_reload(self) -> None:
        if self.studio.doc is not None and self.studio.doc.dirty:
            self.notify("Unsaved changes: save (ctrl+s) or undo them before reloading.", severity="warning")
            return
        if self.studio.open():
            self.query_one(PlanView).show_message("Planning…", style="dim")
            self._refresh(select=("shot", 0) if self.studio.doc and self.studio.doc.shot_count() else None,
                          editor=True)
            self.notify(f"Reloaded {self.studio.path.name}.")
        else:
            self.query_one(ErrorsPanel).show(self.studio.problems)
            self.notify("The file still has problems that stop the studio from editing it.", severity="error")
        self._refresh_status()

    async def action_quit(self) -> None:
        doc = self.studio.doc
        if doc is None or not doc.dirty:
            self._leave()
            return

        def done(choice: str | None) -> None:
            if choice == "save":
                if self._save():
                    self._leave()
            elif choice == "discard":
                self.discarded = True
                discard_recovery(doc.path)
                self._leave()

        self.push_screen(ConfirmQuit(self.studio.path.name), done)

    def _leave(self) -> None:
        if self._cancel is not None:
            self._cancel.set()  # the render stops at its next step; finished shots are kept
        if self.studio.doc is not None and not self.studio.doc.dirty:
            discard_recovery(self.studio.path)
        self.exit()
