"""The storyboard schema, the example storyboards, the starter template and source positions."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from pydantic import BaseModel, ValidationError

from motionq.api import VARIANTS, ConsistencyConfig, MotionSpec
from storyboard import schema
from storyboard.load import (
    SourceMap,
    _toml_positions,
    detect_format,
    dump_starter,
    load_storyboard,
    load_text,
    starter_text,
    validate_file,
)
from storyboard.schema import Character, Consistency, Film, MotionRef, Shot, Storyboard, Transition

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def write_clip(path: Path, frames: int = 4) -> Path:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 8, (32, 32))
    for i in range(frames):
        writer.write(np.full((32, 32, 3), 40 * i, np.uint8))
    writer.release()
    return path


def comparable(board: Storyboard) -> dict:
    return board.model_dump()  # path and source_format are private: not in the dump


# -- examples --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["chase.toml", "chase.yaml", "two_friends.toml"])
def test_examples_are_valid(name: str) -> None:
    assert validate_file(EXAMPLES / name) == []


def test_dance_transfer(tmp_path: Path) -> None:
    # A copy next to a freshly made clip: independent of whether examples/clips is generated yet.
    shutil.copy(EXAMPLES / "dance_transfer.toml", tmp_path / "dance_transfer.toml")
    write_clip(tmp_path / "clips" / "bounce.mp4")
    board = load_storyboard(tmp_path / "dance_transfer.toml")
    motion = board.shots[0].motion
    assert motion is not None and motion.clip == "clips/bounce.mp4" and motion.strength == 0.6
    assert motion.clip_path == tmp_path / "clips" / "bounce.mp4"
    assert motion.to_spec() == MotionSpec(clip=tmp_path / "clips" / "bounce.mp4", strength=0.6)


def test_chase_toml_and_yaml_are_the_same_storyboard() -> None:
    toml = load_storyboard(EXAMPLES / "chase.toml")
    yaml = load_storyboard(EXAMPLES / "chase.yaml")
    assert (toml.source_format, yaml.source_format) == ("toml", "yaml")
    assert comparable(toml) == comparable(yaml)
    assert len(toml.shots) == 5
    for a, b in zip(toml.shots, yaml.shots):
        assert toml.resolved_prompt(a) == yaml.resolved_prompt(b)
        assert toml.effective_seed(a) == yaml.effective_seed(b)
        assert toml.frames(a) == yaml.frames(b) == 8


def test_two_friends_shape() -> None:
    board = load_storyboard(EXAMPLES / "two_friends.toml")
    assert len(board.shots) >= 5
    assert "a shape" in [c.prompt for c in board.characters.values()]  # identity left to the model
    counts = {name: sum(name in board.shot_characters(s) for s in board.shots) for name in board.characters}
    assert len(counts) == 2 and all(n >= 2 for n in counts.values())


def test_examples_use_the_sprite_vocabulary() -> None:
    words = set(
        "a an on the and to right left up down moves bounces zigzags circles stays still "
        "red green blue yellow purple orange circle square triangle diamond cross shape "
        "black grey navy brown forest background".split()
    )
    for path in [*EXAMPLES.glob("*.toml"), *EXAMPLES.glob("*.yaml")]:
        board = load_storyboard(path)
        for shot in board.shots:
            used = set(re.findall(r"[a-z]+", board.resolved_prompt(shot).lower()))
            assert used <= words, (path.name, shot.id, used - words)


# -- convenience API ---------------------------------------------------------------------------------


def test_convenience_methods() -> None:
    board = load_storyboard(EXAMPLES / "chase.toml")
    assert board.path == EXAMPLES / "chase.toml"
    assert board.base_dir == EXAMPLES
    assert list(board.characters) == ["hero", "chaser"]  # file order kept
    intro = board.shot_by_id("intro")
    assert board.resolved_prompt(intro) == "a red circle moves right on a navy background"
    assert board.shot_characters(intro) == ["hero"]
    assert board.shot_subjects(intro) == ("a red circle",)
    assert board.effective_seed(intro, 0) == 0
    assert board.effective_seed(board.shots[1]) == 1  # film.seed + index
    assert board.effective_seed(board.shot_by_id("escape"), 2) == 7  # its own seed
    assert board.effective_steps(board.shot_by_id("safe")) == 25
    assert board.effective_steps(intro) == 20
    assert board.effective_guidance(intro) == 4.0
    assert board.shot_index("closing-in") == 3
    assert board.shot_by_id("escape").transition == Transition(type="crossfade", duration=0.25)
    assert board.shot_by_id("closing-in").transition == Transition(type="fade", duration=0.5)
    assert intro.transition.type == "cut"
    assert board.transition_of(board.shot_by_id("escape"), 2) == ("crossfade", 0.25)
    assert board.transition_of(board.shot_by_id("closing-in")) == ("fade", 0.5)
    assert board.transition_of(intro, 0) == ("cut", 0.0)
    assert board.to_consistency_config() == ConsistencyConfig(
        variant="refine", keyframe_every=3, anchors="auto"  # unset: the built-in model's default
    )
    assert board.resolved_model() == "animatic"
    with pytest.raises(KeyError):
        board.shot_by_id("nope")


def test_shot_characters_union_in_order_of_appearance() -> None:
    board = Storyboard.model_validate(
        {
            "characters": {n: {"prompt": f"a {c} circle", "negative_prompt": f"no {c}"} for n, c in
                           [("a", "red"), ("b", "blue"), ("c", "green")]},
            "film": {"negative_prompt": "blurry"},
            "shots": [{"id": "s", "prompt": "{b} and {a} and {b}", "characters": ["c", "a"]}],
        }
    )
    shot = board.shots[0]
    assert board.shot_characters(shot) == ["b", "a", "c"]
    assert board.resolved_prompt(shot) == "a blue circle and a red circle and a blue circle"
    assert board.effective_negative_prompt(shot) == "blurry, no blue, no red, no green"


@pytest.mark.parametrize("duration, fps, frames", [(1.0, 8, 8), (0.125, 8, 1), (0.5, 24, 12), (1.3, 8, 10)])
def test_frames(duration: float, fps: int, frames: int) -> None:
    board = Storyboard.model_validate(
        {"film": {"fps": fps}, "shots": [{"id": "s", "prompt": "x", "duration": duration}]}
    )
    assert board.frames(board.shots[0]) == frames


def test_defaults_follow_motionq() -> None:
    assert schema.DEFAULT_VARIANT in VARIANTS
    consistency = Consistency()
    default = ConsistencyConfig()
    for field in dataclasses.fields(ConsistencyConfig):
        if field.name != "variant":
            assert tuple(np.atleast_1d(getattr(consistency, field.name))) == tuple(
                np.atleast_1d(getattr(default, field.name))
            )
    assert MotionRef(clip="x.mp4").strength == MotionSpec.strength
    assert Film().model == "animatic"
    assert set(Consistency.model_fields) == {f.name for f in dataclasses.fields(ConsistencyConfig)}


def test_unset_variant_is_the_models_default(tmp_path) -> None:
    from motionq.backbones import default_variant

    assert Consistency().variant is None
    # the built-in model names its own; a model folder (Wan 2.1, ...) gets the paper's method
    assert default_variant("animatic") == "refine"
    assert default_variant(str(tmp_path)) == schema.DEFAULT_VARIANT == "sdsa+qpres+qflow+refine"
    text = (EXAMPLES / "chase.toml").read_text()
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model_index.json").write_text("{}")
    board = load_text(text.replace('model = "animatic"', 'model = "./model"'), tmp_path / "a.toml")
    assert board.to_consistency_config().variant == "sdsa+qpres+qflow+refine"
    board = load_text(text.replace("[consistency]", '[consistency]\nvariant = "sdsa"'), tmp_path / "b.toml")
    assert board.to_consistency_config().variant == "sdsa"  # a named variant wins


def test_every_model_forbids_extra_fields() -> None:
    for model in (Storyboard, Film, Consistency, Character, Shot, MotionRef, Transition):
        assert model.model_config.get("extra") == "forbid", model


def test_strict_types() -> None:
    with pytest.raises(ValidationError):
        Film(fps="8")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Film(fps=True)  # type: ignore[arg-type]
    assert Film(guidance=4).guidance == 4.0  # ints are fine where numbers are expected


def test_programmatic_validation_runs_cross_checks(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"unknown character \{hro\}"):
        Storyboard.model_validate({"shots": [{"id": "a", "prompt": "{hro}"}]})
    board = Storyboard.model_validate(
        {"shots": [{"id": "a", "prompt": "x", "motion": {"clip": "c.mp4"}}]},
        context={"base_dir": tmp_path},
    )
    assert board.shots[0].motion.clip_path == tmp_path / "c.mp4"  # type: ignore[union-attr]
    assert board.path is None and board.source_format is None


def test_model_path_resolves_against_the_storyboard(tmp_path: Path) -> None:
    (tmp_path / "models" / "mine").mkdir(parents=True)
    (tmp_path / "models" / "mine" / "model_index.json").write_text("{}")
    src = 'schema_version = 1\n[film]\nmodel = "models/mine"\n[[shots]]\nid = "a"\nprompt = "x"\n'
    (tmp_path / "sb.toml").write_text(src)
    assert load_storyboard(tmp_path / "sb.toml").resolved_model() == str(tmp_path / "models" / "mine")
    (tmp_path / "sb.toml").write_text(src.replace("models/mine", "models/theirs"))
    [problem] = validate_file(tmp_path / "sb.toml")
    assert (problem.line, problem.field) == (3, "film.model") and "not found" in problem.message


# -- starter -------------------------------------------------------------------------------------


def test_starter_templates(tmp_path: Path) -> None:
    toml = load_storyboard(dump_starter(tmp_path / "new.toml"))
    yaml = load_storyboard(dump_starter(tmp_path / "new.yml"))
    assert comparable(toml) == comparable(yaml)
    assert "#" in starter_text("toml") and "#" in starter_text("yaml")  # commented for newcomers
    with pytest.raises(FileExistsError):
        dump_starter(tmp_path / "new.toml")
    dump_starter(tmp_path / "new.toml", overwrite=True)
    with pytest.raises(ValueError):
        dump_starter(tmp_path / "new.txt")
    assert detect_format("a.YAML") == "yaml" and detect_format("a.txt") is None


# -- docs ----------------------------------------------------------------------------------------


def test_docs_cover_every_field() -> None:
    text = (ROOT / "docs" / "format.md").read_text()
    models: list[type[BaseModel]] = [Storyboard, Film, Consistency, Character, Shot, MotionRef, Transition]
    missing = [f"{m.__name__}.{f}" for m in models for f in m.model_fields if f"`{f}`" not in text]
    assert not missing
    for variant in VARIANTS:
        assert f"`{variant}`" in text


# -- TOML source positions -------------------------------------------------------------------------


def test_toml_positions() -> None:
    src = '''\
a = 1  # comment with [brackets] and "quotes"
"quoted key" = """
multi
[not_a_table]
"""
[t]
x.y = { p = 1, q = [1,
  2] }
arr = [
  "one",  # c
  { k = 'v' },
]
[[s]]
id = "a"
[s.m]
clip = "c"
[[s]]
id = 'b'
[[s.sub]]
z = 1
'''
    import tomllib

    tomllib.loads(src)  # the scanner may assume valid TOML
    lines = _toml_positions(src).lines
    assert lines[("a",)] == 1
    assert lines[("quoted key",)] == 2
    assert ("not_a_table",) not in lines
    assert lines[("t",)] == 6
    assert lines[("t", "x", "y", "p")] == 7
    assert lines[("t", "x", "y", "q", 1)] == 8  # array items: the line they start on
    assert lines[("t", "arr")] == 9 and lines[("t", "arr", 0)] == 10
    assert lines[("t", "arr", 1, "k")] == 11
    assert lines[("s", 0)] == 13 and lines[("s", 0, "id")] == 14
    assert lines[("s", 0, "m", "clip")] == 16
    assert lines[("s", 1)] == 17 and lines[("s", 1, "id")] == 18
    assert lines[("s", 1, "sub", 0, "z")] == 20
    smap = SourceMap(lines)
    assert smap.line_of(("s", 1, "missing")) == 17  # a missing field: its table's header
    assert smap.line_of(("nothing",)) == 1


def test_docs_examples_parse(tmp_path: Path) -> None:
    import tomllib

    import yaml

    text = (ROOT / "docs" / "format.md").read_text()
    blocks = re.findall(r"```(toml|yaml)\n(.*?)```", text, re.S)
    assert len(blocks) >= 10
    for lang, body in blocks:
        data = tomllib.loads(body) if lang == "toml" else yaml.safe_load(body)
        assert isinstance(data, dict)
    # The first pair is a whole storyboard: valid, and the same in both formats.
    (tmp_path / "a.toml").write_text(blocks[0][1])
    (tmp_path / "a.yaml").write_text(blocks[1][1])
    assert comparable(load_storyboard(tmp_path / "a.toml")) == comparable(load_storyboard(tmp_path / "a.yaml"))
