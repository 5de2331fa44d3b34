"""Load a storyboard file (TOML or YAML) into a validated `Storyboard`, or report every problem.

Loading happens in stages, each adding problems instead of stopping:

1. parse the text, remembering the source line of every key and list item (a `SourceMap`);
2. validate against the pydantic schema (types, ranges, unknown fields);
3. `schema.cross_check`: character references, unique ids, transitions against durations;
4. disk checks: referenced files are inside the storyboard's folder, exist and are readable.

Each problem becomes one `Problem` line, `FILE:LINE: field: what is wrong (what is allowed)`.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from storyboard.atomic import atomic_write_text
from storyboard.errors import Problem, StoryboardError, format_field
from storyboard.schema import (
    Film,
    Storyboard,
    cross_check,
    did_you_mean,
    looks_like_path,
    resolve_path,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "FORMATS",
    "SourceMap",
    "check_clip",
    "check_image",
    "detect_format",
    "dump_starter",
    "load_storyboard",
    "load_text",
    "starter_text",
    "validate_file",
    "validate_text",
]

#: File suffix -> source format.
FORMATS: dict[str, str] = {".toml": "toml", ".yaml": "yaml", ".yml": "yaml"}


# -- public entry points ------------------------------------------------------------------------


def load_storyboard(path: Path | str, allow_outside: bool = False) -> Storyboard:
    """Load and validate a storyboard file.

    Relative paths inside it (motion clips, masks, references) resolve against the file's folder
    and must stay inside it unless `allow_outside` is True. Raises `StoryboardError` listing
    every problem found.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise StoryboardError([Problem(str(path), None, "file", "not found")]) from None
    except IsADirectoryError:
        raise StoryboardError([Problem(str(path), None, "file", "is a folder, not a storyboard file")]) from None
    except UnicodeDecodeError as e:
        raise StoryboardError(
            [Problem(str(path), None, "file", f"is not UTF-8 text (byte {e.start})")]
        ) from None
    except OSError as e:
        raise StoryboardError([Problem(str(path), None, "file", f"cannot be read: {e.strerror}")]) from None
    return load_text(text, path, allow_outside=allow_outside)


def field_problem(path: Path | str, loc: Sequence[Any], message: str) -> Problem:
    """A problem found after loading (a model that cannot be found, say), at the line of the
    field `loc` in the file `path` (1 when the file cannot be read again or parsed)."""
    path = Path(path)
    line = 1
    try:
        text = path.read_bytes().decode("utf-8")
        parse = _parse_yaml if detect_format(path) == "yaml" else _parse_toml
        _, smap, _ = parse(text, str(path))
        line = smap.line_of(tuple(loc))
    except (OSError, UnicodeDecodeError, ValueError):
        pass
    return Problem(str(path), line, format_field(loc), message)


def validate_file(path: Path | str, allow_outside: bool = False) -> list[Problem]:
    """Every problem of a storyboard file, in file order; an empty list when it is valid."""
    try:
        load_storyboard(path, allow_outside=allow_outside)
    except StoryboardError as e:
        return e.problems
    return []


def load_text(
    text: str, path: Path | str, fmt: str | None = None, allow_outside: bool = False
) -> Storyboard:
    """Validate storyboard source `text` as if it were the file `path` (an editor buffer, say).

    `fmt` ("toml" or "yaml") defaults to what `path`'s suffix says. Raises `StoryboardError`.
    """
    path = Path(path)
    display = str(path)
    if fmt is None:
        fmt = detect_format(path)
        if fmt is None:
            raise StoryboardError(
                [Problem(display, None, "file", f"unknown file type '{path.suffix}' (allowed: .toml, .yaml, .yml)")]
            )
    board, problems = _validate(text, path, fmt, allow_outside)
    if problems:
        raise StoryboardError(problems)
    assert board is not None
    return board


def validate_text(
    text: str, path: Path | str, fmt: str | None = None, allow_outside: bool = False
) -> list[Problem]:
    """Every problem of storyboard source `text` (see `load_text`); empty when valid."""
    try:
        load_text(text, path, fmt=fmt, allow_outside=allow_outside)
    except StoryboardError as e:
        return e.problems
    return []


def detect_format(path: Path | str) -> str | None:
    """"toml" or "yaml" from a file name's suffix, or None."""
    return FORMATS.get(Path(path).suffix.lower())


# -- disk checks --------------------------------------------------------------------------------


def check_clip(path: Path | str) -> str | None:
    """None if `path` is a video OpenCV can read with at least one frame, else what is wrong."""
    path = Path(path)
    if not path.is_file():
        return "is not a file"
    # FFmpeg prints its own complaints ("moov atom not found") to stderr; our message says it
    # better. Read once, at OpenCV's first FFmpeg use; setdefault leaves a user's choice alone.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    import cv2  # local: only needed when a storyboard references clips

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            return "cannot be read as a video"
        ok, frame = cap.read()
        if not ok or frame is None:
            return "has no readable frames"
    finally:
        cap.release()
    return None


def check_image(path: Path | str) -> str | None:
    """None if `path` is an image Pillow can read, else what is wrong."""
    path = Path(path)
    if not path.is_file():
        return "is not a file"
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return "cannot be read as an image"
    return None


# -- starter template ---------------------------------------------------------------------------


def starter_text(fmt: str = "toml") -> str:
    """The commented starter storyboard ("toml" or "yaml") used by `storyboard new`."""
    if fmt not in ("toml", "yaml"):
        raise ValueError(f"unknown format {fmt!r} (allowed: toml, yaml)")
    name = f"starter.{fmt}"
    try:
        return resources.files("storyboard").joinpath("templates", name).read_text("utf-8")
    except (OSError, TypeError):
        # An editable install made before storyboard/__init__.py existed sees a namespace
        # package, which importlib.resources can't read from; the file is next to us anyway.
        return (Path(__file__).parent / "templates" / name).read_text("utf-8")


def dump_starter(path: Path | str, overwrite: bool = False) -> Path:
    """Write the starter storyboard to `path`, TOML or YAML by its suffix; returns the path.

    Raises FileExistsError unless `overwrite`, ValueError for an unknown suffix.
    """
    path = Path(path)
    fmt = detect_format(path)
    if fmt is None:
        raise ValueError(f"unknown file type '{path.suffix}' (allowed: .toml, .yaml, .yml)")
    if path.exists() and not overwrite:
        raise FileExistsError(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, starter_text(fmt))
    return path


# -- source positions ---------------------------------------------------------------------------


class SourceMap:
    """Line numbers (1-based) of the values of a parsed document, by value path.

    A path is a tuple of keys and list indexes, like pydantic's error locations:
    ("shots", 2, "duration"). A path that isn't in the document (a missing field) maps to its
    nearest present ancestor: a field missing from a shot maps to that shot's header line.
    """

    def __init__(self, lines: dict[tuple, int] | None = None):
        self.lines: dict[tuple, int] = dict(lines or {})

    def line_of(self, loc: Sequence[Any]) -> int:
        loc = tuple(loc)
        for n in range(len(loc), 0, -1):
            for candidate in _spellings(loc[:n]):
                line = self.lines.get(candidate)
                if line is not None:
                    return line
        return 1


def _spellings(loc: tuple) -> list[tuple]:
    """`loc` as given, then with non-text parts as the source spells them: a YAML key `2:` is
    the number 2 to pydantic but the text "2" in the positions."""
    out: list[tuple] = [()]
    for part in loc:
        forms = [part]
        if isinstance(part, bool):
            forms.append(str(part).lower())
        elif isinstance(part, (int, float)):
            forms.append(str(part))
        out = [o + (f,) for o in out for f in forms]
    return out


class _TomlPositions:
    """Walks TOML source (already known to be valid) and records where keys and items start.

    Values are skipped, not interpreted: tomllib has done that. Tracks `[table]` headers and
    `[[array]]` headers (counting them into indexes), dotted keys, inline tables and arrays.
    """

    _SCALAR_END = ",]}#\n\r"

    def __init__(self, text: str):
        self.s = text
        self.i = 0
        self.line = 1
        self.lines: dict[tuple, int] = {}
        self.aot: dict[tuple, int] = {}  # array-of-tables path -> current index

    # low-level movement
    def _peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.s[j] if j < len(self.s) else ""

    def _advance(self, n: int = 1) -> None:
        end = min(self.i + n, len(self.s))
        self.line += self.s.count("\n", self.i, end)
        self.i = end

    def _skip_ws(self) -> None:
        while self._peek() in (" ", "\t", "\r") and self._peek():
            self._advance()

    def _skip_comment(self) -> None:
        if self._peek() == "#":
            while self._peek() and self._peek() != "\n":
                self._advance()

    def _skip_blank(self) -> None:
        """Whitespace, newlines and comments (inside arrays and between statements)."""
        while True:
            start = self.i
            self._skip_ws()
            self._skip_comment()
            if self._peek() == "\n":
                self._advance()
            if self.i == start:
                return

    def _record(self, path: tuple, line: int) -> None:
        self.lines.setdefault(path, line)

    # tokens
    def _string(self) -> str:
        s = self.s
        if s.startswith('"""', self.i) or s.startswith("'''", self.i):
            quote = s[self.i : self.i + 3]
            self._advance(3)
            while self.i < len(s):
                if quote == '"""' and s[self.i] == "\\":
                    self._advance(2)
                elif s.startswith(quote, self.i):
                    self._advance(3)
                    while self._peek() == quote[0]:  # up to two quotes may end the content
                        self._advance()
                    break
                else:
                    self._advance()
            return ""
        quote = s[self.i]
        self._advance()
        start = self.i
        while self.i < len(s) and s[self.i] != quote and s[self.i] != "\n":
            if quote == '"' and s[self.i] == "\\":
                self._advance(2)
            else:
                self._advance()
        raw = s[start : self.i]
        self._advance()
        if quote == '"':
            try:
                return raw.encode("latin-1", "backslashreplace").decode("unicode_escape")
            except UnicodeDecodeError:
                return raw
        return raw

    def _key(self) -> list[str]:
        parts: list[str] = []
        while True:
            self._skip_ws()
            c = self._peek()
            if c in ('"', "'"):
                parts.append(self._string())
            else:
                start = self.i
                while self._peek() and (self._peek().isalnum() or self._peek() in "_-"):
                    self._advance()
                parts.append(self.s[start : self.i])
                if self.i == start:  # not a key: bail out, the caller resyncs
                    return parts
            self._skip_ws()
            if self._peek() == ".":
                self._advance()
                continue
            return parts

    def _value(self, path: tuple) -> None:
        self._skip_ws()
        c = self._peek()
        if c in ('"', "'"):
            self._string()
        elif c == "[":
            self._advance()
            index = 0
            while True:
                self._skip_blank()
                if self._peek() in ("]", ""):
                    self._advance()
                    return
                self._record(path + (index,), self.line)
                self._value(path + (index,))
                index += 1
                self._skip_blank()
                if self._peek() == ",":
                    self._advance()
        elif c == "{":
            self._advance()
            while True:
                self._skip_blank()
                if self._peek() in ("}", ""):
                    self._advance()
                    return
                line = self.line
                keys = self._key()
                for n in range(1, len(keys) + 1):
                    self._record(path + tuple(keys[:n]), line)
                self._skip_ws()
                if self._peek() == "=":
                    self._advance()
                self._value(path + tuple(keys))
                self._skip_blank()
                if self._peek() == ",":
                    self._advance()
        else:
            while self._peek() and self._peek() not in self._SCALAR_END:
                self._advance()

    def _resolve(self, keys: list[str]) -> tuple:
        """Header keys -> value path, inserting the current index of each array of tables."""
        out: list[Any] = []
        for k in keys:
            out.append(k)
            if tuple(out) in self.aot:
                out.append(self.aot[tuple(out)])
        return tuple(out)

    def scan(self) -> dict[tuple, int]:
        table: tuple = ()
        s = self.s
        while self.i < len(s):
            self._skip_blank()
            if self.i >= len(s):
                break
            start = self.i
            line = self.line
            if s.startswith("[[", self.i):
                self._advance(2)
                keys = self._key()
                array = self._resolve(keys[:-1]) + (keys[-1],)
                self.aot[array] = self.aot.get(array, -1) + 1
                table = array + (self.aot[array],)
                for n in range(1, len(table) + 1):
                    self._record(table[:n], line)
                self._skip_ws()
                if s.startswith("]]", self.i):
                    self._advance(2)
            elif s[self.i] == "[":
                self._advance()
                table = self._resolve(self._key())
                for n in range(1, len(table) + 1):
                    self._record(table[:n], line)
                self._skip_ws()
                if self._peek() == "]":
                    self._advance()
            else:
                keys = self._key()
                for n in range(1, len(keys) + 1):
                    self._record(table + tuple(keys[:n]), line)
                self._skip_ws()
                if self._peek() == "=":
                    self._advance()
                    self._value(table + tuple(keys))
            self._skip_ws()
            self._skip_comment()
            if self.i == start:  # never loop forever on something unexpected
                self._advance()
        return self.lines


def _toml_positions(text: str) -> SourceMap:
    try:
        return SourceMap(_TomlPositions(text).scan())
    except Exception:  # positions are a nicety; never let them hide the real problems
        return SourceMap()


_TOML_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_TOML_END = re.compile(r"\s*\(at end of document\)\s*$")


def _parse_toml(text: str, display: str) -> tuple[Any, SourceMap, list[Problem]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e.args[0]) if e.args else str(e)
        line: int | None = getattr(e, "lineno", None)
        col = getattr(e, "colno", None)
        m = _TOML_AT.search(msg)
        if m:
            line, col = int(m.group(1)), int(m.group(2))
            msg = msg[: m.start()]
        elif _TOML_END.search(msg):
            line = text.count("\n") + 1
            msg = _TOML_END.sub("", msg) + " (at end of file)"
        if col is not None and line is not None:
            msg += f" (column {col})"
        return None, SourceMap(), [Problem(display, line or 1, "syntax", msg)]
    return data, _toml_positions(text), []


def _yaml_positions(node: yaml.Node, display: str) -> tuple[SourceMap, list[Problem]]:
    """Positions of a composed YAML document, plus duplicate-key problems (PyYAML keeps the
    last value silently; a storyboard shouldn't)."""
    lines: dict[tuple, int] = {(): node.start_mark.line + 1}
    problems: list[Problem] = []

    walked: set[int] = set()

    def walk(n: yaml.Node, path: tuple, depth: int) -> None:
        # An aliased node (*name) is walked once, at its anchor: aliases can make cycles, or
        # exponentially many paths.
        if depth > 64 or id(n) in walked:
            return
        walked.add(id(n))
        if isinstance(n, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, value_node in n.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
                p = path + (key,)
                if key in seen and key != "<<":
                    problems.append(
                        Problem(display, key_node.start_mark.line + 1, format_field(p), "duplicate key (each field may appear once)")
                    )
                seen.add(key)
                lines.setdefault(p, key_node.start_mark.line + 1)
                walk(value_node, p, depth + 1)
        elif isinstance(n, yaml.SequenceNode):
            for index, item in enumerate(n.value):
                p = path + (index,)
                lines.setdefault(p, item.start_mark.line + 1)
                walk(item, p, depth + 1)

    walk(node, (), 0)
    return SourceMap(lines), problems


_YAML_BRACE = re.compile(r":\s*\{[A-Za-z0-9_-]*\}\s*\S")


def _parse_yaml(text: str, display: str) -> tuple[Any, SourceMap, list[Problem]]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        # Positions first: constructing flattens merge keys (<<: *defaults) into the nodes.
        smap, problems = _yaml_positions(node, display) if node is not None else (SourceMap(), [])
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else 1
        msg = e.problem or "invalid YAML"
        if e.context:
            msg += f" ({e.context}"
            if e.context_mark is not None and e.context_mark.line + 1 != line:
                msg += f" at line {e.context_mark.line + 1}"
            msg += ")"
        # The classic mistake: `prompt: {hero} walks` is a YAML mapping, not text.
        suspects = text.splitlines()[max(0, line - 2) : line]
        if any(_YAML_BRACE.search(s) for s in suspects):
            msg += "; hint: quote text that starts with {, e.g. prompt: \"{hero} bounces\""
        return None, SourceMap(), [Problem(display, line, "syntax", msg)]
    except yaml.YAMLError as e:
        return None, SourceMap(), [Problem(display, 1, "syntax", str(e))]
    finally:
        loader.dispose()
    return data, smap, problems


# -- pydantic errors -> problems ------------------------------------------------------------------


def _container(annotation: Any) -> str | None:
    """'list', 'dict' or 'tuple' for a (possibly Optional) container annotation."""
    origin = get_origin(annotation)
    if origin in (list, dict, tuple):
        return origin.__name__
    args = [a for a in get_args(annotation) if a is not type(None)]
    if len(args) == 1 and get_origin(annotation) is not None:
        return _container(args[0])
    return None


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _walk_schema(loc: Sequence[Any]) -> tuple[FieldInfo | None, type[BaseModel] | None]:
    """The deepest schema field named by `loc`, and the model the last part was looked up in."""
    model: type[BaseModel] | None = Storyboard
    info: FieldInfo | None = None
    skip_key = False
    for part in loc:
        if skip_key:  # a list index or dict key inside a container field
            skip_key = False
            continue
        if model is not None and isinstance(part, str) and part in model.model_fields:
            info = model.model_fields[part]
            skip_key = _container(info.annotation) in ("list", "dict")
            model = _model_in(info.annotation)
    return info, model


def _literal_choices(info: FieldInfo | None) -> list[str]:
    if info is None:
        return []
    ann = info.annotation
    for candidate in (ann, *get_args(ann)):
        if get_origin(candidate) is Literal:
            return [str(a) for a in get_args(candidate)]
    return []


def _describe(value: Any, fmt: str) -> str:
    """A value as an author would recognise it in their file."""
    if value is None:
        return "nothing (null)" if fmt == "yaml" else "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        # keep the point: "got 8" would read as the whole number that was asked for
        return f"{value:.1f}" if value.is_integer() and abs(value) < 1e15 else f"{value:g}"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"'{shown}'"
    if isinstance(value, Mapping):
        return "a mapping" if fmt == "yaml" else "a table"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"


_EXPECTED = {
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "string_type": "must be text",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "dict_type": "must be a table",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
}

_BOUNDS = {
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", ">="),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "<="),
}


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _display_loc(loc: tuple, data: Any) -> tuple:
    """Cut a location at the first scalar of the raw data: `transition = "wipe"` is reported as
    `transition`, not as the `transition.type` it was expanded to."""
    node = data
    for n, part in enumerate(loc):
        if isinstance(node, Mapping):
            if part not in node:
                return loc
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int):
            if not 0 <= part < len(node):
                return loc
            node = node[part]
        else:
            return loc[:n]
    return loc


def _yaml_inline(text: str) -> str:
    """TOML inline tables in a hint, `{ clip = "a.mp4" }`, as YAML flow mappings, `{ clip: "a.mp4" }`."""
    return re.sub(r"\{([^{}]*)\}", lambda m: "{" + m.group(1).replace(" = ", ": ") + "}", text)


def _message(err: Mapping[str, Any], fmt: str) -> str:
    """`what is wrong (what is allowed)` for one pydantic error."""
    kind = err["type"]
    loc = tuple(err["loc"])
    value = err.get("input")
    ctx = err.get("ctx") or {}
    info, model = _walk_schema(loc)
    allowed = (info.description or "") if info is not None else ""
    if fmt == "yaml":
        allowed = allowed.replace("a table", "a mapping").replace("a [[shots]] table", "a '- ' list item")
        allowed = _yaml_inline(allowed)

    hint = ""
    if kind == "missing":
        what = "required field is missing"
    elif kind == "extra_forbidden":
        what = "unknown field"
        field = str(loc[-1])
        choices = list(model.model_fields) if model is not None else []
        guess = did_you_mean(field, choices)
        if model is not Storyboard and field in Storyboard.model_fields:
            # The TOML trap: a top-level key written below a [table] header belongs to that table.
            where = "above the first [table] header" if fmt == "toml" else "at the top level"
            hint = f"'{field}' is a top-level field: write it {where}"
        elif guess:
            hint = f"did you mean '{guess}'?"
        elif model is Storyboard and field in Film.model_fields:
            hint = f"'{field}' belongs in the film table: film.{field}"
        elif choices:
            hint = "allowed: " + ", ".join(choices)
        allowed = ""
    elif kind in _EXPECTED:
        what = f"{_EXPECTED[kind]}, got {_describe(value, fmt)}"
        if fmt == "yaml":
            what = what.replace("a table", "a mapping")
            if kind == "string_type" and isinstance(value, Mapping):
                hint = "quote text that starts with {, e.g. prompt: \"{hero} bounces\""
    elif kind in _BOUNDS:
        key, op = _BOUNDS[kind]
        what = f"must be {op} {_num(ctx.get(key))}"
    elif kind == "literal_error":
        choices = _literal_choices(info)
        what = f"unknown value {_describe(value, fmt)}"
        guess = did_you_mean(value, choices) if isinstance(value, str) else None
        if guess:
            hint = f"did you mean '{guess}'?"
        if fmt == "yaml" and value is False and "off" in choices:
            hint = "write \"off\" in quotes: bare off reads as false"
    elif kind in ("string_too_short",):
        what = "must not be empty"
    elif kind == "string_pattern_mismatch":
        what = f"{_describe(value, fmt)} is not a valid name"
    elif kind == "too_short":
        n = ctx.get("min_length", 1)
        what = "must not be empty" if n == 1 else f"must have at least {n} items"
    elif kind == "too_long":
        n = ctx.get("max_length")
        what = f"must have at most {n} item" + ("s" if n != 1 else "")
    elif kind == "value_error":
        what = str(err["msg"]).removeprefix("Value error, ")
    else:
        msg = str(err["msg"])
        what = msg[:1].lower() + msg[1:]
    tail = hint or allowed
    return f"{what} ({tail})" if tail else what


def _pydantic_problems(
    exc: ValidationError, data: Any, smap: SourceMap, display: str, fmt: str
) -> list[Problem]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if p != "[key]")
        shown = _display_loc(loc, data)
        problems.append(Problem(display, smap.line_of(shown), format_field(shown) or "storyboard", _message(err, fmt)))
    return problems


# -- disk checks of raw data -----------------------------------------------------------------------


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True


def _path_problems(
    data: Mapping[str, Any], base_dir: Path, allow_outside: bool, smap: SourceMap, display: str
) -> list[Problem]:
    refs: list[tuple[tuple, str, str]] = []  # (loc, raw path, kind)
    shots = data.get("shots")
    if isinstance(shots, list):
        for i, shot in enumerate(shots):
            motion = shot.get("motion") if isinstance(shot, Mapping) else None
            if isinstance(motion, Mapping) and isinstance(motion.get("clip"), str):
                refs.append((("shots", i, "motion", "clip"), motion["clip"], "clip"))
    chars = data.get("characters")
    if isinstance(chars, Mapping):
        for name, char in chars.items():
            if isinstance(char, Mapping):
                for key in ("mask", "reference"):
                    if isinstance(char.get(key), str):
                        refs.append((("characters", name, key), char[key], "image"))
    film = data.get("film")
    model = film.get("model") if isinstance(film, Mapping) else None

    problems: list[Problem] = []
    checked: dict[Path, str | None] = {}  # one decode per file, however often it's used
    folder = base_dir.absolute()
    for loc, raw, kind in refs:
        if not raw.strip():
            continue  # the schema reports empty paths
        full = resolve_path(folder, raw)
        where = (display, smap.line_of(loc), format_field(loc))
        if not allow_outside and (Path(raw).expanduser().is_absolute() or not _inside(full, folder)):
            problems.append(
                Problem(*where, f"'{raw}' is outside the storyboard's folder (use a relative path inside {folder}, or run with --allow-outside)")
            )
            continue
        if not full.exists():
            problems.append(Problem(*where, f"file '{raw}' not found (looked for {full})"))
            continue
        if not allow_outside and not _inside(full.resolve(), folder.resolve()):
            # A symlink inside the folder must not read files from outside it either.
            problems.append(Problem(*where, f"'{raw}' leads outside the storyboard's folder through a "
                                            f"symbolic link (to {full.resolve()}); run with --allow-outside to use it"))
            continue
        if full not in checked:
            checked[full] = check_clip(full) if kind == "clip" else check_image(full)
        err = checked[full]
        if err:
            allowed = "a video file OpenCV can read, e.g. .mp4" if kind == "clip" else "an image file, e.g. .png"
            problems.append(Problem(*where, f"'{raw}' {err} ({allowed})"))
    # A model folder is often shared between projects, so it may live anywhere.
    if isinstance(model, str) and model:
        where = (display, smap.line_of(("film", "model")), "film.model")
        if looks_like_path(model):
            full = resolve_path(folder, model)
            if not full.is_dir():
                problems.append(Problem(*where, f"model folder '{model}' not found (looked for {full})"))
            elif not (full / "model_index.json").is_file():
                problems.append(Problem(*where, f"'{model}' is not a model folder in diffusers layout "
                                                f"(no model_index.json in {full})"))
        else:
            from motionq.api import available_models

            names = available_models()
            if model not in names:
                close = difflib.get_close_matches(model.lower(), names, n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                problems.append(Problem(*where, f"unknown model '{model}' ({hint}registered: {', '.join(names)}; "
                                                "or a path to a model folder, e.g. ./models/wan)"))
    return problems


# -- the pipeline ----------------------------------------------------------------------------------


def _validate(
    text: str, path: Path, fmt: str, allow_outside: bool
) -> tuple[Storyboard | None, list[Problem]]:
    display = str(path)
    text = text.removeprefix("\ufeff")
    if fmt == "toml":
        data, smap, problems = _parse_toml(text, display)
    elif fmt == "yaml":
        data, smap, problems = _parse_yaml(text, display)
    else:
        raise ValueError(f"unknown format {fmt!r} (allowed: toml, yaml)")
    if data is None and problems:
        return None, problems  # syntax error: nothing more can be said
    if data is None:
        data = {}  # an empty YAML document
    if not isinstance(data, dict):
        what = "a mapping of fields" if fmt == "yaml" else "a table of fields"
        return None, problems + [Problem(display, 1, "storyboard", f"must be {what}, got {_describe(data, fmt)}")]

    base_dir = path.parent.absolute()
    board: Storyboard | None = None
    try:
        board = Storyboard.model_validate(data, context={"base_dir": base_dir, "cross_checked": True})
    except ValidationError as exc:
        problems += _pydantic_problems(exc, data, smap, display, fmt)
    for issue in cross_check(data):
        problems.append(Problem(display, smap.line_of(issue.loc), format_field(issue.loc), issue.message))
    problems += _path_problems(data, base_dir, allow_outside, smap, display)

    if board is not None and not problems:
        from storyboard.plan import coupling_issues  # what renders together is the plan's call

        for issue in coupling_issues(board):
            problems.append(Problem(display, smap.line_of(issue.loc), format_field(issue.loc), issue.message))
    problems = sorted(set(problems), key=lambda p: (p.line or 0, p.field, p.message))
    if problems:
        return None, problems
    assert board is not None
    board._path = path
    board._source_format = fmt
    return board, []
