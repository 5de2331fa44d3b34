"""Metrics of the evaluation: identity consistency, motion adherence, motion diversity, dynamic
degree, motion fidelity against a reference, identity leakage, and confidence intervals.

Every metric is defined on plain arrays so it can be checked on synthetic clips with a known
answer (tests/test_metrics.py). Sprite-world clips are read with the sprite analyser
(`motionq.spriteworld.analyse`), which is exact on ground-truth renders; other clips are measured
with OpenCV optical flow and point tracking.

Definitions (see docs/results.md, "Metrics", for the same text with the reasons):

- **identity consistency** of a group of shots of one character: the share of shot pairs whose
  main character (`main_track`) has the same (shape, colour). A shot where no character is found
  makes all its pairs count as inconsistent. In [0, 1].
- **motion adherence**: the share of shots whose main character's motion class
  (`motion_class` of its centroid path) equals the class the prompt asks for (`parse_caption`).
  A shot without a character, or whose prompt names no motion, does not adhere. In [0, 1].
- **motion diversity** of a group: the mean over shot pairs of the distance between their
  normalised displacement paths ``D(t) = (c(t) - c(0)) / S`` (c: the main character's centroid,
  S: the canvas side, min(H, W)); the distance of two paths is ``mean_t |D_i(t) - D_j(t)|``,
  clipped to 1. Position does not count, only how the character moves: shots that all freeze
  (D = 0) or all move the same way score 0. Shots without a character are left out. In [0, 1].
- **dynamic degree**: the mean optical-flow magnitude (Farneback on each colour channel, combined
  by local gradient energy, `optical_flow`; frames upscaled to at least 128 px), in pixels per
  frame of the clip's own resolution.
- **motion fidelity** to a reference clip: the vector correlation of the two mean-centred paths
  ``r = sum_t <a_t - a_bar, b_t - b_bar> / sqrt(sum_t |a_t - a_bar|^2 sum_t |b_t - b_bar|^2)``,
  in [-1, 1]: 1 for the same trajectory shape (any speed or position), -1 for the reverse, 0 for
  unrelated or no motion. Paths are the analyser's centroids for sprite clips
  (`path_correlation`) or the cumulative median displacement of tracked corner points for any
  clip (`track_fidelity`). `flow_fidelity` is a second, flow-field measure: the
  magnitude-weighted cosine similarity of the per-frame-pair mean flow vectors.
- **identity leakage** (`identity_leakage`): the target shows the source's shape (or colour)
  where the prompt asked for another one.
- **confidence intervals** (`mean_ci`): percentile bootstrap (default) or normal/t, 95%.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Sequence

import numpy as np

__all__ = [
    "Estimate",
    "ShotReading",
    "displacement_path",
    "dynamic_degree",
    "flow_fidelity",
    "flow_path_fidelity",
    "identity_consistency",
    "identity_leakage",
    "main_track",
    "mean_ci",
    "paired_gain",
    "mean_flow_path",
    "motion_adherence",
    "motion_diversity",
    "optical_flow",
    "path_correlation",
    "path_error",
    "prompt_motion",
    "prompt_identity",
    "read_shot",
    "track_fidelity",
    "tracked_path",
    "trajectory_distance",
]

Identity = tuple[str, str]  # (shape, colour)


# ---------------------------------------------------------------------------------------------
# Reading shots with the sprite analyser
# ---------------------------------------------------------------------------------------------


def main_track(analysis):
    """The character of a one-character shot: the most confident track (ties: largest area).

    Generated clips sometimes show a second, spurious blob; the main track is the one the
    metrics read. Returns None when the analyser found no character.
    """
    tracks = list(getattr(analysis, "characters", []) or [])
    if not tracks:
        return None
    return max(tracks, key=lambda t: (float(t.confidence), float(t.area)))


@dataclass(frozen=True)
class ShotReading:
    """What the analyser reads from one shot: its main character's identity, motion class and
    centroid path (None / empty when no character was found), and the canvas side in pixels."""

    identity: Identity | None
    motion: str | None
    direction: str | None
    centroids: np.ndarray | None
    canvas: float
    tracks: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "identity": list(self.identity) if self.identity else None,
            "motion": self.motion,
            "direction": self.direction,
            "tracks": self.tracks,
        }


def read_shot(frames: np.ndarray) -> ShotReading:
    """Analyse a sprite-world clip (uint8 (F, H, W, 3)) and keep what the metrics need."""
    from motionq.spriteworld import analyse

    frames = np.asarray(frames)
    canvas = float(min(frames.shape[1], frames.shape[2]))
    analysis = analyse(frames)
    tr = main_track(analysis)
    if tr is None:
        return ShotReading(None, None, None, None, canvas, 0)
    return ShotReading(tr.identity, tr.motion, tr.direction, np.asarray(tr.centroids, dtype=np.float64),
                       canvas, len(analysis.characters))


def prompt_motion(prompt: str) -> str | None:
    """The motion class a sprite-world prompt asks of its (first) character, or None."""
    from motionq.spriteworld import parse_caption

    chars = parse_caption(prompt)["characters"]
    return chars[0]["motion"] if chars else None


def prompt_identity(prompt: str) -> tuple[str | None, str | None]:
    """(shape, colour) a sprite-world prompt asks of its first character; None where left open."""
    from motionq.spriteworld import parse_caption

    chars = parse_caption(prompt)["characters"]
    if not chars:
        return (None, None)
    return (chars[0]["shape"], chars[0]["colour"])


# ---------------------------------------------------------------------------------------------
# Multi-shot metrics
# ---------------------------------------------------------------------------------------------


def identity_consistency(identities: Sequence[Identity | None]) -> float:
    """Share of shot pairs whose characters have the same (shape, colour).

    A missing character (None) makes each of its pairs inconsistent: losing the character is
    not consistency. NaN for fewer than two shots.
    """
    pairs = list(itertools.combinations(identities, 2))
    if not pairs:
        return float("nan")
    same = sum(1 for a, b in pairs if a is not None and b is not None and tuple(a) == tuple(b))
    return same / len(pairs)


def motion_adherence(asked: Sequence[str | None], found: Sequence[str | None]) -> float:
    """Share of shots whose found motion class equals the asked one (None never matches).

    NaN for no shots.
    """
    if len(asked) != len(found):
        raise ValueError(f"{len(asked)} asked motions but {len(found)} found")
    if not asked:
        return float("nan")
    return sum(1 for a, f in zip(asked, found) if a is not None and a == f) / len(asked)


def _fill_missing(path: np.ndarray) -> np.ndarray | None:
    """Linear interpolation over NaN rows (ends held); None if fewer than 2 rows are known."""
    p = np.asarray(path, dtype=np.float64)
    ok = np.all(np.isfinite(p), axis=1)
    if ok.sum() < 2:
        return None
    if ok.all():
        return p
    t = np.arange(len(p))
    return np.stack([np.interp(t, t[ok], p[ok, k]) for k in range(p.shape[1])], axis=1)


def displacement_path(centroids: np.ndarray | None, canvas: float) -> np.ndarray | None:
    """(F, 2) displacement from the first frame, in canvas sides: ``(c(t) - c(0)) / canvas``.

    NaN rows (frames where the character was not found) are interpolated; None when fewer than
    two frames are known.
    """
    if centroids is None:
        return None
    p = _fill_missing(centroids)
    if p is None:
        return None
    return (p - p[0]) / float(canvas)


def trajectory_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over frames of the Euclidean distance between two displacement paths, clipped to 1.

    Paths of different lengths are compared over their common frames.
    """
    n = min(len(a), len(b))
    if n == 0:
        return float("nan")
    d = float(np.mean(np.linalg.norm(np.asarray(a)[:n] - np.asarray(b)[:n], axis=1)))
    return min(1.0, d)


def motion_diversity(paths: Sequence[np.ndarray | None]) -> float:
    """Mean pairwise `trajectory_distance` of the shots' displacement paths.

    Shots without a path (no character found) are left out; NaN when fewer than two remain.
    Frozen or synchronised shots score 0.
    """
    valid = [p for p in paths if p is not None]
    pairs = list(itertools.combinations(valid, 2))
    if not pairs:
        return float("nan")
    return float(np.mean([trajectory_distance(a, b) for a, b in pairs]))


# ---------------------------------------------------------------------------------------------
# Optical flow
# ---------------------------------------------------------------------------------------------


def _channel_planes(frames: np.ndarray, min_side: int) -> tuple[np.ndarray, int]:
    """(F, 3, H', W') uint8 colour planes upscaled by the integer factor that brings the short
    side to >= min_side, and that factor. Flow and tracking run per plane: a grey conversion
    loses isoluminant edges."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames (F, H, W, 3), got {frames.shape}")
    if frames.dtype != np.uint8:
        frames = (np.clip(frames, 0.0, 1.0) * 255).round().astype(np.uint8)
    factor = max(1, int(math.ceil(min_side / max(1, min(frames.shape[1:3])))))
    planes = np.stack([[_upscale(np.ascontiguousarray(fr[..., c]), factor) for c in range(3)]
                       for fr in frames])
    return planes, factor


def _earlier_twin(a3: np.ndarray, b3: np.ndarray, c: int) -> int | None:
    """An earlier channel whose two planes equal channel c's (grey footage: all of them)."""
    return next((j for j in range(c) if np.array_equal(a3[c], a3[j]) and np.array_equal(b3[c], b3[j])), None)


def _upscale(img: np.ndarray, factor: int) -> np.ndarray:
    import cv2

    if factor == 1:
        return img
    h, w = img.shape[:2]
    # Bilinear: nearest-neighbour blocks would give Farneback flat plateaus to track.
    return cv2.resize(img, (w * factor, h * factor), interpolation=cv2.INTER_LINEAR)


def optical_flow(frames: np.ndarray, min_side: int = 128) -> np.ndarray:
    """Dense Farneback flow between consecutive frames: (F-1, H', W', 2) (dx, dy), in pixels of
    the clip's own resolution (the upscaled field's vectors divided by the upscale factor).

    Colour-aware: the flow is computed on each of R, G and B and the three fields are averaged
    per pixel, weighted by each channel's local gradient energy in the two frames. Grey frames
    would miss isoluminant edges: the sprite world's red and blue on its grey background differ
    by 0 and 3 grey levels out of 255, so a moving red sprite on grey had no flow at all. On
    frames whose channels are equal this is exactly the flow of the grey frame.
    """
    import cv2

    chans, factor = _channel_planes(frames, min_side)
    if len(chans) < 2:
        return np.zeros((0,) + chans.shape[2:] + (2,), np.float32)
    # Farneback's own window (below): where a channel has structure, its flow is reliable.
    box = (15, 15)

    def energy(img: np.ndarray) -> np.ndarray:
        gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3)
        return cv2.boxFilter(gx * gx + gy * gy, -1, box)

    flows = []
    for a, b in zip(chans[:-1], chans[1:]):
        per: list[tuple[np.ndarray, np.ndarray]] = []  # (flow, weight) of R, G, B
        for c in range(3):
            twin = _earlier_twin(a, b, c)
            if twin is not None:  # grey footage: one Farneback serves three equal channels
                per.append(per[twin])
                continue
            # pyramid 3 levels, window 15 px of the upscaled frame: sprites move 2-3 px/frame
            # at 32 px, i.e. 8-12 px after a 4x upscale, which this window and pyramid track.
            f = cv2.calcOpticalFlowFarneback(a[c], b[c], None, pyr_scale=0.5, levels=3,
                                             winsize=15, iterations=3, poly_n=5,
                                             poly_sigma=1.2, flags=0)
            per.append((f, energy(a[c]) + energy(b[c])))
        acc = np.zeros(a.shape[1:] + (2,), np.float64)
        wsum = np.zeros(a.shape[1:], np.float64)
        for f, w in per:
            acc += w[..., None] * f
            wsum += w
        # no structure in any channel (flat areas far from every edge): the plain mean
        plain = np.mean([f for f, _ in per], axis=0)
        flow = np.where(wsum[..., None] > 0, acc / np.maximum(wsum, 1e-12)[..., None], plain)
        flows.append(flow / factor)
    return np.stack(flows).astype(np.float32)


def dynamic_degree(frames: np.ndarray, min_side: int = 128, top: float | None = None) -> float:
    """Mean optical-flow magnitude in pixels per frame (clip resolution).

    ``top`` (e.g. 0.05): average only the fastest ``top`` share of pixels of each frame pair
    (the VBench-style reading, less sensitive to how much of the frame the subject covers).
    0.0 for a single frame.
    """
    flow = optical_flow(frames, min_side)
    if len(flow) == 0:
        return 0.0
    mag = np.linalg.norm(flow, axis=-1).reshape(len(flow), -1)
    if top is not None:
        if not 0.0 < top <= 1.0:
            raise ValueError(f"top must be in (0, 1], got {top}")
        k = max(1, int(round(top * mag.shape[1])))
        mag = np.sort(mag, axis=1)[:, -k:]
    return float(mag.mean())


def mean_flow_path(frames: np.ndarray, min_side: int = 128) -> np.ndarray:
    """(F-1, 2) mean flow vector of each consecutive frame pair (pixels of the clip)."""
    flow = optical_flow(frames, min_side)
    return flow.reshape(len(flow), -1, 2).mean(axis=1).astype(np.float64)


def flow_fidelity(source: np.ndarray, target: np.ndarray, min_side: int = 128) -> float:
    """Magnitude-weighted mean cosine similarity of the per-frame-pair mean flow vectors.

    Weights are the source's mean-flow magnitudes (frame pairs where the reference hardly moves
    say little). A target frame pair without motion (mean flow < 0.01 px) contributes 0. In [-1, 1]; NaN when the
    source does not move at all. Clips are compared over their common frame pairs; sizes may
    differ (vectors are in each clip's own pixels, and only directions are compared).
    """
    return flow_path_fidelity(mean_flow_path(source, min_side), mean_flow_path(target, min_side))


def flow_path_fidelity(a: np.ndarray, b: np.ndarray) -> float:
    """`flow_fidelity` of two `mean_flow_path`s (lets a caller reuse a source's path)."""
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    # a mean flow under 0.01 px/frame is numerical noise of a still pair: it has no direction
    wa = np.linalg.norm(a, axis=1)
    wb = np.linalg.norm(b, axis=1)
    wa = np.where(wa > 0.01, wa, 0.0)
    if n == 0 or wa.sum() == 0.0:
        return float("nan")
    cos = np.where(wb > 0.01, (a * b).sum(1) / np.maximum(wa * wb, 1e-12), 0.0)
    return float((wa * cos).sum() / wa.sum())


def tracked_path(frames: np.ndarray, min_side: int = 128, max_points: int = 64) -> np.ndarray:
    """(F, 2) cumulative displacement of the clip's moving content, from tracked points.

    For each consecutive pair: corners (`cv2.goodFeaturesToTrack`) of the first frame are
    tracked into the second (`cv2.calcOpticalFlowPyrLK`), and the step is the median
    displacement of the points tracked both ways (forward-backward error < 1 px) that moved;
    when none moved the step is 0. Corners are re-detected every frame, so the path survives
    points leaving the frame. Pixels of the clip's own resolution; row 0 is (0, 0).

    Points are found and tracked on each distinct colour channel and pooled (grey footage: one
    channel). On grey frames the tracker missed isoluminant edges, and on examples/clips/pan.mp4
    fitted to 9 frames of 32 px (testsrc2 sliding 8.5 px a frame) it locked onto the wrong
    period of the colour bars for three of eight steps, reading a straight pan as a V
    (path correlation 0.80 with the clip's true path; pooled channels: 1.00).
    """
    import cv2

    chans, factor = _channel_planes(frames, min_side)
    steps = [np.zeros(2)]
    lk = dict(winSize=(21, 21), maxLevel=3,
              criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))
    for a3, b3 in zip(chans[:-1], chans[1:]):
        moving = []
        for c in range(3):
            if _earlier_twin(a3, b3, c) is not None:
                continue  # its points are already in
            a, b = a3[c], b3[c]
            pts = cv2.goodFeaturesToTrack(a, maxCorners=max_points, qualityLevel=0.01,
                                          minDistance=max(3, int(2 * factor)), blockSize=7)
            if pts is None or not len(pts):
                continue
            nxt, st, _ = cv2.calcOpticalFlowPyrLK(a, b, pts, None, **lk)
            back, st2, _ = cv2.calcOpticalFlowPyrLK(b, a, nxt, None, **lk)
            ok = (st[:, 0] == 1) & (st2[:, 0] == 1)
            ok &= np.linalg.norm((back - pts)[:, 0], axis=1) < 1.0 * factor
            d = (nxt - pts)[:, 0][ok] / factor
            # Static background corners (texture that does not move) would pull the median to
            # zero for a small moving subject: use the points that moved, if any did.
            moving.append(d[np.linalg.norm(d, axis=1) > 0.25])
        pooled = np.concatenate(moving) if moving else np.zeros((0, 2))
        steps.append(np.median(pooled, axis=0) if len(pooled) else np.zeros(2))
    return np.cumsum(np.stack(steps), axis=0)


def path_correlation(source: np.ndarray | None, target: np.ndarray | None) -> float:
    """Vector correlation of two (F, 2) paths after removing each one's mean position.

    1 = same trajectory shape (any speed, any position), -1 = reversed, 0 = unrelated or a
    target that does not move / was not found (None). NaN when the source does not move or
    has fewer than two known frames. NaN rows are interpolated. Compared over common frames.
    """
    a = _fill_missing(source) if source is not None else None
    if a is None:
        return float("nan")
    b = _fill_missing(target) if target is not None else None
    n = len(a) if b is None else min(len(a), len(b))
    a = a[:n] - a[:n].mean(axis=0)
    sa = float((a * a).sum())
    if sa < 1e-9:
        return float("nan")
    if b is None:
        return 0.0
    b = b[:n] - b[:n].mean(axis=0)
    sb = float((b * b).sum())
    if sb < 1e-9:
        return 0.0
    return float(np.clip((a * b).sum() / math.sqrt(sa * sb), -1.0, 1.0))


def path_error(source: np.ndarray | None, target: np.ndarray | None, canvas: float,
               from_start: bool = True) -> float:
    """Mean distance between two (F, 2) paths over their common frames, in canvas sides,
    clipped to 1 (the complement of `path_correlation`, which ignores speed and position).

    from_start: compare each path's displacement from its own first frame (`trajectory_distance`
    of `displacement_path`s: direction and speed count, the start position does not; the only
    form for clips whose path is a tracked displacement), else the absolute positions. A target
    that was not found (None) scores 1, the worst; NaN when the source has fewer than two known
    frames.
    """
    a = _fill_missing(source) if source is not None else None
    if a is None:
        return float("nan")
    b = _fill_missing(target) if target is not None else None
    if b is None:
        return 1.0
    if from_start:
        a, b = a - a[0], b - b[0]
    return trajectory_distance(a / float(canvas), b / float(canvas))


def track_fidelity(source: np.ndarray, target: np.ndarray, min_side: int = 128) -> float:
    """`path_correlation` of the two clips' `tracked_path`s (works for any footage)."""
    return path_correlation(tracked_path(source, min_side), tracked_path(target, min_side))


# ---------------------------------------------------------------------------------------------
# Identity leakage
# ---------------------------------------------------------------------------------------------


def identity_leakage(
    source: tuple[str | None, str | None],
    asked: tuple[str | None, str | None],
    found: tuple[str, str] | None,
) -> dict[str, bool | None]:
    """Did the target take the source's shape or colour instead of the asked one?

    All arguments are (shape, colour). An attribute's leak is only defined where the source and
    the asked value differ (and both are known): ``shape`` / ``colour`` are True (leaked),
    False, or None (undefined). ``any`` is True if any defined attribute leaked, False if the
    defined ones did not, None if none is defined. A target without a character (found None)
    leaks nothing (its loss of identity is counted by the adherence metrics instead).
    """
    out: dict[str, bool | None] = {}
    for k, name in enumerate(("shape", "colour")):
        s, a = source[k], asked[k]
        if s is None or a is None or s == a:
            out[name] = None
        else:
            out[name] = bool(found is not None and found[k] == s)
    defined = [v for v in out.values() if v is not None]
    out["any"] = None if not defined else any(defined)
    return out


# ---------------------------------------------------------------------------------------------
# Confidence intervals
# ---------------------------------------------------------------------------------------------

# Two-sided 95% Student t critical values by degrees of freedom (no scipy here).
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
        9: 2.262, 10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 25: 2.060, 30: 2.042, 40: 2.021,
        60: 2.000, 120: 1.980}


def _t95(df: int) -> float:
    if df <= 0:
        return float("nan")
    for k in sorted(_T95):
        if df <= k:
            return _T95[k]
    return 1.960


@dataclass(frozen=True)
class Estimate:
    """A mean with its confidence interval: [lo, hi] at `level`, from `n` finite values."""

    mean: float
    lo: float
    hi: float
    n: int
    level: float = 0.95
    method: str = "bootstrap"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("mean", "lo", "hi"):
            d[k] = None if not math.isfinite(d[k]) else round(float(d[k]), 6)
        return d

    def __str__(self) -> str:
        if self.n == 0 or not math.isfinite(self.mean):
            return "n/a"
        return f"{self.mean:.3f} [{self.lo:.3f}, {self.hi:.3f}]"


def mean_ci(
    values: Iterable[float | None],
    level: float = 0.95,
    method: str = "bootstrap",
    n_boot: int = 2000,
    seed: int = 0,
) -> Estimate:
    """Mean and confidence interval of the finite values (None and NaN are dropped).

    method "bootstrap": percentile bootstrap over the values (`n_boot` resamples, seeded, so
    the interval is reproducible); "normal": mean +- t * sd / sqrt(n) (Student t at 95%, z
    otherwise). One value gives a zero-width interval; none gives NaNs and n = 0.
    """
    x = np.asarray([float(v) for v in values if v is not None and math.isfinite(float(v))], np.float64)
    n = len(x)
    if n == 0:
        nan = float("nan")
        return Estimate(nan, nan, nan, 0, level, method)
    m = float(x.mean())
    if n == 1 or np.all(x == x[0]):
        return Estimate(m, m, m, n, level, method)
    alpha = 1.0 - level
    if method == "bootstrap":
        rng = np.random.default_rng(seed)
        means = x[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
        lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
        return Estimate(m, float(lo), float(hi), n, level, method)
    if method == "normal":
        crit = _t95(n - 1) if abs(level - 0.95) < 1e-9 else _z(level)
        half = crit * float(x.std(ddof=1)) / math.sqrt(n)
        return Estimate(m, m - half, m + half, n, level, method)
    raise ValueError(f"unknown CI method {method!r} (bootstrap or normal)")


def paired_gain(diffs: Iterable[float], margin: float = 0.01) -> dict[str, Any]:
    """Paired differences (one per shared pair and seed, positive favouring the first method) as
    `mean_ci`'s estimate plus the clear wins and losses (|diff| > `margin`)."""
    diffs = [float(d) for d in diffs]
    est = mean_ci(diffs).to_dict()
    est.update(wins=sum(d > margin for d in diffs), losses=sum(d < -margin for d in diffs))
    return est


def _z(level: float) -> float:
    """Two-sided normal critical value (inverse erf by bisection; no scipy)."""
    target = level
    lo, hi = 0.0, 10.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if math.erf(mid / math.sqrt(2)) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2
