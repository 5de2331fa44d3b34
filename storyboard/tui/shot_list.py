"""The shot list: one row per shot with its id, duration, characters and render status."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import DataTable

from storyboard.tui.messages import ShotHighlighted

#: Status words and their colours (the same words as `storyboard plan`, plus render states).
STATUS_STYLES = {
    "cached": "green",
    "stale": "yellow",
    "queued": "cyan",
    "rendering": "bold cyan",
    "failed": "bold red",
    "invalid": "red",
    "cancelled": "yellow",
    "?": "dim",
    "no": "dim red",  # "no plan"
}


@dataclass(frozen=True)
class ShotRow:
    """What the list shows of one shot."""

    shot_id: str
    duration: str
    characters: str
    status: str

    def cells(self) -> tuple[Text, Text, Text, Text]:
        word = self.status.split(" ", 1)[0]
        return (
            Text(self.shot_id or "(no id)", style="" if self.shot_id else "dim italic"),
            Text(self.duration, justify="right"),
            Text(self.characters, style="magenta"),
            Text(self.status, style=STATUS_STYLES.get(word, "")),
        )


class ShotList(DataTable):
    """A DataTable of shots; row keys are positions, so rows follow the document's order."""

    BORDER_TITLE = "Shots"

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self._rows: list[ShotRow] = []

    def on_mount(self) -> None:
        self.add_column("id", key="id")
        self.add_column("sec", key="duration")
        self.add_column("chars", key="characters")
        self.add_column("status", key="status")

    def show(self, rows: list[ShotRow], select: int | None = None) -> None:
        """Show these rows; only changed cells are redrawn (statuses update many times a second)."""
        if len(rows) != len(self._rows):
            cursor = self.cursor_row if select is None else select
            self.clear()
            for i, row in enumerate(rows):
                self.add_row(*row.cells(), key=str(i))
            self._rows = list(rows)
            if rows:
                self.move_cursor(row=max(0, min(cursor, len(rows) - 1)), animate=False)
            self.border_subtitle = f"{len(rows)} shot{'s' if len(rows) != 1 else ''}"
            return
        columns = ("id", "duration", "characters", "status")
        for i, (old, new) in enumerate(zip(self._rows, rows)):
            if old != new:
                for col, old_cell, new_cell in zip(columns, old.cells(), new.cells()):
                    if old_cell != new_cell:
                        self.update_cell(str(i), col, new_cell, update_width=True)
        self._rows = list(rows)
        if select is not None and rows:
            self.move_cursor(row=max(0, min(select, len(rows) - 1)), animate=False)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        # Only the user's cursor moves choose what the editor shows; rebuilding the table
        # (which also moves the cursor) must not steal the editor from a character.
        if self.has_focus and event.cursor_row >= 0:
            self.post_message(ShotHighlighted(event.cursor_row))

    def on_focus(self) -> None:
        if self._rows:
            self.post_message(ShotHighlighted(self.cursor_row))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        # Enter on a shot: edit it.
        event.stop()
        self.app.action_focus_editor()
