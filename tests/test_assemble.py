"""Assembly of the film: timing plan, frame resampling, the written mp4, atomicity."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from storyboard.assemble import (
    EditSpec,
    ShotClip,
    assemble,
    even_size,
    plan_timeline,
    planned_duration,
    planned_frames,
    shot_frames,
)
from storyboard.export import probe_video

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def solid(color: tuple[int, int, int], n: int = 8, size: int = 32) -> np.ndarray:
    frames = np.zeros((n, size, size, 3), np.uint8)
    frames[:] = color
    return frames


def three(transitions: list[tuple[str, float]], durations=(1.0, 1.0, 1.0)) -> list[ShotClip]:
    colors = (RED, GREEN, BLUE)
    return [
        ShotClip(f"s{i}", solid(colors[i]), durations[i], kind, t, label=f"shot {i}")
        for i, (kind, t) in enumerate(transitions)
    ]


def read_frames(path: Path) -> np.ndarray:
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(str(path))
    meta = next(gen)
    w, h = meta["size"]
    return np.stack([np.frombuffer(b, np.uint8).reshape(h, w, 3) for b in gen])


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


# --------------------------------------------------------------------------- planning


def test_planned_duration_rules():
    assert planned_duration([]) == 0.0
    assert planned_duration(three([("cut", 0)] * 3)) == pytest.approx(3.0)
    # crossfade overlaps the next shot; fade does not; the last shot's transition is ignored
    assert planned_duration(three([("crossfade", 0.5), ("fade", 0.5), ("crossfade", 9)])) == pytest.approx(2.5)
    assert planned_duration(three([("fade", 0.25)] * 3)) == pytest.approx(3.0)
    # a crossfade longer than a shot is clamped to it (never a negative-length shot)
    shots = three([("crossfade", 5.0), ("cut", 0), ("cut", 0)], durations=(1.0, 0.5, 1.0))
    assert planned_duration(shots) == pytest.approx(2.0)


def test_plan_timeline_frames_and_transitions():
    shots = three([("crossfade", 0.5), ("fade", 0.25), ("cut", 0)], durations=(1.0, 1.0, 2.3))
    p = plan_timeline(shots, 10)
    assert [(x.start, x.end) for x in p] == [(0, 10), (5, 15), (15, 38)]
    assert p[0].crossfade_out == p[1].crossfade_in == 5
    assert p[1].fade_out == p[2].fade_in == 3  # 0.25 s at 10 fps rounds half up
    # 2.3 * 10 == 22.999... in floats: boundaries must still land on whole frames
    assert p[-1].end == planned_frames(shots, 10) == 38


def test_plan_timeline_rounding_does_not_accumulate():
    # 12 shots of 1/3 s at 10 fps: rounding each length would give 12 * 3 = 36 frames
    shots = [ShotClip(f"s{i}", solid(RED), 1 / 3) for i in range(12)]
    assert plan_timeline(shots, 10)[-1].end == 40 == round(planned_duration(shots) * 10)


def test_plan_timeline_rejects_bad_input():
    with pytest.raises(ValueError, match="duplicate"):
        plan_timeline([ShotClip("a", solid(RED), 1.0), ShotClip("a", solid(RED), 1.0)], 8)
    with pytest.raises(ValueError, match="less than one frame"):
        plan_timeline([ShotClip("a", solid(RED), 0.01)], 8)


def test_shotclip_validation():
    with pytest.raises(ValueError, match="transition"):
        ShotClip("a", solid(RED), 1.0, "wipe")
    with pytest.raises(ValueError, match="uint8"):
        ShotClip("a", solid(RED).astype(np.float32), 1.0)
    with pytest.raises(ValueError, match="duration"):
        ShotClip("a", solid(RED), 0.0)
    with pytest.raises(ValueError):
        EditSpec(fps=0, size=(64, 64), title="x")


def test_shot_frames_resamples_time_and_scales_crisply():
    frames = np.zeros((4, 2, 2, 3), np.uint8)
    for i in range(4):
        frames[i, 0, 0] = 60 * i + 10  # frame number in the top-left pixel
    shot = ShotClip("a", frames, 1.0)
    out = shot_frames(shot, (8, 6), 8)
    assert out.shape == (8, 6, 8, 3)
    assert [int(f[0, 0, 0]) for f in out] == [10, 10, 70, 70, 130, 130, 190, 190]
    # nearest neighbour: only the original values, no blended edge pixels
    assert set(np.unique(out[2])) == {0, 70}
    # squeezing 4 -> 2 frames takes the frame at the centre of each output frame's span
    assert shot_frames(shot, (2, 2), 2)[:, 0, 0, 0].tolist() == [70, 190]


def test_even_size():
    assert even_size((63, 64)) == (64, 64)
    assert even_size((64, 35)) == (64, 36)


# --------------------------------------------------------------------------- the film

MIXES = {
    "cuts": [("cut", 0), ("cut", 0), ("cut", 0)],
    "crossfades": [("crossfade", 0.5), ("crossfade", 0.25), ("cut", 0)],
    "fades": [("fade", 0.25), ("fade", 0.5), ("fade", 1.0)],
    "mixed": [("crossfade", 0.375), ("fade", 0.25), ("cut", 0)],
}


@pytest.mark.parametrize("mix", sorted(MIXES))
def test_assemble_writes_h264_yuv420p_of_planned_length(tmp_path: Path, mix: str):
    shots = three(MIXES[mix], durations=(1.0, 1.25, 0.75))
    spec = EditSpec(fps=8, size=(48, 32), title=f"test {mix}")
    out = assemble(shots, spec, tmp_path / "film.mp4")
    assert out == tmp_path / "film.mp4" and out.exists()
    info = probe_video(out)
    assert (info.codec, info.pix_fmt) == ("h264", "yuv420p")
    assert (info.width, info.height) == (48, 32)
    assert info.fps == 8
    assert abs(info.duration - planned_duration(shots)) <= 1 / spec.fps + 1e-9
    assert info.frames == planned_frames(shots, spec.fps)
    assert leftovers(tmp_path) == []


def test_assemble_pictures_follow_the_edit(tmp_path: Path):
    shots = three([("crossfade", 0.5), ("fade", 0.25), ("cut", 0)])
    spec = EditSpec(fps=8, size=(31, 32), title="")  # odd width -> rounded up to even
    out = assemble(shots, spec, tmp_path / "film.mp4")
    frames = read_frames(out).astype(int)
    assert frames.shape == (20, 32, 32, 3)
    centre = frames[:, 16, 16]
    p = plan_timeline(shots, 8)
    assert np.abs(centre[0] - RED).max() < 12                      # red alone
    mid = centre[p[1].start + 2]                                   # halfway through the dissolve
    assert 90 < mid[0] < 170 and 90 < mid[1] < 170 and mid[2] < 20
    assert np.abs(centre[p[0].end] - GREEN).max() < 12         # green alone
    assert centre[p[2].start].max() < 12                           # fade through black
    assert np.abs(centre[-1] - BLUE).max() < 12                    # blue to the end


def test_assemble_reports_progress(tmp_path: Path):
    seen: list[tuple[int, int]] = []
    shots = three(MIXES["cuts"])
    assemble(shots, EditSpec(8, (32, 32), "p"), tmp_path / "f.mp4", progress=lambda d, t: seen.append((d, t)))
    assert seen and seen[-1] == (24, 24)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_assemble_failure_leaves_no_half_written_film(tmp_path: Path, monkeypatch):
    from moviepy import VideoClip

    target = tmp_path / "film.mp4"
    target.write_bytes(b"previous complete film")

    def broken_write(self, filename, *args, **kwargs):
        Path(filename).write_bytes(b"\x00" * 100)  # half a file, then the encoder dies
        raise OSError("ffmpeg died")

    monkeypatch.setattr(VideoClip, "write_videofile", broken_write)
    with pytest.raises(OSError, match="ffmpeg died"):
        assemble(three(MIXES["mixed"]), EditSpec(8, (32, 32), "x"), target)
    assert target.read_bytes() == b"previous complete film"
    assert leftovers(tmp_path) == []


def test_assemble_needs_shots(tmp_path: Path):
    with pytest.raises(ValueError):
        assemble([], EditSpec(8, (32, 32), "x"), tmp_path / "f.mp4")
    assert math.isclose(planned_duration([]), 0.0)
