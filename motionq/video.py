"""Read, resample and write clips: uint8 RGB arrays of shape (frames, height, width, 3).

Reading uses OpenCV; writing uses the ffmpeg binary that ships with imageio-ffmpeg (H.264,
yuv420p: plays everywhere). Errors are `VideoError` with a message that names the file and
says what is wrong with it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

#: Container formats `write_video` knows, by extension (H.264 fits all of them).
_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}


class VideoError(ValueError):
    """A clip could not be read or written; the message says which file and why."""


def _check_path(path: str | os.PathLike) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise VideoError(f"{p}: no such file")
    if p.is_dir():
        raise VideoError(f"{p}: is a directory, not a video file")
    if not p.is_file():
        raise VideoError(f"{p}: not a regular file")
    if p.stat().st_size == 0:
        raise VideoError(f"{p}: file is empty (0 bytes), not a video")
    return p


def read_video(path: str | os.PathLike) -> tuple[np.ndarray, float]:
    """Decode every frame of a clip. Returns (frames uint8 (F, H, W, 3) RGB, fps).

    fps is the container's frame rate, or 0.0 when the file does not say.
    Raises `VideoError` for a missing file, a directory, an undecodable file, or no frames.
    """
    import cv2

    p = _check_path(path)
    cap = cv2.VideoCapture(str(p))
    try:
        if not cap.isOpened():
            raise VideoError(f"{p}: cannot be opened as a video (not a video file, or an unsupported codec)")
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not np.isfinite(fps) or fps < 0:
            fps = 0.0
        frames = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if frame.ndim == 2:
                frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
            else:
                frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            frames.append(frame)
    finally:
        cap.release()
    if not frames:
        raise VideoError(f"{p}: contains no decodable frames (empty or not a video)")
    return np.stack(frames).astype(np.uint8, copy=False), fps


def temporal_indices(
    src_frames: int, num_frames: int, src_fps: float | None = None, fps: float | None = None
) -> np.ndarray:
    """Source frame indices for `num_frames` output frames.

    Default (`fps` None): `num_frames` evenly spaced frames over the whole clip, first and
    last included, nearest index: the reference motion is kept in full, time-scaled to fit.
    With `fps` and `src_fps`: sample at `fps` from the start (real-time speed), holding the last
    frame if the clip is too short.
    """
    if src_frames < 1 or num_frames < 1:
        raise ValueError("need at least one source and one output frame")
    if fps and src_fps:
        idx = np.round(np.arange(num_frames) * (src_fps / fps))
    elif num_frames == 1:
        idx = np.zeros(1)
    else:
        idx = np.round(np.linspace(0, src_frames - 1, num_frames))
    return np.clip(idx, 0, src_frames - 1).astype(np.int64)


def resize_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Centre-crop to the target aspect ratio, then resize with area interpolation."""
    import cv2

    f, h, w = frames.shape[:3]
    if (h, w) == (height, width):
        return frames
    target = width / height
    if w / h > target:  # too wide: crop width
        cw, ch = max(1, int(round(h * target))), h
    else:  # too tall: crop height
        cw, ch = w, max(1, int(round(w / target)))
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    cropped = frames[:, y0 : y0 + ch, x0 : x0 + cw]
    # INTER_AREA averages when shrinking (no aliasing); it falls back to linear when enlarging.
    return np.stack(
        [cv2.resize(np.ascontiguousarray(fr), (width, height), interpolation=cv2.INTER_AREA) for fr in cropped]
    )


def resample_clip(
    frames: np.ndarray,
    src_fps: float | None,
    num_frames: int,
    height: int,
    width: int,
    fps: float | None = None,
) -> np.ndarray:
    """Fit a clip to a model's frame count and size.

    Time: `num_frames` evenly spaced frames over the whole clip (nearest index), or, with
    `fps`, real-time sampling at that rate (see `temporal_indices`). Space: centre-crop to the
    target aspect, then `cv2.INTER_AREA` resize.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise VideoError(f"expected frames of shape (F, H, W, 3), got {frames.shape}")
    if frames.dtype != np.uint8:
        raise VideoError(f"expected uint8 frames, got {frames.dtype}")
    if len(frames) == 0:
        raise VideoError("clip has no frames")
    idx = temporal_indices(len(frames), num_frames, src_fps, fps)
    return np.ascontiguousarray(resize_frames(frames[idx], height, width))


def check_video_path(path: str | os.PathLike) -> Path:
    """`path` as a place `write_video` can write to (known extension, not a folder); raises
    VideoError otherwise. Call it before long work whose result would be lost."""
    p = Path(path).expanduser()
    if _FORMATS.get(p.suffix.lower()) is None:
        raise VideoError(f"{p}: unsupported extension (use one of {', '.join(sorted(_FORMATS))})")
    if p.is_dir():
        raise VideoError(f"{p}: is a directory")
    return p


def write_video(frames: np.ndarray, path: str | os.PathLike, fps: float = 16.0) -> Path:
    """Write uint8 RGB frames (F, H, W, 3) as H.264 / yuv420p, atomically.

    The clip is written to `PATH.part` and moved into place with `os.replace`, so a reader never
    sees a half-written file. Odd sizes are padded by one edge pixel (yuv420p needs even ones).
    """
    import imageio_ffmpeg

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise VideoError(f"expected frames of shape (F, H, W, 3) with F > 0, got {frames.shape}")
    if frames.dtype != np.uint8:
        raise VideoError(f"expected uint8 frames, got {frames.dtype}")
    p = check_video_path(path)
    fmt = _FORMATS[p.suffix.lower()]
    p.parent.mkdir(parents=True, exist_ok=True)
    _, h, w, _ = frames.shape
    ph, pw = h % 2, w % 2
    if ph or pw:
        frames = np.pad(frames, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
    tmp = p.with_name(p.name + ".part")
    writer = imageio_ffmpeg.write_frames(
        str(tmp),
        (w + pw, h + ph),
        fps=float(fps),
        codec="libx264",
        pix_fmt_in="rgb24",
        pix_fmt_out="yuv420p",
        macro_block_size=1,  # never let imageio-ffmpeg rescale
        quality=None,
        output_params=["-f", fmt, "-crf", "18", "-movflags", "+faststart"] if fmt in ("mp4", "mov")
        else ["-f", fmt, "-crf", "18"],
        ffmpeg_log_level="error",
    )
    try:
        writer.send(None)  # start ffmpeg
        for fr in frames:
            writer.send(np.ascontiguousarray(fr))
        writer.close()
    except BaseException as exc:
        # BaseException: a Ctrl-C must stop ffmpeg and leave no .part file either.
        try:
            writer.close()
        except Exception:
            pass
        tmp.unlink(missing_ok=True)
        if isinstance(exc, Exception):
            raise VideoError(f"{p}: writing failed: {exc}") from exc
        raise
    os.replace(tmp, p)
    return p
