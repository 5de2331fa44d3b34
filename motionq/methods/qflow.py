"""Q-Flow: carry each shot's own motion through the late part of the shared-attention range.

After Q-Preservation (t >= t_pres, the consistent pass's Q replaced wholesale by the vanilla
pass's), the consistent pass keeps its own Q on *keyframes* (every `keyframe_every`-th latent
frame, plus the last one), and every other frame f takes its Q from the two nearest keyframes
A < f < B *at the locations where the vanilla video's content of frame f is*:

    match_A(p) = argmax_p' cos(Qv[f, p], Qv[A, p'])          (vanilla Q, heads flattened)
    Q[f, p]    = w_A * Q[A, match_A(p)] + (1 - w_A) * Q[B, match_B(p)]

So the consistent pass's appearance (its Q on the keyframes, already pulled towards the other
shots by shared attention) is moved along the vanilla video's motion, instead of each frame
drifting to the same frozen pose. Q is taken before the rotary embedding
(`inject_at="pre_rotary"`), where it carries content and no position, so moving it between
token positions is meaningful.

The weight. The paper's description writes w = sigmoid((f_B - f) / (f_B - f_A)). That ratio
is in (0, 1), so the sigmoid stays in (0.5, 0.73): keyframe A always gets more weight, even for
a frame next to B. The intent is clearly a nearest-keyframe weight, so the default is the
linear w_A = (f_B - f) / (f_B - f_A) (1 at A, 0 at B, 0.5 halfway); the paper's formula stays
selectable (`weight="paper"`).

Limits: with keyframe_every = 1 every frame is a keyframe and Q-Flow is the identity (the
consistent pass then runs with its own Q in the Q-Flow range: plain SDSA there). With one
latent frame there is nothing to flow.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import torch
import torch.nn.functional as F

from motionq.control.controller import CallContext, Policy, QCache

QFLOW_WEIGHTS = ("linear", "paper")


def keyframes(num_frames: int, every: int) -> list[int]:
    """Keyframe indices: 0, every, 2*every, ... and the last frame."""
    if every < 1:
        raise ValueError(f"keyframe_every must be >= 1, got {every}")
    if num_frames < 1:
        return []
    return sorted(set(range(0, num_frames, every)) | {num_frames - 1})


def keyframe_weight(f: int, fa: int, fb: int, weight: str = "linear") -> float:
    """Weight of keyframe A for frame f (fa < f < fb); B gets 1 - w."""
    if weight not in QFLOW_WEIGHTS:
        raise ValueError(f"Q-Flow weight must be one of {QFLOW_WEIGHTS}, got {weight!r}")
    r = (fb - f) / (fb - fa)
    return r if weight == "linear" else 1.0 / (1.0 + math.exp(-r))


def correspondences(q_from: torch.Tensor, q_to: torch.Tensor) -> torch.Tensor:
    """For each token of one frame, its most similar token of another: argmax cosine similarity.
    q_from (T, C), q_to (T', C) -> long (T,) indices into q_to."""
    sim = F.normalize(q_from.float(), dim=-1) @ F.normalize(q_to.float(), dim=-1).T
    return sim.argmax(dim=1)


def qflow(
    q: torch.Tensor,
    q_vanilla: torch.Tensor,
    frames: int,
    keyframe_every: int,
    weight: str = "linear",
) -> torch.Tensor:
    """Q-Flow of one shot's Q. q, q_vanilla: (S, heads, head_dim), S = frames x tokens per
    frame in (frame, height, width) order. Returns the new Q (the input itself when every frame
    is a keyframe)."""
    kf = keyframes(frames, keyframe_every)
    others = [f for f in range(frames) if f not in set(kf)]
    if not others:
        return q
    s = q.shape[0]
    per = s // frames
    qf = q.reshape(frames, per, *q.shape[1:])
    vf = q_vanilla.reshape(frames, per, -1)
    out = qf.clone()
    for f in others:
        fa = max(k for k in kf if k < f)
        fb = min(k for k in kf if k > f)
        wa = keyframe_weight(f, fa, fb, weight)
        ma = correspondences(vf[f], vf[fa])
        mb = correspondences(vf[f], vf[fb])
        out[f] = wa * qf[fa][ma] + (1.0 - wa) * qf[fb][mb]
    return out.reshape(q.shape)


class QFlow(Policy):
    """The Q-Flow policy: on `steps`, for batch rows `items`, replace Q by `qflow` of it, with
    correspondences from the vanilla Q: recorded in `vanilla` (same layer, step and pass; the
    cache's batch rows are the consistent pass's rows), or, when `sources` is given, live from
    the same forward: row `sources[k]` of the batch is the vanilla twin of row `items[k]`."""

    def __init__(self, vanilla: QCache | None, layers: Iterable[str], steps: Iterable[int],
                 items: Sequence[int], frames: int, keyframe_every: int, weight: str = "linear",
                 sources: Sequence[int] | None = None):
        if weight not in QFLOW_WEIGHTS:
            raise ValueError(f"Q-Flow weight must be one of {QFLOW_WEIGHTS}, got {weight!r}")
        if (vanilla is None) == (sources is None):
            raise ValueError("give either a vanilla Q cache or the batch rows of the vanilla twins")
        if sources is not None and len(sources) != len(items):
            raise ValueError("one vanilla source row per item")
        keyframes(frames, keyframe_every)  # validates
        self.vanilla = vanilla
        self.sources = list(sources) if sources is not None else None
        self.layers = frozenset(layers)
        self.steps = frozenset(steps)
        self.items = list(items)
        self.frames = frames
        self.keyframe_every = keyframe_every
        self.weight = weight
        self.count = 0

    @property
    def identity(self) -> bool:
        return len(keyframes(self.frames, self.keyframe_every)) == self.frames

    def applies(self, layer: str, ctx: CallContext) -> bool:
        return (not self.identity and bool(self.items) and layer in self.layers
                and ctx.step in self.steps)

    def on_query(self, layer, q, ctx):
        if self.sources is not None:
            van_rows = [q[r] for r in self.sources]
        else:
            van = self.vanilla.get(layer, ctx.step, ctx.pass_name)
            if van is None:
                raise KeyError(f"no vanilla Q for {layer}, step {ctx.step}, pass {ctx.pass_name!r}")
            van = van.to(q.device)
            van_rows = [van[row if van.shape[0] > 1 else 0] for row in self.items]
        out = q.clone()
        for row, v in zip(self.items, van_rows):
            out[row] = qflow(q[row], v, self.frames, self.keyframe_every, self.weight)
        self.count += 1
        return out


class CopyQ(Policy):
    """Q-Preservation without a cache: on `steps`, batch row `items[k]` takes the Q of row
    `sources[k]` of the same forward (its vanilla twin, denoised alongside in the same batch
    with no intervention). Same result as `InjectQ` of a recorded vanilla pass, no Q stored."""

    def __init__(self, layers: Iterable[str], steps: Iterable[int], items: Sequence[int],
                 sources: Sequence[int]):
        if len(items) != len(sources):
            raise ValueError("one source row per item")
        self.layers = frozenset(layers)
        self.steps = frozenset(steps)
        self.items = list(items)
        self.sources = list(sources)
        self.count = 0

    def applies(self, layer: str, ctx: CallContext) -> bool:
        return bool(self.items) and layer in self.layers and ctx.step in self.steps

    def on_query(self, layer, q, ctx):
        out = q.clone()
        dst = torch.as_tensor(self.items, device=q.device)
        src = torch.as_tensor(self.sources, device=q.device)
        out[dst] = q[src]
        self.count += 1
        return out


__all__ = ["QFLOW_WEIGHTS", "CopyQ", "QFlow", "correspondences", "keyframe_weight", "keyframes", "qflow"]
