"""Assembly of the film: rendered shots -> one H.264 mp4 with cuts, crossfades and fades.

The edit is planned on the *frame grid* first (:func:`plan_timeline`), and both the film
(:func:`assemble`) and the exports (:mod:`storyboard.export`) follow that one plan, so the
film, the per-shot clips and the OpenTimelineIO timeline agree to the frame.

Timing rules (``ShotClip.transition`` describes the join into the *next* shot; the last
shot's transition is ignored):

* ``"cut"``: the next shot starts when this one ends.
* ``"crossfade"``: the next shot starts ``transition_duration`` before this one ends and
  dissolves in over it, so the film is shorter by that overlap.
* ``"fade"``: this shot fades to black over its last ``transition_duration`` seconds and the
  next fades in from black over its first ``transition_duration`` seconds; no overlap.

Transition lengths are clamped so they always make sense: a crossfade is at most as long as
either shot (and a shot's incoming and outgoing crossfades together fit inside it, so three
shots never overlap), a fade at most as long as the shot it darkens.

Boundaries are rounded to frames from the continuous timeline (not lengths one by one), so
the written film has ``round(planned_duration * fps)`` frames however many shots there are.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from storyboard.atomic import atomic_path

__all__ = [
    "TRANSITIONS",
    "EditSpec",
    "Placement",
    "ProgressCallback",
    "ShotClip",
    "assemble",
    "even_size",
    "plan_timeline",
    "planned_duration",
    "planned_frames",
    "shot_frames",
    "write_mp4",
]

TRANSITIONS = ("cut", "crossfade", "fade")

#: ``progress(frames_written, frames_total)``; called from the writing thread.
ProgressCallback = Callable[[int, int], None]

# x264 settings for every mp4 we write. yuv420p because it is what browsers, QuickTime and
# editors decode; crf 18 keeps the crisp upscaled pixels of the native-size shots clean.
_X264_PARAMS = ["-pix_fmt", "yuv420p", "-crf", "18", "-movflags", "+faststart"]


@dataclass(frozen=True, eq=False)  # eq=False: dataclass __eq__ on ndarrays raises
class ShotClip:
    """One rendered shot, ready to be edited.

    ``frames`` is uint8 ``(F, H, W, 3)`` at the model's native size; ``duration`` is how long
    the shot lasts in the edit (frames are resampled in time to fill it); ``transition`` and
    ``transition_duration`` describe the join into the *next* shot; ``label`` is free text
    (the prompt) for the contact sheet.
    """

    shot_id: str
    frames: np.ndarray
    duration: float
    transition: str = "cut"
    transition_duration: float = 0.0
    label: str = ""

    def __post_init__(self) -> None:
        f = self.frames
        if not isinstance(f, np.ndarray) or f.ndim != 4 or f.shape[-1] != 3 or len(f) == 0:
            shape = getattr(f, "shape", type(f).__name__)
            raise ValueError(f"shot {self.shot_id!r}: frames must be (F, H, W, 3) with F >= 1, got {shape}")
        if f.dtype != np.uint8:
            raise ValueError(f"shot {self.shot_id!r}: frames must be uint8, got {f.dtype}")
        if not (self.duration > 0 and math.isfinite(self.duration)):
            raise ValueError(f"shot {self.shot_id!r}: duration must be > 0, got {self.duration}")
        if self.transition not in TRANSITIONS:
            raise ValueError(
                f"shot {self.shot_id!r}: unknown transition {self.transition!r}; "
                f"expected one of {', '.join(TRANSITIONS)}"
            )
        if not (self.transition_duration >= 0 and math.isfinite(self.transition_duration)):
            raise ValueError(
                f"shot {self.shot_id!r}: transition_duration must be >= 0, got {self.transition_duration}"
            )


@dataclass(frozen=True)
class EditSpec:
    """Film-wide settings: frame rate, output size ``(width, height)`` and title."""

    fps: int
    size: tuple[int, int]
    title: str = ""

    def __post_init__(self) -> None:
        if int(self.fps) != self.fps or self.fps <= 0:
            raise ValueError(f"fps must be a positive integer, got {self.fps}")
        w, h = self.size
        if w <= 0 or h <= 0:
            raise ValueError(f"size must be positive (width, height), got {self.size}")


@dataclass(frozen=True)
class Placement:
    """Where one shot sits in the film, in frames of the film's fps.

    The shot covers film frames ``[start, end)``. ``crossfade_in`` frames at its start overlap
    the previous shot (this shot dissolves in over it); ``crossfade_out`` frames at its end
    overlap the next shot. ``fade_in`` / ``fade_out`` are fades from / to black at the start /
    end of the shot.
    """

    shot_id: str
    start: int
    end: int
    fade_in: int = 0
    fade_out: int = 0
    crossfade_in: int = 0
    crossfade_out: int = 0

    @property
    def frames(self) -> int:
        """Number of frames the shot occupies (its media length)."""
        return self.end - self.start


def even_size(size: tuple[int, int]) -> tuple[int, int]:
    """``(width, height)`` rounded *up* to even numbers, as yuv420p requires."""
    w, h = (int(v) for v in size)
    return w + (w % 2), h + (h % 2)


def _effective_transitions(shots: Sequence[ShotClip]) -> list[tuple[str, float]]:
    """(kind, seconds) of each join ``i -> i+1`` after clamping (see the module docstring)."""
    joins: list[tuple[str, float]] = []
    crossfade_in = 0.0  # seconds of shots[i] already used by the crossfade coming into it
    for a, b in zip(shots, shots[1:]):
        kind, t = a.transition, a.transition_duration
        if kind == "crossfade":
            t = max(0.0, min(t, a.duration - crossfade_in, b.duration))
        elif kind == "fade":
            t = min(t, a.duration, b.duration)
        else:
            t = 0.0
        if t <= 0.0:
            kind, t = "cut", 0.0
        joins.append((kind, t))
        crossfade_in = t if kind == "crossfade" else 0.0
    return joins


def planned_duration(shots: Sequence[ShotClip]) -> float:
    """Length of the film in seconds: the shots' durations minus crossfade overlaps."""
    if not shots:
        return 0.0
    overlap = sum(t for kind, t in _effective_transitions(shots) if kind == "crossfade")
    return float(sum(s.duration for s in shots) - overlap)


def _to_frame(seconds: float, fps: int) -> int:
    # Round half up, with a nudge so 2.3 * 10 = 22.999999999999996 still lands on 23.
    return int(math.floor(seconds * fps + 0.5 + 1e-9))


def planned_frames(shots: Sequence[ShotClip], fps: int) -> int:
    """Number of frames the film will have: ``round(planned_duration(shots) * fps)``."""
    return _to_frame(planned_duration(shots), fps)


def plan_timeline(shots: Sequence[ShotClip], fps: int) -> list[Placement]:
    """Place every shot on the film's frame grid (the single source of edit timing).

    Raises ``ValueError`` for duplicate shot ids or a shot shorter than one frame.
    """
    ids = [s.shot_id for s in shots]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValueError(f"duplicate shot ids: {', '.join(dupes)}")
    joins = _effective_transitions(shots)

    # Continuous start/end times, then rounded boundaries.
    starts_s: list[float] = []
    t = 0.0
    for i, shot in enumerate(shots):
        starts_s.append(t)
        overlap = joins[i][1] if i < len(joins) and joins[i][0] == "crossfade" else 0.0
        t += shot.duration - overlap
    placements: list[Placement] = []
    for i, shot in enumerate(shots):
        start = _to_frame(starts_s[i], fps)
        end = _to_frame(starts_s[i] + shot.duration, fps)
        if end - start < 1:
            raise ValueError(f"shot {shot.shot_id!r} lasts {shot.duration}s, less than one frame at {fps} fps")
        placements.append(Placement(shot.shot_id, start, end))

    # Transition lengths in frames, now that boundaries are fixed.
    out: list[Placement] = []
    for i, p in enumerate(placements):
        fields = {}
        if i > 0:
            kind, secs = joins[i - 1]
            if kind == "crossfade":
                fields["crossfade_in"] = placements[i - 1].end - p.start
            elif kind == "fade":
                fields["fade_in"] = min(_to_frame(secs, fps), p.frames)
        if i < len(joins):
            kind, secs = joins[i]
            if kind == "crossfade":
                fields["crossfade_out"] = p.end - placements[i + 1].start
            elif kind == "fade":
                fields["fade_out"] = min(_to_frame(secs, fps), p.frames)
        out.append(Placement(p.shot_id, p.start, p.end, **fields))
    return out


def shot_frames(shot: ShotClip, size: tuple[int, int], n_frames: int) -> np.ndarray:
    """The shot's frames resampled in time to ``n_frames`` and scaled to ``size`` (w, h).

    Time: nearest source frame for each output frame's centre, so a 16-frame shot stretched
    to 32 frames shows each frame twice (the fps never changes). Space: nearest neighbour,
    so native-size pixels stay crisp blocks instead of blurring.
    """
    w, h = size
    src = shot.frames
    if src.shape[1:3] != (h, w):
        src = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_NEAREST) for f in src])
    f = len(src)
    if n_frames == f:
        return np.ascontiguousarray(src)
    idx = np.minimum(((np.arange(n_frames) + 0.5) * f / n_frames).astype(np.int64), f - 1)
    return np.ascontiguousarray(src[idx])


def _progress_logger(progress: ProgressCallback, total: int):
    """A proglog logger that forwards moviepy's frame counter to ``progress(done, total)``."""
    import proglog  # moviepy's own dependency; imported only when writing

    class Logger(proglog.ProgressBarLogger):
        def bars_callback(self, bar, attr, value, old_value=None):  # noqa: ANN001
            # moviepy iterates frames under the bar "frame_index"; its index = frames done.
            if bar == "frame_index" and attr == "index":
                progress(min(int(value), total), total)

    return Logger(min_time_interval=0.1)  # coalesce: at most ~10 updates a second


def write_mp4(
    clip,
    out_path: str | os.PathLike[str],
    *,
    fps: int,
    n_frames: int,
    title: str = "",
    progress: ProgressCallback | None = None,
) -> Path:
    """Encode a moviepy clip as exactly ``n_frames`` frames of H.264/yuv420p mp4, atomically.

    The clip must already have an even size. No audio is written.
    """
    # moviepy writes int(duration * fps) frames, and e.g. (23 / 10) * 10 == 22.999..., so
    # give it half a frame of slack; frames are sampled at i / fps so nothing extra shows.
    clip = clip.with_duration((n_frames + 0.5) / fps)
    if clip.mask is not None:
        # With a mask moviepy pipes RGBA and appends "-pix_fmt yuva420p" *after* our params.
        clip = clip.without_mask()
    params = list(_X264_PARAMS)
    if title:
        params += ["-metadata", f"title={title}"]
    logger = _progress_logger(progress, n_frames) if progress else None
    with atomic_path(out_path) as tmp:
        clip.write_videofile(
            str(tmp),
            fps=fps,
            codec="libx264",
            audio=False,
            preset="medium",
            ffmpeg_params=params,
            logger=logger,
        )
    return Path(out_path)


def assemble(
    shots: Sequence[ShotClip],
    spec: EditSpec,
    out_path: str | os.PathLike[str],
    progress: ProgressCallback | None = None,
) -> Path:
    """Edit ``shots`` into one film at ``out_path`` (H.264, yuv420p, no audio), atomically.

    Each shot is scaled to ``spec.size`` (rounded up to even) with nearest-neighbour pixels,
    resampled in time to its duration at ``spec.fps``, and joined by its transition. The film
    has :func:`planned_frames` frames, i.e. lasts :func:`planned_duration` to within half a
    frame. ``progress(frames_written, frames_total)`` is called while encoding.
    Returns ``Path(out_path)``.
    """
    # Imported here so `import storyboard.assemble` (planning only) stays light for the TUI.
    from moviepy import CompositeVideoClip, ImageSequenceClip, vfx

    if not shots:
        raise ValueError("nothing to assemble: no shots")
    fps = int(spec.fps)
    size = even_size(spec.size)
    placements = plan_timeline(shots, fps)
    total = placements[-1].end

    layers = []
    for shot, p in zip(shots, placements):
        frames = shot_frames(shot, size, p.frames)
        clip = ImageSequenceClip(list(frames), fps=fps)
        effects = []
        if p.fade_in:
            effects.append(vfx.FadeIn(p.fade_in / fps))
        if p.fade_out:
            effects.append(vfx.FadeOut(p.fade_out / fps))
        if p.crossfade_in:
            # Only the incoming shot gets a ramp (CrossFadeIn = mask 0 -> 1) over the outgoing
            # one, which stays opaque underneath. Also giving the outgoing shot CrossFadeOut
            # would blend both half-transparent over the black background: a dip mid-dissolve.
            effects.append(vfx.CrossFadeIn(p.crossfade_in / fps))
        if effects:
            clip = clip.with_effects(effects)
        layers.append(clip.with_start(p.start / fps))

    # An explicit bg_color keeps the composite opaque (no mask), see write_mp4.
    film = CompositeVideoClip(layers, size=size, bg_color=(0, 0, 0))
    try:
        return write_mp4(film, out_path, fps=fps, n_frames=total, title=spec.title, progress=progress)
    finally:
        film.close()
        for clip in layers:
            clip.close()
