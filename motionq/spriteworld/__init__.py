"""Sprite world: procedural clips of coloured shapes for training and scoring the built-in
text-to-video model, their captions, and an analyser that reads identity and motion back.

    >>> from motionq.spriteworld import sample_clip, analyse
    >>> clip = sample_clip(0)
    >>> analyse(clip.frames).identities()  # doctest: +SKIP
"""

from motionq.spriteworld.analyser import Analysis, Track, analyse, motion_class, motion_details
from motionq.spriteworld.captions import (
    VOCABULARY,
    background_phrase,
    caption,
    clause_roles,
    identity_phrase,
    motion_phrase,
    pan_direction,
    pan_phrase,
    parse_caption,
    swap_subjects,
    tokenize_words,
)
from motionq.spriteworld.world import (
    BACKGROUND_RGB,
    BACKGROUNDS,
    COLOUR_RGB,
    COLOURS,
    DEFAULT_COLOURS,
    MOTIONS,
    SHAPES,
    Background,
    Character,
    Clip,
    Scene,
    WorldConfig,
    characters_apart,
    colour_rgb,
    render_scene,
    sample_batch,
    sample_clip,
    sample_scene,
    trajectory,
    upscale,
)

__all__ = [
    "BACKGROUNDS",
    "BACKGROUND_RGB",
    "COLOURS",
    "COLOUR_RGB",
    "DEFAULT_COLOURS",
    "MOTIONS",
    "SHAPES",
    "VOCABULARY",
    "Analysis",
    "Background",
    "Character",
    "Clip",
    "Scene",
    "Track",
    "WorldConfig",
    "analyse",
    "background_phrase",
    "caption",
    "characters_apart",
    "clause_roles",
    "colour_rgb",
    "identity_phrase",
    "motion_class",
    "motion_details",
    "motion_phrase",
    "pan_direction",
    "pan_phrase",
    "parse_caption",
    "render_scene",
    "sample_batch",
    "sample_clip",
    "sample_scene",
    "swap_subjects",
    "tokenize_words",
    "trajectory",
    "upscale",
]
