"""Round-trip editing of TOML (tomlkit) and YAML (ruamel.yaml) documents.

What differs between the two formats lives here: parsing and dumping, making new tables and
lists in the author's style, renaming a key in place, and keeping blank lines and comments
where an author expects them when entries are added, removed or moved. The document model
(storyboard.tui.document) only sees mappings and sequences.
"""

from __future__ import annotations

import io
from collections.abc import MutableMapping, MutableSequence
from typing import Any

import yaml as pyyaml


def plain(value: Any) -> Any:
    """Plain Python data (dict/list/str/int/float/bool) from tomlkit items or ruamel nodes."""
    if hasattr(value, "unwrap"):  # tomlkit items
        return value.unwrap()
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, MutableMapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return value


# -- format backends ------------------------------------------------------------------------------


class _Backend:
    """What differs between TOML and YAML: parsing, dumping and making new nodes."""

    fmt: str
    #: Lines the dumper writes differently from the author (`{ a: 1 }` -> `{a: 1}`), mapped
    #: back to the author's version; see `learn`.
    _restore: dict[str, str]

    def learn(self, text: str, doc: Any) -> None:
        """Remember how the author wrote lines that a plain dump of `doc` would re-format.

        A line that dumps differently although nothing in it was edited (ruamel.yaml drops the
        spaces inside `{ type: fade }`) is put back as written; an edited line dumps
        differently again, so it keeps the dumper's style.
        """
        import difflib

        self._restore = {}
        dumped = self.dump(doc).splitlines()
        original = text.splitlines()
        matcher = difflib.SequenceMatcher(a=dumped, b=original, autojunk=False)
        for tag, a0, a1, b0, b1 in matcher.get_opcodes():
            if tag == "replace" and a1 - a0 == b1 - b0:
                for new, old in zip(dumped[a0:a1], original[b0:b1]):
                    self._restore.setdefault(new, old)

    def restore(self, text: str) -> str:
        if not getattr(self, "_restore", None):
            return text
        lines = text.split("\n")
        return "\n".join(self._restore.get(line, line) for line in lines)

    def parse(self, text: str) -> Any: ...
    def dump(self, doc: Any) -> str: ...
    def new_table(self, inline: bool) -> MutableMapping: ...
    def new_list(self, items: list) -> Any: ...
    def new_shots(self) -> MutableSequence: ...
    def scalar(self, value: Any, old: Any = None) -> Any: ...
    def rename_key(self, mapping: MutableMapping, old: str, new: str) -> None: ...
    def set_key(self, mapping: MutableMapping, key: str, value: Any) -> None:
        mapping[key] = value

    def del_key(self, mapping: MutableMapping, key: str) -> None:
        del mapping[key]

    def normalise_shots(self, shots: MutableSequence) -> None:
        """One blank line between shots, none after the last (after a structural change)."""

    def drop_trailing_comments(self, shot: MutableMapping) -> None:
        """Remove comment lines after a shot's last value (a copy must not repeat "# Act 2")."""

    def move_trailing_comments(self, src: MutableMapping, dst: MutableMapping) -> None:
        """Move the comment lines after `src`'s last value to after `dst`'s (the shot before a
        deleted one takes over the "# Act 2" that introduced the shot after it)."""

    def new_shot(self, shots: MutableSequence) -> MutableMapping:
        return self.new_table(inline=False)

    def new_section(self) -> MutableMapping:
        """A table that only holds tables (`characters`)."""
        return self.new_table(inline=False)

    def new_entry(self, mapping: MutableMapping) -> MutableMapping:
        return self.new_table(inline=False)

    def add_before(self, doc: MutableMapping, key: str, value: Any, before: str) -> None:
        """Add a top-level entry above `before` (characters go above the shots)."""
        self.set_key(doc, key, value)

    def add_entry(self, mapping: MutableMapping, key: str, value: MutableMapping) -> None:
        """Add a table at the end of `mapping` (a new character)."""
        self.set_key(mapping, key, value)


class _TomlBackend(_Backend):
    fmt = "toml"

    def __init__(self) -> None:
        import tomlkit

        self.tk = tomlkit

    def parse(self, text: str) -> Any:
        return self.tk.parse(text)

    def dump(self, doc: Any) -> str:
        return self.tk.dumps(doc)

    def new_table(self, inline: bool) -> MutableMapping:
        return self.tk.inline_table() if inline else self.tk.table()

    def new_list(self, items: list) -> Any:
        return self.tk.item(list(items))

    def new_shots(self) -> MutableSequence:
        return self.tk.aot()

    def new_section(self) -> MutableMapping:
        return self.tk.table(is_super_table=True)  # no [characters] header, just [characters.NAME]

    def new_shot(self, shots: MutableSequence) -> MutableMapping:
        from tomlkit.items import AoT

        # `shots = [{...}, ...]` (an inline array) takes inline tables; [[shots]] takes tables.
        return self.tk.table() if isinstance(shots, AoT) or not len(shots) else self.tk.inline_table()

    def scalar(self, value: Any, old: Any = None) -> Any:
        return value  # tomlkit converts plain values itself, with the usual spacing

    def new_entry(self, mapping: MutableMapping) -> MutableMapping:
        """A table for a new character: inline if its siblings are inline tables."""
        from tomlkit.items import InlineTable

        inline = any(isinstance(v, InlineTable) for v in mapping.values())
        return self.new_table(inline=inline)

    def add_before(self, doc: MutableMapping, key: str, value: Any, before: str) -> None:
        keys = list(doc.keys())
        if before in keys:
            try:
                index = next(i for i, (k, _) in enumerate(doc.body) if k is not None and k.key == before)
                doc._insert_at(index, key, value)  # type: ignore[attr-defined]  # no public insert
                return
            except Exception:
                pass
        doc[key] = value

    def add_entry(self, mapping: MutableMapping, key: str, value: MutableMapping) -> None:
        from tomlkit.items import Comment, Table, Whitespace

        # Comments after the last blank line of the previous last table introduce what
        # follows it (e.g. "# Shots play in order" above [[shots]]): they move below the new one.
        tail: list = []
        last = mapping[list(mapping.keys())[-1]] if len(mapping) else None
        if isinstance(last, Table) and isinstance(value, Table):
            body = last.value.body
            cut = None
            for i in range(len(body) - 1, -1, -1):
                k, v = body[i]
                if k is not None or not isinstance(v, (Whitespace, Comment)):
                    break
                if isinstance(v, Whitespace) and "\n" in v.s:
                    cut = i
            if cut is not None:
                tail = body[cut:]
                del body[cut:]
                body.append((None, Whitespace("\n")))
        mapping[key] = value
        if tail:
            value.value.body.extend(tail)

    def set_key(self, mapping: MutableMapping, key: str, value: Any) -> None:
        from tomlkit.items import AoT, Comment, Table

        container = getattr(mapping, "value", mapping)
        body = getattr(container, "body", None)
        if key in mapping or body is None or isinstance(value, (Table, AoT)) or getattr(mapping, "is_super_table", lambda: False)():
            mapping[key] = value
            return
        # tomlkit appends a new key after trailing comments, but comments after a table's last
        # blank line introduce the next table: put the key right after the last key instead.
        last = None
        for i, (k, v) in enumerate(body):
            if k is not None and not isinstance(v, (Table, AoT)):
                last = k
            elif isinstance(v, (Table, AoT)):
                last = None  # keys after a sub-table would land inside it: let tomlkit decide
                break
        trailing = last is not None and any(
            isinstance(v, Comment) for k, v in body[[kk for kk, _ in body].index(last) + 1:])
        if trailing:
            try:
                container._insert_after(last, key, value)  # type: ignore[union-attr]
                return
            except Exception:
                pass
        mapping[key] = value

    def rename_key(self, mapping: MutableMapping, old: str, new: str) -> None:
        from tomlkit.items import Table

        item = mapping[old]
        container = getattr(mapping, "value", None)
        try:
            # tomlkit has no public rename; replacing the key in place keeps the entry's
            # position and comments. Checked below, with a plain fallback if it misbehaves.
            container._replace(old, new, item)  # type: ignore[union-attr]
            if isinstance(item, Table):
                item.invalidate_display_name()  # `[characters.old]` headers are cached text
                item.name = new
            if old in mapping or new not in mapping:
                raise KeyError(new)
        except Exception:
            if new not in mapping:
                value = mapping[old]
                del mapping[old]
                mapping[new] = value

    def normalise_shots(self, shots: MutableSequence) -> None:
        from tomlkit.items import AoT, Whitespace

        if not isinstance(shots, AoT):
            return
        n = len(shots)
        for i, table in enumerate(shots):
            body = _toml_last_body(table)
            while body and body[-1][0] is None and isinstance(body[-1][1], Whitespace) \
                    and not body[-1][1].s.strip():
                body.pop()
            if i < n - 1:
                # Unfixed whitespace: keys added later go above it, keeping the blank line last.
                body.append((None, Whitespace("\n")))


    def drop_trailing_comments(self, shot: MutableMapping) -> None:
        from tomlkit.items import Comment, Whitespace

        body = _toml_last_body(shot)
        while body and body[-1][0] is None and isinstance(body[-1][1], (Whitespace, Comment)):
            body.pop()

    def move_trailing_comments(self, src: MutableMapping, dst: MutableMapping) -> None:
        from tomlkit.items import Comment, Whitespace

        body = _toml_last_body(src)
        tail = []
        while body and body[-1][0] is None and isinstance(body[-1][1], (Whitespace, Comment)):
            tail.insert(0, body.pop())
        if any(isinstance(item, Comment) for _, item in tail):
            _toml_last_body(dst).extend(tail)


def _toml_last_body(table: Any) -> list:
    """The body list a shot's text ends with: its last sub-table's ([shots.motion]) if any."""
    from tomlkit.items import Table, Whitespace

    owner = table
    while True:
        items = [v for k, v in owner.value.body if not isinstance(v, Whitespace)]
        if items and isinstance(items[-1], Table):
            owner = items[-1]
        else:
            return owner.value.body


class _YamlBackend(_Backend):
    fmt = "yaml"

    def __init__(self, text: str = "") -> None:
        from ruamel.yaml import YAML

        self._ruamel = YAML(typ="rt")
        self._ruamel.preserve_quotes = True
        self._ruamel.width = 4096  # never re-wrap a long prompt
        indent, offset = 2, 0
        if text:
            try:
                from ruamel.yaml.util import load_yaml_guess_indent

                _, guessed, block_seq = load_yaml_guess_indent(text)
                indent, offset = guessed or 2, block_seq or 0
            except Exception:
                pass
        # Keep the author's list style: `  - id: x` (offset 2) or `- id: x` (offset 0).
        self._ruamel.indent(mapping=2, sequence=max(indent, offset + 2), offset=offset)

    def parse(self, text: str) -> Any:
        from ruamel.yaml.comments import CommentedMap

        doc = self._ruamel.load(text)
        return CommentedMap() if doc is None else doc

    def dump(self, doc: Any) -> str:
        out = io.StringIO()
        self._ruamel.dump(doc, out)
        return out.getvalue()

    def new_table(self, inline: bool) -> MutableMapping:
        from ruamel.yaml.comments import CommentedMap

        m = CommentedMap()
        if inline:
            m.fa.set_flow_style()
        return m

    def new_list(self, items: list) -> Any:
        from ruamel.yaml.comments import CommentedSeq

        seq = CommentedSeq(self.scalar(v) for v in items)
        seq.fa.set_flow_style()
        return seq

    def new_shots(self) -> MutableSequence:
        from ruamel.yaml.comments import CommentedSeq

        return CommentedSeq()

    def scalar(self, value: Any, old: Any = None) -> Any:
        from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

        if not isinstance(value, str):
            return value
        if isinstance(old, (DoubleQuotedScalarString, SingleQuotedScalarString)):
            return type(old)(value)  # keep the author's quoting
        # The validator reads YAML with PyYAML (YAML 1.1): quote anything it would not read back
        # as this very string (`no`, `on`, `1.0`, `{hero} ...`, `a: b`).
        try:
            same = pyyaml.safe_load(value) == value and "\n" not in value
        except pyyaml.YAMLError:
            same = False
        return value if same else DoubleQuotedScalarString(value)

    def add_before(self, doc: MutableMapping, key: str, value: Any, before: str) -> None:
        keys = list(doc.keys())
        if before in keys:
            doc.insert(keys.index(before), key, value)  # type: ignore[attr-defined]
        else:
            self.set_key(doc, key, value)

    def rename_key(self, mapping: MutableMapping, old: str, new: str) -> None:
        keys = list(mapping.keys())
        pos = keys.index(old)
        value = mapping[old]
        comments = getattr(mapping, "ca", None)
        attached = comments.items.pop(old, None) if comments is not None else None
        del mapping[old]
        mapping.insert(pos, new, value)  # type: ignore[attr-defined]
        if attached is not None:
            comments.items[new] = attached

    # A blank line after a YAML value is a comment token attached to the key before it; keep
    # such blank lines at the end of a mapping when keys are added to or removed from it.
    def _last(self, mapping: Any) -> tuple[Any, Any, int]:
        """Where the text after a mapping's last value is kept: (owner, key, slot) such that
        ``owner.ca.items[key][slot]`` holds it (slot 2 after a mapping's value, 0 after a block
        list's item), or (None, None, 0) when there is no such place."""
        from ruamel.yaml.comments import CommentedMap, CommentedSeq

        while isinstance(mapping, (CommentedMap, CommentedSeq)) and len(mapping):
            if isinstance(mapping, CommentedSeq):
                key, slot = len(mapping) - 1, 0
            else:
                key, slot = list(mapping.keys())[-1], 2
            value = mapping[key]
            if isinstance(value, (list, dict)) and not isinstance(value, (CommentedMap, CommentedSeq)):
                return None, None, 0  # a new plain value: ruamel places its comments itself
            if isinstance(value, (CommentedMap, CommentedSeq)) and len(value) and not value.fa.flow_style():
                mapping = value  # a block table or list: the text follows its own last value
                continue
            return mapping, key, slot
        return None, None, 0

    def _take_tail(self, mapping: Any) -> str:
        """Remove and return what follows a mapping's last value from its first blank line on.

        Comment lines right below a value belong to it; after a blank line they introduce what
        comes next (`# Keeps recurring characters...` above `consistency:`), so they stay last.
        The result starts with the blank line ("\n...") or is "" when there is none.
        """
        owner, key, pos = self._last(mapping)
        if owner is None:
            return ""
        slot = owner.ca.items.get(key)
        if not slot or len(slot) <= pos or slot[pos] is None:
            return ""
        value = slot[pos].value
        cut = value.find("\n\n")
        if cut < 0:
            return ""
        keep, tail = value[:cut + 1], value[cut + 1:]
        if keep.strip():
            slot[pos].value = keep
        else:
            slot[pos] = None
        return tail

    def _put_tail(self, mapping: Any, tail: str) -> None:
        """Attach `tail` (from `_take_tail`) after a mapping's last value."""
        from ruamel.yaml.error import CommentMark
        from ruamel.yaml.tokens import CommentToken

        if not tail:
            return
        owner, key, pos = self._last(mapping)
        if owner is None:
            return
        slot = owner.ca.items.setdefault(key, [None, None, None, None])
        if slot[pos] is None:
            slot[pos] = CommentToken("\n" + tail, CommentMark(0), None)
        else:
            slot[pos].value = slot[pos].value.rstrip("\n") + "\n" + tail

    def set_key(self, mapping: MutableMapping, key: str, value: Any) -> None:
        if key in mapping:
            mapping[key] = value
            return
        tail = self._take_tail(mapping)
        mapping[key] = value
        self._put_tail(mapping, tail)

    def del_key(self, mapping: MutableMapping, key: str) -> None:
        last = list(mapping.keys())[-1] == key
        tail = self._take_tail(mapping) if last else ""
        del mapping[key]
        self._put_tail(mapping, tail)

    def drop_trailing_comments(self, shot: MutableMapping) -> None:
        self._take_tail(shot)

    def move_trailing_comments(self, src: MutableMapping, dst: MutableMapping) -> None:
        tail = self._take_tail(src)
        if tail.strip():
            own = self._take_tail(dst)
            self._put_tail(dst, (own.rstrip("\n") + "\n" if own.strip() else "") + tail)

    def normalise_shots(self, shots: MutableSequence) -> None:
        comments = getattr(shots, "ca", None)
        if comments is not None:
            for idx in list(comments.items):
                tokens = comments.items[idx]
                flat = [t for part in tokens if part for t in (part if isinstance(part, list) else [part])]
                if all(not t.value.strip() for t in flat):
                    del comments.items[idx]
        n = len(shots)
        for i, shot in enumerate(shots):
            tail = self._take_tail(shot)
            if tail.strip():
                # A comment after a blank line ("# Act 2") is the author's: it stays with the
                # shot it followed, with one blank line before it.
                self._put_tail(shot, "\n" + tail.lstrip("\n"))
            elif i < n - 1:
                self._put_tail(shot, "\n")


def backend_for(fmt: str, text: str) -> _Backend:
    """The backend for a format (\"toml\" or \"yaml\"); YAML guesses its indentation from `text`."""
    return _TomlBackend() if fmt == "toml" else _YamlBackend(text)


