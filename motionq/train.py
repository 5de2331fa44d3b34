"""Training of the built-in "animatic" model on the procedural sprite world.

Two stages, one resumable run:
1. the per-frame `SpriteCodec` autoencoder (a few minutes), then frozen;
2. flow matching of the Wan transformer and the text encoder on codec latents.

A run lives in chunks (sessions are stopped; machines change): every `checkpoint_every` steps
the whole state (weights, EMA, bf16 optimiser moments, step, RNG, loss and eval logs) is written
to one folder, each file atomically (temp + rename) and `state.json` last, so a crash mid-save
leaves at worst weights one checkpoint ahead of the step counter (a resume just goes on), and
`--minutes` ends a chunk cleanly. Sampling
quality is measured in-process with the sprite analyser (EMA weights, fixed held-out seeds),
never in a second torch process beside it: two processes on two cores ruin each other.

    python -m motionq.train --out checkpoints/animatic --minutes 60
    python -m motionq.train --out checkpoints/animatic --publish   # EMA -> package weights
"""

from __future__ import annotations

import argparse
import base64
import copy
import functools
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from motionq.backbones.animatic.build import WEIGHTS_DIR, AnimaticConfig, build_pipeline
from motionq.backbones.animatic.text import encode_tokens, tokenize
from motionq.methods.transfer import pipeline_num_frames


@dataclass
class TrainConfig:
    """Hyper-parameters of a run (stored in the checkpoint; a resumed run keeps them)."""

    batch: int = 16
    lr: float = 3e-4
    warmup: int = 300
    weight_decay: float = 0.01
    codec_steps: int = 4000
    codec_batch: int = 64
    codec_lr: float = 1e-3
    ema: float = 0.999
    caption_dropout: float = 0.1
    # Logit-normal noise levels with a positive mean: more training at high noise, where the
    # layout and the motion of a clip are decided.
    t_mean: float = 0.3
    t_std: float = 1.0
    # Weight of the auxiliary loss on frame differences of the predicted clean latent.
    motion_loss: float = 1.0
    # Cosine decay of the learning rate from `anneal_from` to `anneal_to` (steps), down to
    # `anneal_floor` x lr, then held there. 0 = constant lr. Set when a run is resumed for its
    # last chunk (`--anneal-to`), the usual final low-lr phase of a run.
    anneal_from: int = 0
    anneal_to: int = 0
    anneal_floor: float = 0.1
    checkpoint_every: int = 250
    eval_every: int = 1000
    eval_samples: int = 24
    eval_batch: int = 1  # clips per pipeline call in the eval (a GPU wants ~100)
    log_every: int = 50
    seed: int = 0
    # Share of two-character scenes in the training data. 0.25 up to step 30,795; raised to
    # 0.5 after: with two characters the model put the right motions on the wrong sprites.
    p_two: float = 0.25
    # Share of captions that leave out the motion phrase. 0 up to step 43,704, so a prompt
    # that names who but not how (a motion-transfer target, docs/motion-transfer.md) was never
    # seen in training; 0.25 in the text-side fine-tune to step 47,438.
    p_no_motion: float = 0.0
    # Weight of the binding loss (0 = off): for two-character captions whose characters move
    # differently, the same noisy clip is also scored against the caption with the subjects
    # swapped (`swap_subjects`), and tau * softplus((loss_true - loss_swapped) / tau) asks
    # the true caption to explain the clip better. Plain denoising hardly separates the two
    # (the published model's predictions for them differ by ~0.1% of the guidance signal).
    binding: float = 0.0
    binding_tau: float = 0.01
    # Which weights a chunk trains (`TRAINABLE_PARTS`): "all", or only the text side, for a
    # fine-tune that changes what captions mean without redrawing the picture (every
    # all-weights fine-tune of the published model cost exact count, docs/model-card.md).
    train_only: str = "all"
    model: AnimaticConfig = field(default_factory=AnimaticConfig)


# Weight-name tests of the trainable parts (names as in `Trainer._trainable_state`).
#   text:  the text encoder, the transformer's text embedder and the key/value side of every
#          cross-attention; the video stream (self-attention, FFN, queries, outputs) is fixed.
#   cross: text, plus the whole cross-attention (its queries and output projection too).
_TEXT_SIDE = ("text_encoder.", "transformer.condition_embedder.text_embedder.")
_CROSS_KV = (".attn2.to_k.", ".attn2.to_v.", ".attn2.norm_k.")
TRAINABLE_PARTS = {
    "all": lambda name: True,
    "text": lambda name: name.startswith(_TEXT_SIDE) or any(t in name for t in _CROSS_KV),
    "cross": lambda name: name.startswith(_TEXT_SIDE) or ".attn2." in name,
}


# ---------------------------------------------------------------------------------------------
# Data


def world_config(model: AnimaticConfig, p_two: float | None = None, p_no_motion: float = 0.0):
    """The sprite world a model of these sizes trains on (``p_two``: share of two-character
    scenes; None = the world's default, which held-out evaluations use; ``p_no_motion``: share
    of captions without their motion phrase)."""
    from motionq.spriteworld import WorldConfig

    # Caption dropout for guidance is the trainer's own (TrainConfig.caption_dropout).
    extra: dict = {} if p_two is None else {"p_two": p_two}
    if p_no_motion:
        extra["p_no_motion"] = p_no_motion
    return WorldConfig(height=model.height, width=model.width, num_frames=model.num_frames,
                       shapes=tuple(model.shapes), p_empty=0.0, **extra)


def video_tensor(frames: np.ndarray) -> torch.Tensor:
    """(N, F, H, W, 3) uint8 or [0, 1] float -> (N, 3, F, H, W) in [-1, 1]."""
    x = torch.from_numpy(np.asarray(frames, dtype=np.float32))
    if frames.dtype == np.uint8:
        x = x / 255.0
    return (x * 2 - 1).permute(0, 4, 1, 2, 3).contiguous()


def sample_batch(rng: np.random.Generator, cfg: TrainConfig, n: int):
    from motionq.spriteworld import sample_batch as world_batch

    frames, captions, _ = world_batch(rng, world_config(cfg.model, cfg.p_two, cfg.p_no_motion), n)
    return video_tensor(frames), list(captions)


def binding_contrast(tokenizer, captions: list[str], max_sequence_length: int):
    """(indices, ids, mask) of the captions that have a subject-swapped contrast, tokenized;
    None when none has."""
    from motionq.spriteworld import swap_subjects

    pairs = [(i, swap_subjects(c)) for i, c in enumerate(captions) if c]
    pairs = [(i, c) for i, c in pairs if c is not None]
    if not pairs:
        return None
    ids, mask = tokenize(tokenizer, [c for _, c in pairs], max_sequence_length)
    return torch.tensor([i for i, _ in pairs]), ids, mask


def step_batch(model_cfg: dict, seed: int, step: int, n: int, dropout: float, p_two: float = 0.25,
               binding: bool = False, p_no_motion: float = 0.0):
    """The training batch of one step, seeded by (run seed, step) alone.

    Runs in data-worker processes (``--workers``): the batch does not depend on how many
    workers there are or in which order they finish. Returns uint8 frames (n, F, H, W, 3),
    token ids and attention mask (captions already dropped out for guidance).
    """
    from motionq.spriteworld import sample_batch as world_batch

    cfg = AnimaticConfig(**{**model_cfg, "shapes": tuple(model_cfg["shapes"])})
    rng = np.random.default_rng([seed, 7, step])
    frames, captions, _ = world_batch(rng, world_config(cfg, p_two, p_no_motion), n, as_float=False)
    drop = rng.random(n) < dropout
    captions = ["" if d else c for c, d in zip(captions, drop)]
    ids, mask = tokenize(_world_tokenizer(), captions, cfg.max_sequence_length)
    if binding:
        return frames, ids, mask, binding_contrast(_world_tokenizer(), captions, cfg.max_sequence_length)
    return frames, ids, mask


@functools.lru_cache(maxsize=1)
def _world_tokenizer():
    """The sprite world's tokenizer, built once per worker process (as `build_pipeline` does)."""
    from motionq.backbones.animatic.text import build_tokenizer
    from motionq.spriteworld import VOCABULARY

    return build_tokenizer(VOCABULARY)


class BatchStream:
    """Training batches made ahead by a pool of worker processes (for a GPU, where one core
    cannot draw the sprite world as fast as the model trains)."""

    def __init__(self, cfg: TrainConfig, workers: int, first_step: int):
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        # spawn: the parent may already hold a CUDA context, which fork must not copy.
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"))
        self.args = (asdict(cfg.model), cfg.seed, cfg.batch, cfg.caption_dropout, cfg.p_two, cfg.binding > 0,
                     cfg.p_no_motion)
        self.ahead = 2 * workers
        self.next_step = first_step
        self.pending: list = []
        self._fill()

    def _fill(self) -> None:
        model, seed, batch, dropout, p_two, binding, p_no_motion = self.args
        while len(self.pending) < self.ahead:
            self.pending.append(self.pool.submit(step_batch, model, seed, self.next_step, batch, dropout, p_two,
                                                 binding, p_no_motion))
            self.next_step += 1

    def next(self):
        fut = self.pending.pop(0)
        self._fill()
        return fut.result()

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def codec_loss(rec: torch.Tensor, video: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Reconstruction loss that weights sprite pixels up.

    Sprites cover a few percent of a frame, so a plain L1/MSE is satisfied by blobs: the first
    codec (plain loss) turned crosses into diamonds and squares into circles. Pixels far from
    the frame's median colour (the background) weigh `1 + 15` instead of 1.
    """
    background = video.flatten(3).median(dim=-1).values[..., None, None]
    fg = ((video - background).abs().amax(dim=1, keepdim=True) > 0.15).float()
    w = 1.0 + 15.0 * fg
    err = rec - video
    # L1 keeps edges crisp; the small latent penalty keeps the latent scale tame.
    return (w * (err.abs() + err.pow(2))).mean() / w.mean() + 1e-4 * z.pow(2).mean()


# ---------------------------------------------------------------------------------------------
# State


class Trainer:
    """Owns the models, optimiser, EMA, RNGs and logs of one run folder."""

    def __init__(self, out: Path, cfg: TrainConfig | None = None, device: str = "cpu"):
        from motionq.spriteworld import VOCABULARY

        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        state = self._read_state()
        if state is not None:
            cfg = _config_from_dict(state["config"])
        self.cfg = cfg or TrainConfig()
        self.pipe = build_pipeline(self.cfg.model, VOCABULARY, seed=self.cfg.seed)
        self.codec = self.pipe.vae
        self.transformer = self.pipe.transformer
        self.text_encoder = self.pipe.text_encoder
        self.tokenizer = self.pipe.tokenizer
        self.device = torch.device(device)
        # Move before the optimiser exists: its state then lives where the parameters do.
        self.pipe.to(self.device)
        self.ema = {k: v.detach().clone() for k, v in self._trainable_state().items()}
        self.step = 0
        self.codec_step = 0
        self.loss_log: list[list[float]] = []  # [step, mean loss]
        self.binding_gap: list[float] = []  # loss with the swapped caption minus the true one, since the last log
        self.eval_log: list[dict] = []
        self.rng = np.random.default_rng(self.cfg.seed)
        torch.manual_seed(self.cfg.seed)
        self.opt = torch.optim.AdamW(
            self._trainable_params(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay
        )
        self.resumed_without_optimizer = False
        self._warm_from = 0
        if state is not None:
            self._load(state)
        self.freeze_to(self.cfg.train_only)

    # -- parameters ---------------------------------------------------------------------------
    def freeze_to(self, part: str) -> None:
        """Train only the weights of `TRAINABLE_PARTS[part]`; the rest keep their EMA values.

        A frozen weight is set to its EMA (the published value), and the EMA update skips it
        (averaging a value with itself still rounds), so raw and EMA stay exactly there."""
        if part not in TRAINABLE_PARTS:
            raise SystemExit(f"--train-only must be one of {', '.join(TRAINABLE_PARTS)}, got {part!r}")
        self.cfg.train_only = part
        keep = TRAINABLE_PARTS[part]
        self._frozen = {name for name, _ in _named_trainables(self) if not keep(name)}
        with torch.no_grad():
            for name, p in _named_trainables(self):
                p.requires_grad_(keep(name))
                if not keep(name):
                    p.copy_(self.ema[name])
                    self.opt.state.pop(p, None)  # AdamW skips weights without a gradient

    def _trainable_params(self) -> list[torch.nn.Parameter]:
        return list(self.transformer.parameters()) + list(self.text_encoder.parameters())

    def _trainable_state(self) -> dict[str, torch.Tensor]:
        sd = {f"transformer.{k}": v for k, v in self.transformer.state_dict().items()}
        sd.update({f"text_encoder.{k}": v for k, v in self.text_encoder.state_dict().items()})
        return sd

    # -- checkpoint ---------------------------------------------------------------------------
    def _read_state(self) -> dict | None:
        p = self.out / "state.json"
        return json.loads(p.read_text()) if p.is_file() else None

    def save(self) -> None:
        """Write the whole state atomically (each file via temp + rename; state.json last)."""
        # clone: the text encoder ties its embedding matrices, and safetensors refuses shared memory
        model_sd = {k: v.detach().cpu().clone().contiguous() for k, v in self._trainable_state().items()}
        _atomic_save(model_sd, self.out / "model.safetensors")
        _atomic_save({k: v.cpu().contiguous() for k, v in self.ema.items()}, self.out / "ema.safetensors")
        _atomic_save(
            {k: v.cpu().contiguous() for k, v in self.codec.state_dict().items()},
            self.out / "codec.safetensors",
        )
        # Adam moments in bf16 halve the checkpoint. Not fp16: squared gradients of ~1e-4 are
        # below fp16's range, and the zeros it stored (67% of exp_avg_sq at step 7000) made the
        # first resumed updates explode (loss 0.14 -> 1.2 on a fixed batch).
        names = {id(p): n for n, p in _named_trainables(self)}
        opt_sd: dict[str, torch.Tensor] = {}
        for p, st in self.opt.state.items():
            n = names[id(p)]
            for key in ("exp_avg", "exp_avg_sq"):
                if key in st:
                    opt_sd[f"{n}.{key}"] = st[key].to(torch.bfloat16).cpu().contiguous()
            if "step" in st:
                opt_sd[f"{n}.step"] = torch.as_tensor(st["step"], dtype=torch.float32).cpu().reshape(1)
        if opt_sd:
            _atomic_save(opt_sd, self.out / "optimizer.safetensors")
        state = {
            "config": _config_to_dict(self.cfg),
            "step": self.step,
            "codec_step": self.codec_step,
            "codec_stats": {
                "latents_mean": self.codec.config.latents_mean,
                "latents_std": self.codec.config.latents_std,
            },
            "numpy_rng": self.rng.bit_generator.state,
            "torch_rng": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode(),
            "loss_log": self.loss_log,
            "eval_log": self.eval_log,
        }
        _atomic_write_text(self.out / "state.json", json.dumps(state, indent=1))

    def _load(self, state: dict) -> None:
        sd = load_file(self.out / "model.safetensors")
        self.transformer.load_state_dict({k[12:]: v for k, v in sd.items() if k.startswith("transformer.")})
        self.text_encoder.load_state_dict({k[13:]: v for k, v in sd.items() if k.startswith("text_encoder.")})
        self.ema = {k: v.to(self.device) for k, v in load_file(self.out / "ema.safetensors").items()}
        self.codec.load_state_dict(load_file(self.out / "codec.safetensors"))
        stats = state["codec_stats"]
        self.codec.register_to_config(latents_mean=stats["latents_mean"], latents_std=stats["latents_std"])
        self.step = state["step"]
        self.codec_step = state["codec_step"]
        self.loss_log = state["loss_log"]
        self.eval_log = state["eval_log"]
        self.rng.bit_generator.state = state["numpy_rng"]
        raw = np.frombuffer(base64.b64decode(state["torch_rng"]), dtype=np.uint8).copy()
        torch.set_rng_state(torch.from_numpy(raw))
        opt_path = self.out / "optimizer.safetensors"
        osd = load_file(opt_path) if opt_path.is_file() and self.step > 0 else {}
        if any(v.dtype == torch.float16 for v in osd.values()):
            print(f"{opt_path}: fp16 Adam moments (underflowed) ignored; warming up again", flush=True)
            osd = {}
        if osd:
            for n, p in _named_trainables(self):
                if f"{n}.exp_avg" in osd:
                    self.opt.state[p] = {
                        "step": osd[f"{n}.step"].reshape(()).clone(),
                        "exp_avg": osd[f"{n}.exp_avg"].float().to(self.device),
                        "exp_avg_sq": osd[f"{n}.exp_avg_sq"].float().to(self.device),
                    }
        else:
            self.resumed_without_optimizer = self.step > 0
            self._warm_from = self.step

    def grow_text_encoder(self, layers: int) -> None:
        """Append text-encoder blocks that start as the identity, so the model samples exactly as
        before and training decides what the new depth does (binding a motion phrase to its
        subject needs more than 2 layers of mixing, docs/model-card.md). The optimiser restarts
        (its warm-up) because it now has more parameters."""
        from motionq.backbones.animatic.text import build_text_encoder

        old = self.cfg.model.text_layers
        if layers <= old:
            raise SystemExit(f"--text-layers {layers}: the text encoder already has {old} layers "
                             "(it can only grow)")
        with torch.random.fork_rng(devices=[]):  # keep the run's RNG stream as it was
            grown = build_text_encoder(len(self.tokenizer), self.cfg.model.text_dim, layers, self.cfg.seed)
        missing, unexpected = grown.load_state_dict(self.text_encoder.state_dict(), strict=False)
        assert not unexpected and all(".block." in k for k in missing), (missing, unexpected)
        with torch.no_grad():
            for block in grown.encoder.block[old:]:
                # pre-norm residual blocks: zero output projections make x + 0
                block.layer[0].SelfAttention.o.weight.zero_()
                block.layer[1].DenseReluDense.wo.weight.zero_()
        grown.to(self.device).eval()
        self.pipe.register_modules(text_encoder=grown)  # also sets pipe.text_encoder
        self.text_encoder = grown
        self.cfg.model = replace(self.cfg.model, text_layers=layers)
        # new blocks start their EMA at their (identity) weights; every old entry is kept
        fresh = {f"text_encoder.{k}": v.detach().clone() for k, v in grown.state_dict().items()}
        self.ema = {**fresh, **self.ema}
        self.opt = torch.optim.AdamW(self._trainable_params(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        self.resumed_without_optimizer = True
        self._warm_from = self.step
        print(f"text encoder grown from {old} to {layers} layers at step {self.step}", flush=True)

    # -- stage 1: codec -----------------------------------------------------------------------
    def train_codec(self, deadline: float) -> None:
        cfg = self.cfg
        if self.codec_step >= cfg.codec_steps:
            return
        opt = torch.optim.AdamW(self.codec.parameters(), lr=cfg.codec_lr)
        self.codec.train()
        t0 = time.time()
        while self.codec_step < cfg.codec_steps and time.time() < deadline:
            clips = max(1, cfg.codec_batch // cfg.model.num_frames)
            video, _ = sample_batch(self.rng, cfg, clips)
            z = self.codec.encode_latent(video)
            rec = self.codec.decode_latent(z)
            loss = codec_loss(rec, video, z)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            lr = cfg.codec_lr * 0.5 * (1 + math.cos(math.pi * self.codec_step / cfg.codec_steps))
            for g in opt.param_groups:
                g["lr"] = lr
            opt.step()
            self.codec_step += 1
            if self.codec_step % cfg.log_every == 0:
                print(f"codec step {self.codec_step}/{cfg.codec_steps} loss {loss.item():.4f} "
                      f"({(time.time() - t0) / cfg.log_every:.2f} s/step)", flush=True)
                t0 = time.time()
        self.codec.eval()
        if self.codec_step >= cfg.codec_steps:
            self._set_codec_stats()
        self.save()

    @torch.no_grad()
    def _set_codec_stats(self) -> None:
        rng = np.random.default_rng(12345)
        video, _ = sample_batch(rng, self.cfg, 64)
        z = self.codec.encode_latent(video)
        mean = z.mean(dim=(0, 2, 3, 4))
        std = z.std(dim=(0, 2, 3, 4)).clamp_min(1e-3)
        self.codec.register_to_config(latents_mean=mean.tolist(), latents_std=std.tolist())
        err = (self.codec.decode_latent(z) - video).abs().mean().item() * 127.5
        print(f"codec ready: mean abs reconstruction error {err:.2f}/255", flush=True)

    # -- stage 2: diffusion -------------------------------------------------------------------
    def _lr(self) -> float:
        # Linear warm-up from the start of the run, or again from the resume point when the
        # optimiser moments were not available.
        cfg = self.cfg
        k = self.step - self._warm_from
        lr = cfg.lr * min(1.0, (k + 1) / cfg.warmup)
        if cfg.anneal_to > cfg.anneal_from:
            u = min(1.0, max(0.0, (self.step - cfg.anneal_from) / (cfg.anneal_to - cfg.anneal_from)))
            lr *= cfg.anneal_floor + (1 - cfg.anneal_floor) * 0.5 * (1 + math.cos(math.pi * u))
        return lr

    def diffusion_step(self, batch=None) -> float:
        """One optimiser step; ``batch`` = `step_batch`'s output (else drawn from the run's RNG)."""
        cfg = self.cfg
        contrast = None
        if batch is None:
            video, captions = sample_batch(self.rng, cfg, cfg.batch)
            drop = self.rng.random(len(captions)) < cfg.caption_dropout
            captions = ["" if d else c for c, d in zip(captions, drop)]
            ids, mask = tokenize(self.tokenizer, captions, cfg.model.max_sequence_length)
            if cfg.binding > 0:
                contrast = binding_contrast(self.tokenizer, captions, cfg.model.max_sequence_length)
        else:
            frames, ids, mask = batch[:3]
            contrast = batch[3] if len(batch) > 3 else None
            # uint8 over the bus, floats made on the device
            video = torch.from_numpy(frames).to(self.device).permute(0, 4, 1, 2, 3).float() / 127.5 - 1
        with torch.no_grad():
            x0 = self.codec.normalize(self.codec.encode_latent(video.to(self.device)))
        emb = encode_tokens(self.text_encoder, ids, mask)
        sigma = torch.sigmoid(torch.randn(x0.shape[0], device=x0.device) * cfg.t_std + cfg.t_mean)
        noise = torch.randn_like(x0)
        s = sigma.view(-1, 1, 1, 1, 1)
        xt = (1 - s) * x0 + s * noise
        pred = self.transformer(xt, sigma * 1000, emb, return_dict=False)[0]
        err = pred - (noise - x0)
        loss = err.pow(2).mean()
        if cfg.motion_loss > 0:
            # The x0 error is sigma * err; its frame-to-frame differences are the motion the
            # model gets wrong. Weighting them up counters the per-frame content that
            # dominates a plain MSE (a small model otherwise places sprites frame by frame).
            d = (s * err)[:, :, 1:] - (s * err)[:, :, :-1]
            loss = loss + cfg.motion_loss * d.pow(2).mean()
        if contrast is not None and cfg.binding > 0:
            idx, nids, nmask = (t.to(x0.device) for t in contrast)
            neg = self.transformer(xt[idx], sigma[idx] * 1000, encode_tokens(self.text_encoder, nids, nmask),
                                   return_dict=False)[0]
            l_true = err[idx].pow(2).flatten(1).mean(1)
            l_swap = (neg - (noise - x0)[idx]).pow(2).flatten(1).mean(1)
            tau = cfg.binding_tau
            loss = loss + cfg.binding * tau * F.softplus((l_true - l_swap) / tau).mean()
            self.binding_gap.append(float((l_swap - l_true).detach().mean()))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self._trainable_params(), 1.0)
        for g in self.opt.param_groups:
            g["lr"] = self._lr()
        self.opt.step()
        self.step += 1
        with torch.no_grad():
            decay = min(cfg.ema, (1 + self.step) / (10 + self.step))
            cur = self._trainable_state()
            # One fused update over all tensors (a kernel per tensor dominates on a GPU).
            keys = [k for k, v in cur.items() if v.dtype.is_floating_point and k not in self._frozen]
            ema = [self.ema[k] for k in keys]
            torch._foreach_mul_(ema, decay)
            torch._foreach_add_(ema, [cur[k].detach() for k in keys], alpha=1 - decay)
            for k, v in cur.items():
                if not v.dtype.is_floating_point:
                    self.ema[k].copy_(v)
        return loss.item()

    def contextualise_text(self, steps: int, keep: float = 1.0, batch: int = 64, lr: float = 1e-3,
                           log_every: int = 250) -> dict:
        """Teach the text encoder who does what, before diffusion training uses it.

        Trained by denoising alone, the encoder stays nearly context-free (a word's vector barely
        changes when the caption gives its motion to the other character), and Wan's
        cross-attention sees the text as a bag of tokens, so nothing can bind a motion to its
        subject. Linear probes on the encoder's output (subject words -> their clause's motion,
        motion words -> their subject's shape and colour, `spriteworld.clause_roles`) make it
        carry that; ``keep`` x the squared drift from the current embeddings keeps what the
        transformer reads. Updates the weights and their EMA; returns the final probe losses.
        """
        from motionq.spriteworld import COLOURS, MOTIONS, SHAPES, caption, clause_roles, sample_scene

        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, 99, self.step])
        wcfg = world_config(cfg.model, cfg.p_two)
        length = cfg.model.max_sequence_length
        enc = self.text_encoder
        frozen = copy.deepcopy(enc).eval().requires_grad_(False)
        d = enc.config.d_model
        gen = torch.Generator().manual_seed(int(cfg.seed) + self.step)
        heads = torch.nn.ModuleDict({name: torch.nn.Linear(d, n) for name, n in (
            ("motion", len(MOTIONS)), ("colour", len(COLOURS)), ("shape", len(SHAPES)))})
        for lin in heads.values():  # on the CPU, where the seeded generator lives
            torch.nn.init.normal_(lin.weight, std=d ** -0.5, generator=gen)
            torch.nn.init.zeros_(lin.bias)
        heads.to(self.device)
        opt = torch.optim.Adam(list(enc.parameters()) + list(heads.parameters()), lr=lr)
        enc.train()
        last: dict = {}
        for k in range(steps):
            texts, roles = [], []
            while len(texts) < batch:
                scene = sample_scene(rng, wcfg)
                text = caption(scene, rng, cfg=wcfg)
                r = clause_roles(text) if text else None
                if r and len(text.split(" ")) < length:
                    texts.append(text)
                    roles.append(r)
            ids, mask = tokenize(self.tokenizer, texts, length)
            emb = encode_tokens(enc, ids, mask)
            with torch.no_grad():
                ref = encode_tokens(frozen, ids, mask)
            rows: dict[str, list] = {"motion": [], "colour": [], "shape": []}
            for b, r in enumerate(roles):
                for i, role, target in r:
                    if role == "subject":
                        rows["motion"].append((b, i, MOTIONS.index(target)))
                    else:
                        shape, colour = target
                        if colour is not None:
                            rows["colour"].append((b, i, COLOURS.index(colour)))
                        if shape is not None:
                            rows["shape"].append((b, i, SHAPES.index(shape)))
            losses = {}
            for name, rr in rows.items():
                if rr:
                    b_i, t_i, y = (torch.tensor(c, device=self.device) for c in zip(*rr))
                    losses[name] = F.cross_entropy(heads[name](emb[b_i, t_i]), y)
            drift = (emb - ref).pow(2).sum(-1).mean()
            loss = sum(losses.values()) + keep * drift
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            last = {n: round(float(v.detach()), 4) for n, v in losses.items()}
            last["drift"] = round(float(drift.detach()), 4)
            if (k + 1) % log_every == 0 or k + 1 == steps:
                print(f"text probes {k + 1}/{steps}: {json.dumps(last)}", flush=True)
        enc.requires_grad_(True)
        with torch.no_grad():
            for name, v in enc.state_dict().items():
                self.ema[f"text_encoder.{name}"].copy_(v)
        return last

    def ema_pipeline(self):
        """A copy of the pipeline carrying the EMA weights (for sampling and publishing)."""
        pipe = copy.deepcopy(self.pipe)
        pipe.transformer.load_state_dict({k[12:]: v for k, v in self.ema.items() if k.startswith("transformer.")})
        pipe.text_encoder.load_state_dict({k[13:]: v for k, v in self.ema.items() if k.startswith("text_encoder.")})
        pipe.transformer.eval()
        pipe.text_encoder.eval()
        pipe.set_progress_bar_config(disable=True)  # keep the training log readable
        return pipe

    # -- evaluation ---------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> dict:
        """Quality of EMA samples on the first `eval_samples` validation captions
        (`validation_scores`, batches of `eval_batch`), plus a contact sheet of eight."""
        pipe = self.ema_pipeline()
        t0 = time.time()
        scores, sheet = validation_scores(pipe, self.cfg.model, samples=self.cfg.eval_samples,
                                          batch=self.cfg.eval_batch, keep=8)
        result = {k: scores[k] for k in ("colour", "shape", "motion", "count", "two_character_motion")}
        result.update(step=self.step, samples=self.cfg.eval_samples, seconds=round(time.time() - t0, 1))
        self.eval_log.append(result)
        save_sheet(sheet, self.out / "samples" / f"step_{self.step:06d}.png")
        return result

    # -- publish ------------------------------------------------------------------------------
    def publish(self, folder: Path = WEIGHTS_DIR) -> Path:
        """Save the EMA pipeline as a diffusers folder with safetensors weights."""
        import shutil

        pipe = self.ema_pipeline()
        tmp = folder.with_name(folder.name + ".tmp")
        old = folder.with_name(folder.name + ".old")
        if old.exists() and not folder.exists():  # an earlier publish died between its renames
            old.rename(folder)
        if tmp.exists():
            shutil.rmtree(tmp)
        pipe.save_pretrained(tmp, safe_serialization=True)
        info = {"step": self.step, "codec_step": self.codec_step, "eval": self.eval_log[-1:] or None,
                "config": _config_to_dict(self.cfg)}
        (tmp / "training.json").write_text(json.dumps(info, indent=1))
        # Move the old weights aside before the new ones go in, so a crash leaves one of them.
        if old.exists():
            shutil.rmtree(old)
        if folder.exists():
            folder.rename(old)
        tmp.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
        return folder


# ---------------------------------------------------------------------------------------------
# Helpers


def sample_frames(pipe, prompt: str, seed: int, cfg: AnimaticConfig, steps: int = 20,
                  guidance: float = 4.0) -> np.ndarray:
    """One clip from a pipeline as uint8 (F, H, W, 3)."""
    g = torch.Generator().manual_seed(seed)
    out = pipe(
        prompt=prompt, negative_prompt="", height=cfg.height, width=cfg.width,
        num_frames=pipeline_num_frames(pipe, cfg.num_frames), num_inference_steps=steps, guidance_scale=guidance,
        generator=g, output_type="np", max_sequence_length=cfg.max_sequence_length,
    ).frames[0]
    return (np.clip(out, 0, 1) * 255).round().astype(np.uint8)


def sample_frames_batch(pipe, prompts: list[str], seeds: list[int], cfg: AnimaticConfig, steps: int = 20,
                        guidance: float = 4.0) -> list[np.ndarray]:
    """Several clips in one pipeline call, each from its own seed's noise (a generator per
    clip, so a clip does not depend on the batch it is in, up to float rounding)."""
    out = pipe(
        prompt=list(prompts), negative_prompt=[""] * len(prompts), height=cfg.height, width=cfg.width,
        num_frames=pipeline_num_frames(pipe, cfg.num_frames), num_inference_steps=steps, guidance_scale=guidance,
        generator=[torch.Generator().manual_seed(s) for s in seeds], output_type="np",
        max_sequence_length=cfg.max_sequence_length,
    ).frames
    return [(np.clip(o, 0, 1) * 255).round().astype(np.uint8) for o in out]


# Validation captions: seeds past the training data's (< 10^9) and the bench's (10^9 + i).
VALIDATION_SEED = 2_000_000_000


@torch.no_grad()
def validation_scores(pipe, cfg: AnimaticConfig, first_seed: int = VALIDATION_SEED, samples: int = 200,
                      batch: int = 1, steps: int = 20, guidance: float = 4.0,
                      keep: int = 0) -> tuple[dict, list[tuple[str, np.ndarray]]]:
    """Score a pipeline on fully specified captions of seeds ``first_seed + i``, read back with
    the sprite analyser: colour, shape and motion of every asked character (matched to the found
    tracks), two-character motion, the share of clips with exactly the asked number of
    characters and its misses ("asked->found"). Returns the scores and the first ``keep``
    (caption, frames) pairs for a contact sheet. ``batch`` clips per pipeline call (a GPU
    wants many; on a CPU 1 is as fast)."""
    from motionq.spriteworld import analyse, caption, match_characters, parse_caption, sample_scene

    wcfg = world_config(cfg)
    hits = {"colour": 0, "shape": 0, "motion": 0}
    asked_total = count_ok = two_right = two_asked = 0
    count_errors: dict[str, int] = {}
    kept: list[tuple[str, np.ndarray]] = []
    for lo in range(0, samples, batch):
        seeds = list(range(first_seed + lo, first_seed + min(lo + batch, samples)))
        texts = []
        for seed in seeds:
            rng = np.random.default_rng(seed)
            texts.append(caption(sample_scene(rng, wcfg), rng, detail="full", cfg=wcfg))
        for text, frames in zip(texts, sample_frames_batch(pipe, texts, seeds, cfg, steps, guidance)):
            if len(kept) < keep:
                kept.append((text, frames))
            asked = parse_caption(text)["characters"]
            found = analyse(frames).characters
            count_ok += int(len(found) == len(asked))
            if len(found) != len(asked):
                key = f"{len(asked)}->{len(found)}"
                count_errors[key] = count_errors.get(key, 0) + 1
            for want, got in match_characters(asked, found):
                asked_total += 1
                for attr in ("colour", "shape", "motion"):
                    hits[attr] += int(got is not None and getattr(got, attr) == want.get(attr))
                if len(asked) == 2:
                    two_asked += 1
                    two_right += int(got is not None and got.motion == want.get("motion"))
    scores = {k: v / asked_total for k, v in hits.items()}
    scores.update(motion_right=hits["motion"], characters_asked=asked_total,
                  two_character_motion=two_right / max(two_asked, 1), count=count_ok / samples,
                  count_errors=dict(sorted(count_errors.items())))
    return scores, kept


def save_sheet(rows: list[tuple[str, np.ndarray]], path: Path, scale: int = 3) -> None:
    """A contact sheet: one row of frames per sample, caption above (training monitor)."""
    from PIL import Image, ImageDraw

    if not rows:
        return
    f, h, w, _ = rows[0][1].shape
    pad = 12
    img = Image.new("RGB", (f * w * scale, len(rows) * (h * scale + pad)), (20, 20, 20))
    draw = ImageDraw.Draw(img)
    for r, (text, frames) in enumerate(rows):
        y = r * (h * scale + pad)
        draw.text((2, y), text[:80], fill=(230, 230, 230))
        for i in range(f):
            tile = Image.fromarray(frames[i]).resize((w * scale, h * scale), Image.NEAREST)
            img.paste(tile, (i * w * scale, y + pad))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    img.save(tmp)
    os.replace(tmp, path)


def _named_trainables(tr: Trainer):
    for n, p in tr.transformer.named_parameters():
        yield f"transformer.{n}", p
    for n, p in tr.text_encoder.named_parameters():
        yield f"text_encoder.{n}", p


def _atomic_save(tensors: dict[str, torch.Tensor], path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, path)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _config_to_dict(cfg: TrainConfig) -> dict:
    d = asdict(cfg)
    return d


def _config_from_dict(d: dict) -> TrainConfig:
    d = dict(d)
    m = d.pop("model")
    if "shapes" in m:
        m["shapes"] = tuple(m["shapes"])
    model = AnimaticConfig(**m)
    known = {f.name for f in fields(TrainConfig)}
    return TrainConfig(model=model, **{k: v for k, v in d.items() if k in known})


def plot_loss(state_dir: Path, out_png: Path) -> Path:
    """Loss curve (and eval accuracies) of a run as a PNG for the model card."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    state = json.loads((state_dir / "state.json").read_text())
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    if state["loss_log"]:
        s, l = zip(*state["loss_log"])
        ax[0].plot(s, l)
        ax[0].set_yscale("log")
    ax[0].set_xlabel("step")
    ax[0].set_ylabel("flow-matching loss")
    for key in ("colour", "shape", "motion", "count"):
        pts = [(e["step"], e[key]) for e in state["eval_log"]]
        if pts:
            ax[1].plot(*zip(*pts), marker="o", label=key)
    ax[1].set_xlabel("step")
    ax[1].set_ylabel("accuracy (held-out, full captions)")
    ax[1].legend()
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100)
    return out_png


def run(out: Path, minutes: float, max_steps: int | None = None, threads: int = 1,
        cfg: TrainConfig | None = None, anneal_to: int | str | None = None, device: str = "cpu",
        workers: int = 0, overrides: dict | None = None, mirror: Path | None = None,
        contextualise_text: int = 0) -> Trainer:
    """Train for a chunk of `minutes` (or until `max_steps`), checkpointing as it goes.

    ``anneal_to``: start a cosine learning-rate decay at the current step that ends at this
    step (stored in the checkpoint's config, so later chunks keep the schedule); ``"auto"``
    ends it with the chunk, from the step rate measured over steps 50-250 of the chunk.
    ``overrides``: TrainConfig fields to change from this chunk on (e.g. batch and lr for a GPU).
    ``workers``: data-worker processes (0 = draw batches in this process, as on a CPU).
    ``mirror``: after every checkpoint, also write it there in transferable shards.
    ``contextualise_text``: steps of `Trainer.contextualise_text` before the chunk.
    """
    torch.set_num_threads(threads)
    if device.startswith("cuda"):
        torch.set_float32_matmul_precision("high")  # TF32 matmuls
    deadline = time.time() + minutes * 60
    tr = Trainer(out, cfg, device=device)
    if overrides:
        for k, v in overrides.items():
            if k == "text_layers":
                tr.grow_text_encoder(v)
            elif k == "train_only":
                tr.freeze_to(v)
            elif k == "max_sequence_length":  # a model size that no weight depends on
                tr.cfg.model = replace(tr.cfg.model, max_sequence_length=v)
            else:
                setattr(tr.cfg, k, v)
        if "lr" in overrides:
            # a new peak lr starts a new schedule: warm up again, forget the old anneal
            tr.cfg.anneal_from = tr.cfg.anneal_to = 0
            tr._warm_from = tr.step
        print(f"config changed from step {tr.step}: {overrides}", flush=True)
    if contextualise_text > 0:
        tr.contextualise_text(contextualise_text)
        tr.save()
    auto_anneal = anneal_to == "auto"
    if anneal_to is not None and not auto_anneal:
        try:
            anneal_to = int(anneal_to)
        except ValueError:
            raise SystemExit(f"--anneal-to must be a step number or 'auto', got {anneal_to!r}") from None
        if anneal_to <= tr.step:
            raise SystemExit(f"--anneal-to {anneal_to} must be after the current step {tr.step}")
        tr.cfg.anneal_from, tr.cfg.anneal_to = tr.step, anneal_to
        print(f"annealing lr from step {tr.step} to {anneal_to}", flush=True)
    print(f"run {out}: step {tr.step}, codec step {tr.codec_step}, device {tr.device}"
          + (" (optimiser state absent: warming up again)" if tr.resumed_without_optimizer else ""),
          flush=True)
    tr.train_codec(deadline)
    if tr.codec_step < tr.cfg.codec_steps:
        return tr

    def checkpoint() -> None:
        tr.save()
        if mirror is not None:
            export_shards(tr.out, mirror)

    stream = BatchStream(tr.cfg, workers, tr.step + 1) if workers > 0 else None
    tr.transformer.train()
    tr.text_encoder.train()
    losses: list[float] = []
    t0 = time.time()
    first_step, t_start = tr.step, 0.0  # t_start: when step first_step + 50 ended
    try:
        while time.time() < deadline and (max_steps is None or tr.step < max_steps):
            losses.append(tr.diffusion_step(stream.next() if stream else None))
            if auto_anneal and tr.step == first_step + 50:
                t_start = time.time()  # the first steps pay for start-up (workers, kernels)
            if auto_anneal and tr.step == first_step + 250:
                rate = 200 / (time.time() - t_start)
                end = tr.step + int(rate * (deadline - time.time()) * 0.97)
                tr.cfg.anneal_from, tr.cfg.anneal_to = tr.step, max(end, tr.step + 1)
                print(f"{rate:.1f} steps/s: annealing lr from step {tr.step} to {tr.cfg.anneal_to}", flush=True)
            if tr.step % tr.cfg.log_every == 0:
                dt = (time.time() - t0) / len(losses)
                tr.loss_log.append([tr.step, float(np.mean(losses))])
                gap = f" binding gap {np.mean(tr.binding_gap):+.2e}" if tr.binding_gap else ""
                print(f"step {tr.step} loss {np.mean(losses):.4f} lr {tr._lr():.2e}{gap} ({dt:.3f} s/step)", flush=True)
                losses, t0 = [], time.time()
                tr.binding_gap.clear()
            if tr.step % tr.cfg.checkpoint_every == 0:
                checkpoint()
            if tr.step % tr.cfg.eval_every == 0:
                try:
                    print(f"eval {json.dumps(tr.evaluate())}", flush=True)
                except Exception as exc:  # a monitor must not end hours of training
                    print(f"eval failed at step {tr.step}: {exc!r}", flush=True)
                tr.transformer.train()
                tr.text_encoder.train()
                t0 = time.time()
    finally:
        if stream:
            stream.close()
    checkpoint()
    return tr


# Files of a run folder, split so that none is over ~16 MB (what a device machine sends back):
# the transformer and text-encoder halves of model/ema are separate files.
_SHARDED = ("model", "ema")


def export_shards(run_dir: Path, dest: Path) -> None:
    """Copy a run folder's checkpoint into `dest` as small files (see `import_shards`)."""
    import shutil

    dest.mkdir(parents=True, exist_ok=True)
    for name in _SHARDED:
        sd = load_file(run_dir / f"{name}.safetensors")
        for part in ("transformer", "text_encoder"):
            _atomic_save({k: v for k, v in sd.items() if k.startswith(part + ".")},
                         dest / f"{name}-{part}.safetensors")
    shutil.copyfile(run_dir / "codec.safetensors", dest / "codec.safetensors")
    samples = sorted((run_dir / "samples").glob("step_*.png"))
    if samples:
        shutil.copyfile(samples[-1], dest / "samples.png")
    _atomic_write_text(dest / "state.json", (run_dir / "state.json").read_text())


def import_shards(src: Path, run_dir: Path) -> None:
    """Rebuild a run folder from `export_shards` output (the optimiser moments stay behind:
    the next chunk warms up)."""
    import shutil

    run_dir.mkdir(parents=True, exist_ok=True)
    for name in _SHARDED:
        sd: dict[str, torch.Tensor] = {}
        for part in ("transformer", "text_encoder"):
            sd.update(load_file(src / f"{name}-{part}.safetensors"))
        _atomic_save(sd, run_dir / f"{name}.safetensors")
    shutil.copyfile(src / "codec.safetensors", run_dir / "codec.safetensors")
    (run_dir / "optimizer.safetensors").unlink(missing_ok=True)
    _atomic_write_text(run_dir / "state.json", (src / "state.json").read_text())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="motionq train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("checkpoints/animatic"))
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--anneal-to", default=None, metavar="STEP",
                    help="cosine-decay the learning rate from the current step to STEP (final chunk); "
                         "'auto': to the end of this chunk")
    ap.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    ap.add_argument("--workers", type=int, default=0, help="data-worker processes (for a GPU)")
    ap.add_argument("--batch", type=int, default=None, help="change the batch size from now on")
    ap.add_argument("--lr", type=float, default=None, help="new peak lr from now on (warms up again)")
    ap.add_argument("--p-two", type=float, default=None,
                    help="share of two-character scenes in the data from now on")
    ap.add_argument("--p-no-motion", type=float, default=None,
                    help="share of captions without their motion phrase from now on")
    ap.add_argument("--train-only", choices=sorted(TRAINABLE_PARTS), default=None,
                    help="train only these weights from now on: text (text encoder, text embedder, "
                         "cross-attention keys/values), cross (text + all of cross-attention) or all")
    ap.add_argument("--max-sequence-length", type=int, default=None,
                    help="text tokens per caption from now on (the text encoder has no position table)")
    ap.add_argument("--binding", type=float, default=None,
                    help="weight of the binding loss from now on (contrast with subject-swapped captions; 0 = off)")
    ap.add_argument("--binding-tau", type=float, default=None,
                    help="scale of the binding loss's softplus: the loss gap it stops pushing at, about")
    ap.add_argument("--contextualise-text", type=int, default=0, metavar="STEPS",
                    help="first train the text encoder this many steps on who-does-what probes "
                         "(Trainer.contextualise_text), then the chunk")
    ap.add_argument("--text-layers", type=int, default=None,
                    help="grow the text encoder to this many layers (new ones start as the identity)")
    ap.add_argument("--eval-every", type=int, default=None)
    ap.add_argument("--eval-samples", type=int, default=None,
                    help="validation captions per eval (seeds 2,000,000,000 + i, as benchmarks/sampler_validation.py)")
    ap.add_argument("--eval-batch", type=int, default=None, help="clips per pipeline call in the eval (GPU: ~100)")
    ap.add_argument("--checkpoint-every", type=int, default=None)
    ap.add_argument("--mirror", type=Path, default=None,
                    help="after each checkpoint, also write it here as files under 16 MB")
    ap.add_argument("--import-shards", type=Path, default=None, metavar="DIR",
                    help="rebuild --out from a --mirror folder and exit")
    ap.add_argument("--publish", action="store_true", help="write the EMA weights into the package")
    ap.add_argument("--publish-to", type=Path, default=WEIGHTS_DIR)
    ap.add_argument("--eval", action="store_true", help="evaluate the current EMA weights and exit")
    ap.add_argument("--plot", type=Path, default=None, help="write the loss curve PNG and exit")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.import_shards:
        import_shards(args.import_shards, args.out)
        print(f"{args.out}: rebuilt from {args.import_shards}")
        return
    if args.plot:
        print(plot_loss(args.out, args.plot))
        return
    if args.publish or args.eval:
        tr = Trainer(args.out)
        tr.cfg.eval_samples = args.eval_samples or tr.cfg.eval_samples
        tr.cfg.eval_batch = args.eval_batch or tr.cfg.eval_batch
        if args.eval:
            print(json.dumps(tr.evaluate()))
            tr.save()
        if args.publish:
            print(f"published step {tr.step} to {tr.publish(args.publish_to)}")
        return
    overrides = {k: v for k, v in (("batch", args.batch), ("lr", args.lr), ("eval_every", args.eval_every),
                                   ("eval_samples", args.eval_samples), ("eval_batch", args.eval_batch),
                                   ("checkpoint_every", args.checkpoint_every), ("p_two", args.p_two),
                                   ("p_no_motion", args.p_no_motion), ("train_only", args.train_only),
                                   ("max_sequence_length", args.max_sequence_length),
                                   ("text_layers", args.text_layers), ("binding", args.binding),
                                   ("binding_tau", args.binding_tau))
                 if v is not None}
    run(args.out, args.minutes, args.max_steps, args.threads, anneal_to=args.anneal_to, device=args.device,
        workers=args.workers, overrides=overrides, mirror=args.mirror, contextualise_text=args.contextualise_text)


if __name__ == "__main__":
    main()
