"""Exports (per-shot clips, contact sheet, OpenTimelineIO), atomic writes, reference clips."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest
from PIL import Image

from storyboard.assemble import EditSpec, ShotClip, plan_timeline, planned_duration, planned_frames
from storyboard.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from storyboard.export import (
    LABEL_HEIGHT,
    clip_filename,
    contact_sheet,
    probe_video,
    write_otio,
    write_shot_clips,
)

CLIPS = Path(__file__).resolve().parents[1] / "examples" / "clips"
SPEC = EditSpec(fps=8, size=(32, 32), title="export test")


def solid(color, n: int = 8, size: int = 32) -> np.ndarray:
    frames = np.zeros((n, size, size, 3), np.uint8)
    frames[:] = color
    frames[:, 0, 0] = 255  # a marker pixel so frames are not perfectly flat
    return frames


def shots_mix() -> list[ShotClip]:
    return [
        ShotClip("s1", solid((200, 30, 30)), 1.0, "crossfade", 0.5, "a red opening"),
        ShotClip("s2", solid((30, 200, 30), n=6), 1.5, "fade", 0.25, "green " * 40),
        ShotClip("s/3", solid((30, 30, 200), n=12), 0.75, "crossfade", 0.375, "blue"),
        ShotClip("s4", solid((200, 200, 30), n=3), 1.0, "cut", 0.0, ""),
    ]


def leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if ".tmp" in p.name)


# --------------------------------------------------------------------------- per-shot clips


def test_write_shot_clips_one_mp4_per_shot(tmp_path: Path):
    shots = shots_mix()
    paths = write_shot_clips(shots, SPEC, tmp_path / "clips")
    assert list(paths) == [s.shot_id for s in shots]
    assert paths["s/3"].name == "s_3.mp4" == clip_filename("s/3")
    for shot, p in zip(shots, plan_timeline(shots, SPEC.fps)):
        info = probe_video(paths[shot.shot_id])
        assert (info.codec, info.pix_fmt, info.width, info.height) == ("h264", "yuv420p", 32, 32)
        assert info.frames == p.frames  # exactly the frames the film uses for this shot
        assert abs(info.duration - shot.duration) <= 1 / SPEC.fps
    assert leftovers(tmp_path) == []


def test_clip_names_stay_unique(tmp_path: Path):
    shots = [ShotClip("a/b", solid((0, 0, 0)), 0.25), ShotClip("a_b", solid((0, 0, 0)), 0.25)]
    paths = write_shot_clips(shots, SPEC, tmp_path)
    assert sorted(p.name for p in paths.values()) == ["a_b-2.mp4", "a_b.mp4"]
    # A shot deleted from the film loses its clip; files it did not write stay, even clips.
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "reference.mp4").write_bytes(b"a clip of the author's")
    write_shot_clips(shots[:1], SPEC, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".clips.json", "a_b.mp4", "notes.txt", "reference.mp4"]


# --------------------------------------------------------------------------- contact sheet


def test_contact_sheet_layout(tmp_path: Path):
    shots = shots_mix()
    out = contact_sheet(shots, tmp_path / "sheet.png", frames_per_row=5, cell=40)
    img = Image.open(out)
    assert img.size == (5 * 40, len(shots) * (40 + LABEL_HEIGHT))
    a = np.asarray(img.convert("RGB")).astype(int)
    # row 2 (s2, green) cell 3 centre shows the green frame
    y = 1 * (40 + LABEL_HEIGHT) + LABEL_HEIGHT + 20
    assert np.abs(a[y, 2 * 40 + 20] - (30, 200, 30)).max() < 4
    # s4 has 3 frames: cells 4 and 5 of its row stay empty background
    y = 3 * (40 + LABEL_HEIGHT) + LABEL_HEIGHT + 20
    assert np.abs(a[y, 4 * 40 + 20] - (200, 200, 30)).max() > 100
    # the label band carries text (bright pixels)
    assert a[:LABEL_HEIGHT].max() > 200
    assert leftovers(tmp_path) == []


def test_contact_sheet_mask_overlay_tints(tmp_path: Path):
    shots = shots_mix()[:1]
    plain = np.asarray(Image.open(contact_sheet(shots, tmp_path / "a.png", cell=32))).astype(int)
    mask = np.zeros((4, 8, 8), np.float32)
    mask[:, :, :4] = 1.0  # left half of every (latent-size) frame
    tinted = np.asarray(
        Image.open(contact_sheet(shots, tmp_path / "b.png", cell=32, masks={"s1": mask}))
    ).astype(int)
    assert plain.shape == tinted.shape
    y = LABEL_HEIGHT + 16
    assert np.abs(tinted[y, 8] - plain[y, 8]).sum() > 60   # masked half changed
    assert np.abs(tinted[y, 26] - plain[y, 26]).sum() == 0  # unmasked half untouched


def test_contact_sheet_names_the_mask_tint(tmp_path: Path):
    shots = shots_mix()[:1]
    mask = np.ones((4, 8, 8), np.float32)
    plain = np.asarray(Image.open(contact_sheet(shots, tmp_path / "a.png"))).astype(int)
    tinted = np.asarray(Image.open(contact_sheet(shots, tmp_path / "b.png", masks={"s1": mask}))).astype(int)
    band = lambda img: img[:LABEL_HEIGHT, img.shape[1] // 2:]  # noqa: E731 - right half of the text band
    # the legend is drawn in the tint's colour (magenta: red and blue high, green low)
    magenta = lambda img: ((img[..., 0] > 180) & (img[..., 2] > 140) & (img[..., 1] < 100)).sum()  # noqa: E731
    assert magenta(band(tinted)) > 10 and magenta(band(plain)) == 0


# --------------------------------------------------------------------------- OpenTimelineIO


def test_otio_round_trip(tmp_path: Path):
    shots = shots_mix()
    paths = write_shot_clips(shots, SPEC, tmp_path / "clips")
    out = write_otio(shots, SPEC, paths, tmp_path / "edit" / "film.otio")
    tl = otio.adapters.read_from_file(str(out))
    assert tl.name == "export test"
    assert len(tl.tracks) == 1 and tl.tracks[0].kind == otio.schema.TrackKind.Video
    track = tl.tracks[0]

    clips = list(track.find_clips())
    assert [c.name for c in clips] == [s.shot_id for s in shots]
    for clip, shot in zip(clips, shots):
        ref = clip.media_reference
        assert not Path(ref.target_url).is_absolute()
        assert (out.parent / ref.target_url).resolve() == paths[shot.shot_id].resolve()
        # the media is the whole shot at the film's rate
        assert ref.available_range.duration.rate == SPEC.fps
        assert abs(ref.available_range.duration.to_seconds() - shot.duration) <= 1 / SPEC.fps
        assert clip.metadata["storyboard"]["label"] == shot.label

    # the timeline lasts as long as the film, to within a frame
    assert abs(track.duration().to_seconds() - planned_duration(shots)) <= 1 / SPEC.fps
    assert track.duration().value == planned_frames(shots, SPEC.fps)

    transitions = [t for t in track if isinstance(t, otio.schema.Transition)]
    assert all(t.transition_type == otio.schema.TransitionTypes.SMPTE_Dissolve for t in transitions)
    xfade = transitions[0]
    assert (xfade.in_offset + xfade.out_offset).to_seconds() == pytest.approx(0.5)
    assert xfade.in_offset.value == xfade.out_offset.value == 2  # half each side
    # crossfade, fade out, fade in, crossfade
    assert [t.metadata["storyboard"]["transition"] for t in transitions] == [
        "crossfade", "fade", "fade", "crossfade",
    ]
    # OTIO itself can expand every transition (handles exist, no transition overruns a clip)
    otio.algorithms.track_with_expanded_transitions(track)
    assert leftovers(tmp_path) == []


def test_otio_needs_every_clip(tmp_path: Path):
    shots = shots_mix()
    with pytest.raises(ValueError, match="s4"):
        write_otio(shots, SPEC, {"s1": "a.mp4", "s2": "b.mp4", "s/3": "c.mp4"}, tmp_path / "x.otio")
    assert not (tmp_path / "x.otio").exists()


# --------------------------------------------------------------------------- atomic writes


def test_atomic_write_bytes_and_text(tmp_path: Path):
    p = atomic_write_bytes(tmp_path / "sub" / "a.bin", b"one")
    assert p.read_bytes() == b"one"
    atomic_write_text(p, "two")
    assert p.read_text() == "two"
    # same permissions as a plainly created file (mkstemp's 0600 must not leak onto outputs)
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"")
    assert stat.S_IMODE(p.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    assert leftovers(tmp_path) == []


def test_atomic_path_keeps_target_when_writer_raises(tmp_path: Path):
    target = tmp_path / "film.mp4"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert tmp.parent == tmp_path and tmp.suffix == ".mp4" and tmp != target
            tmp.write_bytes(b"half")
            raise RuntimeError("writer crashed")
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_atomic_path_requires_the_writer_to_write(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        with atomic_path(tmp_path / "x.png"):
            pass
    assert list(tmp_path.iterdir()) == []


def test_contact_sheet_failure_keeps_old_sheet(tmp_path: Path, monkeypatch):
    target = tmp_path / "sheet.png"
    target.write_bytes(b"old sheet")

    def broken_save(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"\x89PNG half")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        contact_sheet(shots_mix(), target)
    assert target.read_bytes() == b"old sheet"
    assert leftovers(tmp_path) == []


# --------------------------------------------------------------------------- reference clips


@pytest.mark.parametrize("name", ["bounce.mp4", "pan.mp4"])
def test_reference_clips(name: str):
    path = CLIPS / name
    assert path.exists(), "run examples/clips/make_clips.py"
    assert path.stat().st_size < 100_000
    info = probe_video(path)
    assert (info.codec, info.pix_fmt) == ("h264", "yuv420p")
    assert (info.width, info.height, info.fps, info.frames) == (64, 64, 8.0, 16)
