"""Planner cache keys, the render cache and the render job, with a fake backbone (no torch)."""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from motionq.api import GroupRequest, Progress
from storyboard.cache import RenderCache
from storyboard.load import load_storyboard
from storyboard.plan import build_plan
from storyboard.render import RenderJob

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FP = "fake-model-fingerprint"


class FakeBackbone:
    """Frames are a deterministic function of the request; records what it was asked."""

    name = "fake"

    def __init__(self, fail_on: str | None = None, cancel_after: tuple[threading.Event, int] | None = None):
        self.calls: list[tuple[str, ...]] = []
        self.fail_on = fail_on
        self.cancel_after = cancel_after

    def fingerprint(self) -> str:
        return FP

    def native_size(self) -> tuple[int, int]:
        return (16, 16)

    def render_group(self, request: GroupRequest, progress=None):
        ids = tuple(s.shot_id for s in request.shots)
        self.calls.append(ids)
        if self.cancel_after and len(self.calls) >= self.cancel_after[1]:
            self.cancel_after[0].set()
        out = {}
        for s in request.shots:
            if s.shot_id == self.fail_on:
                raise RuntimeError("boom")
            for k in range(s.steps):
                if progress:
                    progress(Progress(ids, k + 1, s.steps))
            seed = int(hashlib.sha256(f"{s.prompt}|{s.seed}".encode()).hexdigest()[:8], 16)
            out[s.shot_id] = np.random.default_rng(seed).integers(0, 255, (s.num_frames, 16, 16, 3), dtype=np.uint8)
        return out


def _copy_example(tmp_path: Path, name: str) -> Path:
    for f in EXAMPLES.glob("*"):
        if f.is_file():
            shutil.copy(f, tmp_path / f.name)
    shutil.copytree(EXAMPLES / "clips", tmp_path / "clips")
    return tmp_path / name


def _keys(path: Path) -> dict[str, str]:
    plan = build_plan(load_storyboard(path), model_fingerprint=FP)
    return {s.shot_id: s.key for s in plan.shots}


def test_toml_and_yaml_give_identical_keys():
    assert _keys(EXAMPLES / "chase.toml") == _keys(EXAMPLES / "chase.yaml")


def test_key_changes_only_for_the_edited_shot_or_its_documented_set(tmp_path):
    path = _copy_example(tmp_path, "chase.toml")
    before = _keys(path)
    plan = build_plan(load_storyboard(path), model_fingerprint=FP)
    text = path.read_text().replace('prompt = "{chaser} moves right on a navy background"',
                                    'prompt = "{chaser} moves left on a navy background"')
    path.write_text(text)
    after = _keys(path)
    changed = {k for k in before if before[k] != after[k]}
    # Default variant (the built-in model's: refine): 'pursuit' renders jointly with the other
    # chaser shot, so the whole joint group is re-rendered: the documented set.
    group = plan.group_of("pursuit")
    assert plan.consistency.variant == "refine" and group.mode == "joint"
    assert changed == set(group.shot_ids)

    # Vanilla: shots are independent, only the edited one changes.
    path.write_text(text.replace("[consistency]", '[consistency]\nvariant = "vanilla"'))
    before = _keys(path)
    path.write_text(path.read_text().replace("{chaser} moves left", "{chaser} moves right"))
    after = _keys(path)
    assert {k for k in before if before[k] != after[k]} == {"pursuit"}


def test_keys_ignore_what_does_not_change_frames(tmp_path):
    path = _copy_example(tmp_path, "chase.toml")
    before = _keys(path)
    text = (path.read_text().replace('title = "The Chase"', 'title = "Another title"')
            .replace("size = [256, 256]", "size = [128, 96]")
            .replace('transition = "fade"', 'transition = "cut"'))
    path.write_text(text)
    assert _keys(path) == before


def test_keys_follow_model_weights_and_seed(tmp_path):
    path = _copy_example(tmp_path, "chase.toml")
    sb = load_storyboard(path)
    a = {s.shot_id: s.key for s in build_plan(sb, model_fingerprint="A").shots}
    b = {s.shot_id: s.key for s in build_plan(sb, model_fingerprint="B").shots}
    assert all(a[k] != b[k] for k in a)
    before = _keys(path)
    path.write_text(path.read_text().replace("seed = 7", "seed = 8"))
    after = _keys(path)
    assert {k for k in before if before[k] != after[k]} == {"escape"}


def test_keys_follow_the_models_own_method_settings(tmp_path, monkeypatch):
    # The built-in model renders with its own blocks and shared-key weight: changing one of
    # them alone must not reuse renders made with the other.
    from motionq.backbones import model_settings
    from motionq.backbones.animatic import settings as build

    path = _copy_example(tmp_path, "chase.toml")
    sb = load_storyboard(path)
    assert sb.resolved_model() == "animatic"
    assert model_settings("animatic")["transfer_blocks"] == list(build.TRANSFER_BLOCKS)
    assert model_settings(str(tmp_path)) == {}  # a plain folder: the method's own defaults
    before = {s.shot_id: s.key for s in build_plan(sb, model_fingerprint=FP).shots}
    monkeypatch.setattr(build, "TRANSFER_BLOCKS", (4, 5))
    after = {s.shot_id: s.key for s in build_plan(sb, model_fingerprint=FP).shots}
    assert all(before[k] != after[k] for k in before)
    monkeypatch.undo()
    assert {s.shot_id: s.key for s in build_plan(sb, model_fingerprint=FP).shots} == before


def test_motion_clip_content_is_in_the_key(tmp_path):
    path = _copy_example(tmp_path, "dance_transfer.toml")
    before = _keys(path)
    clip = tmp_path / "clips" / "bounce.mp4"
    shutil.copy(tmp_path / "clips" / "pan.mp4", clip)  # same path, other content
    after = _keys(path)
    sb = load_storyboard(path)
    plan = build_plan(sb, model_fingerprint=FP)
    with_clip = {s.id for s in sb.shots if s.motion is not None}
    changed = {k for k in before if before[k] != after[k]}
    # The clip's shots, and the shots coupled with them by the consistency method (joint group).
    coupled = {i for s in with_clip for i in plan.group_of(s).shot_ids if plan.group_of(s).mode == "joint"}
    assert changed == with_clip | coupled and with_clip


def test_groups_and_coupled_keys(tmp_path):
    path = _copy_example(tmp_path, "chase.toml")
    text = path.read_text().replace('[consistency]', '[consistency]\nvariant = "sdsa+qpres+qflow"')
    path.write_text(text)
    sb = load_storyboard(path)
    plan = build_plan(sb, model_fingerprint=FP)
    by_chars = {}
    for s in plan.shots:
        by_chars.setdefault(s.group, set()).update(s.request.characters)
    # Shots sharing a character share a group; different characters -> different groups.
    hero = {s.group for s in plan.shots if "hero" in s.request.characters}
    chaser = {s.group for s in plan.shots if "chaser" in s.request.characters}
    assert len(hero) == 1 and len(chaser) == 1 and hero != chaser
    before = {s.shot_id: s.key for s in plan.shots}
    path.write_text(text.replace("seed = 7", "seed = 9"))  # 'escape' is a hero shot
    after = _keys(path)
    changed = {k for k in before if before[k] != after[k]}
    hero_shots = {s.shot_id for s in plan.shots if "hero" in s.request.characters}
    assert "escape" in changed and changed <= hero_shots


def test_frames_and_duration_from_fps():
    sb = load_storyboard(EXAMPLES / "chase.toml")
    plan = build_plan(sb, model_fingerprint=FP)
    for s in plan.shots:
        assert s.request.num_frames == max(1, round(s.duration * plan.fps))
    overlap = sum(s.transition_duration for s in plan.shots[:-1] if s.transition == "crossfade")
    assert plan.duration == pytest.approx(sum(s.duration for s in plan.shots) - overlap)


def test_render_then_cached_then_edit_one(tmp_path):
    path = _copy_example(tmp_path, "chase.toml")
    sb = load_storyboard(path)
    cache = RenderCache.beside(path)
    fake = FakeBackbone()
    results = RenderJob(build_plan(sb, model_fingerprint=FP), cache, lambda: fake).run()
    assert [r.status for r in results] == ["rendered"] * len(sb.shots)
    again = RenderJob(build_plan(sb, model_fingerprint=FP), cache, lambda: fake).run()
    assert [r.status for r in again] == ["cached"] * len(sb.shots)
    path.write_text(path.read_text().replace("{hero} bounces", "{hero} moves left"))
    sb = load_storyboard(path)
    third = RenderJob(build_plan(sb, model_fingerprint=FP), cache, lambda: fake).run()
    assert {r.shot_id: r.status for r in third} == {
        s.id: ("rendered" if s.id == "safe" else "cached") for s in sb.shots
    }


def test_no_backbone_loaded_when_everything_is_cached(tmp_path):
    path = _copy_example(tmp_path, "chase.toml")
    sb = load_storyboard(path)
    cache = RenderCache.beside(path)
    RenderJob(build_plan(sb, model_fingerprint=FP), cache, FakeBackbone).run()

    def boom():
        raise AssertionError("backbone loaded although every shot is cached")

    assert all(r.status == "cached" for r in RenderJob(build_plan(sb, model_fingerprint=FP), cache, boom).run())


def test_failure_keeps_other_shots(tmp_path):
    path = _copy_example(tmp_path, "chase.toml")
    sb = load_storyboard(path)
    cache = RenderCache.beside(path)
    results = RenderJob(build_plan(sb, model_fingerprint=FP), cache, lambda: FakeBackbone(fail_on="escape")).run()
    status = {r.shot_id: r.status for r in results}
    assert status.pop("escape") == "failed"
    assert set(status.values()) == {"rendered"}
    assert "boom" in next(r.error for r in results if r.shot_id == "escape")


def test_cancel_keeps_finished_shots(tmp_path):
    path = _copy_example(tmp_path, "chase.toml")
    sb = load_storyboard(path)
    cache = RenderCache.beside(path)
    plan = build_plan(sb, model_fingerprint=FP)
    cancel = threading.Event()
    fake = FakeBackbone(cancel_after=(cancel, 2))
    job = RenderJob(plan, cache, lambda: fake, cancel=cancel)
    results = {r.shot_id: r.status for r in job.run()}
    # The second call sets cancel during its render: its progress callback raises, so exactly
    # the first shot is finished.
    assert results[plan.shots[0].shot_id] == "rendered"
    assert list(results.values()).count("rendered") == 1
    assert set(results.values()) == {"rendered", "cancelled"}
    assert cache.has(plan.shots[0].key) and not cache.has(plan.shots[1].key)


def test_only_selected_shots_and_force(tmp_path):
    path = _copy_example(tmp_path, "chase.toml")
    sb = load_storyboard(path)
    cache = RenderCache.beside(path)
    plan = build_plan(sb, model_fingerprint=FP)
    fake = FakeBackbone()
    job = RenderJob(plan, cache, lambda: fake, shots=["escape"])
    assert [s.shot_id for s in job.to_store()] == ["intro", "escape"]  # what the TUI counts as queued
    res = job.run()
    # escape renders against its group's anchor (intro), which comes out of the same call: kept.
    assert [(r.shot_id, r.status) for r in res] == [("intro", "rendered"), ("escape", "rendered")]
    res = RenderJob(plan, cache, lambda: fake, shots=["escape"], force=True).run()
    assert [(r.shot_id, r.status) for r in res] == [("escape", "rendered")]
    # A jointly rendered group: asking for one shot stores its partner too (same call, same frames).
    res = RenderJob(plan, cache, lambda: fake, shots=["pursuit"]).run()
    assert [(r.shot_id, r.status) for r in res] == [("pursuit", "rendered"), ("closing-in", "rendered")]
    assert RenderJob(plan, cache, lambda: fake).status()["closing-in"] == "cached"
    with pytest.raises(KeyError):
        RenderJob(plan, cache, lambda: fake, shots=["nope"]).run()


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_cache_is_atomic_and_sweeps_partial_entries(tmp_path):
    import subprocess
    import sys

    cache = RenderCache(tmp_path / ".storyboard")
    frames = np.zeros((3, 4, 4, 3), np.uint8)
    partial = cache.shots / f".tmp-abc-{_dead_pid()}-2"
    partial.mkdir()
    (partial / "frames.npy").write_bytes(b"half")
    # A leftover of an earlier process that had this process's pid (PID 1 in a container).
    same_pid = cache.shots / f".tmp-jkl-{os.getpid()}-5"
    same_pid.mkdir()
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        # A render still writing (another process, or another thread of this one) keeps its folder.
        live = cache.shots / f".tmp-def-{writer.pid}-3"
        live.mkdir()
        own = cache._tmp_dir("ghi")  # what a render thread of this process is writing into
        own.mkdir()
        entry = cache.put("k1", frames, {"x": 1})
        assert np.array_equal(entry.frames, frames) and cache.get("k1").meta["x"] == 1
        RenderCache(tmp_path / ".storyboard")  # reopening sweeps leftovers
        assert not partial.exists() and not same_pid.exists()
        assert live.is_dir() and own.is_dir() and cache.keys() == ["k1"]
    finally:
        writer.kill()
        writer.wait()
    RenderCache(tmp_path / ".storyboard")
    assert not live.exists() and own.is_dir()
    shutil.rmtree(own)
    # Without replace a valid entry stays (another writer's: same key, same frames) ...
    assert cache.put("k1", frames + 1, {"x": 2}).meta["x"] == 1
    # ... with replace (--force) it is replaced, leaving no folder behind.
    entry = cache.put("k1", frames + 1, {"x": 2}, replace=True)
    assert cache.get("k1").meta["x"] == 2 and int(entry.frames.max()) == 1
    assert sorted(p.name for p in cache.shots.iterdir()) == ["k1"]
    with pytest.raises(ValueError):
        cache.put("../evil", frames, {})
    with pytest.raises(ValueError):
        cache.put("k2", np.zeros((3, 4, 4), np.uint8), {})
    assert not cache.has("k2")


def test_a_replace_killed_between_its_renames_gets_the_old_entry_back(tmp_path):
    cache = RenderCache(tmp_path / ".storyboard")
    frames = np.zeros((2, 4, 4, 3), np.uint8)
    cache.put("k1", frames, {"x": 1})
    # What a kill -9 after moving the old entry aside (and before the new one went in) leaves:
    os.rename(cache.shots / "k1", cache.shots / f".tmp-old-k1-{_dead_pid()}-7")
    assert not cache.has("k1")
    RenderCache(tmp_path / ".storyboard")
    assert cache.get("k1").meta["x"] == 1 and cache.keys() == ["k1"]


def test_a_failed_replace_keeps_the_old_entry(tmp_path, monkeypatch):
    cache = RenderCache(tmp_path / ".storyboard")
    frames = np.zeros((2, 4, 4, 3), np.uint8)
    cache.put("k1", frames, {"x": 1})
    real = os.rename

    def failing(src, dst):
        if Path(src).name.startswith(".tmp-k1-"):
            raise OSError("disk full")
        return real(src, dst)

    monkeypatch.setattr(os, "rename", failing)
    with pytest.raises(OSError):
        cache.put("k1", frames + 1, {"x": 2}, replace=True)
    monkeypatch.undo()
    assert cache.get("k1").meta["x"] == 1 and sorted(p.name for p in cache.shots.iterdir()) == ["k1"]


def test_author_anchors_that_miss_a_character_get_automatic_ones_for_it(tmp_path):
    text = ('[characters.hero]\nprompt = "a red circle"\n[characters.chaser]\nprompt = "a blue square"\n'
            '[[shots]]\nid = "A"\nprompt = "{hero} moves left"\nanchor = true\n'
            '[[shots]]\nid = "B"\nprompt = "{hero} and {chaser} move right"\n'
            '[[shots]]\nid = "C"\nprompt = "{chaser} moves up"\n'
            '[[shots]]\nid = "D"\nprompt = "{chaser} bounces"\n')
    (tmp_path / "sb.toml").write_text(text)
    plan = build_plan(load_storyboard(tmp_path / "sb.toml"), model_fingerprint=FP)
    [group] = plan.groups
    # A shows no chaser: C and D must not render against anchors that never show it.
    assert group.anchors == ("A", "B", "C")
    (tmp_path / "sb.toml").write_text(text.replace('anchor = true\n', ''))
    assert build_plan(load_storyboard(tmp_path / "sb.toml"), model_fingerprint=FP).groups[0].anchors == ()


@pytest.mark.parametrize("variant,unread,read", [
    # the built-in model's default: the refinement alone reads only its range
    (None, ['t_pres = 700', 'keyframe_every = 2', 'sdsa_range = [500, 900]', 'refine_range = [100, 500]',
            'anchors = "off"'], ['refine_range = [100, 600]']),
    ("sdsa+qpres", ['t_pres = 700', 'keyframe_every = 2', 'refine_range = [100, 600]'],
     ['sdsa_range = [500, 900]']),
    ("sdsa+qpres+qflow", ['refine_range = [100, 600]'], ['t_pres = 700', 'keyframe_every = 2']),
])
def test_keys_hash_only_the_consistency_settings_the_variant_reads(tmp_path, variant, unread, read):
    # anchors = "off" only regroups: a group that renders jointly either way keeps its keys.
    path = _copy_example(tmp_path, "chase.toml")
    text = path.read_text().replace('anchors = "auto"\n', "").replace("anchor = true\n", "").replace("steps = 25\n", "").replace("keyframe_every = 3\n", "")
    if variant:
        text = text.replace("[consistency]", f'[consistency]\nvariant = "{variant}"')
    path.write_text(text)
    before = _keys(path)
    coupled = {"pursuit", "closing-in", "intro", "escape", "safe"}
    for line in unread:
        path.write_text(text.replace("[consistency]", f"[consistency]\n{line}"))
        assert _keys(path) == before, line
    for line in read:
        path.write_text(text.replace("[consistency]", f"[consistency]\n{line}"))
        after = _keys(path)
        assert {k for k in before if before[k] != after[k]} == coupled, line


def test_a_damaged_cache_entry_counts_as_missing_and_is_replaced(tmp_path):
    cache = RenderCache(tmp_path / ".storyboard")
    frames = np.zeros((2, 4, 4, 3), np.uint8)
    cache.put("k1", frames, {"x": 1})
    (cache.shots / "k1" / "meta.json").write_text("{bad")
    assert not cache.has("k1") and cache.get("k1") is None
    cache.put("k1", frames + 3, {"x": 2})
    assert cache.get("k1").meta["x"] == 2 and int(cache.get("k1").frames.max()) == 3
    (cache.shots / "k1" / "frames.npy").unlink()
    assert not cache.has("k1")
