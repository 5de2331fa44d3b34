"""Captions for sprite-world scenes, from a small fixed vocabulary, and their inverse.

Captions name each character by identity (colour, shape; either may be left out) and its
motion, and sometimes the background and the camera pan:

    "a red triangle bounces to the right on a navy background"
    "a blue square and a yellow diamond move left"
    "a red circle moves left while something zigzags to the right"

The vocabulary is closed (`VOCABULARY`) so a word-level tokenizer can be built from it, and
no word is shared between roles (the motion "circle" is worded "circles"/"in circles", the
dark-green background is called "forest"), so `parse_caption` inverts captions exactly.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import numpy as np

from motionq.spriteworld.world import (
    BACKGROUNDS,
    COLOURS,
    LINEAR_DIRECTIONS,
    MOTIONS,
    SHAPES,
    Scene,
    WorldConfig,
)

Detail = Literal["full", "partial", "none", "random"]

# Direction words of straight-line motions; the first variant is the canonical one.
_DIRECTION_WORDS: dict[str, tuple[str, ...]] = {
    "left": ("left", "to the left"),
    "right": ("right", "to the right"),
    "up": ("up", "upwards"),
    "down": ("down", "downwards"),
    "up-left": ("up and left", "up and to the left"),
    "up-right": ("up and right", "up and to the right"),
    "down-left": ("down and left", "down and to the left"),
    "down-right": ("down and right", "down and to the right"),
}
_HORIZONTAL_WORDS: dict[str, tuple[str, ...]] = {
    "left": ("left", "to the left"),
    "right": ("right", "to the right"),
}
# (singular, plural) verb phrases per motion. "{d}" is replaced by a direction phrase.
_LINEAR_VERBS: tuple[tuple[str, str], ...] = (
    ("moves {d}", "move {d}"), ("goes {d}", "go {d}"), ("slides {d}", "slide {d}"),
)
_VERBS: dict[str, tuple[tuple[str, str], ...]] = {
    "bounce": (("bounces", "bounce"), ("hops", "hop"), ("bounces along", "bounce along")),
    "zigzag": (("zigzags", "zigzag"), ("moves in a zigzag", "move in a zigzag")),
    "circle": (("circles", "move in circles"), ("moves in circles", "move in circles"),
               ("goes round in circles", "go round in circles")),
    "stay": (("stays still", "stay still"), ("stays in place", "stay in place"),
             ("stands still", "stand still")),
}
_BACKGROUND_PREPOSITIONS = ("on", "over", "against")
_PAN_CONJUNCTIONS = ("as", "while")
_CLAUSE_JOINERS = ("and", "while")

_NP_START = {"a", "an", "something"}
_NOUNS_ANY = ("thing", "shape")


def tokenize_words(text: str) -> list[str]:
    """Split a caption into lower-case words (letters only; punctuation and hyphens dropped)."""
    return re.findall(r"[a-z]+", text.lower())


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _choice(rng: np.random.Generator | None, options: tuple[Any, ...] | list[Any]) -> Any:
    """First option when no rng is given (canonical wording), else a uniform pick."""
    if rng is None:
        return options[0]
    return options[int(rng.integers(len(options)))]


def identity_phrase(shape: str | None, colour: str | None,
                    rng: np.random.Generator | None = None) -> str:
    """Noun phrase for a character: "a red circle", "a circle", "a red thing", "a shape".

    With ``rng``, unspecified identities get varied wording ("a red shape", "something").
    """
    if shape is not None and colour is not None:
        return f"{_article(colour)} {colour} {shape}"
    if shape is not None:
        return f"{_article(shape)} {shape}"
    if colour is not None:
        return f"{_article(colour)} {colour} {_choice(rng, _NOUNS_ANY)}"
    return _choice(rng, ("a shape", "something"))


def motion_phrase(motion: str, direction: str | None = None, plural: bool = False,
                  rng: np.random.Generator | None = None) -> str:
    """Verb phrase for a motion class, e.g. "moves left", "bounces to the right", "circles".

    ``direction`` ("left"/"right") words the horizontal direction of bounce/zigzag.
    ``plural`` gives the form for a joint subject ("a and b move left").
    """
    k = 1 if plural else 0
    if motion in LINEAR_DIRECTIONS:
        verb = _choice(rng, _LINEAR_VERBS)[k]
        return verb.format(d=_choice(rng, _DIRECTION_WORDS[motion]))
    if motion not in _VERBS:
        raise ValueError(f"unknown motion {motion!r}")
    phrase = _choice(rng, _VERBS[motion])[k]
    if direction is not None and motion in ("bounce", "zigzag"):
        phrase = f"{phrase} {_choice(rng, _HORIZONTAL_WORDS[direction])}"
    return phrase


def background_phrase(colour: str, rng: np.random.Generator | None = None) -> str:
    """ "on a navy background" (or "over"/"against" with ``rng``)."""
    return f"{_choice(rng, _BACKGROUND_PREPOSITIONS)} {_article(colour)} {colour} background"


def pan_direction(pan: tuple[float, float]) -> str | None:
    """Word for the camera's pan direction, or None for a static camera."""
    px, py = pan
    if abs(px) < 1e-6 and abs(py) < 1e-6:
        return None
    if abs(px) >= abs(py):
        return "left" if px < 0 else "right"
    return "up" if py < 0 else "down"


def pan_phrase(direction: str, rng: np.random.Generator | None = None) -> str:
    """ "as the camera pans left" (or "while the camera ..." with ``rng``)."""
    return f"{_choice(rng, _PAN_CONJUNCTIONS)} the camera pans {direction}"


def _compose(scene: Scene, rng: np.random.Generator, keep: list[tuple[bool, bool]],
             with_motion: bool, with_background: bool, with_pan: bool) -> str:
    """Assemble a caption; ``keep[i]`` = (name shape, name colour) for character i."""
    subjects = [identity_phrase(ch.shape if ks else None, ch.colour if kc else None, rng)
                for ch, (ks, kc) in zip(scene.characters, keep)]
    chars = scene.characters
    if not with_motion:
        text = " and ".join(subjects)
    elif (len(chars) == 2 and (chars[0].motion, chars[0].direction)
          == (chars[1].motion, chars[1].direction) and rng.random() < 0.5):
        # Same motion: one joint subject with a plural verb.
        vp = motion_phrase(chars[0].motion, chars[0].direction, plural=True, rng=rng)
        text = f"{subjects[0]} and {subjects[1]} {vp}"
    else:
        clauses = [f"{s} {motion_phrase(ch.motion, ch.direction, rng=rng)}"
                   for s, ch in zip(subjects, chars)]
        text = clauses[0]
        for c in clauses[1:]:
            text = f"{text} {_choice(rng, _CLAUSE_JOINERS)} {c}"
    if with_background:
        bg = background_phrase(scene.background.colour, rng)
        text = f"{bg} {text}" if rng.random() < 0.25 else f"{text} {bg}"
    pan_dir = pan_direction(scene.pan)
    if with_pan and pan_dir is not None:
        text = f"{text} {pan_phrase(pan_dir, rng)}"
    return text


def _partial_keep(rng: np.random.Generator, n: int) -> list[tuple[bool, bool]]:
    """Per-character attribute masks with at least one attribute left out somewhere."""
    dropped = [(False, True), (True, False), (False, False)]  # colour only, shape only, none
    if n == 1:
        return [_choice(rng, dropped)]
    options = dropped + [(True, True)]
    while True:
        keep = [_choice(rng, options) for _ in range(n)]
        if any(k != (True, True) for k in keep):
            return keep


def caption(scene: Scene, rng: np.random.Generator, detail: Detail = "random",
            cfg: WorldConfig | None = None) -> str:
    """Caption a scene.

    ``detail``: "full" names every character's shape, colour and motion plus the background
    (and the pan, if any); "partial" leaves out colour and/or shape of some character;
    "none" returns ""; "random" draws: "" with ``cfg.p_empty``, partial with
    ``cfg.p_partial``, else full attributes, naming the background with
    ``cfg.p_background``, the pan with ``cfg.p_pan`` and dropping the motion with
    ``cfg.p_no_motion``.
    """
    cfg = cfg or WorldConfig()
    n = len(scene.characters)
    if detail == "none" or n == 0:
        return ""
    if detail == "full":
        return _compose(scene, rng, [(True, True)] * n, True, True, True)
    if detail == "random":
        if rng.random() < cfg.p_empty:
            return ""
        detail = "partial" if rng.random() < cfg.p_partial else "full-random"
    keep = _partial_keep(rng, n) if detail == "partial" else [(True, True)] * n
    with_motion = not (rng.random() < cfg.p_no_motion)
    with_background = bool(rng.random() < cfg.p_background)
    with_pan = bool(rng.random() < cfg.p_pan)
    return _compose(scene, rng, keep, with_motion, with_background, with_pan)


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------

_MOTION_VERB_WORDS = {
    "bounce": {"bounces", "bounce", "hops", "hop"},
    "zigzag": {"zigzags", "zigzag"},
    "circle": {"circles"},
    "stay": {"stays", "stay", "stands", "stand"},
}
_DIRECTION_TOKENS = {"left", "right", "up", "down", "upwards", "downwards"}


def _vp_motion(tokens: list[str]) -> tuple[str | None, str | None]:
    """Motion class and bounce/zigzag direction from a verb phrase's words."""
    if not tokens:
        return None, None
    words = set(tokens)
    horizontal = "left" if "left" in words else "right" if "right" in words else None
    for motion, verbs in _MOTION_VERB_WORDS.items():
        if words & verbs:
            if motion in ("bounce", "zigzag"):
                return motion, horizontal
            return motion, None
    vertical = "up" if words & {"up", "upwards"} else "down" if words & {"down", "downwards"} \
        else None
    if vertical and horizontal:
        return f"{vertical}-{horizontal}", None
    return vertical or horizontal, None


def parse_caption(text: str) -> dict[str, Any]:
    """Invert a caption to what it asks for.

    Returns ``{"characters": [{"shape", "colour", "motion", "direction"}, ...],
    "background": name | None, "pan": direction | None}``; unspecified attributes are None.
    ``direction`` is the horizontal direction of a bounce/zigzag ("left"/"right") or None.
    """
    words = tokenize_words(text)
    out: dict[str, Any] = {"characters": [], "background": None, "pan": None}
    # Background phrase "<prep> a <colour> background", anywhere in the caption.
    if "background" in words:
        i = words.index("background")
        if i >= 1 and words[i - 1] in BACKGROUNDS:
            out["background"] = words[i - 1]
        lo = i - 3 if i >= 3 and words[i - 3] in _BACKGROUND_PREPOSITIONS else max(i - 2, 0)
        words = words[:lo] + words[i + 1:]
    # Camera phrase "<as|while> the camera pans <dir>".
    if "camera" in words:
        i = words.index("camera")
        if i + 2 < len(words) and words[i + 1] == "pans":
            out["pan"] = words[i + 2]
        lo = i - 2 if i >= 2 and words[i - 2] in _PAN_CONJUNCTIONS else max(i - 1, 0)
        words = words[:lo] + words[i + 3:]

    pos, n = 0, len(words)

    def np_start(k: int) -> bool:
        return k < n and words[k] in _NP_START

    pending: list[dict[str, Any]] = []
    while pos < n:
        if not np_start(pos):
            pos += 1  # tolerate stray words
            continue
        # Noun phrase: "something" | a/an [colour] (shape | thing | shape).
        subj: dict[str, Any] = {"shape": None, "colour": None, "motion": None, "direction": None}
        if words[pos] == "something":
            pos += 1
        else:
            pos += 1
            if pos < n and words[pos] in COLOURS:
                subj["colour"] = words[pos]
                pos += 1
            if pos < n and words[pos] in SHAPES:
                subj["shape"] = words[pos]
                pos += 1
            elif pos < n and words[pos] in _NOUNS_ANY:
                pos += 1
        pending.append(subj)
        if pos < n and words[pos] == "and" and np_start(pos + 1):
            pos += 1  # joint subject: "a red circle and a blue square move left"
            continue
        # Verb phrase: up to the next clause ("and"/"while" + noun phrase) or the end.
        start = pos
        while pos < n and not (words[pos] in _CLAUSE_JOINERS and np_start(pos + 1)):
            pos += 1
        motion, direction = _vp_motion(words[start:pos])
        for s in pending:
            s["motion"], s["direction"] = motion, direction
        out["characters"].extend(pending)
        pending = []
        if pos < n:
            pos += 1  # the joiner
    out["characters"].extend(pending)
    return out


def swap_subjects(text: str) -> str | None:
    """The caption with its two subjects' noun phrases exchanged, so each motion goes to the
    other character ("a red circle moves left while a blue square bounces" -> "a blue square
    moves left while a red circle bounces"); None when that would not change what the caption
    asks for (not two characters, the same motion, or subjects that name the same attributes).

    Used as the contrast of a binding loss: the model should find the swapped caption a worse
    description of the clip than the true one.
    """
    chars = parse_caption(text)["characters"]
    if len(chars) != 2 or chars[0]["motion"] is None:
        return None
    if (chars[0]["motion"], chars[0]["direction"]) == (chars[1]["motion"], chars[1]["direction"]):
        return None
    if (chars[0]["shape"], chars[0]["colour"]) == (chars[1]["shape"], chars[1]["colour"]):
        return None  # "a shape ... something": the swap names the same characters
    words = text.split(" ")
    spans: list[tuple[int, int]] = []  # subject noun phrases as word ranges [i, j)
    i = 0
    while i < len(words):
        if words[i] == "something":
            spans.append((i, i + 1))
        elif words[i] in ("a", "an"):
            j = i + 1
            if j < len(words) and words[j] in COLOURS + BACKGROUNDS:
                j += 1
            if j < len(words) and words[j] == "background":
                i = j + 1
                continue
            if j < len(words) and (words[j] in SHAPES or words[j] in _NOUNS_ANY):
                j += 1
            spans.append((i, j))
            i = j
            continue
        i += 1
    if len(spans) != 2:
        return None
    (a0, a1), (b0, b1) = spans
    first, second = words[a0:a1], words[b0:b1]
    first, second = _fix_article(second), _fix_article(first)
    return " ".join(words[:a0] + first + words[a1:b0] + second + words[b1:])


def clause_roles(text: str) -> list[tuple[int, str, Any]] | None:
    """Who-does-what labels per word of a caption with one clause per character: for each word
    of a subject's noun phrase ``(index, "subject", motion)`` (the motion its clause asks for),
    for each word of its verb phrase ``(index, "motion", (shape, colour))`` (its subject's
    identity, None where unnamed). Background and camera phrases and joiners get no label.
    None for captions without a motion per clause (joint subjects, motion left out).

    Targets of the trainer's text probes (`motionq.train.contextualise_text`): a text encoder
    whose motion words carry their subject, and subject words their motion, is what lets a
    bag-of-tokens cross-attention bind motions to the right character.
    """
    words = text.split(" ")
    skip: set[int] = set()
    for k, w in enumerate(words):
        if w == "background":
            skip.update(range(max(k - 3, 0), k + 1))
        elif w == "camera":
            skip.update(range(max(k - 2, 0), k + 3))
    clauses: list[tuple[list[int], list[int]]] = []
    k = 0
    while k < len(words):
        w = words[k]
        if k in skip:
            k += 1
        elif w in _NP_START:
            np_words = [k]
            k += 1
            while k < len(words) and k not in skip and (words[k] in COLOURS or words[k] in SHAPES
                                                        or words[k] in _NOUNS_ANY):
                np_words.append(k)
                k += 1
            clauses.append((np_words, []))
        elif w in _CLAUSE_JOINERS and k + 1 < len(words) and words[k + 1] in _NP_START:
            k += 1
        else:
            if clauses:
                clauses[-1][1].append(k)
            k += 1
    chars = parse_caption(text)["characters"]
    if not chars or len(clauses) != len(chars) or any(not vp for _, vp in clauses) \
            or any(c["motion"] is None for c in chars):
        return None
    out: list[tuple[int, str, Any]] = []
    for (np_words, vp_words), ch in zip(clauses, chars):
        out += [(i, "subject", ch["motion"]) for i in np_words]
        out += [(i, "motion", (ch["shape"], ch["colour"])) for i in vp_words]
    return out


def _fix_article(phrase: list[str]) -> list[str]:
    if phrase and phrase[0] in ("a", "an") and len(phrase) > 1:
        return [_article(phrase[1])] + phrase[1:]
    return phrase


def _build_vocabulary() -> list[str]:
    phrases: list[str] = ["something", "a shape", "the camera pans"]
    phrases += [f"{_article(w)} {w}" for w in (*SHAPES, *COLOURS, *BACKGROUNDS)]
    phrases += list(_NOUNS_ANY) + ["background"]
    phrases += list(_BACKGROUND_PREPOSITIONS) + list(_PAN_CONJUNCTIONS) + list(_CLAUSE_JOINERS)
    for variants in _DIRECTION_WORDS.values():
        phrases += list(variants)
    for sing, plur in _LINEAR_VERBS:
        phrases += [sing.format(d=""), plur.format(d="")]
    for verbs in _VERBS.values():
        for sing, plur in verbs:
            phrases += [sing, plur]
    return sorted({w for p in phrases for w in tokenize_words(p)})


VOCABULARY: list[str] = _build_vocabulary()

__all__ = [
    "VOCABULARY", "background_phrase", "caption", "identity_phrase", "motion_phrase",
    "pan_direction", "pan_phrase", "parse_caption", "tokenize_words",
]

assert set(MOTIONS) == set(_DIRECTION_WORDS) | set(_VERBS)  # every motion can be worded
