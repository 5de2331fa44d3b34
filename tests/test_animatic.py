"""The built-in animatic model as committed: loading, its codec, sampling and the frame counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from motionq.api import GroupRequest, ShotRequest
from motionq.backbones import load_backbone, model_fingerprint
from motionq.backbones.animatic import WEIGHTS_DIR, AnimaticConfig
from motionq.spriteworld import analyse, sample_clip
from motionq.train import world_config


@pytest.fixture(scope="module")
def animatic():
    return load_backbone("animatic")


def test_weights_are_safetensors_and_small():
    files = [p for p in WEIGHTS_DIR.rglob("*") if p.is_file()]
    weights = [p for p in files if p.suffix in (".safetensors", ".bin", ".pt", ".pth", ".ckpt")]
    assert weights and all(p.suffix == ".safetensors" for p in weights)
    assert sum(p.stat().st_size for p in files) <= 50 * 2**20


def test_loads_through_the_generic_folder_path(animatic):
    from diffusers import WanPipeline, WanTransformer3DModel

    assert isinstance(animatic.pipe, WanPipeline)
    assert isinstance(animatic.pipe.transformer, WanTransformer3DModel)
    assert animatic.fingerprint() == model_fingerprint("animatic")
    cfg = AnimaticConfig()
    assert tuple(animatic.native_size()) == (cfg.height, cfg.width)


def test_caption_length_follows_the_published_weights(animatic, tmp_path):
    """The caption length is pinned by no weight, so it comes from the weights' training.json:
    the committed weights were trained on 32 tokens (two-character captions are up to 25)."""
    import json

    from motionq.backbones.animatic import published_config

    trained = json.loads((WEIGHTS_DIR / "training.json").read_text())["config"]["model"]
    assert animatic.max_sequence_length == published_config().max_sequence_length \
        == trained["max_sequence_length"] == 32
    assert published_config(tmp_path) == AnimaticConfig()  # no training.json: the defaults


def _round_trip(codec, frames: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(frames).float().div(255).mul(2).sub(1).permute(3, 0, 1, 2)[None]
    with torch.no_grad():
        rec = codec.decode(codec.encode(x).latent_dist.mode()).sample
    return ((rec[0].permute(1, 2, 3, 0).clamp(-1, 1) + 1) * 127.5).round().byte().numpy()


def test_codec_round_trip_keeps_identity_and_motion(animatic):
    """Ground-truth sprite clips through encode/decode still read correctly with the analyser."""
    codec = animatic.pipe.vae
    cfg = AnimaticConfig()
    wcfg = world_config(cfg)  # the shapes the model was trained on
    ok = 0
    n = 12
    for seed in range(n):
        clip = sample_clip(10_000 + seed, wcfg, detail="full")
        frames = _round_trip(codec, clip.frames)
        want = analyse(clip.frames)
        got = analyse(frames)
        same = len(got.characters) == len(want.characters) and all(
            (a.shape, a.colour, a.motion) == (b.shape, b.colour, b.motion)
            for a, b in zip(sorted(got.characters, key=lambda t: t.colour),
                            sorted(want.characters, key=lambda t: t.colour))
        )
        ok += int(same)
    assert ok >= n - 1, f"codec round trip kept {ok}/{n} clips"


def test_touching_sprites_through_the_codec_count_as_two(animatic):
    """The world keeps sprites apart, the model does not: the codec mixes two touching sprites'
    colours along their seam (purple by orange reads red), which must not count as a third
    character. Before the analyser dropped seams, 24 of 100 such pairs read as three."""
    from motionq.spriteworld import render_scene, touching_pair_scene

    wcfg = world_config(AnimaticConfig())
    n, two = 40, 0
    for i in range(n):
        scene = touching_pair_scene(7_000_000 + i, wcfg, gap=0.0)
        a, b = scene.characters
        frames = _round_trip(animatic.pipe.vae, render_scene(scene))
        found = analyse(frames)
        if len(found.characters) == 2:
            two += 1
            assert sorted(t.colour for t in found.characters) == sorted((a.colour, b.colour)), i
    assert two >= n - 2, f"{two}/{n} touching pairs read as two characters"


def test_sampling_is_deterministic_and_sized(animatic):
    shot = ShotRequest(shot_id="a", prompt="a red circle moves right on a navy background",
                       num_frames=8, seed=3, steps=4, guidance=4.0)
    out1 = np.asarray(animatic.render_group(GroupRequest(shots=(shot,)))["a"])
    out2 = np.asarray(animatic.render_group(GroupRequest(shots=(shot,)))["a"])
    assert out1.shape == (8, 32, 32, 3) and out1.dtype == np.uint8
    assert np.array_equal(out1, out2)
    other = ShotRequest(**{**shot.__dict__, "seed": 4})
    assert not np.array_equal(out1, np.asarray(animatic.render_group(GroupRequest(shots=(other,)))["a"]))


def test_lr_schedule_warms_up_then_anneals(tmp_path):
    import math

    from motionq.train import TrainConfig, Trainer

    tr = Trainer(tmp_path / "run", TrainConfig(lr=1e-3, warmup=10, anneal_from=100, anneal_to=200,
                                               anneal_floor=0.1))
    lrs = {}
    for step in (0, 9, 50, 100, 150, 200, 400):
        tr.step = step
        lrs[step] = tr._lr()
    assert lrs[0] == 1e-4 and lrs[9] == 1e-3 and lrs[50] == 1e-3 and lrs[100] == 1e-3
    assert math.isclose(lrs[150], 1e-3 * 0.55) and math.isclose(lrs[200], 1e-4)
    assert lrs[400] == lrs[200]  # held at the floor after the end


def test_resume_restores_adam_moments_without_underflow(tmp_path):
    """Squared gradients are ~1e-8: the checkpoint must keep them (fp16 turned them into zeros,
    and the resumed run's first updates blew the loss up)."""
    from motionq.train import TrainConfig, Trainer

    torch.manual_seed(0)
    tr = Trainer(tmp_path / "run", TrainConfig(batch=2, warmup=1))
    tr.diffusion_step()
    tr.save()
    back = Trainer(tmp_path / "run")
    assert not back.resumed_without_optimizer
    names = dict(_named(back))
    for n, p in _named(tr):
        want = tr.opt.state[p]["exp_avg_sq"]
        got = back.opt.state[names[n]]["exp_avg_sq"]
        nonzero = want > 0
        assert bool((got[nonzero] > 0).all()), n
        assert torch.allclose(got, want, rtol=1e-2, atol=0), n


def test_publish_replaces_the_weights_folder_whole(tmp_path):
    import json

    from motionq.backbones.pipeline import check_folder
    from motionq.train import TrainConfig, Trainer

    torch.manual_seed(0)
    tr = Trainer(tmp_path / "run", TrainConfig(batch=2, warmup=1))
    dest = tmp_path / "weights"
    tr.publish(dest)
    tr.diffusion_step()
    tr.step += 1
    tr.publish(dest)  # over an existing folder: old weights go aside first, then away
    check_folder(dest)
    assert json.loads((dest / "training.json").read_text())["step"] == tr.step
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "weights"]


def _named(tr):
    from motionq.train import _named_trainables

    return list(_named_trainables(tr))


def test_step_batches_depend_on_the_step_alone(tmp_path):
    """GPU runs draw batches in worker processes: a batch must be the same whichever process
    made it, and train like an in-process one."""
    from dataclasses import asdict

    from motionq.train import BatchStream, TrainConfig, Trainer, step_batch

    cfg = TrainConfig(batch=3, caption_dropout=0.5)
    args = (asdict(cfg.model), cfg.seed)
    a = step_batch(*args, 7, 3, 0.5)
    b = step_batch(*args, 7, 3, 0.5)
    c = step_batch(*args, 8, 3, 0.5)
    assert a[0].dtype == np.uint8 and a[0].shape == (3, cfg.model.num_frames, 32, 32, 3)
    assert np.array_equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    stream = BatchStream(cfg, workers=1, first_step=7)
    try:
        got = stream.next()
    finally:
        stream.close()
    assert np.array_equal(got[0], a[0]) and torch.equal(got[1], a[1]) and torch.equal(got[2], a[2])
    tr = Trainer(tmp_path / "run", cfg)
    assert np.isfinite(tr.diffusion_step(a))


def test_chunk_overrides_change_the_data_and_persist(tmp_path):
    """`--p-two` and `--max-sequence-length` change a resumed run's batches and stay in its
    checkpoint, so the next chunk trains on the same data."""
    from dataclasses import asdict

    from motionq.spriteworld import parse_caption
    from motionq.train import TrainConfig, Trainer, run, step_batch

    Trainer(tmp_path / "run", TrainConfig(batch=2, warmup=1, codec_steps=0)).save()
    tr = run(tmp_path / "run", minutes=5, max_steps=1,
             overrides={"p_two": 1.0, "max_sequence_length": 24, "batch": 2})
    back = Trainer(tmp_path / "run")
    assert back.step == tr.step == 1
    assert back.cfg.p_two == 1.0 and back.cfg.model.max_sequence_length == 24
    frames, ids, mask = step_batch(asdict(back.cfg.model), 0, 5, 6, 0.0, back.cfg.p_two)
    assert ids.shape == (6, 24)
    from motionq.train import world_config
    from motionq.spriteworld import sample_batch

    _, captions, _ = sample_batch(np.random.default_rng(0), world_config(back.cfg.model, 1.0), 6)
    assert all(len(parse_caption(c)["characters"]) == 2 for c in captions)


def test_motion_free_captions_are_a_share_of_the_data():
    """`--p-no-motion`: that share of captions names who but not how; 0 (the default) draws
    exactly the captions it always did."""
    from motionq.spriteworld import parse_caption, sample_batch
    from motionq.train import world_config

    cfg = AnimaticConfig()

    def captions(p):
        return sample_batch(np.random.default_rng(5), world_config(cfg, 0.25, p), 24, as_float=False)[1]

    def motions(c):
        return [ch.get("motion") for ch in parse_caption(c)["characters"]]

    assert all(m is None for c in captions(1.0) for m in motions(c))
    assert all(m is not None for c in captions(0.0) if c for m in motions(c))
    assert captions(0.0) == sample_batch(np.random.default_rng(5), world_config(cfg, 0.25), 24, as_float=False)[1]
    half = captions(0.5)
    assert 0 < sum(all(m is None for m in motions(c)) for c in half if c) < len(half)


def test_train_only_text_moves_the_text_side_and_keeps_the_picture(tmp_path):
    """`--train-only text`: a chunk updates the text encoder, text embedder and cross-attention
    keys/values; every other weight stays exactly at its EMA value, through save and resume."""
    from motionq.train import TRAINABLE_PARTS, TrainConfig, Trainer, run

    tr = Trainer(tmp_path / "run", TrainConfig(batch=2, warmup=1, codec_steps=0))
    tr.diffusion_step()  # raw weights now differ from their EMA
    tr.save()
    ema_before = {k: v.clone() for k, v in tr.ema.items()}
    raw_before = {k: v.clone() for k, v in tr._trainable_state().items()}
    tr = run(tmp_path / "run", minutes=5, max_steps=3, overrides={"train_only": "text", "lr": 1e-2})
    assert tr.step == 3
    back = Trainer(tmp_path / "run")
    assert back.cfg.train_only == "text"
    raw = back._trainable_state()
    text = TRAINABLE_PARTS["text"]
    frozen = [k for k in raw if not text(k)]
    assert any(".attn1." in k for k in frozen) and any(".ffn." in k for k in frozen)
    assert any(".attn2.to_q." in k for k in frozen) and "transformer.blocks.0.attn2.to_k.weight" not in frozen
    for k in frozen:  # the published (EMA) value, raw and EMA alike
        assert torch.equal(raw[k], ema_before[k]), k
        assert torch.equal(back.ema[k], ema_before[k]), k
    moved = [k for k in raw if text(k) and raw[k].dtype.is_floating_point and not torch.equal(raw[k], raw_before[k])]
    assert any(k.startswith("text_encoder.") for k in moved)
    assert any(".attn2.to_v." in k for k in moved)
    assert all(not p.requires_grad for n, p in back.transformer.named_parameters() if ".ffn." in n)


def test_grown_text_encoder_starts_as_the_old_one_and_resumes(tmp_path):
    """`--text-layers` appends identity blocks: the same prompt embeddings (so the same
    samples) until training changes them; the grown run saves and resumes with the new depth."""
    from motionq.backbones.animatic.text import encode_prompts
    from motionq.train import TrainConfig, Trainer, run

    tr = Trainer(tmp_path / "run", TrainConfig(batch=2, warmup=1, codec_steps=0))
    tr.diffusion_step()
    tr.save()
    prompts = ["a red circle moves left and a blue square bounces", ""]
    with torch.no_grad():
        before = encode_prompts(tr.tokenizer, tr.ema_pipeline().text_encoder, prompts, 16)
    tr = run(tmp_path / "run", minutes=5, max_steps=1, overrides={"text_layers": 3})
    assert tr.step == 1  # grown, not trained: max_steps already reached
    with torch.no_grad():
        after = encode_prompts(tr.tokenizer, tr.ema_pipeline().text_encoder, prompts, 16)
    assert len(tr.text_encoder.encoder.block) == 3
    assert torch.allclose(before, after, atol=1e-6)
    tr.diffusion_step()
    tr.save()
    back = Trainer(tmp_path / "run")
    assert back.cfg.model.text_layers == 3 and len(back.text_encoder.encoder.block) == 3
    assert back.step == 2
    with pytest.raises(SystemExit, match="can only grow"):
        back.grow_text_encoder(2)


def test_checkpoint_shards_round_trip(tmp_path):
    """--mirror writes files a device machine can send back (< 16 MiB); --import-shards rebuilds
    the run folder from them."""
    from safetensors.torch import load_file

    from motionq.train import TrainConfig, Trainer, export_shards, import_shards

    tr = Trainer(tmp_path / "run", TrainConfig(batch=2, warmup=1))
    tr.diffusion_step()
    tr.save()
    export_shards(tr.out, tmp_path / "shards")
    assert all(f.stat().st_size < 16 * 2**20 for f in (tmp_path / "shards").iterdir())
    import_shards(tmp_path / "shards", tmp_path / "back")
    back = Trainer(tmp_path / "back")
    assert back.step == tr.step == 1 and back.resumed_without_optimizer
    for name in ("model", "ema"):
        want, got = load_file(tr.out / f"{name}.safetensors"), load_file(back.out / f"{name}.safetensors")
        assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)


def test_binding_loss_contrasts_subject_swapped_captions(tmp_path):
    """`--binding`: batches carry the swapped captions of the eligible clips (workers too), and
    a step scores them, logs the gap and still trains."""
    from dataclasses import asdict

    from motionq.spriteworld import swap_subjects
    from motionq.train import TrainConfig, Trainer, binding_contrast, step_batch

    cfg = TrainConfig(batch=8, warmup=1, codec_steps=0, p_two=1.0, binding=1.0, caption_dropout=0.0)
    frames, ids, mask, contrast = step_batch(asdict(cfg.model), cfg.seed, 3, 8, 0.0, 1.0, True)
    assert contrast is not None
    idx, nids, nmask = contrast
    assert 0 < len(idx) <= 8 and nids.shape == (len(idx), ids.shape[1]) and nmask.shape == nids.shape
    assert not any(torch.equal(nids[k], ids[i]) for k, i in enumerate(idx.tolist()))
    assert binding_contrast(None, ["", "a red circle moves left"], 32) is None  # nothing eligible
    assert swap_subjects("a red circle moves left while a blue square stays still") is not None
    tr = Trainer(tmp_path / "run", cfg)
    before = {k: v.clone() for k, v in tr._trainable_state().items()}
    loss = tr.diffusion_step((frames, ids, mask, contrast))
    assert np.isfinite(loss) and len(tr.binding_gap) == 1
    assert any(not torch.equal(before[k], v) for k, v in tr._trainable_state().items())
    tr.binding_gap.clear()
    assert np.isfinite(tr.diffusion_step()) and len(tr.binding_gap) == 1  # the in-process batch path


def test_contextualise_text_makes_words_carry_their_clause(tmp_path):
    """The text probes change the encoder so a motion word's vector depends on whose motion it
    is, keep the embeddings close, and copy the result into the EMA that gets published."""
    from motionq.backbones.animatic.text import encode_prompts
    from motionq.train import TrainConfig, Trainer

    torch.manual_seed(0)
    tr = Trainer(tmp_path / "run", TrainConfig(batch=2, warmup=1, codec_steps=0, p_two=1.0))
    a = "a red circle moves left while a blue square stays still"
    b = "a blue square moves left while a red circle stays still"

    def moves_vector_gap() -> float:
        with torch.no_grad():
            ea, eb = (encode_prompts(tr.tokenizer, tr.text_encoder, [t], 32)[0] for t in (a, b))
        return float((ea[3] - eb[3]).norm())  # "moves", whose subject differs

    before = moves_vector_gap()
    first = tr.contextualise_text(1, batch=32)
    last = tr.contextualise_text(150, batch=32, lr=3e-3)
    assert last["motion"] < first["motion"] and last["colour"] < first["colour"]
    assert moves_vector_gap() > 3 * before
    for k, v in tr.text_encoder.state_dict().items():
        assert torch.equal(tr.ema[f"text_encoder.{k}"], v)
    assert all(p.requires_grad for p in tr.text_encoder.parameters())


def test_batched_sampling_matches_clip_by_clip(animatic):
    """The in-training eval samples many clips per call (for a GPU); each clip must still come
    from its own seed alone, so batched and one-by-one figures agree."""
    from motionq.train import sample_frames, sample_frames_batch

    cfg = AnimaticConfig()
    prompts = ["a red circle moves right on a navy background", "a green square bounces to the left",
               "a blue triangle stays still and a yellow diamond moves up on a black background"]
    seeds = [11, 12, 13]
    batched = sample_frames_batch(animatic.pipe, prompts, seeds, cfg, steps=4)
    for prompt, seed, frames in zip(prompts, seeds, batched):
        alone = sample_frames(animatic.pipe, prompt, seed, cfg, steps=4)
        assert frames.shape == alone.shape and frames.dtype == np.uint8
        assert np.abs(frames.astype(int) - alone.astype(int)).max() <= 2, prompt
    assert not np.array_equal(batched[0], batched[1])


def test_validation_scores_count_every_asked_character(animatic):
    from motionq.train import validation_scores

    scores, sheet = validation_scores(animatic.pipe, AnimaticConfig(), samples=4, batch=2, steps=4, keep=3)
    assert len(sheet) == 3 and all(f.shape[-1] == 3 for _, f in sheet)
    assert 4 <= scores["characters_asked"] <= 8
    assert scores["motion"] == scores["motion_right"] / scores["characters_asked"]
    assert sum(scores["count_errors"].values()) == round((1 - scores["count"]) * 4)


def test_training_eval_scores_validation_captions_and_writes_a_sheet(tmp_path):
    from motionq.train import TrainConfig, Trainer

    tr = Trainer(tmp_path / "run", TrainConfig(eval_samples=2, eval_batch=2))
    z = tr.cfg.model.z_dim  # an untrained codec has no latent statistics yet: neutral ones
    tr.codec.register_to_config(latents_mean=[0.0] * z, latents_std=[1.0] * z)
    result = tr.evaluate()
    assert set(result) >= {"colour", "shape", "motion", "count", "two_character_motion", "step", "samples"}
    assert result["samples"] == 2 and tr.eval_log[-1] == result
    assert (tmp_path / "run" / "samples" / "step_000000.png").is_file()
