"""Consistent multi-shot generation (Motion by Queries, section 2) and anchor mode (section 3).

Entry point: `render_group(backbone, request, progress)` (registered as the renderer of every
non-vanilla consistency variant of `PipelineBackbone`). Lower level: `render_joint` (a group
rendered as one batch), `render_against_anchors` (one shot alone against an `AnchorEntry`),
`sample` (our denoising loop, which reproduces WanPipeline exactly for one shot).

A group render, step by step (docs/consistency.md has the why of each setting):

1. Vanilla pass: the shots are the batch items of one sampling loop (`controller.reset(items=
   shot_ids)`), each from its own seeded noise, prompt, negative prompt and guidance, with no
   intervention. It records the self-attention Q of the intervened blocks on the steps of the
   SDSA range (`RecordQ` into a `QCache`, per batch item, layer, step and pass) and the
   cross-attention maps of each character's prompt tokens (`masks.py`).
2. Subject masks per shot and character (Otsu on the averaged maps), or supplied ones.
3. Consistent pass: the shots that receive shared attention (they share a character with
   another shot whose mask is not empty), plus the shots they read from, denoise again from
   the same noise with the policies of the variant:
   `SDSA` (t in sdsa_range), `InjectQ` of the vanilla Q (Q-Preservation, t >= t_pres or the
   whole range), `QFlow` (sdsa_lo <= t < t_pres), `Refine` (t in refine_range, "+refine").
   Shots that receive nothing keep their vanilla frames (the consistent pass would change
   nothing but rounding for them).

Shots of a joint group must share the number of sampling steps (one loop). Their frame counts
may differ: the group is rendered at the longest (valid) count and each shot is trimmed to its
own, so a shorter shot's frames are the beginning of a longer generation (its noise has the
longer shape), not what it would be alone. Anchor mode renders every non-anchor at its own
count.

Anchor mode (`request.anchor_ids`): the anchors render jointly while an `AnchorRecorder` keeps
their subject K/V (variants with shared attention) and attention outputs (with refinement) per
layer, step and pass; the result is kept in a small in-memory cache on the backbone
(`anchor_cache`), keyed by the anchors' requests, the consistency settings and the options.
Every other shot then renders alone: its own vanilla pass, then the consistent pass with
`AnchorSDSA` reading the cached anchors. Cost is linear in the number of shots.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from motionq.api import ConsistencyConfig, GroupRequest, Progress, ProgressFn, ShotRequest
from motionq.control.controller import AttentionController, InjectQ, Policy, QCache, RecordQ
from motionq.control.phases import PAPER_REFINE_RANGE, multishot_schedule, scheduler_timesteps
from motionq.control.processors import install, layer_name
from motionq.methods import masks as M
from motionq.methods.qflow import QFLOW_WEIGHTS, CopyQ, QFlow
from motionq.methods.sdsa import (
    SDSA,
    SDSA_MODES,
    AnchorKV,
    AnchorRecorder,
    AnchorSDSA,
    Refine,
    RefineTarget,
    build_sdsa_index,
    visible_tokens,
)

log = logging.getLogger(__name__)

QPRES_MODES = ("none", "tpres", "all")
VANILLA_Q_MODES = ("auto", "cache", "live")


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Phases:
    """Which interventions the consistent pass runs.

    sdsa: shared attention on the SDSA range. qpres: Q-Preservation on "none", "tpres"
    (t >= t_pres within the SDSA range) or "all" (the whole SDSA range). qflow: Q-Flow on the
    rest of the SDSA range (t < t_pres). refine: refinement injection on the refine range.
    """

    sdsa: bool = True
    qpres: str = "tpres"
    qflow: bool = True
    refine: bool = False

    def __post_init__(self) -> None:
        if self.qpres not in QPRES_MODES:
            raise ValueError(f"qpres must be one of {QPRES_MODES}, got {self.qpres!r}")

    @classmethod
    def for_variant(cls, variant: str) -> Phases:
        """The paper's ablation ladder plus "refine" (`motionq.api.VARIANTS`)."""
        table = {
            "vanilla": cls(sdsa=False, qpres="none", qflow=False),
            "sdsa": cls(sdsa=True, qpres="none", qflow=False),
            "sdsa+qpres": cls(sdsa=True, qpres="all", qflow=False),
            "sdsa+qpres+qflow": cls(sdsa=True, qpres="tpres", qflow=True),
            "sdsa+qpres+qflow+refine": cls(sdsa=True, qpres="tpres", qflow=True, refine=True),
            "refine": cls(sdsa=False, qpres="none", qflow=False, refine=True),
        }
        try:
            return table[variant]
        except KeyError:
            raise ValueError(f"unknown consistency variant {variant!r} (known: {', '.join(table)})") from None

    @property
    def intervenes(self) -> bool:
        return self.sdsa or self.qpres != "none" or self.qflow or self.refine


@dataclass(frozen=True)
class MultiShotOptions:
    """Settings of the multi-shot renderer that are not storyboard settings (a backbone may
    carry its own as `backbone.multishot_options`).

    blocks: transformer blocks whose self-attention is intervened (None: all of them, as the
        paper does with every spatial self-attention layer of VideoCrafter2).
    mask_blocks: blocks whose cross-attention gives the masks (None: the middle half).
    mask_range: timesteps whose cross-attention maps are averaged (cond pass).
    qflow_weight: "linear" (nearest-keyframe weight, default) or "paper" (the sigmoid).
    refine_alpha: weight of the reference's features in the refinement.
    refine_mode: "match" (the paper's: each subject token takes its matched reference feature)
        or "mean" (the subject's mean feature moves to the reference's; see `sdsa.REFINE_MODES`).
    refine_range: the refinement's timesteps when a request leaves `refine_range` unset (the
        paper's (590, 950); the built-in model carries (100, 500), see docs/consistency.md).
    attention: "framewise" (grouped attention, no big mask) or "dense" (one masked call).
    q_device: where the vanilla Q and anchor K/V are kept (None: where computed; "cpu" spares
        accelerator memory at the cost of copies).
    anchor_cache_size: how many anchor renders the backbone keeps in memory.
    size: (height, width) to render at (None: the backbone's native size).
    shared_key_weight: how many own keys each shared (other shot's subject) key counts as in
        SDSA (its score gets + log weight). 1 is the paper's plain attention over the union; a
        model whose subject covers a handful of tokens per frame needs more for the shared
        appearance to win (the built-in model: 20, measured in docs/consistency.md).
    vanilla_q: where the consistent pass gets the vanilla Q from. "cache": recorded during the
        vanilla pass (memory: `memory_bound`); "live": each coupled shot's vanilla twin is
        denoised in the same batch as the consistent pass, and its Q is read in the same
        forward (no Q stored; the batch grows by the coupled shots, so about one more pass of
        compute); "auto" (default): "cache" while the bound fits in `q_budget_bytes`, else
        "live".
    """

    blocks: tuple[int, ...] | None = None
    mask_blocks: tuple[int, ...] | None = None
    mask_range: tuple[int, int] = M.DEFAULT_MASK_RANGE
    qflow_weight: str = "linear"
    refine_alpha: float = 0.8
    refine_mode: str = "match"
    refine_range: tuple[int, int] = PAPER_REFINE_RANGE
    attention: str = "framewise"
    q_device: str | None = None
    anchor_cache_size: int = 4
    size: tuple[int, int] | None = None
    vanilla_q: str = "auto"
    q_budget_bytes: int = 2 * 2**30
    shared_key_weight: float = 1.0

    def __post_init__(self) -> None:
        if not self.shared_key_weight > 0:
            raise ValueError(f"shared_key_weight must be > 0, got {self.shared_key_weight}")
        if self.vanilla_q not in VANILLA_Q_MODES:
            raise ValueError(f"vanilla_q must be one of {VANILLA_Q_MODES}, got {self.vanilla_q!r}")
        if self.qflow_weight not in QFLOW_WEIGHTS:
            raise ValueError(f"qflow_weight must be one of {QFLOW_WEIGHTS}, got {self.qflow_weight!r}")
        if self.attention not in SDSA_MODES:
            raise ValueError(f"attention must be one of {SDSA_MODES}, got {self.attention!r}")


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------

class ShotFrames(np.ndarray):
    """uint8 frames (F, H, W, 3) that also carry the shot's subject masks.

    `masks`: float32 (latent frames, h, w) in {0, 1} at token resolution, the union of the
    shot's characters (None when the shot has no character); `subject_masks` the per-character
    `SubjectMasks`. `np.asarray(frames)` gives the plain array.
    """

    masks: np.ndarray | None
    subject_masks: M.SubjectMasks | None

    def __new__(cls, frames: np.ndarray, masks: M.SubjectMasks | None = None) -> ShotFrames:
        obj = np.asarray(frames).view(cls)
        obj.subject_masks = masks
        obj.masks = None
        if masks is not None and masks.masks.shape[0] > 0:
            obj.masks = masks.union.astype(np.float32)
        return obj

    def __array_finalize__(self, obj) -> None:
        self.masks = getattr(obj, "masks", None)
        self.subject_masks = getattr(obj, "subject_masks", None)


@dataclass
class GroupResult:
    """What `render_joint` produced: frames by shot id, masks, the anchor record (if asked)
    and a few numbers (`stats`: q_cache_bytes, coupled shot ids, batch of the consistent pass,
    anchor_bytes)."""

    frames: dict[str, ShotFrames]
    masks: dict[str, M.SubjectMasks]
    anchor: AnchorKV | None = None
    stats: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# The sampler: WanPipeline's loop, for a batch of shots
# ---------------------------------------------------------------------------------------------

def _device(pipe) -> torch.device:
    from diffusers.utils.torch_utils import get_module_execution_device

    return get_module_execution_device(pipe.transformer)


def check_pipeline(pipe) -> None:
    """Our loop covers Wan 2.1-style pipelines (one transformer, one timestep per sample)."""
    if getattr(pipe.config, "boundary_ratio", None) is not None or getattr(pipe, "transformer_2", None) is not None:
        raise NotImplementedError("multi-shot consistency needs a single-transformer Wan pipeline (Wan 2.1 style)")
    if getattr(pipe.config, "expand_timesteps", False):
        raise NotImplementedError("multi-shot consistency does not support per-token timesteps (expand_timesteps)")


def initial_noise(pipe, seed: int, num_frames: int, height: int, width: int) -> torch.Tensor:
    """A shot's starting noise exactly as WanPipeline draws it for `num_frames` output frames
    (its `prepare_latents` with `torch.Generator().manual_seed(seed)`): float32 (1, C, f, h, w)."""
    return pipe.prepare_latents(
        1, pipe.transformer.config.in_channels, height, width, num_frames, torch.float32,
        _device(pipe), torch.Generator().manual_seed(int(seed)),
    )


@torch.no_grad()  # as in WanPipeline.__call__: grad mode changes the text encoder's kernels
def encode_prompts(
    pipe, shots: Sequence[ShotRequest], max_sequence_length: int, cfg: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Prompt (and negative prompt when `cfg`) embeddings of each shot, encoded one shot at a
    time as WanPipeline does, concatenated along the batch."""
    conds, unconds = [], []
    for s in shots:
        pe, ne = pipe.encode_prompt(
            prompt=s.prompt, negative_prompt=s.negative_prompt, do_classifier_free_guidance=cfg,
            num_videos_per_prompt=1, max_sequence_length=max_sequence_length, device=_device(pipe),
        )
        conds.append(pe)
        unconds.append(ne)
    dtype = pipe.transformer.dtype
    cond = torch.cat(conds).to(dtype)
    return cond, (torch.cat(unconds).to(dtype) if cfg else None)


class Sampler:
    """WanPipeline's denoising loop for a batch of shots, resumable: `run(until=k)` does the
    steps before k and returns the latents so far; a later `run()` goes on from there with the
    same scheduler state (used to stop the vanilla pass once the masks and Q it must provide
    are recorded, and to finish it only when some shot turns out to need its vanilla frames).

    Per step: a conditional forward, then (when `uncond` is given) an unconditional one,
    `uncond + g * (cond - uncond)` per shot with its own guidance g (a shot with g <= 1 takes
    the conditional prediction, as the pipeline does without guidance), then the scheduler
    step. A copy of the pipeline's scheduler is used, so the pipeline is not disturbed.
    """

    def __init__(self, pipe, latents: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor | None,
                 guidance: Sequence[float], steps: int, on_step: Callable[[int], None] | None = None):
        check_pipeline(pipe)
        self.pipe = pipe
        self.latents = latents
        self.cond, self.uncond = cond, uncond
        self.guidance = [float(g) for g in guidance]
        self.on_step = on_step
        self.scheduler = copy.deepcopy(pipe.scheduler)
        self.scheduler.set_timesteps(steps, device=latents.device)
        self.timesteps = self.scheduler.timesteps
        self.scheduler.set_begin_index(0)
        self.next = 0  # index of the next step to run

    @property
    def done(self) -> bool:
        return self.next >= len(self.timesteps)

    @torch.no_grad()
    def run(self, until: int | None = None) -> torch.Tensor:
        transformer = self.pipe.transformer
        dtype = transformer.dtype
        cache_context = getattr(transformer, "cache_context", None)
        sched, latents = self.scheduler, self.latents
        stop = len(self.timesteps) if until is None else min(int(until), len(self.timesteps))
        for i in range(self.next, stop):
            t = self.timesteps[i]
            x = latents.to(dtype)
            timestep = t.expand(latents.shape[0])
            ctx_kw = {"step_index": i, "sigma": float(sched.sigmas[i]), "num_inference_steps": len(self.timesteps)}
            with (cache_context("cond", **ctx_kw) if cache_context else _null()):
                noise_cond = transformer(hidden_states=x, timestep=timestep, encoder_hidden_states=self.cond,
                                         attention_kwargs=None, return_dict=False)[0]
            if self.uncond is not None:
                with (cache_context("uncond", **ctx_kw) if cache_context else _null()):
                    noise_uncond = transformer(hidden_states=x, timestep=timestep,
                                               encoder_hidden_states=self.uncond, attention_kwargs=None,
                                               return_dict=False)[0]
                # per shot with a Python float: exactly the pipeline's arithmetic for one video
                noise_pred = torch.stack([
                    noise_uncond[b] + g * (noise_cond[b] - noise_uncond[b]) if g > 1.0 else noise_cond[b]
                    for b, g in enumerate(self.guidance)
                ])
            else:
                noise_pred = noise_cond
            latents = sched.step(noise_pred, t, latents, return_dict=False)[0]
            self.latents, self.next = latents, i + 1
            if self.on_step is not None:
                self.on_step(i)
        return latents


def sample(
    pipe,
    latents: torch.Tensor,
    cond: torch.Tensor,
    uncond: torch.Tensor | None,
    guidance: Sequence[float],
    steps: int,
    on_step: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Denoise a batch of shots with WanPipeline's loop (see `Sampler`); the final latents
    (float32). For one shot with nothing installed this is WanPipeline's result bit for bit."""
    return Sampler(pipe, latents, cond, uncond, guidance, steps, on_step).run()


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


@torch.no_grad()
def decode(pipe, latents: torch.Tensor) -> np.ndarray:
    """One shot's latents (1, C, f, h, w) -> uint8 (F, H, W, 3), as WanPipeline decodes."""
    from diffusers.utils.torch_utils import get_module_execution_device

    from motionq.methods.transfer import _to_uint8

    vae = pipe.vae
    lat = latents.to(get_module_execution_device(vae), dtype=vae.dtype)
    mean = torch.tensor(vae.config.latents_mean).view(1, vae.config.z_dim, 1, 1, 1).to(lat.device, lat.dtype)
    std = 1.0 / torch.tensor(vae.config.latents_std).view(1, vae.config.z_dim, 1, 1, 1).to(lat.device, lat.dtype)
    lat = lat / std + mean
    video = vae.decode(lat, return_dict=False)[0]
    return _to_uint8(pipe.video_processor.postprocess_video(video, output_type="np"))


# ---------------------------------------------------------------------------------------------
# Shared preparation
# ---------------------------------------------------------------------------------------------

def shot_characters(shot: ShotRequest) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(names, prompt texts) of a shot's characters. `characters` names them (the storyboard's
    ids) and `subjects` holds their prompt texts in the same order; a request with only
    `subjects` uses the texts as names."""
    names = tuple(shot.characters) or tuple(shot.subjects)
    texts = tuple(shot.subjects[k] if k < len(shot.subjects) else names[k] for k in range(len(names)))
    return names, texts


def token_grid(pipe, num_frames: int, height: int, width: int) -> tuple[int, int, int]:
    """(latent frames, token rows, token columns) of a video: tokens in this order."""
    ft = int(getattr(pipe, "vae_scale_factor_temporal", 1) or 1)
    fs = int(getattr(pipe, "vae_scale_factor_spatial", 1) or 1)
    pt, ph, pw = pipe.transformer.config.patch_size
    return ((num_frames - 1) // ft + 1) // pt, height // fs // ph, width // fs // pw


def _common_steps(shots: Sequence[ShotRequest]) -> int:
    steps = {s.steps for s in shots}
    if len(steps) != 1:
        raise ValueError(
            "shots rendered jointly for consistency must use the same number of steps; got "
            + ", ".join(f"{s.shot_id}: {s.steps}" for s in shots)
        )
    return steps.pop()


@dataclass
class _Motion:
    policy: InjectQ
    blocks: list[int]


def _motion_policies(pipe, shots, cond, steps, n_frames, h, w, max_seq, report,
                     blocks: Sequence[int] | None = None) -> dict[int, _Motion]:
    """Motion transfer inside a consistent group: the Q of a shot's reference clip, recorded as
    `methods.transfer.transfer` does, injected into that shot's batch row in both passes."""
    from motionq.control.phases import first_fraction
    from motionq.methods.transfer import encode_video, load_clip, record_motion
    from motionq.video import resample_clip

    out: dict[int, _Motion] = {}
    for row, s in enumerate(shots):
        if s.motion is None or not first_fraction(steps, s.motion.strength):
            continue
        clip = s.motion.clip
        frames = resample_clip(clip, None, n_frames, h, w) if isinstance(clip, np.ndarray) \
            else load_clip(clip, n_frames, h, w)
        z = encode_video(pipe, frames)
        mq = record_motion(pipe, z, cond[row:row + 1], steps=steps, strength=s.motion.strength,
                           seed=s.seed, blocks=blocks, progress=lambda p, d, t, sid=s.shot_id: report((sid,), "record", d, t))
        pol = InjectQ(mq.cache, layers=[layer_name(b) for b in mq.blocks], steps=frozenset(mq.steps),
                      slot=lambda ctx, mq=mq: mq.slot_for(ctx.step), source_pass="record", items=[row])
        out[row] = _Motion(pol, mq.blocks)
    return out


def _reporter(progress: ProgressFn | None):
    def report(ids: tuple[str, ...], phase: str, done: int, total: int) -> None:
        if progress is not None:
            progress(Progress(shot_ids=tuple(ids), step=done, total=total, phase=phase))
    return report


def _subject_tensor(masks: Sequence[M.SubjectMasks], names: Sequence[str], s: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(subject (N, C, S) bool, has (N, C) bool) over the group's character names."""
    n, c = len(masks), len(names)
    subject = torch.zeros(n, c, s, dtype=torch.bool)
    has = torch.zeros(n, c, dtype=torch.bool)
    for i, m in enumerate(masks):
        for k, name in enumerate(m.characters):
            j = names.index(name)
            has[i, j] = True
            subject[i, j] |= torch.from_numpy(np.ascontiguousarray(m.masks[k].reshape(-1)))
    return subject, has


def _shared_positions(m: M.SubjectMasks, chars: set[str], frames: int) -> list[torch.Tensor]:
    """Per frame: flat token positions of `m`'s subject tokens of any of `chars`."""
    sel = [k for k, c in enumerate(m.characters) if c in chars]
    union = m.masks[sel].any(axis=0) if sel else np.zeros(m.masks.shape[1:], bool)
    per = int(np.prod(union.shape[1:]))
    flat = torch.from_numpy(np.ascontiguousarray(union.reshape(-1)))
    pos = torch.nonzero(flat).flatten()
    return [pos[(pos // per) == g] for g in range(frames)]


# ---------------------------------------------------------------------------------------------
# Joint rendering
# ---------------------------------------------------------------------------------------------

@torch.no_grad()
def render_joint(
    backbone,
    shots: Sequence[ShotRequest],
    config: ConsistencyConfig,
    *,
    phases: Phases | None = None,
    options: MultiShotOptions | None = None,
    masks: Mapping[str, np.ndarray] | None = None,
    progress: ProgressFn | None = None,
    record_anchor: bool = False,
) -> GroupResult:
    """Render `shots` as one consistency group (vanilla pass, masks, consistent pass).

    masks: supplied subject masks by shot id ((F, h, w) at any resolution, > 0.5 = subject;
        every character of the shot gets that mask) instead of cross-attention masks.
    record_anchor: also record every shot's subject K/V (and outputs) into an `AnchorKV`
        (the shots are anchors).
    """
    phases = phases or Phases.for_variant(config.variant)
    options = options or default_options(backbone)
    pipe = backbone.pipe
    shots = list(shots)
    ids = tuple(s.shot_id for s in shots)
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate shot ids in a group: {ids}")
    steps = _common_steps(shots)
    h, w = options.size or backbone.native_size()
    n_frames = max(backbone.valid_num_frames(s.num_frames) for s in shots)
    from motionq.methods.transfer import _check_geometry

    _check_geometry(pipe, n_frames, h, w)
    check_pipeline(pipe)
    grid = token_grid(pipe, n_frames, h, w)
    tokens = int(np.prod(grid))
    timesteps, sched, blocks, layers, mask_blocks = _intervention_plan(pipe, config, options, steps)
    report = _reporter(progress)
    max_seq = backbone.max_sequence_length

    chars = [shot_characters(s) for s in shots]
    group_names = list(dict.fromkeys(c for names, _ in chars for c in names))
    may_couple = phases.intervenes and any(
        set(chars[i][0]) & set(chars[j][0]) for i in range(len(shots)) for j in range(len(shots)) if i != j
    )
    need_q = may_couple and (phases.qpres != "none" or phases.qflow)
    q_mode = _q_mode(options, pipe, len(layers), len(sched["sdsa"]), tokens, len(shots))
    record_q = need_q and q_mode == "cache"

    # -- preparation: embeddings, noise, motion recordings --------------------------------
    cfg = any(s.guidance > 1.0 for s in shots)
    cond, uncond = encode_prompts(pipe, shots, max_seq, cfg)
    noise = torch.cat([initial_noise(pipe, s.seed, n_frames, h, w) for s in shots])
    guidance = [float(s.guidance) for s in shots]
    motion = _motion_policies(pipe, shots, cond, steps, n_frames, h, w, max_seq, report,
                              getattr(backbone, "transfer_blocks", None))

    ctl = AttentionController()
    installed = sorted(set(blocks) | {b for m in motion.values() for b in m.blocks})
    restore = install(pipe.transformer, ctl, installed, "pre_rotary")
    try:
        # -- 1. vanilla pass ---------------------------------------------------------------
        positions = [[M.subject_token_positions(pipe.tokenizer, s.prompt, t, max_seq) for t in texts]
                     for s, (_, texts) in zip(shots, chars)]
        acc = M.SubjectMaskAccumulator(positions, grid, M.step_filter(options.mask_range, timesteps))
        restore_masks = M.install_mask_recorders(pipe.transformer, ctl, mask_blocks, acc)
        vq = QCache(device=options.q_device)
        pols: list[Policy] = [m.policy for m in motion.values()]
        if record_q:
            pols.append(RecordQ(vq, layers=layers, steps=frozenset(sched["sdsa"])))
        vanilla = Sampler(pipe, noise, cond, uncond, guidance, steps,
                          on_step=lambda i: report(ids, "vanilla", i + 1, steps))
        supplied_all = all(s.shot_id in (masks or {}) for s in shots)
        try:
            ctl.clear()
            for p in pols:
                ctl.add(p)
            ctl.reset(items=ids)
            # Run the vanilla pass only as far as the masks and the Q it provides; it is
            # finished below only if some shot turns out to keep its vanilla frames.
            vanilla.run(until=_vanilla_needs(may_couple, record_q, supplied_all, sched, options, timesteps))

            # -- 2. masks --------------------------------------------------------------------
            found = acc.finish([names for names, _ in chars])
            subj: list[M.SubjectMasks] = []
            for i, s in enumerate(shots):
                given = M.masks_from_supplied(masks or {}, s.shot_id, chars[i][0], grid)
                subj.append(given if given is not None else found[i])
                if given is None and chars[i][0] and not any(positions[i]):
                    log.warning("shot %s: no character prompt found in its prompt; no subject mask", s.shot_id)

            # -- 3. who is coupled -----------------------------------------------------------
            subject, has = _subject_tensor(subj, group_names, tokens)
            vis = visible_tokens(subject, has) if may_couple else torch.zeros(len(shots), len(shots), tokens, dtype=torch.bool)
            receives = [i for i in range(len(shots)) if bool(vis[i].any())]
            if len(receives) < len(shots):
                vanilla.run()  # some shot keeps its vanilla frames: finish the pass
        finally:
            restore_masks()
            ctl.clear()
        lat_v = vanilla.latents
        if record_anchor and bool(subject.any()):
            rows = list(range(len(shots)))  # every anchor's K/V is recorded
        else:
            rows = sorted(set(receives) | {j for i in receives for j in range(len(shots)) if bool(vis[i, j].any())})
        stats = {"q_cache_bytes": vq.nbytes, "coupled": [ids[i] for i in receives],
                 "consistent_batch": [ids[i] for i in rows], "tokens": tokens, "grid": grid,
                 "steps": sched, "vanilla_steps": vanilla.next, "vanilla_q": q_mode}

        frames: dict[str, ShotFrames] = {}
        for i, s in enumerate(shots):
            if i not in receives:
                frames[s.shot_id] = ShotFrames(decode(pipe, lat_v[i:i + 1])[: s.num_frames], subj[i])

        anchor = None
        if record_anchor:
            anchor = _empty_anchor(ids, subj, grid, timesteps)
        if rows and (receives or record_anchor):
            # -- 4. consistent pass --------------------------------------------------------
            # batch: the consistent rows, then (live Q) a vanilla twin of every coupled shot
            live = need_q and q_mode == "live"
            batch = rows + (receives if live else [])
            if record_q and rows != list(range(len(shots))):
                vq.select_items(rows)
            pos_in = {r: k for k, r in enumerate(rows)}
            twin = {i: len(rows) + k for k, i in enumerate(receives)} if live else {}
            coupled_b = [pos_in[i] for i in receives]
            pols = []
            for row, m in motion.items():
                items = ([pos_in[row]] if row in pos_in else []) + ([twin[row]] if row in twin else [])
                if items:
                    pols.append(replace_items(m.policy, items))
            if need_q:
                pols += _q_policies(vq if not live else None, layers, sched, phases, coupled_b,
                                    [twin[i] for i in receives] if live else None, grid[0], config, options)
            if phases.sdsa:
                b_subject = torch.cat([subject[rows], torch.zeros(len(batch) - len(rows), *subject.shape[1:], dtype=torch.bool)])
                b_has = torch.cat([has[rows], torch.zeros(len(batch) - len(rows), has.shape[1], dtype=torch.bool)])
                index = build_sdsa_index(b_subject, b_has, grid[0])  # twins neither see nor are seen
                pols.append(SDSA(index, layers, sched["sdsa"], options.attention, options.shared_key_weight))
            if record_anchor:
                # K/V only where shared attention will read them; outputs where refinement will.
                pols.append(AnchorRecorder(anchor, [pos_in[i] for i in range(len(shots))], layers,
                                           sched["sdsa"] if phases.sdsa else [],
                                           sched["refine"] if phases.refine else [], options.q_device))
            if phases.refine and sched["refine"]:
                targets = _joint_refine_targets(shots, chars, subj, rows, receives, grid[0])
                pols.append(Refine(targets, layers, sched["refine"], options.refine_alpha,
                                   mode=options.refine_mode))
            for p in pols:
                ctl.add(p)
            sub = torch.as_tensor(batch)
            bids = tuple(ids[i] for i in rows)
            ctl.reset(items=bids + tuple(f"{ids[i]}:vanilla" for i in batch[len(rows):]))
            try:
                lat_c = sample(pipe, noise[sub], cond[sub], None if uncond is None else uncond[sub],
                               [guidance[i] for i in batch], steps,
                               on_step=lambda i: report(bids, "consistent", i + 1, steps))
            finally:
                ctl.clear()
            for k, i in enumerate(rows):
                if i in receives:
                    frames[shots[i].shot_id] = ShotFrames(decode(pipe, lat_c[k:k + 1])[: shots[i].num_frames], subj[i])
        if anchor is not None:
            stats["anchor_bytes"] = anchor.nbytes
    finally:
        restore()
    return GroupResult({s.shot_id: frames[s.shot_id] for s in shots},
                       {s.shot_id: subj[i] for i, s in enumerate(shots)}, anchor, stats)


def _q_mode(options: MultiShotOptions, pipe, n_layers: int, n_steps: int, tokens: int, shots: int) -> str:
    """"cache" or "live" for `options.vanilla_q` ("auto": cache while `memory_bound` fits)."""
    if options.vanilla_q != "auto":
        return options.vanilla_q
    cfg = pipe.transformer.config
    nbytes = torch.finfo(pipe.transformer.dtype).bits // 8
    bound = memory_bound(n_layers, n_steps, tokens, cfg.num_attention_heads * cfg.attention_head_dim,
                         nbytes, shots, 2)
    return "cache" if bound <= options.q_budget_bytes else "live"


def _q_policies(vq: QCache | None, layers, sched: dict, phases: Phases, items: list[int],
                twins: list[int] | None, frames: int, config: ConsistencyConfig,
                options: MultiShotOptions) -> list[Policy]:
    """Q-Preservation and Q-Flow for batch rows `items`, with the vanilla Q from the cache
    `vq` (rows aligned with the batch) or from the live twin rows `twins`."""
    out: list[Policy] = []
    if not items:
        return out
    qpres_steps = {"none": [], "tpres": sched["qpres"], "all": sched["sdsa"]}[phases.qpres]
    if qpres_steps:
        out.append(InjectQ(vq, layers=layers, steps=frozenset(qpres_steps), items=items) if twins is None
                   else CopyQ(layers, qpres_steps, items, twins))
    if phases.qflow and sched["qflow"]:
        out.append(QFlow(vq, layers, sched["qflow"], items, frames, config.keyframe_every,
                         options.qflow_weight, sources=twins))
    return out


def _vanilla_needs(may_couple: bool, need_q: bool, masks_given: bool, sched: dict,
                   options: MultiShotOptions, timesteps: Sequence[float]) -> int | None:
    """How many vanilla steps the consistent pass needs (None: all of them): up to the last
    step whose Q is used (the SDSA range) and the last step whose cross-attention makes the
    masks. With the defaults (t down to 550 and 500) that is 13 of 20 steps for the built-in
    model, 38 of 50 for Wan 2.1."""
    if not may_couple:
        return None
    needed = set(sched["sdsa"]) if need_q else set()
    if not masks_given:
        needed |= M.mask_steps(options.mask_range, timesteps)
    return max(needed) + 1 if needed else 0


def replace_items(policy: InjectQ, items: list[int]) -> InjectQ:
    """A copy of an `InjectQ` acting on other batch rows (the consistent pass's numbering)."""
    p = copy.copy(policy)
    p.items = list(items)
    return p


def _joint_refine_targets(shots, chars, subj, rows, receives, frames) -> list[RefineTarget]:
    """Each coupled shot's reference: the first shot of the group sharing a character with it
    (none when that is the shot itself, or when the reference is not in the batch)."""
    pos_in = {r: k for k, r in enumerate(rows)}
    out = []
    for i in receives:
        mine = set(chars[i][0])
        ref = next((j for j in range(len(shots)) if mine & set(chars[j][0])), None)
        if ref is None or ref == i or ref not in pos_in:
            continue
        shared = mine & set(chars[ref][0])
        out.append(RefineTarget(
            row=pos_in[i], positions=_shared_positions(subj[i], shared, frames),
            ref_row=pos_in[ref], ref_positions=_shared_positions(subj[ref], shared, frames),
        ))
    return out


def with_model_defaults(config: ConsistencyConfig, options: MultiShotOptions) -> ConsistencyConfig:
    """`config` with what it leaves to the model (an unset `refine_range`) filled in from `options`."""
    if config.refine_range is None:
        return dataclasses.replace(config, refine_range=tuple(options.refine_range))
    return config


def _intervention_plan(pipe, config: ConsistencyConfig, options: MultiShotOptions, steps: int):
    """Timesteps, the phase schedule, and which blocks are intervened on / read for masks:
    shared by the joint render and the render against anchors."""
    timesteps = scheduler_timesteps(pipe.scheduler, steps)
    sched = multishot_schedule(timesteps, with_model_defaults(config, options))
    num_layers = len(pipe.transformer.blocks)
    blocks = sorted(set(options.blocks if options.blocks is not None else range(num_layers)))
    layers = [layer_name(b) for b in blocks]
    mask_blocks = list(options.mask_blocks if options.mask_blocks is not None else M.default_mask_blocks(num_layers))
    return timesteps, sched, blocks, layers, mask_blocks

def _empty_anchor(ids, subj: Sequence[M.SubjectMasks], grid, timesteps) -> AnchorKV:
    positions, membership = [], []
    for m in subj:
        flat = m.masks.reshape(m.masks.shape[0], -1)  # (C, S)
        union = flat.any(axis=0) if flat.shape[0] else np.zeros(flat.shape[1], bool)
        pos = np.nonzero(union)[0]
        positions.append(torch.from_numpy(pos).long())
        membership.append(torch.from_numpy(flat[:, pos].T.copy()))
    return AnchorKV(tuple(ids), [m.characters for m in subj], positions, membership,
                    grid[0], grid[1] * grid[2], list(timesteps))


# ---------------------------------------------------------------------------------------------
# Anchor mode
# ---------------------------------------------------------------------------------------------

@dataclass
class AnchorEntry:
    """A joint anchor render kept for reuse: its frames, masks and recorded subject K/V."""

    key: str
    shots: tuple[ShotRequest, ...]
    frames: dict[str, ShotFrames]
    masks: dict[str, M.SubjectMasks]
    kv: AnchorKV

    @property
    def nbytes(self) -> int:
        return self.kv.nbytes


def anchor_cache(backbone) -> OrderedDict:
    """The backbone's in-memory anchor cache (key -> `AnchorEntry`, least recently used first)."""
    cache = getattr(backbone, "anchor_cache", None)
    if cache is None:
        cache = OrderedDict()
        backbone.anchor_cache = cache
    return cache


def anchor_key(anchors: Sequence[ShotRequest], config: ConsistencyConfig, phases: Phases,
               options: MultiShotOptions, masks: Mapping[str, np.ndarray] | None = None) -> str:
    """What makes an anchor render: the anchors' requests (in order), the consistency settings,
    the phases and options, and supplied masks' content."""
    obj = {
        "anchors": [asdict(a) for a in anchors],
        "config": config.to_dict(),
        "phases": asdict(phases),
        "options": asdict(options),
        "masks": {k: hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest() + str(np.shape(v))
                  for k, v in sorted((masks or {}).items()) if k in {a.shot_id for a in anchors}},
    }
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:24]


def anchor_entry(backbone, anchors: Sequence[ShotRequest], config: ConsistencyConfig, *,
                 phases: Phases | None = None, options: MultiShotOptions | None = None,
                 masks: Mapping[str, np.ndarray] | None = None,
                 progress: ProgressFn | None = None) -> AnchorEntry:
    """The anchors' joint render with recorded subject K/V, from the cache or rendered now."""
    phases = phases or Phases.for_variant(config.variant)
    options = options or default_options(backbone)
    key = anchor_key(anchors, config, phases, options, masks)
    cache = anchor_cache(backbone)
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    res = render_joint(backbone, anchors, config, phases=phases, options=options, masks=masks,
                       progress=progress, record_anchor=True)
    entry = AnchorEntry(key, tuple(anchors), res.frames, res.masks, res.anchor)
    cache[key] = entry
    while len(cache) > max(1, options.anchor_cache_size):
        cache.popitem(last=False)
    return entry


@torch.no_grad()
def render_against_anchors(
    backbone,
    shot: ShotRequest,
    entry: AnchorEntry,
    config: ConsistencyConfig,
    *,
    phases: Phases | None = None,
    options: MultiShotOptions | None = None,
    masks: Mapping[str, np.ndarray] | None = None,
    progress: ProgressFn | None = None,
) -> tuple[ShotFrames, dict]:
    """Render one shot alone (at its own frame count) with shared attention to the cached
    anchors that share a character with it. An anchor with the shot's own id is not a source
    (a shot never attends to itself, as in the joint render), and a shot whose refinement
    reference is itself is not refined. Returns (frames, stats)."""
    phases = phases or Phases.for_variant(config.variant)
    options = options or default_options(backbone)
    pipe = backbone.pipe
    store = entry.kv
    steps = shot.steps
    h, w = options.size or backbone.native_size()
    n_frames = backbone.valid_num_frames(shot.num_frames)
    from motionq.methods.transfer import _check_geometry

    _check_geometry(pipe, n_frames, h, w)
    grid = token_grid(pipe, n_frames, h, w)
    if grid[1] * grid[2] != store.tokens_per_frame:
        raise ValueError("anchors were rendered at another size than this shot")
    timesteps, sched, blocks, layers, mask_blocks = _intervention_plan(pipe, config, options, steps)
    report = _reporter(progress)
    max_seq = backbone.max_sequence_length
    ids = (shot.shot_id,)
    names, texts = shot_characters(shot)
    recorded = sorted({k[1] for k in store.kv})
    sources = [
        (a, store.selection(a, set(names) & set(store.characters[a])))
        for a in range(len(store.shot_ids))
        if store.shot_ids[a] != shot.shot_id and set(names) & set(store.characters[a])
    ]
    # Coupled when the anchors recorded what this variant reads: K/V for shared attention, the
    # attention outputs for the refinement alone ("refine").
    readable = (phases.sdsa and bool(recorded)) or (phases.refine and bool(sched["refine"]) and bool(store.out))
    can_couple = phases.intervenes and readable and any(bool(sel.any()) for _, sel in sources)
    need_q = can_couple and (phases.qpres != "none" or phases.qflow)
    q_mode = _q_mode(options, pipe, len(layers), len(sched["sdsa"]), int(np.prod(grid)), 1)
    record_q = need_q and q_mode == "cache"

    cfg = shot.guidance > 1.0
    cond, uncond = encode_prompts(pipe, [shot], max_seq, cfg)
    noise = initial_noise(pipe, shot.seed, n_frames, h, w)
    guidance = [float(shot.guidance)]
    motion = _motion_policies(pipe, [shot], cond, steps, n_frames, h, w, max_seq, report,
                              getattr(backbone, "transfer_blocks", None))
    ctl = AttentionController()
    installed = sorted(set(blocks) | {b for m in motion.values() for b in m.blocks})
    restore = install(pipe.transformer, ctl, installed, "pre_rotary")
    try:
        positions = [[M.subject_token_positions(pipe.tokenizer, shot.prompt, t, max_seq) for t in texts]]
        acc = M.SubjectMaskAccumulator(positions, grid, M.step_filter(options.mask_range, timesteps))
        restore_masks = M.install_mask_recorders(pipe.transformer, ctl, mask_blocks, acc)
        vq = QCache(device=options.q_device)
        pols: list[Policy] = [m.policy for m in motion.values()]
        if record_q:
            pols.append(RecordQ(vq, layers=layers, steps=frozenset(sched["sdsa"])))
        vanilla = Sampler(pipe, noise, cond, uncond, guidance, steps,
                          on_step=lambda i: report(ids, "vanilla", i + 1, steps))
        given = M.masks_from_supplied(masks or {}, shot.shot_id, names, grid)
        try:
            for p in pols:
                ctl.add(p)
            ctl.reset(items=ids)
            vanilla.run(until=_vanilla_needs(can_couple, record_q, given is not None, sched, options, timesteps))
            subj = given if given is not None else acc.finish([names])[0]
            step_map = {s: min(recorded, key=lambda r: abs(store.timesteps[r] - timesteps[s]))
                        for s in sched["sdsa"]} if recorded else {}
            live = need_q and q_mode == "live"
            ext = AnchorSDSA(store, sources, grid[0], layers, sched["sdsa"], step_map, options.attention,
                             rows=[0], weight=options.shared_key_weight) if can_couple else None
            if ext is None or ext.empty:
                vanilla.run()  # not coupled: its vanilla frames are the result
        finally:
            restore_masks()
            ctl.clear()
        stats = {"q_cache_bytes": vq.nbytes, "coupled": [], "grid": grid, "steps": sched,
                 "vanilla_steps": vanilla.next, "vanilla_q": q_mode}
        if ext is None or ext.empty:
            return ShotFrames(decode(pipe, vanilla.latents)[: shot.num_frames], subj), stats
        stats["coupled"] = [shot.shot_id]
        # batch: the shot, then (live Q) its vanilla twin
        pols = [replace_items(m.policy, [0, 1] if live else [0]) for m in motion.values()]
        if need_q:
            pols += _q_policies(None if live else vq, layers, sched, phases, [0], [1] if live else None,
                                grid[0], config, options)
        if phases.sdsa:
            pols.append(ext)
        if phases.refine and sched["refine"] and store.out:
            target = _anchor_refine_target(shot, names, subj, store, grid[0])
            if target is not None:
                out_recorded = sorted({k[1] for k in store.out})
                out_map = {s: min(out_recorded, key=lambda r: abs(store.timesteps[r] - timesteps[s]))
                           for s in sched["refine"]}
                pols.append(Refine([target], layers, sched["refine"], options.refine_alpha, store, out_map,
                                   mode=options.refine_mode))
        for p in pols:
            ctl.add(p)
        n = 2 if live else 1
        ctl.reset(items=ids + ((f"{shot.shot_id}:vanilla",) if live else ()))
        try:
            lat_c = sample(pipe, noise.repeat(n, 1, 1, 1, 1), cond.repeat(n, 1, 1),
                           None if uncond is None else uncond.repeat(n, 1, 1), guidance * n, steps,
                           on_step=lambda i: report(ids, "consistent", i + 1, steps))
        finally:
            ctl.clear()
        return ShotFrames(decode(pipe, lat_c[:1])[: shot.num_frames], subj), stats
    finally:
        restore()


def _anchor_refine_target(shot, names, subj, store: AnchorKV, frames: int) -> RefineTarget | None:
    mine = set(names)
    a = next((k for k in range(len(store.shot_ids)) if mine & set(store.characters[k])), None)
    if a is None or store.shot_ids[a] == shot.shot_id:
        return None
    shared = mine & set(store.characters[a])
    sel = store.selection(a, shared)
    fr = store.frame_of(a)
    select = [torch.nonzero(sel & (fr == M.map_frame(g, frames, store.frames))).flatten() for g in range(frames)]
    return RefineTarget(row=0, positions=_shared_positions(subj, shared, frames), anchor=a, anchor_select=select)


# ---------------------------------------------------------------------------------------------
# The backbone entry point
# ---------------------------------------------------------------------------------------------

def default_options(backbone) -> MultiShotOptions:
    return getattr(backbone, "multishot_options", None) or MultiShotOptions()


def render_group(
    backbone,
    request: GroupRequest,
    progress: ProgressFn | None = None,
    *,
    phases: Phases | None = None,
    options: MultiShotOptions | None = None,
    masks: Mapping[str, np.ndarray] | None = None,
) -> dict[str, ShotFrames]:
    """Render a `GroupRequest` with its consistency variant; frames (with `.masks`) by shot id.

    Without `anchor_ids`: the whole group jointly (`render_joint`). With them: the anchors
    jointly (from the backbone's anchor cache when it has this render), then every other shot
    alone against them (`render_against_anchors`).
    """
    config = request.consistency
    phases = phases or Phases.for_variant(config.variant)
    options = options or default_options(backbone)
    shots = list(request.shots)
    if not request.anchor_ids:
        return render_joint(backbone, shots, config, phases=phases, options=options, masks=masks,
                            progress=progress).frames
    by_id = {s.shot_id: s for s in shots}
    unknown = [a for a in request.anchor_ids if a not in by_id]
    if unknown:
        raise ValueError(f"anchor ids not in the group: {', '.join(unknown)}")
    anchors = [by_id[a] for a in request.anchor_ids]
    entry = anchor_entry(backbone, anchors, config, phases=phases, options=options, masks=masks,
                         progress=progress)
    out: dict[str, ShotFrames] = {}
    for s in shots:
        if s.shot_id in entry.frames:
            out[s.shot_id] = entry.frames[s.shot_id]
        else:
            out[s.shot_id] = render_against_anchors(backbone, s, entry, config, phases=phases,
                                                    options=options, masks=masks, progress=progress)[0]
    return out


def memory_bound(
    layers: int, steps: int, tokens: int, dim: int, dtype_bytes: int, shots: int, passes: int = 2
) -> int:
    """Bytes of vanilla Q the consistent pass needs: layers x steps x tokens x dim x bytes x
    shots x passes (steps: those of the SDSA range; passes: 2 with guidance)."""
    return layers * steps * tokens * dim * dtype_bytes * shots * passes


def register() -> None:
    """Make `PipelineBackbone.render_group` dispatch every non-vanilla variant here."""
    from motionq.api import VARIANTS
    from motionq.backbones.pipeline import PipelineBackbone

    for v in VARIANTS:
        if v != "vanilla":
            PipelineBackbone.variant_renderers.setdefault(v, render_group)


register()

__all__ = [
    "AnchorEntry",
    "GroupResult",
    "MultiShotOptions",
    "Phases",
    "QPRES_MODES",
    "ShotFrames",
    "anchor_cache",
    "anchor_entry",
    "anchor_key",
    "check_pipeline",
    "decode",
    "encode_prompts",
    "initial_noise",
    "memory_bound",
    "register",
    "render_against_anchors",
    "render_group",
    "render_joint",
    "sample",
    "shot_characters",
    "token_grid",
]
