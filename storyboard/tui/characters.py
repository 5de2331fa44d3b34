"""The character list: each character's name, prompt and how many shots it appears in."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from storyboard.tui.messages import CharacterHighlighted


class CharacterList(DataTable):
    """A DataTable of characters keyed by name."""

    BORDER_TITLE = "Characters"

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", **kwargs)
        self._rows: list[tuple[str, str, int]] = []

    def on_mount(self) -> None:
        self.add_column("name", key="name")
        self.add_column("shots", key="shots")
        self.add_column("prompt", key="prompt")

    @property
    def names(self) -> list[str]:
        return [r[0] for r in self._rows]

    def show(self, rows: list[tuple[str, str, int]], select: str | None = None) -> None:
        """Rows of (name, prompt, number of shots using it)."""
        current = self.selected
        if rows != self._rows:
            self.clear()
            for name, prompt, uses in rows:
                self.add_row(Text(name, style="magenta"), Text(str(uses), justify="right"), prompt, key=name)
            self._rows = list(rows)
        target = select if select is not None else current
        if target in self.names:
            self.move_cursor(row=self.names.index(target), animate=False)

    @property
    def selected(self) -> str | None:
        """Name under the cursor, if any."""
        if not self._rows or not 0 <= self.cursor_row < len(self._rows):
            return None
        return self._rows[self.cursor_row][0]

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if self.has_focus and 0 <= event.cursor_row < len(self._rows):
            self.post_message(CharacterHighlighted(self._rows[event.cursor_row][0]))

    def on_focus(self) -> None:
        if self.selected is not None:
            self.post_message(CharacterHighlighted(self.selected))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.app.action_focus_editor()
