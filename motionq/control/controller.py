"""The attention controller: one object that owns *when* we are (step, timestep, pass) and
*what* happens inside the controlled self-attention layers (the policies).

Processors stay dumb (see `motionq.control.processors`): at fixed points of Wan's
self-attention they ask the controller, which asks its policies in order. With no policy the
processors skip every call, so the output is bit-identical to diffusers' stock processor.

Where the controller learns the step
-------------------------------------
diffusers' `attention_kwargs` do not reach Wan's processors, so `attach()` registers a forward
pre-hook on the transformer that reads the `timestep` argument of every call:

* the timestep went *down*  -> the next sampling step starts (step += 1, pass 0);
* the timestep went *up* (or first call) -> a new generation starts (step 0, pass 0);
* the timestep is unchanged -> another pass of the same step (pass += 1).

WanPipeline calls the transformer twice per step, conditional first, then unconditional when
guidance > 1, so pass 0 is named "cond" and pass 1 "uncond" (`pass_names`). A sampler that
evaluates the same timestep in two different steps (Heun's duplicated timesteps) would need an
explicit `reset()` per step; no Wan scheduler does that. Forward passes made outside a pipeline
loop (recording Q from a reference clip) run inside `controller.fixed(step=..., pass_name=...)`,
which pins the context and ignores the hook.

Batch items
-----------
Each pass has one batch item per generated video. `reset(items=(...))` names them (shot ids);
policies read `ctx.items` to know which slice of the batch is which shot.

Policies
--------
A `Policy` overrides any of:

* `on_query(layer, q, ctx) -> q`          replace / edit Q (record it, inject it, Q-Flow)
* `extend_kv(layer, q, k, v, ctx) -> KVExtension | GroupedKVExtension | None`
                                          extra keys/values and an attention mask (SDSA);
                                          grouped: extra keys per query group (frame)
* `on_output(layer, out, ctx) -> out`     edit the attention output before `to_out`
                                          (refinement injection)

`q`, `k`, `v` have shape (batch, tokens, heads, head_dim); tokens are ordered (frame, height,
width) after Wan's (1, 2, 2) patchify. This module also holds the two policies motion transfer
needs, `RecordQ` and `InjectQ`, and the `QCache` they share.

How the multi-shot method plugs in (no change to the processors)
-----------------------------------------------------------------
* Shots are batch items: render N shots as one batch, `reset(items=shot_ids)`.
* SDSA: a policy whose `extend_kv` gathers, for each shot i, the K/V of the subject tokens of
  the *same frame* of the other shots j (`k.view(B, F, h*w, H, D)` slices), and returns them
  framewise, one group per latent frame (`GroupedKVExtension`): nothing from non-subject
  tokens, other frames, or shots that share no character; active on the steps of `sdsa_range`.
  Anchor mode: the same policy reads cached anchor K/V instead of the batch's.
* Q-Preservation: a vanilla pass with `RecordQ` (per step and batch item), then `InjectQ`
  on the consistent pass for the steps with t >= t_pres (`phases.multishot_schedule`).
* Q-Flow: an `on_query` policy that, for t < t_pres, gathers the consistent pass's own Q at
  the keyframe correspondences computed from the vanilla Q (pre-rotary Q is position-free, so
  moving it between token positions is meaningful) and blends them.
* Refinement injection: an `on_output` policy.

(Implemented in `motionq.methods.multishot`, `.sdsa` and `.qflow`.)
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from typing import Any, Callable, Container, Iterable, Iterator

import torch

#: Names of the passes of one sampling step, in the order WanPipeline runs them.
DEFAULT_PASS_NAMES: tuple[str, ...] = ("cond", "uncond")


@dataclass(frozen=True)
class CallContext:
    """Where the current transformer forward pass is.

    step: 0-based sampling step (or the slot a `fixed()` block set); -1 before any call.
    timestep: the model's timestep on the 0..1000 scale (1000 = pure noise).
    pass_index / pass_name: which forward pass of the step ("cond", "uncond", "record", ...).
    batch_size: batch size of the current forward.
    items: what each batch item is (shot ids), when declared with `reset(items=...)`.
    """

    step: int = -1
    timestep: float = float("nan")
    pass_index: int = 0
    pass_name: str = "cond"
    batch_size: int = 0
    items: tuple[str, ...] | None = None


@dataclass
class KVExtension:
    """Extra keys/values appended after a layer's own (batch, tokens, heads, head_dim) K/V.

    `mask` is passed as `attn_mask` to the attention: boolean (True = attend) or additive
    float, broadcastable to (batch, heads, query_tokens, own_tokens + extra_tokens). None means
    every query sees every key.
    """

    key: torch.Tensor
    value: torch.Tensor
    mask: torch.Tensor | None = None


@dataclass
class GroupedKVExtension:
    """Extra keys/values that each *group* of queries sees on its own (framewise attention).

    The layer's queries are split into `G` equal consecutive groups (frames: tokens are ordered
    (frame, height, width)); query group g attends to all of the layer's own keys plus the extra
    keys `key[:, g]` (where `valid[:, g]` is True). Shapes: key/value (batch, G, M, heads,
    head_dim), valid (batch, G, M) bool or None (all valid).

    Mathematically the same as a `KVExtension` whose mask is (same group AND valid) (see
    `dense`), but the processor computes it group by group, so no (tokens x G*M) mask is ever
    built: that mask is what makes framewise shared attention unaffordable on large videos.

    `bias` is added to the scores of the (valid) extra keys: log of how many own keys each
    extra key weighs as (0 = plain attention over the union, as in the paper).
    """

    key: torch.Tensor
    value: torch.Tensor
    valid: torch.Tensor | None = None
    bias: float = 0.0

    @property
    def groups(self) -> int:
        return int(self.key.shape[1])

    def group_mask(self, g: int, own_keys: int, dtype: torch.dtype) -> torch.Tensor | None:
        """attn_mask for query group g over (own keys + the group's extra keys), broadcastable
        to (batch, heads, queries, keys): None when every key is visible at score +0; boolean
        when only validity matters; else additive float (0 own, +bias extra, -inf hidden)."""
        b, m = self.key.shape[0], self.key.shape[2]
        valid = None if self.valid is None else self.valid[:, g].reshape(b, 1, 1, m)
        if not self.bias:
            if valid is None or bool(valid.all()):
                return None
            own = torch.ones(b, 1, 1, own_keys, dtype=torch.bool, device=self.key.device)
            return torch.cat([own, valid], -1)
        add = torch.zeros(b, 1, 1, own_keys + m, dtype=dtype, device=self.key.device)
        add[..., own_keys:] = self.bias
        if valid is not None:
            add[..., own_keys:] = add[..., own_keys:].masked_fill(~valid, float("-inf"))
        return add

    def dense(self, num_queries: int, own_keys: int | None = None) -> KVExtension:
        """The equivalent plain extension: extra tokens flattened (group-major), with a boolean
        mask (batch, 1, num_queries, own_keys + G*M): own keys all visible (own_keys defaults
        to num_queries, as in self-attention), extra keys only within a group and where valid."""
        b, g, m = self.key.shape[:3]
        own = num_queries if own_keys is None else own_keys
        if num_queries % g:
            raise ValueError(f"{num_queries} queries do not split into {g} equal groups")
        per = num_queries // g
        q_group = torch.arange(num_queries, device=self.key.device) // per
        k_group = torch.arange(g, device=self.key.device).repeat_interleave(m)
        mask = (q_group[:, None] == k_group[None, :])[None, None].expand(b, 1, -1, -1)
        if self.valid is not None:
            mask = mask & self.valid.reshape(b, 1, 1, g * m)
        ones = torch.ones(b, 1, num_queries, own, dtype=torch.bool, device=self.key.device)
        full = torch.cat([ones, mask], -1)
        if self.bias:
            # additive float mask: 0 own keys, +bias visible extra keys, -inf hidden ones
            add = torch.zeros(full.shape, dtype=self.key.dtype, device=self.key.device)
            add[..., own:] = self.bias
            full = add.masked_fill(~full, float("-inf"))
        return KVExtension(self.key.flatten(1, 2), self.value.flatten(1, 2), full)


class Policy:
    """Base class of an attention intervention. Every hook is a no-op by default.

    `layers`: names of the layers the policy acts on (None: every controlled layer). Layer names
    are the processor names given at install time, e.g. "blocks.3.attn1".
    """

    layers: frozenset[str] | None = None

    def applies(self, layer: str, ctx: CallContext) -> bool:
        """Cheap filter asked before the hooks; override for step/pass conditions."""
        return self.layers is None or layer in self.layers

    def on_query(self, layer: str, q: torch.Tensor, ctx: CallContext) -> torch.Tensor:
        return q

    def extend_kv(
        self, layer: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, ctx: CallContext
    ) -> KVExtension | GroupedKVExtension | None:
        return None

    def on_output(self, layer: str, out: torch.Tensor, ctx: CallContext) -> torch.Tensor:
        return out


class AttentionController:
    """Shared state between the transformer's pre-hook, the processors and the policies."""

    def __init__(self, pass_names: Iterable[str] = DEFAULT_PASS_NAMES) -> None:
        self.pass_names: tuple[str, ...] = tuple(pass_names)
        self.policies: list[Policy] = []
        self.context = CallContext()
        self._items: tuple[str, ...] | None = None
        self._fixed: CallContext | None = None
        self._last_t: float | None = None
        self._handles: list[Any] = []
        #: Number of transformer forward calls seen since the last reset (for tests / stats).
        self.calls = 0

    # -- policies --------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        """True when at least one policy is installed; processors skip all hooks otherwise."""
        return bool(self.policies)

    def add(self, policy: Policy) -> Policy:
        self.policies.append(policy)
        return policy

    def remove(self, policy: Policy) -> None:
        self.policies.remove(policy)

    def clear(self) -> None:
        self.policies.clear()

    @contextlib.contextmanager
    def using(self, *policies: Policy) -> Iterator[AttentionController]:
        """Install policies for the duration of a `with` block."""
        for p in policies:
            self.add(p)
        try:
            yield self
        finally:
            for p in policies:
                if p in self.policies:
                    self.remove(p)

    # -- step tracking ---------------------------------------------------------------------
    def attach(self, transformer: torch.nn.Module) -> Callable[[], None]:
        """Register the forward pre-hook that tracks steps; returns a function removing it."""
        handle = transformer.register_forward_pre_hook(self._pre_forward, with_kwargs=True)
        self._handles.append(handle)

        def detach() -> None:
            handle.remove()
            if handle in self._handles:
                self._handles.remove(handle)

        return detach

    def reset(self, items: Iterable[str] | None = None) -> None:
        """Start a new generation: next forward is step 0. `items` names the batch items."""
        self._items = tuple(items) if items is not None else None
        self._last_t = None
        self.calls = 0
        self.context = CallContext(items=self._items)

    @contextlib.contextmanager
    def fixed(
        self, step: int, timestep: float = float("nan"), pass_name: str = "record"
    ) -> Iterator[None]:
        """Pin the context for forwards made outside a sampling loop (e.g. recording)."""
        previous = self._fixed
        self._fixed = CallContext(
            step=step, timestep=float(timestep), pass_index=0, pass_name=pass_name,
            items=self._items,
        )
        try:
            yield
        finally:
            self._fixed = previous

    def _pre_forward(self, module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        hidden = kwargs.get("hidden_states", args[0] if args else None)
        batch = int(hidden.shape[0]) if hidden is not None else 0
        self.calls += 1
        if self._fixed is not None:
            self.context = replace(self._fixed, batch_size=batch)
            return
        timestep = kwargs.get("timestep", args[1] if len(args) > 1 else None)
        # One host sync per forward (not per layer): negligible next to a transformer pass.
        t = float(timestep.reshape(-1)[0]) if torch.is_tensor(timestep) else float(timestep)
        ctx = self.context
        if self._last_t is None or t > self._last_t:
            step, pass_index = 0, 0
        elif t < self._last_t:
            step, pass_index = ctx.step + 1, 0
        else:
            step, pass_index = ctx.step, ctx.pass_index + 1
        self._last_t = t
        name = self.pass_names[pass_index] if pass_index < len(self.pass_names) else f"pass{pass_index}"
        self.context = CallContext(
            step=step, timestep=t, pass_index=pass_index, pass_name=name,
            batch_size=batch, items=self._items,
        )

    # -- called by processors --------------------------------------------------------------
    def on_query(self, layer: str, q: torch.Tensor, ctx: CallContext | None = None) -> torch.Tensor:
        ctx = ctx or self.context
        for p in self.policies:
            if p.applies(layer, ctx):
                q = p.on_query(layer, q, ctx)
        return q

    def extend_kv(
        self,
        layer: str,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        ctx: CallContext | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | GroupedKVExtension | None]:
        """Apply every policy's K/V extension; returns (key, value, attn_mask or None).

        Several extensions concatenate along the token axis; their masks are combined into
        one boolean mask (own tokens always visible unless a policy's mask says otherwise).

        A single `GroupedKVExtension` is handed through as is, in place of the mask:
        (own key, own value, the extension); the processor then attends group by group. Mixed
        with other extensions it is first turned into its dense equivalent.
        """
        ctx = ctx or self.context
        exts = [
            e for p in self.policies if p.applies(layer, ctx)
            for e in [p.extend_kv(layer, q, k, v, ctx)] if e is not None
        ]
        if not exts:
            return k, v, None
        if len(exts) == 1 and isinstance(exts[0], GroupedKVExtension):
            return k, v, exts[0]  # type: ignore[return-value]
        exts = [e.dense(q.shape[1], k.shape[1]) if isinstance(e, GroupedKVExtension) else e for e in exts]
        if len(exts) == 1:
            e = exts[0]
            return torch.cat([k, e.key], 1), torch.cat([v, e.value], 1), e.mask
        b, sq, sk = q.shape[0], q.shape[1], k.shape[1]
        keys, values, masks = [k], [v], [torch.ones(b, 1, sq, sk, dtype=torch.bool, device=q.device)]
        for e in exts:
            keys.append(e.key)
            values.append(e.value)
            n = e.key.shape[1]
            m = e.mask
            if m is None:
                m = torch.ones(b, 1, sq, n, dtype=torch.bool, device=q.device)
            else:
                m = m.reshape((1,) * (4 - m.dim()) + tuple(m.shape))  # to (B, H, Sq, Sk)
                if m.dtype != torch.bool:
                    m = m > float("-inf")  # additive mask: -inf = hidden
                m = m[..., -n:]  # a policy's mask covers own + its extra tokens; keep its extra part
            masks.append(m.expand(b, -1, sq, n) if m.shape[1] == 1 else m)
        heads = max(m.shape[1] for m in masks)
        masks = [m.expand(b, heads, sq, m.shape[-1]) for m in masks]
        return torch.cat(keys, 1), torch.cat(values, 1), torch.cat(masks, -1)

    def on_output(self, layer: str, out: torch.Tensor, ctx: CallContext | None = None) -> torch.Tensor:
        ctx = ctx or self.context
        for p in self.policies:
            if p.applies(layer, ctx):
                out = p.on_output(layer, out, ctx)
        return out


# ---------------------------------------------------------------------------------------------
# Q storage and the two policies of motion transfer (also Q-Preservation's building blocks).
# ---------------------------------------------------------------------------------------------

StepFilter = Container[int] | Callable[[CallContext], bool] | None


def _step_ok(steps: StepFilter, ctx: CallContext) -> bool:
    if steps is None:
        return True
    if callable(steps):
        return bool(steps(ctx))
    return ctx.step in steps


class QCache:
    """Recorded queries by (layer, slot, pass). A slot is a step index, or 0 for a single
    recording reused at every step. Tensors keep the layout (batch, tokens, heads, head_dim).

    `device`/`dtype`: where to keep them (e.g. "cpu" to spare GPU memory at a transfer cost);
    None keeps them where they were computed. `nbytes` is the memory they take.
    """

    def __init__(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        self.device = torch.device(device) if device is not None else None
        self.dtype = dtype
        self._store: dict[tuple[str, int, str], torch.Tensor] = {}

    def put(self, layer: str, slot: int, pass_name: str, q: torch.Tensor) -> None:
        # clone: a view into a transient activation must not keep the whole buffer alive
        self._store[(layer, slot, pass_name)] = q.detach().to(
            device=self.device or q.device, dtype=self.dtype or q.dtype, copy=True
        )

    def get(self, layer: str, slot: int, pass_name: str) -> torch.Tensor | None:
        return self._store.get((layer, slot, pass_name))

    def keys(self) -> list[tuple[str, int, str]]:
        return list(self._store)

    def layers(self) -> list[str]:
        return sorted({k[0] for k in self._store})

    def slots(self) -> list[int]:
        return sorted({k[1] for k in self._store})

    def clear(self) -> None:
        self._store.clear()

    def select_items(self, rows: Iterable[int]) -> None:
        """Keep only these batch rows (in this order) of every stored tensor, e.g. when a later
        pass runs a subset of the batch that was recorded."""
        rows = list(rows)
        for key, t in self._store.items():
            self._store[key] = t[torch.as_tensor(rows, device=t.device, dtype=torch.long)]

    def __len__(self) -> int:
        return len(self._store)

    def __contains__(self, key: object) -> bool:
        return key in self._store

    @property
    def nbytes(self) -> int:
        """Bytes held by the recorded tensors."""
        return sum(t.numel() * t.element_size() for t in self._store.values())

    def summary(self) -> str:
        mb = self.nbytes / 2**20
        return (f"{len(self)} Q tensors over {len(self.layers())} layers x {len(self.slots())} "
                f"slots: {mb:.2f} MiB")


class _StepPassPolicy(Policy):
    """A policy limited to some steps (`self.steps`) and passes (`self.passes`)."""

    steps: StepFilter = None
    passes: frozenset[str] | None = None

    def applies(self, layer: str, ctx: CallContext) -> bool:
        return (
            super().applies(layer, ctx)
            and (self.passes is None or ctx.pass_name in self.passes)
            and _step_ok(self.steps, ctx)
        )


class RecordQ(_StepPassPolicy):
    """Store Q of the given layers into a `QCache` (Q itself passes through unchanged).

    steps: which steps to record (container of step indices, a predicate, or None = all).
    passes: which pass names to record (None = all).
    slot: ctx -> cache slot (default: the step index).
    """

    def __init__(
        self,
        cache: QCache,
        layers: Iterable[str] | None = None,
        steps: StepFilter = None,
        passes: Iterable[str] | None = None,
        slot: Callable[[CallContext], int] | None = None,
    ) -> None:
        self.cache = cache
        self.layers = frozenset(layers) if layers is not None else None
        self.steps = steps
        self.passes = frozenset(passes) if passes is not None else None
        self.slot = slot or (lambda ctx: ctx.step)

    def on_query(self, layer: str, q: torch.Tensor, ctx: CallContext) -> torch.Tensor:
        self.cache.put(layer, self.slot(ctx), ctx.pass_name, q)
        return q


class InjectQ(_StepPassPolicy):
    """Replace Q of the given layers with recorded Q from a `QCache`.

    steps: when to inject (container of step indices, predicate, or None = always).
    slot: ctx -> cache slot to read (default: the step index; `lambda ctx: 0` for one recording).
    source_pass: pass name to read from the cache (None: the current pass's own name, as when
        re-injecting a generation's own Q).
    passes: pass names to inject into (None = all: cond and uncond).
    items: batch indices to replace (None = all). A recorded batch of 1 is broadcast.
    strict: a missing recording raises (True) or leaves Q unchanged (False).
    """

    def __init__(
        self,
        cache: QCache,
        layers: Iterable[str] | None = None,
        steps: StepFilter = None,
        slot: Callable[[CallContext], int] | None = None,
        source_pass: str | None = None,
        passes: Iterable[str] | None = None,
        items: list[int] | None = None,
        strict: bool = True,
    ) -> None:
        self.cache = cache
        self.layers = frozenset(layers) if layers is not None else None
        self.steps = steps
        self.slot = slot or (lambda ctx: ctx.step)
        self.source_pass = source_pass
        self.passes = frozenset(passes) if passes is not None else None
        self.items = items
        self.strict = strict
        #: Number of replacements made (tests and diagnostics).
        self.count = 0

    def on_query(self, layer: str, q: torch.Tensor, ctx: CallContext) -> torch.Tensor:
        slot, src = self.slot(ctx), self.source_pass or ctx.pass_name
        rec = self.cache.get(layer, slot, src)
        if rec is None:
            if self.strict:
                raise KeyError(f"no recorded Q for layer {layer}, slot {slot}, pass {src!r}")
            return q
        if rec.shape[1:] != q.shape[1:]:
            raise ValueError(
                f"recorded Q of {layer} has shape {tuple(rec.shape)} but the generation's is "
                f"{tuple(q.shape)}: record and generate at the same frames and size"
            )
        rec = rec.to(device=q.device, dtype=q.dtype)
        self.count += 1
        if self.items is None:
            return rec.expand_as(q) if rec.shape[0] == 1 else rec
        q = q.clone()
        idx = torch.as_tensor(self.items, device=q.device)
        q[idx] = rec.expand(len(self.items), *rec.shape[1:]) if rec.shape[0] == 1 else rec[idx]
        return q
