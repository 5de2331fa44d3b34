"""Consistent multi-shot generation on the tiny Wan: the sampler, the variants' limits, masks,
anchor mode and the backbone hook (acceptance tests of the multi-shot issue)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from motionq.api import VARIANTS, ConsistencyConfig, GroupRequest, ShotRequest
from motionq.control.controller import AttentionController
from motionq.control.processors import install
from motionq.methods import multishot as MS
from motionq.methods.transfer import generate

STEPS = 8  # tiny: t = 1000 948 883 801 694 548 338 9 -> qpres steps 1-3, qflow step 4
CAT, DOG = "a red cat", "a blue dog"


def shot(i, prompt, *chars, frames=9, seed=None, steps=STEPS, **kw) -> ShotRequest:
    names = tuple(c.split()[-1] for c in chars)
    return ShotRequest(f"s{i}", prompt, num_frames=frames, seed=i if seed is None else seed,
                       steps=steps, subjects=tuple(chars), characters=names, **kw)


@pytest.fixture(scope="module")
def group():
    return [
        shot(1, "a red cat moves left", CAT),
        shot(2, "a red cat jumps up", CAT),
        shot(3, "a blue dog runs right", DOG),
    ]


def full(n_frames=3, h=2, w=2, value=True):
    return np.full((n_frames, h, w), value, dtype=bool)


def cfg(variant="sdsa+qpres+qflow", **kw) -> ConsistencyConfig:
    return ConsistencyConfig(variant=variant, **kw)


def diff(a, b) -> int:
    return int(np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int)).max())


# ------------------------------------------------------------------------------ the sampler

@pytest.mark.parametrize("guidance", [4.0, 1.0])
def test_sampler_is_wan_pipeline_exactly(tiny_backbone, guidance):
    """One shot through our loop, with controlled processors installed and the controller idle,
    gives WanPipeline's latents bit for bit (and its frames)."""
    pipe = tiny_backbone.pipe
    s = shot(1, "a red cat moves left", CAT, seed=7)
    ref = generate(pipe, s.prompt, num_frames=9, height=32, width=32, steps=STEPS, seed=7,
                   guidance=guidance, max_sequence_length=16, output_type="latent")
    ctl = AttentionController()
    restore = install(pipe.transformer, ctl, range(len(pipe.transformer.blocks)))
    try:
        cond, uncond = MS.encode_prompts(pipe, [s], 16, guidance > 1)
        steps_seen = []
        lat = MS.sample(pipe, MS.initial_noise(pipe, 7, 9, 32, 32), cond, uncond, [guidance], STEPS,
                        on_step=steps_seen.append)
    finally:
        restore()
    assert torch.equal(lat, ref)
    assert steps_seen == list(range(STEPS))
    frames = generate(pipe, s.prompt, num_frames=9, height=32, width=32, steps=STEPS, seed=7,
                      guidance=guidance, max_sequence_length=16)
    assert np.array_equal(MS.decode(pipe, lat), frames)


@pytest.mark.parametrize("variant", VARIANTS[1:])
def test_one_shot_group_is_plain_generation(tiny_backbone, variant):
    s = shot(1, "a red cat moves left", CAT)
    out = tiny_backbone.render_group(GroupRequest((s,), cfg(variant)))
    assert np.array_equal(np.asarray(out["s1"]), tiny_backbone.render_shot(s))
    assert out["s1"].masks.shape == (3, 2, 2)  # (latent frames, H/8/2, W/8/2)


def test_render_group_dispatch_masks_and_progress(tiny_backbone, group):
    events = []
    out = tiny_backbone.render_group(GroupRequest(tuple(group), cfg()), events.append)
    assert set(out) == {"s1", "s2", "s3"}
    for fr in out.values():
        assert isinstance(fr, MS.ShotFrames) and fr.shape == (9, 32, 32, 3) and fr.dtype == np.uint8
        assert type(np.asarray(fr)) is np.ndarray  # what storyboard/render.py stores
        assert fr.masks.dtype == np.float32 and fr.masks.shape == (3, 2, 2)
        assert set(np.unique(fr.masks)) <= {0.0, 1.0}
    vanilla = [e.step for e in events if e.phase == "vanilla"]
    assert vanilla == list(range(1, STEPS + 1))
    assert all(e.shot_ids == ("s1", "s2", "s3") and e.total == STEPS for e in events if e.phase == "vanilla")
    consistent = [e for e in events if e.phase == "consistent"]
    if consistent:  # only when the cat masks are not empty (they are not, with these seeds)
        assert consistent[-1].step == STEPS and "s3" not in consistent[0].shot_ids


# ------------------------------------------------------------------------- the variants' limits

def test_all_zero_masks_give_independent_shots(tiny_backbone, group):
    zero = {s.shot_id: full(value=False) for s in group}
    for variant in ("sdsa", "sdsa+qpres+qflow+refine"):
        res = MS.render_joint(tiny_backbone, group, cfg(variant), masks=zero)
        assert res.stats["coupled"] == []
        for s in group:
            # batched vanilla pass == each shot alone (exact on this CPU; batching may differ
            # by rounding elsewhere, hence the tolerance of one grey level)
            assert diff(res.frames[s.shot_id], tiny_backbone.render_shot(s)) <= 1


def test_sdsa_changes_coupled_shots_only(tiny_backbone, group):
    masks = {s.shot_id: full() for s in group}
    van = MS.render_joint(tiny_backbone, group, cfg("vanilla"), masks=masks)
    res = MS.render_joint(tiny_backbone, group, cfg("sdsa"), masks=masks)
    assert res.stats["coupled"] == ["s1", "s2"] and res.stats["consistent_batch"] == ["s1", "s2"]
    assert diff(res.frames["s1"], van.frames["s1"]) > 0
    assert diff(res.frames["s2"], van.frames["s2"]) > 0
    assert np.array_equal(res.frames["s3"], van.frames["s3"])  # the dog shares nothing
    assert res.stats["vanilla_steps"] == STEPS  # the dog keeps its vanilla frames: full pass


def test_dense_and_framewise_attention_agree(tiny_backbone, group):
    masks = {"s1": full(), "s2": np.arange(12).reshape(3, 2, 2) % 3 == 0, "s3": full()}
    a = MS.render_joint(tiny_backbone, group, cfg("sdsa"), masks=masks,
                        options=MS.MultiShotOptions(attention="framewise"))
    b = MS.render_joint(tiny_backbone, group, cfg("sdsa"), masks=masks,
                        options=MS.MultiShotOptions(attention="dense"))
    for k in a.frames:
        assert diff(a.frames[k], b.frames[k]) <= 1


def test_q_preservation_alone_reproduces_vanilla(tiny_backbone, group):
    """With no K/V extension, replacing the consistent pass's Q by the vanilla Q changes
    nothing: same frames, bit for bit (the consistent pass runs the same batch)."""
    masks = {s.shot_id: full() for s in group[:2]}
    shots = group[:2]
    van = MS.render_joint(tiny_backbone, shots, cfg("vanilla"), masks=masks)
    res = MS.render_joint(tiny_backbone, shots, cfg(), masks=masks,
                          phases=MS.Phases(sdsa=False, qpres="all", qflow=False))
    assert res.stats["coupled"] == ["s1", "s2"] and res.stats["q_cache_bytes"] > 0
    # every shot coupled: the vanilla pass stopped after the last step whose Q is used (step 4)
    assert res.stats["vanilla_steps"] == 5
    for s in shots:
        assert np.array_equal(res.frames[s.shot_id], van.frames[s.shot_id])
    # ... and with shared attention, Q-Preservation over the whole range still moves them
    sd = MS.render_joint(tiny_backbone, shots, cfg("sdsa+qpres"), masks=masks)
    assert diff(sd.frames["s1"], van.frames["s1"]) > 0


def test_qflow_with_every_frame_a_keyframe_is_sdsa_without_q_intervention(tiny_backbone, group):
    masks = {s.shot_id: full() for s in group[:2]}
    shots = group[:2]
    flow = MS.render_joint(tiny_backbone, shots, cfg(keyframe_every=1), masks=masks)
    limit = MS.render_joint(tiny_backbone, shots, cfg(keyframe_every=1), masks=masks,
                            phases=MS.Phases(sdsa=True, qpres="tpres", qflow=False))
    for s in shots:
        assert np.array_equal(flow.frames[s.shot_id], limit.frames[s.shot_id])
    # with a frame between keyframes (tiny has 3 latent frames: keyframes 0 and 2) it acts
    moved = MS.render_joint(tiny_backbone, shots, cfg(keyframe_every=2), masks=masks)
    assert any(diff(moved.frames[s.shot_id], limit.frames[s.shot_id]) > 0 for s in shots)
    # the paper's weight is selectable (its effect on Q is unit-tested in test_qflow_masks;
    # on the random tiny model one Q-Flow step moves frames by less than a grey level)
    paper = MS.render_joint(tiny_backbone, shots, cfg(keyframe_every=2), masks=masks,
                            options=MS.MultiShotOptions(qflow_weight="paper"))
    assert set(paper.frames) == {"s1", "s2"}


def test_refine_changes_only_the_non_reference_shot(tiny_backbone, group):
    masks = {s.shot_id: full() for s in group[:2]}
    shots = group[:2]
    base = MS.render_joint(tiny_backbone, shots, cfg(), masks=masks)
    ref = MS.render_joint(tiny_backbone, shots, cfg("sdsa+qpres+qflow+refine"), masks=masks)
    assert diff(ref.frames["s2"], base.frames["s2"]) > 0  # s2 pulled towards s1 (the reference)
    # s1 is the reference: its own outputs are not replaced; it only changes through s2's K/V
    assert ref.frames["s1"].shape == base.frames["s1"].shape


def test_frame_counts_and_steps(tiny_backbone):
    shots = [shot(1, "a red cat moves left", CAT, frames=5), shot(2, "a red cat jumps up", CAT, frames=9)]
    res = MS.render_joint(tiny_backbone, shots, cfg(), masks={"s1": full(), "s2": full()})
    assert res.frames["s1"].shape == (5, 32, 32, 3) and res.frames["s2"].shape == (9, 32, 32, 3)
    bad = [shots[0], shot(2, "a red cat jumps up", CAT, steps=4)]
    with pytest.raises(ValueError, match="same number of steps"):
        MS.render_joint(tiny_backbone, bad, cfg())


def test_masks_from_cross_attention_layout(tiny_backbone):
    """At 64x64 the tiny model has 4x4 tokens per latent frame: masks are (3, 4, 4), per
    character, Otsu-binary, and a shot without the character's words has none."""
    opts = MS.MultiShotOptions(size=(64, 64))
    shots = [shot(1, "a red cat moves left", CAT), shot(2, "a red cat and a blue dog", CAT, DOG),
             ShotRequest("s3", "a green star spins", num_frames=9, seed=3, steps=STEPS,
                         subjects=(CAT,), characters=("cat",))]
    res = MS.render_joint(tiny_backbone, shots, cfg(), options=opts)
    m1, m2, m3 = (res.masks[k] for k in ("s1", "s2", "s3"))
    assert m1.masks.shape == (1, 3, 4, 4) and m2.masks.shape == (2, 3, 4, 4)
    assert m2.characters == ("cat", "dog")
    assert 0 < m1.masks.sum() < m1.masks.size  # Otsu splits the map
    assert m1.soft.min() == 0.0 and m1.soft.max() == 1.0
    assert not m3.masks.any()  # "a red cat" is not in "a green star spins" (partial words aside)
    assert res.frames["s1"].masks.shape == (3, 4, 4) and res.frames["s1"].shape == (9, 64, 64, 3)
    up = MS.M.upsample_masks(res.frames["s1"].masks, 9, 64, 64)
    assert up.shape == (9, 64, 64)


# ------------------------------------------------------------------------------ anchor mode

def test_anchor_cache_reproduces_the_joint_anchor_render(tiny_backbone, group):
    """Each anchor rendered alone against the cache of the joint anchor render gives the
    anchor's jointly rendered frames (the cache holds exactly what the joint render shared)."""
    config = cfg("sdsa+qpres+qflow+refine")
    anchors = group[:2]
    tiny_backbone.anchor_cache = None
    entry = MS.anchor_entry(tiny_backbone, anchors, config)
    assert entry.nbytes > 0 and entry.kv.out  # K/V and refinement outputs recorded
    joint = MS.render_joint(tiny_backbone, anchors, config)
    for s in anchors:
        assert np.array_equal(entry.frames[s.shot_id], joint.frames[s.shot_id])  # recording is passive
        alone, stats = MS.render_against_anchors(tiny_backbone, s, entry, config)
        assert stats["coupled"] == [s.shot_id]
        assert diff(alone, entry.frames[s.shot_id]) <= 2
        assert np.array_equal(alone.masks, entry.frames[s.shot_id].masks)


def test_anchor_mode_render_group_uses_the_cache(tiny_backbone, group, monkeypatch):
    config = cfg()
    tiny_backbone.anchor_cache = None
    calls = []
    real = MS.render_joint
    monkeypatch.setattr(MS, "render_joint", lambda *a, **k: calls.append(1) or real(*a, **k))
    extra = shot(4, "the red cat spins around", "red cat", seed=11)
    dog = shot(5, "a blue dog runs right", DOG)
    # the anchors alone (how storyboard/render.py should ask for them: with anchor_ids set, so
    # their joint render is recorded once) ...
    only = tiny_backbone.render_group(GroupRequest((group[0], group[1]), config, anchor_ids=("s1", "s2")))
    assert set(only) == {"s1", "s2"} and len(calls) == 1
    # ... then every other shot against the cached anchors
    req = GroupRequest((group[0], group[1], extra), config, anchor_ids=("s1", "s2"))
    out = tiny_backbone.render_group(req)
    assert set(out) == {"s1", "s2", "s4"} and len(calls) == 1
    assert np.array_equal(out["s1"], only["s1"])
    out2 = tiny_backbone.render_group(GroupRequest((group[0], group[1], dog), config, anchor_ids=("s1", "s2")))
    assert len(calls) == 1 and len(tiny_backbone.anchor_cache) == 1  # anchors reused
    assert np.array_equal(out2["s1"], out["s1"])
    # the dog shares no character with the anchors: exactly its plain generation
    assert np.array_equal(np.asarray(out2["s5"]), tiny_backbone.render_shot(dog))
    # s4 alone against the anchors differs from its plain generation (it shares the cat)
    assert diff(out["s4"], tiny_backbone.render_shot(extra)) > 0
    with pytest.raises(ValueError, match="anchor ids"):
        tiny_backbone.render_group(GroupRequest((group[0],), config, anchor_ids=("zz",)))


def test_refine_alone_against_anchors_needs_no_shared_attention_range(tiny_backbone, group):
    # "refine" reads the anchors' attention outputs, not their K/V: an SDSA range with no step
    # must neither switch it off nor change its frames, and no K/V is recorded for it.
    extra = shot(4, "the red cat spins around", CAT, seed=11)
    outs = []
    for sdsa_range in ((550, 950), (1, 2)):
        tiny_backbone.anchor_cache = None
        req = GroupRequest((group[0], group[1], extra), cfg("refine", sdsa_range=sdsa_range),
                           anchor_ids=("s1", "s2"))
        outs.append(tiny_backbone.render_group(req))
        [entry] = tiny_backbone.anchor_cache.values()
        store = entry.kv
        assert not store.kv and store.out
    assert np.array_equal(outs[0]["s4"], outs[1]["s4"])
    assert diff(outs[0]["s4"], tiny_backbone.render_shot(extra)) > 0  # coupled: not its plain generation


def test_full_method_against_anchors_still_refines_without_sdsa_steps(tiny_backbone, group):
    extra = shot(4, "the red cat spins around", CAT, seed=11)
    tiny_backbone.anchor_cache = None
    req = GroupRequest((group[0], group[1], extra), cfg("sdsa+qpres+qflow+refine", sdsa_range=(1, 2)),
                       anchor_ids=("s1", "s2"))
    out = tiny_backbone.render_group(req)
    assert diff(out["s4"], tiny_backbone.render_shot(extra)) > 0  # refined against the anchors


def test_anchor_cache_is_bounded(tiny_backbone):
    tiny_backbone.anchor_cache = None
    opts = MS.MultiShotOptions(anchor_cache_size=2)
    for i in range(3):
        MS.anchor_entry(tiny_backbone, [shot(1, "a red cat moves left", CAT, seed=20 + i, steps=2)],
                        cfg(), options=opts)
    assert len(tiny_backbone.anchor_cache) == 2


def test_memory_bound():
    # Wan 2.1 1.3B, 480x832x81: 30 layers x 1536 dims x 32,760 tokens, bf16 -> ~100 MB per
    # layer-step-pass-shot
    one = MS.memory_bound(1, 1, 32760, 1536, 2, 1, 1)
    assert one == 32760 * 1536 * 2
    assert MS.memory_bound(30, 10, 32760, 1536, 2, 4, 2) == one * 30 * 10 * 4 * 2


def test_phases_of_variants():
    assert MS.Phases.for_variant("sdsa") == MS.Phases(sdsa=True, qpres="none", qflow=False)
    assert MS.Phases.for_variant("sdsa+qpres").qpres == "all"
    assert MS.Phases.for_variant("sdsa+qpres+qflow") == MS.Phases()
    assert MS.Phases.for_variant("sdsa+qpres+qflow+refine").refine
    assert not MS.Phases.for_variant("vanilla").intervenes
    with pytest.raises(ValueError):
        MS.Phases.for_variant("magic")
    with pytest.raises(ValueError):
        MS.Phases(qpres="sometimes")
    with pytest.raises(ValueError):
        MS.MultiShotOptions(attention="sparse")


def test_motion_transfer_inside_a_group(tiny_backbone, group, tmp_path, moving_square):
    """A shot with a motion clip keeps its motion transfer in a consistent group: its vanilla
    pass is exactly `render_shot` (Q of the clip injected into its batch row only)."""
    from motionq.api import MotionSpec
    from motionq.video import write_video

    clip = write_video(moving_square(12, (32, 32)), tmp_path / "ref.mp4")
    moving = shot(6, "a red cat moves left", CAT, motion=MotionSpec(clip, strength=0.5))
    shots = [moving, group[1]]
    events = []
    res = MS.render_joint(tiny_backbone, shots, cfg(), masks={"s6": full(value=False), "s2": full(value=False)},
                          progress=events.append)
    assert diff(res.frames["s6"], tiny_backbone.render_shot(moving)) <= 1
    assert diff(res.frames["s2"], tiny_backbone.render_shot(group[1])) <= 1
    assert any(e.phase == "record" and e.shot_ids == ("s6",) for e in events)
    coupled = MS.render_joint(tiny_backbone, shots, cfg(), masks={"s6": full(), "s2": full()})
    assert coupled.stats["coupled"] == ["s6", "s2"]


@pytest.mark.parametrize("variant", ["sdsa+qpres", "sdsa+qpres+qflow+refine"])
def test_live_vanilla_q_equals_the_cache(tiny_backbone, group, variant):
    """Vanilla Q read live from twin rows of the same batch == recorded in a cache (no Q
    stored), in joint and anchor mode."""
    masks = {"s1": full(), "s2": np.arange(12).reshape(3, 2, 2) % 2 == 0, "s3": full()}
    cached = MS.render_joint(tiny_backbone, group, cfg(variant, keyframe_every=2), masks=masks,
                             options=MS.MultiShotOptions(vanilla_q="cache"))
    live = MS.render_joint(tiny_backbone, group, cfg(variant, keyframe_every=2), masks=masks,
                           options=MS.MultiShotOptions(vanilla_q="live"))
    assert cached.stats["vanilla_q"] == "cache" and cached.stats["q_cache_bytes"] > 0
    assert live.stats["vanilla_q"] == "live" and live.stats["q_cache_bytes"] == 0
    for k in cached.frames:
        assert diff(cached.frames[k], live.frames[k]) <= 1
    entry = MS.anchor_entry(tiny_backbone, group[:2], cfg(variant), masks=masks)
    extra = shot(4, "the red cat spins around", "red cat", seed=11)
    a, sa = MS.render_against_anchors(tiny_backbone, extra, entry, cfg(variant), masks=masks,
                                      options=MS.MultiShotOptions(vanilla_q="cache"))
    b, sb = MS.render_against_anchors(tiny_backbone, extra, entry, cfg(variant), masks=masks,
                                      options=MS.MultiShotOptions(vanilla_q="live"))
    assert sa["vanilla_q"] == "cache" and sb["vanilla_q"] == "live" and sb["coupled"] == ["s4"]
    assert diff(a, b) <= 1
    # "auto" picks the cache while the bound fits the budget, live beyond it
    assert MS.render_joint(tiny_backbone, group[:2], cfg(), masks=masks).stats["vanilla_q"] == "cache"
    tight = MS.MultiShotOptions(q_budget_bytes=1)
    assert MS.render_joint(tiny_backbone, group[:2], cfg(), masks=masks, options=tight).stats["vanilla_q"] == "live"


def test_refine_range_left_to_the_model():
    # A request that leaves refine_range unset gets the model's own (MultiShotOptions); one that
    # sets it keeps it. The built-in model carries its measured range.
    from motionq.backbones import model_settings
    from motionq.control.phases import PAPER_REFINE_RANGE, multishot_schedule

    unset = ConsistencyConfig(variant="sdsa+qpres+qflow+refine")
    assert unset.refine_range is None
    assert MS.MultiShotOptions().refine_range == PAPER_REFINE_RANGE
    assert MS.with_model_defaults(unset, MS.MultiShotOptions(refine_range=(100, 600))).refine_range == (100, 600)
    explicit = ConsistencyConfig(variant="sdsa+qpres+qflow+refine", refine_range=(300, 700))
    assert MS.with_model_defaults(explicit, MS.MultiShotOptions(refine_range=(100, 600))) is explicit
    ts = [1000, 945, 883, 813, 734, 644, 540, 419, 275, 103]
    assert multishot_schedule(ts, unset)["refine"] == [1, 2, 3, 4, 5]  # the paper's 590..950
    assert multishot_schedule(ts, MS.with_model_defaults(unset, MS.MultiShotOptions(refine_range=(100, 600))))[
        "refine"] == [6, 7, 8, 9]
    assert tuple(model_settings("animatic")["refine_range"]) == (100, 500)


def test_refine_modes_blend_as_documented():
    """"match" copies the matched reference feature (weight alpha); "mean" moves the subject's
    mean feature to the reference's by alpha and keeps each token's deviation from it; tokens
    outside the subject and the reference row are untouched."""
    from types import SimpleNamespace

    from motionq.methods.sdsa import Refine, RefineTarget

    torch.manual_seed(0)
    out = torch.randn(2, 8, 6)  # rows x tokens (2 frames of 4) x channels
    pos = [torch.tensor([1, 2]), torch.tensor([5])]
    tg = RefineTarget(row=1, positions=pos, ref_row=0, ref_positions=[torch.tensor([0, 3]), torch.tensor([6])])
    ctx = SimpleNamespace(step=0, pass_name="cond")
    new = Refine([tg], ["l"], [0], alpha=0.5, mode="mean").on_output("l", out, ctx)
    mine, ref = out[1, [1, 2]], out[0, [0, 3]]
    want = mine + 0.5 * (ref.mean(0) - mine.mean(0))
    assert torch.allclose(new[1, [1, 2]], want)
    assert torch.allclose(new[1, [1, 2]] - new[1, [1, 2]].mean(0), mine - mine.mean(0))  # detail kept
    assert torch.allclose(new[1, 5], out[1, 5] + 0.5 * (out[0, 6] - out[1, 5]))
    untouched = [0, 3, 4, 6, 7]
    assert torch.equal(new[1, untouched], out[1, untouched]) and torch.equal(new[0], out[0])
    match = Refine([tg], ["l"], [0], alpha=1.0, mode="match").on_output("l", out, ctx)
    assert all(any(torch.equal(match[1, p], out[0, r]) for r in (0, 3)) for p in (1, 2))
    with pytest.raises(ValueError, match="refine mode"):
        Refine([tg], ["l"], [0], mode="median")


def test_refine_variant_refines_without_sharing(tiny_backbone, group):
    """"refine" (ours): the reference shot is its vanilla render (nothing is shared with it,
    and it is not refined); the other coupled shots change; anchor mode refines a new shot
    towards the cached anchor without attending to the anchors' keys."""
    masks = {s.shot_id: full() for s in group[:2]}
    shots = group[:2]
    res = MS.render_joint(tiny_backbone, shots, cfg("refine"), masks=masks)
    assert res.stats["coupled"] == ["s1", "s2"]
    assert diff(res.frames["s1"], tiny_backbone.render_shot(shots[0])) <= 1
    unrefined = MS.render_joint(tiny_backbone, shots, cfg("refine"), masks=masks,
                                options=MS.MultiShotOptions(refine_alpha=0.0))
    assert diff(unrefined.frames["s2"], tiny_backbone.render_shot(shots[1])) <= 1  # nothing else acts
    assert diff(res.frames["s2"], unrefined.frames["s2"]) > 1
    full_method = MS.render_joint(tiny_backbone, shots, cfg("sdsa+qpres+qflow+refine"), masks=masks)
    assert diff(full_method.frames["s1"], res.frames["s1"]) > 0  # there s1 sees s2's keys
    tiny_backbone.anchor_cache = None
    entry = MS.anchor_entry(tiny_backbone, shots, cfg("refine"), masks=masks)
    assert entry.kv.out  # the anchors' attention outputs, for the refinement
    extra = shot(4, "the red cat spins around", "red cat", seed=11)
    out, stats = MS.render_against_anchors(tiny_backbone, extra, entry, cfg("refine"),
                                           masks={"s4": full()})
    assert stats["coupled"] == ["s4"]
    assert diff(out, tiny_backbone.render_shot(extra)) > 0


def test_variant_fields_follow_the_phases_each_variant_runs():
    # Cache keys hash VARIANT_FIELDS only: each field a variant's phases read must be listed.
    from motionq.api import VARIANT_FIELDS, VARIANTS

    for variant in VARIANTS:
        ph = MS.Phases.for_variant(variant)
        want = set()
        if ph.sdsa or ph.qpres != "none" or ph.qflow:
            want.add("sdsa_range")
        if ph.qpres == "tpres" or ph.qflow:
            want |= {"t_pres"}
        if ph.qflow:
            want.add("keyframe_every")
        if ph.refine:
            want.add("refine_range")
        assert set(VARIANT_FIELDS[variant]) == want, variant
