"""A tiny random Wan pipeline for tests and benchmarks of the machinery (not of quality).

Same classes as Wan 2.1 (WanTransformer3DModel, AutoencoderKLWan, UMT5EncoderModel, a
flow-matching Euler scheduler), shrunk: 2 transformer blocks of 2 heads x 12 channels, a
4-channel latent, a 1-layer text encoder over a ~60-word word-level vocabulary. Weights are
random but seeded, so the model is the same everywhere. It is saved in diffusers layout
(safetensors) and loaded back through `load_pipeline_folder`, so it exercises the same code
path as a real model folder. 9 frames at 32x32 (3 latent frames of 4x4, 12 tokens) take a few
hundredths of a second on one CPU thread.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from motionq.backbones.pipeline import PipelineBackbone, load_pipeline_folder
from motionq.paths import cache_dir

#: Bump when the recipe changes: the cache folder is keyed by it.
TINY_VERSION = 1

TRANSFORMER_CONFIG = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=2,
    attention_head_dim=12,
    in_channels=4,
    out_channels=4,
    text_dim=16,
    freq_dim=32,
    ffn_dim=32,
    num_layers=2,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    rope_max_seq_len=32,
)
VAE_CONFIG = dict(
    base_dim=3,
    z_dim=4,
    dim_mult=[1, 1, 1, 1],
    num_res_blocks=1,
    temperal_downsample=[False, True, True],
    latents_mean=[0.0] * 4,
    latents_std=[1.0] * 4,
)
SIDECAR = {"name": "tiny", "native_size": [32, 32], "max_sequence_length": 16, "default_frames": 9}

_WORDS = (
    "a an the and with of on in to at is are its his her their from over under "
    "red green blue yellow orange purple white black pink brown grey "
    "square circle triangle star ball cat dog man woman person car bird robot "
    "moves walks runs jumps bounces turns spins falls rises stays still "
    "left right up down around slowly quickly forward back"
).split()
SPECIAL = ["<pad>", "</s>", "<unk>"]


def default_path() -> Path:
    return cache_dir() / f"tiny-wan-v{TINY_VERSION}"


def build_tokenizer():
    """A word-level tokenizer (lowercase, whitespace split, `</s>` appended, `<pad>` = 0)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(SPECIAL + _WORDS)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.normalizer = normalizers.Lowercase()
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def build_pipeline(seed: int = 0):
    """The tiny WanPipeline in memory, deterministic for a given seed, in eval mode."""
    import torch
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanPipeline, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    text_encoder = UMT5EncoderModel(UMT5Config(
        vocab_size=len(tokenizer), d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
        relative_attention_num_buckets=8, relative_attention_max_distance=16, dropout_rate=0.0,
        pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    ))
    torch.manual_seed(seed + 1)
    vae = AutoencoderKLWan(**VAE_CONFIG)
    torch.manual_seed(seed + 2)
    transformer = WanTransformer3DModel(**TRANSFORMER_CONFIG)
    for m in (text_encoder, vae, transformer):
        m.eval()  # a fresh model is in train mode: dropout would make outputs random
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    return WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae,
                       scheduler=scheduler, transformer=transformer)


def build_tiny(path: str | os.PathLike | None = None, *, seed: int = 0, overwrite: bool = False) -> Path:
    """Save the tiny pipeline in diffusers layout (safetensors) at `path` (default: the cache),
    once: an existing complete folder is reused. Built in a temporary sibling folder and moved
    into place, so a crash or a concurrent builder never leaves a half-written model."""
    target = Path(path).expanduser() if path is not None else default_path()
    if not overwrite and (target / "model_index.json").exists():
        try:
            side = json.loads((target / "motionq.json").read_text())
        except (OSError, ValueError):
            side = {}
        if side.get("seed") == seed and side.get("version") == TINY_VERSION:
            return target
        overwrite = True  # another seed or recipe: rebuild in place
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        pipe = build_pipeline(seed)
        pipe.save_pretrained(str(tmp), safe_serialization=True)
        (tmp / "motionq.json").write_text(json.dumps({**SIDECAR, "seed": seed, "version": TINY_VERSION}, indent=2))
        if overwrite and target.exists():
            shutil.rmtree(target)
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / "model_index.json").exists():  # lost a race we can't explain
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def model_folder() -> Path:
    """The tiny model's folder (built on first use): the registry's `model_folder` contract."""
    return build_tiny()


def load_tiny(path: str | os.PathLike | None = None, **options) -> PipelineBackbone:
    """The tiny random Wan as a backbone (built on first use). Options go to
    `load_pipeline_folder` (dtype, device, max_sequence_length, ...); device defaults to CPU."""
    folder = build_tiny(path)
    options.setdefault("device", "cpu")
    options.setdefault("name", "tiny")
    return load_pipeline_folder(folder, **options)


__all__ = ["TINY_VERSION", "build_pipeline", "build_tiny", "build_tokenizer", "default_path", "load_tiny", "model_folder"]
