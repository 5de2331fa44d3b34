"""What the built-in model renders with, and where its weights are: torch-free, because planning
a film (cache keys hash these) must not import torch, diffusers and transformers."""

from __future__ import annotations

from pathlib import Path

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
# benchmarks/results/eval_multishot.json, docs/results.md): "refine" identity 0.24, motion
# adherence 0.90 (vanilla 0.05 / 0.97); the paper's full method 0.24 / 0.88 at more cost
# (step-47,438 weights; step 43,704: refine 0.27 / 0.84, vanilla 0.06 / 0.92, paper 0.29 /
# 0.82; step 40,406: 0.35 / 0.84, vanilla 0.05 / 0.92, paper 0.37 / 0.82).
DEFAULT_VARIANT = "refine"
# Motion transfer: Q injected into blocks 2-5 of 6. With the method's default (the last third,
# 4-5, the paper's Wan 2.1 setting scaled) the GPU-trained weights followed real (non-sprite)
# clips hardly at all: fidelity at strength 0.6 on the evaluation's pairs 0.13 -> 0.45 with 2-5,
# sprite pairs unchanged (0.60 / 0.71 -> 0.59 / 0.73; eval_transfer-blocks45.json vs
# eval_transfer.json).
TRANSFER_BLOCKS = (2, 3, 4, 5)


def model_folder() -> Path:
    """The committed pipeline folder of the built-in model."""
    return WEIGHTS_DIR


def method_settings() -> dict:
    """The method defaults this model renders with; they change its frames as much as its
    weights do, so render-cache keys hash them (`motionq.backbones.model_settings`)."""
    return {"shared_key_weight": SHARED_KEY_WEIGHT, "multishot_blocks": list(INTERVENED_BLOCKS),
            "refine_range": list(REFINE_RANGE), "transfer_blocks": list(TRANSFER_BLOCKS)}
