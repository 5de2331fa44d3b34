"""storyboard: a storyboard-driven multi-shot video authoring tool built on motionq.

A storyboard file (TOML or YAML) describes a film as characters and shots; the tool loads and
validates it (`storyboard.load`), plans consistency groups, renders them with a motionq backbone
and assembles the edit.
"""

__version__ = "0.1.0"
