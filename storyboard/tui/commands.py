"""The command palette (ctrl+p): every studio action, found by name, with its key."""

from __future__ import annotations

from functools import partial

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider


def _key_label(binding: Binding) -> str:
    first = binding.key.split(",")[0]
    return binding.key_display or first.replace("ctrl+", "^").replace("shift+", "⇧")


class StudioCommands(Provider):
    """Commands built from the app's BINDINGS: one list of actions for keys, footer and palette."""

    def _commands(self) -> list[tuple[str, str, str]]:
        out = []
        for binding in self.app.BINDINGS:
            if not isinstance(binding, Binding) or not binding.description or binding.key == "escape":
                continue
            action = binding.action
            # Only actions that make sense now (check_action: None dims, False hides).
            if self.app.check_action(action.split("(")[0], ()) is not True:
                continue
            title = binding.tooltip or binding.description
            out.append((title, f"key: {_key_label(binding)}", action))
        return out

    async def discover(self) -> Hits:
        for title, help_text, action in self._commands():
            yield DiscoveryHit(title, partial(self.app.run_action, action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, action in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), partial(self.app.run_action, action), help=help_text)
