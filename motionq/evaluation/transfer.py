"""Motion-transfer evaluation: fidelity and identity leakage against strength.

Sources (motion references), all fitted to the model's frames and size:

- sprite clips rendered with the sprite world (`render_scene`): one character of known shape,
  colour and motion each, so the target's centroid path and identity can be read exactly;
- "real-looking" clips: examples/clips/bounce.mp4 and pan.mp4, and clips made here with
  ffmpeg's test sources (`make_ffmpeg_clips`: a Game-of-Life board seen through a window moving
  diagonally, a mandelbrot view panning vertically, a textured testsrc2 box sliding over a
  plain backdrop), each with a known dominant motion of about 2.5 px/frame at 32 px (the
  sprites' speed).

- free-path sprite clips (`free_path_sources`, with `TransferSettings.free_paths`): one
  character on a path no caption names (`FREE_PATHS`: turns, an arc, a pause, a speed-up); the
  text baseline asks for the nearest caption, the motion class the analyser reads.

Pairs: every sprite source gets a **same-shape** target (its shape, another colour) and a
**different-shape** target (another shape, another colour); real sources get two targets of
random identity. The target prompt names only the target's identity and the background
("a blue circle on a navy background", prompt mode "none"), so whatever motion appears comes
from the reference; it is generated at strength 0, 0.1, ..., 1.0 (0 = plain generation). The
**text-only baseline** ("no transfer") asks for the source's motion in words instead
("a blue circle bounces to the right on a navy background"), plain generation.

Per clip: motion fidelity (correlation of the source's path -- analyser centroids for sprite
clips, tracked corner points for the others -- with the target character's centroid path),
track and flow fidelity (both clips measured alike, without the analyser), displacement and
position error (`path_error`: the speed and position that path correlation ignores), motion-class match,
identity kept (target shows the asked shape and colour), and identity leakage (target shows the
source's shape or colour; sprite sources only).
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from motionq.metrics import (
    flow_path_fidelity,
    identity_leakage,
    mean_flow_path,
    mean_ci,
    paired_gain,
    path_correlation,
    path_error,
    read_shot,
    track_fidelity,
    tracked_path,
)

__all__ = [
    "CURVED_MOTIONS",
    "ERROR_METRICS",
    "FREE_PATHS",
    "PROMPT_MODES",
    "Pair",
    "Source",
    "TransferSettings",
    "build_pairs",
    "free_path_sources",
    "geometry",
    "make_ffmpeg_clips",
    "model_shapes",
    "paired_vs_text",
    "path_kind",
    "pick_transfer_examples",
    "real_sources",
    "run_transfer",
    "score_clip",
    "source_path",
    "sprite_sources",
    "summarise",
    "target_prompt",
    "transfer_pairs",
    "win_failure_sheets",
]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CLIPS = ROOT / "examples" / "clips"

#: Motions of the sprite sources (one source each): straight lines, diagonals and the
#: non-linear classes. "stay" has no motion to transfer.
SPRITE_SOURCE_MOTIONS: tuple[str, ...] = ("left", "right", "up", "down-right", "up-left", "bounce", "zigzag", "circle")
#: How target prompts word motion: "none" (identity + background only), "still" (adds
#: "stays still": the text pulls against the reference), "motion" (adds the source's motion).
PROMPT_MODES = ("none", "still", "motion")

EvalProgress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Source:
    """A motion reference, fitted to the model's (frames, height, width). `motion` /
    `direction`: its motion class as read from the fitted clip (the scene's for sprite clips)."""

    name: str
    kind: str  # "sprite" | "path" (a sprite on a path no caption names, `FREE_PATHS`) | "real"
    frames: np.ndarray = field(repr=False, compare=False)
    identity: tuple[str | None, str | None]  # (shape, colour); (None, None) for real clips
    motion: str  # motion class of its (dominant) movement
    direction: str | None  # bounce / zigzag horizontal direction
    background: str  # background word used in the target prompts
    scene: Any = field(default=None, repr=False, compare=False)  # the sprite Scene, if rendered
    stated_motion: str | None = None  # real clips: the motion the clip was made to show


@dataclass(frozen=True)
class Pair:
    """A source and the identity of the target to give its motion to."""

    source: Source
    target: tuple[str, str]  # (shape, colour)
    pair_type: str  # "same-shape" | "different-shape" | "free-path" | "real"

    @property
    def name(self) -> str:
        return f"{self.source.name}->{self.target[1]}-{self.target[0]}"


@dataclass
class TransferSettings:
    """What to run. `num_frames` None = the backbone's default clip length."""

    strengths: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(11))
    seeds: int = 1
    steps: int = 20
    guidance: float = 4.0
    prompt_mode: str = "none"
    sprite_motions: tuple[str, ...] = SPRITE_SOURCE_MOTIONS
    real: bool = True
    free_paths: bool = False  # add the free-path sprite sources (`FREE_PATHS`)
    bench_seed: int = 0
    num_frames: int | None = None
    operating_strength: float = 0.6  # the default strength: timings and the DMT comparison
    max_pairs: int | None = None  # a prefix of the pairs (quick runs, tests)
    shapes: tuple[str, ...] | None = None  # sprite shapes to use; None: those the model draws

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["strengths"] = list(self.strengths)
        d["sprite_motions"] = list(self.sprite_motions)
        d["shapes"] = list(self.shapes) if self.shapes else None
        return d


# ---------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------


def _one_sprite_config(rng: np.random.Generator, shapes: Sequence[str], motion: str,
                       num_frames: int, height: int, width: int):
    """World settings for one character of random shape (from `shapes`), colour and background."""
    from motionq.spriteworld import BACKGROUNDS, DEFAULT_COLOURS, WorldConfig

    shape = shapes[int(rng.integers(len(shapes)))]
    colour = DEFAULT_COLOURS[int(rng.integers(len(DEFAULT_COLOURS)))]
    bg = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    return WorldConfig(height=height, width=width, num_frames=num_frames, shapes=(shape,), colours=(colour,),
                       backgrounds=(bg,), motions=(motion,), p_two=0.0)


def sprite_sources(num_frames: int, height: int, width: int, seed: int = 0,
                   motions: Sequence[str] = SPRITE_SOURCE_MOTIONS,
                   shapes: Sequence[str] | None = None) -> list[Source]:
    """One sprite clip per motion, random shape (from `shapes`, default all) / colour /
    background, deterministic."""
    from motionq.spriteworld import SHAPES, render_scene, sample_scene

    pool = tuple(shapes or SHAPES)
    out = []
    for i, motion in enumerate(motions):
        rng = np.random.default_rng([int(seed), 7, i])
        scene = sample_scene(rng, _one_sprite_config(rng, pool, motion, num_frames, height, width))
        ch = scene.characters[0]
        out.append(Source(name=f"sprite-{motion}", kind="sprite", frames=render_scene(scene),
                          identity=ch.identity, motion=motion, direction=ch.direction,
                          background=scene.background.colour, scene=scene))
    return out


def _free_path(name: str, u: np.ndarray) -> np.ndarray:
    """Displacement (F, 2) in px of a 32 px canvas at normalised times `u` in [0, 1]."""
    zero = np.zeros_like(u)
    x, y = {
        "stop-go": (np.interp(u, [0.0, 0.4, 0.6, 1.0], [0.0, 8.0, 8.0, 16.0]), zero),  # across, a pause, on
        "l-turn": (12.0 * np.minimum(2 * u, 1.0), 12.0 * np.maximum(2 * u - 1.0, 0.0)),  # across, then down
        "arc": (8.0 * (1.0 - np.cos(np.pi * u)), -8.0 * np.sin(np.pi * u)),  # half a circle, over the top
        "s-curve": (16.0 * u, -5.0 * np.sin(2 * np.pi * u)),  # across, one slow wave
        "speed-up": (16.0 * u * u, zero),  # from rest, faster and faster
    }[name]
    return np.stack([x, y], axis=1)


#: Sprite paths that no caption names (`free_path_sources`): the case motion transfer is for,
#: where words can only approximate the motion. The sprite world's captions name 8 straight
#: directions at one speed range, bounce, zigzag and circle; these turn, curve once, pause or
#: accelerate.
FREE_PATHS: tuple[str, ...] = ("l-turn", "arc", "s-curve", "stop-go", "speed-up")


def free_path_sources(num_frames: int, height: int, width: int, seed: int = 0,
                      paths: Sequence[str] = FREE_PATHS, shapes: Sequence[str] | None = None) -> list[Source]:
    """One sprite clip per free path (`FREE_PATHS`): random shape / colour / background and
    mirror image, the path centred on the canvas, deterministic. `motion` is the class the
    analyser reads from the clip, which is what the text-only baseline then asks for (as for
    real clips): the nearest thing the captions can say."""
    from dataclasses import replace

    from motionq.spriteworld import SHAPES, motion_details, render_scene, sample_scene

    pool = tuple(shapes or SHAPES)
    scale = min(height, width) / 32.0
    u = np.linspace(0.0, 1.0, num_frames)
    out = []
    for i, name in enumerate(paths):
        rng = np.random.default_rng([int(seed), 13, i])
        cfg = _one_sprite_config(rng, pool, "stay", num_frames, height, width)
        off = _free_path(name, u) * scale
        if rng.random() < 0.5:
            off[:, 0] = -off[:, 0]  # mirror image: half the paths go left
        scene = sample_scene(rng, cfg)
        centre = np.array([width / 2.0, height / 2.0]) - (off.min(axis=0) + off.max(axis=0)) / 2.0
        ch = replace(scene.characters[0], start=(float(centre[0]), float(centre[1])),
                     path=tuple((float(a), float(b)) for a, b in off))
        scene = replace(scene, characters=(ch,))
        frames = render_scene(scene)
        motion, direction, _ = motion_details(read_shot(frames).centroids, float(min(height, width)))
        out.append(Source(name=f"path-{name}", kind="path", frames=frames, identity=ch.identity, motion=motion,
                          direction=direction, background=scene.background.colour, scene=scene,
                          stated_motion=name))
    return out


#: ffmpeg-made clips: name -> (lavfi input(s), filter, motion class of the content, direction).
#: 64x64, 8 fps, 16 frames; motion classes are those of the content on screen (a window moving
#: right shows content moving left).
_FFMPEG_CLIPS: dict[str, tuple[list[str], str, str, str | None]] = {
    # A still Game-of-Life board (8 px cells) seen through a window moving down-right.
    "life-diagonal": (["-f", "lavfi", "-i", "life=size=24x24:rate=8:random_seed=3:ratio=0.35:mold=0:"
                       "life_color=0xe0c080:death_color=0x303040"],
                      "trim=end_frame=1,loop=loop=15:size=1:start=0,setpts=N/8/TB,"
                      "scale=192:192:flags=neighbor,crop=64:64:x='40+3*n':y='40+3*n'", "up-left", None),
    # A fixed-scale mandelbrot view, the window moving down.
    "mandelbrot-up": (["-f", "lavfi", "-i", "mandelbrot=size=64x192:rate=8:start_scale=1.5:end_scale=1.5"],
                      "crop=64:64:x=0:y='40+3*n'", "up", None),
    # A textured box (testsrc2) sliding diagonally over a plain backdrop.
    "box-down-right": (["-f", "lavfi", "-i", "color=c=0x2a2a34:size=64x64:rate=8",
                        "-f", "lavfi", "-i", "testsrc2=size=20x20:rate=8"],
                       "[0][1]overlay=x='6+2.5*n':y='6+2.5*n':eval=frame", "down-right", None),
}
#: Sprite-world background word for each clip's target prompts (the closest in tone).
_FFMPEG_BACKGROUNDS = {"life-diagonal": "brown", "mandelbrot-up": "black", "box-down-right": "grey"}


def make_ffmpeg_clips(folder: str | Path, overwrite: bool = False) -> dict[str, Path]:
    """Write the ffmpeg test-source clips into `folder` (once) with the bundled ffmpeg."""
    import imageio_ffmpeg

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    exe = imageio_ffmpeg.get_ffmpeg_exe()
    out = {}
    for name, (inputs, filt, _, _) in _FFMPEG_CLIPS.items():
        path = folder / f"{name}.mp4"
        if overwrite or not path.exists():
            tmp = folder / f".{name}.part.mp4"
            flag = "-filter_complex" if filt.startswith("[") else "-vf"
            cmd = [exe, "-y", "-loglevel", "error", *inputs, flag, filt, "-frames:v", "16",
                   "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "18", "-an", str(tmp)]
            subprocess.run(cmd, check=True, capture_output=True)
            tmp.replace(path)
        out[name] = path
    return out


def real_sources(num_frames: int, height: int, width: int, clip_dir: str | Path | None = None) -> list[Source]:
    """examples/clips/{bounce,pan}.mp4 and the ffmpeg-made clips, fitted to the model."""
    from motionq.paths import cache_dir
    from motionq.spriteworld import motion_details
    from motionq.video import read_video, resample_clip

    clip_dir = Path(clip_dir) if clip_dir is not None else cache_dir() / "eval-clips"
    made = make_ffmpeg_clips(clip_dir)
    table: list[tuple[str, Path, str, str | None, str]] = [
        ("bounce.mp4", EXAMPLE_CLIPS / "bounce.mp4", "bounce", "right", "grey"),
        ("pan.mp4", EXAMPLE_CLIPS / "pan.mp4", "left", None, "black"),  # camera pans right
    ]
    for name, path in made.items():
        _, _, motion, direction = _FFMPEG_CLIPS[name]
        table.append((name, path, motion, direction, _FFMPEG_BACKGROUNDS[name]))
    out = []
    for name, path, stated, _, bg in table:
        if not path.exists():
            continue  # a checkout without the example clips: use the rest
        frames, fps = read_video(path)
        fitted = resample_clip(frames, fps, num_frames, height, width)
        # The motion class is read from the fitted clip's tracked path, the motion the model is
        # actually given: fitting bounce.mp4's two hops into 9 frames makes a 4-frame period,
        # which the sprite world calls a zigzag. `stated` is what the clip was made to show.
        motion, direction, _ = motion_details(tracked_path(fitted), float(min(height, width)))
        out.append(Source(name=name, kind="real", frames=fitted, identity=(None, None), motion=motion,
                          direction=direction, background=bg, stated_motion=stated))
    return out


def transfer_pairs(sources: Sequence[Source], seed: int = 0, shapes: Sequence[str] | None = None) -> list[Pair]:
    """Same-shape and different-shape targets for sprite sources, two different random ones for
    real sources; target colours always differ from the source's (so colour leakage is defined).
    Target shapes come from `shapes` (default: all of the world's)."""
    from motionq.spriteworld import DEFAULT_COLOURS, SHAPES

    pool = tuple(shapes or SHAPES)
    pairs = []
    for i, src in enumerate(sources):
        rng = np.random.default_rng([int(seed), 11, i])
        shape, colour = src.identity
        other_colours = [c for c in DEFAULT_COLOURS if c != colour]
        if src.kind in ("sprite", "path"):
            c1, c2 = rng.choice(len(other_colours), size=2, replace=False)
            other_shapes = [s for s in pool if s != shape]
            s2 = other_shapes[int(rng.integers(len(other_shapes)))]
            free = src.kind == "path"  # one group, whatever the target: what matters is the path
            pairs.append(Pair(src, (shape, other_colours[int(c1)]), "free-path" if free else "same-shape"))
            pairs.append(Pair(src, (s2, other_colours[int(c2)]), "free-path" if free else "different-shape"))
        else:
            targets: list[tuple[str, str]] = []
            while len(targets) < 2:  # two different targets: a repeat would count one pair twice
                t = (pool[int(rng.integers(len(pool)))], other_colours[int(rng.integers(len(other_colours)))])
                if t not in targets:
                    targets.append(t)
            pairs += [Pair(src, t, "real") for t in targets]
    return pairs


def target_prompt(pair: Pair, mode: str = "none") -> str:
    """The target's prompt: identity (+ "stays still" / the source's motion) + background."""
    from motionq.spriteworld import background_phrase, identity_phrase, motion_phrase

    if mode not in PROMPT_MODES:
        raise ValueError(f"prompt mode must be one of {PROMPT_MODES}, got {mode!r}")
    who = identity_phrase(*pair.target)
    verb = {"none": "", "still": motion_phrase("stay"),
            "motion": motion_phrase(pair.source.motion, pair.source.direction)}[mode]
    return " ".join(p for p in (who, verb, background_phrase(pair.source.background)) if p)


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------


def source_path(src: Source) -> np.ndarray | None:
    """The reference's motion path: analyser centroids of a sprite clip, else the cumulative
    displacement of tracked points (`tracked_path`)."""
    if src.kind != "real":
        return read_shot(src.frames).centroids
    return tracked_path(src.frames)


def score_clip(pair: Pair, frames: np.ndarray, path: np.ndarray | None = None,
               source_flow: np.ndarray | None = None) -> dict[str, Any]:
    """Metrics of one generated target against its source (see the module docstring).

    fidelity: `path_correlation` of the source's path (`source_path`; pass it as `path` to save
    recomputing; likewise the source's `mean_flow_path` as `source_flow`) with the target
    character's analyser centroids; targets are sprite-world
    generations, so their path is read exactly whatever the source. track_fidelity /
    flow_fidelity measure both clips the same way (tracked points / mean flow) and need no
    analyser.
    """
    src = pair.source
    r = read_shot(frames)
    if path is None:
        path = source_path(src)
    leak = identity_leakage(src.identity, pair.target, r.identity)
    canvas = float(min(frames.shape[1:3]))
    return {
        "found_identity": list(r.identity) if r.identity else None,
        "found_motion": r.motion,
        "fidelity": _f(path_correlation(path, r.centroids)),
        # Speed- and position-aware complements of `fidelity` (lower is better): what a clip
        # can pin down and words cannot. Real clips' paths are displacements, so no position.
        "displacement_error": _f(path_error(path, r.centroids, canvas)),
        "position_error": _f(path_error(path, r.centroids, canvas, from_start=False)) if src.kind != "real" else None,
        "track_fidelity": _f(track_fidelity(src.frames, frames)),
        "flow_fidelity": _f(flow_path_fidelity(
            mean_flow_path(src.frames) if source_flow is None else source_flow, mean_flow_path(frames))),
        "motion_match": float(r.motion == src.motion),
        "identity_kept": float(r.identity is not None and tuple(r.identity) == tuple(pair.target)),
        "leak_shape": _b(leak["shape"]),
        "leak_colour": _b(leak["colour"]),
        "leak_any": _b(leak["any"]),
    }


def _f(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 6)


def _b(x: bool | None) -> float | None:
    return None if x is None else float(x)


SUMMARY_METRICS = {
    "fidelity": "fidelity", "track_fidelity": "track_fidelity", "flow_fidelity": "flow_fidelity",
    "displacement_error": "displacement_error", "position_error": "position_error",
    "motion_match": "motion_match", "identity_kept": "identity_kept",
    "leakage": "leak_any", "leak_colour": "leak_colour", "leak_shape": "leak_shape",
}


def _summ(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {name: mean_ci([r.get(key) for r in rows]).to_dict() for name, key in SUMMARY_METRICS.items()}


def summarise(records: Sequence[Mapping[str, Any]], strengths: Sequence[float]) -> dict[str, Any]:
    """Per pair type: metrics by strength and for the text-only baseline; timings."""
    types = list(dict.fromkeys(r["pair_type"] for r in records))
    by_strength: dict[str, dict[str, Any]] = {}
    baseline: dict[str, Any] = {}
    for t in types:
        rows = [r for r in records if r["pair_type"] == t]
        by_strength[t] = {f"{s:g}": _summ([r for r in rows if r["mode"] == "transfer" and r["strength"] == s])
                          for s in strengths}
        baseline[t] = _summ([r for r in rows if r["mode"] == "text"])
    timing = {}
    for s in strengths:
        secs = [r["seconds"] for r in records if r["mode"] == "transfer" and r["strength"] == s]
        if secs:
            timing[f"{s:g}"] = round(float(np.median(secs)), 4)
    text_secs = [r["seconds"] for r in records if r["mode"] == "text"]
    return {"by_strength": by_strength, "text_baseline": baseline, "median_seconds": timing,
            "median_seconds_text": round(float(np.median(text_secs)), 4) if text_secs else None,
            "paired_vs_text": paired_vs_text(records, strengths)}


#: Source motions whose path a caption does not pin down: it names the class, not the phase,
#: amplitude or turns. Every other class is a straight path (or none), which the text alone
#: already reproduces up to speed and position, the two things path correlation ignores.
CURVED_MOTIONS: frozenset[str] = frozenset({"bounce", "zigzag", "circle"})


def path_kind(record: Mapping[str, Any]) -> str:
    """"curved" or "straight" by the source's motion class, with "-real" for non-sprite clips;
    "free" for the free-path sources (`FREE_PATHS`)."""
    if record.get("source_kind") == "path":
        return "free"
    kind = "curved" if record.get("source_motion") in CURVED_MOTIONS else "straight"
    return kind + ("-real" if record.get("source_kind") == "real" else "")


#: Record metrics where lower is better (`paired_vs_text` turns them round).
ERROR_METRICS: frozenset[str] = frozenset({"displacement_error", "position_error"})


def paired_vs_text(records: Sequence[Mapping[str, Any]], strengths: Sequence[float],
                   group: Callable[[Mapping[str, Any]], str] | None = None,
                   metric: str = "fidelity") -> dict[str, Any]:
    """Per group (default: pair type; e.g. `path_kind`) and strength: what the clip gains over
    the text-only baseline on the same (pair, seed), with a bootstrap CI and the number of clear
    wins and losses (|diff| > 0.01). The gain is transfer minus text for `fidelity` and text
    minus transfer for an error metric (`ERROR_METRICS`), so positive always favours the clip.
    Pairing removes the spread between pairs, which dominates the unpaired intervals."""
    group = group or (lambda r: r["pair_type"])
    sign = -1.0 if metric in ERROR_METRICS else 1.0
    text = {(r["pair"], r["replica"]): r.get(metric) for r in records if r["mode"] == "text"}
    out: dict[str, Any] = {}
    for t in dict.fromkeys(group(r) for r in records):
        per: dict[str, Any] = {}
        for s in strengths:
            diffs = []
            for r in records:
                base = text.get((r["pair"], r["replica"]))
                if (group(r) == t and r["mode"] == "transfer" and r["strength"] == s
                        and r.get(metric) is not None and base is not None):
                    diffs.append(sign * (float(r[metric]) - float(base)))
            per[f"{s:g}"] = paired_gain(diffs)
        out[t] = per
    return out


def pick_transfer_examples(records: Sequence[Mapping[str, Any]], strength: float,
                           n: int = 2) -> dict[str, list[tuple[str, int]]]:
    """The clips worth looking at: the `n` (pair, replica) whose fidelity with the clip at
    `strength` gained most over the text-only baseline of the same pair and seed ("win") and
    the `n` that lost most ("failure"), one clip per pair, clear gains / losses only."""
    text = {(r["pair"], r["replica"]): r.get("fidelity") for r in records if r["mode"] == "text"}
    gains = []
    for r in records:
        base = text.get((r["pair"], r["replica"]))
        if r["mode"] == "transfer" and r["strength"] == strength and r.get("fidelity") is not None \
                and base is not None:
            gains.append((float(r["fidelity"]) - float(base), r["pair"], r["replica"]))

    def first(ordered, keep) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        for gain, pair, replica in ordered:
            if keep(gain) and pair not in {p for p, _ in out}:
                out.append((pair, replica))
            if len(out) == n:
                break
        return out

    return {"win": first(sorted(gains, key=lambda g: -g[0]), lambda g: g > 0.01),
            "failure": first(sorted(gains, key=lambda g: g[0]), lambda g: g < -0.01)}


def win_failure_sheets(records: Sequence[Mapping[str, Any]], pairs: Mapping[str, Pair],
                       frames: Mapping[tuple[str, int, str], np.ndarray], strength: float,
                       images_dir: str | Path) -> list[str]:
    """transfer_win.png / transfer_failure.png (`pick_transfer_examples`): per clip its source,
    the target with the clip at `strength` and at 1.0, and the text-only baseline, labelled with
    what the analyser found. Returns the paths written."""
    from motionq.evaluation.plots import group_contact_sheet

    by_key = {(r["pair"], r["replica"], "text" if r["mode"] == "text" else f"{r['strength']:g}"): r
              for r in records}
    out = []
    for label, picked in pick_transfer_examples(records, strength).items():
        rows = []
        for name, replica in picked:
            pair = pairs[name]
            rows.append((f"source {name}", pair.source.frames, f"{pair.source.motion} ({pair.pair_type})"))
            for tag in (f"{strength:g}", "1", "text"):
                rec = by_key.get((name, replica, tag))
                clip = frames.get((name, replica, tag))
                if rec is None or clip is None:
                    continue
                found = rec["found_identity"]
                got = f"{found[1]} {found[0]}, {rec['found_motion']}" if found else "no character"
                fid = "n/a" if rec["fidelity"] is None else f"{rec['fidelity']:.2f}"
                # short labels: a sheet row is nine 48-px frames wide
                rows.append(("text only" if tag == "text" else f"clip at {tag}", clip, f"fidelity {fid}, {got}"))
        if rows:
            out.append(str(group_contact_sheet(rows, Path(images_dir) / f"transfer_{label}.png")))
    return out


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------


def geometry(backbone, num_frames: int | None = None) -> tuple[int, int, int]:
    """(frames, height, width) the evaluation renders at: the backbone's defaults."""
    h, w = backbone.native_size()
    n = int(num_frames or getattr(backbone, "default_frames", 8) or 8)
    return n, int(h), int(w)


def model_shapes(backbone) -> tuple[str, ...]:
    """The sprite shapes a model draws: its training config's (`training.json` next to the
    weights, written by `motionq train --publish`), the built-in model's defaults for
    "animatic", else all of the world's. The built-in model leaves out "cross", which its codec
    cannot carry (docs/model-card.md): asking it for one would measure the codec, not transfer."""
    import json

    from motionq.spriteworld import SHAPES

    folder = getattr(backbone, "path", None)
    if folder is not None and (Path(folder) / "training.json").exists():
        try:
            shapes = json.loads((Path(folder) / "training.json").read_text())["config"]["model"]["shapes"]
            if shapes:
                return tuple(shapes)
        except (ValueError, KeyError, TypeError):
            pass
    if getattr(backbone, "name", "") == "animatic":
        from motionq.backbones.animatic.build import AnimaticConfig

        return tuple(getattr(AnimaticConfig(), "shapes", SHAPES))
    return tuple(SHAPES)


def build_pairs(backbone, settings: TransferSettings, clip_dir: str | Path | None = None) -> list[Pair]:
    """The evaluation's pairs for this backbone's geometry and shapes."""
    n, h, w = geometry(backbone, settings.num_frames)
    shapes = settings.shapes or model_shapes(backbone)
    sources = sprite_sources(n, h, w, settings.bench_seed, settings.sprite_motions, shapes)
    if settings.real:
        sources += real_sources(n, h, w, clip_dir)
    if settings.free_paths:
        # last: a source's targets are drawn from its index, so the other pairs stay as they were
        sources += free_path_sources(n, h, w, settings.bench_seed, shapes=shapes)
    pairs = transfer_pairs(sources, settings.bench_seed, shapes)
    if settings.max_pairs is not None:
        # keep the pair types mixed in a prefix: interleave sprite and real pairs
        sprite = [p for p in pairs if p.pair_type != "real"]
        real = [p for p in pairs if p.pair_type == "real"]
        mixed = [p for pr in zip(sprite, real) for p in pr] + sprite[len(real):] + real[len(sprite):]
        pairs = mixed[: settings.max_pairs]
    return pairs


def run_transfer(
    backbone,
    settings: TransferSettings,
    *,
    progress: EvalProgress | None = None,
    clip_dir: str | Path | None = None,
    images_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Generate and score every (pair, strength, replica) and the text baselines.

    images_dir: where to draw a contact sheet of one example pair per pair type
    (transfer_examples.png); None draws nothing.
    """
    from motionq.evaluation.multishot import _machine, _safe_fingerprint

    n, h, w = geometry(backbone, settings.num_frames)
    pairs = build_pairs(backbone, settings, clip_dir)
    src_paths = {p.source.name: source_path(p.source) for p in pairs}
    src_flows = {p.source.name: mean_flow_path(p.source.frames) for p in pairs}
    total = len(pairs) * settings.seeds * (len(settings.strengths) + 1)
    done = 0
    records: list[dict[str, Any]] = []
    examples: dict[str, list[tuple[str, np.ndarray, str]]] = {}
    common = dict(num_frames=n, height=h, width=w, steps=settings.steps, guidance=settings.guidance)
    # the measured strength nearest to the operating one (quick runs may skip it)
    near = min(settings.strengths, key=lambda s: abs(s - settings.operating_strength))
    # clips the win / failure sheets may show: the operating strength, full strength, text
    sheet_frames: dict[tuple[str, int, str], np.ndarray] = {}
    # one untimed generation: first calls pay one-off costs
    backbone.generate("a red square moves left", seed=0, **common)
    t_start = time.perf_counter()
    for pair in pairs:
        prompt = target_prompt(pair, settings.prompt_mode)
        text_prompt = target_prompt(pair, "motion")
        keep = pair.pair_type not in examples
        if keep:
            examples[pair.pair_type] = [(f"source {pair.source.name}", pair.source.frames,
                                         f"{pair.source.motion} ({pair.pair_type})")]
        for replica in range(settings.seeds):
            # bench seed 0 keeps the published runs' seeds; another draws held-out ones
            seed = 1000 * replica + 17 + 1_000_003 * settings.bench_seed
            runs: list[tuple[str, float | None, str]] = [("transfer", s, prompt) for s in settings.strengths]
            runs.append(("text", None, text_prompt))
            for mode, strength, p in runs:
                if progress:
                    progress(done, total, f"{pair.name} {mode} {strength if strength is not None else ''}")
                t0 = time.perf_counter()
                if mode == "transfer":
                    frames = backbone.transfer(pair.source.frames, p, strength=float(strength), seed=seed, **common)
                else:
                    frames = backbone.generate(p, seed=seed, **common)
                seconds = time.perf_counter() - t0
                rec = {"pair": pair.name, "source": pair.source.name, "source_kind": pair.source.kind,
                       "pair_type": pair.pair_type, "source_identity": list(pair.source.identity),
                       "source_motion": pair.source.motion, "target_identity": list(pair.target),
                       "prompt": p, "mode": mode, "strength": strength, "replica": replica, "seed": seed,
                       "seconds": round(seconds, 4),
                       **score_clip(pair, frames, src_paths[pair.source.name], src_flows[pair.source.name])}
                records.append(rec)
                done += 1
                if images_dir is not None and (mode == "text" or strength in (near, 1.0)):
                    sheet_frames[(pair.name, replica, "text" if mode == "text" else f"{strength:g}")] = frames
                if keep and replica == 0 and (mode == "text" or (strength is not None and round(strength * 10) % 2 == 0)):
                    tag = "text" if mode == "text" else f"s={strength:g}"
                    found = rec["found_identity"]
                    examples[pair.pair_type].append(
                        (f"{tag}", frames, f"{p} | got {found[1] + ' ' + found[0] if found else 'none'}, "
                                           f"{rec['found_motion']}, fid {rec['fidelity']}"))
    if progress:
        progress(done, total, "done")
    images = []
    if images_dir is not None and examples:
        from motionq.evaluation.plots import group_contact_sheet

        rows = [row for rs in examples.values() for row in rs]
        images.append(str(group_contact_sheet(rows, Path(images_dir) / "transfer_examples.png")))
    if images_dir is not None and sheet_frames:
        images += win_failure_sheets(records, {p.name: p for p in pairs}, sheet_frames, near, images_dir)
    summary = summarise(records, settings.strengths)
    ms = summary["median_seconds"]
    summary["overhead_strength"] = near
    summary["overhead_vs_plain"] = (round(ms[f"{near:g}"] / ms["0"], 3)
                                    if f"{near:g}" in ms and ms.get("0") else None)
    return {
        "kind": "transfer",
        "model": getattr(backbone, "name", str(backbone)),
        "fingerprint": _safe_fingerprint(backbone),
        "geometry": {"num_frames": n, "height": h, "width": w},
        "settings": settings.to_dict(),
        "shapes": list(settings.shapes or model_shapes(backbone)),
        "machine": _machine(),
        "seconds_total": round(time.perf_counter() - t_start, 2),
        "pairs": [{"name": p.name, "source": p.source.name, "source_kind": p.source.kind, "pair_type": p.pair_type,
                   "source_identity": list(p.source.identity), "source_motion": p.source.motion,
                   "source_stated_motion": p.source.stated_motion or p.source.motion,
                   "target_identity": list(p.target)} for p in pairs],
        "summary": summary,
        "images": images,
        "records": records,
    }
