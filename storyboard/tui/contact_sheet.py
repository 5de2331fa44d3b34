"""The contact sheet: every shot of the film as a strip of half-block thumbnails, in order."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from storyboard.tui.preview import halfblock_lines

#: Thumbnail size in cells (a square frame: 16 x 16 pixels).
THUMB_COLS, THUMB_ROWS = 16, 8


@dataclass
class SheetShot:
    """One shot on the sheet: its frames (None: not rendered) and a caption."""

    shot_id: str
    caption: str
    frames: np.ndarray | None


def pick_frames(count: int, room: int) -> list[int]:
    """Indices of at most `room` frames spread evenly over `count` frames, first and last included."""
    if count <= 0 or room <= 0:
        return []
    if count <= room:
        return list(range(count))
    if room == 1:
        return [0]
    return sorted({round(i * (count - 1) / (room - 1)) for i in range(room)})


class FilmStrip:
    """Thumbnails of some frames side by side, one space apart (a rich renderable)."""

    def __init__(self, frames: np.ndarray, width: int, cols: int = THUMB_COLS, rows: int = THUMB_ROWS):
        room = max(1, (width + 1) // (cols + 1))
        self.thumbs = [halfblock_lines(frames[i], cols, rows) for i in pick_frames(len(frames), room)]
        self.cols = cols

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        height = max((len(t) for t in self.thumbs), default=0)
        for y in range(height):
            for n, thumb in enumerate(self.thumbs):
                if n:
                    yield Segment(" ")
                line = thumb[y] if y < len(thumb) else []
                used = sum(len(s.text) for s in line)
                yield from line
                yield Segment(" " * (self.cols - used))
            yield Segment.line()


class ContactSheet(Screen):
    """A screen with every shot's thumbnails; escape goes back to the studio."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("t", "app.pop_screen", "Back", show=False),
    ]

    def __init__(self, title: str, shots: list[SheetShot], **kwargs) -> None:
        super().__init__(**kwargs)
        self.sheet_title = title
        self.shots = shots

    def compose(self) -> ComposeResult:
        yield Static(Text(f" Contact sheet · {self.sheet_title}", style="bold"), id="sheet-title")
        yield VerticalScroll(id="sheet")
        yield Footer()

    def on_mount(self) -> None:
        self._fill()

    def on_resize(self) -> None:
        self._fill()

    def _fill(self) -> None:
        sheet = self.query_one("#sheet", VerticalScroll)
        width = max(THUMB_COLS, self.size.width - 4)
        sheet.remove_children()
        widgets = []
        for n, shot in enumerate(self.shots):
            head = Text()
            head.append(f"{n + 1}. {shot.shot_id}", style="bold")
            head.append(f"  {shot.caption}", style="dim")
            widgets.append(Static(head, classes="sheet-caption"))
            if shot.frames is None or not len(shot.frames):
                widgets.append(Static(Text("  not rendered yet (r renders it)", style="yellow"), classes="sheet-strip"))
            else:
                widgets.append(Static(FilmStrip(shot.frames, width), classes="sheet-strip"))
        sheet.mount_all(widgets)
