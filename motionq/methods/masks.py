"""Subject masks from cross-attention: where each character is, per shot and latent frame.

The paper segments the subject with CLIPSeg + Otsu on the predicted clean frame; CLIPSeg is not
available offline here, so we do what ConsiStory does: read the cross-attention (`attn2`) maps
of the character's prompt tokens during the vanilla pass.

1. `subject_token_positions`: the character's prompt text (`ShotRequest.subjects`) is
   tokenized on its own and found as a contiguous subsequence of the shot prompt's token ids
   (the same cleaning, special tokens and truncation as WanPipeline). Every occurrence counts.
   When the exact subsequence is missing (a tokenizer that merges across word boundaries, or
   words in another order), the positions holding the subject's ids are used instead, if at
   least half of its distinct ids occur in the prompt.
2. `CrossAttentionRecorder`: an attn2 processor that returns the stock processor's output
   unchanged (the generation is not altered) and, on the recorded steps (cond pass only, t in
   `mask_range`, a middle range of blocks), recomputes softmax(QK^T/sqrt(d)) over the text
   tokens and accumulates the probability mass on the subject positions, averaged over heads,
   layers, steps and subject tokens.
3. `SubjectMaskAccumulator.finish`: per shot and character, the map (F, h, w) at token
   resolution (latent frames x tokens, in Wan's (frame, height, width) token order) is min-max
   normalised over the whole shot and thresholded with Otsu over all its frames jointly (one
   threshold per shot: a frame where the subject is absent stays empty instead of having its
   background promoted to "subject").

`upsample_masks` scales token-resolution masks to pixels for display; `fit_masks` brings a
user-supplied mask (any resolution) to token resolution.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

from motionq.control.controller import AttentionController, CallContext
from motionq.control.phases import in_range

#: Timesteps (0..1000) whose cross-attention maps are averaged into masks: the middle of the
#: trajectory, where layout is decided but the maps are no longer pure noise.
DEFAULT_MASK_RANGE: tuple[int, int] = (500, 900)


def default_mask_blocks(num_layers: int) -> list[int]:
    """The middle half of the blocks (at least one): early blocks' cross-attention is diffuse,
    the last ones' is specialised on texture. 30 -> 7..22, 6 -> 1..4, 2 -> 0..1."""
    lo = num_layers // 4
    hi = num_layers - num_layers // 4
    return list(range(lo, max(hi, lo + 1)))


# ---------------------------------------------------------------------------------------------
# Token positions of a subject in a prompt
# ---------------------------------------------------------------------------------------------

def _clean(text: str) -> str:
    from diffusers.pipelines.wan.pipeline_wan import prompt_clean

    return prompt_clean(text)


def subject_token_positions(
    tokenizer, prompt: str, subject: str, max_sequence_length: int
) -> list[int]:
    """Positions of `subject`'s tokens in `prompt`'s token ids as the text encoder sees them.

    Exact contiguous matches first (all occurrences); failing that, every position whose id is
    one of the subject's ids, when at least half of those ids occur. Positions past `max_sequence_length` (truncated) are dropped.
    """
    ids = tokenizer(_clean(prompt), add_special_tokens=True, truncation=True,
                    max_length=max_sequence_length).input_ids
    sub = tokenizer(_clean(subject), add_special_tokens=False).input_ids
    if not sub:
        return []
    n = len(sub)
    found: list[int] = []
    for i in range(len(ids) - n + 1):
        if ids[i:i + n] == sub:
            found.extend(range(i, i + n))
    if not found:
        # No contiguous match: fall back to the subject's words wherever they are, provided
        # most of them are there (a lone "a" shared with the prompt does not make a subject).
        special = set(getattr(tokenizer, "all_special_ids", []))
        wanted = set(sub) - special
        present = wanted & set(ids)
        if wanted and 2 * len(present) >= len(wanted):
            found = [i for i, t in enumerate(ids) if t in present]
    return sorted(set(found))


# ---------------------------------------------------------------------------------------------
# Otsu and resizing
# ---------------------------------------------------------------------------------------------

def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of values in [0, 1] (maximises the between-class variance of a
    `bins`-bin histogram). Values >= the returned threshold are foreground."""
    v = np.asarray(values, dtype=np.float64).ravel()
    hist, edges = np.histogram(v, bins=bins, range=(0.0, 1.0))
    p = hist.astype(np.float64) / max(1, hist.sum())
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(p)  # weight of the class below (and including) bin k
    mu = np.cumsum(p * centers)
    mu_t = mu[-1]
    w1 = 1.0 - w0
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu_t * w0 - mu) ** 2 / (w0 * w1)
    between[~np.isfinite(between)] = -1.0
    k = int(np.argmax(between))
    # Empty bins between two modes give a plateau of equal variance; take its middle rather
    # than its first bin (which hugs the lower mode: few tokens per shot make such gaps common).
    end = k
    while end + 1 < len(between) and between[end + 1] >= between[k] - 1e-12:
        end += 1
    return float((edges[k + 1] + edges[end + 1]) / 2)  # foreground: >= the threshold


def normalise(m: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1] over the whole array (all zeros when constant)."""
    m = np.asarray(m, dtype=np.float32)
    lo, hi = float(m.min()), float(m.max())
    if hi - lo < 1e-12:
        return np.zeros_like(m)
    return (m - lo) / (hi - lo)


def threshold_masks(soft: np.ndarray) -> np.ndarray:
    """Binary masks from a normalised soft map (F, h, w): Otsu over all frames jointly.
    A constant map (no signal) gives an empty mask."""
    soft = np.asarray(soft, dtype=np.float32)
    if soft.size == 0 or float(soft.max() - soft.min()) < 1e-12:
        return np.zeros(soft.shape, dtype=bool)
    return soft >= otsu_threshold(soft)


def _resample_index(n_out: int, n_in: int) -> np.ndarray:
    """Nearest index of each of n_out positions into n_in (proportional, ends aligned)."""
    if n_in == 1 or n_out == 1:
        return np.zeros(n_out, dtype=int)
    return np.round(np.arange(n_out) * (n_in - 1) / (n_out - 1)).astype(int)


def map_frame(f: int, n_from: int, n_to: int) -> int:
    """Frame `f` of a clip with `n_from` frames -> the proportional frame of one with `n_to`."""
    if n_from <= 1 or n_to <= 1:
        return 0
    return int(round(f * (n_to - 1) / (n_from - 1)))


def upsample_masks(masks: np.ndarray, num_frames: int, height: int, width: int) -> np.ndarray:
    """Token-resolution masks (F, h, w) -> float32 (num_frames, height, width) in [0, 1] for
    display: frames by proportional position, space by nearest neighbour (each token is a
    (height/h) x (width/w) block)."""
    m = np.asarray(masks, dtype=np.float32)
    f, h, w = m.shape
    fi = _resample_index(num_frames, f)
    yi = np.minimum((np.arange(height) * h) // height, h - 1)
    xi = np.minimum((np.arange(width) * w) // width, w - 1)
    return m[fi][:, yi][:, :, xi]


def fit_masks(masks: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """A supplied mask (F', H', W') of any resolution (bool or float; > 0.5 = subject) at the
    token resolution `shape` = (F, h, w): frames by proportional position, space by the mean
    over each token's block (area), thresholded at 0.5."""
    m = np.asarray(masks)
    if m.ndim != 3:
        raise ValueError(f"masks must be (frames, height, width), got shape {m.shape}")
    f, h, w = shape
    m = m.astype(np.float32)
    if m.shape == (f, h, w):
        return m > 0.5
    m = m[_resample_index(f, m.shape[0])]
    H, W = m.shape[1:]
    ys = np.linspace(0, H, h + 1)
    xs = np.linspace(0, W, w + 1)
    out = np.zeros((f, h, w), dtype=np.float32)
    for i in range(h):
        for j in range(w):
            y0, y1 = int(np.floor(ys[i])), max(int(np.floor(ys[i])) + 1, int(np.ceil(ys[i + 1])))
            x0, x1 = int(np.floor(xs[j])), max(int(np.floor(xs[j])) + 1, int(np.ceil(xs[j + 1])))
            out[:, i, j] = m[:, y0:min(y1, H), x0:min(x1, W)].mean(axis=(1, 2))
    return out > 0.5


# ---------------------------------------------------------------------------------------------
# Recording cross-attention
# ---------------------------------------------------------------------------------------------

@dataclass
class SubjectMasks:
    """Masks of one shot: `characters[c]` is where character c is, `masks[c]` bool (F, h, w) at
    token resolution, `soft[c]` the normalised attention map (None for supplied masks)."""

    characters: tuple[str, ...]
    masks: np.ndarray  # (C, F, h, w) bool
    soft: np.ndarray | None = None  # (C, F, h, w) float32
    supplied: bool = False

    @property
    def union(self) -> np.ndarray:
        """Where any character is: bool (F, h, w)."""
        if self.masks.shape[0] == 0:
            return np.zeros(self.masks.shape[1:], dtype=bool)
        return self.masks.any(axis=0)

    def of(self, character: str) -> np.ndarray:
        return self.masks[self.characters.index(character)]


@dataclass
class SubjectMaskAccumulator:
    """Sums of subject attention per batch item and character.

    positions[i][c]: subject token positions of character c in item i's prompt.
    grid: (F, h, w) token grid of the video. blocks: block indices recorded (names in the
    processors). steps: a predicate on the controller context saying whether to record.
    """

    positions: list[list[list[int]]]
    grid: tuple[int, int, int]
    want: Callable[[CallContext], bool]
    chunk: int = 8192
    sums: dict[tuple[int, int], torch.Tensor] = field(default_factory=dict)
    counts: dict[tuple[int, int], int] = field(default_factory=dict)

    @torch.no_grad()
    def add(self, probs_fn: Callable[[list[list[int]], int], list[torch.Tensor | None]], batch: int) -> None:
        """Accumulate one layer call. probs_fn(positions of each character, item) returns, per
        character, the mean attention on those positions per video token (S,), or None."""
        for i in range(min(batch, len(self.positions))):
            if not any(self.positions[i]):
                continue
            for c, m in enumerate(probs_fn(self.positions[i], i)):
                if m is None:
                    continue
                m = m.float().cpu()
                key = (i, c)
                self.sums[key] = self.sums[key] + m if key in self.sums else m
                self.counts[key] = self.counts.get(key, 0) + 1

    def soft_map(self, item: int, character: int) -> np.ndarray | None:
        """Mean subject attention (F, h, w), not normalised; None if never recorded."""
        key = (item, character)
        if key not in self.sums:
            return None
        return (self.sums[key] / self.counts[key]).reshape(self.grid).numpy()

    def finish(self, characters: Sequence[Sequence[str]]) -> list[SubjectMasks]:
        """Normalised maps and Otsu masks for every item (characters[i]: names of item i)."""
        out = []
        f, h, w = self.grid
        for i, chars in enumerate(characters):
            soft = np.zeros((len(chars), f, h, w), np.float32)
            hard = np.zeros((len(chars), f, h, w), bool)
            for c in range(len(chars)):
                m = self.soft_map(i, c)
                if m is None:
                    continue
                soft[c] = normalise(m)
                hard[c] = threshold_masks(soft[c])
            out.append(SubjectMasks(tuple(chars), exclusive(hard, soft), soft))
        return out


def exclusive(hard: np.ndarray, soft: np.ndarray) -> np.ndarray:
    """Masks (C, F, h, w) in which a token belongs to at most one character: where several
    masks claim it, the character whose normalised attention is highest there keeps it.

    With coarse tokens two characters' Otsu masks overlap (on the built-in model a mask is a
    few 8x8-pixel tokens); a shared token would carry one character's features into the
    other's (SDSA, refinement): a blue square refined into a red circle.
    """
    if hard.shape[0] < 2:
        return hard
    owner = np.argmax(np.where(hard, soft, -np.inf), axis=0)  # (F, h, w)
    keep = owner[None] == np.arange(hard.shape[0]).reshape(-1, 1, 1, 1)
    return hard & keep


class CrossAttentionRecorder:
    """An `attn2` processor: the stock processor's output, plus subject attention recording.

    The output is exactly the wrapped processor's; the probabilities are recomputed on the side
    (in token chunks, so memory stays at chunk x text tokens x heads) only when
    `accumulator.want(controller.context)`.
    """

    def __init__(self, stock, controller: AttentionController, accumulator: SubjectMaskAccumulator):
        self.stock = stock
        self.controller = controller
        self.acc = accumulator
        # keep the backend the stock processor was configured with
        self._attention_backend = getattr(stock, "_attention_backend", None)
        self._parallel_config = getattr(stock, "_parallel_config", None)

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 rotary_emb=None):
        out = self.stock(attn, hidden_states, encoder_hidden_states, attention_mask, rotary_emb)
        if encoder_hidden_states is not None and self.acc.want(self.controller.context):
            self._record(attn, hidden_states, encoder_hidden_states)
        return out

    @torch.no_grad()
    def _record(self, attn, hidden_states, encoder_hidden_states) -> None:
        if attn.add_k_proj is not None:  # I2V: image context first, the text is the last 512
            encoder_hidden_states = encoder_hidden_states[:, encoder_hidden_states.shape[1] - 512:]
        q = attn.norm_q(attn.to_q(hidden_states)).unflatten(2, (attn.heads, -1))
        k = attn.norm_k(attn.to_k(encoder_hidden_states)).unflatten(2, (attn.heads, -1))
        scale = q.shape[-1] ** -0.5
        chunk = self.acc.chunk

        def probs(positions: list[list[int]], i: int) -> list[torch.Tensor | None]:
            # attention mass on each character's tokens: mean over heads and its positions;
            # the scores are computed once per item for all characters
            idx = [torch.as_tensor(p, device=k.device) if p else None for p in positions]
            parts: list[list[torch.Tensor]] = [[] for _ in positions]
            for s0 in range(0, q.shape[1], chunk):
                scores = torch.einsum("shd,lhd->hsl", q[i, s0:s0 + chunk].float(), k[i].float()) * scale
                logp = scores - torch.logsumexp(scores, -1, keepdim=True)
                for c, ix in enumerate(idx):
                    if ix is not None:
                        parts[c].append(torch.exp(logp[..., ix]).mean(dim=(0, 2)))
            return [torch.cat(p) if p else None for p in parts]

        self.acc.add(probs, q.shape[0])


def install_mask_recorders(
    transformer: torch.nn.Module,
    controller: AttentionController,
    blocks: Iterable[int],
    accumulator: SubjectMaskAccumulator,
) -> Callable[[], None]:
    """Wrap `blocks.{i}.attn2` processors with `CrossAttentionRecorder`; returns a restore."""
    previous = dict(transformer.attn_processors)
    procs = dict(previous)
    for b in blocks:
        key = f"blocks.{int(b)}.attn2.processor"
        procs[key] = CrossAttentionRecorder(previous[key], controller, accumulator)
    transformer.set_attn_processor(procs)

    def restore() -> None:
        transformer.set_attn_processor(dict(previous))

    return restore


def mask_steps(mask_range: tuple[float, float], timesteps: Sequence[float]) -> set[int]:
    """The steps with t in `mask_range`; when no step of this schedule falls in it (very few
    steps), the step nearest the range's middle."""
    steps = {i for i, t in enumerate(timesteps) if in_range(t, mask_range)}
    if not steps and len(timesteps):
        mid = sum(mask_range) / 2
        steps = {min(range(len(timesteps)), key=lambda i: abs(float(timesteps[i]) - mid))}
    return steps


def step_filter(mask_range: tuple[float, float], timesteps: Sequence[float]) -> Callable[[CallContext], bool]:
    """Record on the cond pass of the `mask_steps`."""
    steps = mask_steps(mask_range, timesteps)
    return lambda ctx: ctx.pass_name == "cond" and ctx.step in steps


def masks_from_supplied(
    supplied: Mapping[str, np.ndarray], shot_id: str, characters: Sequence[str], grid: tuple[int, int, int]
) -> SubjectMasks | None:
    """A supplied mask of a shot (any resolution), applied to every character of the shot."""
    if shot_id not in supplied:
        return None
    m = fit_masks(supplied[shot_id], grid)
    return SubjectMasks(tuple(characters), np.repeat(m[None], len(characters), 0), None, supplied=True)


__all__ = [
    "DEFAULT_MASK_RANGE",
    "CrossAttentionRecorder",
    "SubjectMaskAccumulator",
    "SubjectMasks",
    "default_mask_blocks",
    "fit_masks",
    "install_mask_recorders",
    "map_frame",
    "mask_steps",
    "masks_from_supplied",
    "normalise",
    "otsu_threshold",
    "step_filter",
    "subject_token_positions",
    "threshold_masks",
    "upsample_masks",
]
