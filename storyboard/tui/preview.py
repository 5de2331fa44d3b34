"""The preview: plays a shot's cached frames in the terminal, at the film's frame rate.

A terminal cell holds two pixels stacked vertically: the upper half block "▀" drawn in the top
pixel's colour on a background of the bottom pixel's colour. Cells are about twice as tall as
they are wide, so each half is roughly square and images keep their aspect ratio.
`halfblock_lines` is shared with the contact sheet.
"""

from __future__ import annotations

import numpy as np
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.reactive import reactive
from textual.strip import Strip
from textual.timer import Timer
from textual.widget import Widget

UPPER_HALF = "▀"


def fit(frame_hw: tuple[int, int], cells_wh: tuple[int, int]) -> tuple[int, int]:
    """(width, height) in pixels of a frame of (h, w) pixels scaled to fit `cells_wh` cells
    (each cell is one pixel wide and two pixels tall), keeping its aspect ratio."""
    h, w = frame_hw
    cols, rows = cells_wh
    if h <= 0 or w <= 0 or cols <= 0 or rows <= 0:
        return 0, 0
    scale = min(cols / w, 2 * rows / h)
    pw = max(1, min(cols, round(w * scale)))
    ph = max(2, min(2 * rows, round(h * scale)))
    return pw, ph + (ph % 2)  # whole cells


def resize(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A frame (H, W, 3 uint8) resized to `size` (width, height): box-averaged when shrinking
    (no aliasing shimmer), nearest when enlarging (crisp pixels of small test frames)."""
    from PIL import Image

    w, h = size
    img = Image.fromarray(np.ascontiguousarray(frame[..., :3], dtype=np.uint8))
    shrink = w < frame.shape[1] or h < frame.shape[0]
    return np.asarray(img.resize((w, h), Image.Resampling.BOX if shrink else Image.Resampling.NEAREST))


def halfblock_lines(frame: np.ndarray, cols: int, rows: int) -> list[list[Segment]]:
    """A frame as at most `rows` lines of at most `cols` half-block cells (fitted, not padded)."""
    pw, ph = fit(frame.shape[:2], (cols, rows))
    if pw == 0:
        return []
    img = resize(frame, (pw, ph))
    lines: list[list[Segment]] = []
    styles: dict[tuple, Style] = {}
    for y in range(0, ph, 2):
        top, bottom = img[y], img[y + 1] if y + 1 < ph else img[y]
        segments = []
        for x in range(pw):
            key = (*top[x], *bottom[x])
            style = styles.get(key)
            if style is None:
                style = styles[key] = Style(color=Color.from_rgb(*top[x]), bgcolor=Color.from_rgb(*bottom[x]))
            segments.append(Segment(UPPER_HALF, style))
        lines.append(list(Segment.simplify(segments)))
    return lines


class Preview(Widget):
    """Plays frames (F, H, W, 3 uint8) in a loop; space pauses. Frames come from the app."""

    BORDER_TITLE = "Preview"
    playing: reactive[bool] = reactive(True)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.frames: np.ndarray | None = None
        self.key: str | None = None  # the cache key of the frames playing
        self.fps = 8
        self.index = 0
        self.message = "Select a rendered shot to play it."
        self.label = ""
        self._timer: Timer | None = None
        self._strips: dict[tuple[int, int, int], list[Strip]] = {}  # (frame, w, h) -> lines

    def show_frames(self, frames: np.ndarray | None, fps: int, label: str = "", message: str = "",
                    key: str | None = None) -> None:
        """Play `frames` at `fps` (None: show `message` instead); `key` names what is playing."""
        same = frames is not None and self.frames is not None and frames is self.frames
        self.key = key if frames is not None else None
        self.frames = frames
        self.fps = max(1, int(fps))
        self.label = label
        self.message = message
        self._strips.clear()
        if not same:
            self.index = 0
        self._restart_timer()
        self._update_titles()
        self.refresh()

    def _restart_timer(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        if self.frames is not None and len(self.frames) > 1 and self.playing:
            self._timer = self.set_interval(1 / self.fps, self._advance)

    def watch_playing(self, playing: bool) -> None:
        self._restart_timer()
        self._update_titles()

    def toggle(self) -> None:
        self.playing = not self.playing

    def _advance(self) -> None:
        if self.frames is None or not len(self.frames):
            return
        self.index = (self.index + 1) % len(self.frames)
        self._update_titles()
        self.refresh()

    def _update_titles(self) -> None:
        if self.frames is None:
            self.border_subtitle = ""
            self.border_title = "Preview"
            return
        n = len(self.frames)
        state = "▶" if self.playing else "⏸"
        self.border_title = f"Preview · {self.label}" if self.label else "Preview"
        self.border_subtitle = f"{state} {self.index + 1}/{n} · {self.fps} fps"

    def render_line(self, y: int) -> Strip:
        width, height = self.content_size
        if self.frames is None or not len(self.frames):
            text = self.message if y == height // 2 else ""
            style = self.rich_style
            text = text[:width].center(width)
            return Strip([Segment(text, Style(color="grey50", bgcolor=style.bgcolor))], width)
        key = (self.index, width, height)
        strips = self._strips.get(key)
        if strips is None:
            if len(self._strips) > 4 * len(self.frames):  # resized many times: start over
                self._strips.clear()
            lines = halfblock_lines(self.frames[self.index], width, height)
            pad_top = (height - len(lines)) // 2
            strips = [Strip.blank(width)] * pad_top
            for segments in lines:
                used = sum(len(s.text) for s in segments)
                left = (width - used) // 2
                strips.append(Strip([Segment(" " * left), *segments, Segment(" " * (width - used - left))], width))
            strips += [Strip.blank(width)] * (height - len(strips))
            self._strips[key] = strips
        return strips[y] if y < len(strips) else Strip.blank(width)
