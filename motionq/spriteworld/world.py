"""Procedural sprite world: scene sampling and rendering.

A scene is one or two coloured shapes ("characters") moving over a plain, muted background.
Identity is discrete (shape, colour); motion is one of a small set of classes. Everything is
a pure function of a `numpy.random.Generator`, so a seed fixes a clip exactly.

Coordinates: pixel ``i`` covers ``[i, i + 1)``; positions are floats ``(x, y)`` with ``y``
pointing down (image convention). A character's position is the centre of its ``size x size``
bounding box; "up" on screen is negative ``y``.

Rendering is tuned for the trainer, which calls `sample_batch` every step on one CPU thread:
anti-aliased shapes come from a cache of 4x-supersampled coverage patches keyed by
(shape, size, quarter-pixel offset), so drawing a sprite is one small alpha blend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

# --------------------------------------------------------------------------------------------
# Vocabulary of the world
# --------------------------------------------------------------------------------------------

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "cross")

# Saturated sprite colours, pairwise >= ~88 apart in RGB and >= ~130 from every background, so
# that colour naming stays exact under blur and noise.
COLOUR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (40, 90, 250),
    "yellow": (245, 225, 40),
    "purple": (165, 60, 230),
    "orange": (250, 140, 20),
    "white": (245, 245, 245),
    "cyan": (40, 225, 235),
}
COLOURS: tuple[str, ...] = tuple(COLOUR_RGB)
DEFAULT_COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow", "purple", "orange")

# Muted/dark backgrounds, pairwise >= ~60 apart. "forest" (dark green) is one word on purpose:
# a background called "dark green" would reuse the sprite colour word "green" in captions.
BACKGROUND_RGB: dict[str, tuple[int, int, int]] = {
    "black": (14, 14, 18),
    "grey": (96, 96, 100),
    "navy": (18, 28, 82),
    "brown": (92, 58, 34),
    "forest": (24, 72, 40),
}
BACKGROUNDS: tuple[str, ...] = tuple(BACKGROUND_RGB)

MOTIONS: tuple[str, ...] = (
    "left", "right", "up", "down", "up-left", "up-right", "down-left", "down-right",
    "circle", "bounce", "zigzag", "stay",
)
_S = 1.0 / math.sqrt(2.0)
# Unit direction (dx, dy) of each straight-line motion; diagonals keep |v| = speed.
LINEAR_DIRECTIONS: dict[str, tuple[float, float]] = {
    "left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0),
    "up-left": (-_S, -_S), "up-right": (_S, -_S), "down-left": (-_S, _S), "down-right": (_S, _S),
}
# Vertical periods in frames. Different periods (and a flat top for bounce) keep the two
# classes apart in 8 frames: bounce = |sin| hops every 3 frames, zigzag = 2 frames up, 2 down.
BOUNCE_PERIOD = 3
ZIGZAG_PERIOD = 4

GRADIENT_DELTA = 14.0  # +/- grey levels from top row to bottom row of a gradient background
GROUND_LIFT = 45.0  # ground line is this much lighter than the background row under it
DOT_LIFT = 40.0  # texture dots (only drawn when the camera pans)

# Area of each shape as a fraction of size**2, and its area-centroid offset (in units of
# size) from the bounding-box centre; the analyser uses both to invert the renderer.
SHAPE_AREA: dict[str, float] = {
    "circle": math.pi / 4, "square": 1.0, "triangle": 0.5, "diamond": 0.5, "cross": 5.0 / 9.0,
}
SHAPE_CENTROID_OFFSET: dict[str, tuple[float, float]] = {
    "circle": (0.0, 0.0), "square": (0.0, 0.0), "triangle": (0.0, 1.0 / 6.0),
    "diamond": (0.0, 0.0), "cross": (0.0, 0.0),
}

SUPERSAMPLE = 4  # anti-aliasing: 4x4 samples per pixel

# --------------------------------------------------------------------------------------------
# Dataclasses
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Character:
    """One sprite: identity (shape, colour, size) and motion parameters.

    ``start`` is the bounding-box centre at frame 0. ``speed`` is px/frame (tangential speed
    for "circle"). ``phase``: integer frame offset into the bounce/zigzag wave, or the start
    angle in radians for "circle". ``heading``: +1/-1, horizontal direction of bounce/zigzag,
    or clockwise/counter-clockwise on screen for "circle". ``amplitude``: hop
    height (bounce), peak-to-peak height (zigzag) or radius (circle), in px.
    """

    shape: str
    colour: str
    size: float
    motion: str
    speed: float
    start: tuple[float, float]
    phase: float = 0.0
    heading: int = 1
    amplitude: float = 0.0
    #: Explicit displacement (x, y) from ``start`` per frame, used instead of ``motion``'s
    #: formula: evaluation sources whose path no caption names. Never sampled for training.
    path: tuple[tuple[float, float], ...] | None = None

    @property
    def identity(self) -> tuple[str, str]:
        """(shape, colour): what must stay the same for the character to be "the same"."""
        return (self.shape, self.colour)

    @property
    def direction(self) -> str | None:
        """Horizontal direction word of a bounce/zigzag ("left"/"right"), else None."""
        if self.motion in ("bounce", "zigzag"):
            return "left" if self.heading < 0 else "right"
        return None


@dataclass(frozen=True)
class Background:
    """Background: a named muted colour, optional vertical gradient and ground line.

    ``ground_level`` is the ground line's row as a fraction of the height; ``dots`` are texture
    points (fractions of width/height) that make a camera pan visible.
    """

    colour: str
    gradient: bool = False
    ground: bool = False
    ground_level: float = 0.85
    dots: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class Scene:
    """A full clip description; `render_scene` turns it into frames deterministically.

    ``pan`` is the camera velocity in px/frame (x, y): the background texture shifts by
    ``-pan`` per frame; character positions are already in screen coordinates.
    """

    characters: tuple[Character, ...]
    background: Background
    num_frames: int = 8
    height: int = 32
    width: int = 32
    pan: tuple[float, float] = (0.0, 0.0)


@dataclass(frozen=True)
class WorldConfig:
    """Sampling distribution of scenes and captions.

    Pixel quantities (``speed``, ``size``, ``radius``, ``hop``, ``zigzag``, ``min_gap``,
    ``pan_speed``) are given for a 32 px canvas and scaled by ``min(height, width) / 32``.
    Caption knobs: ``p_partial`` share of captions that drop attributes, ``p_empty`` share of
    empty captions (classifier-free guidance), ``p_background`` share that name the
    background, ``p_no_motion`` share that drop the motion phrase, ``p_pan`` share of panning
    scenes whose caption names the pan.
    """

    height: int = 32
    width: int = 32
    num_frames: int = 8
    shapes: tuple[str, ...] = SHAPES
    colours: tuple[str, ...] = DEFAULT_COLOURS
    backgrounds: tuple[str, ...] = BACKGROUNDS
    motions: tuple[str, ...] = MOTIONS
    p_two: float = 0.25
    speed: tuple[float, float] = (2.0, 3.0)
    size: tuple[int, int] = (9, 11)
    radius: tuple[float, float] = (6.0, 8.0)
    hop: tuple[float, float] = (5.0, 8.0)
    zigzag: tuple[float, float] = (4.0, 6.0)
    min_gap: float = 1.5
    distinct_colours: bool = True
    p_gradient: float = 0.5
    p_ground: float = 0.4
    pan: bool = False
    pan_speed: tuple[float, float] = (0.5, 1.5)
    num_dots: int = 8
    p_partial: float = 0.3
    p_empty: float = 0.1
    p_background: float = 0.3
    p_no_motion: float = 0.0
    p_pan: float = 0.5

    @property
    def scale(self) -> float:
        """Pixel scale relative to the reference 32 px canvas."""
        return min(self.height, self.width) / 32.0


@dataclass(frozen=True, eq=False)
class Clip:
    """A rendered clip: uint8 frames (F, H, W, 3), its scene and a caption."""

    frames: np.ndarray
    scene: Scene
    caption: str


# --------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------


def shape_inside(shape: str, u: np.ndarray, v: np.ndarray, size: float) -> np.ndarray:
    """Boolean inside-test of ``shape`` for offsets (u, v) from its bounding-box centre.

    All shapes fit a ``size x size`` box; the triangle points up.
    """
    h = size / 2.0
    if shape == "circle":
        return u * u + v * v <= h * h
    if shape == "square":
        return (np.abs(u) <= h) & (np.abs(v) <= h)
    if shape == "triangle":
        return (v <= h) & (np.abs(u) <= (v + h) * 0.5)
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= h
    if shape == "cross":
        t = size / 6.0
        au, av = np.abs(u), np.abs(v)
        return ((au <= t) & (av <= h)) | ((av <= t) & (au <= h))
    raise ValueError(f"unknown shape {shape!r}")


def patch_radius(size: float) -> int:
    """Half-width in pixels of the square patch that holds a sprite of ``size`` (with margin)."""
    return int(math.ceil(size / 2.0)) + 1


def coverage_patch(shape: str, size: float, fx: float, fy: float,
                   supersample: int = SUPERSAMPLE) -> np.ndarray:
    """Anti-aliased coverage (P, P) float32 of a shape whose centre lies at ``(R + fx, R + fy)``.

    ``R = patch_radius(size)``, ``P = 2R + 1``; ``fx, fy`` in [0, 1) are the sub-pixel offsets.
    Coverage is the mean of ``supersample**2`` inside-tests per pixel.
    """
    r = patch_radius(size)
    p = 2 * r + 1
    ss = supersample
    grid = (np.arange(p * ss, dtype=np.float64) + 0.5) / ss - r
    u = (grid - fx)[None, :]
    v = (grid - fy)[:, None]
    inside = shape_inside(shape, u, v, size).astype(np.float32)
    return inside.reshape(p, ss, p, ss).mean(axis=(1, 3))


_COVERAGE_CACHE: dict[tuple[str, float, int, int], np.ndarray] = {}


def _cached_coverage(shape: str, size: float, qx: int, qy: int) -> np.ndarray:
    """Coverage patch for quarter-pixel offsets (qx/4, qy/4), cached: drawing is a lookup."""
    key = (shape, float(size), qx, qy)
    patch = _COVERAGE_CACHE.get(key)
    if patch is None:
        if len(_COVERAGE_CACHE) > 20000:  # unbounded float sizes: keep memory bounded
            _COVERAGE_CACHE.clear()
        patch = coverage_patch(shape, size, qx / SUPERSAMPLE, qy / SUPERSAMPLE)
        patch = patch[:, :, None].copy()  # trailing axis broadcasts over RGB in the blend
        _COVERAGE_CACHE[key] = patch
    return patch


def _motion_offsets(motion: str, speed: float, phase: float, heading: int,
                    amplitude: float, num_frames: int) -> np.ndarray:
    """Displacement (F, 2) from the frame-0 position for a motion; row 0 is always (0, 0)."""
    t = np.arange(num_frames, dtype=np.float64)
    out = np.zeros((num_frames, 2))
    if motion in LINEAR_DIRECTIONS:
        dx, dy = LINEAR_DIRECTIONS[motion]
        out[:, 0] = dx * speed * t
        out[:, 1] = dy * speed * t
    elif motion == "bounce":
        # |sin| hops: on the ground at multiples of the period, flat top in between.
        wave = np.abs(np.sin(np.pi * (t + phase) / BOUNCE_PERIOD))
        out[:, 0] = heading * speed * t
        out[:, 1] = -amplitude * (wave - wave[0])
    elif motion == "zigzag":
        # Triangle wave 0,1,2,1 (x amplitude/2): vertical direction flips every 2 frames.
        u = np.mod(t + phase, ZIGZAG_PERIOD)
        tri = np.where(u <= ZIGZAG_PERIOD / 2, u, ZIGZAG_PERIOD - u)
        out[:, 0] = heading * speed * t
        out[:, 1] = -(amplitude / 2.0) * (tri - tri[0])
    elif motion == "circle":
        omega = heading * speed / max(amplitude, 1e-6)
        ang = phase + omega * t
        out[:, 0] = amplitude * (np.cos(ang) - math.cos(phase))
        out[:, 1] = amplitude * (np.sin(ang) - math.sin(phase))
    elif motion == "stay":
        pass
    else:
        raise ValueError(f"unknown motion {motion!r}")
    return out


def trajectory(character: Character, num_frames: int) -> np.ndarray:
    """Bounding-box centre (x, y) of ``character`` at frames 0..num_frames-1, shape (F, 2)."""
    if character.path is not None:
        off = np.asarray(character.path, dtype=np.float64).reshape(-1, 2)
        if len(off) < num_frames:
            raise ValueError(f"character path has {len(off)} frames, {num_frames} asked")
        return off[:num_frames] + np.asarray(character.start, dtype=np.float64)[None, :]
    off = _motion_offsets(character.motion, character.speed, character.phase,
                          character.heading, character.amplitude, num_frames)
    return off + np.asarray(character.start, dtype=np.float64)[None, :]


# --------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _lerp(lo_hi: tuple[float, float], u: float, scale: float = 1.0) -> float:
    lo, hi = lo_hi
    return float(lo + (hi - lo) * u) * scale


def _index(u: float, n: int) -> int:
    return min(int(u * n), n - 1)


def _sample_character(rng: np.random.Generator, cfg: WorldConfig,
                      avoid: Character | None = None, avoid_path: np.ndarray | None = None,
                      candidates: int = 1) -> Character | None:
    """One character whose whole trajectory keeps its bounding box inside the canvas.

    With ``avoid`` (and its trajectory ``avoid_path``), the identity differs from it and
    ``candidates`` start positions are drawn at once; the first whose path stays
    ``cfg.min_gap`` px clear of ``avoid`` is used, or None is returned when none is.
    """
    sc = cfg.scale
    # One block of uniforms instead of a generator call per attribute: this runs every
    # training step, and rejected second characters redraw it several times per scene.
    u = rng.random(10).tolist()  # 0-5 attributes, 6 phase, 7 amplitude, 8-9 start
    shapes = cfg.shapes
    shape = shapes[_index(u[0], len(shapes))]
    colours = cfg.colours
    if avoid is not None and cfg.distinct_colours and len(colours) > 1:
        colours = tuple(c for c in colours if c != avoid.colour)
    colour = colours[_index(u[1], len(colours))]
    if avoid is not None and (shape, colour) == avoid.identity and len(shapes) > 1:
        # Identities of two characters must differ: take the next shape.
        shape = shapes[(shapes.index(shape) + 1) % len(shapes)]
    lo, hi = cfg.size
    size = float(max(2, round((lo + _index(u[2], hi - lo + 1)) * sc)))
    motion = cfg.motions[_index(u[3], len(cfg.motions))]
    heading = 1 if u[4] < 0.5 else -1
    phase, amplitude = 0.0, 0.0
    speed = _lerp(cfg.speed, u[5], sc)
    if motion == "bounce":
        phase = float(_index(u[6], BOUNCE_PERIOD))
        amplitude = _lerp(cfg.hop, u[7], sc)
    elif motion == "zigzag":
        phase = float(_index(u[6], ZIGZAG_PERIOD))
        amplitude = _lerp(cfg.zigzag, u[7], sc)
    elif motion == "circle":
        amplitude = _lerp(cfg.radius, u[7], sc)
        phase = 2 * math.pi * u[6]
        # One full revolution per clip, so the path closes and reads as a circle.
        speed = amplitude * 2 * math.pi / cfg.num_frames
    elif motion == "stay":
        speed = 0.0

    # Margin 1/8 px: rendering snaps centres to a quarter-pixel grid.
    half = size / 2.0 + 0.125
    dims = np.array((cfg.width, cfg.height), dtype=np.float64)
    off = _motion_offsets(motion, speed, phase, heading, amplitude, cfg.num_frames)
    ext = off.max(axis=0) - off.min(axis=0)
    room = dims - 2 * half
    if ext[0] > room[0] or ext[1] > room[1]:
        # Too fast/large for this canvas: shrink the motion so the path still fits.
        shrink = float(np.min(np.where(ext > 0, room / np.maximum(ext, 1e-9), 1.0)))
        shrink = max(0.0, min(1.0, shrink) * 0.999)
        speed *= shrink
        amplitude *= shrink
        off = _motion_offsets(motion, speed, phase, heading, amplitude, cfg.num_frames)
    lo_s = half - off.min(axis=0)
    hi_s = np.maximum(dims - half - off.max(axis=0), lo_s)
    if avoid is None:
        start = lo_s + (hi_s - lo_s) * np.array(u[8:10])
    else:
        # Vectorised rejection of start positions: boxes must stay apart in every frame.
        starts = lo_s + (hi_s - lo_s) * rng.random((candidates, 2))
        other = avoid_path if avoid_path is not None else trajectory(avoid, cfg.num_frames)
        d = np.abs(starts[:, None, :] + off[None] - other[None])  # (C, F, 2)
        need = (size + avoid.size) / 2.0 + cfg.min_gap * sc
        ok = ((d[..., 0] >= need) | (d[..., 1] >= need)).all(axis=1)
        hits = np.flatnonzero(ok)
        if hits.size == 0:
            return None
        start = starts[hits[0]]
    return Character(shape=shape, colour=colour, size=size, motion=motion, speed=float(speed),
                     start=(float(start[0]), float(start[1])), phase=phase,
                     heading=heading, amplitude=float(amplitude))


def characters_apart(a: Character, b: Character, num_frames: int, gap: float) -> bool:
    """True if the two bounding boxes stay at least ``gap`` px apart in every frame."""
    d = np.abs(trajectory(a, num_frames) - trajectory(b, num_frames))
    need = (a.size + b.size) / 2.0 + gap
    return bool(np.all((d[:, 0] >= need) | (d[:, 1] >= need)))


def sample_background(rng: np.random.Generator, cfg: WorldConfig) -> Background:
    """A random background; texture dots only when the camera may pan (they show the pan)."""
    colour = _pick(rng, cfg.backgrounds)
    gradient = bool(rng.random() < cfg.p_gradient)
    ground = bool(rng.random() < cfg.p_ground)
    level = float(0.78 + 0.14 * rng.random())
    dots: tuple[tuple[float, float], ...] = ()
    if cfg.pan and cfg.num_dots > 0:
        xy = rng.random((cfg.num_dots, 2))
        dots = tuple((float(x), float(y)) for x, y in xy)
    return Background(colour=colour, gradient=gradient, ground=ground, ground_level=level,
                      dots=dots)


def sample_scene(rng: np.random.Generator, cfg: WorldConfig | None = None) -> Scene:
    """Sample a scene: background, optional horizontal camera pan, 1 or 2 characters.

    Two characters always have different identities (different colours unless
    ``cfg.distinct_colours`` is False) and bounding boxes that never come within
    ``cfg.min_gap`` px of each other, so every clip is unambiguous to the analyser.
    """
    cfg = cfg or WorldConfig()
    background = sample_background(rng, cfg)
    pan = (0.0, 0.0)
    if cfg.pan:
        sign = 1.0 if rng.random() < 0.5 else -1.0
        pan = (sign * _lerp(cfg.pan_speed, rng.random(), cfg.scale), 0.0)
    two = rng.random() < cfg.p_two
    first = _sample_character(rng, cfg)
    assert first is not None
    chars: tuple[Character, ...] = (first,)
    if two:
        # Sprites are large for the canvas, so some first characters leave no room for a
        # second: redraw the second a few times, then the pair, so p_two holds.
        for _ in range(16):
            second = None
            path = trajectory(first, cfg.num_frames)
            for _ in range(8):
                second = _sample_character(rng, cfg, first, path, candidates=32)
                if second is not None:
                    break
            if second is not None:
                chars = (first, second)
                break
            first = _sample_character(rng, cfg)
            assert first is not None
            chars = (first,)
    return Scene(characters=chars, background=background, num_frames=cfg.num_frames,
                 height=cfg.height, width=cfg.width, pan=pan)


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


_ROWS_CACHE: dict[tuple[str, bool, int], np.ndarray] = {}


def touching_pair_scene(seed: int, cfg: WorldConfig | None = None, gap: float = 0.0) -> Scene:
    """A two-character scene the world itself never makes: both characters still, their
    bounding boxes ``gap`` px apart (0: touching), side by side for odd seeds, stacked for even.

    For stress-testing the analyser on what a model draws (sample_scene keeps ``min_gap``).
    """
    cfg = replace(cfg or WorldConfig(), p_two=1.0)
    scene = sample_scene(np.random.default_rng(seed), cfg)
    a, b = scene.characters
    cx, cy = cfg.width / 2.0, cfg.height / 2.0
    side = seed % 2
    start_a = (cx - (a.size + gap) / 2, cy) if side else (cx, cy - (a.size + gap) / 2)
    off = (a.size + b.size) / 2 + gap
    start_b = (start_a[0] + off, start_a[1]) if side else (start_a[0], start_a[1] + off)
    a = replace(a, motion="stay", speed=0.0, start=start_a)
    b = replace(b, motion="stay", speed=0.0, start=start_b)
    return replace(scene, characters=(a, b))


def background_rows(background: Background, height: int) -> np.ndarray:
    """Per-row background colour (H, 3) float32, gradient applied (lighter at the top).

    The returned array is shared (cached); copy it before writing to it.
    """
    key = (background.colour, background.gradient, height)
    rows = _ROWS_CACHE.get(key)
    if rows is None:
        rows = _background_rows(background, height)
        rows.flags.writeable = False
        _ROWS_CACHE[key] = rows
    return rows


def _background_rows(background: Background, height: int) -> np.ndarray:
    base = np.asarray(BACKGROUND_RGB[background.colour], dtype=np.float32)
    rows = np.broadcast_to(base, (height, 3)).copy()
    if background.gradient and height > 1:
        ramp = GRADIENT_DELTA * (1.0 - 2.0 * np.arange(height, dtype=np.float32) / (height - 1))
        rows += ramp[:, None]
    return rows


def _render_background(scene: Scene) -> np.ndarray:
    f, h, w = scene.num_frames, scene.height, scene.width
    bg = scene.background
    rows = background_rows(bg, h)
    buf = np.empty((f, h, w, 3), dtype=np.float32)
    buf[...] = rows[None, :, None, :]
    px, py = scene.pan
    if bg.ground:
        for t in range(f):
            r = int(math.floor(bg.ground_level * h - py * t))
            if 0 <= r < h:
                buf[t, r] = rows[r] + GROUND_LIFT
    if bg.dots:
        # Bilinear splat of texture points shifted by -pan*t, wrapping around the canvas.
        d = np.asarray(bg.dots, dtype=np.float64)
        t = np.arange(f, dtype=np.float64)[:, None]
        x = np.mod(d[None, :, 0] * w - px * t, w)
        y = np.mod(d[None, :, 1] * h - py * t, h)
        x0, y0 = np.floor(x), np.floor(y)
        fx, fy = x - x0, y - y0
        x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
        tt = np.broadcast_to(np.arange(f)[:, None], x0.shape)
        lift = np.zeros((f, h, w), dtype=np.float32)
        for ox, oy, wt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                           (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
            np.add.at(lift, (tt, (y0 + oy) % h, (x0 + ox) % w), wt.astype(np.float32))
        buf += DOT_LIFT * np.minimum(lift, 1.0)[..., None]
    return buf


_SPRITE_CACHE: dict[tuple[str, float, str, int, int], tuple[np.ndarray, np.ndarray]] = {}


def _cached_sprite(shape: str, size: float, colour: str, qx: int,
                   qy: int) -> tuple[np.ndarray, np.ndarray]:
    """(1 - alpha) (P, P, 1) and alpha * colour (P, P, 3): a blend is then two in-place ops."""
    key = (shape, size, colour, qx, qy)
    hit = _SPRITE_CACHE.get(key)
    if hit is None:
        if len(_SPRITE_CACHE) > 20000:
            _SPRITE_CACHE.clear()
        alpha = _cached_coverage(shape, size, qx, qy)
        rgb = np.asarray(COLOUR_RGB[colour], dtype=np.float32)
        hit = (1.0 - alpha, alpha * rgb)
        _SPRITE_CACHE[key] = hit
    return hit


def _draw_character(buf: np.ndarray, ch: Character) -> None:
    """Alpha-blend a character into a float32 (F, H, W, 3) buffer, in place."""
    f, h, w = buf.shape[:3]
    q = np.floor(trajectory(ch, f) * SUPERSAMPLE + 0.5).astype(np.int64).tolist()  # 1/4 px
    r = patch_radius(ch.size)
    p = 2 * r + 1
    for t in range(f):
        ix, fx = divmod(q[t][0], SUPERSAMPLE)
        iy, fy = divmod(q[t][1], SUPERSAMPLE)
        keep, paint = _cached_sprite(ch.shape, ch.size, ch.colour, fx, fy)
        x0, y0 = ix - r, iy - r
        if x0 >= 0 and y0 >= 0 and x0 + p <= w and y0 + p <= h:
            region = buf[t, y0:y0 + p, x0:x0 + p]
            region *= keep
            region += paint
            continue
        xa, ya = max(x0, 0), max(y0, 0)  # patch margin crosses the canvas edge: clip it
        xb, yb = min(x0 + p, w), min(y0 + p, h)
        if xa >= xb or ya >= yb:
            continue
        region = buf[t, ya:yb, xa:xb]
        region *= keep[ya - y0:yb - y0, xa - x0:xb - x0]
        region += paint[ya - y0:yb - y0, xa - x0:xb - x0]


def render_scene(scene: Scene) -> np.ndarray:
    """Render a scene to uint8 frames (F, H, W, 3). Deterministic: no randomness here."""
    buf = _render_background(scene)
    for ch in scene.characters:
        _draw_character(buf, ch)
    buf += 0.5  # round half up on the cast below
    np.clip(buf, 0.0, 255.0, out=buf)
    return buf.astype(np.uint8)


def sample_clip(seed: int, cfg: WorldConfig | None = None,
                detail: Literal["full", "partial", "none", "random"] = "random") -> Clip:
    """Sample, render and caption one clip; a pure function of ``seed`` and ``cfg``."""
    from motionq.spriteworld.captions import caption  # captions imports this module

    cfg = cfg or WorldConfig()
    rng = np.random.default_rng(seed)
    scene = sample_scene(rng, cfg)
    frames = render_scene(scene)
    return Clip(frames=frames, scene=scene, caption=caption(scene, rng, detail, cfg))


def sample_batch(rng: np.random.Generator, cfg: WorldConfig | None = None, n: int = 16,
                 detail: Literal["full", "partial", "none", "random"] = "random",
                 as_float: bool = True) -> tuple[np.ndarray, list[str], list[Scene]]:
    """Sample ``n`` clips for training.

    Returns (frames, captions, scenes): frames (n, F, H, W, 3), float32 in [0, 1] when
    ``as_float`` (exactly the uint8 render divided by 255) else uint8.
    """
    from motionq.spriteworld.captions import caption

    cfg = cfg or WorldConfig()
    shape = (n, cfg.num_frames, cfg.height, cfg.width, 3)
    out = np.empty(shape, dtype=np.float32 if as_float else np.uint8)
    captions: list[str] = []
    scenes: list[Scene] = []
    for i in range(n):
        scene = sample_scene(rng, cfg)
        frames = render_scene(scene)
        if as_float:
            np.multiply(frames, np.float32(1.0 / 255.0), out=out[i])
        else:
            out[i] = frames
        captions.append(caption(scene, rng, detail, cfg))
        scenes.append(scene)
    return out, captions, scenes


def upscale(frames: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscale of (..., H, W, C) frames by an integer factor, for display."""
    if factor <= 1:
        return frames
    return np.repeat(np.repeat(frames, factor, axis=-3), factor, axis=-2)


def colour_rgb(name: str) -> tuple[int, int, int]:
    """RGB of a sprite or background colour name."""
    if name in COLOUR_RGB:
        return COLOUR_RGB[name]
    return BACKGROUND_RGB[name]


__all__ = [
    "BACKGROUNDS", "BACKGROUND_RGB", "BOUNCE_PERIOD", "COLOURS", "COLOUR_RGB",
    "DEFAULT_COLOURS", "LINEAR_DIRECTIONS", "MOTIONS", "SHAPES", "SHAPE_AREA",
    "SHAPE_CENTROID_OFFSET", "ZIGZAG_PERIOD", "Background", "Character", "Clip", "Scene",
    "WorldConfig", "characters_apart", "colour_rgb", "coverage_patch", "patch_radius",
    "render_scene", "sample_background", "sample_batch", "sample_clip", "sample_scene",
    "shape_inside", "trajectory", "upscale",
]
