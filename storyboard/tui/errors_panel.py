"""The problems panel: every problem of the document as `FILE:LINE: field: message`, the same
lines `storyboard validate` prints. Hidden while there are none; Enter on a problem goes to
the shot or character it is about."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from storyboard.errors import Problem
from storyboard.tui.messages import ProblemChosen


def problem_text(problem: Problem) -> Text:
    """One problem, coloured like a compiler message."""
    where = f"{problem.file}:{problem.line}" if problem.line is not None else problem.file
    text = Text()
    text.append(where, style="bold")
    text.append(": ")
    text.append(problem.field, style="magenta")
    text.append(": ")
    text.append(problem.message, style="red")
    return text


class ErrorsPanel(OptionList):
    """A list of problems; `display` follows whether there are any."""

    BORDER_TITLE = "Problems"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.problems: list[Problem] = []

    def show(self, problems: list[Problem]) -> None:
        if problems == self.problems:
            return
        self.problems = list(problems)
        self.clear_options()
        self.add_options([Option(problem_text(p), id=str(i)) for i, p in enumerate(problems)])
        self.display = bool(problems)
        n = len(problems)
        self.border_title = f"Problems ({n})"
        self.border_subtitle = "enter: go to field"

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        index = int(event.option.id or 0)
        if 0 <= index < len(self.problems):
            self.post_message(ProblemChosen(self.problems[index].field))
