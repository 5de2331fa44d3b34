"""Reading, resampling and writing clips, and the error messages for bad clips."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from motionq.video import (
    VideoError,
    read_video,
    resample_clip,
    resize_frames,
    temporal_indices,
    write_video,
)


def smooth_clip(n=6, h=32, w=48) -> np.ndarray:
    """Smooth gradients (compress well, so a round trip stays close)."""
    y, x = np.mgrid[:h, :w]
    return np.stack(
        [np.stack([(x * 4 + i * 12) % 256, y * 6, (x + y) * 2], -1) for i in range(n)]
    ).astype(np.uint8)


def test_write_read_round_trip(tmp_path):
    clip = smooth_clip()
    out = write_video(clip, tmp_path / "sub" / "a.mp4", fps=12)
    assert out.exists() and not list(out.parent.glob("*.part"))  # atomic: no temp left
    frames, fps = read_video(out)
    assert frames.shape == clip.shape and frames.dtype == np.uint8
    assert fps == pytest.approx(12.0)
    assert np.abs(frames.astype(int) - clip).mean() < 6


def test_odd_size_is_padded_to_even(tmp_path):
    clip = smooth_clip(3, 17, 31)
    frames, _ = read_video(write_video(clip, tmp_path / "odd.mp4"))
    assert frames.shape == (3, 18, 32, 3)


def test_write_errors(tmp_path):
    with pytest.raises(VideoError, match="extension"):
        write_video(smooth_clip(), tmp_path / "a.gif")
    with pytest.raises(VideoError, match="uint8"):
        write_video(smooth_clip().astype(np.float32), tmp_path / "a.mp4")
    with pytest.raises(VideoError, match="shape"):
        write_video(np.zeros((0, 8, 8, 3), np.uint8), tmp_path / "a.mp4")


def test_missing_file(tmp_path):
    with pytest.raises(VideoError, match="no such file") as e:
        read_video(tmp_path / "nope.mp4")
    assert "nope.mp4" in str(e.value)


def test_directory(tmp_path):
    with pytest.raises(VideoError, match="is a directory"):
        read_video(tmp_path)


def test_empty_file(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoError, match="empty"):
        read_video(tmp_path / "empty.mp4")


def test_not_a_video(tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video\n" * 50)
    with pytest.raises(VideoError, match="cannot be opened as a video") as e:
        read_video(bad)
    assert "notes.mp4" in str(e.value)


def _cut_after_mdat_header(data: bytes) -> bytes:
    """Keep an mp4's boxes up to and including the mdat header: headers, no frame data."""
    pos = 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind == b"mdat":
            return data[: pos + 8]
        pos += size
    raise AssertionError("no mdat box")


def test_zero_frames(tmp_path):
    good = write_video(smooth_clip(), tmp_path / "good.mp4")  # moov first (+faststart)
    cut = tmp_path / "zero.mp4"
    cut.write_bytes(_cut_after_mdat_header(good.read_bytes()))
    with pytest.raises(VideoError, match="no decodable frames") as e:
        read_video(cut)
    assert "zero.mp4" in str(e.value)


def test_temporal_indices():
    assert temporal_indices(10, 4).tolist() == [0, 3, 6, 9]  # evenly over the whole clip
    assert temporal_indices(3, 5).tolist() == [0, 0, 1, 2, 2]  # short clip: repeats
    assert temporal_indices(100, 3, src_fps=30, fps=10).tolist() == [0, 3, 6]  # real time
    assert temporal_indices(4, 3, src_fps=30, fps=10).tolist() == [0, 3, 3]  # holds the last
    assert temporal_indices(5, 1).tolist() == [0]


def test_resample_crops_to_aspect_then_resizes():
    clip = np.zeros((5, 20, 40, 3), np.uint8)
    clip[:, :, 10:30] = 255  # the centre square of a 2:1 frame
    out = resample_clip(clip, 24.0, 3, 16, 16)
    assert out.shape == (3, 16, 16, 3) and out.dtype == np.uint8
    assert out.min() == 255  # centre crop keeps only the white square
    assert resize_frames(clip, 20, 40) is clip  # same size: untouched
    tall = resample_clip(np.zeros((2, 40, 10, 3), np.uint8), None, 2, 8, 16)
    assert tall.shape == (2, 8, 16, 3)


def test_resample_rejects_bad_input():
    with pytest.raises(VideoError, match="shape"):
        resample_clip(np.zeros((4, 8, 8), np.uint8), None, 2, 8, 8)
    with pytest.raises(VideoError, match="uint8"):
        resample_clip(np.zeros((4, 8, 8, 3), np.float32), None, 2, 8, 8)
    with pytest.raises(VideoError, match="no frames"):
        resample_clip(np.zeros((0, 8, 8, 3), np.uint8), None, 2, 8, 8)


def test_read_accepts_str_path_and_mov(tmp_path):
    write_video(smooth_clip(2), tmp_path / "b.mov")
    frames, _ = read_video(str(tmp_path / "b.mov"))
    assert frames.shape[0] == 2
