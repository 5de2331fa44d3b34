"""Timestep ranges: which sampling steps get which intervention.

Everything is on the scheduler's 0..1000 timestep scale (1000 = pure noise), which is what
Wan's flow-matching schedulers put in `scheduler.timesteps` (timestep = sigma * 1000). A step is
"in" a range `(lo, hi)` when lo <= t <= hi. Sampling runs from high t to low t, so "the first
40% of steps" are the high-noise ones, where layout and motion are decided.
"""

from __future__ import annotations

import copy
from typing import Iterable, Sequence

import torch

from motionq.api import PAPER_REFINE_RANGE  # the paper's, VideoCrafter2 timesteps

Range = tuple[float, float]


def in_range(t: float, rng: Range) -> bool:
    """True when timestep `t` lies in the closed range `rng = (lo, hi)` (order-insensitive)."""
    lo, hi = min(rng), max(rng)
    return lo <= float(t) <= hi


def steps_in_range(timesteps: Sequence[float], rng: Range) -> list[int]:
    """Indices of the steps whose timestep lies in `rng`."""
    return [i for i, t in enumerate(timesteps) if in_range(t, rng)]


def first_fraction(num_steps: int, fraction: float) -> list[int]:
    """The first `round(fraction * num_steps)` step indices: `strength` in motion transfer.

    fraction 0 -> no step, 1 -> every step. Rounded to the nearest step (0.6 of 20 -> 12).
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    return list(range(int(round(fraction * num_steps))))


def scheduler_timesteps(scheduler, num_steps: int) -> list[float]:
    """The timesteps a pipeline will use for `num_steps` steps, without touching `scheduler`
    (we set them on a copy: `set_timesteps` mutates scheduler state)."""
    sched = copy.deepcopy(scheduler)
    sched.set_timesteps(num_steps, device="cpu")
    return [float(t) for t in sched.timesteps]


def scheduler_sigmas(scheduler, num_steps: int) -> list[float]:
    """The noise levels sigma in [0, 1] of those steps (x_t = (1 - sigma) x0 + sigma noise)."""
    sched = copy.deepcopy(scheduler)
    sched.set_timesteps(num_steps, device="cpu")
    sigmas = getattr(sched, "sigmas", None)
    if sigmas is None:
        n = float(sched.config.num_train_timesteps)
        return [float(t) / n for t in sched.timesteps]
    return [float(s) for s in torch.as_tensor(sigmas)[:num_steps]]


def nearest_step(timesteps: Sequence[float], t: float) -> int:
    """Index of the step whose timestep is closest to `t`."""
    return min(range(len(timesteps)), key=lambda i: abs(float(timesteps[i]) - float(t)))


def schedule(timesteps: Sequence[float], **ranges: Range) -> dict[str, list[int]]:
    """Steps per named range, e.g. `schedule(ts, sdsa=(550, 950), refine=(590, 950))`."""
    return {name: steps_in_range(timesteps, rng) for name, rng in ranges.items()}


def multishot_schedule(timesteps: Sequence[float], config) -> dict[str, list[int]]:
    """Steps of each multi-shot phase for a `motionq.api.ConsistencyConfig`:

    sdsa:  shared attention, t in `sdsa_range`;
    qpres: Q-Preservation, the part of the SDSA range with t >= `t_pres`;
    qflow: Q-Flow, the part of the SDSA range with t < `t_pres`;
    refine: refinement injection, t in `refine_range` (None: the paper's `PAPER_REFINE_RANGE`;
        `motionq.methods.multishot` puts the model's own range in before it gets here).
    """
    sdsa = steps_in_range(timesteps, config.sdsa_range)
    return {
        "sdsa": sdsa,
        "qpres": [i for i in sdsa if float(timesteps[i]) >= config.t_pres],
        "qflow": [i for i in sdsa if float(timesteps[i]) < config.t_pres],
        "refine": steps_in_range(timesteps, config.refine_range or PAPER_REFINE_RANGE),
    }


def describe(timesteps: Sequence[float], phases: dict[str, Iterable[int]]) -> str:
    """One line per phase: its steps and timestep span (for logs and the CLI)."""
    lines = []
    for name, steps in phases.items():
        steps = list(steps)
        if not steps:
            lines.append(f"{name}: no step")
            continue
        ts = [float(timesteps[i]) for i in steps]
        lines.append(f"{name}: steps {steps[0]}..{steps[-1]} ({len(steps)}), t {max(ts):.0f}..{min(ts):.0f}")
    return "\n".join(lines)
