"""Wan self-attention processor with controller hooks, and `install()` to put it in place.

`ControlledWanAttnProcessor` is a copy of diffusers 0.42.1 `WanAttnProcessor.__call__` with
three hook points (marked HOOK below):

1. Q, after `norm_q` and the unflatten to (batch, tokens, heads, head_dim), either before the
   rotary embedding (`inject_at="pre_rotary"`, the default) or after it ("post_rotary");
2. K/V extension, after rotary (extra keys carry their own positions), before attention; a
   `GroupedKVExtension` (framewise shared attention) is attended group by group
   (`grouped_attention`), so no (tokens x extra) mask is built;
3. the attention output, before `to_out`.

When the controller has no policy (`controller.active` is False) none of the hooks runs and
the arithmetic is exactly the stock processor's, so outputs are bit-identical.

Pre- vs post-rotary: when the reference and the target have the same size (always, in motion
transfer) replacing Q before or after rotary gives the same result up to rounding, because the
rotary embedding depends only on the token position. The difference matters once Q moves
between positions (Q-Flow correspondences): pre-rotary Q is position-free content.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.models.transformers.transformer_wan import (
    _get_added_kv_projections,
    _get_qkv_projections,
)

from motionq.control.controller import AttentionController, GroupedKVExtension

INJECT_POINTS = ("pre_rotary", "post_rotary")


def _apply_rotary_emb(
    hidden_states: torch.Tensor, freqs_cos: torch.Tensor, freqs_sin: torch.Tensor
) -> torch.Tensor:
    # Verbatim from diffusers' WanAttnProcessor (a closure there).
    x1, x2 = hidden_states.unflatten(-1, (-1, 2)).unbind(-1)
    cos = freqs_cos[..., 0::2]
    sin = freqs_sin[..., 1::2]
    out = torch.empty_like(hidden_states)
    out[..., 0::2] = x1 * cos - x2 * sin
    out[..., 1::2] = x1 * sin + x2 * cos
    return out.type_as(hidden_states)


class ControlledWanAttnProcessor:
    """Drop-in replacement of diffusers' `WanAttnProcessor` that consults a controller."""

    # Set by diffusers' `set_attention_backend` / context parallel, as on the stock processor.
    _attention_backend = None
    _parallel_config = None

    def __init__(
        self, controller: AttentionController, layer_name: str, inject_at: str = "pre_rotary"
    ) -> None:
        if not hasattr(F, "scaled_dot_product_attention"):
            raise ImportError("ControlledWanAttnProcessor requires PyTorch 2.0 or newer.")
        if inject_at not in INJECT_POINTS:
            raise ValueError(f"inject_at must be one of {INJECT_POINTS}, got {inject_at!r}")
        self.controller = controller
        self.layer_name = layer_name
        self.inject_at = inject_at

    def __call__(
        self,
        attn,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        ctl = self.controller
        active = ctl.active
        ctx = ctl.context if active else None

        encoder_hidden_states_img = None
        if attn.add_k_proj is not None:
            # 512 is the context length of the text encoder, hardcoded for now
            image_context_length = encoder_hidden_states.shape[1] - 512
            encoder_hidden_states_img = encoder_hidden_states[:, :image_context_length]
            encoder_hidden_states = encoder_hidden_states[:, image_context_length:]

        query, key, value = _get_qkv_projections(attn, hidden_states, encoder_hidden_states)

        query = attn.norm_q(query)
        key = attn.norm_k(key)

        query = query.unflatten(2, (attn.heads, -1))
        key = key.unflatten(2, (attn.heads, -1))
        value = value.unflatten(2, (attn.heads, -1))

        # HOOK 1a: Q before rotary.
        if active and self.inject_at == "pre_rotary":
            query = ctl.on_query(self.layer_name, query, ctx)

        if rotary_emb is not None:
            query = _apply_rotary_emb(query, *rotary_emb)
            key = _apply_rotary_emb(key, *rotary_emb)

        # HOOK 1b: Q after rotary.
        if active and self.inject_at == "post_rotary":
            query = ctl.on_query(self.layer_name, query, ctx)

        # HOOK 2: extra keys/values (subject-driven shared attention), with a mask.
        grouped = None
        if active:
            key, value, extra_mask = ctl.extend_kv(self.layer_name, query, key, value, ctx)
            if isinstance(extra_mask, GroupedKVExtension):  # framewise: attend group by group
                grouped, extra_mask = extra_mask, None
                if attention_mask is not None:
                    raise NotImplementedError("K/V extension on a layer that already has a mask")
            if extra_mask is not None:
                if attention_mask is not None:  # Wan passes none to attn1; don't guess a merge
                    raise NotImplementedError("K/V extension on a layer that already has a mask")
                attention_mask = extra_mask

        # I2V task
        hidden_states_img = None
        if encoder_hidden_states_img is not None:
            key_img, value_img = _get_added_kv_projections(attn, encoder_hidden_states_img)
            key_img = attn.norm_added_k(key_img)

            key_img = key_img.unflatten(2, (attn.heads, -1))
            value_img = value_img.unflatten(2, (attn.heads, -1))

            hidden_states_img = dispatch_attention_fn(
                query,
                key_img,
                value_img,
                attn_mask=None,
                dropout_p=0.0,
                is_causal=False,
                backend=self._attention_backend,
                parallel_config=None,
            )
            hidden_states_img = hidden_states_img.flatten(2, 3)
            hidden_states_img = hidden_states_img.type_as(query)

        if grouped is not None:
            hidden_states = grouped_attention(query, key, value, grouped, self._attention_backend)
        else:
            hidden_states = dispatch_attention_fn(
                query,
                key,
                value,
                attn_mask=attention_mask,
                dropout_p=0.0,
                is_causal=False,
                backend=self._attention_backend,
                parallel_config=(self._parallel_config if encoder_hidden_states is None else None),
            )
        hidden_states = hidden_states.flatten(2, 3)
        hidden_states = hidden_states.type_as(query)

        if hidden_states_img is not None:
            hidden_states = hidden_states + hidden_states_img

        # HOOK 3: attention output (batch, tokens, heads * head_dim) before the projection.
        if active:
            hidden_states = ctl.on_output(self.layer_name, hidden_states, ctx)

        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        return hidden_states


def grouped_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    ext: GroupedKVExtension,
    backend=None,
) -> torch.Tensor:
    """Attention where query group g (of G equal consecutive token groups) sees the layer's own
    keys plus `ext.key[:, g]`: one attention call per group, so memory stays at one group's
    (tokens/G x (tokens + M)) scores instead of a (tokens x (tokens + G*M)) mask.
    query (B, S, H, D), key/value (B, S, H, D); returns (B, S, H, D)."""
    s = query.shape[1]
    g = ext.groups
    if s % g:
        raise ValueError(f"{s} query tokens do not split into {g} equal groups")
    per = s // g
    outs = []
    for i in range(g):
        k_i = torch.cat([key, ext.key[:, i].to(key.dtype)], 1)
        v_i = torch.cat([value, ext.value[:, i].to(value.dtype)], 1)
        mask = ext.group_mask(i, key.shape[1], query.dtype)
        outs.append(dispatch_attention_fn(
            query[:, i * per:(i + 1) * per], k_i, v_i, attn_mask=mask, dropout_p=0.0,
            is_causal=False, backend=backend, parallel_config=None,
        ))
    return torch.cat(outs, 1)


def layer_name(block: int) -> str:
    """The controller's name for the self-attention of transformer block `block`."""
    return f"blocks.{block}.attn1"


def install(
    transformer: torch.nn.Module,
    controller: AttentionController,
    blocks: Iterable[int],
    inject_at: str = "pre_rotary",
) -> Callable[[], None]:
    """Put controlled processors on `blocks.{i}.attn1` (self-attention) of the given blocks,
    keep every other processor (cross-attention `attn2` included) as it is, and attach the
    controller's step-tracking pre-hook. Returns a function that restores the previous
    processors and removes the hook.
    """
    blocks = sorted(set(int(b) for b in blocks))
    num_layers = len(transformer.blocks)
    bad = [b for b in blocks if not 0 <= b < num_layers]
    if bad:
        raise ValueError(f"blocks {bad} out of range: the transformer has {num_layers} blocks (0..{num_layers - 1})")
    previous = dict(transformer.attn_processors)
    processors = dict(previous)
    for b in blocks:
        key = f"{layer_name(b)}.processor"
        stock = previous[key]
        proc = ControlledWanAttnProcessor(controller, layer_name(b), inject_at)
        # keep an attention backend chosen with `set_attention_backend`
        proc._attention_backend = getattr(stock, "_attention_backend", None)
        proc._parallel_config = getattr(stock, "_parallel_config", None)
        processors[key] = proc
    transformer.set_attn_processor(processors)
    detach = controller.attach(transformer)

    def restore() -> None:
        detach()
        transformer.set_attn_processor(dict(previous))

    return restore
