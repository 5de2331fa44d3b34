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
from motionq.backbones.animatic.text import build_text_encoder, build_tokenizer

#: Where the committed weights live (a diffusers pipeline folder, package data).
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
# Shared attention on this model (12 held-out sets, benchmarks/results/shared_key_blocks-
# animatic.json, docs/consistency.md): on the GPU-trained weights (step 20,306), sharing in
# every block erases sprites (SDSA: a character detected in 0.50 of shots at weight 1, 0.38 at
# 2 and 5; vanilla 0.98); in the two middle blocks at the paper's weight they stay (0.98) and
# most motion with them (the full method's adherence 0.67 vs vanilla 0.77). Higher weights
# erase them again. The step-5,000 weights wanted weight 20 in every block instead.
SHARED_KEY_WEIGHT = 1.0
INTERVENED_BLOCKS = (2, 3)
# Refinement late, t in [100, 500] (steps 13-18 of 20 at shift 2), not the paper's [590, 950]:
# at high noise, where this model lays out the sprite and its path, blending the reference's
# features costs motion and sprites; later the features carry the reference's look and leave
# the path be. Held-out bench seeds 1 and 2, 16 groups (benchmarks/refine_range_sweep.py):
# identity consistency 0.32 vs 0.06 without refinement, motion adherence 0.76 vs 0.78 (vanilla
# 0.86); [100, 600] aligns more (0.39) and costs more motion (0.71); the paper's range 0.16 /
# 0.49 with a sprite found in only 75% of shots. Re-checked on the step-40,406 weights in anchor
# mode (refine_range_sweep-animatic-anchors*.json): [100, 500] at alpha 0.8 still the best.
REFINE_RANGE = (100, 500)
# The variant a storyboard gets unless it names one: the refinement alone (no shared keys, no Q
# control). On this model sharing subject keys costs motion and aligns no identity, and the
# refinement does the aligning. Full evaluation (60 groups, anchor mode as storyboards render,
# benchmarks/results/eval_multishot.json, docs/results.md): "refine" identity 0.27, motion
# adherence 0.84 (vanilla 0.06 / 0.92); the paper's full method 0.29 / 0.82 at more cost
# (step-43,704 weights; on step 40,406: 0.35 / 0.84, vanilla 0.05 / 0.92, paper 0.37 / 0.82).
DEFAULT_VARIANT = "refine"
# Motion transfer: Q injected into blocks 2-5 of 6. With the method's default (the last third,
# 4-5, the paper's Wan 2.1 setting scaled) the GPU-trained weights followed real (non-sprite)
# clips hardly at all: fidelity at strength 0.6 on the evaluation's pairs 0.13 -> 0.45 with 2-5,
# sprite pairs unchanged (0.60 / 0.71 -> 0.59 / 0.73; eval_transfer-blocks45.json vs
# eval_transfer.json).
TRANSFER_BLOCKS = (2, 3, 4, 5)


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


def model_folder() -> Path:
    """The committed pipeline folder of the built-in model."""
    return WEIGHTS_DIR


def method_settings() -> dict:
    """The method defaults this model renders with; they change its frames as much as its
    weights do, so render-cache keys hash them (`motionq.backbones.model_settings`)."""
    return {"shared_key_weight": SHARED_KEY_WEIGHT, "multishot_blocks": list(INTERVENED_BLOCKS),
            "refine_range": list(REFINE_RANGE), "transfer_blocks": list(TRANSFER_BLOCKS)}


def load_animatic(**options):
    """The built-in default backbone, from the weights committed in the package."""
    from motionq.backbones import BackboneError
    from motionq.backbones.pipeline import load_pipeline_folder

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

    settings = method_settings()
    backbone.multishot_options = MultiShotOptions(shared_key_weight=settings["shared_key_weight"],
                                                  blocks=tuple(settings["multishot_blocks"]),
                                                  refine_range=tuple(settings["refine_range"]))
    backbone.transfer_blocks = tuple(settings["transfer_blocks"])
    return backbone
