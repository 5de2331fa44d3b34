"""The editor panel: the fields of the selected shot or character, validated as you type.

Every keystroke posts a FieldEdited message with the field's whole text; the app applies it to
the document and re-validates, and hands back the problems of the selected item, which mark
their fields here (red, with the message as the tooltip).
"""

from __future__ import annotations

from typing import Any, Iterable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Checkbox, ContentSwitcher, Input, Label, Static

from storyboard.tui.document import StoryDocument
from storyboard.tui.messages import FieldEdited

#: Shot form layout: rows of (field, label); two per row for the short ones.
SHOT_LAYOUT: tuple[tuple[tuple[str, str], ...], ...] = (
    (("id", "id"),),
    (("prompt", "prompt"),),
    (("characters", "characters"),),
    (("duration", "duration"), ("seed", "seed")),
    (("steps", "steps"), ("guidance", "guidance")),
    (("motion.clip", "motion"), ("motion.strength", "strength")),
    (("transition.type", "transition"), ("transition.duration", "trans. sec")),
    (("negative_prompt", "negative"),),
)
CHARACTER_LAYOUT: tuple[tuple[str, str], ...] = (
    ("prompt", "prompt"), ("negative_prompt", "negative"), ("mask", "mask"), ("reference", "reference"),
)
FILM_LAYOUT: tuple[tuple[tuple[str, str], ...], ...] = (
    (("title", "title"),),
    (("model", "model"),),
    (("fps", "fps"), ("size", "size")),
    (("seed", "seed"), ("steps", "steps")),
    (("guidance", "guidance"),),
    (("negative_prompt", "negative"),),
)


def _input_id(kind: str, field: str) -> str:
    return f"{kind}-{field.replace('.', '--')}"


def _field_of(input_id: str) -> tuple[str, str]:
    kind, _, rest = input_id.partition("-")
    return kind, rest.replace("--", ".")


class FieldRow(Horizontal):
    """A line of one or two labelled inputs."""


class Editor(Vertical):
    """Shot, character or film fields, in a content switcher."""

    BORDER_TITLE = "Editor"
    BINDINGS = [Binding("escape", "app.leave_editor", "Back")]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.kind: str | None = None  # "shot" | "character" | None
        self.key: Any = None  # shot index or character name

    def compose(self) -> ComposeResult:
        with ContentSwitcher(initial="none-form", id="editor-switcher"):
            yield Static("Nothing selected: add a shot with [b]a[/b], a character with [b]A[/b];"
                         " [b]f[/b] edits the film settings.",
                         id="none-form")
            with Vertical(id="shot-form"):
                for row in SHOT_LAYOUT:
                    with FieldRow():
                        for field, label in row:
                            yield Label(label, classes="field-label" + (" half" if len(row) > 1 else ""))
                            yield Input(id=_input_id("shot", field), compact=True, select_on_focus=False,
                                        classes="half" if len(row) > 1 else "")
                with FieldRow():
                    yield Label("anchor", classes="field-label")
                    yield Checkbox("fixes its characters' look", id="shot-anchor", compact=True)
            with Vertical(id="film-form"):
                for row in FILM_LAYOUT:
                    with FieldRow():
                        for field, label in row:
                            yield Label(label, classes="field-label" + (" half" if len(row) > 1 else ""))
                            yield Input(id=_input_id("film", field), compact=True, select_on_focus=False,
                                        classes="half" if len(row) > 1 else "")
            with Vertical(id="character-form"):
                with FieldRow():
                    yield Label("name", classes="field-label")
                    yield Static(id="character-name")
                for field, label in CHARACTER_LAYOUT:
                    with FieldRow():
                        yield Label(label, classes="field-label")
                        yield Input(id=_input_id("character", field), compact=True, select_on_focus=False)

    # -- showing ---------------------------------------------------------------------------------

    def _inputs(self, kind: str) -> Iterable[Input]:
        return self.query_one(f"#{kind}-form").query(Input)

    def show_shot(self, doc: StoryDocument, index: int, hints: dict[str, str] | None = None) -> None:
        """Fill the form with shot `index` (placeholders: what applies when a field is empty)."""
        self.kind, self.key = "shot", index
        self.query_one(ContentSwitcher).current = "shot-form"
        hints = hints or {}
        for inp in self._inputs("shot"):
            _, field = _field_of(inp.id or "")
            text = doc.shot_field_text(index, field)
            inp.placeholder = hints.get(field, "")
            if inp.value != text:
                with inp.prevent(Input.Changed):
                    inp.value = text
                    inp.cursor_position = 0  # show the start; focusing moves to the end
        anchor = self.query_one("#shot-anchor", Checkbox)
        value = doc.get_shot_field(index, "anchor") is True
        if anchor.value != value:
            with anchor.prevent(Checkbox.Changed):
                anchor.value = value
        shot_id = doc.shot_field_text(index, "id") or "(no id)"
        self.border_title = f"Shot {index + 1}/{doc.shot_count()} · {shot_id}"

    def show_character(self, doc: StoryDocument, name: str) -> None:
        """Fill the form with character `name`."""
        self.kind, self.key = "character", name
        self.query_one(ContentSwitcher).current = "character-form"
        self.query_one("#character-name", Static).update(f"[magenta]{name}[/]  [dim](N renames it everywhere)[/]")
        for inp in self._inputs("character"):
            _, field = _field_of(inp.id or "")
            text = doc.character_field_text(name, field)
            if inp.value != text:
                with inp.prevent(Input.Changed):
                    inp.value = text
                    inp.cursor_position = 0
        self.border_title = f"Character · {name}"

    def show_film(self, doc: StoryDocument, hints: dict[str, str] | None = None) -> None:
        """Fill the form with the film settings."""
        self.kind, self.key = "film", None
        self.query_one(ContentSwitcher).current = "film-form"
        hints = hints or {}
        for inp in self._inputs("film"):
            _, field = _field_of(inp.id or "")
            text = doc.film_field_text(field)
            inp.placeholder = hints.get(field, "")
            if inp.value != text:
                with inp.prevent(Input.Changed):
                    inp.value = text
                    inp.cursor_position = 0
        self.border_title = "Film settings"

    def show_nothing(self) -> None:
        self.kind, self.key = None, None
        self.query_one(ContentSwitcher).current = "none-form"
        self.border_title = "Editor"

    def mark_problems(self, problems: dict[str, str]) -> None:
        """Mark fields (by field name) with their problem messages; clear the others."""
        if self.kind is None:
            return
        for inp in self._inputs(self.kind):
            _, field = _field_of(inp.id or "")
            message = problems.get(field)
            if inp.has_class("-invalid") != (message is not None):  # restyling costs: only on change
                inp.set_class(message is not None, "-invalid")
            if inp.tooltip != message:
                inp.tooltip = message
        if self.kind == "shot":
            anchor = self.query_one("#shot-anchor", Checkbox)
            if anchor.has_class("-invalid") != ("anchor" in problems):
                anchor.set_class("anchor" in problems, "-invalid")

    def focus_first(self) -> None:
        """Focus the first field of the form shown."""
        if self.kind is not None:
            first = next(iter(self._inputs(self.kind)), None)
            if first is not None:
                first.focus()

    # -- editing ---------------------------------------------------------------------------------

    def on_descendant_focus(self, event) -> None:
        # Entering a field: typing continues its text.
        if isinstance(event.widget, Input):
            event.widget.cursor_position = len(event.widget.value)

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        if self.kind is None or not event.input.id:
            return
        kind, field = _field_of(event.input.id)
        if kind == self.kind:
            self.post_message(FieldEdited(kind, self.key, field, event.value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        # Enter moves on to the next field, like a form.
        event.stop()
        self.screen.focus_next()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        if self.kind == "shot":
            self.post_message(FieldEdited("shot", self.key, "anchor", "true" if event.value else ""))


__all__ = ["Editor"]
