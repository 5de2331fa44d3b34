"""Exports beside the film: one mp4 per shot, a contact sheet PNG, an OpenTimelineIO timeline.

All three follow :func:`storyboard.assemble.plan_timeline`, so a shot's clip has exactly the
frames the film uses for it, and the timeline re-creates the film's edit to the frame in any
OTIO-aware editor. Every file is written atomically (:mod:`storyboard.atomic`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from motionq.api import SHEET_LABEL_HEIGHT, SheetRow, contact_sheet_image
from storyboard.assemble import (
    EditSpec,
    ProgressCallback,
    ShotClip,
    even_size,
    plan_timeline,
    shot_frames,
    write_mp4,
)
from storyboard.atomic import atomic_path, atomic_write_text

__all__ = [
    "LABEL_HEIGHT",
    "VideoInfo",
    "clip_filename",
    "contact_sheet",
    "probe_video",
    "write_otio",
    "write_shot_clips",
]

#: The file in a clips folder naming the clips `write_shot_clips` wrote there.
CLIPS_MANIFEST = ".clips.json"
#: Height in pixels of the text band above each row of the contact sheet.
LABEL_HEIGHT = SHEET_LABEL_HEIGHT


# --------------------------------------------------------------------------- per-shot clips


def clip_filename(shot_id: str) -> str:
    """File name of a shot's clip: the id with anything unsafe in a path replaced by ``_``."""
    return (re.sub(r"[^A-Za-z0-9._-]+", "_", shot_id).strip("._") or "shot") + ".mp4"


def write_shot_clips(
    shots: Sequence[ShotClip],
    spec: EditSpec,
    folder: str | os.PathLike[str],
    progress: ProgressCallback | None = None,
) -> dict[str, Path]:
    """Write one mp4 per shot into ``folder``; returns ``{shot_id: path}``.

    Each clip is the shot's raw material as the film uses it: scaled to the film's (even)
    size, resampled to its duration at the film's fps, without transitions (the OTIO
    timeline carries those). ``progress(shots_done, shots_total)`` is called after each clip.
    Clips it wrote before for shots no longer given (deleted or renamed) are removed; other
    files are left alone (``CLIPS_MANIFEST`` lists what it wrote).
    """
    folder = Path(folder)
    fps = int(spec.fps)
    size = even_size(spec.size)
    placements = plan_timeline(shots, fps)
    from moviepy import ImageSequenceClip  # heavy import, only when writing

    paths: dict[str, Path] = {}
    used: set[str] = set()
    for i, (shot, p) in enumerate(zip(shots, placements)):
        name = clip_filename(shot.shot_id)
        stem, n = name[:-4], 2
        while name in used:  # ids that sanitize to the same name ("a/b", "a_b")
            name, n = f"{stem}-{n}.mp4", n + 1
        used.add(name)
        clip = ImageSequenceClip(list(shot_frames(shot, size, p.frames)), fps=fps)
        try:
            paths[shot.shot_id] = write_mp4(
                clip, folder / name, fps=fps, n_frames=p.frames, title=shot.shot_id
            )
        finally:
            clip.close()
        if progress:
            progress(i + 1, len(shots))
    # Clips this function wrote last time for shots no longer in the film would contradict the
    # timeline: remove them (only those: the manifest names what we wrote).
    manifest = folder / CLIPS_MANIFEST
    try:
        before = set(json.loads(manifest.read_text()))
    except (OSError, ValueError, TypeError):
        before = set()
    for name in sorted(before - used):
        if "/" not in name and "\\" not in name and name.endswith(".mp4"):
            (folder / name).unlink(missing_ok=True)
    atomic_write_text(manifest, json.dumps(sorted(used)))
    return paths


# --------------------------------------------------------------------------- contact sheet


def contact_sheet(
    shots: Sequence[ShotClip],
    out_png: str | os.PathLike[str],
    frames_per_row: int = 8,
    cell: int = 96,
    masks: Mapping[str, np.ndarray] | None = None,
) -> Path:
    """Draw a PNG with one row per shot of evenly spaced frames; returns ``Path(out_png)``.

    Each row's text band gives the shot id, duration and label; ``masks[shot_id]`` (float
    ``(F, H, W)`` in [0, 1], e.g. subject masks from attention) is tinted over its frames.
    Layout and drawing: `motionq.sheets.contact_sheet_image`.
    """
    masks = masks or {}
    rows = [SheetRow(f"{s.shot_id}  {s.duration:g}s" + (f"  {s.label}" if s.label else ""), s.frames,
                     masks.get(s.shot_id)) for s in shots]
    sheet = contact_sheet_image(rows, frames_per_row=frames_per_row, cell=cell)
    with atomic_path(out_png) as tmp:
        sheet.save(tmp, format="PNG")
    return Path(out_png)


# --------------------------------------------------------------------------- OpenTimelineIO


def write_otio(
    shots: Sequence[ShotClip],
    spec: EditSpec,
    clip_paths: Mapping[str, str | os.PathLike[str]],
    out_otio: str | os.PathLike[str],
) -> Path:
    """Write the edit as an OpenTimelineIO timeline (one video track); returns the path.

    Model (all times in frames at ``spec.fps``, as ``RationalTime``):

    * One ``Clip`` per shot, named by shot id, whose ``ExternalReference`` points at the
      shot's mp4 (path relative to the .otio file's folder) with ``available_range`` = the
      whole shot (its full duration).
    * Cut: clips simply abut.
    * Crossfade of k frames: an ``SMPTE_Dissolve`` ``Transition`` with ``in_offset = k//2``
      and ``out_offset = k - k//2`` centred on the cut. As OTIO expects, the clips'
      ``source_range`` covers only the part seen up to/after the cut, and the dissolve uses
      the rest of each shot as handles. So a clip's ``source_range`` is shorter than the shot
      by half of each adjacent crossfade, and the track lasts exactly as long as the film.
    * Fade: modelled as a dissolve to black and one from black: ``Transition(in_offset=fade
      out, out_offset=0)``, a zero-length ``Gap`` (black), ``Transition(in_offset=0,
      out_offset=fade in)``. Standard types only, no handles needed, no time added.

    Shot labels, durations and transitions are kept in ``metadata["storyboard"]``.
    """
    import opentimelineio as otio

    fps = int(spec.fps)
    out_otio = Path(out_otio)
    placements = plan_timeline(shots, fps)
    missing = [s.shot_id for s in shots if s.shot_id not in clip_paths]
    if missing:
        raise ValueError(f"no clip path for shots: {', '.join(missing)}")

    def rt(frames: int) -> otio.opentime.RationalTime:
        return otio.opentime.RationalTime(frames, fps)

    def tr(start: int, dur: int) -> otio.opentime.TimeRange:
        return otio.opentime.TimeRange(rt(start), rt(dur))

    # Film frame where each join is cut; a crossfade's cut sits inside the overlap.
    cuts: list[int] = []
    for p, nxt in zip(placements, placements[1:]):
        cuts.append(nxt.start + p.crossfade_out // 2)

    timeline = otio.schema.Timeline(name=spec.title or "storyboard")
    timeline.global_start_time = rt(0)
    track = otio.schema.Track(name="Video", kind=otio.schema.TrackKind.Video)
    timeline.tracks.append(track)
    folder = out_otio.parent.resolve()

    for i, (shot, p) in enumerate(zip(shots, placements)):
        seen_from = cuts[i - 1] if i > 0 else p.start
        seen_to = cuts[i] if i < len(cuts) else p.end
        url = Path(os.path.relpath(Path(clip_paths[shot.shot_id]).resolve(), folder)).as_posix()
        last = i == len(shots) - 1
        track.append(
            otio.schema.Clip(
                name=shot.shot_id,
                media_reference=otio.schema.ExternalReference(
                    target_url=url, available_range=tr(0, p.frames)
                ),
                source_range=tr(seen_from - p.start, seen_to - seen_from),
                metadata={
                    "storyboard": {
                        "shot_id": shot.shot_id,
                        "label": shot.label,
                        "duration": shot.duration,
                        "transition": "cut" if last else shot.transition,
                        "transition_duration": 0.0 if last else shot.transition_duration,
                    }
                },
            )
        )
        if last:
            break
        nxt = placements[i + 1]
        if p.crossfade_out:
            k = p.crossfade_out
            track.append(
                otio.schema.Transition(
                    name=f"{shot.shot_id} -> {nxt.shot_id}",
                    transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
                    in_offset=rt(k // 2),
                    out_offset=rt(k - k // 2),
                    metadata={"storyboard": {"transition": "crossfade"}},
                )
            )
        elif p.fade_out or nxt.fade_in:
            meta = {"storyboard": {"transition": "fade"}}
            track.append(
                otio.schema.Transition(
                    name=f"{shot.shot_id} fade out",
                    transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
                    in_offset=rt(p.fade_out),
                    out_offset=rt(0),
                    metadata=meta,
                )
            )
            track.append(otio.schema.Gap(source_range=tr(0, 0), metadata=meta))
            track.append(
                otio.schema.Transition(
                    name=f"{nxt.shot_id} fade in",
                    transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
                    in_offset=rt(0),
                    out_offset=rt(nxt.fade_in),
                    metadata=meta,
                )
            )

    with atomic_path(out_otio) as tmp:
        otio.adapters.write_to_file(timeline, str(tmp))
    return out_otio


# --------------------------------------------------------------------------- probing


@dataclass(frozen=True)
class VideoInfo:
    """What a written video actually contains (read back with the bundled ffmpeg)."""

    codec: str
    pix_fmt: str
    width: int
    height: int
    fps: float
    frames: int

    @property
    def duration(self) -> float:
        """Seconds: ``frames / fps``."""
        return self.frames / self.fps if self.fps else 0.0


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Codec, pixel format, size, fps and exact frame count of a video file.

    Uses imageio-ffmpeg's bundled ffmpeg (``ffprobe`` is not guaranteed to exist); the
    frame count is exact because it decodes the stream.
    """
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(str(path))
    try:
        meta = next(gen)
    finally:
        gen.close()
    frames, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    w, h = meta["source_size"]
    return VideoInfo(
        codec=str(meta["codec"]),
        pix_fmt=str(meta["pix_fmt"]).split("(")[0],  # "yuv420p(progressive)" -> "yuv420p"
        width=int(w),
        height=int(h),
        fps=float(meta["fps"]),
        frames=int(frames),
    )
