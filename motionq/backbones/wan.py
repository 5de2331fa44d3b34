"""Wan 2.1 T2V (1.3B) from a local folder in diffusers layout, and memory estimates.

There is no hub access here: the weights must be on disk. Get them on a machine with access:

    huggingface-cli download Wan-AI/Wan2.1-T2V-1.3B-Diffusers --local-dir /models/wan2.1-t2v-1.3b

then point `MOTIONQ_WAN21_PATH` at that folder (or pass `path=`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from motionq.backbones import BackboneError

ENV_VAR = "MOTIONQ_WAN21_PATH"
REPO_ID = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
NATIVE_SIZE = (480, 832)
#: Wan 2.1 1.3B: 30 blocks, 12 heads of 128 channels.
WAN21_1_3B = {"num_layers": 30, "heads": 12, "head_dim": 128}


def _how() -> str:
    return f"`huggingface-cli download {REPO_ID} --local-dir DIR` on a machine with hub access"


def model_folder(path: str | os.PathLike | None = None) -> Path:
    """The Wan 2.1 folder: `path`, else `$MOTIONQ_WAN21_PATH` (the registry's `model_folder`
    contract). Raises `BackboneError` when it is not configured or does not exist."""
    raw = path if path is not None else os.environ.get(ENV_VAR)
    if not raw:
        raise BackboneError(
            f"Wan 2.1 weights not configured: pass a path or set {ENV_VAR} to a local folder in "
            f"diffusers layout (get it with {_how()})"
        )
    folder = Path(raw).expanduser()
    if not folder.is_dir():
        src = "path" if path is not None else ENV_VAR
        raise BackboneError(f"Wan 2.1 folder {folder} (from {src}) does not exist (get it with {_how()})")
    return folder


def load_wan21(
    path: str | os.PathLike | None = None,
    dtype: str = "bf16",
    offload: bool = False,
    vae_tiling: bool = False,
    device: str | None = None,
    **options,
):
    """Load Wan 2.1 T2V from `path` or `$MOTIONQ_WAN21_PATH` as a `PipelineBackbone`.

    dtype "bf16" (default; the VAE stays fp32) or "fp32"; `offload` moves each component to
    the GPU only while it runs (`enable_model_cpu_offload`); `vae_tiling` decodes in tiles.
    Raises `BackboneError` saying what is missing and how to get it.
    """
    folder = model_folder(path)
    from motionq.backbones.pipeline import load_pipeline_folder

    options.setdefault("hint", f"Get Wan 2.1 with {_how().replace('DIR', str(folder))} and copy it there.")
    options.setdefault("name", "wan2.1")
    options.setdefault("native_size", NATIVE_SIZE)
    options.setdefault("max_sequence_length", 512)
    options.setdefault("default_frames", 81)
    return load_pipeline_folder(folder, dtype=dtype, device=device, offload=offload,
                                vae_tiling=vae_tiling, **options)


def _mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB" if n < 2**30 else f"{n / 2**30:,.2f} GiB"


def memory_estimate(
    height: int = 480,
    width: int = 832,
    num_frames: int = 81,
    blocks: int | Iterable[int] = 10,
    steps_recorded: int = 1,
    dtype_bytes: int = 2,
    heads: int = 12,
    head_dim: int = 128,
    patch: tuple[int, int, int] = (1, 2, 2),
    vae_scale: tuple[int, int, int] = (4, 8, 8),
    batch: int = 1,
) -> dict:
    """What motion transfer / Q caching costs in memory, by arithmetic (defaults: Wan 2.1 1.3B
    at 480x832x81, the last 10 blocks, one recording, bf16).

    Returns a dict: tokens, latent (frames, h, w), q_bytes_per_layer_step, q_cache_bytes
    (Q of `blocks` x `steps_recorded` x `batch`), attention_activation_bytes (Q, K, V and the
    output of one self-attention layer), attention_scores_bytes (the tokens x tokens score
    matrix of one layer, only materialised by a non-fused attention backend), summary (text).
    """
    n_blocks = blocks if isinstance(blocks, int) else len(list(blocks))
    ft, fh, fw = vae_scale
    pt, ph, pw = patch
    lat = ((num_frames - 1) // ft + 1, height // fh, width // fw)
    tokens = (lat[0] // pt) * (lat[1] // ph) * (lat[2] // pw)
    per = tokens * heads * head_dim * dtype_bytes * batch
    q_cache = per * n_blocks * steps_recorded
    act = 4 * per
    scores = batch * heads * tokens * tokens * dtype_bytes
    summary = (
        f"{height}x{width}x{num_frames} -> latent {lat[0]}x{lat[1]}x{lat[2]}, {tokens:,} tokens; "
        f"Q per layer-step {_mib(per)}; Q cache ({n_blocks} blocks x {steps_recorded} steps) "
        f"{_mib(q_cache)}; one attention layer's Q/K/V/out {_mib(act)}"
        f"{'' if scores < 1 else f'; its score matrix if materialised {_mib(scores)}'}"
    )
    return {
        "tokens": tokens,
        "latent": lat,
        "q_bytes_per_layer_step": per,
        "q_cache_bytes": q_cache,
        "attention_activation_bytes": act,
        "attention_scores_bytes": scores,
        "summary": summary,
    }


__all__ = ["ENV_VAR", "NATIVE_SIZE", "REPO_ID", "WAN21_1_3B", "load_wan21", "memory_estimate", "model_folder"]
