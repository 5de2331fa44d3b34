"""Unit tests of the multi-shot building blocks on synthetic data: Q-Flow, subject masks,
the SDSA mask and grouped (framewise) attention. No model except where the token order of
the real transformer is checked."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from motionq.control.controller import GroupedKVExtension
from motionq.control.processors import grouped_attention
from motionq.methods import masks as M
from motionq.methods.qflow import QFlow, correspondences, keyframe_weight, keyframes, qflow
from motionq.methods.sdsa import build_sdsa_index, sdsa_dense_mask, visible_tokens


# ------------------------------------------------------------------------------------ Q-Flow

def test_keyframes_and_weights():
    assert keyframes(9, 3) == [0, 3, 6, 8]  # every 3rd plus the last
    assert keyframes(3, 2) == [0, 2]
    assert keyframes(5, 1) == [0, 1, 2, 3, 4]
    assert keyframes(1, 4) == [0]
    with pytest.raises(ValueError):
        keyframes(5, 0)
    # linear: a nearest-keyframe weight (1 at A, 0.5 halfway, -> 0 at B)
    assert keyframe_weight(1, 0, 2) == 0.5
    assert keyframe_weight(1, 0, 4) == 0.75 and keyframe_weight(3, 0, 4) == 0.25
    # the paper's sigmoid stays in (0.5, 0.73): it always favours A
    for f in (1, 2, 3):
        w = keyframe_weight(f, 0, 4, "paper")
        assert 0.5 < w < 1 / (1 + math.exp(-1)) + 1e-9
    assert keyframe_weight(3, 0, 4, "paper") > 0.5  # next to B and still A-heavy
    with pytest.raises(ValueError):
        keyframe_weight(1, 0, 2, "cubic")


def test_correspondences_are_argmax_cosine():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    b = torch.tensor([[0.0, 5.0], [3.0, 3.1], [2.0, 0.1]])
    assert correspondences(a, b).tolist() == [2, 0, 1]


def test_qflow_moves_keyframe_q_along_vanilla_correspondences():
    frames, per, heads, dim = 3, 4, 2, 3
    torch.manual_seed(0)
    # vanilla: frame 1 is frame 0 with tokens permuted, frame 2 another permutation
    base = torch.randn(per, heads * dim)
    p1, p2 = torch.tensor([2, 0, 3, 1]), torch.tensor([1, 3, 0, 2])
    van = torch.stack([base, base[p1], base[p2]]).reshape(frames * per, heads, dim)
    q = torch.randn(frames * per, heads, dim)
    out = qflow(q, van, frames, keyframe_every=2)  # keyframes 0 and 2
    qf = q.reshape(frames, per, heads, dim)
    inv2 = torch.argsort(p2)
    expected = 0.5 * qf[0][p1] + 0.5 * qf[2][inv2[p1]]
    torch.testing.assert_close(out.reshape(frames, per, heads, dim)[1], expected)
    # keyframes keep their own Q
    torch.testing.assert_close(out.reshape(frames, per, heads, dim)[[0, 2]], qf[[0, 2]])
    # every frame a keyframe: the identity (the same tensor)
    assert qflow(q, van, frames, keyframe_every=1) is q


def test_qflow_policy_rows_and_identity():
    from motionq.control.controller import CallContext, QCache

    cache = QCache()
    torch.manual_seed(1)
    van = torch.randn(2, 12, 2, 3)
    cache.put("L", 4, "cond", van)
    q = torch.randn(2, 12, 2, 3)
    ctx = CallContext(step=4, pass_name="cond", batch_size=2)
    pol = QFlow(cache, ["L"], [4], items=[1], frames=3, keyframe_every=2)
    assert pol.applies("L", ctx) and not pol.applies("L", CallContext(step=3))
    out = pol.on_query("L", q, ctx)
    assert torch.equal(out[0], q[0])  # row 0 not an item
    torch.testing.assert_close(out[1], qflow(q[1], van[1], 3, 2))
    assert not QFlow(cache, ["L"], [4], [0, 1], 3, 1).applies("L", ctx)  # identity: never applies


# ------------------------------------------------------------------------------------ masks

def test_otsu_splits_two_modes():
    rs = np.random.RandomState(0)
    v = np.concatenate([rs.normal(0.2, 0.03, 500), rs.normal(0.8, 0.03, 100)]).clip(0, 1)
    t = M.otsu_threshold(v)
    assert v[:500].max() < t <= v[500:].min() and 0.4 < t < 0.6  # the middle of the gap
    m = M.threshold_masks(v.reshape(6, 10, 10))
    assert m.sum() == (v >= t).sum() and 90 <= m.sum() <= 110
    assert not M.threshold_masks(np.full((2, 2, 2), 0.5)).any()  # no signal: empty mask


def test_token_order_of_the_transformer_is_frame_height_width(tiny_backbone):
    """A marker at latent (frame 1, token row 1, token column 0) lands at token index
    1*h*w + 1*w + 0 after Wan's patchify, which is how masks are reshaped."""
    tr = tiny_backbone.pipe.transformer
    f, H, W = 3, 8, 8  # latent frames / height / width -> tokens (3, 4, 4)
    x = torch.zeros(1, tr.config.in_channels, f, H, W)
    with torch.no_grad():
        base = tr.patch_embedding(x).flatten(2).transpose(1, 2)
        x[0, :, 1, 2:4, 0:2] = 1.0  # token (1, 1, 0)
        marked = tr.patch_embedding(x).flatten(2).transpose(1, 2)
    changed = torch.nonzero((marked - base).abs().sum(-1)[0] > 0).flatten().tolist()
    assert changed == [1 * 4 * 4 + 1 * 4 + 0]
    # and the accumulator reshapes in that order
    acc = M.SubjectMaskAccumulator([[[0]]], (3, 4, 4), lambda ctx: True)
    acc.add(lambda pos, i: [torch.arange(48, dtype=torch.float32)], 1)
    soft = acc.soft_map(0, 0)
    assert soft.shape == (3, 4, 4) and soft[1, 1, 0] == 20 and soft[2, 3, 1] == 2 * 16 + 3 * 4 + 1


def test_subject_token_positions(tiny_backbone):
    tok = tiny_backbone.pipe.tokenizer
    assert M.subject_token_positions(tok, "a red cat moves left", "red cat", 16) == [1, 2]
    # every occurrence counts
    assert M.subject_token_positions(tok, "a cat and a cat", "a cat", 16) == [0, 1, 3, 4]
    # no contiguous match: the subject's words wherever they are
    assert M.subject_token_positions(tok, "a cat that is red", "red cat", 16) == [1, 4]
    # truncated away
    assert M.subject_token_positions(tok, "a red cat moves left", "left", 4) == []
    assert M.subject_token_positions(tok, "a red cat", "", 16) == []


def test_overlapping_character_masks_become_exclusive():
    # two characters whose Otsu masks both claim token (0, 0, 1): the stronger attention keeps it
    hard = np.zeros((2, 1, 1, 3), bool)
    hard[0, 0, 0, :2] = True  # character 0: tokens 0, 1
    hard[1, 0, 0, 1:] = True  # character 1: tokens 1, 2
    soft = np.zeros((2, 1, 1, 3), np.float32)
    soft[0, 0, 0] = [1.0, 0.4, 0.0]
    soft[1, 0, 0] = [0.0, 0.9, 1.0]
    out = M.exclusive(hard, soft)
    assert out[0, 0, 0].tolist() == [True, False, False]
    assert out[1, 0, 0].tolist() == [False, True, True]
    assert np.array_equal(M.exclusive(hard[:1], soft[:1]), hard[:1])  # one character: unchanged
    assert not (out[0] & out[1]).any()


def test_upsample_and_fit_masks():
    m = np.zeros((3, 2, 2), bool)
    m[1, 0, 1] = True
    up = M.upsample_masks(m, 9, 32, 32)
    assert up.shape == (9, 32, 32) and up.dtype == np.float32
    assert up[4, :16, 16:].min() == 1.0 and up[4].sum() == 16 * 16  # middle frame: top-right block
    assert up[0].sum() == 0 and up[8].sum() == 0
    # a pixel mask back to tokens
    back = M.fit_masks(up, (3, 2, 2))
    assert np.array_equal(back, m)
    assert np.array_equal(M.fit_masks(m, (3, 2, 2)), m)
    with pytest.raises(ValueError):
        M.fit_masks(np.zeros((4, 4)), (1, 2, 2))
    assert M.map_frame(4, 9, 3) == 1 and M.map_frame(8, 9, 3) == 2 and M.map_frame(0, 1, 5) == 0


def test_default_mask_blocks():
    assert M.default_mask_blocks(30) == list(range(7, 23))
    assert M.default_mask_blocks(6) == [1, 2, 3, 4]
    assert M.default_mask_blocks(2) == [0, 1]
    assert M.default_mask_blocks(1) == [0]


# ------------------------------------------------------------------------------------ SDSA

def _synthetic():
    """3 shots x 2 characters x 2 frames x 2 tokens per frame.
    shot 0 has {cat}, shot 1 has {cat, dog}, shot 2 has {dog}."""
    n, c, frames, per = 3, 2, 2, 2
    subject = torch.zeros(n, c, frames * per, dtype=torch.bool)
    has = torch.tensor([[1, 0], [1, 1], [0, 1]], dtype=torch.bool)
    subject[0, 0] = torch.tensor([1, 0, 0, 1])  # cat: frame 0 token 0, frame 1 token 1
    subject[1, 0] = torch.tensor([0, 1, 0, 0])  # cat: frame 0 token 1
    subject[1, 1] = torch.tensor([0, 0, 1, 0])  # dog: frame 1 token 0
    subject[2, 1] = torch.tensor([1, 1, 1, 1])  # dog everywhere
    return subject, has, frames


def test_sdsa_mask_is_false_exactly_where_it_should_be():
    subject, has, frames = _synthetic()
    mask = sdsa_dense_mask(subject, has, frames)  # (3, 4, 12)
    s = 4
    expected = torch.zeros(3, s, 3 * s, dtype=torch.bool)
    # shot 0 (cat) sees shot 1's cat token (frame 0, token 1) from its frame-0 queries only;
    # never shot 1's dog token, never shot 2 (no shared character), never itself
    expected[0, 0:2, 1 * s + 1] = True
    # shot 1 (cat, dog) sees shot 0's cat tokens (frame 0 token 0; frame 1 token 1) and
    # every dog token of shot 2, framewise
    expected[1, 0:2, 0 * s + 0] = True
    expected[1, 2:4, 0 * s + 3] = True
    expected[1, 0:2, 2 * s + 0] = True
    expected[1, 0:2, 2 * s + 1] = True
    expected[1, 2:4, 2 * s + 2] = True
    expected[1, 2:4, 2 * s + 3] = True
    # shot 2 (dog) sees shot 1's dog token (frame 1 token 0), not its cat token
    expected[2, 2:4, 1 * s + 2] = True
    assert torch.equal(mask, expected)
    # the compact index realises the same mask, padded where lists are shorter
    index = build_sdsa_index(subject, has, frames)
    assert torch.equal(index.dense_mask(), expected)
    assert index.extra == 3  # shot 1 frame 1: shot 0's token 3, shot 2's tokens 2 and 3
    assert not bool(index.valid[0, 1].any())  # shot 0 frame 1 sees nothing
    assert index.rows_with_extension() == [0, 1, 2]
    # no shared subject at all: empty
    empty = build_sdsa_index(torch.zeros_like(subject), has, frames)
    assert empty.empty and empty.extra == 0
    vis = visible_tokens(subject, has)
    assert not vis[0, 2].any() and not vis[2, 0].any() and not vis[1, 1].any()


def test_grouped_attention_equals_masked_attention():
    """The framewise path computes exactly softmax over (own keys + the frame's valid extras);
    hidden extras contribute nothing (a -inf score)."""
    subject, has, frames = _synthetic()
    index = build_sdsa_index(subject, has, frames)
    torch.manual_seed(0)
    b, s, h, d = 3, 4, 2, 5
    q, k, v = (torch.randn(b, s, h, d) for _ in range(3))
    ext = index.gather(k, v)
    assert isinstance(ext, GroupedKVExtension) and ext.key.shape == (3, 2, 3, h, d)
    grouped = grouped_attention(q, k, v, ext)
    dense = ext.dense(s)
    keys, values = torch.cat([k, dense.key], 1), torch.cat([v, dense.value], 1)
    mask = dense.mask
    assert mask.shape == (b, 1, s, s + 2 * 3) and mask[..., :s].all()  # own keys always visible
    ref = F.scaled_dot_product_attention(q.transpose(1, 2), keys.transpose(1, 2), values.transpose(1, 2),
                                         attn_mask=mask).transpose(1, 2)
    torch.testing.assert_close(grouped, ref, rtol=1e-5, atol=1e-6)
    # by hand for shot 0, frame 1: no valid extra -> plain self-attention over its own keys
    own = F.scaled_dot_product_attention(q[:1, 2:].transpose(1, 2), k[:1].transpose(1, 2),
                                         v[:1].transpose(1, 2)).transpose(1, 2)
    torch.testing.assert_close(grouped[:1, 2:], own, rtol=1e-5, atol=1e-6)
    # the additive view of the mask: -inf exactly where False
    additive = torch.zeros(mask.shape).masked_fill(~mask, float("-inf"))
    assert torch.isinf(additive).sum() == (~mask).sum()


def test_shared_key_weight_counts_each_extra_key_as_that_many_own_keys():
    """With weight w, a valid extra key attends exactly like w copies of it among plain keys;
    dense and framewise paths agree; hidden extras stay hidden; weight 1 is the plain path."""
    from motionq.methods.sdsa import shared_key_bias

    subject, has, frames = _synthetic()
    index = build_sdsa_index(subject, has, frames)
    torch.manual_seed(1)
    b, s, h, d = 3, 4, 2, 5
    q, k, v = (torch.randn(b, s, h, d) for _ in range(3))
    plain = grouped_attention(q, k, v, index.gather(k, v))
    torch.testing.assert_close(grouped_attention(q, k, v, index.gather(k, v, shared_key_bias(1.0))), plain)
    ext = index.gather(k, v, shared_key_bias(3.0))
    grouped = grouped_attention(q, k, v, ext)
    dense = ext.dense(s)
    assert dense.mask.dtype.is_floating_point
    ref = F.scaled_dot_product_attention(
        q.transpose(1, 2), torch.cat([k, dense.key], 1).transpose(1, 2),
        torch.cat([v, dense.value], 1).transpose(1, 2), attn_mask=dense.mask).transpose(1, 2)
    torch.testing.assert_close(grouped, ref, rtol=1e-5, atol=1e-6)
    # by hand: shot 0's frame with valid extras == plain attention where every extra key is
    # repeated 3 times
    g = next(f for f in range(frames) if bool(index.valid[0, f].any()))
    per = s // frames
    sel = index.valid[0, g]
    ek, ev = ext.key[0, g][sel], ext.value[0, g][sel]
    keys = torch.cat([k[0]] + [ek] * 3)[None]
    values = torch.cat([v[0]] + [ev] * 3)[None]
    qg = q[:1, g * per:(g + 1) * per]
    by_hand = F.scaled_dot_product_attention(qg.transpose(1, 2), keys.transpose(1, 2),
                                             values.transpose(1, 2)).transpose(1, 2)
    torch.testing.assert_close(grouped[:1, g * per:(g + 1) * per], by_hand, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(grouped, plain)
    with pytest.raises(ValueError):
        shared_key_bias(0.0)
