"""Motion transfer on the tiny Wan: clip loading, VAE encoding, Q recording, strength."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from motionq.cli import app
from motionq.methods import transfer as T
from motionq.video import VideoError, write_video

F, H, W = 9, 32, 32
PROMPT = "a red square moves left"


def latents(bb, clip, strength, seed=0, steps=8, **kw):
    return T.transfer(bb.pipe, clip, PROMPT, strength=strength, num_frames=F, height=H, width=W,
                      steps=steps, seed=seed, max_sequence_length=bb.max_sequence_length,
                      output_type="latent", **kw)


def test_default_blocks_scale_the_papers_setting():
    assert T.default_blocks(30) == list(range(20, 30))  # Wan 2.1: blocks 20-30 of 30
    assert T.default_blocks(12) == [8, 9, 10, 11]
    assert T.default_blocks(4) == [3]
    assert T.default_blocks(2) == [1]
    assert T.default_blocks(1) == [0]


def test_load_clip_fits_frames_and_size(tmp_path, moving_square):
    path = write_video(moving_square(20, (48, 64)), tmp_path / "ref.mp4", fps=10)
    clip = T.load_clip(path, F, H, W)
    assert clip.shape == (F, H, W, 3) and clip.dtype == np.uint8
    with pytest.raises(VideoError, match="no such file"):
        T.load_clip(tmp_path / "missing.mp4", F, H, W)


def test_encode_video_shape_and_normalisation(tiny_backbone, moving_square):
    pipe = tiny_backbone.pipe
    z = T.encode_video(pipe, moving_square(F, (H, W)))
    assert z.shape == (1, pipe.vae.config.z_dim, (F - 1) // 4 + 1, H // 8, W // 8)
    assert z.dtype == torch.float32 and torch.isfinite(z).all()
    # inverse of WanPipeline's decode normalisation (z * std + mean)
    raw = pipe.vae.encode(torch.zeros(1, 3, F, H, W)).latent_dist.mode()
    mean = torch.tensor(pipe.vae.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(pipe.vae.config.latents_std).view(1, -1, 1, 1, 1)
    zero = T.encode_video(pipe, np.full((F, H, W, 3), 127.5, np.float32).astype(np.uint8))
    torch.testing.assert_close(zero * std + mean, raw, atol=0.05, rtol=0)


@pytest.mark.parametrize("record", ["single", "per_step"])
def test_q_cache_contents_and_bytes(tiny_backbone, moving_square, record):
    pipe = tiny_backbone.pipe
    cfg = pipe.transformer.config
    z = T.encode_video(pipe, moving_square(F, (H, W)))
    pe, _ = T._encode_prompts(pipe, PROMPT, "", 4.0, tiny_backbone.max_sequence_length)
    motion = T.record_motion(pipe, z, pe, steps=8, strength=0.5, blocks=[0, 1], record=record)
    tokens = 3 * (H // 16) * (W // 16)
    per = tokens * cfg.num_attention_heads * cfg.attention_head_dim * 4  # fp32
    slots = 1 if record == "single" else 4  # per_step: only the 4 injected steps of 8
    assert motion.cache.slots() == list(range(slots))
    assert motion.cache.layers() == ["blocks.0.attn1", "blocks.1.attn1"]
    assert motion.nbytes == per * 2 * slots
    assert {tuple(motion.cache.get(*k).shape) for k in motion.cache.keys()} == {
        (1, tokens, cfg.num_attention_heads, cfg.attention_head_dim)
    }
    assert "MiB" in motion.cache.summary()
    if record == "single":
        assert motion.timesteps == [T.DEFAULT_RECORD_T]


def test_strength_zero_is_plain_generation(tiny_backbone, moving_square):
    plain = T.generate(tiny_backbone.pipe, PROMPT, num_frames=F, height=H, width=W, steps=8,
                       max_sequence_length=tiny_backbone.max_sequence_length, output_type="latent")
    assert torch.equal(latents(tiny_backbone, moving_square(F, (H, W), seed=1), 0.0), plain)


@pytest.mark.parametrize("record", ["single", "per_step"])
def test_output_moves_away_monotonically_with_strength(tiny_backbone, moving_square, record):
    clip = moving_square(F, (H, W), seed=11)
    outs = [latents(tiny_backbone, clip, s, record=record) for s in (0.0, 0.25, 0.5, 1.0)]
    dist = [float((o - outs[0]).pow(2).mean().sqrt()) for o in outs]
    assert dist[0] == 0.0
    assert all(a < b for a, b in zip(dist, dist[1:])), dist


def test_record_prompt_changes_only_the_recording(tiny_backbone, moving_square):
    clip = moving_square(F, (H, W), seed=3)
    default = latents(tiny_backbone, clip, 0.5)
    # the target prompt named explicitly is the default recording, bit for bit
    assert torch.equal(latents(tiny_backbone, clip, 0.5, record_prompt=PROMPT), default)
    # another prompt reaches the recorded Q (through the cross-attention before the controlled
    # blocks) and so the output; at strength 0 nothing is recorded and it cannot matter
    assert not torch.equal(latents(tiny_backbone, clip, 0.5, record_prompt=""), default)
    assert torch.equal(latents(tiny_backbone, clip, 0.0, record_prompt=""), latents(tiny_backbone, clip, 0.0))


def test_init_mix_starts_from_the_seeded_noise_plus_the_reference(tiny_backbone, moving_square):
    clip = moving_square(F, (H, W), seed=4)
    default = latents(tiny_backbone, clip, 0.5)
    # a vanishing share of the reference: the start is the pipeline's own noise for that seed
    torch.testing.assert_close(latents(tiny_backbone, clip, 0.5, init_mix=1e-7), default, atol=1e-4, rtol=1e-4)
    mixed = [latents(tiny_backbone, clip, 0.0, init_mix=m) for m in (0.0, 0.2, 0.5)]
    # without injection it still moves the output, more with a larger share
    dist = [float((o - mixed[0]).pow(2).mean().sqrt()) for o in mixed]
    assert dist[0] == 0.0 and dist[0] < dist[1] < dist[2], dist
    with pytest.raises(ValueError, match="init_mix"):
        latents(tiny_backbone, clip, 0.5, init_mix=1.0)


def test_pre_and_post_rotary_injection_agree(tiny_backbone, moving_square):
    # same positions in reference and target: rotary commutes with the replacement
    clip = moving_square(F, (H, W), seed=5)
    a = latents(tiny_backbone, clip, 0.5, inject_at="pre_rotary")
    b = latents(tiny_backbone, clip, 0.5, inject_at="post_rotary")
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_transfer_returns_frames_and_reports_progress(tiny_backbone, tmp_path, moving_square):
    path = write_video(moving_square(12, (40, 40)), tmp_path / "ref.mp4")
    events = []
    video = T.transfer(tiny_backbone.pipe, path, PROMPT, strength=0.5, num_frames=F, height=H,
                       width=W, steps=4, max_sequence_length=tiny_backbone.max_sequence_length,
                       progress=lambda *e: events.append(e))
    assert video.shape == (F, H, W, 3) and video.dtype == np.uint8
    assert ("record", 1, 1) in events and ("sample", 4, 4) in events
    # the controller is gone afterwards: a plain run is the stock one
    from diffusers.models.transformers.transformer_wan import WanAttnProcessor

    assert all(type(p) is WanAttnProcessor for p in tiny_backbone.pipe.transformer.attn_processors.values())
    assert len(tiny_backbone.pipe.transformer._forward_pre_hooks) == 0


def test_transfer_argument_errors(tiny_backbone, tmp_path, moving_square):
    clip = moving_square(F, (H, W))
    with pytest.raises(ValueError, match="num_frames must be 1 \\+ 4k"):
        latents_kw = dict(num_frames=10, height=H, width=W)
        T.transfer(tiny_backbone.pipe, clip, PROMPT, **latents_kw)
    with pytest.raises(ValueError, match="multiples of 16"):
        T.transfer(tiny_backbone.pipe, clip, PROMPT, num_frames=F, height=40, width=W)
    with pytest.raises(ValueError, match="strength"):
        latents(tiny_backbone, clip, 1.5)
    with pytest.raises(ValueError, match="record must be"):
        latents(tiny_backbone, clip, 0.5, record="sometimes")
    with pytest.raises(VideoError, match="is a directory"):
        T.transfer(tiny_backbone.pipe, tmp_path, PROMPT, num_frames=F, height=H, width=W)


def test_motion_size_mismatch_is_reported(tiny_backbone, moving_square):
    pipe = tiny_backbone.pipe
    z = T.encode_video(pipe, moving_square(F, (H, W)))
    pe, _ = T._encode_prompts(pipe, PROMPT, "", 4.0, tiny_backbone.max_sequence_length)
    motion = T.record_motion(pipe, z, pe, steps=4, strength=0.5)
    with pytest.raises(ValueError, match="same frames and size"):
        T.generate(pipe, PROMPT, motion=motion, strength=0.5, num_frames=5, height=H, width=W,
                   steps=4, max_sequence_length=tiny_backbone.max_sequence_length)


def test_cli_transfer(tiny_folder, tmp_path, moving_square):
    ref = write_video(moving_square(12, (40, 40)), tmp_path / "ref.mp4")
    out = tmp_path / "out.mp4"
    runner = CliRunner()
    res = runner.invoke(app, ["transfer", "--model", str(tiny_folder), "--clip", str(ref),
                              "--prompt", PROMPT, "--steps", "3", "--strength", "0.6", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert out.exists() and "wrote" in res.output
    bad = runner.invoke(app, ["transfer", "--model", str(tiny_folder), "--clip", str(tmp_path / "nope.mp4"),
                              "--prompt", PROMPT, "-o", str(out)])
    assert bad.exit_code == 2
    assert "no such file" in bad.output and "Traceback" not in bad.output
    assert len(bad.output.strip().splitlines()) == 1
    # option mistakes and an unwritable output are found before any model is loaded (the
    # model named here does not exist: reaching it would be another error)
    for args, said in ((["--record", "perstep"], "--record: unknown value 'perstep'"),
                       (["--inject-at", "pre"], "--inject-at: unknown value 'pre'"),
                       (["-o", str(tmp_path / "out.txt")], "unsupported extension")):
        early = runner.invoke(app, ["transfer", "--model", str(tmp_path / "no-model"), "--clip", str(ref),
                                    "--prompt", PROMPT, *args])
        assert early.exit_code == 2 and said in early.output, early.output


def _per_frame_codec_pipeline():
    """The tiny Wan with a per-frame codec (temporal factor 1), like the built-in model's."""
    from diffusers import WanPipeline
    from diffusers.configuration_utils import ConfigMixin, register_to_config
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
    from diffusers.models.modeling_outputs import AutoencoderKLOutput
    from diffusers.models.modeling_utils import ModelMixin

    from motionq.backbones.tiny import build_pipeline

    class FrameCodec(ModelMixin, ConfigMixin):
        @register_to_config
        def __init__(self, z_dim=4, scale_factor_spatial=8, scale_factor_temporal=1,
                     latents_mean=(0.0,) * 4, latents_std=(1.0,) * 4):
            super().__init__()
            self.enc = torch.nn.Conv2d(3 * 64, z_dim, 1)
            self.dec = torch.nn.Conv2d(z_dim, 3 * 64, 1)

        def _map(self, x, fn):
            b, c, f, h, w = x.shape
            y = fn(x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w))
            return y.reshape(b, f, *y.shape[1:]).permute(0, 2, 1, 3, 4)

        def encode(self, x, return_dict=True):
            mean = self._map(x, lambda fr: self.enc(torch.nn.functional.pixel_unshuffle(fr, 8)))
            dist = DiagonalGaussianDistribution(torch.cat([mean, torch.full_like(mean, -30.0)], 1), deterministic=True)
            return AutoencoderKLOutput(latent_dist=dist)

        def decode(self, z, return_dict=True):
            return (self._map(z, lambda fr: torch.tanh(torch.nn.functional.pixel_shuffle(self.dec(fr), 8))),)

    torch.manual_seed(0)
    base = build_pipeline(0)
    pipe = WanPipeline(tokenizer=base.tokenizer, text_encoder=base.text_encoder, vae=FrameCodec().eval(),
                       scheduler=base.scheduler, transformer=base.transformer)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_per_frame_codec_gets_exact_frame_counts(moving_square):
    from motionq.backbones.pipeline import PipelineBackbone

    pipe = _per_frame_codec_pipeline()
    assert T.pipeline_num_frames(pipe, 6) == 5  # WanPipeline turns n into n + 1 when t = 1
    bb = PipelineBackbone(pipe, name="t1", native_size=(32, 32), max_sequence_length=16, default_frames=6)
    assert bb.generate("a cat", steps=2).shape == (6, 32, 32, 3)
    out = bb.transfer(moving_square(6, (32, 32)), "a cat", steps=2, strength=1.0, record="per_step")
    assert out.shape == (6, 32, 32, 3)
