"""Contact sheets: one row of evenly spaced, numbered frames per clip, a text band above each,
optional subject masks tinted over the frames. Used for a film's sheet (storyboard) and for the
evaluation's figures (motionq.evaluation.plots)."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: Height in pixels of the text band above each row of the contact sheet.
LABEL_HEIGHT = 16
_MASK_TINT = np.array([255, 40, 200], dtype=np.float32)  # magenta: rare in generated scenes
_MASK_LEGEND = "tint: subject mask"
_MASK_ALPHA = 0.55


@dataclass(frozen=True)
class SheetRow:
    """One clip of a sheet: ``frames`` uint8 (F, H, W, 3); ``mask`` float (F', H', W') in [0, 1]
    or None; ``title`` the text band's words."""

    title: str
    frames: np.ndarray
    mask: np.ndarray | None = None


def _fit(frame: np.ndarray, cell: int) -> np.ndarray:
    """Scale a frame to fit a ``cell`` square, keeping its aspect, with crisp pixels."""
    h, w = frame.shape[:2]
    s = cell / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_NEAREST)


def _tint(thumb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Blend the tint colour over ``thumb`` where ``mask`` (float, any size) is high."""
    th, tw = thumb.shape[:2]
    m = cv2.resize(np.asarray(mask, dtype=np.float32), (tw, th), interpolation=cv2.INTER_LINEAR)
    a = (np.clip(m, 0.0, 1.0) * _MASK_ALPHA)[..., None]
    return (thumb.astype(np.float32) * (1 - a) + _MASK_TINT * a).round().astype(np.uint8)


_ASCII_PUNCT = str.maketrans({"—": "-", "–": "-", "‘": "'", "’": "'", "“": '"', "”": '"', "…": "..."})


def _printable(text: str) -> str:
    """``text`` reduced to ASCII: PIL's default font has no glyphs for accents or dashes."""
    text = unicodedata.normalize("NFKD", text.translate(_ASCII_PUNCT))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return text.encode("ascii", "replace").decode("ascii")


def _shorten(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    """``text`` cut with an ellipsis so it fits ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def contact_sheet_image(rows: Sequence[SheetRow], frames_per_row: int = 8, cell: int = 96) -> Image.Image:
    """Draw a sheet with one row per clip of evenly spaced frames; returns the PIL image.

    Layout: ``frames_per_row * cell`` pixels wide, ``len(rows) * (LABEL_HEIGHT + cell)`` tall.
    Each row has a text band (its title) above ``frames_per_row`` square cells; each frame is
    scaled to fit its cell with nearest-neighbour pixels and numbered in the corner. A clip with
    fewer frames than cells leaves the rest empty. A row's mask (any frame count and size, e.g.
    subject masks from attention) is tinted over the matching frames, and the text band says so.
    """
    if not rows:
        raise ValueError("contact sheet of no rows")
    if frames_per_row < 1 or cell < 8:
        raise ValueError(f"need frames_per_row >= 1 and cell >= 8, got {frames_per_row}, {cell}")
    row_h = LABEL_HEIGHT + cell
    sheet = Image.new("RGB", (frames_per_row * cell, len(rows) * row_h), (24, 24, 28))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()

    for r, row in enumerate(rows):
        y0 = r * row_h
        text = row.title
        draw.rectangle((0, y0, sheet.width - 1, y0 + LABEL_HEIGHT - 1), fill=(40, 40, 48))
        mask = row.mask
        room = sheet.width - 8
        if mask is not None and len(mask):
            # Say what the tint is, so it is not taken for a rendering defect (the video has none).
            legend_w = draw.textlength(_MASK_LEGEND, font=font)
            if legend_w + 40 < room:
                draw.text((sheet.width - 4 - legend_w, y0 + 2), _MASK_LEGEND,
                          fill=tuple(int(v) for v in _MASK_TINT), font=font)
                room -= int(legend_w) + 8
        text = _shorten(draw, _printable(text), font, room)
        draw.text((4, y0 + 2), text, fill=(235, 235, 235), font=font)

        n = len(row.frames)
        k = min(n, frames_per_row)
        idx = np.linspace(0, n - 1, k).round().astype(int) if k > 1 else np.array([0])
        for c, fi in enumerate(idx):
            thumb = _fit(row.frames[fi], cell - 2)  # 1 px gutter so neighbours don't merge
            if mask is not None and len(mask):
                # Masks may come at another frame count (latent frames): pick by position.
                mi = min(len(mask) - 1, round(fi * (len(mask) - 1) / max(1, n - 1)))
                thumb = _tint(thumb, mask[mi])
            x = c * cell + (cell - thumb.shape[1]) // 2
            y = y0 + LABEL_HEIGHT + (cell - thumb.shape[0]) // 2
            sheet.paste(Image.fromarray(thumb), (x, y))
            # Frame number with a shadow so it reads on light and dark frames alike.
            tx, ty = c * cell + 3, y0 + LABEL_HEIGHT + cell - 13
            draw.text((tx + 1, ty + 1), str(int(fi)), fill=(0, 0, 0), font=font)
            draw.text((tx, ty), str(int(fi)), fill=(255, 255, 255), font=font)
    return sheet
