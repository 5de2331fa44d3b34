"""Attention control on the tiny Wan: bit-identity when idle, step tracking, record / inject,
K/V extension plumbing, timestep phases."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.transformers.transformer_wan import WanAttnProcessor

from motionq.api import ConsistencyConfig
from motionq.control import phases
from motionq.control.controller import (
    AttentionController,
    CallContext,
    InjectQ,
    KVExtension,
    Policy,
    QCache,
    RecordQ,
)
from motionq.control.processors import ControlledWanAttnProcessor, install, layer_name

F, H, W, STEPS = 9, 32, 32, 4


def run(bb, prompt="a red square moves left", seed=0, guidance=4.0, steps=STEPS):
    """Pipeline output latents (output_type="latent")."""
    return bb.pipe(
        prompt=prompt, num_frames=F, height=H, width=W, num_inference_steps=steps,
        guidance_scale=guidance, generator=torch.Generator().manual_seed(seed),
        output_type="latent", max_sequence_length=bb.max_sequence_length,
    ).frames


def all_blocks(bb) -> list[int]:
    return list(range(len(bb.pipe.transformer.blocks)))


class Noop(Policy):
    """Active but changes nothing: every hook runs and returns its input."""

    def on_query(self, layer, q, ctx):
        return q

    def on_output(self, layer, out, ctx):
        return out


@pytest.mark.parametrize("inject_at", ["pre_rotary", "post_rotary"])
def test_controller_off_is_bit_identical(tiny_backbone, inject_at):
    stock = run(tiny_backbone)
    ctl = AttentionController()
    restore = install(tiny_backbone.pipe.transformer, ctl, all_blocks(tiny_backbone), inject_at)
    try:
        assert torch.equal(run(tiny_backbone), stock)  # no policy
        with ctl.using(Noop()):
            assert torch.equal(run(tiny_backbone), stock)  # hooks run, change nothing
    finally:
        restore()
    assert torch.equal(run(tiny_backbone), stock)


def test_install_touches_only_chosen_self_attention_and_restores(tiny_backbone):
    tr = tiny_backbone.pipe.transformer
    ctl = AttentionController()
    restore = install(tr, ctl, [1])
    procs = tr.attn_processors
    assert isinstance(procs["blocks.1.attn1.processor"], ControlledWanAttnProcessor)
    assert type(procs["blocks.0.attn1.processor"]) is WanAttnProcessor
    assert all(type(procs[f"blocks.{i}.attn2.processor"]) is WanAttnProcessor for i in (0, 1))
    assert len(tr._forward_pre_hooks) == 1
    restore()
    assert all(type(p) is WanAttnProcessor for p in tr.attn_processors.values())
    assert len(tr._forward_pre_hooks) == 0
    with pytest.raises(ValueError, match="out of range"):
        install(tr, ctl, [7])


class Spy(Policy):
    def __init__(self):
        self.seen: list[tuple[int, str, float, int]] = []

    def on_query(self, layer, q, ctx):
        if layer == "blocks.0.attn1":
            self.seen.append((ctx.step, ctx.pass_name, ctx.timestep, ctx.batch_size))
        return q


@pytest.mark.parametrize("guidance,passes", [(4.0, ["cond", "uncond"]), (1.0, ["cond"])])
def test_step_and_pass_tracking(tiny_backbone, guidance, passes):
    ctl = AttentionController()
    spy = ctl.add(Spy())
    restore = install(tiny_backbone.pipe.transformer, ctl, [0])
    try:
        run(tiny_backbone, guidance=guidance)
        first = list(spy.seen)
        run(tiny_backbone, guidance=guidance)  # a new generation restarts at step 0 by itself
    finally:
        restore()
    ts = phases.scheduler_timesteps(tiny_backbone.pipe.scheduler, STEPS)
    expected = [(i, p, pytest.approx(ts[i]), 1) for i in range(STEPS) for p in passes]
    assert first == expected
    assert spy.seen == expected * 2


def test_fixed_context_pins_step(tiny_backbone):
    ctl = AttentionController()
    spy = ctl.add(Spy())
    tr = tiny_backbone.pipe.transformer
    restore = install(tr, ctl, [0])
    x = torch.zeros(1, tr.config.in_channels, 3, 4, 4)
    emb = torch.zeros(1, tiny_backbone.max_sequence_length, tr.config.text_dim)
    try:
        with torch.no_grad(), ctl.fixed(step=5, timestep=300.0, pass_name="record"):
            tr(hidden_states=x, timestep=torch.tensor([300.0]), encoder_hidden_states=emb)
    finally:
        restore()
    assert spy.seen == [(5, "record", 300.0, 1)]


def test_recorded_q_shapes_match_transformer_config(tiny_backbone):
    tr = tiny_backbone.pipe.transformer
    cfg = tr.config
    cache = QCache()
    ctl = AttentionController()
    restore = install(tr, ctl, all_blocks(tiny_backbone))
    try:
        with ctl.using(RecordQ(cache)):
            run(tiny_backbone)
    finally:
        restore()
    pipe = tiny_backbone.pipe
    pt, ph, pw = cfg.patch_size
    lat_f = (F - 1) // pipe.vae_scale_factor_temporal + 1
    tokens = (lat_f // pt) * (H // pipe.vae_scale_factor_spatial // ph) * (W // pipe.vae_scale_factor_spatial // pw)
    expected = (1, tokens, cfg.num_attention_heads, cfg.attention_head_dim)
    assert len(cache) == len(all_blocks(tiny_backbone)) * STEPS * 2  # layers x steps x (cond, uncond)
    assert {tuple(cache.get(*k).shape) for k in cache.keys()} == {expected}
    per = tokens * cfg.num_attention_heads * cfg.attention_head_dim * 4
    assert cache.nbytes == per * len(cache)


@pytest.mark.parametrize("inject_at", ["pre_rotary", "post_rotary"])
def test_reinjecting_own_q_reproduces_generation(tiny_backbone, inject_at):
    tr = tiny_backbone.pipe.transformer
    blocks = all_blocks(tiny_backbone)
    stock = run(tiny_backbone)
    cache = QCache()
    ctl = AttentionController()
    restore = install(tr, ctl, blocks, inject_at)
    try:
        with ctl.using(RecordQ(cache)):
            recorded_run = run(tiny_backbone)
        inject = InjectQ(cache)  # slot = step, source pass = the current pass
        with ctl.using(inject):
            injected = run(tiny_backbone)
    finally:
        restore()
    assert torch.equal(recorded_run, stock)
    assert inject.count == len(blocks) * STEPS * 2
    torch.testing.assert_close(injected, stock, rtol=0, atol=1e-6)


def test_injecting_foreign_q_changes_output_and_checks_shapes(tiny_backbone):
    tr = tiny_backbone.pipe.transformer
    cache = QCache()
    ctl = AttentionController()
    restore = install(tr, ctl, [1])
    try:
        with ctl.using(RecordQ(cache)):
            run(tiny_backbone, prompt="a blue circle jumps", seed=3)
        with ctl.using(InjectQ(cache, steps={0, 1})):
            changed = run(tiny_backbone)
        bad = QCache()
        for key in cache.keys():
            bad.put(*key, cache.get(*key)[:, :5])
        with ctl.using(InjectQ(bad)), pytest.raises(ValueError, match="same frames and size"):
            run(tiny_backbone)
        with ctl.using(InjectQ(QCache())), pytest.raises(KeyError):
            run(tiny_backbone)
        with ctl.using(InjectQ(QCache(), strict=False)):
            assert torch.equal(run(tiny_backbone), run_plain := run(tiny_backbone))
    finally:
        restore()
    assert not torch.allclose(changed, run_plain)


class DuplicateKV(Policy):
    """Appends a copy of the layer's own K/V: softmax over [K; K] equals softmax over K."""

    def extend_kv(self, layer, q, k, v, ctx):
        return KVExtension(k.clone(), v.clone())


class ForeignKV(Policy):
    """Appends different K/V (flipped in token order, values changed), optionally masked out."""

    def __init__(self, hide: bool):
        self.hide = hide

    def extend_kv(self, layer, q, k, v, ctx):
        mask = None
        if self.hide:  # own tokens visible, the extra ones hidden
            mask = torch.ones(1, 1, q.shape[1], 2 * k.shape[1], dtype=torch.bool)
            mask[..., k.shape[1]:] = False
        return KVExtension(k.flip(1), v.flip(1) * 3 + 1, mask)


def test_kv_extension_plumbing(tiny_backbone):
    stock = run(tiny_backbone)
    ctl = AttentionController()
    restore = install(tiny_backbone.pipe.transformer, ctl, all_blocks(tiny_backbone))
    try:
        with ctl.using(DuplicateKV()):
            duplicated = run(tiny_backbone)
        with ctl.using(ForeignKV(hide=True)):
            hidden = run(tiny_backbone)
        with ctl.using(ForeignKV(hide=False)):
            visible = run(tiny_backbone)
        with ctl.using(ForeignKV(hide=True), DuplicateKV()):  # two extensions combine
            both = run(tiny_backbone)
    finally:
        restore()
    torch.testing.assert_close(duplicated, stock, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(hidden, stock, rtol=1e-5, atol=1e-5)  # the mask is applied
    torch.testing.assert_close(both, stock, rtol=1e-5, atol=1e-5)
    assert (visible - stock).abs().max() > 1e-2  # extra keys do change the output


def test_items_and_batch_injection():
    ctl = AttentionController()
    ctl.reset(items=("s1", "s2"))
    ctx = CallContext(step=0, pass_name="cond", batch_size=2, items=ctl.context.items)
    assert ctx.items == ("s1", "s2")
    cache = QCache()
    cache.put("L", 0, "record", torch.ones(1, 3, 2, 4))
    inject = InjectQ(cache, slot=lambda c: 0, source_pass="record", items=[1])
    q = torch.zeros(2, 3, 2, 4)
    out = inject.on_query("L", q, ctx)
    assert out[0].abs().sum() == 0 and torch.equal(out[1], torch.ones(3, 2, 4))
    assert q.abs().sum() == 0  # the input is not modified in place


def test_phases():
    assert phases.in_range(600, (550, 950)) and phases.in_range(550, (950, 550))
    assert not phases.in_range(549.9, (550, 950))
    assert phases.first_fraction(20, 0.6) == list(range(12))
    assert phases.first_fraction(8, 0.0) == [] and phases.first_fraction(8, 1.0) == list(range(8))
    with pytest.raises(ValueError):
        phases.first_fraction(8, 1.5)
    ts = [1000.0, 900.0, 800.0, 700.0, 600.0, 500.0, 400.0]
    sched = phases.multishot_schedule(ts, ConsistencyConfig(sdsa_range=(550, 950), t_pres=750))
    assert sched == {"sdsa": [1, 2, 3, 4], "qpres": [1, 2], "qflow": [3, 4], "refine": [1, 2, 3, 4]}
    assert phases.nearest_step(ts, 640) == 4
    assert "qpres: steps 1..2" in phases.describe(ts, sched)


def test_scheduler_timesteps_match_pipeline(tiny_backbone):
    pipe = tiny_backbone.pipe
    ts = phases.scheduler_timesteps(pipe.scheduler, 6)
    sig = phases.scheduler_sigmas(pipe.scheduler, 6)
    pipe.scheduler.set_timesteps(6)
    assert ts == [float(t) for t in pipe.scheduler.timesteps]
    n = pipe.scheduler.config.num_train_timesteps
    assert sig == pytest.approx([t / n for t in ts], abs=1e-4)  # flow matching: t = sigma * 1000
    assert ts[0] == pytest.approx(1000.0) and all(a > b for a, b in zip(ts, ts[1:]))


def test_processor_rejects_bad_inject_point():
    with pytest.raises(ValueError, match="inject_at"):
        ControlledWanAttnProcessor(AttentionController(), layer_name(0), inject_at="middle")
