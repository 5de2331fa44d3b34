"""Problems found in a storyboard file, reported the way compilers do: `FILE:LINE: field: message`.

Loading never stops at the first problem: every problem of a file is collected and raised at once
in a `StoryboardError`, so an author fixes them all in one pass.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def format_field(loc: Sequence[str | int]) -> str:
    """Render a value path as a dotted field name: `("shots", 2, "duration")` -> `shots[2].duration`.

    Keys that are not plain names are quoted (`characters["a b"]`); pydantic's internal
    `[key]` marker is dropped.
    """
    out = ""
    for part in loc:
        if part == "[key]":
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and _PLAIN_KEY.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f'["{part}"]' if out else f'"{part}"'
    return out


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a storyboard file.

    `line` is 1-based; None when the problem concerns the file as a whole (e.g. it can't be read).
    `message` says what is wrong and, in parentheses, what is allowed.
    """

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        # One problem, one line: a value quoted from the file may hold line breaks.
        return _one_line(f"{where}: {self.field}: {self.message}")


def _one_line(text: str) -> str:
    return text.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\r")


class StoryboardError(Exception):
    """A storyboard file is invalid; `problems` lists everything wrong with it, in file order."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems: list[Problem] = list(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)
