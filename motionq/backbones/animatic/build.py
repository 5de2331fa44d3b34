"""Assemble the built-in "animatic" model as a diffusers `WanPipeline` and find its weights.

The pipeline is the stock WanPipeline: the same `WanTransformer3DModel` (so the same attention
processors as Wan 2.1), a small UMT5 text encoder with a word-level tokenizer, the learned
per-frame `SpriteCodec` as its VAE and a flow-matching Euler scheduler. It is saved and loaded
as an ordinary diffusers pipeline folder, through the same local-folder code path as Wan 2.1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from motionq.backbones.animatic.codec import SpriteCodec
from motionq.backbones.animatic.settings import WEIGHTS_DIR, method_settings
from motionq.backbones.animatic.text import build_text_encoder, build_tokenizer

@dataclass(frozen=True)
class AnimaticConfig:
    """Sizes of the built-in model. Defaults are the committed model's."""

    height: int = 32
    width: int = 32
    num_frames: int = 9  # WanPipeline rounds frame counts to k*t+1; t = 1 here, 9 = 8 + 1
    z_dim: int = 8
    codec_hidden: int = 48
    heads: int = 4
    head_dim: int = 48
    layers: int = 6
    ffn_dim: int = 768
    text_dim: int = 128
    text_layers: int = 2
    max_sequence_length: int = 16
    flow_shift: float = 2.0
    # The sprite world also has "cross"; the 8x8x8 codec cannot carry a 9 px cross (it decodes
    # it as a 4-pointed star, read as a diamond: 0/11 crosses kept in a round-trip check), so
    # the built-in model is trained on the four shapes it can draw.
    shapes: tuple[str, ...] = ("circle", "square", "triangle", "diamond")

    def to_dict(self) -> dict:
        return asdict(self)


def published_config(folder: Path = WEIGHTS_DIR) -> AnimaticConfig:
    """The sizes the published weights were trained with (their training.json), so settings
    that no weight pins (the caption length) follow the weights; defaults where it is absent."""
    import json

    try:
        model = json.loads((folder / "training.json").read_text())["config"]["model"]
    except (OSError, ValueError, KeyError):
        return AnimaticConfig()
    known = set(AnimaticConfig.__dataclass_fields__)
    values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in model.items() if k in known}
    return AnimaticConfig(**values)


def build_transformer(cfg: AnimaticConfig):
    from diffusers import WanTransformer3DModel

    return WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=cfg.heads,
        attention_head_dim=cfg.head_dim,
        in_channels=cfg.z_dim,
        out_channels=cfg.z_dim,
        text_dim=cfg.text_dim,
        freq_dim=64,
        ffn_dim=cfg.ffn_dim,
        num_layers=cfg.layers,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=64,
    )


def build_scheduler(cfg: AnimaticConfig):
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=cfg.flow_shift)


def build_pipeline(cfg: AnimaticConfig, vocabulary: list[str], seed: int = 0):
    """A freshly initialised (untrained) animatic pipeline."""
    from diffusers import WanPipeline

    torch.manual_seed(seed)
    tokenizer = build_tokenizer(vocabulary)
    text_encoder = build_text_encoder(len(tokenizer), cfg.text_dim, cfg.text_layers, seed)
    codec = SpriteCodec(z_dim=cfg.z_dim, hidden=cfg.codec_hidden)
    transformer = build_transformer(cfg)
    return WanPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, transformer=transformer,
        vae=codec, scheduler=build_scheduler(cfg),
    )


def load_animatic(**options):
    """The built-in default backbone, from the weights committed in the package."""
    from motionq.backbones import BackboneError
    from motionq.backbones.pipeline import load_pipeline_folder

    old = WEIGHTS_DIR.with_name(WEIGHTS_DIR.name + ".old")
    if not WEIGHTS_DIR.exists() and (old / "model_index.json").is_file():
        old.rename(WEIGHTS_DIR)  # a publish died between moving these aside and the new ones in
    if not (WEIGHTS_DIR / "model_index.json").is_file():
        raise BackboneError(
            f"the built-in model's weights are missing from {WEIGHTS_DIR} "
            "(they are committed to the repository; a checkout without them can make them with "
            "`motionq train` and `motionq train --publish`)"
        )
    cfg = published_config()
    options.setdefault("name", "animatic")
    options.setdefault("native_size", (cfg.height, cfg.width))
    options.setdefault("max_sequence_length", cfg.max_sequence_length)
    options.setdefault("default_frames", cfg.num_frames)
    backbone = load_pipeline_folder(WEIGHTS_DIR, **options)
    from motionq.methods.multishot import MultiShotOptions

    settings = method_settings()  # from .settings (torch-free)
    backbone.multishot_options = MultiShotOptions(shared_key_weight=settings["shared_key_weight"],
                                                  blocks=tuple(settings["multishot_blocks"]),
                                                  refine_range=tuple(settings["refine_range"]))
    backbone.transfer_blocks = tuple(settings["transfer_blocks"])
    return backbone
