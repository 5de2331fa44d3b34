"""The built-in "animatic" model: a small Wan-architecture text-to-video model trained on the
procedural sprite world (see docs/model-card.md)."""

from motionq.backbones.animatic.build import (
    DEFAULT_VARIANT,
    WEIGHTS_DIR,
    AnimaticConfig,
    build_pipeline,
    load_animatic,
    method_settings,
    model_folder,
    published_config,
)

__all__ = ["DEFAULT_VARIANT", "WEIGHTS_DIR", "AnimaticConfig", "build_pipeline", "load_animatic", "method_settings",
           "model_folder", "published_config"]
