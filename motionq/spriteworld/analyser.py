"""Read identity (shape, colour) and motion back from sprite-world frames.

Used to score generated clips (prompt adherence, identity consistency, motion) and checked
to be exact on ground-truth renders. Pipeline per clip:

1. Background: per frame and row, the median of pixels that are not sprite-coloured (robust to
   the gradient, ground line and pan texture); its overall median names the background.
2. Colour matting: every pixel is modelled as ``bg + alpha * (palette colour - bg)``. The
   colour with the smallest residual wins; ``alpha >= 0.5`` makes it foreground. Unlike a
   nearest-colour rule this keeps anti-aliased or blurred edges (mixtures with the
   background) from being read as some other palette colour.
   Seams are dropped: where blur mixes two touching sprites' colours into a third (purple by
   orange reads red), the small blob between them is no character (`_drop_seams`).
3. Per colour and frame, connected components; the soft alpha around each component gives an
   area and centroid with sub-pixel accuracy.
4. Shape: each blob is compared (L1 on soft coverage) with every shape template rendered at the
   size implied by the blob's area and at its centroid, sharp and slightly blurred; scores
   are summed over frames.
5. Motion: `motion_class` on the centroid path.
   Bounce and zigzag waves are matched at any half-frame phase (a model draws a hop between
   the world's whole-frame samples) and only on paths without vertical drift; a path that
   turns steadily round a fitted circle more than 0.6 times is a circle even when it does not
   close (a model's circle can run fast or slow).
6. One sprite in two colours is one character: a model can shade a sprite from one palette
   colour to a neighbouring one (yellow-green) or let it drift along the clip, and step 3 then
   finds it twice. Tracks of two neighbouring colours that sit on one spot, or hand over from
   one frame to the next, and whose union fits one sprite better than the parts fit theirs,
   are merged and re-read from the frames; the colour covering more area names it
   (`_merge_split_colours`). Known limit: two sprites of neighbouring colours that overlap by
   more than half their size can read as one (the world never overlaps them).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from motionq.spriteworld.world import (
    BACKGROUND_RGB,
    BOUNCE_PERIOD,
    COLOUR_RGB,
    MOTIONS,
    SHAPE_AREA,
    SHAPE_CENTROID_OFFSET,
    SHAPES,
    ZIGZAG_PERIOD,
    coverage_patch,
    patch_radius,
)

_DIR8 = ("right", "up-right", "up", "up-left", "left", "down-left", "down", "down-right")


@dataclass
class Track:
    """One character found in a clip.

    ``centroids`` (F, 2) are bounding-box centres (x, y) in pixels (the area centroid
    corrected by the shape's known offset), NaN in frames where it was not found. ``area`` is
    the mean soft area in px. ``direction`` is the horizontal direction of a bounce/zigzag.
    ``confidence`` in [0, 1] combines the shape margin and the share of frames found.
    """

    shape: str
    colour: str
    centroids: np.ndarray
    area: float
    motion: str
    confidence: float
    direction: str | None = None
    size: float = 0.0
    shape_scores: dict[str, float] = field(default_factory=dict)
    # Per-frame blobs (area, cx, cy, shape scores, alpha map) or None, used to merge tracks
    # within `analyse`; cleared before it returns (a full-frame map per frame adds up).
    blobs: list | None = field(default=None, repr=False, compare=False)

    @property
    def identity(self) -> tuple[str, str]:
        """(shape, colour)."""
        return (self.shape, self.colour)


@dataclass
class Analysis:
    """Result of `analyse`: background colour name and the characters found."""

    background: str
    characters: list[Track]
    background_rgb: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def identities(self) -> list[tuple[str, str]]:
        """(shape, colour) of every track, in track order."""
        return [t.identity for t in self.characters]

    def find(self, colour: str | None = None, shape: str | None = None) -> Track | None:
        """First track matching the given colour and/or shape, or None."""
        for t in self.characters:
            if (colour is None or t.colour == colour) and (shape is None or t.shape == shape):
                return t
        return None


# --------------------------------------------------------------------------------------------
# Motion
# --------------------------------------------------------------------------------------------


def _fill_nans(p: np.ndarray) -> np.ndarray | None:
    """Linear interpolation over missing frames (edge frames held); None if < 2 frames known."""
    ok = np.all(np.isfinite(p), axis=1)
    if ok.sum() < 2:
        return None
    if ok.all():
        return p.astype(np.float64)
    t = np.arange(len(p))
    return np.stack([np.interp(t, t[ok], p[ok, k]) for k in range(2)], axis=1)


_PHASE_STEP = 0.5


def _wave_patterns() -> list[tuple[str, np.ndarray]]:
    """Unit-peak vertical step patterns (dy per frame) of bounce and zigzag at each phase."""
    t = np.arange(64, dtype=np.float64)
    pats: list[tuple[str, np.ndarray]] = []
    for ph in np.arange(0.0, BOUNCE_PERIOD, _PHASE_STEP):
        y = -np.abs(np.sin(np.pi * (t + ph) / BOUNCE_PERIOD))
        pats.append(("bounce", y))
    for ph in np.arange(0.0, ZIGZAG_PERIOD, _PHASE_STEP):
        u = np.mod(t + ph, ZIGZAG_PERIOD)
        y = -np.where(u <= ZIGZAG_PERIOD / 2, u, ZIGZAG_PERIOD - u) / 2.0
        pats.append(("zigzag", y))
    return pats


_WAVES = _wave_patterns()


def _oscillation(y: np.ndarray) -> tuple[str | None, float, float, float]:
    """Best bounce/zigzag fit of a vertical path: (kind, amplitude px, residual share, vertical
    drift px per frame)."""
    dy = np.diff(y)
    m = len(dy)
    lin = float(np.sum((dy - dy.mean()) ** 2))
    if m < 3 or lin <= 1e-9:
        return None, 0.0, 1.0, 0.0
    best: tuple[str | None, float, float, float] = (None, 0.0, 1.0, 0.0)
    reference = {kind: float(np.ptp(pattern[: m + 1])) for kind, pattern in _WAVES[::-1]}  # phase 0 wins
    for kind, pattern in _WAVES:
        pat = np.diff(pattern[: m + 1])
        # dy ~ a * pat + b (b: vertical drift); least squares.
        x = np.stack([pat, np.ones(m)], axis=1)
        coef, *_ = np.linalg.lstsq(x, dy, rcond=None)
        a = float(coef[0])
        if a <= 0:  # hops go up (and the zigzag phases already cover both signs)
            continue
        res = float(np.sum((x @ coef - dy) ** 2)) / lin
        if res < best[2]:
            # Amplitude in the units of the whole-frame template: an off-phase sample of the
            # wave swings less (a one-frame hop reaches half the flat top's height), so its fit
            # coefficient alone would let a wobble half as tall pass for a hop.
            amp = a * float(np.ptp(pattern[: m + 1])) / max(reference[kind], 1e-9)
            best = (kind, amp, res, float(coef[1]))
    return best


def _turns_round_a_circle(p: np.ndarray) -> float:
    """Angle (radians) a path turns, steadily one way, round the circle fitted to it; 0 if the
    points do not lie on a circle (radius spread over 0.35 of the radius, or the angle
    steps change direction)."""
    x, y = p[:, 0], p[:, 1]
    # Algebraic (Kasa) fit: x^2 + y^2 + D x + E y + F = 0, linear in D, E, F.
    coef, *_ = np.linalg.lstsq(np.stack([x, y, np.ones_like(x)], axis=1), -(x * x + y * y), rcond=None)
    cx, cy = -coef[0] / 2.0, -coef[1] / 2.0
    radius = math.sqrt(max(cx * cx + cy * cy - coef[2], 0.0))
    rad = np.hypot(x - cx, y - cy)
    if radius <= 0.0 or float(np.std(rad)) > 0.35 * radius:
        return 0.0
    steps = np.diff(np.unwrap(np.arctan2(y - cy, x - cx)))
    total = float(steps.sum())
    if np.mean(np.sign(steps) == np.sign(total)) < 0.85:
        return 0.0
    return abs(total)


def motion_details(centroids: np.ndarray, canvas: float = 32.0) -> tuple[str, str | None, float]:
    """Motion class, bounce/zigzag direction and a confidence in [0, 1] from a centroid path.

    ``canvas`` (min of height and width) scales the pixel thresholds from the 32 px reference.
    """
    p = _fill_nans(np.asarray(centroids, dtype=np.float64))
    if p is None:
        return "stay", None, 0.0
    s = canvas / 32.0
    net = p[-1] - p[0]
    spread = float(np.max(np.linalg.norm(p[:, None, :] - p[None, :, :], axis=-1)))
    if spread < 3.0 * s:
        return "stay", None, float(min(1.0, 1.0 - spread / (3.0 * s) + 0.5))
    netlen = float(np.hypot(*net))

    # Circle: the path winds around its own mean and nearly closes.
    r = p - p.mean(axis=0)
    rad = np.hypot(r[:, 0], r[:, 1])
    if rad.min() > 0.3 * rad.mean():
        ang = np.unwrap(np.arctan2(r[:, 1], r[:, 0]))
        wind = abs(float(ang[-1] - ang[0]))
        if wind > 1.2 * math.pi and netlen < 0.6 * spread:
            return "circle", None, float(min(1.0, wind / (1.75 * math.pi)))
    # ... or goes round a fitted centre at another pace: more than one turn does not close
    # where it started, and the mean of such a path is no longer the circle's centre.
    # Any three points lie on a circle: the fit needs the frames the docstring promises.
    known = int(np.isfinite(np.asarray(centroids, dtype=np.float64)).all(axis=1).sum())
    wind = _turns_round_a_circle(p) if known >= 6 else 0.0
    if wind > 1.2 * math.pi:
        return "circle", None, float(min(1.0, wind / (1.75 * math.pi)))

    # Bounce / zigzag: steady horizontal drift with a periodic vertical wave.
    dx = np.diff(p[:, 0])
    if abs(net[0]) >= 4.0 * s and np.mean(np.sign(dx) == np.sign(net[0])) >= 0.7:
        kind, amp, res, drift = _oscillation(p[:, 1])
        # The world's hops and zigzags drift sideways only: a wave on a diagonal is a line.
        sideways = abs(drift) < 0.3 * abs(float(dx.mean()))
        if kind is not None and res < 0.35 and amp >= 1.5 * s and sideways:
            direction = "left" if net[0] < 0 else "right"
            return kind, direction, float(1.0 - res)

    # Straight line: 8 sectors of the net displacement angle (y up on screen).
    ang = math.degrees(math.atan2(-net[1], net[0]))
    sector = int(round(ang / 45.0)) % 8
    off = abs(ang - 45.0 * round(ang / 45.0)) / 22.5  # 0 at sector centre, 1 at its edge
    straight = netlen / max(float(np.sum(np.hypot(*np.diff(p, axis=0).T))), 1e-9)
    return _DIR8[sector], None, float(max(0.0, (1.0 - off) * straight))


def motion_class(centroids: np.ndarray, canvas: float = 32.0) -> str:
    """Motion class name (one of `MOTIONS`) of a (F, 2) centroid path; NaN rows are skipped.

    Rules, in order: "stay" if the path spans < 3 px; "circle" if it winds > 216 degrees around
    its mean and nearly closes, or turns steadily that far round a circle fitted to it;
    "bounce"/"zigzag" if it drifts horizontally, not vertically, while its vertical steps fit
    the bounce (|sin|, period 3) or zigzag (triangle, period 4) wave at some half-frame
    phase; else the nearest of 8 directions of the net displacement. Thresholds scale with
    ``canvas / 32``. Exact on the world's trajectories for 6 or more frames; with fewer, bounce
    and zigzag cannot be told apart reliably.
    """
    return motion_details(centroids, canvas)[0]


assert set(_DIR8) | {"circle", "bounce", "zigzag", "stay"} == set(MOTIONS)

# --------------------------------------------------------------------------------------------
# Shapes
# --------------------------------------------------------------------------------------------

_TEMPLATE_CACHE: dict[tuple[str, float, int, int, bool], np.ndarray] = {}
_SIZE_STEP = 0.25  # template sizes and centres are snapped to quarter pixels, then cached


def _template(shape: str, size: float, qx: int, qy: int, blur: bool) -> np.ndarray:
    key = (shape, size, qx, qy, blur)
    t = _TEMPLATE_CACHE.get(key)
    if t is None:
        if len(_TEMPLATE_CACHE) > 50000:
            _TEMPLATE_CACHE.clear()
        t = coverage_patch(shape, size, qx / 4.0, qy / 4.0)
        if blur:
            t = cv2.GaussianBlur(t, (0, 0), 0.7, borderType=cv2.BORDER_CONSTANT)
        _TEMPLATE_CACHE[key] = t
    return t


def _shape_scores(weights: np.ndarray, pad: int, area: float,
                  cx: float, cy: float) -> dict[str, tuple[float, float]]:
    """L1 mismatch (share of area) of each shape template against a blob's soft mask.

    ``weights`` is the blob's alpha map padded by ``pad`` px; (cx, cy) its area centroid in
    unpadded pixel coordinates. Returns shape -> (score, implied size).
    """
    out: dict[str, tuple[float, float]] = {}
    for shape in SHAPES:
        size = math.sqrt(area / SHAPE_AREA[shape])
        size = max(_SIZE_STEP, round(size / _SIZE_STEP) * _SIZE_STEP)
        ox, oy = SHAPE_CENTROID_OFFSET[shape]
        bx, by = cx - ox * size, cy - oy * size  # bounding-box centre of this hypothesis
        qx, qy = int(math.floor(bx * 4 + 0.5)), int(math.floor(by * 4 + 0.5))
        ix, fx = divmod(qx, 4)
        iy, fy = divmod(qy, 4)
        r = patch_radius(size)
        p = 2 * r + 1
        y0, x0 = iy - r + pad, ix - r + pad
        if y0 < 0 or x0 < 0 or y0 + p > weights.shape[0] or x0 + p > weights.shape[1]:
            out[shape] = (2.0, size)
            continue
        obs = weights[y0:y0 + p, x0:x0 + p]
        outside = max(area - float(obs.sum()), 0.0)  # blob mass the template box misses
        best = 2.0
        for blur in (False, True):
            t = _template(shape, size, fx, fy, blur)
            best = min(best, (float(np.abs(obs - t).sum()) + outside) / max(area, 1e-6))
        out[shape] = (best, size)
    return out


# --------------------------------------------------------------------------------------------
# Analysis
# --------------------------------------------------------------------------------------------


def _masked_row_median(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Median over axis 2 of (F, H, W, 3) ``x`` using only ``valid`` (F, H, W) pixels; NaN if none.

    Sort-based (invalid -> +inf) because np.nanmedian loops in Python on small arrays.
    """
    xs = np.where(valid[..., None], x, np.inf)
    xs.sort(axis=2)
    n = valid.sum(axis=2)  # (F, H)
    lo = np.clip((n - 1) // 2, 0, None)
    hi = np.clip(n // 2, 0, None)
    a = np.take_along_axis(xs, lo[:, :, None, None].repeat(3, axis=3), axis=2)[:, :, 0]
    b = np.take_along_axis(xs, hi[:, :, None, None].repeat(3, axis=3), axis=2)[:, :, 0]
    med = 0.5 * (a + b)
    med[n == 0] = np.nan
    return med


def _estimate_background(x: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Background colour per frame and row (F, H, 3)."""
    # Squared distance to the nearest sprite colour, expanded so it is one matmul.
    xx = np.einsum("...c,...c->...", x, x)
    d2 = xx + ((palette * palette).sum(-1) - 2.0 * (x @ palette.T)).min(-1)
    valid = d2 > 80.0 ** 2
    bg = _masked_row_median(x, valid)
    if np.isnan(bg).any():
        # Rows fully covered by sprites (only in odd generated frames): borrow from other
        # frames, then from the clip median.
        per_row = np.nanmedian(bg, axis=0, keepdims=True)
        bg = np.where(np.isnan(bg), per_row, bg)
        if np.isnan(bg).any():
            glob = np.nanmedian(bg.reshape(-1, 3), axis=0) if np.isfinite(bg).any() else \
                np.median(x.reshape(-1, 3), axis=0)
            bg = np.where(np.isnan(bg), glob, bg)
    return bg


def _to_uint8_float(frames: np.ndarray) -> np.ndarray:
    x = np.asarray(frames)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected frames (F, H, W, 3), got {x.shape}")
    if np.issubdtype(x.dtype, np.floating) and float(np.nanmax(x)) <= 1.0 + 1e-6:
        x = x * 255.0  # float frames in [0, 1]
    return x.astype(np.float32)


def analyse(frames: np.ndarray, colours: tuple[str, ...] | None = None,
            backgrounds: tuple[str, ...] | None = None, max_residual: float = 48.0,
            min_area: float | None = None, min_frames: int | None = None,
            drop_seams: bool = True) -> Analysis:
    """Find the background and every character (shape, colour, path, motion) in a clip.

    ``frames``: (F, H, W, 3) uint8, or float in [0, 1]. ``colours``/``backgrounds`` restrict
    the palettes (default: all of the world's). ``max_residual``: largest RGB distance of a
    pixel from the background-to-colour line for it to count as that colour. ``min_area``
    (px, default 0.4% of the frame) and ``min_frames`` (default a third of the frames) drop
    specks and flickers. ``drop_seams``: drop the blobs that blur makes where two sprites of
    different colours touch (off only to measure what that step changes).
    """
    x = _to_uint8_float(frames)
    f, h, w, _ = x.shape
    names = list(colours or COLOUR_RGB)
    palette = np.asarray([COLOUR_RGB[c] for c in names], dtype=np.float32)  # (K, 3)
    bg_names = list(backgrounds or BACKGROUND_RGB)
    bg_pal = np.asarray([BACKGROUND_RGB[c] for c in bg_names], dtype=np.float32)
    min_area = float(min_area if min_area is not None else max(3.0, 0.004 * h * w))
    min_frames = int(min_frames if min_frames is not None else max(1, math.ceil(f / 3)))

    bg = _estimate_background(x, palette)  # (F, H, 3)
    bg_rgb = np.median(bg.reshape(-1, 3), axis=0)
    bg_name = bg_names[int(np.argmin(((bg_pal - bg_rgb) ** 2).sum(-1)))]

    # Matting against each palette colour: alpha along the bg->colour line and the distance
    # off that line. Shapes: d (F,H,W,3), e (F,H,K,3).
    bg = bg.astype(np.float32)
    d = x - bg[:, :, None, :]
    e = palette[None, None, :, :] - bg[:, :, None, :]
    ee = np.maximum(np.einsum("fhkc,fhkc->fhk", e, e), 1.0)[:, :, None, :]  # (F,H,1,K)
    de = d @ e.transpose(0, 1, 3, 2)  # (F,H,W,K)
    alpha = np.clip(de / ee, 0.0, 1.0)
    dd = np.einsum("fhwc,fhwc->fhw", d, d)[..., None]
    resid2 = dd + alpha * (alpha * ee - 2.0 * de)  # (F,H,W,K); distance^2 off each line
    best = resid2.argmin(-1)
    a_best = np.take_along_axis(alpha, best[..., None], -1)[..., 0]
    r_best = np.take_along_axis(resid2, best[..., None], -1)[..., 0]
    fg = (a_best >= 0.5) & (r_best < max_residual ** 2)
    if drop_seams:
        fg = _drop_seams(fg, best)

    pad = 2 * patch_radius(max(h, w)) + 2
    kernel = np.ones((5, 5), np.uint8)  # soft mask: component grown by 2 px (AA/blur edges)
    tracks: list[Track] = []
    for k, cname in enumerate(names):
        mask_k = fg & (best == k)
        counts = mask_k.reshape(f, -1).sum(1)
        if int((counts >= min_area).sum()) < min_frames:
            continue
        soft_k = np.where(best == k, alpha[..., k], 0.0).astype(np.float32)
        blobs: list[list[tuple]] = []  # per frame: `_blob` tuples, largest first
        for t in range(f):
            found = []
            if counts[t] >= min_area:
                m = mask_k[t].astype(np.uint8)
                nlab, lab, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
                for c in range(1, nlab):
                    if stats[c, cv2.CC_STAT_AREA] < min_area:
                        continue
                    region = cv2.dilate((lab == c).astype(np.uint8), kernel) > 0
                    wmap = np.where(region, soft_k[t], 0.0).astype(np.float32)
                    if float(wmap.sum()) < min_area:
                        continue
                    found.append(_blob(wmap, pad))
            found.sort(key=lambda b: -b[0])
            blobs.append(found)
        nonzero = [len(b) for b in blobs if b]
        if len(nonzero) < min_frames:
            continue
        n_tracks = int(np.bincount(nonzero).argmax())  # most common count of blobs
        assigned = _link(blobs, n_tracks)
        for per_frame in assigned:
            tr = _make_track(per_frame, cname, f, min(h, w), min_frames)
            if tr is not None:
                tracks.append(tr)

    def regrow(t: int, colours: set[str], support: np.ndarray, others: np.ndarray) -> tuple | None:
        # Foreground of the merged colours within 2 px of the parts found (``support``): that
        # takes in a part too small to count alone; pixels of other tracks' blobs (``others``)
        # stay theirs, so a sprite the parts touch is not swallowed.
        ks = np.isin(best[t], [names.index(c) for c in colours]) & ~others
        core = fg[t] & ks & (cv2.dilate(support.astype(np.uint8), kernel) > 0)
        region = cv2.dilate(core.astype(np.uint8), kernel) > 0
        wmap = np.where(region & ks, a_best[t], 0.0).astype(np.float32)
        return _blob(wmap, pad) if float(wmap.sum()) >= min_area else None

    tracks = _merge_split_colours(tracks, regrow, min(h, w), min_frames, pad)
    for tr in tracks:
        tr.blobs = None
    return Analysis(background=bg_name, characters=tracks,
                    background_rgb=tuple(float(v) for v in bg_rgb))


def _blob(wmap: np.ndarray, pad: int) -> tuple:
    """(area, cx, cy, shape scores, alpha map) of one blob's soft alpha map (H, W)."""
    area = float(wmap.sum())
    ys, xs = np.nonzero(wmap)
    ws = wmap[ys, xs]
    cx = float((ws * (xs + 0.5)).sum() / area)
    cy = float((ws * (ys + 0.5)).sum() / area)
    h, w = wmap.shape
    padded = np.zeros((h + 2 * pad, w + 2 * pad), np.float32)
    padded[pad:pad + h, pad:pad + w] = wmap
    return (area, cx, cy, _shape_scores(padded, pad, area, cx, cy), wmap)


def _best_score(blob: tuple) -> float:
    return min(v[0] for v in blob[3].values())


def _radius(blob: tuple) -> float:
    return math.sqrt(blob[0] / math.pi)


_OVERLAP = 1.0  # centroid distance / sum of radii below which two blobs may be one


def _neighbour_colours() -> frozenset[frozenset[str]]:
    """Pairs of palette colours a sprite can be shaded between and still read as one of the
    two: every blend on the RGB segment between them is nearest to one of them. (Red and blue
    blend through purple, so a red-blue sprite reads purple, not as two parts; and a small red
    sprite drawn on a green one is two characters, never one.)"""
    rgb = {k: np.asarray(v, np.float64) for k, v in COLOUR_RGB.items()}
    pairs = set()
    for a, b in itertools.combinations(rgb, 2):
        blends = (1 - np.linspace(0, 1, 65))[:, None] * rgb[a] + np.linspace(0, 1, 65)[:, None] * rgb[b]
        nearest = {min(rgb, key=lambda k: float(np.sum((rgb[k] - x) ** 2))) for x in blends}
        if nearest <= {a, b}:
            pairs.add(frozenset((a, b)))
    return frozenset(pairs)


_NEIGHBOURS = _neighbour_colours()


def _one_sprite(a: Track, b: Track, pad: int) -> bool:
    """True if tracks ``a`` and ``b`` (per-frame blobs of two colours) are one sprite.

    One sprite split by colour: where both are seen, the parts are close (centroids nearer
    than the sum of their radii in most frames) and their union fits a shape template better
    than the parts fit theirs (area-weighted). The fit is what tells a split sprite (two
    halves of a triangle: centroids 0.94 radii apart, union 0.25 from a template, parts 0.47)
    from two sprites that touch (each fits, the pair does not; 200 of 200 touching pairs
    through the model's codec stay two, `benchmarks/touching_sprites.py`). Where only one is
    seen at a time, each hand-over lands within the sum of radii.
    """
    both = [t for t, (x, y) in enumerate(zip(a.blobs, b.blobs)) if x is not None and y is not None]
    if both:
        q = [math.hypot(a.blobs[t][1] - b.blobs[t][1], a.blobs[t][2] - b.blobs[t][2])
             / (_radius(a.blobs[t]) + _radius(b.blobs[t])) for t in both]
        if float(np.median(q)) >= _OVERLAP:
            return False
        union_fit = parts_fit = 0.0
        for t in both:
            x, y = a.blobs[t], b.blobs[t]
            union_fit += _best_score(_blob(np.minimum(x[4] + y[4], 1.0), pad))
            parts_fit += (_best_score(x) * x[0] + _best_score(y) * y[0]) / (x[0] + y[0])
        return union_fit < parts_fit
    seen = [(t, x is not None) for t, (x, y) in enumerate(zip(a.blobs, b.blobs))
            if x is not None or y is not None]
    handovers = 0
    for (t0, in_a0), (t1, in_a1) in zip(seen, seen[1:]):
        if in_a0 == in_a1:
            continue
        p = a.blobs[t0] if in_a0 else b.blobs[t0]
        r = a.blobs[t1] if in_a1 else b.blobs[t1]
        if math.hypot(p[1] - r[1], p[2] - r[2]) >= _radius(p) + _radius(r):
            return False
        handovers += 1
    return handovers > 0


def _merge_split_colours(tracks: list[Track], regrow, canvas: int, min_frames: int, pad: int) -> list[Track]:
    """Merge tracks of different colours that are one sprite (step 6 of the module docstring).

    ``regrow(t, colours, support, others)`` returns the blob of frame ``t`` drawn in any of
    ``colours`` around the pixels ``support`` (the parts found) and outside ``others`` (the
    other tracks' blobs), or None: the merged track's blobs are re-read from the frame, so a
    part drawn too small to count on its own (< ``min_area``) is not lost from the centroid.
    Only `_NEIGHBOURS` colours merge.
    """
    colours = [{t.colour} for t in tracks]
    merged = True
    while merged:
        merged = False
        for i, j in itertools.combinations(range(len(tracks)), 2):
            a, b = tracks[i], tracks[j]
            if colours[i] & colours[j] or not any(frozenset((x, y)) in _NEIGHBOURS
                                                  for x in colours[i] for y in colours[j]):
                continue
            if not _one_sprite(a, b, pad):
                continue
            both = colours[i] | colours[j]
            blobs = []
            for t, (x, y) in enumerate(zip(a.blobs, b.blobs)):
                parts = [p for p in (x, y) if p is not None]
                if not parts:
                    blobs.append(None)
                    continue
                others = [tr.blobs[t][4] for k, tr in enumerate(tracks)
                          if k not in (i, j) and tr.blobs is not None and tr.blobs[t] is not None]
                blobs.append(regrow(t, both, sum(p[4] for p in parts) > 0, sum(others) > 0 if others
                                    else np.zeros(parts[0][4].shape, bool)))
            area_a, area_b = (sum(x[0] for x in tr.blobs if x is not None) for tr in (a, b))
            name = a.colour if area_a >= area_b else b.colour
            one = _make_track(blobs, name, len(blobs), canvas, min_frames)
            if one is None:
                continue
            tracks = tracks[:i] + [one] + tracks[i + 1:j] + tracks[j + 1:]
            colours = colours[:i] + [both] + colours[i + 1:j] + colours[j + 1:]
            merged = True
            break
    return tracks


def _drop_seams(fg: np.ndarray, best: np.ndarray) -> np.ndarray:
    """Remove the seams that blur draws between two touching sprites.

    Blur mixes the colours of two sprites that touch: purple next to orange reads red along
    the seam, green next to orange reads yellow. Ground truth keeps sprites apart, but the
    model and any blurred footage do not, and such a seam would count as a third character.
    A seam is a blob within 2 px of blobs of two other colours that are each at least twice
    its area (2 px: a fringe of a fourth mixed colour can sit between seam and sprite); it is
    dropped from the foreground (its pixels belong to neither sprite).
    """
    out = fg.copy()
    ring_kernel = np.ones((5, 5), np.uint8)
    for t in range(fg.shape[0]):
        comps: list[tuple[int, np.ndarray, int]] = []  # (colour index, mask, area)
        for k in np.unique(best[t][fg[t]]):
            m = (fg[t] & (best[t] == k)).astype(np.uint8)
            nlab, lab, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
            comps += [(int(k), lab == c, int(stats[c, cv2.CC_STAT_AREA])) for c in range(1, nlab)]
        if len(comps) < 3:
            continue
        for k, mask, area in comps:
            ring = cv2.dilate(mask.astype(np.uint8), ring_kernel) > 0
            neighbours = {k2 for k2, m2, a2 in comps if k2 != k and a2 >= 2 * area and (ring & m2).any()}
            if len(neighbours) >= 2:
                out[t][mask] = False
    return out


def match_characters(asked: list[dict], tracks: list[Track]) -> list[tuple[dict, Track | None]]:
    """Pair each asked character (``parse_caption``'s dicts) with the found track that agrees
    best on colour, then shape (greedy, each track used once; None when none is left)."""
    left = list(tracks)
    pairs: list[tuple[dict, Track | None]] = []
    for want in asked:
        if not left:
            pairs.append((want, None))
            continue
        best = max(left, key=lambda t: (t.colour == want.get("colour")) * 2 + (t.shape == want.get("shape")))
        left.remove(best)
        pairs.append((want, best))
    return pairs


def _link(blobs: list[list], n: int, miss: float = 20.0) -> list[list]:
    """Split per-frame blob lists into ``n`` tracks (nearest-neighbour with velocity).

    Assignment per frame is the cheapest permutation: distance to each track's predicted
    position, ``miss`` px for dropping a known track, half that for starting one.
    """
    if n <= 1:
        return [[b[0] if b else None for b in blobs]]
    n = min(n, 4)  # brute-force permutations below
    tracks: list[list] = [[] for _ in range(n)]
    last: list[np.ndarray | None] = [None] * n
    vel: list[np.ndarray] = [np.zeros(2) for _ in range(n)]
    for frame_blobs in blobs:
        cand = frame_blobs[:n]
        pos = [np.array([b[1], b[2]]) for b in cand]
        if all(v is None for v in last):
            # First sighting: order left to right for stable track order.
            order = sorted(range(len(cand)), key=lambda i: (pos[i][0], pos[i][1]))
            slots = list(order) + [None] * (n - len(cand))
        else:
            best_cost, slots = float("inf"), [None] * n
            idx = list(range(len(cand))) + [None] * (n - len(cand))
            for perm in set(itertools.permutations(idx, n)):
                cost = 0.0
                for ti, bi in enumerate(perm):
                    if last[ti] is None:
                        cost += 0.0 if bi is None else miss / 2  # start a new track
                    elif bi is None:
                        cost += miss  # lose a known track
                    else:
                        cost += float(np.hypot(*(pos[bi] - (last[ti] + vel[ti]))))
                if cost < best_cost:
                    best_cost, slots = cost, list(perm)
        for ti, bi in enumerate(slots):
            if bi is None:
                tracks[ti].append(None)
                continue
            if last[ti] is not None:
                vel[ti] = pos[bi] - last[ti]
            last[ti] = pos[bi]
            tracks[ti].append(cand[bi])
    return tracks


def _make_track(per_frame: list, colour: str, f: int, canvas: int,
                min_frames: int) -> Track | None:
    seen = [b for b in per_frame if b is not None]
    if len(seen) < min_frames:
        return None
    totals = {s: float(np.mean([b[3][s][0] for b in seen])) for s in SHAPES}
    ranked = sorted(totals, key=totals.__getitem__)
    shape = ranked[0]
    margin = totals[ranked[1]] - totals[shape]
    cents = np.full((f, 2), np.nan)
    sizes = []
    for t, b in enumerate(per_frame):
        if b is None:
            continue
        size = b[3][shape][1]
        ox, oy = SHAPE_CENTROID_OFFSET[shape]
        area_size = math.sqrt(b[0] / SHAPE_AREA[shape])
        cents[t] = (b[1] - ox * area_size, b[2] - oy * area_size)
        sizes.append(size)
    motion, direction, mconf = motion_details(cents, canvas)
    found_share = len(seen) / f
    conf = float(max(0.0, min(1.0, margin / 0.3)) * found_share)
    return Track(shape=shape, colour=colour, centroids=cents,
                 area=float(np.mean([b[0] for b in seen])), motion=motion,
                 confidence=conf, direction=direction, size=float(np.mean(sizes)),
                 shape_scores=totals, blobs=per_frame)


__all__ = ["Analysis", "Track", "analyse", "match_characters", "motion_class", "motion_details"]
