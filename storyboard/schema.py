"""Pydantic models of a storyboard file (schema version 1).

The same structure is written in TOML or YAML (see docs/format.md). Every model forbids unknown
fields, and scalar types are strict (no "1" for 1, no true for 1), because a typo in a storyboard
should be reported, not silently reinterpreted.

Each field's `description` is the short "what is allowed" text that error messages end with.

Checks that involve more than one field (character references, unique shot ids, transitions
against shot durations) live in `cross_check`, which works on raw parsed data so that a file with
type errors still gets every other problem reported. Checks that touch the disk (paths, clips)
live in `storyboard.load`.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, NamedTuple

from pydantic import (
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    Strict,
    ValidationInfo,
    field_validator,
    model_validator,
)

from motionq.api import DEFAULT_VARIANT as MOTIONQ_DEFAULT_VARIANT
from motionq.api import VARIANTS, ConsistencyConfig, MotionSpec
from storyboard.errors import format_field

#: The storyboard format version this code reads and writes.
SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS: tuple[int, ...] = (1,)

#: Consistency variant for a model that names no default of its own (motionq's recommendation,
#: the paper's full method). A storyboard that leaves `variant` unset gets its model's default
#: (`motionq.backbones.default_variant`: "refine" for the built-in model).
DEFAULT_VARIANT = MOTIONQ_DEFAULT_VARIANT

TRANSITION_TYPES: tuple[str, ...] = ("cut", "crossfade", "fade")
DEFAULT_TRANSITION_DURATION = 0.5
DEFAULT_SHOT_DURATION = 1.0
DEFAULT_MOTION_STRENGTH: float = MotionSpec.strength
MAX_SEED = 2**32 - 1
MAX_DURATION = 60.0

#: Shot ids and character names: safe in file names, cache keys and `{name}` references.
NAME_RE = re.compile(r"[A-Za-z0-9_-]+")
#: A `{name}` character reference inside a prompt.
REFERENCE_RE = re.compile(r"\{([^{}]*)\}")

_DEFAULT_CC = ConsistencyConfig()

# Strict scalars: a storyboard says what it means.
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict(), AllowInfNan(False)]  # strict float still accepts ints
Str = Annotated[str, Strict()]
Bool = Annotated[bool, Strict()]


def _field(default: Any = ..., allowed: str = "", **kwargs: Any) -> Any:
    """A pydantic Field whose description is the "what is allowed" text of error messages."""
    if "default_factory" in kwargs:
        return Field(description=allowed, **kwargs)
    return Field(default, description=allowed, **kwargs)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


def _pair(value: Any) -> Any:
    """Before-validator for [a, b] fields: a clear message beats pydantic's per-index 'missing'."""
    if isinstance(value, (list, tuple)) and len(value) != 2:
        raise ValueError(f"must have exactly 2 numbers, got {len(value)}")
    return value


def _timestep_range(value: tuple[int, int] | None) -> tuple[int, int] | None:
    if value is None:  # left to the model
        return value
    low, high = value
    if not (0 <= low < high <= 1000):
        raise ValueError(f"[{low}, {high}] is not a valid range")
    return value


def resolve_path(base_dir: Path, raw: str) -> Path:
    """Absolute, normalised path of `raw` (as written in a storyboard) relative to `base_dir`.

    Normalised lexically (not through symlinks) so that "is it inside the folder" means what the
    author wrote.
    """
    return Path(os.path.normpath(Path(base_dir).absolute() / Path(raw).expanduser()))


def looks_like_path(model: str) -> bool:
    """True when a `film.model` value names a local folder rather than a registered backbone."""
    return model.startswith((".", "~", "/")) or "/" in model or "\\" in model


class Film(_Model):
    """Settings of the whole edit: frame rate, size, model and sampling defaults."""

    title: Str = _field("Untitled", "text")
    fps: Int = _field(8, "frames per second of the edit, whole number 1..60", ge=1, le=60)
    size: tuple[Int, Int] = _field(
        (256, 256), "[width, height] in pixels, even whole numbers 16..4096"
    )
    model: Str = _field(
        "animatic",
        "a backbone name (animatic, tiny, wan2.1) or a path to a local model folder",
        min_length=1,
    )
    seed: Int = _field(0, f"whole number 0..{MAX_SEED}", ge=0, le=MAX_SEED)
    steps: Int = _field(20, "sampling steps, whole number 1..200", ge=1, le=200)
    guidance: Float = _field(4.0, "classifier-free guidance, number 0..30", ge=0, le=30)
    negative_prompt: Str = _field("", "text")

    _size_pair = field_validator("size", mode="before")(_pair)

    @field_validator("size")
    @classmethod
    def _check_size(cls, value: tuple[int, int]) -> tuple[int, int]:
        for name, n in zip(("width", "height"), value):
            if not 16 <= n <= 4096:
                raise ValueError(f"{name} {n} is out of range")
            if n % 2:
                raise ValueError(f"{name} {n} is odd")
        return value

    @property
    def width(self) -> int:
        return self.size[0]

    @property
    def height(self) -> int:
        return self.size[1]


class Consistency(_Model):
    """Settings of the multi-shot consistency method; mirrors `motionq.api.ConsistencyConfig`."""

    variant: Literal[VARIANTS] | None = _field(  # type: ignore[valid-type]
        None, "one of " + ", ".join(f"'{v}'" for v in VARIANTS) + " (unset: the model's default)"
    )
    sdsa_range: tuple[Int, Int] = _field(
        _DEFAULT_CC.sdsa_range, "[low, high] timesteps, 0 <= low < high <= 1000"
    )
    t_pres: Int = _field(_DEFAULT_CC.t_pres, "timestep, whole number 0..1000", ge=0, le=1000)
    keyframe_every: Int = _field(
        _DEFAULT_CC.keyframe_every, "frames between keyframes, whole number >= 1", ge=1
    )
    refine_range: tuple[Int, Int] | None = _field(
        None, "[low, high] timesteps, 0 <= low < high <= 1000 (unset: the model's own range)"
    )
    anchors: Literal["auto", "off"] = _field(
        _DEFAULT_CC.anchors,
        "'auto' or 'off'; in YAML write \"off\" in quotes, bare off reads as false",
    )

    _range_pair = field_validator("sdsa_range", "refine_range", mode="before")(_pair)
    _range_check = field_validator("sdsa_range", "refine_range")(_timestep_range)

    def to_config(self, default_variant: str = DEFAULT_VARIANT) -> ConsistencyConfig:
        """The motionq configuration these settings describe (`default_variant` when `variant`
        is unset)."""
        return ConsistencyConfig(
            variant=self.variant or default_variant,
            sdsa_range=tuple(self.sdsa_range),
            t_pres=self.t_pres,
            keyframe_every=self.keyframe_every,
            refine_range=tuple(self.refine_range) if self.refine_range is not None else None,
            anchors=self.anchors,
        )


class Character(_Model):
    """A recurring character; `{name}` in a shot prompt is replaced by `prompt`."""

    prompt: Str = _field(..., "text describing the character, e.g. 'a red circle'", min_length=1)
    negative_prompt: Str = _field("", "text")
    mask: Str | None = _field(None, "path to an image, relative to the storyboard's folder")
    reference: Str | None = _field(
        None, "path to an image, relative to the storyboard's folder"
    )

    _mask_path: Path | None = PrivateAttr(default=None)
    _reference_path: Path | None = PrivateAttr(default=None)

    @field_validator("prompt")
    @classmethod
    def _plain_prompt(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        # Character prompts are substituted into shot prompts; nesting would be ambiguous.
        if "{" in value or "}" in value:
            raise ValueError("a character prompt cannot contain { or }")
        return value

    @field_validator("mask", "reference")
    @classmethod
    def _non_empty_path(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty")
        return value

    @property
    def mask_path(self) -> Path | None:
        """Absolute path of `mask` (resolved against the storyboard's folder), or None."""
        return self._mask_path

    @property
    def reference_path(self) -> Path | None:
        """Absolute path of `reference` (resolved against the storyboard's folder), or None."""
        return self._reference_path


class MotionRef(_Model):
    """A motion-reference clip: the shot copies the clip's motion (query injection)."""

    clip: Str = _field(
        ..., "path to a video file, relative to the storyboard's folder", min_length=1
    )
    strength: Float = _field(
        DEFAULT_MOTION_STRENGTH, "how closely to follow the clip, number 0..1", ge=0, le=1
    )

    _clip_path: Path | None = PrivateAttr(default=None)

    @property
    def clip_path(self) -> Path:
        """Absolute path of the clip (resolved against the storyboard's folder)."""
        return self._clip_path if self._clip_path is not None else Path(self.clip).absolute()

    def to_spec(self) -> MotionSpec:
        """The motionq request for this reference."""
        return MotionSpec(clip=self.clip_path, strength=self.strength)


class Transition(_Model):
    """How a shot hands over to the next one. A bare string is shorthand for `{type = ...}`."""

    type: Literal["cut", "crossfade", "fade"] = _field(
        "cut", "'cut', 'crossfade' or 'fade'"
    )
    duration: Float = _field(
        DEFAULT_TRANSITION_DURATION,
        "seconds, > 0 and shorter than both shots it joins",
        gt=0,
        le=MAX_DURATION,
    )

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"type": value} if isinstance(value, str) else value


class Shot(_Model):
    """One shot of the film."""

    id: Str = _field(..., "unique name of letters, digits, '_' and '-'", pattern=r"^[A-Za-z0-9_-]+$")
    prompt: Str = _field(..., "text; {name} inserts a character's prompt", min_length=1)
    characters: list[Str] = _field(
        [], "a list of character names, e.g. [\"hero\"]"
    )
    duration: Float = _field(
        DEFAULT_SHOT_DURATION, "seconds, 0 < duration <= 60", gt=0, le=MAX_DURATION
    )
    seed: Int | None = _field(None, f"whole number 0..{MAX_SEED}", ge=0, le=MAX_SEED)
    motion: MotionRef | None = _field(
        None, "a table: { clip = \"clips/move.mp4\", strength = 0.6 }"
    )
    transition: Transition = _field(
        default_factory=Transition,
        allowed="'cut', 'crossfade', 'fade' or { type = \"crossfade\", duration = 0.5 }",
    )
    steps: Int | None = _field(None, "sampling steps, whole number 1..200", ge=1, le=200)
    guidance: Float | None = _field(None, "classifier-free guidance, number 0..30", ge=0, le=30)
    negative_prompt: Str | None = _field(None, "text")
    anchor: Bool = _field(False, "true or false")

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    def references(self) -> list[str]:
        """Names referenced as `{name}` in the prompt, in order of first appearance."""
        return list(dict.fromkeys(REFERENCE_RE.findall(self.prompt)))


class Storyboard(_Model):
    """A whole storyboard: film settings, consistency settings, characters and shots.

    Load one with `storyboard.load.load_storyboard`, which also sets `path` and `source_format`
    and resolves file paths against the storyboard's folder. Built directly
    (`Storyboard.model_validate(data, context={"base_dir": folder})`), paths resolve against
    `base_dir` (default: the current directory) and cross-field problems raise a ValueError.
    """

    schema_version: Int = _field(
        SCHEMA_VERSION, "supported: " + ", ".join(map(str, SUPPORTED_SCHEMA_VERSIONS))
    )
    film: Film = _field(default_factory=Film, allowed="a table of film settings")
    consistency: Consistency = _field(
        default_factory=Consistency, allowed="a table of consistency settings"
    )
    characters: dict[Str, Character] = _field(
        {}, "a table of characters by name"
    )
    shots: list[Shot] = _field(
        ...,
        "at least one shot, each a [[shots]] table",
        min_length=1,
    )

    _path: Path | None = PrivateAttr(default=None)
    _base_dir: Path | None = PrivateAttr(default=None)
    _source_format: str | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _drop_extensions(cls, value: Any) -> Any:
        # Top-level keys starting with "x-" are free for the author (YAML anchors, notes).
        if isinstance(value, Mapping):
            return {k: v for k, v in value.items() if not (isinstance(k, str) and k.startswith("x-"))}
        return value

    @field_validator("schema_version")
    @classmethod
    def _supported(cls, value: int) -> int:
        if value not in SUPPORTED_SCHEMA_VERSIONS:
            raise ValueError(f"unsupported version {value}")
        return value

    @model_validator(mode="after")
    def _cross_check_and_resolve(self, info: ValidationInfo) -> "Storyboard":
        ctx = info.context or {}
        # The loader runs cross_check itself on raw data (to report positions) and says so.
        if not ctx.get("cross_checked"):
            issues = cross_check(self.model_dump())
            if issues:
                raise ValueError("; ".join(f"{format_field(i.loc)}: {i.message}" for i in issues))
        self._resolve_paths(Path(ctx.get("base_dir") or Path.cwd()))
        return self

    def _resolve_paths(self, base_dir: Path) -> None:
        self._base_dir = Path(base_dir).absolute()
        for shot in self.shots:
            if shot.motion is not None:
                shot.motion._clip_path = resolve_path(self._base_dir, shot.motion.clip)
        for character in self.characters.values():
            if character.mask is not None:
                character._mask_path = resolve_path(self._base_dir, character.mask)
            if character.reference is not None:
                character._reference_path = resolve_path(self._base_dir, character.reference)

    # -- where it came from -------------------------------------------------------------------

    @property
    def path(self) -> Path | None:
        """The file this storyboard was loaded from (None when built in memory)."""
        return self._path

    @property
    def source_format(self) -> str | None:
        """"toml" or "yaml" when loaded from a file, else None."""
        return self._source_format

    @property
    def base_dir(self) -> Path:
        """The folder relative paths resolve against (the storyboard file's folder)."""
        return self._base_dir if self._base_dir is not None else Path.cwd()

    # -- shots -----------------------------------------------------------------------------------

    def shot_by_id(self, shot_id: str) -> Shot:
        """The shot with this id; KeyError if there is none."""
        for shot in self.shots:
            if shot.id == shot_id:
                return shot
        raise KeyError(shot_id)

    def shot_index(self, shot: Shot | str) -> int:
        """Position of a shot (or shot id) in the film, from 0."""
        shot_id = shot if isinstance(shot, str) else shot.id
        for i, s in enumerate(self.shots):
            if s.id == shot_id:
                return i
        raise KeyError(shot_id)

    def resolved_prompt(self, shot: Shot) -> str:
        """The shot prompt with each `{name}` replaced by that character's prompt."""
        return REFERENCE_RE.sub(lambda m: self.characters[m.group(1)].prompt, shot.prompt)

    def shot_characters(self, shot: Shot) -> list[str]:
        """Names of the characters in a shot: `{refs}` in the prompt and `characters`, by first
        appearance (prompt references first)."""
        return list(dict.fromkeys([*shot.references(), *shot.characters]))

    def shot_subjects(self, shot: Shot) -> tuple[str, ...]:
        """Prompts of the shot's characters (what `ShotRequest.subjects` expects)."""
        return tuple(self.characters[n].prompt for n in self.shot_characters(shot))

    def effective_seed(self, shot: Shot, index: int | None = None) -> int:
        """The shot's seed, else `film.seed + index` (index: the shot's position, from 0)."""
        if shot.seed is not None:
            return shot.seed
        if index is None:
            index = self.shot_index(shot)
        return self.film.seed + index

    def effective_steps(self, shot: Shot) -> int:
        """The shot's sampling steps, else the film's."""
        return shot.steps if shot.steps is not None else self.film.steps

    def effective_guidance(self, shot: Shot) -> float:
        """The shot's guidance, else the film's."""
        return shot.guidance if shot.guidance is not None else self.film.guidance

    def effective_negative_prompt(self, shot: Shot) -> str:
        """The shot's negative prompt (else the film's), followed by the negative prompts of its
        characters, joined with ", "."""
        base = shot.negative_prompt if shot.negative_prompt is not None else self.film.negative_prompt
        parts = [base] + [self.characters[n].negative_prompt for n in self.shot_characters(shot)]
        return ", ".join(p for p in parts if p)

    def transition_of(self, shot: Shot, index: int | None = None) -> tuple[str, float]:
        """(type, seconds) of the join from a shot into the next: ("cut", 0.0) for a cut and for
        the last shot (which has no next shot)."""
        if index is None:
            index = self.shot_index(shot)
        if shot.transition.type == "cut" or index >= len(self.shots) - 1:
            return "cut", 0.0
        return shot.transition.type, float(shot.transition.duration)

    def frames(self, shot: Shot) -> int:
        """Number of frames of a shot at the film's frame rate (at least 1)."""
        return max(1, round(shot.duration * self.film.fps))

    def resolved_model(self) -> str:
        """`film.model`: a backbone name as is, or a folder path made absolute (relative paths
        resolve against the storyboard's folder)."""
        model = self.film.model
        return str(resolve_path(self.base_dir, model)) if looks_like_path(model) else model

    def to_consistency_config(self) -> ConsistencyConfig:
        """The motionq consistency configuration of this storyboard; an unset variant is the
        model's default (`motionq.backbones.default_variant`, which loads no model)."""
        if self.consistency.variant is not None:
            return self.consistency.to_config()
        from motionq.api import default_variant

        return self.consistency.to_config(default_variant(self.resolved_model()))


# -- cross-field checks ----------------------------------------------------------------------------


class Issue(NamedTuple):
    """A problem found by `cross_check`: where (a value path) and what (message with hint)."""

    loc: tuple
    message: str


def did_you_mean(word: str, choices: list[str] | tuple[str, ...]) -> str | None:
    """The closest choice to a misspelt word, or None."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def _unknown_character_hint(name: str, names: list[str]) -> str:
    guess = did_you_mean(name, names)
    if guess:
        return f"did you mean '{guess}'?"
    if names:
        return "defined characters: " + ", ".join(names)
    return "no characters are defined; add one to 'characters'"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _transition_parts(raw: Any) -> tuple[Any, Any]:
    """(type, duration) of a raw transition value; (None, None) when it isn't one."""
    if raw is None:
        return "cut", None
    if isinstance(raw, str):
        return raw, DEFAULT_TRANSITION_DURATION
    if isinstance(raw, Mapping):
        return raw.get("type", "cut"), raw.get("duration", DEFAULT_TRANSITION_DURATION)
    return None, None


def cross_check(data: Mapping[str, Any]) -> list[Issue]:
    """Problems that involve several fields, found in raw parsed data (or a model dump).

    Defensive by design: values of the wrong type are skipped (pydantic reports those), so a
    file with type errors still gets these problems reported too.
    """
    issues: list[Issue] = []
    chars = data.get("characters")
    names = [k for k in chars if isinstance(k, str)] if isinstance(chars, Mapping) else []
    for name in names:
        if not NAME_RE.fullmatch(name):
            issues.append(
                Issue(("characters", name), f"invalid character name '{name}' (letters, digits, '_' and '-')")
            )

    shots = data.get("shots")
    if not isinstance(shots, list):
        return issues
    film = data.get("film") if isinstance(data.get("film"), Mapping) else {}
    consistency = data.get("consistency") if isinstance(data.get("consistency"), Mapping) else {}
    fps = film.get("fps") if isinstance(film.get("fps"), int) and not isinstance(film.get("fps"), bool) \
        and film.get("fps") > 0 else Film.model_fields["fps"].default
    seen_ids: dict[str, int] = {}
    # Time taken from each shot by the transition into it (for the in + out <= duration check).
    incoming: dict[int, float] = {}
    for i, shot in enumerate(shots):
        if not isinstance(shot, Mapping):
            continue
        duration = _number(shot.get("duration", DEFAULT_SHOT_DURATION))
        if duration is not None and 0 < duration < 1 / fps - 1e-9:
            issues.append(Issue(("shots", i, "duration"),
                                f"{duration:g} s is shorter than one frame at {fps} fps (at least {1 / fps:.4g} s)"))
        shot_id = shot.get("id")
        if isinstance(shot_id, str):
            if shot_id in seen_ids:
                issues.append(
                    Issue(
                        ("shots", i, "id"),
                        f"duplicate shot id '{shot_id}' (already used by shots[{seen_ids[shot_id]}]; ids must be unique)",
                    )
                )
            else:
                seen_ids[shot_id] = i

        present: list[str] = []
        referenced = False  # names a character at all, known or not (the anchor check)
        prompt = shot.get("prompt")
        if isinstance(prompt, str):
            for ref in REFERENCE_RE.findall(prompt):
                referenced = True
                if ref in names:
                    present.append(ref)
                else:
                    hint = _unknown_character_hint(ref, names)
                    issues.append(Issue(("shots", i, "prompt"), f"unknown character {{{ref}}} ({hint})"))
            leftover = REFERENCE_RE.sub("", prompt)
            for brace in ("{", "}"):
                if brace in leftover:
                    issues.append(
                        Issue(
                            ("shots", i, "prompt"),
                            f"unmatched '{brace}' (write {{name}} to insert a character's prompt)",
                        )
                    )
        listed = shot.get("characters")
        if isinstance(listed, list):
            seen: set[str] = set()
            for j, name in enumerate(listed):
                if not isinstance(name, str):
                    continue
                referenced = True
                if name not in names:
                    hint = _unknown_character_hint(name, names)
                    issues.append(Issue(("shots", i, "characters", j), f"unknown character '{name}' ({hint})"))
                elif name in seen:
                    issues.append(Issue(("shots", i, "characters", j), f"'{name}' is listed twice"))
                else:
                    present.append(name)
                seen.add(name)

        if shot.get("anchor") is True and not referenced:
            issues.append(
                Issue(
                    ("shots", i, "anchor"),
                    "anchor = true but the shot has no characters (reference one with {name} or list it in characters)",
                )
            )
        elif shot.get("anchor") is True and consistency.get("anchors") == "off":
            issues.append(Issue(("shots", i, "anchor"), "anchor = true but consistency.anchors is \"off\" "
                                                        "(every group renders jointly): remove one of the two"))

        raw_transition = shot.get("transition")
        kind, length = _transition_parts(raw_transition)
        if (kind == "cut" and isinstance(raw_transition, Mapping) and "duration" in raw_transition
                and ("type" not in raw_transition or raw_transition["duration"] != DEFAULT_TRANSITION_DURATION)):
            # a duration asks for a gradual transition: don't drop it without a word (a model
            # dump writes the default duration next to every cut: that one says nothing)
            issues.append(Issue(("shots", i, "transition", "duration"),
                                "a cut has no duration: set the type to 'crossfade' or 'fade'"
                                + ("" if "type" in raw_transition else " (the type defaults to 'cut')")))
            continue
        length = _number(length)
        if kind not in ("crossfade", "fade") or length is None or length <= 0:
            continue
        loc: tuple = ("shots", i, "transition")
        if isinstance(raw_transition, Mapping) and "duration" in raw_transition:
            loc = (*loc, "duration")
        if i == len(shots) - 1:
            issues.append(
                Issue(
                    ("shots", i, "transition"),
                    f"'{kind}' into nothing: the last shot has no next shot (use 'cut' or leave transition out)",
                )
            )
            continue
        nxt = shots[i + 1] if isinstance(shots[i + 1], Mapping) else {}
        this_len = _number(shot.get("duration", DEFAULT_SHOT_DURATION))
        next_len = _number(nxt.get("duration", DEFAULT_SHOT_DURATION))
        if this_len is None or next_len is None or this_len <= 0 or next_len <= 0:
            continue
        if length >= this_len or length >= next_len:
            issues.append(
                Issue(
                    loc,
                    f"a {length:g} s {kind} is too long (must be shorter than both shots it joins: "
                    f"this one {this_len:g} s, the next {next_len:g} s)",
                )
            )
        elif incoming.get(i, 0.0) + length > this_len:
            issues.append(
                Issue(
                    loc,
                    f"transitions into and out of this shot take {incoming[i]:g} s + {length:g} s "
                    f"(together at most the shot's {this_len:g} s)",
                )
            )
        incoming[i + 1] = length
    return issues
