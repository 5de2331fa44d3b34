"""Modal dialogs: confirm quitting with unsaved changes, restore a recovery file, ask for a
name, choose what to export, and confirm overwriting a file changed on disk."""

from __future__ import annotations

from typing import Callable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static


class _Dialog(ModalScreen):
    """A centred box with a question and buttons; each button's id is the result."""

    DEFAULT_CSS = """
    _Dialog { align: center middle; }
    """
    BINDINGS = [Binding("escape", "dismiss_none", "Cancel")]

    def __init__(self, title: str, body: str, buttons: list[tuple[str, str, str]]):
        super().__init__()
        self.title_text = title
        self.body = body
        self.buttons = buttons  # (id, label, variant)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Static(self.body, classes="dialog-body")
            with Horizontal(classes="dialog-buttons"):
                for bid, label, variant in self.buttons:
                    yield Button(label, id=bid, variant=variant)  # type: ignore[arg-type]

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


class ConfirmQuit(_Dialog):
    """Unsaved changes: save and quit / quit without saving / stay. Keys s, d, escape."""

    BINDINGS = [
        Binding("s", "choose('save')", "Save and quit"),
        Binding("d", "choose('discard')", "Discard"),
        Binding("escape", "dismiss_none", "Stay"),
    ]

    def __init__(self, name: str):
        super().__init__(
            "Unsaved changes",
            f"{name} has changes that are not saved.\n[b]s[/b] save and quit · [b]d[/b] quit without saving · [b]esc[/b] stay",
            [("save", "Save and quit", "primary"), ("discard", "Don't save", "error"), ("stay", "Stay", "default")],
        )

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)


class ConfirmRestore(_Dialog):
    """A recovery file is newer than the storyboard: restore it? Keys y / n."""

    BINDINGS = [
        Binding("y", "choose('restore')", "Restore"),
        Binding("n", "choose('discard')", "Discard"),
        Binding("escape", "choose('keep')", "Later"),
    ]

    def __init__(self, name: str, recovery: str):
        super().__init__(
            "Recover unsaved edits?",
            f"{recovery} holds edits of {name} that were never saved (the studio closed "
            "without saving).\n[b]y[/b] restore them · [b]n[/b] discard them · [b]esc[/b] decide later",
            [("restore", "Restore", "primary"), ("discard", "Discard", "error"), ("keep", "Later", "default")],
        )

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)


class ConfirmOverwrite(_Dialog):
    """The file changed on disk since it was opened: overwrite it?"""

    BINDINGS = [
        Binding("y", "choose('overwrite')", "Overwrite"),
        Binding("escape,n", "dismiss_none", "Cancel"),
    ]

    def __init__(self, name: str):
        super().__init__(
            "File changed on disk",
            f"{name} was changed by another program since it was opened here.\n"
            "[b]y[/b] overwrite it with this version · [b]esc[/b] cancel",
            [("overwrite", "Overwrite", "error"), ("cancel", "Cancel", "default")],
        )

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)


class ExportDialog(_Dialog):
    """Choose what to export: keys m (film), o (timeline), p (contact sheet), a (all)."""

    BINDINGS = [
        Binding("m", "choose('mp4')", "Film"),
        Binding("o", "choose('otio')", "Timeline"),
        Binding("p", "choose('png')", "Sheet"),
        Binding("a", "choose('all')", "All"),
        Binding("escape", "dismiss_none", "Cancel"),
    ]

    def __init__(self, targets: dict[str, str]):
        lines = "\n".join(f"  {fmt}: {path}" for fmt, path in targets.items())
        super().__init__(
            "Export",
            f"From the render cache (every shot must be rendered):\n{lines}",
            [("mp4", "m Film mp4", "primary"), ("otio", "o Timeline otio", "default"),
             ("png", "p Sheet png", "default"), ("all", "a All", "success")],
        )

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)


class NamePrompt(ModalScreen[str | None]):
    """Ask for a name; `check` returns an error message or None; enter accepts, escape cancels."""

    DEFAULT_CSS = """
    NamePrompt { align: center middle; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, value: str, check: Callable[[str], str | None]):
        super().__init__()
        self.title_text = title
        self.value = value
        self.check = check

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Input(self.value, id="name-input", placeholder="letters, digits, _ and -")
            yield Static("", id="name-error", classes="dialog-error")
            yield Static("[b]enter[/b] ok · [b]esc[/b] cancel", classes="dialog-body")

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        error = self.check(event.value) if event.value else None
        self.query_one("#name-error", Static).update(error or "")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        error = self.check(event.value)
        if error:
            self.query_one("#name-error", Static).update(error)
            return
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)
