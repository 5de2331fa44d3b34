"""`storyboard edit FILE`: the terminal studio (a Textual app).

The App composes the widgets, owns the key bindings and the workers. What the keys do lives in
storyboard.tui.actions (edits go to storyboard.tui.document), how widgets follow the document
and the workers' messages in storyboard.tui.sync, what to show in storyboard.tui.studio, and
the long work (plan, render, export) in storyboard.tui.rendering.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from pathlib import Path
from typing import Any, Callable

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import Footer, Header

from storyboard.cache import RenderCache
from storyboard.tui import rendering
from storyboard.tui.actions import StudioActions
from storyboard.tui.characters import CharacterList
from storyboard.tui.commands import StudioCommands
from storyboard.tui.contact_sheet import ContactSheet
from storyboard.tui.dialogs import ConfirmRestore
from storyboard.tui.document import discard_recovery, recovery_candidate, recovery_path, write_recovery
from storyboard.tui.editor import Editor
from storyboard.tui.errors_panel import ErrorsPanel
from storyboard.tui.messages import RenderDone
from storyboard.tui.plan_view import PlanView
from storyboard.tui.preview import Preview
from storyboard.tui.shot_list import ShotList
from storyboard.tui.status_bar import StatusBar
from storyboard.tui.studio import Studio
from storyboard.tui.sync import StudioSync

#: Actions that stay available over the contact sheet.
_ON_SHEET = {"quit", "save", "toggle_keys", "cancel_render", "command_palette", "pop_screen"}

#: Seconds after the last change before unsaved edits are written to the recovery file.
AUTOSAVE_DELAY = 2.0

#: Actions that need an open document (a file with a syntax error has none).
_EDITING = {
    "edit_film", "add_shot", "duplicate_shot", "delete", "move_up", "move_down", "reroll_seed", "add_character",
    "rename_character", "render_all", "render_selected", "export", "contact_sheet", "save",
}


class StoryboardApp(StudioActions, StudioSync, App):
    """The storyboard studio."""

    CSS_PATH = "app.tcss"
    TITLE = "storyboard"
    COMMANDS = App.COMMANDS | {StudioCommands}

    # One list for keys, footer and command palette (the tooltip is the palette's title).
    BINDINGS = [
        Binding("a", "add_shot", "Add", tooltip="Add a shot after the selected one"),
        Binding("d", "duplicate_shot", "Dup", show=False, tooltip="Duplicate the selected shot"),
        Binding("x,delete", "delete", "Del", tooltip="Delete the selected shot (or character)"),
        Binding("shift+up,K", "move_up", "Move up", show=False, tooltip="Move the selected shot up"),
        Binding("shift+down,J", "move_down", "Move down", show=False, tooltip="Move the selected shot down"),
        Binding("s", "reroll_seed", "Seed", show=False, tooltip="Re-roll the selected shot's seed"),
        Binding("A", "add_character", "Char", show=False, tooltip="Add a character"),
        Binding("f", "edit_film", "Film", show=False, tooltip="Edit the film settings (title, fps, size, model…)"),
        Binding("N", "rename_character", "Rename", show=False,
                tooltip="Rename the selected character (prompts follow)"),
        Binding("r", "render_all", "Render", tooltip="Render all shots that are not cached"),
        Binding("R", "render_selected", "Shot", tooltip="Render the selected shot"),
        Binding("c", "cancel_render", "Cancel", tooltip="Cancel the render (finished shots are kept)"),
        Binding("escape", "cancel_render", "Cancel", show=False),  # the editor's escape leaves it first
        Binding("e", "export", "Export", tooltip="Export the film (mp4, otio, contact sheet png)"),
        Binding("t", "contact_sheet", "Sheet", tooltip="Show the contact sheet of the whole film"),
        Binding("p", "toggle_play", "Play", show=False, tooltip="Play or pause the preview"),
        Binding("ctrl+s", "save", "Save", priority=True, tooltip="Save the storyboard"),
        Binding("ctrl+z", "undo", "Undo", priority=True, tooltip="Undo the last change"),
        Binding("ctrl+y", "redo", "Redo", show=False, priority=True, tooltip="Redo the change undone last"),
        Binding("ctrl+r", "reload", "Reload", show=False, tooltip="Reload the file from disk"),
        Binding("question_mark,f1", "toggle_keys", "Keys", tooltip="Show or hide all keys"),
        Binding("q", "quit", "Quit", tooltip="Quit (asks about unsaved changes)"),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(self, path: Path | str, allow_outside: bool = False, *,
                 load_backbone: Callable[[str], Any] | None = None,
                 autosave_delay: float = AUTOSAVE_DELAY) -> None:
        """`load_backbone(model_name)` defaults to the CLI's registry loader (tests inject fakes)."""
        super().__init__()
        self.studio = Studio(Path(path), allow_outside)
        self.backbones = rendering.BackboneCache(load_backbone or rendering.default_backbone_loader)
        self.autosave_delay = autosave_delay
        self.selection: tuple[str, Any] | None = None
        self.discarded = False  # the user chose to quit without saving
        self._cancel: threading.Event | None = None
        self._autosave: Timer | None = None
        self._cache: RenderCache | None = None
        self._binding_state: tuple = ()
        self.sub_title = self.studio.path.name

    # -- composition -----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header(icon="▤")
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield ShotList(id="shots")
                yield CharacterList(id="characters")
                yield PlanView(id="plan")
            with Vertical(id="right"):
                yield Editor(id="editor")
                yield ErrorsPanel(id="problems")
                yield Preview(id="preview")
        yield StatusBar(id="status")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._watch_signals()
        studio = self.studio
        self.query_one(StatusBar).set(file=studio.path.name)
        if not studio.open():
            self.query_one(ErrorsPanel).show(studio.problems)
            self.query_one(PlanView).show_message(
                "This file can't be edited until the problems below are fixed in a text editor; "
                "then press ctrl+r to reload.")
            self._refresh_status()
            return
        self._refresh(select=("shot", 0) if studio.doc and studio.doc.shot_count() else None, editor=True)
        self.query_one(ShotList).focus()
        text = recovery_candidate(studio.path)
        if text is not None:
            self.push_screen(ConfirmRestore(studio.path.name, recovery_path(studio.path).name),
                             lambda choice: self._restore(choice, text))

    def on_unmount(self) -> None:
        self.keep_edits()

    def _watch_signals(self) -> None:
        """SIGTERM / SIGHUP (asked to stop, terminal closed): keep the edits, exit cleanly."""
        loop = asyncio.get_running_loop()
        for name in ("SIGTERM", "SIGHUP"):
            if hasattr(signal, name):
                try:
                    loop.add_signal_handler(getattr(signal, name), self._terminate)
                except (NotImplementedError, RuntimeError, ValueError):
                    pass  # not on this platform, or not the main thread (tests)

    def _terminate(self) -> None:
        self.keep_edits()
        self.exit(return_code=1)

    def keep_edits(self) -> None:
        """Write unsaved edits to the recovery file, unless the user chose to discard them."""
        doc = self.studio.doc
        if doc is not None and doc.dirty and not self.discarded:
            try:
                write_recovery(doc)
            except OSError:
                pass  # nothing better to do on the way out

    def _restore(self, choice: str | None, text: str) -> None:
        if choice == "discard":
            discard_recovery(self.studio.path)
            self.notify("Discarded the recovered edits.")
            return
        assert self.studio.doc is not None
        self.studio.doc.replace_text(text, "restore recovered edits")
        self._changed(editor=True)
        self.notify("Restored unsaved edits (ctrl+z undoes the restore; ctrl+s saves them).")

    @property
    def cache(self) -> RenderCache:
        if self._cache is None:
            self._cache = RenderCache.beside(self.studio.path)
        return self._cache

    # -- workers ---------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="plan", exit_on_error=False)
    def _plan_worker(self, generation: int, board) -> None:
        rendering.make_plan(self, generation, board)

    @work(thread=True, group="render", exit_on_error=False)
    def _render_worker(self, board, shots: list[str] | None, cancel: threading.Event) -> None:
        try:
            plan, _ = rendering.plan_for(board)
        except Exception as exc:
            self.post_message(RenderDone([], False, f"{type(exc).__name__}: {exc}"))
            return
        job = rendering.new_job(plan, self.backbones, shots)
        job.cancel = cancel
        rendering.run_job(self, job)

    @work(thread=True, group="export", exit_on_error=False)
    def _export_worker(self, board, plan, formats: tuple[str, ...]) -> None:
        rendering.run_export(self, board, plan, formats)

    # -- actions ---------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        studio = self.studio
        if isinstance(self.screen, ContactSheet) and action not in _ON_SHEET:
            return False  # the sheet is a view: editing waits until the studio is back
        if action in _EDITING and studio.doc is None:
            return None
        if action == "cancel_render":
            return studio.rendering or self._cancel is not None  # in the footer only while rendering
        if action == "undo":
            return True if studio.doc and studio.doc.can_undo else None
        if action == "redo":
            return True if studio.doc and studio.doc.can_redo else None
        if action == "rename_character":
            return True if studio.doc and studio.doc.character_names() else None
        if action in ("duplicate_shot", "move_up", "move_down", "reroll_seed", "render_selected"):
            return True if self._shot_index() is not None else None
        return True


def run_app(path: Path | str, allow_outside: bool = False) -> None:
    """Open the studio on `path`, creating it from the starter template when it doesn't exist.

    Unsaved edits are never lost: they are autosaved beside the file while editing, and written
    there once more if the app ends any other way than "quit without saving" (an error,
    SIGTERM, a closed terminal).
    """
    from storyboard.cli import UserError
    from storyboard.load import detect_format, dump_starter

    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a folder, not a storyboard file")
    if detect_format(path) is None:
        raise UserError(f"{path}: unknown file type '{path.suffix}' (allowed: .toml, .yaml, .yml)")
    if not path.exists():
        dump_starter(path)
    app = StoryboardApp(path, allow_outside=allow_outside)
    try:
        app.run()
    finally:
        app.keep_edits()
