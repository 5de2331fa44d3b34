"""Framewise subject-driven shared attention (SDSA), its anchor-cache variant, and the
refinement injection: the policies of the consistent pass that touch keys/values and outputs.

Shared attention (paper section "consistent pass")
-------------------------------------------------
In every controlled self-attention layer, on the steps with t in `sdsa_range`, the queries of
frame f of shot i attend to their own keys (all frames of shot i, as usual) plus the keys and
values of the *subject* tokens of frame f of every other shot j that shares a character with
i. Which of j's tokens count as subject: the union of j's masks of the characters i and j
share. Everything else is hidden (boolean False = a score of -inf).

How it is computed: the visible extra tokens of each (shot i, frame f) are gathered into a
compact list (`SDSAIndex`, padded to the longest list M with `valid` False), and handed to the
processor as a `GroupedKVExtension`: one attention call per frame over (own S keys + M extra),
so nothing of size (S x N*S) is ever built. `mode="dense"` gives the same attention through a
single call with a (S x F*M) boolean mask (the reference definition; cheaper on tiny models).

The extension is applied in both the conditional and the unconditional pass: the two
predictions are then made with the same shared appearance, so classifier-free guidance does not
amplify the difference between "shared" and "not shared" (the same reasoning as for Q
injection in both passes in motion transfer).

Keys are taken after the rotary embedding: an extra key keeps the position it has in its own
shot, which is the same frame (and so the same temporal rotary phase) as the query's frame.

Anchor mode
-----------
`AnchorRecorder` stores, while the anchors render jointly, the post-rotary K/V (and, for the
refinement, the attention outputs) of every anchor's subject tokens per layer, step and pass
(`AnchorKV`). `AnchorSDSA` then extends a shot rendered alone with those cached tokens: for
its frame f, the subject tokens of the proportional frame of each anchor that shares a
character with it.

Refinement
----------
`Refine` (an `on_output` policy, t in `refine_range`, both passes): for each subject token of
shot i frame f, find the most similar (cosine of the attention outputs, the DIFT-like feature
at hand) subject token of frame f of the shot's reference, and blend its output in:
out <- (1 - alpha) out + alpha ref_out[match]. The reference of shot i is the first shot of
the group (first anchor, in anchor mode) that shares a character with i; a shot that is its
own reference is left alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import torch
import torch.nn.functional as F

from motionq.control.controller import CallContext, GroupedKVExtension, KVExtension, Policy

SDSA_MODES = ("framewise", "dense")


# ---------------------------------------------------------------------------------------------
# Who sees what
# ---------------------------------------------------------------------------------------------

def visible_tokens(subject: torch.Tensor, has: torch.Tensor) -> torch.Tensor:
    """Which tokens of shot j the queries of shot i may see, ignoring frames.

    subject: bool (N, C, S) subject tokens of each shot per character (C: the group's
        characters; S = frames x tokens per frame, Wan's (frame, height, width) order).
    has: bool (N, C), character c appears in shot i.
    Returns bool (N, N, S): [i, j, s] = j != i and token s of j is a subject token of a
    character that both i and j have.
    """
    n = subject.shape[0]
    shared = has[:, None, :] & has[None, :, :]  # (i, j, c)
    vis = torch.einsum("ijc,jcs->ijs", shared.float(), subject.float()) > 0
    vis &= ~torch.eye(n, dtype=torch.bool, device=vis.device)[:, :, None]
    return vis


def sdsa_dense_mask(subject: torch.Tensor, has: torch.Tensor, frames: int) -> torch.Tensor:
    """The reference definition of SDSA's extra-key mask, for every pair of shots:
    bool (N, S, N*S), [i, q, j*S + k] True iff shot i's query token q may attend to shot j's
    key token k: same frame, k a subject token of a character i and j share, j != i.
    (The own keys of shot i are always visible and not part of this mask.)"""
    n, _, s = subject.shape
    per = s // frames
    frame = torch.arange(s, device=subject.device) // per
    same = frame[:, None] == frame[None, :]  # (q, k)
    vis = visible_tokens(subject, has)  # (i, j, k)
    mask = same[None, :, None, :] & vis[:, None, :, :]  # (i, q, j, k)
    return mask.reshape(n, s, n * s)


@dataclass
class SDSAIndex:
    """The compact extra-token lists of a batch: for batch row i and frame g, `index[i, g, m]`
    is a position in the batch's flattened (rows x S) tokens; `valid` marks real entries
    (the lists are padded to the longest, M)."""

    index: torch.Tensor  # (B, G, M) long
    valid: torch.Tensor  # (B, G, M) bool
    tokens: int  # S, tokens per shot
    _on: dict = field(default_factory=dict, repr=False)  # device -> (index, valid or None)

    @property
    def extra(self) -> int:
        return int(self.index.shape[-1])

    @property
    def empty(self) -> bool:
        if "empty" not in self._on:
            self._on["empty"] = self.extra == 0 or not bool(self.valid.any())
        return self._on["empty"]

    def _device(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
        # moved once per device (not per layer call): no host-device traffic in the loop
        if device not in self._on:
            self._on[device] = (self.index.to(device),
                                None if bool(self.valid.all()) else self.valid.to(device))
        return self._on[device]

    def rows_with_extension(self) -> list[int]:
        return [i for i in range(self.index.shape[0]) if bool(self.valid[i].any())]

    def dense_mask(self) -> torch.Tensor:
        """The mask this index realises, in `sdsa_dense_mask`'s layout (B, S, B*S)."""
        b, g, _ = self.index.shape
        s = self.tokens
        per = s // g
        out = torch.zeros(b, s, b * s, dtype=torch.bool)
        for i in range(b):
            for f in range(g):
                cols = self.index[i, f][self.valid[i, f]]
                out[i, f * per:(f + 1) * per, cols] = True
        return out

    def gather(self, k: torch.Tensor, v: torch.Tensor, bias: float = 0.0) -> GroupedKVExtension:
        """The extension for a layer's (B, S, H, D) keys/values (`bias`: see GroupedKVExtension)."""
        b, s, h, d = k.shape
        idx, valid = self._device(k.device)
        ek = k.reshape(b * s, h, d)[idx]
        ev = v.reshape(b * s, h, d)[idx]
        return GroupedKVExtension(ek, ev, valid, bias)


def build_sdsa_index(subject: torch.Tensor, has: torch.Tensor, frames: int) -> SDSAIndex:
    """Compact per-(row, frame) lists of the extra tokens `sdsa_dense_mask` allows."""
    n, _, s = subject.shape
    per = s // frames
    vis = visible_tokens(subject, has)  # (i, j, s)
    lists: list[list[torch.Tensor]] = []
    longest = 0
    for i in range(n):
        row = []
        for g in range(frames):
            j, t = torch.nonzero(vis[i, :, g * per:(g + 1) * per], as_tuple=True)
            flat = j * s + g * per + t
            row.append(flat)
            longest = max(longest, flat.numel())
        lists.append(row)
    index = torch.zeros(n, frames, longest, dtype=torch.long)
    valid = torch.zeros(n, frames, longest, dtype=torch.bool)
    for i, row in enumerate(lists):
        for g, flat in enumerate(row):
            index[i, g, :flat.numel()] = flat
            valid[i, g, :flat.numel()] = True
    return SDSAIndex(index, valid, s)


def shared_key_bias(weight: float) -> float:
    """Score bias that makes each shared key count as `weight` own keys (log weight)."""
    if not weight > 0:
        raise ValueError(f"shared key weight must be > 0, got {weight}")
    return math.log(weight)


class _StepLayerPolicy(Policy):
    """A policy active on given layers and steps (both passes unless `passes`)."""

    def __init__(self, layers: Iterable[str], steps: Iterable[int], passes: Iterable[str] | None = None):
        self.layers = frozenset(layers)
        self.steps = frozenset(int(s) for s in steps)
        self.passes = frozenset(passes) if passes is not None else None

    def applies(self, layer: str, ctx: CallContext) -> bool:
        return (
            layer in self.layers and ctx.step in self.steps
            and (self.passes is None or ctx.pass_name in self.passes)
        )


class SDSA(_StepLayerPolicy):
    """Joint shared attention among the batch's shots (see the module docstring).

    `index` is built once per render from the subject masks (`build_sdsa_index`); `mode`
    "framewise" (default, grouped attention) or "dense" (one masked attention call).
    `weight`: each shared key counts as `weight` own keys (score + log weight; 1 = the paper).
    """

    def __init__(self, index: SDSAIndex, layers: Iterable[str], steps: Iterable[int],
                 mode: str = "framewise", weight: float = 1.0):
        super().__init__(layers, steps)
        if mode not in SDSA_MODES:
            raise ValueError(f"SDSA mode must be one of {SDSA_MODES}, got {mode!r}")
        self.index = index
        self.mode = mode
        self.bias = shared_key_bias(weight)
        self.count = 0

    def applies(self, layer: str, ctx: CallContext) -> bool:
        return not self.index.empty and super().applies(layer, ctx)

    def extend_kv(self, layer, q, k, v, ctx) -> KVExtension | GroupedKVExtension | None:
        ext = self.index.gather(k, v, self.bias)
        self.count += 1
        return ext if self.mode == "framewise" else ext.dense(q.shape[1], k.shape[1])


# ---------------------------------------------------------------------------------------------
# Anchor cache
# ---------------------------------------------------------------------------------------------

@dataclass
class AnchorKV:
    """Subject keys/values (and attention outputs) of jointly rendered anchor shots.

    For anchor a (order of `shot_ids`): `positions[a]` flat token positions (frame-major) of
    its subject tokens (union over its characters), `membership[a]` bool (n_a, C_a): which of
    its characters (`characters[a]`) each token belongs to. `kv[(layer, step, pass)][a]` is
    (K, V), each (n_a, heads, head_dim), post-rotary; `out[(layer, step, pass)][a]` the
    attention output (n_a, heads*head_dim) on the refinement steps. `frames`/`tokens_per_frame`
    give the token grid; `timesteps` the anchors' sampling schedule.
    """

    shot_ids: tuple[str, ...]
    characters: list[tuple[str, ...]]
    positions: list[torch.Tensor]
    membership: list[torch.Tensor]
    frames: int
    tokens_per_frame: int
    timesteps: list[float]
    kv: dict[tuple[str, int, str], list[tuple[torch.Tensor, torch.Tensor]]] = field(default_factory=dict)
    out: dict[tuple[str, int, str], list[torch.Tensor]] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        total = 0
        for pairs in self.kv.values():
            total += sum(t.numel() * t.element_size() for p in pairs for t in p)
        for outs in self.out.values():
            total += sum(t.numel() * t.element_size() for t in outs)
        return total

    def frame_of(self, a: int) -> torch.Tensor:
        return self.positions[a] // self.tokens_per_frame

    def selection(self, a: int, characters: Iterable[str]) -> torch.Tensor:
        """bool (n_a,): anchor a's subject tokens that belong to any of `characters`."""
        cols = [c for c, name in enumerate(self.characters[a]) if name in set(characters)]
        if not cols:
            return torch.zeros(self.positions[a].numel(), dtype=torch.bool)
        return self.membership[a][:, cols].any(dim=1)


class AnchorRecorder(_StepLayerPolicy):
    """Records anchors' subject K/V (extend_kv hook, returns no extension) on `steps` and their
    attention outputs on `out_steps`, into an `AnchorKV`. rows[a]: the batch row of anchor a.
    Install it before `Refine` so the outputs recorded are the unrefined ones the joint
    render's references use."""

    def __init__(self, store: AnchorKV, rows: Sequence[int], layers: Iterable[str],
                 steps: Iterable[int], out_steps: Iterable[int], device: str | torch.device | None = None):
        super().__init__(layers, set(steps) | set(out_steps))
        self.store = store
        self.rows = list(rows)
        self.kv_steps = frozenset(steps)
        self.out_steps = frozenset(out_steps)
        self.device = device

    def _keep(self, t: torch.Tensor) -> torch.Tensor:
        return t.detach().to(self.device or t.device, copy=True)

    def extend_kv(self, layer, q, k, v, ctx):
        if ctx.step in self.kv_steps:
            pairs = []
            for a, row in enumerate(self.rows):
                pos = self.store.positions[a].to(k.device)
                pairs.append((self._keep(k[row, pos]), self._keep(v[row, pos])))
            self.store.kv[(layer, ctx.step, ctx.pass_name)] = pairs
        return None

    def on_output(self, layer, out, ctx):
        if ctx.step in self.out_steps:
            self.store.out[(layer, ctx.step, ctx.pass_name)] = [
                self._keep(out[row, self.store.positions[a].to(out.device)])
                for a, row in enumerate(self.rows)
            ]
        return out


class AnchorSDSA(_StepLayerPolicy):
    """Shared attention of a shot rendered alone (batch of one) against cached anchors.

    sources: (anchor index, bool selection (n_a,)) for every anchor sharing a character with
    the shot (the selection keeps the tokens of the shared characters). frames: the shot's
    latent frame count; its frame f sees the anchor's proportional frame. step_map: the shot's
    step -> the anchor step recorded for the same timestep. rows: the batch rows that get the
    extension (None: all; a vanilla twin in the same batch gets none).
    """

    def __init__(self, store: AnchorKV, sources: Sequence[tuple[int, torch.Tensor]], frames: int,
                 layers: Iterable[str], steps: Iterable[int], step_map: dict[int, int],
                 mode: str = "framewise", rows: Sequence[int] | None = None, weight: float = 1.0):
        super().__init__(layers, steps)
        if mode not in SDSA_MODES:
            raise ValueError(f"SDSA mode must be one of {SDSA_MODES}, got {mode!r}")
        from motionq.methods.masks import map_frame

        self.bias = shared_key_bias(weight)
        self.store = store
        self.sources = [(a, sel) for a, sel in sources if bool(sel.any())]
        self.step_map = step_map
        self.mode = mode
        self.rows = list(rows) if rows is not None else None
        # concatenation order: anchors in `sources` order, their selected tokens in order
        frames_cat = torch.cat([store.frame_of(a)[sel] for a, sel in self.sources]) if self.sources \
            else torch.zeros(0, dtype=torch.long)
        lists = [torch.nonzero(frames_cat == map_frame(g, frames, store.frames)).flatten()
                 for g in range(frames)]
        longest = max((len(x) for x in lists), default=0)
        self.index = torch.zeros(1, frames, longest, dtype=torch.long)
        self.valid = torch.zeros(1, frames, longest, dtype=torch.bool)
        for g, x in enumerate(lists):
            self.index[0, g, :len(x)] = x
            self.valid[0, g, :len(x)] = True
        self.empty = not bool(self.valid.any())
        self._all_valid = bool(self.valid.all())
        self.count = 0

    def applies(self, layer, ctx):
        return not self.empty and super().applies(layer, ctx)

    def extend_kv(self, layer, q, k, v, ctx):
        key = (layer, self.step_map[ctx.step], ctx.pass_name)
        pairs = self.store.kv.get(key)
        if pairs is None:
            raise KeyError(f"anchor cache has no K/V for {layer}, step {key[1]}, pass {ctx.pass_name!r}")
        kc = torch.cat([pairs[a][0][sel.to(pairs[a][0].device)] for a, sel in self.sources])
        vc = torch.cat([pairs[a][1][sel.to(pairs[a][1].device)] for a, sel in self.sources])
        idx = self.index.to(kc.device)
        b = q.shape[0]
        ek = kc[idx].to(device=k.device, dtype=k.dtype).expand(b, -1, -1, -1, -1)
        ev = vc[idx].to(device=v.device, dtype=v.dtype).expand(b, -1, -1, -1, -1)
        valid = None if self._all_valid else self.valid.to(k.device).expand(b, -1, -1)
        if self.rows is not None and len(self.rows) < b:
            keep = torch.zeros(b, 1, 1, dtype=torch.bool, device=k.device)
            keep[torch.as_tensor(self.rows, device=k.device)] = True
            valid = (valid if valid is not None else torch.ones_like(keep).expand(b, *self.valid.shape[1:])) & keep
        ext = GroupedKVExtension(ek, ev, valid, self.bias)
        self.count += 1
        return ext if self.mode == "framewise" else ext.dense(q.shape[1], k.shape[1])


# ---------------------------------------------------------------------------------------------
# Refinement injection
# ---------------------------------------------------------------------------------------------

@dataclass
class RefineTarget:
    """One shot to refine. row: its batch row; positions[g]: its subject token positions in
    frame g (shared characters only). The reference is either another batch row (`ref_row`,
    `ref_positions[g]` its subject positions of frame g) or an anchor of an `AnchorKV`
    (`anchor`, `anchor_select[g]`: indices into that anchor's recorded tokens for the frame)."""

    row: int
    positions: list[torch.Tensor]
    ref_row: int | None = None
    ref_positions: list[torch.Tensor] | None = None
    anchor: int | None = None
    anchor_select: list[torch.Tensor] | None = None


#: How the refinement blends: "match" copies the reference's feature at each token's argmax
#: cosine correspondence (the paper's DIFT-like injection); "mean" shifts the subject tokens'
#: mean feature towards the reference's subject mean and keeps each token's own deviation.
REFINE_MODES = ("match", "mean")


class Refine(_StepLayerPolicy):
    """Blend the reference's attention output into each target's subject tokens at argmax
    cosine correspondences (see the module docstring). Both passes."""

    def __init__(self, targets: Sequence[RefineTarget], layers: Iterable[str], steps: Iterable[int],
                 alpha: float = 0.8, store: AnchorKV | None = None,
                 step_map: dict[int, int] | None = None, mode: str = "match"):
        super().__init__(layers, steps)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"refine alpha must be in [0, 1], got {alpha}")
        if mode not in REFINE_MODES:
            raise ValueError(f"refine mode must be one of {REFINE_MODES}, got {mode!r}")
        self.mode = mode
        self.targets = list(targets)
        self.alpha = float(alpha)
        self.store = store
        self.step_map = step_map or {}
        self.count = 0

    def applies(self, layer, ctx):
        return bool(self.targets) and super().applies(layer, ctx)

    def on_output(self, layer, out, ctx):
        new = out.clone()  # references read the unrefined outputs
        for tg in self.targets:
            for g, pos in enumerate(tg.positions):
                if pos.numel() == 0:
                    continue
                if tg.ref_row is not None:
                    rp = tg.ref_positions[g]
                    if rp.numel() == 0:
                        continue
                    ref = out[tg.ref_row, rp.to(out.device)]
                else:
                    sel = tg.anchor_select[g]
                    if sel.numel() == 0:
                        continue
                    key = (layer, self.step_map.get(ctx.step, ctx.step), ctx.pass_name)
                    feats = self.store.out.get(key)
                    if feats is None:
                        raise KeyError(f"anchor cache has no attention output for {key}")
                    ref = feats[tg.anchor][sel.to(feats[tg.anchor].device)].to(out.device, out.dtype)
                p = pos.to(out.device)
                mine = out[tg.row, p]
                if self.mode == "mean":
                    # Move the subject's mean feature (its look) towards the reference's and keep
                    # each token's difference from it (where in the token the sprite sits).
                    new[tg.row, p] = mine + self.alpha * (ref.mean(dim=0) - mine.mean(dim=0))
                else:
                    sim = F.normalize(mine.float(), dim=-1) @ F.normalize(ref.float(), dim=-1).T
                    match = sim.argmax(dim=1)
                    new[tg.row, p] = (1.0 - self.alpha) * mine + self.alpha * ref[match]
                self.count += 1
        return new


__all__ = [
    "SDSA_MODES",
    "AnchorKV",
    "AnchorRecorder",
    "AnchorSDSA",
    "REFINE_MODES",
    "Refine",
    "RefineTarget",
    "SDSA",
    "SDSAIndex",
    "build_sdsa_index",
    "sdsa_dense_mask",
    "visible_tokens",
]
