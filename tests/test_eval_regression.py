"""Regression checks of the evaluation.

1. The machinery, on the tiny random model (its metrics are noise; only shapes, ranges and
   bookkeeping are checked): a small multi-shot subset (2 sets x 3 shots, 2 steps) for every
   variant, the transfer sweep, the DMT baseline, the JSON documents, plots, the report and the
   `motionq eval` command.
2. The ordering the full run showed, on the REAL built-in model: skipped when its weights are
   absent, and until the lead fills `EXPECTED_ORDER` in from the full run (docs/results.md).
"""

from __future__ import annotations

import copy
import json
import math
import os

import numpy as np
import pytest

from motionq.evaluation.multishot import ALL_VARIANTS, METRICS, MultishotSettings, run_multishot

SHARES = ("identity_consistency", "motion_adherence", "motion_diversity", "detected")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    # the ffmpeg-made reference clips go to $MOTIONQ_CACHE/eval-clips
    monkeypatch.setenv("MOTIONQ_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def multishot_small(tiny_backbone):
    saved = []
    result = run_multishot(tiny_backbone, MultishotSettings(sets=2, shots=3, seeds=1, steps=2),
                           on_record=saved.append)
    return result, saved


def in_unit(x) -> bool:
    return x is None or 0.0 <= x <= 1.0


def test_multishot_machinery(multishot_small):
    result, saved = multishot_small
    assert result["kind"] == "multishot" and result["model"] == "tiny"
    assert result["num_frames"] == 9 and result["native_size"] == [32, 32]
    assert list(result["variants"]) == list(ALL_VARIANTS)
    ran = [v for v, st in result["variants"].items() if st["status"] == "ok"]
    assert "vanilla" in ran
    for v, st in result["variants"].items():
        if st["status"] == "skipped":  # a variant the backbone does not implement yet
            assert st["reason"] and "summary" not in st
            continue
        assert st["status"] == "ok" and st["groups"] == 2
        for m in METRICS:
            est = st["summary"][m]
            assert set(est) == {"mean", "lo", "hi", "n", "level", "method"}
            if est["n"]:
                assert est["lo"] <= est["mean"] <= est["hi"]
        assert st["cost_vs_vanilla"] > 0
    recs = result["records"]
    assert len(recs) == 2 * len(ran)
    for r in recs:
        assert {"variant", "set_id", "replica", "seconds", "seconds_per_shot", "shots", *METRICS} <= set(r)
        assert all(in_unit(r[m]) for m in SHARES)
        assert r["dynamic_degree"] >= 0 and r["seconds_per_shot"] > 0
        assert len(r["shots"]) == 3
        for s in r["shots"]:
            assert s["asked_motion"] is not None and s["prompt"].startswith(r["character_prompt"])
    # a partial document after every group, and the whole thing is JSON
    assert len(saved) == len(recs) and all(d["partial"] for d in saved)
    assert json.loads(json.dumps(result))["records"] == recs


def test_multishot_resume_renders_only_missing_groups(tiny_backbone, multishot_small):
    result, _ = multishot_small
    calls = []

    class Counting:
        name = "tiny"

        def __getattr__(self, k):
            return getattr(tiny_backbone, k)

        def render_group(self, request, progress=None):
            calls.append(request)
            return tiny_backbone.render_group(request, progress)

    keep = [r for r in result["records"] if r["variant"] == "vanilla"][:1]
    again = run_multishot(Counting(), MultishotSettings(sets=2, shots=3, seeds=1, steps=2, variants=("vanilla",)),
                          records=keep)
    assert len(calls) == 2  # warm-up + the one missing group
    assert len(again["records"]) == 2 and again["records"][0] == keep[0]


def test_skipped_variant_is_recorded_and_the_run_goes_on(tiny_backbone):
    class VanillaOnly:
        name = "vanilla-only"

        def __getattr__(self, k):
            return getattr(tiny_backbone, k)

        def render_group(self, request, progress=None):
            if request.consistency.variant != "vanilla":
                raise NotImplementedError(f"variant {request.consistency.variant} is not here yet")
            return tiny_backbone.render_group(request, progress)

    class Broken(VanillaOnly):
        def render_group(self, request, progress=None):
            if request.consistency.variant == "sdsa+qpres":
                raise RuntimeError("boom")
            return super().render_group(request, progress)

    logs = []
    res = run_multishot(Broken(), MultishotSettings(sets=1, shots=2, seeds=2, steps=1,
                                                    variants=("sdsa", "sdsa+qpres", "vanilla")), log=logs.append)
    assert res["variants"]["sdsa"] == {"status": "skipped", "reason": "variant sdsa is not here yet"}
    err = res["variants"]["sdsa+qpres"]
    assert err["status"] == "error" and err["reason"].startswith("RuntimeError: boom (at ")
    assert res["variants"]["vanilla"]["groups"] == 2
    assert len(logs) == 2 and "sdsa" in logs[0] and "boom" in logs[1]


def test_parse_variants():
    from motionq.evaluation.multishot import ANCHOR_VARIANT, consistency_for, parse_variants

    assert parse_variants("all") == ALL_VARIANTS
    assert parse_variants("sdsa, anchors,vanilla") == ("sdsa", ANCHOR_VARIANT, "vanilla")
    with pytest.raises(ValueError):
        parse_variants("vanilla,nope")
    cfg, anchored = consistency_for(ANCHOR_VARIANT)
    assert anchored and cfg.variant == "sdsa+qpres+qflow+refine" and cfg.anchors == "auto"
    assert consistency_for("sdsa")[0].anchors == "off"
    # any coupling variant can be judged in anchor mode, "refine" included; vanilla cannot
    assert parse_variants("refine,refine@anchors") == ("refine", "refine@anchors")
    cfg, anchored = consistency_for("refine@anchors")
    assert anchored and cfg.variant == "refine" and cfg.anchors == "auto"
    assert consistency_for("refine") == (consistency_for("refine")[0], False)
    for bad in ("vanilla@anchors", "refine@joint"):
        with pytest.raises(ValueError):
            parse_variants(bad)


@pytest.fixture(scope="module")
def transfer_small(tiny_backbone, tmp_path_factory):
    from motionq.evaluation.transfer import TransferSettings, run_transfer

    os.environ["MOTIONQ_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    images = tmp_path_factory.mktemp("images")
    res = run_transfer(tiny_backbone, TransferSettings(strengths=(0.0, 0.6, 1.0), steps=2, max_pairs=3),
                       images_dir=images)
    return res, images


def test_paired_difference_against_the_text_baseline():
    from motionq.evaluation.transfer import paired_vs_text

    def rec(pair, replica, mode, strength, fid, ptype="same-shape"):
        return {"pair": pair, "replica": replica, "mode": mode, "strength": strength, "fidelity": fid,
                "pair_type": ptype}

    records = [rec("a", 0, "text", None, 0.5), rec("a", 0, "transfer", 0.6, 0.9),
               rec("b", 0, "text", None, 0.8), rec("b", 0, "transfer", 0.6, 0.8),
               rec("b", 1, "text", None, 0.9), rec("b", 1, "transfer", 0.6, 0.6),
               rec("c", 0, "text", None, None), rec("c", 0, "transfer", 0.6, 0.7)]  # no baseline: left out
    est = paired_vs_text(records, [0.6])["same-shape"]["0.6"]
    assert est["n"] == 3 and est["wins"] == 1 and est["losses"] == 1
    assert est["mean"] == pytest.approx((0.4 + 0.0 - 0.3) / 3, abs=1e-6)
    assert est["lo"] <= est["mean"] <= est["hi"]


def test_paired_difference_by_the_kind_of_path():
    from motionq.evaluation.transfer import paired_vs_text, path_kind

    def rec(pair, motion, kind, mode, fid):
        return {"pair": pair, "replica": 0, "mode": mode, "strength": None if mode == "text" else 0.6,
                "fidelity": fid, "pair_type": "x", "source_motion": motion, "source_kind": kind}

    records = [rec("a", "zigzag", "sprite", "text", 0.5), rec("a", "zigzag", "sprite", "transfer", 0.9),
               rec("b", "circle", "sprite", "text", 0.2), rec("b", "circle", "sprite", "transfer", 0.6),
               rec("c", "left", "sprite", "text", 1.0), rec("c", "left", "sprite", "transfer", 0.8),
               rec("d", "zigzag", "real", "text", 0.9), rec("d", "zigzag", "real", "transfer", 0.9)]
    assert [path_kind(r) for r in records[::2]] == ["curved", "curved", "straight", "curved-real"]
    by_path = paired_vs_text(records, [0.6], group=path_kind)
    assert list(by_path) == ["curved", "straight", "curved-real"]
    assert by_path["curved"]["0.6"]["mean"] == pytest.approx(0.4) and by_path["curved"]["0.6"]["wins"] == 2
    assert by_path["straight"]["0.6"]["mean"] == pytest.approx(-0.2) and by_path["straight"]["0.6"]["losses"] == 1
    assert by_path["curved-real"]["0.6"]["n"] == 1


def test_transfer_machinery(transfer_small):
    res, images = transfer_small
    assert res["kind"] == "transfer" and len(res["pairs"]) == 3
    types = {p["pair_type"] for p in res["pairs"]}
    assert "real" in types and types & {"same-shape", "different-shape"}
    assert len(res["records"]) == 3 * (3 + 1)
    for r in res["records"]:
        assert r["mode"] in ("transfer", "text")
        for k in ("fidelity", "track_fidelity", "flow_fidelity"):
            assert r[k] is None or -1.0 <= r[k] <= 1.0
        for k in ("motion_match", "identity_kept", "leak_any", "leak_colour", "leak_shape"):
            assert in_unit(r[k])
        if r["source_kind"] == "real":
            assert r["leak_any"] is None  # a real clip has no sprite identity to leak
    summ = res["summary"]
    for ptype, per in summ["by_strength"].items():
        assert list(per) == ["0", "0.6", "1"]
        assert set(summ["text_baseline"][ptype]) == set(per["0"])
    assert summ["overhead_vs_plain"] > 0 and summ["overhead_strength"] == 0.6
    assert (images / "transfer_examples.png").stat().st_size > 0
    json.dumps(res)


def test_win_and_failure_clips_are_the_largest_paired_gains_and_losses(tmp_path):
    from motionq.evaluation.transfer import Pair, Source, pick_transfer_examples, win_failure_sheets

    def rec(pair, replica, mode, strength, fid):
        return {"pair": pair, "replica": replica, "mode": mode, "strength": strength, "fidelity": fid,
                "prompt": f"{pair} {mode}", "found_identity": ["circle", "red"], "found_motion": "left"}

    records = []
    for pair, text, clip in (("a", 0.2, 0.9), ("b", 0.9, 0.1), ("c", 0.5, 0.8), ("d", 0.95, 0.94), ("e", 0.8, 0.3)):
        for replica, shift in ((0, 0.0), (1, 0.05)):
            records += [rec(pair, replica, "text", None, text), rec(pair, replica, "transfer", 0.6, clip - shift),
                        rec(pair, replica, "transfer", 1.0, 1.0)]
    picked = pick_transfer_examples(records, 0.6)
    # one clip per pair, the biggest first; "d" (-0.01 / -0.06) is only a loss on replica 1
    assert picked["win"] == [("a", 0), ("c", 0)]
    assert picked["failure"] == [("b", 1), ("e", 1)]
    assert pick_transfer_examples(records, 0.6, n=5)["failure"] == [("b", 1), ("e", 1), ("d", 1)]
    assert pick_transfer_examples([r for r in records if r["pair"] == "d"], 0.6)["win"] == []

    clip = np.zeros((3, 8, 8, 3), np.uint8)
    src = Source(name="s", kind="sprite", frames=clip, identity=("circle", "blue"), motion="left", direction=None,
                 background="black")
    pairs = {name: Pair(src, ("circle", "red"), "same-shape") for name in "abcde"}
    frames = {(r["pair"], r["replica"], "text" if r["mode"] == "text" else f"{r['strength']:g}"): clip
              for r in records}
    paths = win_failure_sheets(records, pairs, frames, 0.6, tmp_path)
    assert [os.path.basename(p) for p in paths] == ["transfer_win.png", "transfer_failure.png"]
    assert all(os.path.getsize(p) > 0 for p in paths)


def test_transfer_pairs_and_prompts():
    from motionq.evaluation.transfer import sprite_sources, target_prompt, transfer_pairs
    from motionq.metrics import prompt_identity, prompt_motion

    srcs = sprite_sources(9, 32, 32)
    pairs = transfer_pairs(srcs)
    assert len(pairs) == 2 * len(srcs)
    for p in pairs:
        shape, colour = p.source.identity
        assert p.target[1] != colour
        assert (p.target[0] == shape) == (p.pair_type == "same-shape")
        assert prompt_identity(target_prompt(p)) == p.target
        assert prompt_motion(target_prompt(p)) is None
        assert prompt_motion(target_prompt(p, "motion")) == p.source.motion
        assert prompt_motion(target_prompt(p, "still")) == "stay"


def test_real_sources_get_two_different_targets():
    """Two independent draws for a real clip's targets can coincide (bench seed 0 drew a red
    square twice for bounce.mp4), and then one pair counts twice in every real-clip mean."""
    from motionq.evaluation.transfer import Source, transfer_pairs

    clip = np.zeros((3, 8, 8, 3), np.uint8)
    srcs = [Source(name=f"clip{i}", kind="real", frames=clip, identity=(None, None), motion="left",
                   direction=None, background="black") for i in range(40)]
    for seed in (0, 1):
        pairs = transfer_pairs(srcs, seed=seed)
        assert len(pairs) == 2 * len(srcs)
        names = [(p.source.name, p.target) for p in pairs]
        assert len(set(names)) == len(names)


def test_free_path_sources_follow_paths_no_caption_names():
    from motionq.evaluation.transfer import (
        FREE_PATHS, TransferSettings, free_path_sources, path_kind, score_clip, source_path, transfer_pairs,
    )
    from motionq.metrics import path_correlation
    from motionq.spriteworld import MOTIONS

    srcs = free_path_sources(9, 32, 32, shapes=("circle", "square", "triangle", "diamond"))
    assert [s.stated_motion for s in srcs] == list(FREE_PATHS) and {s.kind for s in srcs} == {"path"}
    assert [s.frames.tobytes() for s in srcs] == [s.frames.tobytes() for s in free_path_sources(9, 32, 32, shapes=(
        "circle", "square", "triangle", "diamond"))]  # deterministic
    straight = {"left", "right", "up", "down", "up-left", "up-right", "down-left", "down-right"}
    for s in srcs:
        c = source_path(s)
        assert np.isfinite(c).all(), s.name  # the analyser finds the sprite in every frame
        assert s.motion in MOTIONS  # the nearest caption, which the text-only baseline asks for
        if s.stated_motion in ("stop-go", "speed-up"):
            # straight in space, uneven in time: the correlation ignores exactly what differs
            assert s.motion in straight
            line = np.linspace(c[0], c[-1], len(c))
            assert path_correlation(c, line) > 0.95
    pairs = transfer_pairs(srcs)
    assert len(pairs) == 10 and {p.pair_type for p in pairs} == {"free-path"}
    # a target drawn exactly on the source's path scores perfectly, on every measure
    rec = {**score_clip(pairs[0], srcs[0].frames), "source_kind": "path", "source_motion": srcs[0].motion}
    assert rec["fidelity"] == pytest.approx(1.0)
    assert rec["displacement_error"] == pytest.approx(0.0) and rec["position_error"] == pytest.approx(0.0)
    assert path_kind(rec) == "free"
    assert TransferSettings().free_paths is False  # library default: the published pair set


def test_paired_error_metrics_favour_the_clip_when_positive():
    from motionq.evaluation.transfer import paired_vs_text

    def rec(pair, mode, err):
        return {"pair": pair, "replica": 0, "mode": mode, "strength": None if mode == "text" else 0.6,
                "pair_type": "x", "fidelity": 0.5, "displacement_error": err}

    records = [rec("a", "text", 0.30), rec("a", "transfer", 0.10), rec("b", "text", 0.20), rec("b", "transfer", 0.25)]
    est = paired_vs_text(records, [0.6], metric="displacement_error")["x"]["0.6"]
    assert est["mean"] == pytest.approx((0.20 - 0.05) / 2) and est["wins"] == 1 and est["losses"] == 1


def test_model_shapes_leave_out_what_the_model_cannot_draw(tiny_backbone, tmp_path):
    from motionq.evaluation.transfer import TransferSettings, build_pairs, model_shapes
    from motionq.spriteworld import SHAPES

    assert model_shapes(tiny_backbone) == tuple(SHAPES)  # no training.json: all of them

    class Published:
        name = "animatic"
        path = tmp_path

    (tmp_path / "training.json").write_text(json.dumps({"config": {"model": {"shapes": ["circle", "square"]}}}))
    assert model_shapes(Published()) == ("circle", "square")
    pairs = build_pairs(tiny_backbone, TransferSettings(real=False, shapes=("circle", "triangle")))
    assert {p.source.identity[0] for p in pairs} | {p.target[0] for p in pairs} <= {"circle", "triangle"}


def test_free_paths_leave_the_other_pairs_as_they_were(tiny_backbone, tmp_path):
    from motionq.evaluation.transfer import TransferSettings, build_pairs

    def names(free):
        return [p.name for p in build_pairs(tiny_backbone, TransferSettings(free_paths=free), tmp_path / "clips")]

    without, with_free = names(False), names(True)
    # published results compare across runs: adding sources must not redraw existing targets
    assert with_free[:len(without)] == without and len(with_free) == len(without) + 10


def test_real_sources_have_their_stated_motion(tmp_path):
    from motionq.evaluation.transfer import real_sources

    srcs = {s.name: s for s in real_sources(9, 32, 32, tmp_path / "clips")}
    assert set(srcs) >= {"bounce.mp4", "pan.mp4", "life-diagonal", "mandelbrot-up", "box-down-right"}
    for s in srcs.values():
        assert s.frames.shape == (9, 32, 32, 3) and s.identity == (None, None)
    # the tracked content of the straight-line clips moves the way each clip was made to move
    for name in ("pan.mp4", "life-diagonal", "mandelbrot-up", "box-down-right"):
        assert srcs[name].motion == srcs[name].stated_motion, name
    # bounce.mp4's two hops squeezed into 9 frames: a hop every 4 frames, a zigzag in sprite terms
    assert srcs["bounce.mp4"].stated_motion == "bounce"
    assert srcs["bounce.mp4"].motion in ("bounce", "zigzag") and srcs["bounce.mp4"].direction == "right"


def test_dmt_without_iterations_is_plain_generation(tiny_backbone):
    from motionq.evaluation.dmt import DMTConfig, dmt_transfer
    from motionq.evaluation.transfer import sprite_sources

    src = sprite_sources(9, 32, 32)[0]
    kw = dict(num_frames=9, height=32, width=32, steps=3, guidance=4.0, seed=5,
              max_sequence_length=tiny_backbone.max_sequence_length)
    plain = tiny_backbone.generate("a red circle", num_frames=9, steps=3, seed=5)
    same, _ = dmt_transfer(tiny_backbone.pipe, src.frames, "a red circle", config=DMTConfig(iterations=0), **kw)
    np.testing.assert_array_equal(same, plain)
    moved, info = dmt_transfer(tiny_backbone.pipe, src.frames, "a red circle",
                               config=DMTConfig(iterations=2, fraction=0.67), **kw)
    # round(0.67 * 3) = 2 guided steps; step 0 is at sigma = 1 (loss 0 by construction): skipped
    assert [k for k, _, _ in info.losses] == [1]
    assert not np.array_equal(moved, plain)
    assert all(p.requires_grad for p in tiny_backbone.pipe.transformer.parameters())  # restored


def test_dmt_inversion_starts_from_the_sources_layout(tiny_backbone):
    from motionq.evaluation.dmt import DMTConfig, dmt_transfer
    from motionq.evaluation.transfer import sprite_sources

    src = sprite_sources(9, 32, 32)[0]
    kw = dict(num_frames=9, height=32, width=32, steps=3, guidance=4.0, seed=5,
              max_sequence_length=tiny_backbone.max_sequence_length)
    plain = tiny_backbone.generate("a red circle", num_frames=9, steps=3, seed=5)
    frames, info = dmt_transfer(tiny_backbone.pipe, src.frames, "a red circle",
                                config=DMTConfig(iterations=0, inversion=True), **kw)
    assert info.seconds_inverting > 0 and not np.array_equal(frames, plain)  # another start latent
    _, info = dmt_transfer(tiny_backbone.pipe, src.frames, "a red circle",
                           config=DMTConfig(iterations=1, fraction=0.67, inversion=True), **kw)
    # the inverted source differs from the start latent at sigma = 1: step 0 is optimised too
    assert [k for k, _, _ in info.losses] == [0, 1]


def test_dmt_restart_sampling_takes_steps_twice(tiny_backbone):
    from motionq.evaluation.dmt import DMTConfig, dmt_transfer
    from motionq.evaluation.transfer import sprite_sources

    src = sprite_sources(9, 32, 32)[0]
    kw = dict(num_frames=9, height=32, width=32, steps=3, guidance=4.0, seed=5,
              max_sequence_length=tiny_backbone.max_sequence_length)
    tr = tiny_backbone.pipe.transformer
    calls = []
    handle = tr.register_forward_hook(lambda *a: calls.append(1))
    try:
        plain, _ = dmt_transfer(tiny_backbone.pipe, src.frames, "a red circle", config=DMTConfig(iterations=0), **kw)
        n_plain = len(calls)
        calls.clear()
        again, info = dmt_transfer(tiny_backbone.pipe, src.frames, "a red circle",
                                   config=DMTConfig(iterations=0, restart=True), **kw)
        n_restart = len(calls)
    finally:
        handle.remove()
    from motionq.control.phases import scheduler_sigmas

    assert n_plain == 3 * 2  # 3 steps, conditional + unconditional pass
    # step 1 taken again, guided; not the last, nor step 0, which starts at sigma = 1
    assert scheduler_sigmas(tiny_backbone.pipe.scheduler, 3)[0] == pytest.approx(1.0)
    assert n_restart == n_plain + 1 * 2
    assert info.seconds_restarting > 0 and not np.array_equal(again, plain)
    same, _ = dmt_transfer(tiny_backbone.pipe, src.frames, "a red circle",
                           config=DMTConfig(iterations=0, restart=True), **kw)
    np.testing.assert_array_equal(same, again)  # seeded restart noise: deterministic
    assert DMTConfig(iterations=10, inversion=True, restart=True).label == "dmt-10x0.4+inv+rs"
    assert DMTConfig(iterations=10, inversion=True, inversion_substeps=50, restart=True).label == "dmt-10x0.4+inv50+rs"


def test_dmt_restart_retakes_the_same_step(tiny_backbone, monkeypatch):
    """If re-noising gave back the latent the step started from, the restart must redo exactly the
    pipeline's guided Euler step (same timestep, guidance and sign): the output stays plain."""
    import torch

    from motionq.control.phases import scheduler_sigmas
    from motionq.evaluation import dmt
    from motionq.evaluation.transfer import sprite_sources

    src = sprite_sources(9, 32, 32)[0]
    kw = dict(num_frames=9, height=32, width=32, steps=4, guidance=4.0, seed=5,
              max_sequence_length=tiny_backbone.max_sequence_length)
    sig = scheduler_sigmas(tiny_backbone.pipe.scheduler, 4)
    started: dict[float, torch.Tensor] = {}  # timestep -> the latent the pipeline's step started from

    def record(module, args, kwargs):
        started.setdefault(round(float(kwargs["timestep"][0]), 3), kwargs["hidden_states"].detach().clone())

    moves = []

    def back_to_start(x, s_lo, s_hi, generator):
        moves.append((s_lo, s_hi))
        return started[round(s_hi * 1000.0, 3)].to(x.dtype)

    plain, _ = dmt.dmt_transfer(tiny_backbone.pipe, src.frames, "a red circle", config=dmt.DMTConfig(iterations=0),
                                **kw)
    handle = tiny_backbone.pipe.transformer.register_forward_pre_hook(record, with_kwargs=True)
    monkeypatch.setattr(dmt, "renoise", back_to_start)
    try:
        again, _ = dmt.dmt_transfer(tiny_backbone.pipe, src.frames, "a red circle",
                                    config=dmt.DMTConfig(iterations=0, restart=True), **kw)
    finally:
        handle.remove()
    assert moves == [(sig[i + 1], sig[i]) for i in (1, 2)]  # not step 0 (sigma = 1), not the last
    # the same float32 operations in the same order: bit for bit (a wrong guidance formula moves pixels)
    np.testing.assert_array_equal(again, plain)


def test_dmt_restart_comes_before_the_next_steps_optimisation(tiny_backbone, monkeypatch):
    from motionq.control.phases import scheduler_sigmas, scheduler_timesteps
    from motionq.evaluation import dmt
    from motionq.evaluation.transfer import sprite_sources

    src = sprite_sources(9, 32, 32)[0]
    pipe = tiny_backbone.pipe
    sig, ts = scheduler_sigmas(pipe.scheduler, 4), scheduler_timesteps(pipe.scheduler, 4)
    events = []
    renoise, tap_call = dmt.renoise, dmt.FeatureTap.__call__

    def spy_renoise(x, s_lo, s_hi, generator):
        events.append(("restart", round(s_hi, 4)))
        return renoise(x, s_lo, s_hi, generator)

    def spy_tap(self, x, t, embeds):
        events.append(("optimise", round(float(t), 1)))
        return tap_call(self, x, t, embeds)

    monkeypatch.setattr(dmt, "renoise", spy_renoise)
    monkeypatch.setattr(dmt.FeatureTap, "__call__", spy_tap)
    dmt.dmt_transfer(pipe, src.frames, "a red circle", config=dmt.DMTConfig(iterations=1, fraction=0.75, restart=True),
                     num_frames=9, height=32, width=32, steps=4, guidance=4.0, seed=5,
                     max_sequence_length=tiny_backbone.max_sequence_length)
    # guided steps 1 and 2 (step 0 is at sigma = 1); restarts after steps 1 and 2
    order = [e for i, e in enumerate(events) if i == 0 or e != events[i - 1]]
    assert order == [("optimise", round(ts[1], 1)), ("restart", round(sig[1], 4)),
                     ("optimise", round(ts[2], 1)), ("restart", round(sig[2], 4))]


def test_renoise_moves_a_latent_up_to_the_higher_noise_level():
    import torch

    from motionq.evaluation.dmt import renoise

    g = torch.Generator().manual_seed(0)
    eps = torch.randn(200_000, generator=g)
    x0 = torch.full_like(eps, 0.8)
    x = (1 - 0.3) * x0 + 0.3 * eps  # on the path at sigma 0.3
    up = renoise(x, 0.3, 0.7, torch.Generator().manual_seed(1))
    # x at sigma 0.7: mean (1 - 0.7) * x0, noise std 0.7
    assert float(up.mean()) == pytest.approx(0.3 * 0.8, abs=0.01)
    assert float(up.std()) == pytest.approx(0.7, abs=0.01)
    torch.testing.assert_close(renoise(x, 0.3, 0.3, torch.Generator().manual_seed(1)), x)  # no move
    with pytest.raises(ValueError):
        renoise(x, 0.7, 0.3, g)


def test_invert_path_integrates_the_velocity_up_the_schedule():
    import torch

    from motionq.evaluation.dmt import invert_path

    class ConstantVelocity(torch.nn.Module):
        dtype = torch.float32

        def forward(self, hidden_states, timestep, encoder_hidden_states, return_dict=False):
            self.seen.append(float(timestep[0]))
            return (torch.full_like(hidden_states, 2.0),)

    tr = ConstantVelocity()
    tr.seen = []
    z0 = torch.zeros(1, 2, 3, 4, 4)
    sigmas, timesteps = [1.0, 0.6, 0.25], [1000.0, 600.0, 250.0]
    path = invert_path(tr, z0, sigmas, timesteps, torch.zeros(1, 4, 8))
    for x, s in zip(path, sigmas):  # x(sigma) = z0 + sigma * v for a constant velocity
        torch.testing.assert_close(x, torch.full_like(z0, 2.0 * s))
    assert tr.seen == [0.0, 250.0, 600.0]  # each step uses the velocity at the lower noise level


def test_invert_path_substeps_follow_the_ode_more_closely():
    import math

    import torch

    from motionq.evaluation.dmt import invert_path

    class Proportional(torch.nn.Module):  # dx/dsigma = x: x(sigma) = x(0) * e^sigma
        dtype = torch.float32

        def forward(self, hidden_states, timestep, encoder_hidden_states, return_dict=False):
            self.seen.append(float(timestep[0]))
            return (hidden_states.clone(),)

    tr = Proportional()
    z0 = torch.ones(1, 1, 1, 2, 2)
    sigmas, timesteps = [1.0, 0.5], [1000.0, 500.0]
    errors = []
    for sub in (1, 10):
        tr.seen = []
        path = invert_path(tr, z0, sigmas, timesteps, torch.zeros(1, 4, 8), substeps=sub)
        assert len(tr.seen) == 2 * sub
        errors.append(abs(float(path[0].mean()) - math.e))
    assert tr.seen[:3] == pytest.approx([0.0, 50.0, 100.0])  # timesteps interpolated inside a step
    assert errors[1] < errors[0] / 5
    with pytest.raises(ValueError):
        invert_path(tr, z0, sigmas, timesteps, torch.zeros(1, 4, 8), substeps=0)


def test_keep_low_frequencies():
    import torch

    from motionq.evaluation.dmt import keep_low_frequencies

    g = torch.Generator().manual_seed(0)
    noise = torch.randn(1, 2, 3, 8, 8, generator=g)
    torch.testing.assert_close(keep_low_frequencies(noise, noise, 4), noise)
    flat = torch.full_like(noise, 0.7)  # a constant latent has only low frequencies
    torch.testing.assert_close(keep_low_frequencies(flat, torch.zeros_like(noise), 4), flat)
    mixed = keep_low_frequencies(flat, noise, 4)
    assert mixed.shape == noise.shape and not torch.allclose(mixed, flat)


def test_smm_loss_is_zero_for_the_same_motion():
    import torch

    from motionq.evaluation.dmt import smm, smm_loss

    g = torch.Generator().manual_seed(0)
    base = torch.randn(1, 4 * 6, 8, generator=g)
    phi = smm(base, 4)
    assert phi.shape == (4, 8)
    assert float(smm_loss(phi, phi)) == pytest.approx(0.0, abs=1e-6)
    assert float(smm_loss(phi * 2 + 1, phi)) == pytest.approx(0.0, abs=1e-5)  # offset/scale free
    assert float(smm_loss(phi.flip(0), phi)) > 0.5


@pytest.fixture(scope="module")
def dmt_small(tiny_backbone):
    from motionq.evaluation.dmt import DMTSettings, run_dmt

    # 3 steps x 0.67: steps 0 and 1 guided (step 0, at sigma = 1, only with inversion)
    return run_dmt(tiny_backbone, DMTSettings(pairs=1, budgets=(1, 2), inversion_budgets=(1,), recipe_budgets=(1,),
                                              recipe_inversion_steps=6, steps=3, fraction=0.67))


def test_dmt_comparison_machinery(dmt_small):
    res = dmt_small
    assert list(res["methods"]) == ["plain", "ours-0.6", "dmt-1x0.67", "dmt-2x0.67", "dmt-1x0.67+inv",
                                    "dmt-1x0.67+inv2+rs"]
    assert len(res["records"]) == 6
    inv = [r for r in res["records"] if r["method"] == "dmt-1x0.67+inv"][0]
    assert inv["seconds_inverting"] > 0 and inv["seconds_restarting"] == 0
    recipe = [r for r in res["records"] if r["method"] == "dmt-1x0.67+inv2+rs"][0]
    assert recipe["seconds_inverting"] > 0 and recipe["seconds_restarting"] > 0
    c = res["cost"]
    assert c["dmt"].startswith("dmt-") and c["ratio"] > 0 and isinstance(c["reached"], bool)
    json.dumps(res)


def test_dmt_runs_on_the_pair_types_asked_for(tiny_backbone):
    from motionq.evaluation.dmt import DMTSettings, run_dmt

    res = run_dmt(tiny_backbone, DMTSettings(pairs=2, free_paths=True, pair_types=("free-path",), budgets=(1,),
                                             inversion_budgets=(), recipe_budgets=(), steps=2))
    assert {r["pair_type"] for r in res["records"]} == {"free-path"}
    assert len({r["pair"] for r in res["records"]}) == 2
    with pytest.raises(ValueError, match="no transfer pairs of type"):
        run_dmt(tiny_backbone, DMTSettings(pairs=2, pair_types=("free-path",), budgets=(1,), steps=2))


def test_report_and_plots(multishot_small, transfer_small, dmt_small, tmp_path):
    from motionq.evaluation.plots import plot_all, write_report

    # the prompts-name-the-motion run has the same layout; its own section reads prompt_mode
    motion_run = copy.deepcopy(transfer_small[0])
    motion_run["settings"]["prompt_mode"] = "motion"
    heldout = copy.deepcopy(motion_run)
    heldout["settings"].update(bench_seed=1, real=False)
    heldout_clip = copy.deepcopy(transfer_small[0])
    heldout_clip["settings"].update(bench_seed=1, real=False)
    results = {"multishot": multishot_small[0], "transfer": transfer_small[0], "transfer_motion": motion_run,
               "transfer_heldout": heldout, "transfer_heldout_clip": heldout_clip, "dmt": dmt_small}
    pngs = plot_all(results, tmp_path / "img")
    assert len(pngs) == 3 and all(os.path.getsize(p) > 0 for p in pngs)
    md = write_report(results, tmp_path / "results.md", images_dir=tmp_path / "img").read_text()
    assert "| variant | identity consistency |" in md and "| `vanilla` |" in md
    assert "**same-shape** pairs" in md or "**different-shape** pairs" in md
    assert "Cost ratio" in md and "## Metrics" in md
    assert "| strength | fidelity | flow fidelity | displacement error | position error |" in md
    assert "| method | fidelity | flow fidelity | motion match |" in md
    # the headline: clip against text by path kind, once in the main section, once in the clip-alone held-out
    assert md.count("| path | clips | fidelity: clip | text | gain | flow fidelity: clip | text | gain |") == 2
    assert "Displacement error, the speed-aware complement of fidelity" in md
    assert "Against DMT's published recipe at our step count (`dmt-1x0.67+inv2+rs`: source inversion in 6 Euler" in md
    assert "without the inversion, which DMT computes once per source and reuses" in md
    assert "One Adam iteration costs" in md and "iterations per guided step (its configuration uses 10)" in md
    motion_part = md.split("## Motion transfer when the prompt names the motion too")[1].split("\n## ")[0]
    assert "| pairs | text only | strength 0 | strength 0.6 | strength 1 |" in motion_part
    assert "| real |" in motion_part
    assert "](img/multishot_tradeoff.png)" in md
    held_part = md.split("## Held-out check: new pairs")[1].split("\n## ")[0]
    assert "drawn with bench seed 1" in held_part and "| pairs | text only |" in held_part
    assert "the same prompt without the clip" in held_part
    clip_part = md.split("## Held-out check, clip alone")[1].split("\n## ")[0]
    assert "so the motion comes from the clip alone; the text-only baseline names the motion instead" in clip_part
    empty = write_report({}, tmp_path / "empty.md", images_dir=tmp_path / "none").read_text()
    assert "Not run yet" in empty


def test_flow_cost_line_finds_the_cheapest_budget_at_our_flow_fidelity():
    from motionq.evaluation.plots import _flow_cost_line, _flow_fidelity

    def rec(method, flow):
        return {"method": method, "flow_fidelity": flow}

    methods = {m: {"seconds": {"median": s}} for m, s in
               (("plain", 1.0), ("ours-0.6", 1.0), ("dmt-5x0.4", 2.0), ("dmt-10x0.4", 4.0), ("dmt-10x0.4+inv", 5.0))}
    doc = {"methods": methods, "cost": {"ours": "ours-0.6"},
           "records": [rec("ours-0.6", 0.6), rec("ours-0.6", 0.6), rec("dmt-5x0.4", 0.5), rec("dmt-5x0.4", 0.5),
                       rec("dmt-10x0.4", 0.7), rec("dmt-10x0.4", 0.7), rec("dmt-10x0.4+inv", 0.9)]}
    flows = {m: _flow_fidelity(doc, m) for m in methods}
    assert flows["dmt-10x0.4"]["mean"] == pytest.approx(0.7) and flows["plain"] is None
    # the inversion row is not a plain budget, even though it scores higher
    assert "dmt-10x0.4 is the cheapest DMT budget at or above our 0.60 (0.70), **4.00x**" in _flow_cost_line(doc, flows)[0]
    doc["records"] = [r for r in doc["records"] if r["method"] != "dmt-10x0.4"]
    flows = {m: _flow_fidelity(doc, m) for m in methods}
    line = _flow_cost_line(doc, flows)[0]
    assert "no DMT budget reaches our 0.60; its best, dmt-5x0.4 (0.50), costs **2.00x**" in line


def test_near_miss_names_cheaper_rows_just_below_our_fidelity():
    from motionq.evaluation.plots import _near_miss_lines

    def row(f, s):
        return {"fidelity": {"mean": f}, "seconds": {"median": s}}

    doc = {"cost": {"ours": "ours-0.6", "dmt": "dmt-40x0.4", "reached": True},
           "methods": {"plain": row(0.16, 1.0), "ours-0.6": row(0.599, 1.0), "dmt-5x0.4": row(0.48, 2.5),
                       "dmt-10x0.4+inv": row(0.598, 4.6), "dmt-40x0.4": row(0.61, 12.0),
                       "dmt-80x0.4": row(0.595, 20.0)}}
    lines = _near_miss_lines(doc)
    # only the cheaper row within 0.01 below ours; the dearer one does not change the ratio
    assert len(lines) == 2 and lines[0].startswith("Near miss: dmt-10x0.4+inv reaches 0.598 against our 0.599")
    assert "**4.60x** our time" in lines[0]
    doc["methods"]["dmt-10x0.4+inv"] = row(0.58, 4.6)  # 0.019 below: a real gap
    assert _near_miss_lines(doc) == []
    doc["cost"]["reached"] = False
    assert _near_miss_lines(doc) == []


def test_paired_vs_dmt_pairs_records_by_pair_and_seed():
    from motionq.evaluation.plots import _paired_vs_dmt_lines, paired_vs_dmt

    def rec(method, pair, replica, f, kept=1.0):
        return {"method": method, "pair": pair, "replica": replica, "fidelity": f,
                "flow_fidelity": None, "identity_kept": kept}

    recs = [rec("ours-0.6", "a", 0, 0.9), rec("ours-0.6", "b", 0, 0.2), rec("ours-0.6", "a", 1, 0.5),
            rec("dmt-10x0.4", "a", 0, 0.8, 0.0), rec("dmt-10x0.4", "b", 0, 0.2), rec("dmt-10x0.4", "a", 1, 0.9),
            rec("dmt-10x0.4", "c", 0, 0.1),  # no record of ours for this pair: not paired
            rec("plain", "a", 0, 0.0)]
    doc = {"cost": {"ours": "ours-0.6"}, "records": recs,
           "methods": {"plain": {"seconds": {"median": 1.0}}, "ours-0.6": {"seconds": {"median": 1.0}},
                       "dmt-10x0.4": {"seconds": {"median": 4.0}}}}
    fid = paired_vs_dmt(doc, "fidelity")
    assert list(fid) == ["dmt-10x0.4"]  # DMT rows only
    d = fid["dmt-10x0.4"]
    # diffs 0.1, 0.0, -0.4 (ours minus DMT on the same pair and seed)
    assert d["n"] == 3 and abs(d["mean"] - (-0.1)) < 1e-9 and (d["wins"], d["losses"]) == (1, 1)
    assert paired_vs_dmt(doc, "identity_kept")["dmt-10x0.4"]["wins"] == 1
    assert paired_vs_dmt(doc, "flow_fidelity") == {}  # no values: no row
    lines = _paired_vs_dmt_lines(doc)
    row = next(line for line in lines if line.startswith("| dmt-10x0.4 |"))
    assert row.startswith("| dmt-10x0.4 | 4.00 | -0.10 [") and row.endswith("| n/a | 0.33 [0.00, 1.00] (1 / 0) |")


def test_eval_cli_quick(tiny_folder, tmp_path):
    from typer.testing import CliRunner

    from motionq.cli import app

    res = tmp_path / "res"
    r = CliRunner().invoke(app, ["eval", "all", "--quick", "--model", str(tiny_folder), "--steps", "1",
                                 "--variants", "vanilla,anchors", "--results", str(res),
                                 "--images", str(tmp_path / "img"), "--report", str(tmp_path / "results.md")])
    assert r.exit_code == 0, r.output
    for name in ("eval_multishot.json", "eval_transfer.json", "eval_transfer-motion.json",
                 "eval_transfer-motion-heldout.json", "eval_transfer-heldout.json", "eval_dmt.json"):
        doc = json.loads((res / name).read_text())
        assert doc["command"].startswith("motionq eval all --model"), doc["command"]
    clip_alone = json.loads((res / "eval_transfer-heldout.json").read_text())["settings"]
    assert clip_alone["prompt_mode"] == "none" and clip_alone["bench_seed"] == 1
    assert "## Held-out check, clip alone" in (tmp_path / "results.md").read_text()
    held = json.loads((res / "eval_transfer-motion-heldout.json").read_text())
    published = json.loads((res / "eval_transfer-motion.json").read_text())
    assert held["settings"]["bench_seed"] == 1 and not held["settings"]["real"]
    # held out: other sources and targets, other sampling seeds
    assert {r["seed"] for r in held["records"]}.isdisjoint({r["seed"] for r in published["records"]})
    assert [p["name"] for p in held["pairs"]] != [p["name"] for p in published["pairs"][:2]]
    assert (tmp_path / "results.md").exists()
    # resuming a finished run renders nothing new; other settings are refused
    ms = res / "eval_multishot.json"
    first = json.loads(ms.read_text())
    before = first["records"]
    args = ["eval", "multishot", "--model", str(tiny_folder), "--sets", "2", "--shots", "3", "--seeds", "1",
            "--variants", "vanilla,anchors", "--steps", "1", "--out", str(ms), "--no-examples", "--resume"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    resumed = json.loads(ms.read_text())
    assert resumed["records"] == before
    assert resumed["wall_seconds"] >= first["wall_seconds"] > 0  # the interrupted run's time is kept
    assert resumed["seconds_total"] >= first["seconds_total"] > 0
    r = CliRunner().invoke(app, args[:-1] + ["--steps", "2", "--resume"])
    assert r.exit_code == 2 and "other settings" in r.output
    r = CliRunner().invoke(app, ["eval", "transfer", "--model", str(tiny_folder), "--sprite-motions", "left,wobble"])
    assert r.exit_code == 2 and "unknown motion(s) wobble" in r.output
    r = CliRunner().invoke(app, ["eval", "multishot", "--model", "no-such-model", "--sets", "1"])
    assert r.exit_code == 2 and "unknown model" in r.output
    r = CliRunner().invoke(app, ["eval", "storyboards", str(tmp_path / "sb"), "--sets", "2"])
    assert r.exit_code == 0 and len(list((tmp_path / "sb").glob("*.toml"))) == 2


# ---------------------------------------------------------------------------------------------
# Known answers: an "oracle" backbone that draws sprite scenes instead of sampling a model
# ---------------------------------------------------------------------------------------------


class Oracle:
    """A Backbone without a model: draws each shot with the sprite world from its prompt, so the
    whole pipeline (render_group -> analyser -> metrics -> summary) has known answers.

    Multi-shot variants behave as the paper's ablation says they do: vanilla = own identity per
    shot, asked motion; sdsa = one identity, motion frozen; sdsa+qpres = identity lost again,
    motion kept; the full method = one identity and the asked motion. Transfer: strength >= 0.5
    copies the source's path and shape and takes the asked colour (shape leaks, colour does
    not); below, the asked identity stays still.
    """

    name = "oracle"
    default_frames = 9

    def __init__(self, sources=()):
        self.sources = {s.frames.tobytes(): s for s in sources}

    def native_size(self):
        return (32, 32)

    def fingerprint(self):
        return "oracle"

    @staticmethod
    def draw(prompt, seed, identity=None, motion=None):
        from motionq.spriteworld import (DEFAULT_COLOURS, SHAPES, WorldConfig, parse_caption, render_scene,
                                         sample_scene)

        parsed = parse_caption(prompt)
        asked = parsed["characters"][0]
        rng = np.random.default_rng(seed)
        shape = (identity or (None, None))[0] or asked["shape"] or SHAPES[int(rng.integers(len(SHAPES)))]
        colour = (identity or (None, None))[1] or asked["colour"] or DEFAULT_COLOURS[int(rng.integers(6))]
        cfg = WorldConfig(num_frames=9, shapes=(shape,), colours=(colour,), motions=(motion or asked["motion"],),
                          p_two=0.0, backgrounds=(parsed["background"] or "black",))
        return render_scene(sample_scene(rng, cfg))

    def identity_of(self, seed):
        from motionq.spriteworld import DEFAULT_COLOURS, SHAPES

        rng = np.random.default_rng([seed, 99])
        return (SHAPES[int(rng.integers(len(SHAPES)))], DEFAULT_COLOURS[int(rng.integers(6))])

    def render_group(self, request, progress=None):
        v = request.consistency.variant
        shared = self.identity_of(request.shots[0].seed)
        out = {}
        for shot in request.shots:
            own = self.identity_of(shot.seed)
            if v == "sdsa":
                out[shot.shot_id] = self.draw(shot.prompt, shot.seed, shared, motion="stay")
            elif v in ("vanilla", "sdsa+qpres"):
                out[shot.shot_id] = self.draw(shot.prompt, shot.seed, own)
            else:
                out[shot.shot_id] = self.draw(shot.prompt, shot.seed, shared)
        return out

    def generate(self, prompt, seed=0, **kw):
        return self.draw(prompt, seed)

    def transfer(self, clip, prompt, strength=0.6, seed=0, **kw):
        import dataclasses

        from motionq.spriteworld import parse_caption, render_scene

        src = self.sources[np.asarray(clip).tobytes()]
        asked = parse_caption(prompt)["characters"][0]
        ch = src.scene.characters[0]
        if strength >= 0.5:
            ch = dataclasses.replace(ch, colour=asked["colour"])
        else:
            ch = dataclasses.replace(ch, shape=asked["shape"], colour=asked["colour"], motion="stay", speed=0.0)
        return render_scene(dataclasses.replace(src.scene, characters=(ch,)))


def test_multishot_metrics_have_the_known_answers_on_an_oracle():
    res = run_multishot(Oracle(), MultishotSettings(sets=4, shots=5, seeds=1, variants=(
        "vanilla", "sdsa", "sdsa+qpres", "sdsa+qpres+qflow")))
    m = {v: {k: e["mean"] for k, e in st["summary"].items()} for v, st in res["variants"].items()}
    assert m["vanilla"]["identity_consistency"] < 0.3 and m["vanilla"]["motion_adherence"] == 1.0
    assert m["sdsa"]["identity_consistency"] == 1.0 and m["sdsa"]["motion_adherence"] == 0.0
    assert m["sdsa"]["motion_diversity"] == pytest.approx(0.0, abs=1e-6)
    assert m["sdsa"]["dynamic_degree"] == pytest.approx(0.0, abs=1e-3)
    assert m["sdsa+qpres"]["identity_consistency"] < 0.3 and m["sdsa+qpres"]["motion_adherence"] == 1.0
    full = m["sdsa+qpres+qflow"]
    assert full["identity_consistency"] == 1.0 and full["motion_adherence"] == 1.0
    assert full["motion_diversity"] > 0.25 and full["dynamic_degree"] > 0.1
    assert all(e["detected"] == 1.0 for e in m.values())
    # the picked examples: the full method's biggest win is over vanilla; no failure is worse
    from motionq.evaluation.multishot import pick_examples

    ex = pick_examples(res)
    assert ex["win"] is not None and ex["failure"] is not None


def test_transfer_metrics_have_the_known_answers_on_an_oracle():
    from motionq.evaluation.transfer import TransferSettings, run_transfer, sprite_sources

    oracle = Oracle(sprite_sources(9, 32, 32))
    res = run_transfer(oracle, TransferSettings(strengths=(0.0, 1.0), real=False))
    per = res["summary"]["by_strength"]
    val = lambda t, s, k: per[t][s][k]["mean"]  # noqa: E731
    for t in ("same-shape", "different-shape"):
        assert val(t, "1", "fidelity") == pytest.approx(1.0, abs=1e-6)
        assert val(t, "1", "motion_match") == 1.0 and val(t, "1", "leak_colour") == 0.0
        assert val(t, "0", "fidelity") == 0.0 and val(t, "0", "motion_match") == 0.0
        assert val(t, "0", "identity_kept") == 1.0 and val(t, "0", "leakage") == 0.0
    assert val("same-shape", "1", "identity_kept") == 1.0 and val("same-shape", "1", "leakage") == 0.0
    assert per["same-shape"]["1"]["leak_shape"]["n"] == 0  # undefined for same-shape pairs
    assert val("different-shape", "1", "leak_shape") == 1.0 and val("different-shape", "1", "identity_kept") == 0.0
    base = res["summary"]["text_baseline"]["different-shape"]
    assert base["motion_match"]["mean"] == 1.0 and base["identity_kept"]["mean"] == 1.0


# ---------------------------------------------------------------------------------------------
# The ordering on the real built-in model
# ---------------------------------------------------------------------------------------------

#: Filled in by the lead from the full run (`motionq eval all --model animatic`, see
#: docs/results.md): metric -> variants in increasing order of their mean, e.g.
#: {"identity_consistency": ["vanilla", "sdsa+qpres+qflow", "sdsa"]}. Only orderings with clear
#: gaps in the full run belong here: the check re-measures on ORDER_SETS sets only.
#: Empty: not filled in yet, the test skips.
#: From the full run of 2026-11-27 (step-47,438 weights, refinement at t in [100, 500], 60
#: groups per variant): identity consistency vanilla 0.05 [0.04, 0.07] < the built-in model's
#: default variant (refine, joint) 0.24 [0.20, 0.27]; it costs some motion: adherence 0.90
#: [0.86, 0.93] against vanilla's 0.97 [0.95, 0.99]. (Detected 0.98 vs 1.00 is no clear gap,
#: so it is not checked; the paper's full method showed the same two orderings. The step-43,704
#: and step-40,406 runs showed them too: 0.06 < 0.27, 0.84 < 0.92; 0.05 < 0.35, 0.84 < 0.92.)
EXPECTED_ORDER: dict[str, list[str]] = {
    "identity_consistency": ["vanilla", "refine"],
    "motion_adherence": ["refine", "vanilla"],
}
#: Largest violation tolerated between neighbours in an ordering (subset noise).
ORDER_TOLERANCE = 0.0
ORDER_SETS = int(os.environ.get("MOTIONQ_EVAL_ORDER_SETS", "8"))


@pytest.fixture(scope="module")
def animatic():
    from motionq.backbones import BackboneError, load_backbone

    try:
        return load_backbone("animatic", device="cpu")
    except BackboneError as exc:
        pytest.skip(f"the built-in animatic model's weights are not available: {exc}")


def test_variant_ordering_on_the_builtin_model(animatic):
    if not EXPECTED_ORDER:
        pytest.skip("EXPECTED_ORDER is not filled in yet: the lead sets it from the full run's results")
    variants = tuple(dict.fromkeys(v for order in EXPECTED_ORDER.values() for v in order))
    res = run_multishot(animatic, MultishotSettings(sets=ORDER_SETS, seeds=1, variants=variants))
    for metric, order in EXPECTED_ORDER.items():
        means = {v: res["variants"][v]["summary"][metric]["mean"] for v in order}
        assert all(m is not None and math.isfinite(m) for m in means.values()), means
        for lo, hi in zip(order, order[1:]):
            assert means[lo] <= means[hi] + ORDER_TOLERANCE, f"{metric}: expected {lo} <= {hi}, got {means}"
