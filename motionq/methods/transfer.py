"""Zero-shot motion transfer by query injection (Motion by Queries, section "motion transfer").

Recipe (see docs/motion-transfer.md for the settings and why):

1. `load_clip`: read the reference clip and fit it to the target's frames and size.
2. `encode_video`: VAE-encode it and normalise the latent the way WanPipeline un-normalises
   before decoding (z = (vae_latent - latents_mean) / latents_std).
3. `record_motion`: forward-noise the clean latent to each recording timestep
   (flow matching: x_t = (1 - sigma) x0 + sigma noise, sigma = t / 1000 with the scheduler's
   shift already in t) and run ONE transformer forward with the target prompt's embeddings,
   recording Q of the chosen self-attention layers into a `QCache`.
   record="single": one low-noise timestep (`record_t`, default 200), its Q reused at every
   injected step (the paper's Wan 2.1 setting); record="per_step": one recording per injected
   sampling step at that step's own timestep (the paper's VideoCrafter2 setting).
4. `generate`: sample the target from noise with its own prompt; for the first
   `round(strength * steps)` steps, every controlled layer's Q is replaced by the recorded one
   in both the conditional and the unconditional pass (so classifier-free guidance compares
   two predictions with the same motion layout instead of amplifying the difference between
   the reference's motion and the target's own).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from motionq.control.controller import AttentionController, InjectQ, Policy, QCache, RecordQ
from motionq.control.phases import first_fraction, scheduler_sigmas, scheduler_timesteps
from motionq.control.processors import INJECT_POINTS, install, layer_name
from motionq.video import VideoError, read_video, resample_clip

__all__ = [
    "MotionQueries",
    "pipeline_num_frames",
    "QCache",
    "default_blocks",
    "encode_video",
    "generate",
    "load_clip",
    "record_motion",
    "transfer",
]

#: progress(phase, done, total); phases: "encode", "record", "sample".
TransferProgress = Callable[[str, int, int], None]

RECORD_MODES = ("single", "per_step")
DEFAULT_RECORD_T = 200.0
DEFAULT_MAX_SEQUENCE_LENGTH = 512  # WanPipeline's own default


def default_blocks(num_layers: int) -> list[int]:
    """The last third of the transformer's blocks (at least one).

    The paper injects Q into Wan 2.1 1.3B's blocks 20-30 of 30; scaled to any depth that is
    `range(num_layers - round(num_layers / 3), num_layers)`: 30 -> 20..29, 12 -> 8..11,
    4 -> 3, 2 -> 1.
    """
    n = max(1, int(round(num_layers / 3)))
    return list(range(num_layers - n, num_layers))


def load_clip(path: str | os.PathLike, num_frames: int, height: int, width: int) -> np.ndarray:
    """Read a clip and fit it to (num_frames, height, width): uint8 (F, H, W, 3).

    Time: `num_frames` evenly spaced frames over the whole clip; space: centre-crop, area
    resize (`motionq.video.resample_clip`). Raises `VideoError` for a bad clip.
    """
    frames, fps = read_video(path)
    return resample_clip(frames, fps, num_frames, height, width)


def pipeline_num_frames(pipe, frames: int) -> int:
    """The `num_frames` to pass to WanPipeline so that it makes exactly `frames` frames.

    WanPipeline rounds any count with `n % t != 1` to `n // t * t + 1` (t: the VAE's temporal
    factor). With t = 1 (a per-frame codec, like the built-in model's) that turns every n into
    n + 1, so we ask for one fewer; with t > 1 valid counts (1 + k t) pass unchanged.
    """
    t = int(getattr(pipe, "vae_scale_factor_temporal", 1) or 1)
    if t == 1:
        # WanPipeline warns "num_frames - 1 has to be divisible by 1" on every call for the n - 1
        # we pass on purpose; silence that one logger.
        logging.getLogger("diffusers.pipelines.wan.pipeline_wan").setLevel(logging.ERROR)
        return frames - 1
    return frames


def _check_geometry(pipe, num_frames: int, height: int, width: int) -> None:
    ft = int(getattr(pipe, "vae_scale_factor_temporal", 1) or 1)
    fs = int(getattr(pipe, "vae_scale_factor_spatial", 1) or 1)
    _, ph, pw = pipe.transformer.config.patch_size
    if num_frames < 1 or (num_frames - 1) % ft:
        raise ValueError(
            f"num_frames must be 1 + {ft}k for this model's VAE, got {num_frames} "
            f"(try {max(1, (num_frames - 1) // ft * ft + 1)} or {((num_frames - 1) // ft + 1) * ft + 1})"
        )
    if height % (fs * ph) or width % (fs * pw):
        raise ValueError(f"height and width must be multiples of {fs * ph} and {fs * pw}, got {height}x{width}")


def _vae_stats(vae, z_dim: int, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    mean = getattr(vae.config, "latents_mean", None)
    std = getattr(vae.config, "latents_std", None)
    mean_t = torch.tensor(mean if mean is not None else [0.0] * z_dim, device=device, dtype=dtype)
    std_t = torch.tensor(std if std is not None else [1.0] * z_dim, device=device, dtype=dtype)
    return mean_t.view(1, -1, 1, 1, 1), std_t.view(1, -1, 1, 1, 1)


@torch.no_grad()
def encode_video(pipe, frames: np.ndarray) -> torch.Tensor:
    """VAE-encode uint8 frames (F, H, W, 3) to the transformer's latent space, float32
    (1, C, f, h, w). The inverse of WanPipeline's decode normalisation: the pipeline decodes
    `z * latents_std + latents_mean`, so we return `(mode(q(z|x)) - latents_mean) / latents_std`.
    A VAE without latents_mean/std (e.g. a parameter-free codec) is used as is; its `encode`
    may return an output with `latent_dist`, a tensor, or a tuple whose first item is either.
    """
    from diffusers.utils.torch_utils import get_module_execution_device

    vae = pipe.vae
    device = get_module_execution_device(vae)
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2)[None]
    x = (x.float() / 127.5 - 1.0).to(device=device, dtype=vae.dtype)  # pipeline range [-1, 1]
    enc = vae.encode(x)
    if isinstance(enc, tuple):
        enc = enc[0]
    dist = getattr(enc, "latent_dist", enc)
    z = dist.mode() if hasattr(dist, "mode") else dist
    z = z.float()
    mean, std = _vae_stats(vae, z.shape[1], z.device, z.dtype)
    return (z - mean) / std


@dataclass
class MotionQueries:
    """Q recorded from a reference clip, ready to inject.

    cache: the tensors; slot i holds the recording used at sampling step i ("per_step") or
    slot 0 the one used at every injected step ("single"), under the pass name "record".
    """

    cache: QCache
    blocks: list[int]
    inject_at: str
    record: str
    timesteps: list[float]
    shape: tuple[int, int, int]  # (num_frames, height, width) it was recorded at
    steps: list[int] = field(default_factory=list)  # sampling steps it was recorded for

    @property
    def nbytes(self) -> int:
        return self.cache.nbytes

    def slot_for(self, step: int) -> int:
        return 0 if self.record == "single" else step


class _StopForward(Exception):
    """Raised after the last recorded layer: the rest of the forward is not needed."""


class _StopAfter(Policy):
    def __init__(self, layer: str) -> None:
        self.layers = frozenset([layer])

    def on_query(self, layer, q, ctx):
        raise _StopForward


def _encode_prompts(
    pipe, prompt: str, negative_prompt: str, guidance: float, max_sequence_length: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    from diffusers.utils.torch_utils import get_module_execution_device

    with torch.no_grad():  # as WanPipeline does: grad mode changes the encoder's last bits
        pe, ne = pipe.encode_prompt(
            prompt=prompt,
            negative_prompt=negative_prompt,
            do_classifier_free_guidance=guidance > 1.0,
            num_videos_per_prompt=1,
            max_sequence_length=max_sequence_length,
            # where the transformer consumes them (== pipe._execution_device, which is slow to
            # compute: it walks every module of every component)
            device=get_module_execution_device(pipe.transformer),
        )
    dtype = pipe.transformer.dtype
    return pe.to(dtype), (ne.to(dtype) if ne is not None else None)


def seeded_noise(latents: torch.Tensor, seed: int) -> torch.Tensor:
    """The starting noise WanPipeline draws for `seed` (float32, shaped and placed like `latents`):
    the recording noises the reference with it, and `init_mix` mixes into it."""
    from diffusers.utils.torch_utils import randn_tensor

    return randn_tensor(tuple(latents.shape), generator=torch.Generator().manual_seed(seed),
                        device=latents.device, dtype=torch.float32)


@torch.no_grad()
def record_motion(
    pipe,
    latents: torch.Tensor,
    prompt_embeds: torch.Tensor,
    *,
    steps: int,
    strength: float,
    blocks: Sequence[int] | None = None,
    record: str = "single",
    record_t: float = DEFAULT_RECORD_T,
    inject_at: str = "pre_rotary",
    seed: int = 0,
    cache: QCache | None = None,
    progress: TransferProgress | None = None,
) -> MotionQueries:
    """Record Q of `blocks` from a clean (normalised) reference latent (1, C, f, h, w).

    The latent is noised with the same seeded noise the target generation starts from
    (`torch.Generator().manual_seed(seed)`), so one seed fixes everything. Only the steps that
    will be injected (`first_fraction(steps, strength)`) are recorded in per-step mode.
    """
    if record not in RECORD_MODES:
        raise ValueError(f"record must be one of {RECORD_MODES}, got {record!r}")
    if inject_at not in INJECT_POINTS:
        raise ValueError(f"inject_at must be one of {INJECT_POINTS}, got {inject_at!r}")
    transformer = pipe.transformer
    blocks = sorted(set(blocks if blocks is not None else default_blocks(len(transformer.blocks))))
    inject_steps = first_fraction(steps, strength)
    n_train = float(pipe.scheduler.config.num_train_timesteps)
    if record == "single":
        if not 0.0 <= record_t <= n_train:
            raise ValueError(f"record_t must be in [0, {n_train:.0f}], got {record_t}")
        plan = [(float(record_t), float(record_t) / n_train)] if inject_steps else []
    else:
        ts, sig = scheduler_timesteps(pipe.scheduler, steps), scheduler_sigmas(pipe.scheduler, steps)
        plan = [(ts[i], sig[i]) for i in inject_steps]

    cache = cache if cache is not None else QCache()
    device = latents.device
    noise = seeded_noise(latents, seed)
    controller = AttentionController()
    names = [layer_name(b) for b in blocks]
    restore = install(transformer, controller, blocks, inject_at)
    controller.add(RecordQ(cache, layers=names, passes=("record",)))
    controller.add(_StopAfter(names[-1]))
    embeds = prompt_embeds.to(device=device, dtype=transformer.dtype)
    try:
        for slot, (t, sigma) in enumerate(plan):
            x_t = (1.0 - sigma) * latents.float() + sigma * noise
            timestep = torch.full((latents.shape[0],), t, device=device, dtype=torch.float32)
            with controller.fixed(step=slot, timestep=t, pass_name="record"):
                try:
                    transformer(hidden_states=x_t.to(transformer.dtype), timestep=timestep,
                                encoder_hidden_states=embeds, return_dict=False)
                except _StopForward:
                    pass
            if progress:
                progress("record", slot + 1, len(plan))
    finally:
        restore()
    _, _, f, h, w = latents.shape
    return MotionQueries(
        cache=cache, blocks=blocks, inject_at=inject_at, record=record,
        timesteps=[t for t, _ in plan], shape=(f, h, w), steps=inject_steps,
    )


def _to_uint8(video) -> np.ndarray:
    arr = np.asarray(video)
    if arr.ndim == 5:
        arr = arr[0]
    if arr.dtype == np.uint8:
        return arr
    return (np.clip(arr, 0.0, 1.0) * 255.0).round().astype(np.uint8)


@torch.no_grad()
def generate(
    pipe,
    prompt: str | None = None,
    *,
    motion: MotionQueries | None = None,
    strength: float = 0.0,
    num_frames: int,
    height: int,
    width: int,
    steps: int = 20,
    guidance: float = 4.0,
    seed: int = 0,
    negative_prompt: str = "",
    progress: TransferProgress | None = None,
    max_sequence_length: int = DEFAULT_MAX_SEQUENCE_LENGTH,
    prompt_embeds: torch.Tensor | None = None,
    negative_prompt_embeds: torch.Tensor | None = None,
    output_type: str = "np",
    latents: torch.Tensor | None = None,
):
    """One WanPipeline generation, with `motion`'s Q injected into the first
    `round(strength * steps)` steps (both guidance passes). Without motion (or strength 0) this
    is exactly a plain pipeline call: nothing is installed. `num_frames` is the number of frames
    produced (see `pipeline_num_frames`); it must be 1 + k * (VAE temporal factor).

    output_type "np" -> uint8 (F, H, W, 3); "latent" -> the pipeline's latent tensor.
    latents: the starting latent (default: the pipeline's own seeded noise).
    """
    _check_geometry(pipe, num_frames, height, width)
    inject_steps = first_fraction(steps, strength) if motion is not None else []
    restore = None
    if inject_steps:
        f_lat = (num_frames - 1) // int(getattr(pipe, "vae_scale_factor_temporal", 1) or 1) + 1
        fs = int(getattr(pipe, "vae_scale_factor_spatial", 1) or 1)
        if motion.shape != (f_lat, height // fs, width // fs):
            raise ValueError(f"motion was recorded at latent size {motion.shape}, the generation "
                             f"is {(f_lat, height // fs, width // fs)}: use the same frames and size")
        if motion.record == "per_step":
            missing = [s for s in inject_steps if s not in motion.steps]
            if missing:
                raise ValueError(f"per-step motion has no recording for steps {missing}: "
                                 "record with the same steps and strength")
        controller = AttentionController()
        restore = install(pipe.transformer, controller, motion.blocks, motion.inject_at)
        controller.add(InjectQ(
            motion.cache, layers=[layer_name(b) for b in motion.blocks],
            steps=frozenset(inject_steps), slot=lambda ctx: motion.slot_for(ctx.step),
            source_pass="record",
        ))
        controller.reset()

    def on_step_end(_pipe, i, _t, _kwargs):
        if progress:
            progress("sample", i + 1, steps)
        return {}

    kwargs = dict(
        num_frames=pipeline_num_frames(pipe, num_frames), height=height, width=width,
        num_inference_steps=steps,
        guidance_scale=guidance, generator=torch.Generator().manual_seed(seed),
        output_type="latent" if output_type == "latent" else "np",
        max_sequence_length=max_sequence_length, callback_on_step_end=on_step_end,
    )
    if latents is not None:
        kwargs["latents"] = latents
    if prompt_embeds is not None:
        kwargs.update(prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_prompt_embeds)
    else:
        kwargs.update(prompt=prompt, negative_prompt=negative_prompt)
    # WanPipeline warns about the frame-count rounding we asked for on purpose (t = 1)
    wan_log = logging.getLogger("diffusers.pipelines.wan.pipeline_wan")
    level = wan_log.level
    wan_log.setLevel(logging.ERROR)
    try:
        out = pipe(**kwargs).frames
    finally:
        wan_log.setLevel(level)
        if restore is not None:
            restore()
    return out if output_type == "latent" else _to_uint8(out)


def transfer(
    pipe,
    clip: str | os.PathLike | np.ndarray,
    prompt: str,
    *,
    strength: float = 0.6,
    blocks: Sequence[int] | None = None,
    record: str = "single",
    record_t: float = DEFAULT_RECORD_T,
    inject_at: str = "pre_rotary",
    num_frames: int,
    height: int,
    width: int,
    steps: int = 20,
    guidance: float = 4.0,
    seed: int = 0,
    negative_prompt: str = "",
    progress: TransferProgress | None = None,
    max_sequence_length: int = DEFAULT_MAX_SEQUENCE_LENGTH,
    output_type: str = "np",
    q_device: str | torch.device | None = None,
    record_prompt: str | None = None,
    init_mix: float = 0.0,
):
    """Generate `prompt` with the motion of `clip` (a path or uint8 frames (F, H, W, 3)).

    strength: fraction of the sampling steps (the first, high-noise ones) whose Q is replaced;
        more strength = more faithful motion and more of the reference's identity leaking in.
    blocks: transformer blocks whose self-attention Q is injected (default: the last third,
        `default_blocks`; the paper's Wan 2.1 setting, blocks 20-30 of 30).
    record: "single" (one recording at `record_t`, reused at each injected step) or
        "per_step" (one recording at each injected step's own timestep).
    inject_at: "pre_rotary" or "post_rotary" (equivalent here: same positions).
    q_device: where recorded Q is kept (default: where it is computed); "cpu" spares GPU
        memory for per-step recording on large models at the cost of a copy per injection.
    record_prompt: the prompt the reference is recorded with (default: the target `prompt`;
        "" records with the empty prompt, or describe the clip itself).
    init_mix: share of the reference's latent in the starting latent,
        `(1 - init_mix) * noise + init_mix * reference`. 0 (the default) is the paper's pure
        noise start; more plants the reference's layout before any Q is injected, and on the
        built-in model costs identity and real clips (docs/motion-transfer.md).
    Returns uint8 frames (F, H, W, 3), or latents with output_type="latent".
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    if record not in RECORD_MODES:
        raise ValueError(f"record must be one of {RECORD_MODES}, got {record!r}")
    if inject_at not in INJECT_POINTS:
        raise ValueError(f"inject_at must be one of {INJECT_POINTS}, got {inject_at!r}")
    _check_geometry(pipe, num_frames, height, width)
    if isinstance(clip, np.ndarray):
        frames = resample_clip(clip, None, num_frames, height, width)
    else:
        frames = load_clip(clip, num_frames, height, width)
    common = dict(strength=strength, num_frames=num_frames, height=height, width=width,
                  steps=steps, guidance=guidance, seed=seed, progress=progress,
                  max_sequence_length=max_sequence_length, output_type=output_type)
    if not 0.0 <= init_mix < 1.0:
        raise ValueError(f"init_mix must be in [0, 1), got {init_mix}")
    if not first_fraction(steps, strength) and not init_mix:  # nothing to inject: a plain generation
        return generate(pipe, prompt, negative_prompt=negative_prompt, **common)
    # encode the prompts once, for the recording and the generation
    pe, ne = _encode_prompts(pipe, prompt, negative_prompt, guidance, max_sequence_length)
    if progress:
        progress("encode", 0, 1)
    latents = encode_video(pipe, frames)
    if progress:
        progress("encode", 1, 1)
    rec_pe = pe
    if record_prompt is not None and record_prompt != prompt:
        rec_pe, _ = _encode_prompts(pipe, record_prompt, "", 1.0, max_sequence_length)
    motion = record_motion(
        pipe, latents, rec_pe, steps=steps, strength=strength, blocks=blocks, record=record,
        record_t=record_t, inject_at=inject_at, seed=seed, progress=progress,
        cache=QCache(device=q_device),
    )
    start = None
    if init_mix:
        start = (1.0 - init_mix) * seeded_noise(latents, seed) + init_mix * latents.float()
    return generate(pipe, motion=motion, prompt_embeds=pe, negative_prompt_embeds=ne, latents=start, **common)


__all__ += ["VideoError", "TransferProgress", "RECORD_MODES", "DEFAULT_RECORD_T"]
