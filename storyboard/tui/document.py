"""The storyboard being edited: a round-trip document with undo/redo, independent of the UI.

The TUI never edits a storyboard through the pydantic model: it edits the *document* (a tomlkit
document for TOML, a ruamel.yaml round-trip document for YAML), so that saving keeps the
author's comments, key order and formatting everywhere they did not touch. Validation always
runs on `to_text()`, the exact text that saving would write, with the same code as
`storyboard validate`; so `FILE:LINE` in a problem points at the saved file.

Values typed into the editor arrive as text (`set_shot_text`). Text that doesn't parse as the
field's type is stored as text on purpose: validation then reports it with the usual message
("must be a number, got 'abc'") instead of the editor inventing its own.

History is a list of whole-document snapshots (storyboards are small). Consecutive edits of the
same field coalesce into one undo step, so undo reverts a typed word, not a keystroke.

Crash safety: `write_recovery` saves the unsaved text beside the file (`.NAME.recover`), and
`recovery_candidate` finds one on the next start.
"""

from __future__ import annotations

import copy
import os
import random
import re
from collections.abc import Iterator, MutableMapping, MutableSequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from storyboard.atomic import atomic_write_text
from storyboard.errors import Problem
from storyboard.load import detect_format, validate_text
from storyboard.schema import MAX_SEED, NAME_RE, REFERENCE_RE
from storyboard.tui.roundtrip import backend_for, plain as _plain

__all__ = [
    "CHARACTER_FIELDS",
    "FILM_FIELDS",
    "SHOT_FIELDS",
    "DocumentError",
    "HistoryStep",
    "StoryDocument",
    "discard_recovery",
    "format_value",
    "parse_number",
    "problem_target",
    "recovery_candidate",
    "recovery_path",
    "write_recovery",
]

#: Fields of a shot the editor offers, as dotted paths (nested: motion.*, transition.*).
SHOT_FIELDS: tuple[str, ...] = (
    "id", "prompt", "characters", "duration", "seed", "steps", "guidance",
    "motion.clip", "motion.strength", "transition.type", "transition.duration",
    "negative_prompt", "anchor",
)
#: Fields of a character the editor offers.
CHARACTER_FIELDS: tuple[str, ...] = ("prompt", "negative_prompt", "mask", "reference")
#: Film settings the editor offers.
FILM_FIELDS: tuple[str, ...] = ("title", "fps", "size", "model", "seed", "steps", "guidance", "negative_prompt")

_NUMBER_FIELDS = {"duration", "seed", "steps", "guidance", "motion.strength", "transition.duration", "fps"}
_LIST_FIELDS = {"characters"}
_BOOL_FIELDS = {"anchor"}
#: Text fields that are required: emptied, they stay as "" so validation says "must not be empty".
_REQUIRED_TEXT = {"id", "prompt"}

#: A prompt for new shots in the built-in model's vocabulary ("a shape": the model picks a look).
NEW_SHOT_PROMPT = "a shape moves right on a black background"

Focus = tuple[Literal["shot", "character", "film"], Any]


class DocumentError(Exception):
    """The file cannot be edited structurally (e.g. a syntax error); `problems` says why."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class HistoryStep:
    """One undoable change: the document text after it, what it was, and where it happened."""

    text: str
    label: str
    focus: Focus | None = None
    coalesce: tuple | None = None


# -- text <-> values ------------------------------------------------------------------------------

_INT_RE = re.compile(r"[+-]?\d+")


def parse_number(text: str) -> int | float | str | None:
    """An int or float from editor text; None for empty; the text itself when it isn't a number
    (so validation reports it in its own words)."""
    s = text.strip()
    if not s:
        return None
    if _INT_RE.fullmatch(s):
        return int(s)
    try:
        return float(s)
    except ValueError:
        return s


def parse_size(text: str) -> list | str | None:
    """[width, height] from "256x256", "256 256" or "[256, 256]"; None for empty; else the text."""
    s = text.strip().strip("[]()")
    if not s:
        return None
    parts = [p for p in re.split(r"[x×,\s]+", s) if p]
    if len(parts) == 2 and all(_INT_RE.fullmatch(p) for p in parts):
        return [int(p) for p in parts]
    return text.strip()


def parse_names(text: str) -> list[str] | None:
    """Character names from editor text: separated by commas and/or spaces; None for empty."""
    names = [n for n in re.split(r"[,\s]+", text.strip()) if n]
    return names or None


def format_value(value: Any) -> str:
    """A document value as editor text (the inverse of the parse functions)."""
    value = _plain(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={format_value(v)}" for k, v in value.items())
    return str(value)


# -- the document ---------------------------------------------------------------------------------


class StoryDocument:
    """A storyboard file open for editing. Every change goes through a method here."""

    def __init__(self, path: Path | str, text: str, fmt: str | None = None, *, saved_text: str | None = None):
        """Parse `text` as the storyboard `path` (format from the suffix unless `fmt`).

        Raises DocumentError when the text can't be parsed (the problems say where).
        `saved_text` is what is on disk (default: `text`), for `dirty`.
        """
        self.path = Path(path)
        fmt = fmt or detect_format(self.path)
        if fmt is None:
            raise DocumentError([Problem(str(self.path), None, "file",
                                         f"unknown file type '{self.path.suffix}' (allowed: .toml, .yaml, .yml)")])
        self.fmt = fmt
        self._backend = backend_for(fmt, text)
        self._doc = self._parse(text)
        self._backend.learn(text, self._doc)
        self.saved_text = text if saved_text is None else saved_text
        self._history: list[HistoryStep] = [HistoryStep(self.to_text(), "open")]
        self._pos = 0
        self._rng = random.Random()

    @classmethod
    def open(cls, path: Path | str) -> "StoryDocument":
        """Open a storyboard file (UTF-8). Raises DocumentError for unreadable or unparsable files."""
        path = Path(path)
        try:
            text = path.read_bytes().decode("utf-8")
        except FileNotFoundError:
            raise DocumentError([Problem(str(path), None, "file", "not found")]) from None
        except UnicodeDecodeError as e:
            raise DocumentError([Problem(str(path), None, "file", f"is not UTF-8 text (byte {e.start})")]) from None
        except OSError as e:
            raise DocumentError([Problem(str(path), None, "file", f"cannot be read: {e.strerror}")]) from None
        return cls(path, text)

    def _parse(self, text: str) -> Any:
        try:
            doc = self._backend.parse(text.removeprefix("\ufeff"))
        except Exception:
            # The loader words syntax errors best; only fall back to the parser's own message.
            problems = [p for p in validate_text(text, self.path, fmt=self.fmt) if p.field == "syntax"]
            raise DocumentError(problems or [Problem(str(self.path), 1, "syntax", "cannot be parsed")]) from None
        if not isinstance(doc, MutableMapping):
            raise DocumentError([Problem(str(self.path), 1, "storyboard", "must be a table of fields")])
        return doc

    # -- text and saving -------------------------------------------------------------------------

    def to_text(self) -> str:
        """The document as it would be saved."""
        return self._backend.restore(self._backend.dump(self._doc))

    @property
    def dirty(self) -> bool:
        """True when the document differs from the file as last opened or saved."""
        return self.to_text() != self.saved_text

    def validate(self, allow_outside: bool = False) -> list[Problem]:
        """Every problem of the document, exactly as `storyboard validate` would print them."""
        return validate_text(self.to_text(), self.path, fmt=self.fmt, allow_outside=allow_outside)

    def save(self, path: Path | str | None = None) -> Path:
        """Write the document atomically (to `path`, default its own); returns the path."""
        target = Path(path) if path is not None else self.path
        text = self.to_text()
        atomic_write_text(target, text)
        if target == self.path:
            self.saved_text = text
        return target

    def disk_changed(self) -> bool:
        """True when the file on disk is no longer what was opened or last saved here."""
        try:
            return self.path.read_bytes().decode("utf-8") != self.saved_text
        except (OSError, UnicodeDecodeError):
            return self.path.exists()

    # -- reading ---------------------------------------------------------------------------------

    @property
    def data(self) -> dict:
        """The whole document as plain Python data (a copy)."""
        return _plain(self._doc)

    def _shots(self, create: bool = False) -> MutableSequence:
        shots = self._doc.get("shots")
        if isinstance(shots, MutableSequence):
            return shots
        if create:
            self._backend.set_key(self._doc, "shots", self._backend.new_shots())
            return self._doc["shots"]
        return []

    def _shot(self, index: int) -> MutableMapping:
        shots = self._shots()
        if not 0 <= index < len(shots) or not isinstance(shots[index], MutableMapping):
            raise IndexError(f"no shot {index}")
        return shots[index]

    def _characters(self, create: bool = False) -> MutableMapping:
        chars = self._doc.get("characters")
        if isinstance(chars, MutableMapping):
            return chars
        if create:
            self._backend.add_before(self._doc, "characters", self._backend.new_section(), before="shots")
            return self._doc["characters"]
        return {}

    def shot_count(self) -> int:
        return len(self._shots())

    def shot_ids(self) -> list[str]:
        """Each shot's id as text ("" where missing), in order."""
        out = []
        for shot in self._shots():
            sid = shot.get("id") if isinstance(shot, MutableMapping) else None
            out.append(format_value(sid))
        return out

    def shot(self, index: int) -> dict:
        """A shot as plain data ({} for an entry that isn't a table: validation reports it)."""
        shots = self._shots()
        item = shots[index] if 0 <= index < len(shots) else None
        return _plain(item) if isinstance(item, MutableMapping) else {}

    def film(self) -> dict:
        film = self._doc.get("film")
        return _plain(film) if isinstance(film, MutableMapping) else {}

    def get_shot_field(self, index: int, field: str) -> Any:
        """A shot's field as plain data (None when absent). Dotted fields read inside motion and
        transition; `transition.type` of the shorthand `transition = "fade"` is "fade"."""
        shots = self._shots()
        shot = shots[index] if 0 <= index < len(shots) else None
        if not isinstance(shot, MutableMapping):
            return None
        head, _, sub = field.partition(".")
        value = shot.get(head)
        if not sub:
            return _plain(value)
        if head == "transition" and isinstance(value, str):
            return str(value) if sub == "type" else None
        if isinstance(value, MutableMapping):
            return _plain(value.get(sub))
        return None

    def shot_field_text(self, index: int, field: str) -> str:
        """A shot's field as editor text."""
        return format_value(self.get_shot_field(index, field))

    def character_names(self) -> list[str]:
        return [str(k) for k in self._characters()]

    def character(self, name: str) -> dict:
        value = self._characters().get(name)
        return _plain(value) if isinstance(value, MutableMapping) else {}

    def character_field_text(self, name: str, field: str) -> str:
        return format_value(self.character(name).get(field))

    # -- history ---------------------------------------------------------------------------------

    @contextmanager
    def _edit(self, coalesce: tuple | None) -> Iterator[None]:
        """Wrap one edit. A run of edits to one field is applied to the document as it was
        before the run, so emptying a field and typing a new value replaces the value in
        place (keeping its position and comment) instead of removing and re-adding the key.
        An edit that fails leaves the document as it was."""
        if coalesce is not None and self._history[self._pos].coalesce == coalesce and self._pos > 0:
            self._doc = self._parse(self._history[self._pos - 1].text)
        try:
            yield
        except BaseException:
            self._doc = self._parse(self._history[self._pos].text)
            raise

    def _commit(self, label: str, focus: Focus | None = None, coalesce: tuple | None = None) -> None:
        text = self.to_text()
        current = self._history[self._pos]
        if text == current.text:
            return
        # Re-parse what was written: nodes built in memory then behave exactly like parsed ones
        # (tomlkit, for one, mangles copies of inline tables it built itself).
        self._doc = self._parse(text)
        del self._history[self._pos + 1:]
        if coalesce is not None and current.coalesce == coalesce and self._pos > 0:
            if text == self._history[self._pos - 1].text:  # typed back to where the run began
                self._history.pop()
                self._pos -= 1
                return
            self._history[self._pos] = HistoryStep(text, label, focus, coalesce)
        else:
            self._history.append(HistoryStep(text, label, focus, coalesce))
            self._pos += 1

    def break_coalescing(self) -> None:
        """Make the next edit its own undo step even if it is to the same field."""
        step = self._history[self._pos]
        if step.coalesce is not None:
            self._history[self._pos] = HistoryStep(step.text, step.label, step.focus, None)

    @property
    def can_undo(self) -> bool:
        return self._pos > 0

    @property
    def can_redo(self) -> bool:
        return self._pos < len(self._history) - 1

    def undo(self) -> HistoryStep | None:
        """Go back one step; returns the step undone (its label and focus), or None."""
        if not self.can_undo:
            return None
        undone = self._history[self._pos]
        self._pos -= 1
        self._doc = self._parse(self._history[self._pos].text)
        return undone

    def redo(self) -> HistoryStep | None:
        """Re-apply the step undone last; returns it, or None."""
        if not self.can_redo:
            return None
        self._pos += 1
        step = self._history[self._pos]
        self._doc = self._parse(step.text)
        return step

    def replace_text(self, text: str, label: str = "restore") -> None:
        """Replace the whole document (e.g. with a recovered one), as one undoable step."""
        self._backend = backend_for(self.fmt, text)
        self._doc = self._parse(text)
        self._backend.learn(text, self._doc)
        self._commit(label)

    # -- editing shots ---------------------------------------------------------------------------

    def _set(self, mapping: MutableMapping, key: str, value: Any) -> None:
        """Set (None: remove) one key, keeping the old value's style where it can."""
        b = self._backend
        if value is None:
            if key in mapping:
                b.del_key(mapping, key)
            return
        old = mapping.get(key)
        if isinstance(value, list):
            if isinstance(old, list) and _plain(old) == value:
                return
            new = b.new_list(value)
        elif isinstance(value, dict):
            if isinstance(old, MutableMapping) and _plain(old) == value:
                return
            new = b.new_table(inline=True)
            for k, v in value.items():
                new[k] = b.scalar(v)
        else:
            if old is not None and not isinstance(old, (MutableMapping, list)) and _plain(old) == value \
                    and type(_plain(old)) is type(value):
                return
            new = b.scalar(value, old)
        b.set_key(mapping, key, new)

    def set_shot_field(self, index: int, field: str, value: Any, *, coalesce: bool = True) -> None:
        """Set a shot's field to a plain value (None removes it, so the default applies).

        `motion.*` and `transition.*` edit inside the nested table, creating it when needed and
        removing it when emptied; a transition of just a type stays the shorthand string.
        """
        key = ("shot", index, field) if coalesce else None
        with self._edit(key):
            shot = self._shot(index)
            head, _, sub = field.partition(".")
            if not sub:
                self._set(shot, head, value)
            elif head == "transition":
                self._set_transition(shot, sub, value)
            else:
                self._set_nested(shot, head, sub, value)
        self._commit(f"edit {field} of shot {index + 1}", ("shot", index), key)

    def _set_nested(self, shot: MutableMapping, head: str, sub: str, value: Any) -> None:
        table = shot.get(head)
        if not isinstance(table, MutableMapping):
            if value is None:
                return
            table = self._backend.new_table(inline=True)
            self._backend.set_key(shot, head, table)
            table = shot[head]
        if self.fmt == "toml" and _is_inline(table) and (sub in table) != (value is not None):
            # tomlkit mangles the spacing of an inline table that gains or loses a key
            # (`{type = "fade",duration = 0.3}`): rebuild it instead.
            rebuilt = {k: _plain(v) for k, v in table.items() if k != sub}
            if value is not None:
                rebuilt[sub] = value
            if rebuilt:
                self._set(shot, head, rebuilt)
            else:
                self._backend.del_key(shot, head)
            return
        self._set(table, sub, value)
        if not len(table):
            self._backend.del_key(shot, head)

    def _set_transition(self, shot: MutableMapping, sub: str, value: Any) -> None:
        raw = shot.get("transition")
        if isinstance(raw, MutableMapping):
            self._set_nested(shot, "transition", sub, value)
            return
        if sub == "type":
            self._set(shot, "transition", value)  # the shorthand: transition = "fade"
            return
        if value is None:
            return  # a shorthand or absent transition has no duration to remove
        table = {"type": _plain(raw) if raw is not None else "cut", "duration": value}
        self._set(shot, "transition", table)

    def set_shot_text(self, index: int, field: str, text: str) -> None:
        """Set a shot's field from editor text (see the module docstring for the rules)."""
        self.set_shot_field(index, field, _parse_field(field, text))

    def _unique_id(self, base: str) -> str:
        ids = set(self.shot_ids())
        base = re.sub(r"[^A-Za-z0-9_-]+", "-", base).strip("-") or "shot"
        m = re.fullmatch(r"(.*?)-(\d+)", base)
        stem, n = (m.group(1), int(m.group(2))) if m else (base, 1)
        candidate = base
        while candidate in ids:
            n += 1
            candidate = f"{stem}-{n}"
        return candidate

    def add_shot(self, after: int | None = None, *, shot_id: str | None = None,
                 prompt: str = NEW_SHOT_PROMPT, duration: float = 1.0) -> int:
        """Insert a new shot after `after` (default: at the end); returns its index."""
        shots = self._shots(create=True)
        index = len(shots) if after is None else max(0, min(after + 1, len(shots)))
        new = self._backend.new_shot(shots)
        new["id"] = self._backend.scalar(shot_id or self._unique_id(f"shot-{len(shots) + 1}"))
        new["prompt"] = self._backend.scalar(prompt)
        new["duration"] = self._backend.scalar(float(duration))
        shots.insert(index, new)
        self._backend.normalise_shots(shots)
        self._commit(f"add shot {index + 1}", ("shot", index))
        return index

    def duplicate_shot(self, index: int) -> int:
        """Insert a copy of a shot right after it, with a fresh id; returns the copy's index."""
        shots = self._shots()
        original = self._shot(index)
        clone = copy.deepcopy(original)
        self._backend.drop_trailing_comments(clone)
        base = format_value(original.get("id")) or "shot"
        clone["id"] = self._backend.scalar(self._unique_id(f"{base}-2" if not re.search(r"-\d+$", base) else base),
                                           clone.get("id"))
        shots.insert(index + 1, clone)
        self._backend.normalise_shots(shots)
        self._commit(f"duplicate shot {index + 1}", ("shot", index + 1))
        return index + 1

    def delete_shot(self, index: int) -> int | None:
        """Remove a shot; returns the index to select next (None when no shot is left)."""
        shots = self._shots()
        self._shot(index)
        if index > 0:  # a section comment after it ("# Act 2") introduces the next shot: keep it
            self._backend.move_trailing_comments(shots[index], shots[index - 1])
        del shots[index]
        self._backend.normalise_shots(shots)
        nxt = min(index, len(shots) - 1) if len(shots) else None
        self._commit(f"delete shot {index + 1}", ("shot", nxt) if nxt is not None else None)
        return nxt

    def move_shot(self, index: int, delta: int) -> int:
        """Move a shot `delta` places (negative: earlier); returns its new index."""
        shots = self._shots()
        self._shot(index)
        target = max(0, min(index + delta, len(shots) - 1))
        if target == index:
            return index
        comments = getattr(shots, "ca", None)
        pre = comments.items.pop(index, None) if comments is not None else None
        item = shots[index]
        del shots[index]
        shots.insert(target, item)
        if pre is not None:
            comments.items[target] = pre  # a comment above a YAML item moves with it
        self._backend.normalise_shots(shots)
        self._commit(f"move shot {index + 1} to {target + 1}", ("shot", target))
        return target

    def reroll_seed(self, index: int, rng: random.Random | None = None) -> int:
        """Give a shot a new random seed (different from its current one); returns it."""
        rng = rng or self._rng
        current = self.get_shot_field(index, "seed")
        seed = current
        while seed == current:
            seed = rng.randrange(0, min(MAX_SEED, 99_999) + 1)  # short seeds are easier to read
        self.set_shot_field(index, "seed", seed, coalesce=False)
        return seed

    # -- editing film settings --------------------------------------------------------------------

    def film_field_text(self, field: str) -> str:
        value = self.film().get(field)
        if field == "size" and isinstance(value, list) and len(value) == 2:
            return f"{format_value(value[0])}x{format_value(value[1])}"
        return format_value(value)

    def set_film_field(self, field: str, value: Any, *, coalesce: bool = True) -> None:
        """Set a film setting (None removes it, so the default applies)."""
        key = ("film", None, field) if coalesce else None
        with self._edit(key):
            film = self._doc.get("film")
            if not isinstance(film, MutableMapping) and value is not None:
                first = next((k for k in ("consistency", "characters", "shots") if k in self._doc), "shots")
                self._backend.add_before(self._doc, "film", self._backend.new_table(inline=False), before=first)
                film = self._doc["film"]
            if isinstance(film, MutableMapping):
                self._set(film, field, value)
        # Always commit: a coalesced run may have just been rewound to before it made [film].
        self._commit(f"edit film {field}", ("film", None), key)

    def set_film_text(self, field: str, text: str) -> None:
        """Set a film setting from editor text."""
        if field == "size":
            value: Any = parse_size(text)
        elif field in ("title", "model", "negative_prompt"):
            value = text if text else None
        else:
            value = parse_number(text)
        self.set_film_field(field, value)

    # -- editing characters ----------------------------------------------------------------------

    def add_character(self, name: str, prompt: str = "a shape") -> None:
        """Add a character (a valid, unused name) with a prompt."""
        _check_name(name)
        chars = self._characters(create=True)
        if name in chars:
            raise ValueError(f"a character named '{name}' already exists")
        table = self._backend.new_entry(chars)
        table["prompt"] = self._backend.scalar(prompt)
        self._backend.add_entry(chars, name, table)
        self._commit(f"add character {name}", ("character", name))

    def delete_character(self, name: str) -> None:
        """Remove a character (references to it become validation problems, on purpose)."""
        chars = self._characters()
        if name not in chars:
            raise KeyError(name)
        self._backend.del_key(chars, name)
        self._commit(f"delete character {name}")

    def rename_character(self, old: str, new: str) -> int:
        """Rename a character; `{old}` in prompts and `old` in `characters` lists follow.

        Returns how many shots were updated.
        """
        _check_name(new)
        chars = self._characters()
        if old not in chars:
            raise KeyError(old)
        if new == old:
            return 0
        if new in chars:
            raise ValueError(f"a character named '{new}' already exists")
        self._backend.rename_key(chars, old, new)
        changed = 0
        for index, shot in enumerate(self._shots()):
            if not isinstance(shot, MutableMapping):
                continue
            touched = False
            prompt = shot.get("prompt")
            if isinstance(prompt, str) and f"{{{old}}}" in prompt:
                text = REFERENCE_RE.sub(lambda m: f"{{{new}}}" if m.group(1) == old else m.group(0), str(prompt))
                self._set(shot, "prompt", text)
                touched = True
            listed = shot.get("characters")
            if isinstance(listed, list) and old in [_plain(n) for n in listed]:
                for i, n in enumerate(listed):
                    if _plain(n) == old:
                        listed[i] = self._backend.scalar(new, n)
                touched = True
            changed += touched
        self._commit(f"rename character {old} to {new}", ("character", new))
        return changed

    def set_character_field(self, name: str, field: str, value: Any, *, coalesce: bool = True) -> None:
        """Set a character's field (None removes it)."""
        key = ("character", name, field) if coalesce else None
        with self._edit(key):
            table = self._characters().get(name)
            if not isinstance(table, MutableMapping):
                raise KeyError(name)
            self._set(table, field, value)
        self._commit(f"edit {field} of {name}", ("character", name), key)

    def set_character_text(self, name: str, field: str, text: str) -> None:
        """Set a character's field from editor text (empty: removed, except the prompt)."""
        self.set_character_field(name, field, text if (text or field == "prompt") else None)


def _parse_field(field: str, text: str) -> Any:
    if field in _NUMBER_FIELDS:
        return parse_number(text)
    if field in _LIST_FIELDS:
        return parse_names(text)
    if field in _BOOL_FIELDS:
        t = text.strip().lower()
        return True if t in ("true", "yes", "1", "on", "x") else None
    if field in _REQUIRED_TEXT:
        return text
    return text if text.strip() else None


def _is_inline(table: Any) -> bool:
    from tomlkit.items import InlineTable

    return isinstance(table, InlineTable)


def _check_name(name: str) -> None:
    if not NAME_RE.fullmatch(name or ""):
        raise ValueError(f"'{name}' is not a valid name (letters, digits, '_' and '-')")


# -- crash recovery -------------------------------------------------------------------------------


def recovery_path(path: Path | str) -> Path:
    """Where unsaved edits of `path` are autosaved: `.NAME.recover` beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.recover")


def write_recovery(doc: StoryDocument) -> Path | None:
    """Autosave the unsaved text (atomically); removes the recovery file when nothing is unsaved."""
    target = recovery_path(doc.path)
    if not doc.dirty:
        discard_recovery(doc.path)
        return None
    atomic_write_text(target, doc.to_text())
    return target


def discard_recovery(path: Path | str) -> None:
    """Remove the recovery file of `path`, if any."""
    try:
        os.remove(recovery_path(path))
    except FileNotFoundError:
        pass


def recovery_candidate(path: Path | str) -> str | None:
    """The text of a recovery file worth offering: newer than `path` and different from it."""
    path = Path(path)
    rec = recovery_path(path)
    try:
        rec_stat = rec.stat()
        text = rec.read_text("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    try:
        if rec_stat.st_mtime_ns < path.stat().st_mtime_ns:
            return None  # the file was saved after the autosave: nothing newer to offer
        if path.read_text("utf-8") == text:
            return None
    except (OSError, UnicodeDecodeError):
        pass
    return text


def problem_target(field: str) -> tuple[str, Any, str] | None:
    """Which editor field a problem's field path points at: ("shot", index, field),
    ("character", name, field), ("film", None, field), or None (the file as a whole)."""
    m = re.match(r"shots\[(\d+)\](?:\.([A-Za-z_]+)(?:\.([A-Za-z_]+))?)?", field)
    if m:
        index, head, sub = int(m.group(1)), m.group(2) or "", m.group(3) or ""
        if head in ("motion", "transition"):
            sub = sub or ("clip" if head == "motion" else "type")
            return "shot", index, f"{head}.{sub}"
        return "shot", index, head or "id"
    m = re.match(r'characters(?:\.([A-Za-z0-9_-]+)|\["([^"]*)"\])(?:\.([A-Za-z_]+))?', field)
    if m:
        return "character", m.group(1) or m.group(2), m.group(3) or "name"
    m = re.match(r"film\.([A-Za-z_]+)", field)
    if m:
        return "film", None, m.group(1)
    return None
