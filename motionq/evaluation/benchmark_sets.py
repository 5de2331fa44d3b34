"""The multi-shot benchmark: character sets written in the sprite world's language.

The paper evaluates consistency on 30 character sets x 5 shots, each shot with its own prompt.
Here a set is one recurring character with an identity-UNSPECIFIED prompt ("a shape",
"something"): nothing in the text fixes its shape or colour, so whether the five shots show
the same character is entirely the consistency method's doing (vanilla generation picks an
identity per shot at random). Each shot asks for a different motion (5 distinct motions out of
the 11 moving ones: "stays still" is left out because motion diversity needs motion) on a
background of its own, with its own seed. Everything is a pure function of the benchmark seed.

    >>> sets = multishot_benchmark(30, 5, seed=0)
    >>> print(to_toml(sets[0]))          # a real storyboard file (docs/format.md)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from motionq.api import ConsistencyConfig, GroupRequest, ShotRequest
from motionq.spriteworld import BACKGROUNDS, MOTIONS, background_phrase, motion_phrase

__all__ = [
    "CHARACTER_NAME",
    "CHARACTER_PROMPTS",
    "MULTISHOT_MOTIONS",
    "CharacterSet",
    "ShotSpec",
    "group_request",
    "multishot_benchmark",
    "to_toml",
    "write_storyboards",
]

#: Motions a benchmark shot may ask for: every moving class ("stay" would make diversity moot).
MULTISHOT_MOTIONS: tuple[str, ...] = tuple(m for m in MOTIONS if m != "stay")
#: Identity-free character prompts (parse_caption reads no shape and no colour from them).
CHARACTER_PROMPTS: tuple[str, ...] = ("a shape", "something")
#: The character's name in storyboards and in `ShotRequest.characters`.
CHARACTER_NAME = "x"
#: Seed replicas are spaced by this much (a prime), so replica seeds never collide.
SEED_STRIDE = 1_000_003


@dataclass(frozen=True)
class ShotSpec:
    """One benchmark shot: what the character does, where, and the shot's own seed."""

    shot_id: str
    motion: str
    direction: str | None  # horizontal direction of a bounce / zigzag, else None
    background: str
    seed: int

    def prompt(self, character: str = "{" + CHARACTER_NAME + "}") -> str:
        """The shot prompt with `character` as its subject (default: the storyboard reference
        "{x}"), e.g. "{x} bounces to the right on a navy background"."""
        return f"{character} {motion_phrase(self.motion, self.direction)} {background_phrase(self.background)}"


@dataclass(frozen=True)
class CharacterSet:
    """A recurring character and the shots it appears in."""

    set_id: str
    character_prompt: str
    shots: tuple[ShotSpec, ...]

    def prompts(self) -> list[str]:
        """The shots' prompts with the character's prompt filled in."""
        return [s.prompt(self.character_prompt) for s in self.shots]


def multishot_benchmark(n_sets: int = 30, shots_per_set: int = 5, seed: int = 0) -> list[CharacterSet]:
    """`n_sets` character sets of `shots_per_set` shots, deterministic from `seed`.

    Per set: an identity-free character prompt; per shot: a distinct motion (sampled without
    replacement from `MULTISHOT_MOTIONS`), a left/right direction for bounce and zigzag, a
    background and a seed. Sets depend only on (seed, their index), so asking for fewer sets
    gives a prefix of the longer benchmark.
    """
    if n_sets < 1:
        raise ValueError(f"need at least one set, got {n_sets}")
    if not 2 <= shots_per_set <= len(MULTISHOT_MOTIONS):
        raise ValueError(f"shots per set must be in 2..{len(MULTISHOT_MOTIONS)} (one distinct motion "
                         f"each), got {shots_per_set}")
    out = []
    for i in range(n_sets):
        rng = np.random.default_rng([int(seed), i])
        prompt = CHARACTER_PROMPTS[i % len(CHARACTER_PROMPTS)]
        motions = rng.choice(len(MULTISHOT_MOTIONS), size=shots_per_set, replace=False)
        shots = []
        for k, m in enumerate(motions):
            motion = MULTISHOT_MOTIONS[int(m)]
            direction = ("left" if rng.random() < 0.5 else "right") if motion in ("bounce", "zigzag") else None
            background = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
            shots.append(ShotSpec(shot_id=f"set{i:02d}-shot{k}", motion=motion, direction=direction,
                                  background=background, seed=int(rng.integers(0, 2**31 - 1))))
        out.append(CharacterSet(set_id=f"set{i:02d}", character_prompt=prompt, shots=tuple(shots)))
    return out


def group_request(
    spec: CharacterSet,
    consistency: ConsistencyConfig,
    *,
    num_frames: int,
    steps: int = 20,
    guidance: float = 4.0,
    replica: int = 0,
    anchors: int = 0,
) -> GroupRequest:
    """The set as one `GroupRequest`: every shot names the character ("x") and its prompt.

    replica: seed replica r shifts every shot's seed by r * `SEED_STRIDE` (another draw of the
    same set). anchors: the first `anchors` shots are the group's anchor shots (anchor mode).
    """
    shots = tuple(
        ShotRequest(
            shot_id=s.shot_id,
            prompt=s.prompt(spec.character_prompt),
            num_frames=num_frames,
            seed=(s.seed + replica * SEED_STRIDE) % (2**32),
            steps=steps,
            guidance=guidance,
            subjects=(spec.character_prompt,),
            characters=(CHARACTER_NAME,),
        )
        for s in spec.shots
    )
    return GroupRequest(shots=shots, consistency=consistency,
                        anchor_ids=tuple(s.shot_id for s in shots[:anchors]))


def _toml_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_toml(
    spec: CharacterSet,
    *,
    variant: str | None = None,
    model: str = "animatic",
    fps: int = 8,
    size: tuple[int, int] = (256, 256),
    steps: int = 20,
    guidance: float = 4.0,
    anchors: int = 0,
) -> str:
    """The set as a storyboard file (TOML, docs/format.md) that `storyboard.load` accepts.

    One-second shots at `fps` (8 frames at the default 8 fps, the built-in model's clip length);
    each shot pins its seed. `variant` None writes none (the model's default). `anchors` > 0
    marks the first shots as anchors (anchor mode).
    """
    lines = [
        f"# Multi-shot benchmark {spec.set_id}: one identity-free character in "
        f"{len(spec.shots)} shots, each with its own motion.",
        "# Generated by motionq.evaluation.benchmark_sets.to_toml.",
        "",
        "schema_version = 1",
        "",
        "[film]",
        f"title = {_toml_string('Benchmark ' + spec.set_id)}",
        f"fps = {int(fps)}",
        f"size = [{int(size[0])}, {int(size[1])}]",
        f"model = {_toml_string(model)}",
        f"seed = {spec.shots[0].seed}",
        f"steps = {int(steps)}",
        f"guidance = {float(guidance)!r}",
        "",
        "[consistency]",
        *([f"variant = {_toml_string(variant)}"] if variant else []),  # unset: the model's default
        f'anchors = "{"auto" if anchors else "off"}"',
        "",
        f"[characters.{CHARACTER_NAME}]",
        f"prompt = {_toml_string(spec.character_prompt)}",
    ]
    for k, s in enumerate(spec.shots):
        lines += [
            "",
            "[[shots]]",
            f"id = {_toml_string(s.shot_id)}",
            f"prompt = {_toml_string(s.prompt())}",
            "duration = 1.0",
            f"seed = {s.seed}",
        ]
        if k < anchors:
            lines.append("anchor = true")
    return "\n".join(lines) + "\n"


def write_storyboards(specs: list[CharacterSet], folder: str | os.PathLike, **kwargs) -> list[Path]:
    """Write each set as `<folder>/<set_id>.toml` (see `to_toml` for the options)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for spec in specs:
        p = out / f"{spec.set_id}.toml"
        p.write_text(to_toml(spec, **kwargs))
        paths.append(p)
    return paths
