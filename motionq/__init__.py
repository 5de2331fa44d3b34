"""motionq: Motion-by-Queries attention control for text-to-video diffusion models.

Zero-shot motion transfer by query injection, and consistent multi-shot generation by
framewise subject-driven extended attention with Q-Preservation and Q-Flow.
"""

from motionq.api import (
    VARIANTS,
    Backbone,
    ConsistencyConfig,
    GroupRequest,
    MotionSpec,
    Progress,
    ShotRequest,
)
from motionq.backbones import available, load_backbone

__all__ = [
    "VARIANTS",
    "Backbone",
    "ConsistencyConfig",
    "GroupRequest",
    "MotionSpec",
    "Progress",
    "ShotRequest",
    "available",
    "load_backbone",
]
__version__ = "0.1.0"
