"""Backbones: the tiny Wan, loading diffusers-layout folders offline, missing-file errors,
fingerprints, render_group, Wan 2.1 configuration, memory estimates, CLI listings."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from motionq.api import ConsistencyConfig, GroupRequest, MotionSpec, ShotRequest
from motionq.backbones import BackboneError, load_backbone
from motionq.backbones.fingerprint import folder_fingerprint
from motionq.backbones.pipeline import PipelineBackbone, check_folder
from motionq.backbones.wan import ENV_VAR, load_wan21, memory_estimate
from motionq.cli import app
from motionq.video import write_video


@pytest.fixture
def tiny_copy(tiny_folder, tmp_path):
    dst = tmp_path / "model"
    shutil.copytree(tiny_folder, dst)
    return dst


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MOTIONQ_CACHE", str(tmp_path / "cache"))


def test_tiny_folder_is_diffusers_layout_with_safetensors(tiny_folder):
    index = json.loads((tiny_folder / "model_index.json").read_text())
    assert index["_class_name"] == "WanPipeline"
    for comp in ("transformer", "vae", "text_encoder"):
        assert list((tiny_folder / comp).glob("*.safetensors")), comp
        assert not list((tiny_folder / comp).glob("*.bin"))
    assert json.loads((tiny_folder / "motionq.json").read_text())["native_size"] == [32, 32]


def test_tiny_is_deterministic(tiny_backbone):
    a = tiny_backbone.generate("a red square moves left", steps=8, seed=1)
    b = tiny_backbone.generate("a red square moves left", steps=8, seed=1)
    assert a.shape == (9, 32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, tiny_backbone.generate("a red square moves left", steps=8, seed=2))


def test_tiny_rebuild_gives_same_weights(tiny_folder, tmp_path):
    from motionq.backbones.tiny import build_tiny

    other = build_tiny(tmp_path / "again")
    assert folder_fingerprint(other) == folder_fingerprint(tiny_folder)
    assert build_tiny(tmp_path / "again") == other  # reused, not rebuilt


def test_load_folder_offline_by_path(tiny_copy):
    bb = load_backbone(str(tiny_copy), device="cpu")
    assert isinstance(bb, PipelineBackbone)
    assert bb.native_size() == (32, 32) and bb.max_sequence_length == 16
    assert bb.generate("a cat", steps=2).shape == (9, 32, 32, 3)


@pytest.mark.parametrize(
    "damage,expected",
    [
        (lambda d: shutil.rmtree(d / "vae"), "vae/ (the whole folder)"),
        (lambda d: [p.unlink() for p in (d / "transformer").glob("*.safetensors")], "transformer/ weights"),
        (lambda d: (d / "text_encoder" / "config.json").unlink(), "text_encoder/config.json"),
        (lambda d: (d / "scheduler" / "scheduler_config.json").unlink(), "scheduler/scheduler_config.json"),
        (lambda d: shutil.rmtree(d / "tokenizer"), "tokenizer/ (the whole folder)"),
        (lambda d: (d / "model_index.json").unlink(), "model_index.json is missing"),
    ],
)
def test_partial_folder_names_what_is_missing(tiny_copy, damage, expected):
    damage(tiny_copy)
    with pytest.raises(BackboneError) as e:
        load_backbone(str(tiny_copy))
    msg = str(e.value)
    assert expected in msg and str(tiny_copy) in msg
    assert "huggingface-cli download Wan-AI/Wan2.1-T2V-1.3B-Diffusers" in msg


def test_pickled_weights_are_refused(tiny_copy):
    # A .bin beside no .safetensors must not be loaded through torch.load (it can run code).
    comp = tiny_copy / "transformer"
    for p in comp.glob("*.safetensors"):
        p.rename(p.with_suffix(".bin"))
    with pytest.raises(BackboneError, match=r"transformer/ weights as \*\.safetensors .*does not load pickles"):
        load_backbone(str(tiny_copy))


def test_missing_shard_of_sharded_weights(tiny_copy):
    comp = tiny_copy / "transformer"
    (comp / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"a": "diffusion_pytorch_model-00001-of-00002.safetensors",
                        "b": "diffusion_pytorch_model-00002-of-00002.safetensors"}}))
    with pytest.raises(BackboneError, match="transformer/diffusion_pytorch_model-00002-of-00002.safetensors"):
        check_folder(tiny_copy)


def test_fingerprint_is_the_registry_folder_hash(tiny_copy, tiny_folder, monkeypatch):
    from motionq.backbones import model_fingerprint

    bb = load_backbone(str(tiny_copy), device="cpu")
    assert bb.fingerprint() == model_fingerprint(str(tiny_copy))  # same key, no model loaded
    assert bb.fingerprint() == model_fingerprint(str(tiny_folder))  # content, not location
    cfg = tiny_copy / "scheduler" / "scheduler_config.json"
    data = json.loads(cfg.read_text())
    data["shift"] = 5.0
    cfg.write_text(json.dumps(data))
    assert model_fingerprint(str(tiny_copy)) != bb.fingerprint()
    monkeypatch.setattr("motionq.backbones.tiny.default_path", lambda: tiny_folder)
    assert model_fingerprint("tiny") == model_fingerprint(str(tiny_folder))


def test_in_memory_pipeline_fingerprint():
    from motionq.backbones.tiny import build_pipeline

    a = PipelineBackbone(build_pipeline(0), name="mem").fingerprint()
    assert a == PipelineBackbone(build_pipeline(0), name="mem").fingerprint()
    assert a != PipelineBackbone(build_pipeline(1), name="mem").fingerprint()


def test_render_group_vanilla(tiny_backbone, tmp_path, moving_square):
    ref = write_video(moving_square(12, (32, 32)), tmp_path / "ref.mp4")
    shots = (
        ShotRequest("s1", "a red square moves left", num_frames=7, seed=1, steps=3),
        ShotRequest("s2", "a blue circle jumps", num_frames=9, seed=2, steps=3,
                    motion=MotionSpec(ref, strength=0.6)),
    )
    events = []
    out = tiny_backbone.render_group(GroupRequest(shots), progress=events.append)
    assert set(out) == {"s1", "s2"}
    assert out["s1"].shape == (7, 32, 32, 3)  # 7 is not 1 + 4k: rendered at 9, trimmed
    assert out["s2"].shape == (9, 32, 32, 3) and out["s2"].dtype == np.uint8
    again = tiny_backbone.render_group(GroupRequest(shots[:1]))
    assert np.array_equal(again["s1"], out["s1"])  # seeded per shot
    samples = [e for e in events if e.phase == "sample"]
    assert [e.step for e in samples if e.shot_ids == ("s1",)] == [1, 2, 3]
    assert any(e.phase == "record" and e.shot_ids == ("s2",) for e in events)
    assert all(e.total == 3 for e in samples)


def test_render_group_variants_one_shot_equals_plain(tiny_backbone):
    """A group of one shot has nobody to share with: every variant gives the plain render."""
    shot = ShotRequest("s1", "a cat", num_frames=5, seed=0, steps=2)
    plain = np.asarray(tiny_backbone.render_group(GroupRequest((shot,)))["s1"])
    out = tiny_backbone.render_group(GroupRequest((shot,), ConsistencyConfig(variant="sdsa")))
    assert np.array_equal(np.asarray(out["s1"]), plain)
    with pytest.raises(ValueError, match="unknown consistency variant"):
        tiny_backbone.render_group(GroupRequest((shot,), ConsistencyConfig(variant="magic")))


def test_render_group_variant_hook(tiny_backbone, monkeypatch):
    calls = []
    monkeypatch.setitem(PipelineBackbone.variant_renderers, "sdsa",
                        lambda bb, req, prog: calls.append(req) or {"s1": np.zeros((1, 1, 1, 3), np.uint8)})
    shot = ShotRequest("s1", "a cat", num_frames=5, seed=0)
    out = tiny_backbone.render_group(GroupRequest((shot,), ConsistencyConfig(variant="sdsa")))
    assert len(calls) == 1 and out["s1"].shape == (1, 1, 1, 3)


def test_registry_names(tiny_folder, monkeypatch):
    from motionq.backbones import available

    assert {"tiny", "wan2.1", "animatic"} <= set(available())
    monkeypatch.setattr("motionq.backbones.tiny.default_path", lambda: tiny_folder)
    assert load_backbone("tiny").name == "tiny"
    with pytest.raises(BackboneError, match="unknown model"):
        load_backbone("no-such-model")


def test_wan21_unconfigured_and_incomplete(monkeypatch, tmp_path, tiny_copy):
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(BackboneError) as e:
        load_wan21()
    assert ENV_VAR in str(e.value) and "huggingface-cli download Wan-AI/Wan2.1-T2V-1.3B-Diffusers" in str(e.value)
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(BackboneError, match="does not exist"):
        load_wan21()
    shutil.rmtree(tiny_copy / "text_encoder")
    monkeypatch.setenv(ENV_VAR, str(tiny_copy))
    with pytest.raises(BackboneError, match="text_encoder/") as e:
        load_wan21()
    assert f"--local-dir {tiny_copy}" in str(e.value)


def test_wan21_loads_a_wan_layout_folder(tiny_copy, monkeypatch):
    # the tiny model has Wan 2.1's layout and classes: the real loader takes it as is
    monkeypatch.setenv(ENV_VAR, str(tiny_copy))
    bb = load_wan21(dtype="fp32", device="cpu", native_size=(32, 32), max_sequence_length=16, default_frames=9)
    assert bb.name == "wan2.1"
    assert bb.generate("a cat", steps=2).shape == (9, 32, 32, 3)
    with pytest.raises(BackboneError, match="accelerator"):
        load_wan21(dtype="fp32", device="cpu", offload=True)
    with pytest.raises(BackboneError, match="unknown dtype"):
        load_wan21(dtype="int3", device="cpu")


def test_memory_estimate_wan21():
    est = memory_estimate(480, 832, 81, blocks=list(range(20, 30)), steps_recorded=1)
    assert est["tokens"] == 32760 and est["latent"] == (21, 60, 104)
    assert est["q_bytes_per_layer_step"] == 32760 * 12 * 128 * 2  # ~100 MB bf16 per layer-step
    assert est["q_cache_bytes"] == 10 * est["q_bytes_per_layer_step"]
    assert "32,760 tokens" in est["summary"]


def test_cli_models_and_memory():
    runner = CliRunner()
    res = runner.invoke(app, ["models"])
    assert res.exit_code == 0 and "tiny" in res.output and "wan2.1" in res.output
    res = runner.invoke(app, ["memory", "--height", "480", "--width", "832", "--frames", "81"])
    assert res.exit_code == 0 and "32,760 tokens" in res.output
    res = runner.invoke(app, ["memory", "--blocks", "20-29", "--json"])
    assert json.loads(res.output)["q_cache_bytes"] == 10 * 32760 * 12 * 128 * 2
    res = runner.invoke(app, ["memory", "--blocks", "x-y"])
    assert res.exit_code == 2 and "bad --blocks" in res.output


@pytest.mark.parametrize("variant", ["vanilla", "sdsa+qpres+qflow"])
def test_backbone_transfer_blocks_reach_every_motion_path(tiny_backbone, tmp_path, moving_square,
                                                          monkeypatch, variant):
    """A backbone's own transfer default (`transfer_blocks`) is what its recordings use, alone
    or inside a group; a call that names blocks keeps them."""
    import motionq.methods.transfer as tr

    ref = write_video(moving_square(9, (32, 32)), tmp_path / "ref.mp4")
    used = []
    real = tr.record_motion

    def spy(*a, **k):
        mq = real(*a, **k)
        used.append(tuple(mq.blocks))
        return mq

    monkeypatch.setattr(tr, "record_motion", spy)
    monkeypatch.setattr(tiny_backbone, "transfer_blocks", (0,))
    motion = MotionSpec(ref, strength=0.6)
    shots = tuple(ShotRequest(f"s{i}", "a cat", num_frames=5, seed=i, steps=2, motion=motion,
                              subjects=("a cat",), characters=("cat",)) for i in range(2))
    tiny_backbone.render_group(GroupRequest(shots, ConsistencyConfig(variant=variant, anchors="off")))
    assert used and set(used) == {(0,)}
    used.clear()
    tiny_backbone.transfer(moving_square(9, (32, 32)), "a cat", strength=0.6, steps=2)
    tiny_backbone.transfer(moving_square(9, (32, 32)), "a cat", strength=0.6, steps=2, blocks=[1])
    assert used == [(0,), (1,)]


def test_large_file_digests_persist_across_processes(tmp_path, monkeypatch):
    """A big weight file is hashed once per (path, size, mtime), not once per process: the
    digest is kept in motionq's cache folder (a damaged store just means hashing again)."""
    import os

    import motionq.backbones.fingerprint as fp

    monkeypatch.setenv("MOTIONQ_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(fp, "PERSIST_BYTES", 1024)
    monkeypatch.setattr(fp, "_memo", {})
    big = tmp_path / "w.safetensors"
    big.write_bytes(b"a" * 4096)
    first = fp.file_digest(big)
    assert (tmp_path / "cache" / "file-digests.json").is_file()
    # same size and mtime, other bytes: a new process (empty memo) takes the stored digest
    st = big.stat()
    big.write_bytes(b"b" * 4096)
    os.utime(big, ns=(st.st_atime_ns, st.st_mtime_ns))
    fp._memo.clear()
    assert fp.file_digest(big) == first
    # a damaged store is ignored: the file is hashed again
    (tmp_path / "cache" / "file-digests.json").write_text("{not json")
    fp._memo.clear()
    assert fp.file_digest(big) != first
    # small files never touch the store
    small = tmp_path / "c.json"
    small.write_text("{}")
    fp.file_digest(small)
    assert str(small.resolve()) not in (tmp_path / "cache" / "file-digests.json").read_text()
