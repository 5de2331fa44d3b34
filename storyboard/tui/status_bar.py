"""The status line above the footer: file state, problem count and render progress."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class StatusBar(Static):
    """One line; the app sets its parts and it draws them."""

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.file = ""
        self.dirty = False
        self.problems = 0
        self.job = ""
        self.note = ""

    def set(self, **parts) -> None:
        for name, value in parts.items():
            setattr(self, name, value)
        text = self._text()
        if text.plain != getattr(self, "_shown", None):  # typing must not re-layout the screen
            self._shown = text.plain
            self.update(text)

    def _text(self) -> Text:
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(self.file, style="bold")
        t.append(" ● unsaved" if self.dirty else " saved", style="yellow" if self.dirty else "green")
        if self.problems:
            t.append(f" · {self.problems} problem{'s' if self.problems != 1 else ''}", style="bold red")
        if self.job:
            t.append(" · ")
            t.append(self.job, style="cyan")
        if self.note:
            t.append(" · ")
            t.append(self.note, style="dim")
        return t
