"""Sprite world: sampling, rendering and captions."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from motionq.spriteworld import (
    BACKGROUND_RGB,
    COLOUR_RGB,
    MOTIONS,
    SHAPES,
    VOCABULARY,
    Background,
    Character,
    Scene,
    WorldConfig,
    caption,
    characters_apart,
    identity_phrase,
    motion_phrase,
    parse_caption,
    render_scene,
    sample_batch,
    sample_clip,
    sample_scene,
    tokenize_words,
    trajectory,
    upscale,
)
from motionq.spriteworld.world import SHAPE_AREA


def _scenes(cfg: WorldConfig, n: int, seed: int = 0) -> list[Scene]:
    rng = np.random.default_rng(seed)
    return [sample_scene(rng, cfg) for _ in range(n)]


def test_same_seed_same_clip():
    cfg = WorldConfig(p_two=0.5, pan=True)
    a, b = sample_clip(123, cfg), sample_clip(123, cfg)
    assert np.array_equal(a.frames, b.frames)
    assert a.scene == b.scene and a.caption == b.caption
    c = sample_clip(124, cfg)
    assert not np.array_equal(a.frames, c.frames)


def test_batch_deterministic_and_matches_render():
    cfg = WorldConfig()
    x1, c1, s1 = sample_batch(np.random.default_rng(7), cfg, 16)
    x2, c2, s2 = sample_batch(np.random.default_rng(7), cfg, 16)
    assert x1.shape == (16, 8, 32, 32, 3) and x1.dtype == np.float32
    assert np.array_equal(x1, x2) and c1 == c2 and s1 == s2
    assert 0.0 <= x1.min() and x1.max() <= 1.0
    # Float frames are exactly the uint8 render / 255, so the analyser reads training data.
    assert np.allclose(x1[3] * 255.0, render_scene(s1[3]), atol=1e-3)
    u8, _, _ = sample_batch(np.random.default_rng(7), cfg, 16, as_float=False)
    assert u8.dtype == np.uint8 and np.array_equal(u8[5], render_scene(s1[5]))


@pytest.mark.parametrize("cfg", [
    WorldConfig(p_two=0.5),
    WorldConfig(height=64, width=48, num_frames=12, p_two=0.5, pan=True),
])
def test_sprites_stay_fully_inside_canvas(cfg: WorldConfig):
    for scene in _scenes(cfg, 300):
        for ch in scene.characters:
            p = trajectory(ch, scene.num_frames)
            half = ch.size / 2
            assert p[:, 0].min() - half >= 0 and p[:, 0].max() + half <= scene.width
            assert p[:, 1].min() - half >= 0 and p[:, 1].max() + half <= scene.height
    # Rendered coverage of a sprite equals its full area in every frame: nothing is clipped.
    for scene in _scenes(cfg, 40, seed=1)[:40]:
        ch = scene.characters[0]
        one = dataclasses.replace(scene, characters=(ch,))
        empty = dataclasses.replace(scene, characters=())
        img = render_scene(one).astype(np.float64)
        bg = render_scene(empty).astype(np.float64)
        e = np.asarray(COLOUR_RGB[ch.colour], dtype=np.float64) - bg
        alpha = ((img - bg) * e).sum(-1) / (e * e).sum(-1)
        area = alpha.reshape(scene.num_frames, -1).sum(1)
        np.testing.assert_allclose(area, SHAPE_AREA[ch.shape] * ch.size ** 2, rtol=0.06)


def test_two_characters_differ_and_never_touch():
    cfg = WorldConfig(p_two=1.0)
    scenes = _scenes(cfg, 300)
    assert all(len(s.characters) == 2 for s in scenes)
    for s in scenes:
        a, b = s.characters
        assert a.colour != b.colour  # distinct_colours=True by default
        assert characters_apart(a, b, s.num_frames, cfg.min_gap - 1e-6)
    same = _scenes(WorldConfig(p_two=1.0, distinct_colours=False), 300)
    assert all(s.characters[0].identity != s.characters[1].identity for s in same)
    assert any(s.characters[0].colour == s.characters[1].colour for s in same)


def test_distribution_covers_the_world():
    cfg = WorldConfig()
    scenes = _scenes(cfg, 1500)
    chars = [c for s in scenes for c in s.characters]
    assert {c.shape for c in chars} == set(SHAPES)
    assert {c.colour for c in chars} == set(cfg.colours)
    assert {c.motion for c in chars} == set(MOTIONS)
    assert {s.background.colour for s in scenes} == set(BACKGROUND_RGB)
    share_two = np.mean([len(s.characters) == 2 for s in scenes])
    assert 0.2 < share_two < 0.3
    for c in chars:
        assert 9 <= c.size <= 11
        if c.motion in ("left", "right", "up", "down", "up-left", "up-right", "down-left",
                        "down-right", "bounce", "zigzag"):
            assert 2.0 <= c.speed <= 3.0
    # No sprite colour is ever a background colour (and vice versa).
    assert not set(COLOUR_RGB) & set(BACKGROUND_RGB)


def test_sizes_and_speeds_scale_with_canvas():
    cfg = WorldConfig(height=64, width=64)
    chars = [c for s in _scenes(cfg, 300) for c in s.characters]
    assert min(c.size for c in chars) >= 18 and max(c.size for c in chars) <= 22
    lin = [c.speed for c in chars if c.motion in ("left", "right", "up", "down")]
    assert min(lin) >= 4.0 and max(lin) <= 6.0


def test_motion_shapes():
    base = dict(shape="circle", colour="red", size=9.0, start=(16.0, 16.0))
    p = trajectory(Character(motion="up-right", speed=2.0, **base), 8)
    d = np.diff(p, axis=0)
    assert np.allclose(np.hypot(d[:, 0], d[:, 1]), 2.0) and np.all(d[:, 0] > 0)
    assert np.all(d[:, 1] < 0)
    zz = trajectory(Character(motion="zigzag", speed=2.0, amplitude=4.0, heading=-1, **base), 8)
    dy = np.diff(zz[:, 1])
    assert np.allclose(np.abs(dy), 2.0)
    assert list(np.sign(dy)) == [-1, -1, 1, 1, -1, -1, 1]  # direction flips every 2 frames
    assert np.allclose(np.diff(zz[:, 0]), -2.0)
    b = trajectory(Character(motion="bounce", speed=2.0, amplitude=6.0, **base), 8)
    assert b[:, 1].max() == pytest.approx(16.0) and b[:, 1].min() < 11.0  # hops up from ground
    c = trajectory(Character(motion="circle", speed=2 * np.pi * 7 / 8, amplitude=7.0, **base), 8)
    centre = c.mean(axis=0)
    assert np.allclose(np.hypot(*(c - centre).T), 7.0, atol=1e-6)
    s = trajectory(Character(motion="stay", speed=0.0, **base), 8)
    assert np.allclose(s, [16.0, 16.0])


def test_an_explicit_path_overrides_the_motion_formula():
    from dataclasses import replace

    from motionq.spriteworld import analyse
    from motionq.spriteworld.world import trajectory

    cfg = WorldConfig(num_frames=6, p_two=0.0, motions=("right",))
    scene = sample_scene(np.random.default_rng(3), cfg)
    path = ((0.0, 0.0), (3.0, 0.0), (6.0, 0.0), (6.0, 3.0), (6.0, 6.0), (6.0, 9.0))  # across, then down
    ch = replace(scene.characters[0], start=(10.0, 8.0), path=path)
    np.testing.assert_allclose(trajectory(ch, 6), np.asarray(path) + [10.0, 8.0])
    frames = render_scene(replace(scene, characters=(ch,)))
    track = analyse(frames).characters[0]
    np.testing.assert_allclose(track.centroids - track.centroids[0], np.asarray(path), atol=0.3)
    with pytest.raises(ValueError, match="6 frames, 8 asked"):
        trajectory(ch, 8)


def test_background_variants_render():
    ch = Character("square", "red", 9.0, "stay", 0.0, (8.0, 8.0))
    plain = Scene((ch,), Background("navy"), 4, 32, 32)
    ground = Scene((ch,), Background("navy", gradient=True, ground=True, ground_level=0.8), 4,
                   32, 32)
    pan = Scene((ch,), Background("navy", dots=((0.5, 0.5), (0.2, 0.7))), 4, 32, 32,
                pan=(1.0, 0.0))
    a, b, c = render_scene(plain), render_scene(ground), render_scene(pan)
    assert np.all(a[:, :, 20:] == np.array(BACKGROUND_RGB["navy"], np.uint8))
    assert b[0, 0, 20].sum() > b[0, 20, 20].sum() > b[0, 31, 20].sum()  # gradient
    assert b[0, 25, 20].sum() > b[0, 24, 20].sum()  # ground line at row 0.8 * 32
    assert not np.array_equal(c[0], c[1])  # texture moves with the pan
    assert np.array_equal(c[:, :4, :4], a[:, :4, :4])  # sprite area untouched by the pan


def test_upscale():
    x = np.arange(2 * 3 * 4 * 3, dtype=np.uint8).reshape(2, 3, 4, 3)
    y = upscale(x, 3)
    assert y.shape == (2, 9, 12, 3)
    assert np.array_equal(y[:, ::3, ::3], x)
    assert upscale(x, 1) is x


# ------------------------------------------------------------------------------- captions


def test_phrases():
    assert identity_phrase("circle", "red") == "a red circle"
    assert identity_phrase("circle", "orange") == "an orange circle"
    assert identity_phrase("triangle", None) == "a triangle"
    assert identity_phrase(None, "green") == "a green thing"
    assert identity_phrase(None, None) == "a shape"
    assert motion_phrase("left") == "moves left"
    assert motion_phrase("up-right") == "moves up and right"
    assert motion_phrase("bounce", "right") == "bounces right"
    assert motion_phrase("circle") == "circles"
    assert motion_phrase("stay", plural=True) == "stay still"
    assert tokenize_words("A red-circle, moves LEFT.") == ["a", "red", "circle", "moves", "left"]


@pytest.mark.parametrize("pan", [False, True])
def test_captions_use_only_the_vocabulary(pan: bool):
    cfg = WorldConfig(p_two=0.5, pan=pan)
    rng = np.random.default_rng(3)
    vocab = set(VOCABULARY)
    assert all(w == w.lower() and w.isalpha() for w in VOCABULARY)
    used: set[str] = set()
    for scene in _scenes(cfg, 400, seed=5):
        for detail in ("random", "full", "partial"):
            words = tokenize_words(caption(scene, rng, detail, cfg))
            assert set(words) <= vocab
            used |= set(words)
    assert len(used) > 0.8 * len(vocab)


def test_caption_modes():
    cfg = WorldConfig()
    rng = np.random.default_rng(0)
    scenes = _scenes(cfg, 600)
    assert all(caption(s, rng, "none", cfg) == "" for s in scenes[:20])
    caps = [caption(s, rng, "random", cfg) for s in scenes]
    empty = np.mean([c == "" for c in caps])
    assert 0.05 < empty < 0.16
    # Motion words are always present (p_no_motion = 0).
    for s, c in zip(scenes, caps):
        if c:
            got = parse_caption(c)["characters"]
            assert len(got) == len(s.characters)
            assert all(g["motion"] == ch.motion for g, ch in zip(got, s.characters))


@pytest.mark.parametrize("pan", [False, True])
def test_parse_caption_inverts_full_captions(pan: bool):
    cfg = WorldConfig(p_two=0.5, pan=pan)
    rng = np.random.default_rng(11)
    for scene in _scenes(cfg, 500, seed=2):
        text = caption(scene, rng, "full", cfg)
        parsed = parse_caption(text)
        want = [{"shape": c.shape, "colour": c.colour, "motion": c.motion,
                 "direction": c.direction} for c in scene.characters]
        assert parsed["characters"] == want, text
        assert parsed["background"] == scene.background.colour, text
        assert parsed["pan"] == (None if not pan else
                                 ("left" if scene.pan[0] < 0 else "right")), text


def test_parse_partial_captions_ask_for_a_subset():
    cfg = WorldConfig(p_two=0.5)
    rng = np.random.default_rng(4)
    for scene in _scenes(cfg, 400, seed=9):
        text = caption(scene, rng, "partial", cfg)
        parsed = parse_caption(text)["characters"]
        assert len(parsed) == len(scene.characters), text
        dropped = 0
        for got, ch in zip(parsed, scene.characters):
            assert got["shape"] in (None, ch.shape) and got["colour"] in (None, ch.colour)
            assert got["motion"] == ch.motion
            dropped += (got["shape"] is None) + (got["colour"] is None)
        assert dropped >= 1, text


def test_parse_examples():
    p = parse_caption("a red triangle bounces to the right on a navy background")
    assert p == {"characters": [{"shape": "triangle", "colour": "red", "motion": "bounce",
                                 "direction": "right"}], "background": "navy", "pan": None}
    p = parse_caption("a blue square and a yellow diamond move up and to the left")
    assert [(c["shape"], c["colour"], c["motion"]) for c in p["characters"]] == [
        ("square", "blue", "up-left"), ("diamond", "yellow", "up-left")]
    p = parse_caption("something zigzags while a green thing circles")
    assert [(c["shape"], c["colour"], c["motion"]) for c in p["characters"]] == [
        (None, None, "zigzag"), (None, "green", "circle")]
    assert parse_caption("") == {"characters": [], "background": None, "pan": None}


def test_swap_subjects_gives_each_motion_to_the_other_character():
    from motionq.spriteworld import swap_subjects

    assert swap_subjects("a red circle moves left while an orange square bounces to the right on a navy "
                         "background") == ("an orange square moves left while a red circle bounces to the right "
                                           "on a navy background")
    assert swap_subjects("on a grey background something zigzags and a green thing circles") == (
        "on a grey background a green thing zigzags and something circles")
    # nothing to swap: one character, the same motion, subjects that name nothing, no motion
    assert swap_subjects("a red circle moves left") is None
    assert swap_subjects("a red circle moves left while a blue square slides to the left") is None
    assert swap_subjects("a red circle and a blue square move left") is None
    assert swap_subjects("a shape moves left while something stays still") is None
    assert swap_subjects("a red circle and a blue square on a navy background") is None
    cfg = WorldConfig(p_two=1.0)
    swapped = 0
    for seed in range(400):
        rng = np.random.default_rng(seed)
        text = caption(sample_scene(rng, cfg), rng, cfg=cfg)
        out = swap_subjects(text)
        if out is None:
            continue
        swapped += 1
        a, b = parse_caption(text), parse_caption(out)
        assert b["background"] == a["background"] and b["pan"] == a["pan"]
        (x, y), (p, q) = a["characters"], b["characters"]
        assert (p["shape"], p["colour"], p["motion"]) == (y["shape"], y["colour"], x["motion"]), (text, out)
        assert (q["shape"], q["colour"], q["motion"]) == (x["shape"], x["colour"], y["motion"]), (text, out)
    assert swapped > 100


def test_clause_roles_label_who_does_what():
    from motionq.spriteworld import clause_roles

    text = "on a navy background a red circle moves left while a shape bounces to the right as the camera pans up"
    roles = clause_roles(text)
    words = text.split(" ")
    by_word = {words[i]: (role, target) for i, role, target in roles}
    assert by_word["red"] == ("subject", "left") and by_word["circle"] == ("subject", "left")
    assert by_word["moves"] == ("motion", ("circle", "red"))
    assert by_word["bounces"] == ("motion", (None, None)) and by_word["shape"] == ("subject", "bounce")
    labelled = {i for i, _, _ in roles}
    assert not labelled & {0, 1, 2, 3, 9, 16, 17, 18, 19, 20}  # background, joiner, camera
    assert clause_roles("a red circle and a blue square move left") is None  # joint subject
    assert clause_roles("a red circle and a blue square") is None  # no motion
    cfg = WorldConfig(p_two=0.5)
    for seed in range(300):
        rng = np.random.default_rng(seed)
        text = caption(sample_scene(rng, cfg), rng, cfg=cfg)
        roles = clause_roles(text) if text else None
        if roles is None:
            continue
        asked = parse_caption(text)["characters"]
        assert {t for _, r, t in roles if r == "subject"} == {c["motion"] for c in asked}, text


def test_touching_pair_scene_puts_the_boxes_edge_to_edge():
    from motionq.spriteworld import touching_pair_scene

    for seed in range(6):
        scene = touching_pair_scene(seed, WorldConfig(), gap=0.0)
        a, b = scene.characters
        assert a.motion == b.motion == "stay" and a.colour != b.colour
        assert characters_apart(a, b, scene.num_frames, 0.0)  # touching, not overlapping
        assert not characters_apart(a, b, scene.num_frames, 0.01)
        assert not np.array_equal(render_scene(scene), render_scene(touching_pair_scene(seed, gap=1.0)))
