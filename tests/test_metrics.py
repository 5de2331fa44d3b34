"""Metrics on synthetic clips with known answers (motionq.metrics), and the benchmark sets."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from motionq import metrics as M
from motionq.spriteworld import WorldConfig, render_scene, sample_scene


def sprite(motion: str, shape: str = "square", colour: str = "red", seed: int = 0, bg: str = "navy",
           frames: int = 9) -> np.ndarray:
    """One character of known identity and motion, flat background."""
    cfg = WorldConfig(num_frames=frames, motions=(motion,), shapes=(shape,), colours=(colour,), p_two=0.0,
                      backgrounds=(bg,), p_gradient=0.0, p_ground=0.0)
    return render_scene(sample_scene(np.random.default_rng(seed), cfg))


def texture_pan(dx: float, dy: float, frames: int = 9, size: int = 32, seed: int = 0) -> np.ndarray:
    """A blocky random texture whose content moves by (dx, dy) px per frame (integer shifts)."""
    rng = np.random.default_rng(seed)
    big = np.kron(rng.integers(30, 220, (24, 24, 3)), np.ones((4, 4, 1))).astype(np.uint8)  # 96x96
    out = []
    for t in range(frames):
        x0, y0 = 32 - int(round(dx * t)), 32 - int(round(dy * t))
        out.append(big[y0:y0 + size, x0:x0 + size])
    return np.stack(out)


# ----------------------------------------------------------------------------- reading shots


def test_read_shot_exact_on_renders():
    r = M.read_shot(sprite("left", "triangle", "blue"))
    assert r.identity == ("triangle", "blue")
    assert r.motion == "left"
    assert r.centroids.shape == (9, 2) and r.canvas == 32.0
    empty = M.read_shot(np.full((9, 32, 32, 3), 20, np.uint8))
    assert empty.identity is None and empty.motion is None and empty.centroids is None


def test_prompt_parsing():
    assert M.prompt_motion("a shape moves up and left on a navy background") == "up-left"
    assert M.prompt_motion("something zigzags right on a grey background") == "zigzag"
    assert M.prompt_identity("a shape circles") == (None, None)
    assert M.prompt_identity("a red circle moves left") == ("circle", "red")


# ----------------------------------------------------------------------------- multi-shot


def test_identity_consistency_counts_pairs():
    a, b = ("circle", "red"), ("square", "blue")
    assert M.identity_consistency([a, a, a]) == 1.0
    assert M.identity_consistency([a, a, b]) == pytest.approx(1 / 3)
    assert M.identity_consistency([a, b]) == 0.0
    assert M.identity_consistency([a, a, None]) == pytest.approx(1 / 3)  # missing = inconsistent
    assert M.identity_consistency([None, None]) == 0.0
    assert math.isnan(M.identity_consistency([a]))


def test_identity_consistency_from_clips():
    same = [M.read_shot(sprite(m, "diamond", "green", seed=i)).identity
            for i, m in enumerate(("left", "up", "bounce"))]
    assert M.identity_consistency(same) == 1.0
    mixed = same[:2] + [M.read_shot(sprite("down", "cross", "green")).identity]
    assert M.identity_consistency(mixed) == pytest.approx(1 / 3)


def test_motion_adherence():
    assert M.motion_adherence(["left", "up", "circle"], ["left", "down", "circle"]) == pytest.approx(2 / 3)
    assert M.motion_adherence(["left", None], ["left", None]) == 0.5  # no asked motion never adheres
    assert math.isnan(M.motion_adherence([], []))
    with pytest.raises(ValueError):
        M.motion_adherence(["left"], [])
    asked = ["left", "zigzag", "circle", "up-right"]
    found = [M.read_shot(sprite(m, seed=i)).motion for i, m in enumerate(asked)]
    assert M.motion_adherence(asked, found) == 1.0


def test_displacement_path_normalised_and_interpolated():
    c = np.array([[10.0, 10.0], [np.nan, np.nan], [14.0, 10.0], [16.0, 12.0]])
    d = M.displacement_path(c, 32)
    np.testing.assert_allclose(d, [[0, 0], [2 / 32, 0], [4 / 32, 0], [6 / 32, 2 / 32]])
    assert M.displacement_path(None, 32) is None
    assert M.displacement_path(np.full((5, 2), np.nan), 32) is None


def paths(*motions, **kw):
    out = []
    for i, m in enumerate(motions):
        r = M.read_shot(sprite(m, seed=i, **kw))
        out.append(M.displacement_path(r.centroids, r.canvas))
    return out


def test_motion_diversity_frozen_synchronised_and_diverse():
    frozen = M.motion_diversity(paths("stay", "stay", "stay"))
    assert frozen == pytest.approx(0.0, abs=1e-6)
    # same motion from different starting points, at the world's speeds (2-3 px/frame): small
    sync = M.motion_diversity(paths("right", "right", "right"))
    assert sync < 0.1
    diverse = M.motion_diversity(paths("left", "right", "up", "down"))
    assert diverse > 0.3
    # by hand: two constant-speed opposite paths of 8 steps of v px on a 32 px canvas
    v = 2.5
    a = np.stack([np.arange(9) * v / 32, np.zeros(9)], 1)
    assert M.motion_diversity([a, -a]) == pytest.approx(np.mean(np.arange(9) * 2 * v / 32))
    assert M.motion_diversity([a, None, -a]) == M.motion_diversity([a, -a])  # missing left out
    assert math.isnan(M.motion_diversity([a, None]))
    assert M.trajectory_distance(a * 100, -a * 100) == 1.0  # clipped


# ----------------------------------------------------------------------------- flow


def test_dynamic_degree_orders_speed_and_is_zero_when_static():
    static = np.repeat(sprite("stay")[:1], 9, axis=0)
    assert M.dynamic_degree(static) == pytest.approx(0.0, abs=1e-3)
    slow = texture_pan(1, 0)
    fast = texture_pan(3, 0)
    d_slow, d_fast = M.dynamic_degree(slow), M.dynamic_degree(fast)
    assert d_slow == pytest.approx(1.0, abs=0.25)  # whole frame moves: mean = speed (px/frame)
    assert d_fast == pytest.approx(3.0, abs=0.6)
    assert M.dynamic_degree(sprite("left"), top=0.05) > M.dynamic_degree(sprite("left"))
    assert M.dynamic_degree(static[:1]) == 0.0


def test_optical_flow_units_are_clip_pixels():
    flow = M.optical_flow(texture_pan(2, -1))
    assert flow.shape == (8, 128, 128, 2)
    mean = flow.reshape(8, -1, 2).mean(1).mean(0)
    np.testing.assert_allclose(mean, [2, -1], atol=0.35)


def test_optical_flow_sees_isoluminant_colour_edges():
    # red (230, 40, 40) on the grey background (96, 96, 100) is 0 grey levels apart: a flow on
    # grey frames saw no motion at all there (every sprite-left source had no flow fidelity)
    red_on_grey = sprite("left", "diamond", "red", bg="grey")
    grey = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in red_on_grey])
    assert np.ptp(grey[0]) <= 2  # the sprite is invisible to a grey-level flow
    mean = M.mean_flow_path(red_on_grey).mean(0)
    assert mean[0] < -0.2 and abs(mean[1]) < 0.05 * abs(mean[0])
    assert M.flow_fidelity(sprite("left", "square", "blue", bg="navy", seed=1), red_on_grey) > 0.95
    assert M.dynamic_degree(red_on_grey) > 0.5 * M.dynamic_degree(sprite("left", "diamond", "red", bg="navy"))


def test_optical_flow_of_grey_footage_is_the_grey_flow():
    clip = texture_pan(2, -1)
    grey = np.repeat(clip.mean(-1, keepdims=True).round().astype(np.uint8), 3, axis=-1)
    up = [cv2.resize(f[..., 0], (128, 128), interpolation=cv2.INTER_LINEAR) for f in grey]
    ref = np.stack([cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)
                    for a, b in zip(up[:-1], up[1:])]) / 4
    np.testing.assert_allclose(M.optical_flow(grey), ref, atol=1e-5)


def test_flow_fidelity_direction():
    ref = texture_pan(2, 0)
    assert M.flow_fidelity(ref, texture_pan(2, 0, seed=1)) > 0.9
    assert M.flow_fidelity(ref, texture_pan(-2, 0, seed=1)) < -0.9
    assert abs(M.flow_fidelity(ref, texture_pan(0, 2, seed=1))) < 0.2
    assert M.flow_fidelity(ref, np.repeat(ref[:1], 9, 0)) == pytest.approx(0.0, abs=0.05)
    assert math.isnan(M.flow_fidelity(np.repeat(ref[:1], 9, 0), ref))
    # sprites: same direction, other identity and size
    assert M.flow_fidelity(sprite("right"), sprite("right", "circle", "yellow", seed=3)) > 0.9


def test_tracked_path_reads_the_shipped_pan_as_a_straight_pan():
    # examples/clips/pan.mp4: a 64 px window sliding 128/15 px a frame over testsrc2, fitted
    # as the evaluation fits it (9 frames, 32 px): the content moves left 4.27 px per source
    # frame. On grey frames the tracker read three of the eight steps as moving right.
    from motionq.evaluation.transfer import EXAMPLE_CLIPS
    from motionq.video import read_video, resample_clip, temporal_indices

    frames, fps = read_video(EXAMPLE_CLIPS / "pan.mp4")
    fitted = resample_clip(frames, fps, 9, 32, 32)
    idx = temporal_indices(len(frames), 9, fps, None)
    truth = np.stack([-np.asarray(idx, float) * 128 / 15 / 2, np.zeros(9)], axis=1)
    path = M.tracked_path(fitted)
    assert M.path_correlation(truth, path) > 0.99
    np.testing.assert_allclose(path[-1], truth[-1], atol=2.0)


def test_tracked_path_sees_isoluminant_colour_edges():
    clip = sprite("left", "diamond", "red", bg="grey")  # 0 grey levels from its background
    r = M.read_shot(clip)
    np.testing.assert_allclose(M.tracked_path(clip)[-1], r.centroids[-1] - r.centroids[0], atol=1.0)


def test_tracked_path_follows_content():
    p = M.tracked_path(texture_pan(2, 1))
    assert p.shape == (9, 2)
    np.testing.assert_allclose(p[-1], [16, 8], atol=1.0)
    # a sprite over a flat background: the sprite's own displacement
    clip = sprite("down-right")
    r = M.read_shot(clip)
    np.testing.assert_allclose(M.tracked_path(clip)[-1], r.centroids[-1] - r.centroids[0], atol=1.0)
    assert np.allclose(M.tracked_path(np.repeat(clip[:1], 9, 0)), 0.0)


def test_path_correlation_known_values():
    t = np.arange(9, dtype=float)[:, None]
    line = np.hstack([t * 2, t * 0]) + [5, 7]
    assert M.path_correlation(line, line * 3 + 11) == pytest.approx(1.0)  # speed, position free
    assert M.path_correlation(line, -line) == pytest.approx(-1.0)
    assert M.path_correlation(line, np.hstack([t * 0, t * 2])) == pytest.approx(0.0)
    assert M.path_correlation(line, np.full((9, 2), 4.0)) == 0.0  # frozen target
    assert M.path_correlation(line, None) == 0.0  # no character found
    assert math.isnan(M.path_correlation(np.full((9, 2), 4.0), line))  # nothing to follow
    ang = np.linspace(0, 2 * np.pi, 9)[:, None]
    circ = np.hstack([np.cos(ang), np.sin(ang)])
    assert M.path_correlation(circ, circ) == pytest.approx(1.0)
    gappy = line.copy()
    gappy[3] = np.nan
    assert M.path_correlation(line, gappy) == pytest.approx(1.0)


def test_path_error_counts_speed_and_position_that_correlation_ignores():
    t = np.arange(9, dtype=float)[:, None]
    line = np.hstack([t * 2, t * 0]) + [5, 7]
    # correlation calls a faster, shifted copy perfect; the error measures both differences
    fast = np.hstack([t * 4, t * 0]) + [5, 7]
    assert M.path_correlation(line, fast) == pytest.approx(1.0)
    assert M.path_error(line, fast, 32.0) == pytest.approx(np.mean(2 * t[:, 0]) / 32.0)
    shifted = line + [3, 4]  # same motion, 5 px away
    assert M.path_error(line, shifted, 32.0) == pytest.approx(0.0)  # from the start: position free
    assert M.path_error(line, shifted, 32.0, from_start=False) == pytest.approx(5.0 / 32.0)
    assert M.path_error(line, line, 32.0, from_start=False) == 0.0
    assert M.path_error(line, None, 32.0) == 1.0  # no character: the worst score
    assert M.path_error(line, line + [100, 0], 8.0, from_start=False) == 1.0  # clipped
    assert math.isnan(M.path_error(None, line, 32.0))
    gappy = fast.copy()
    gappy[4] = np.nan  # interpolated, as in path_correlation
    assert M.path_error(line, gappy, 32.0) == pytest.approx(M.path_error(line, fast, 32.0))


def test_fidelity_on_sprite_pairs():
    src = M.read_shot(sprite("bounce", "circle", "red", seed=1))
    same = M.read_shot(sprite("bounce", "square", "blue", seed=1))  # same seed: same path, other look
    assert M.path_correlation(src.centroids, same.centroids) == pytest.approx(1.0, abs=1e-3)
    up = M.read_shot(sprite("up", "square", "blue", seed=2))
    assert abs(M.path_correlation(src.centroids, up.centroids)) < 0.5
    assert M.track_fidelity(sprite("left", seed=4), sprite("left", "cross", "green", seed=5)) > 0.95
    assert M.track_fidelity(sprite("left", seed=4), sprite("right", "cross", "green", seed=5)) < -0.95


# ----------------------------------------------------------------------------- leakage


def test_identity_leakage():
    src = ("circle", "red")
    # different-shape pair: both attributes defined
    assert M.identity_leakage(src, ("square", "blue"), ("square", "blue")) == {"shape": False, "colour": False, "any": False}
    assert M.identity_leakage(src, ("square", "blue"), ("circle", "blue")) == {"shape": True, "colour": False, "any": True}
    assert M.identity_leakage(src, ("square", "blue"), ("square", "red"))["colour"] is True
    # same-shape pair: only colour can leak
    assert M.identity_leakage(src, ("circle", "blue"), ("circle", "red")) == {"shape": None, "colour": True, "any": True}
    assert M.identity_leakage(src, ("circle", "blue"), ("circle", "blue")) == {"shape": None, "colour": False, "any": False}
    # nothing found: nothing leaked; unknown source (real clip): undefined
    assert M.identity_leakage(src, ("square", "blue"), None)["any"] is False
    assert M.identity_leakage((None, None), ("square", "blue"), ("square", "blue"))["any"] is None
    # a third identity is neither kept nor leaked
    assert M.identity_leakage(src, ("square", "blue"), ("triangle", "green"))["any"] is False


# ----------------------------------------------------------------------------- intervals


def test_mean_ci_bootstrap_and_normal():
    x = [1.0, 2.0, 3.0, 4.0, 5.0]
    n = M.mean_ci(x, method="normal")
    assert n.mean == 3.0 and n.n == 5
    half = 2.776 * np.std(x, ddof=1) / math.sqrt(5)
    assert (n.lo, n.hi) == pytest.approx((3 - half, 3 + half), abs=1e-3)
    b = M.mean_ci(x, method="bootstrap")
    assert b.lo < 3.0 < b.hi and 1.0 <= b.lo and b.hi <= 5.0
    assert b == M.mean_ci(x)  # seeded: reproducible
    # binary data with a large n: close to the normal interval
    rng = np.random.default_rng(0)
    bits = (rng.random(400) < 0.3).astype(float)
    bb, nn = M.mean_ci(bits), M.mean_ci(bits, method="normal")
    assert bb.lo == pytest.approx(nn.lo, abs=0.01) and bb.hi == pytest.approx(nn.hi, abs=0.01)


def test_mean_ci_edge_cases():
    e = M.mean_ci([None, float("nan")])
    assert e.n == 0 and math.isnan(e.mean)
    assert str(e) == "n/a" and e.to_dict()["mean"] is None
    one = M.mean_ci([0.4])
    assert (one.mean, one.lo, one.hi, one.n) == (0.4, 0.4, 0.4, 1)
    const = M.mean_ci([1.0] * 6)
    assert const.lo == const.hi == 1.0
    assert M.mean_ci([0.0, 1.0], level=0.9, method="normal").hi > 0.5
    with pytest.raises(ValueError):
        M.mean_ci([1.0, 2.0], method="magic")


# ----------------------------------------------------------------------------- benchmark sets


def test_benchmark_sets_shape_and_determinism():
    from motionq.evaluation.benchmark_sets import MULTISHOT_MOTIONS, multishot_benchmark

    sets = multishot_benchmark(30, 5, seed=0)
    assert len(sets) == 30 and all(len(s.shots) == 5 for s in sets)
    assert sets == multishot_benchmark(30, 5, seed=0)
    assert sets[:3] == multishot_benchmark(3, 5, seed=0)  # a prefix of the longer benchmark
    assert sets != multishot_benchmark(30, 5, seed=1)
    ids = [sh.shot_id for s in sets for sh in s.shots]
    assert len(set(ids)) == len(ids)
    for s in sets:
        motions = [sh.motion for sh in s.shots]
        assert len(set(motions)) == 5 and set(motions) <= set(MULTISHOT_MOTIONS)
        for prompt, sh in zip(s.prompts(), s.shots):
            assert M.prompt_identity(prompt) == (None, None)  # identity left open
            assert M.prompt_motion(prompt) == sh.motion
    with pytest.raises(ValueError):
        multishot_benchmark(1, 12)


def test_benchmark_to_toml_is_a_valid_storyboard(tmp_path):
    from motionq.evaluation.benchmark_sets import multishot_benchmark, to_toml, write_storyboards
    from storyboard.load import load_storyboard, load_text

    sets = multishot_benchmark(4, 5, seed=3)
    for spec in sets:
        board = load_text(to_toml(spec, anchors=2), tmp_path / "b.toml")
        assert [s.id for s in board.shots] == [s.shot_id for s in spec.shots]
        assert [board.resolved_prompt(s) for s in board.shots] == spec.prompts()
        assert [board.effective_seed(s, i) for i, s in enumerate(board.shots)] == [s.seed for s in spec.shots]
        assert [s.anchor for s in board.shots] == [True, True, False, False, False]
        assert board.consistency.variant is None  # none written: the model's default
        assert board.to_consistency_config().variant == "refine"  # the built-in model's
    paths = write_storyboards(sets, tmp_path / "bench", variant="sdsa")
    assert load_storyboard(paths[0]).to_consistency_config().variant == "sdsa"


def test_group_request_fields():
    from motionq.api import ConsistencyConfig
    from motionq.evaluation.benchmark_sets import SEED_STRIDE, group_request, multishot_benchmark

    spec = multishot_benchmark(1, 5)[0]
    req = group_request(spec, ConsistencyConfig(variant="sdsa"), num_frames=9, steps=7, replica=1, anchors=2)
    assert req.consistency.variant == "sdsa"
    assert req.anchor_ids == (spec.shots[0].shot_id, spec.shots[1].shot_id)
    for shot, s in zip(req.shots, spec.shots):
        assert shot.characters == ("x",) and shot.subjects == (spec.character_prompt,)
        assert shot.prompt.startswith(spec.character_prompt) and shot.num_frames == 9 and shot.steps == 7
        assert shot.seed == s.seed + SEED_STRIDE
    assert group_request(spec, ConsistencyConfig(), num_frames=9).anchor_ids == ()
