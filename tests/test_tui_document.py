"""The studio's document model (storyboard.tui.document): round-trip edits, undo, recovery."""

from __future__ import annotations

import os
import random
import shutil
import time
from pathlib import Path

import pytest

from storyboard.load import load_text, starter_text
from storyboard.tui.document import (
    DocumentError,
    StoryDocument,
    discard_recovery,
    format_value,
    parse_number,
    problem_target,
    recovery_candidate,
    recovery_path,
    write_recovery,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _doc(tmp_path: Path, name: str) -> StoryDocument:
    src = EXAMPLES / name
    dst = tmp_path / name
    shutil.copy(src, dst)
    return StoryDocument.open(dst)


@pytest.mark.parametrize("name", ["chase.toml", "chase.yaml", "two_friends.toml", "dance_transfer.toml"])
def test_open_and_dump_is_lossless(tmp_path, name):
    doc = _doc(tmp_path, name)
    assert doc.to_text() == (EXAMPLES / name).read_text()
    assert not doc.dirty
    assert doc.validate(allow_outside=True) == [] or name == "dance_transfer.toml"


@pytest.mark.parametrize("fmt", ["toml", "yaml"])
def test_starter_round_trip_keeps_comments_and_order(tmp_path, fmt):
    path = tmp_path / f"film.{fmt}"
    path.write_text(starter_text(fmt))
    doc = StoryDocument.open(path)
    doc.set_shot_text(1, "prompt", "{hero} stays still on a grey background")
    doc.set_shot_text(0, "duration", "2.5")
    doc.save()
    text = path.read_text()
    original = starter_text(fmt)
    # Every comment line of the starter survives, in order.
    comments = [line.strip() for line in original.splitlines() if line.strip().startswith("#")]
    saved_comments = [line.strip() for line in text.splitlines() if line.strip().startswith("#")]
    assert saved_comments == comments
    # Untouched lines are byte-identical; only the two edited ones differ.
    changed = [(a, b) for a, b in zip(original.splitlines(), text.splitlines()) if a != b]
    assert len(changed) == 2 and len(text.splitlines()) == len(original.splitlines())
    assert "2.5" in changed[0][1] and "grey" in changed[1][1]
    # The end-of-line comment on the edited duration is kept.
    assert "# seconds" in changed[0][1]
    board = load_text(text, path)
    assert board.shots[1].prompt == "{hero} stays still on a grey background"
    assert not doc.dirty


@pytest.mark.parametrize("name", ["chase.toml", "chase.yaml"])
def test_shot_operations(tmp_path, name):
    doc = _doc(tmp_path, name)
    ids = doc.shot_ids()
    new = doc.add_shot(after=0)
    assert new == 1 and doc.shot_count() == len(ids) + 1
    assert doc.shot_ids()[1] not in ids
    dup = doc.duplicate_shot(0)
    assert doc.shot_ids()[dup] == f"{ids[0]}-2"
    assert doc.shot(dup)["prompt"] == doc.shot(0)["prompt"]
    moved = doc.move_shot(dup, -1)
    assert moved == 0 and doc.shot_ids()[0] == f"{ids[0]}-2"
    assert doc.move_shot(0, -1) == 0  # already first
    doc.delete_shot(0)
    doc.delete_shot(1)
    assert doc.shot_ids() == ids
    assert doc.validate() == []
    # Every edit re-parses cleanly and stays valid: blank lines between shots, none doubled.
    text = doc.to_text()
    assert "\n\n\n" not in text
    assert StoryDocument(doc.path, text).to_text() == text


@pytest.mark.parametrize("name", ["chase.toml", "chase.yaml"])
def test_nested_fields_and_shorthands(tmp_path, name):
    doc = _doc(tmp_path, name)
    # A transition of just a type stays the shorthand; a duration turns it into a table.
    doc.set_shot_text(0, "transition.type", "fade")
    assert doc.get_shot_field(0, "transition") == "fade"
    doc.set_shot_text(0, "transition.duration", "0.25")
    assert doc.get_shot_field(0, "transition") == {"type": "fade", "duration": 0.25}
    doc.set_shot_text(0, "transition.duration", "")
    doc.set_shot_text(0, "transition.type", "")
    assert doc.get_shot_field(0, "transition") is None
    # Motion: created on the first field, removed when emptied.
    shutil.copytree(EXAMPLES / "clips", tmp_path / "clips")
    doc.set_shot_text(0, "motion.clip", "clips/bounce.mp4")
    doc.set_shot_text(0, "motion.strength", "0.4")
    assert doc.get_shot_field(0, "motion") == {"clip": "clips/bounce.mp4", "strength": 0.4}
    assert doc.validate() == []
    doc.set_shot_text(0, "motion.strength", "")
    doc.set_shot_text(0, "motion.clip", "")
    assert doc.get_shot_field(0, "motion") is None
    doc.set_shot_text(1, "characters", "hero, chaser")
    assert doc.get_shot_field(1, "characters") == ["hero", "chaser"]
    doc.set_shot_text(1, "characters", "")
    assert doc.get_shot_field(1, "characters") is None
    doc.set_shot_text(2, "anchor", "true")
    assert doc.get_shot_field(2, "anchor") is True
    assert doc.validate() == []


def test_inline_tables_keep_their_spacing(tmp_path):
    doc = _doc(tmp_path, "two_friends.toml")
    # kit-circles: transition = { type = "fade", duration = 0.25 }
    i = doc.shot_ids().index("kit-circles")
    doc.set_shot_text(i, "transition.duration", "0.5")
    assert 'transition = { type = "fade", duration = 0.5 }' in doc.to_text()
    doc.set_shot_text(0, "transition.type", "crossfade")
    doc.set_shot_text(0, "transition.duration", "0.3")
    copy = doc.duplicate_shot(0)
    assert doc.to_text().count('transition = {type = "crossfade", duration = 0.3}') == 2
    assert doc.get_shot_field(copy, "transition") == {"type": "crossfade", "duration": 0.3}


def test_bad_text_is_kept_for_validation_to_report(tmp_path):
    doc = _doc(tmp_path, "chase.toml")
    doc.set_shot_text(0, "duration", "abc")
    problems = doc.validate()
    assert [p.field for p in problems] == ["shots[0].duration"]
    assert "must be a number, got 'abc'" in problems[0].message
    assert str(problems[0]).startswith(f"{doc.path}:")
    doc.set_shot_text(0, "duration", "1.5")
    assert doc.validate() == []


def test_yaml_quotes_what_pyyaml_would_misread(tmp_path):
    doc = _doc(tmp_path, "chase.yaml")
    doc.set_shot_text(0, "id", "no")  # bare `no` is false in YAML 1.1
    doc.set_shot_text(1, "prompt", "{hero} bounces on a navy background")
    doc.set_shot_text(2, "negative_prompt", "blurry: ugly")
    text = doc.to_text()
    assert 'id: "no"' in text
    board = load_text(text, doc.path)
    assert board.shots[0].id == "no"
    assert board.shots[2].negative_prompt == "blurry: ugly"
    # Flow mappings the author wrote with spaces keep them when untouched.
    assert "transition: { type: crossfade, duration: 0.25 }" in text


@pytest.mark.parametrize("name", ["chase.toml", "chase.yaml", "two_friends.toml"])
def test_rename_character_follows_references(tmp_path, name):
    doc = _doc(tmp_path, name)
    old = doc.character_names()[0]
    users = [i for i in range(doc.shot_count())
             if f"{{{old}}}" in doc.shot(i)["prompt"] or old in (doc.shot(i).get("characters") or [])]
    order = doc.character_names()
    count = doc.rename_character(old, "renamed")
    assert count == len(users) > 0
    assert doc.character_names() == ["renamed", *order[1:]]  # same position
    text = doc.to_text()
    assert f"{{{old}}}" not in text
    assert doc.validate(allow_outside=True) == []
    with pytest.raises(ValueError):
        doc.rename_character("renamed", order[1])  # taken
    with pytest.raises(ValueError):
        doc.rename_character("renamed", "two words")


def test_rename_follows_characters_lists(tmp_path):
    doc = _doc(tmp_path, "two_friends.toml")
    doc.rename_character("kit", "kitty")
    i = doc.shot_ids().index("kit-plays")
    assert doc.get_shot_field(i, "characters") == ["kitty"]
    assert "characters = [\"kitty\"]           # written out" in doc.to_text()


@pytest.mark.parametrize("fmt", ["toml", "yaml"])
def test_add_character_keeps_comment_above_shots(tmp_path, fmt):
    path = tmp_path / f"film.{fmt}"
    path.write_text(starter_text(fmt))
    doc = StoryDocument.open(path)
    doc.add_character("sidekick", "a blue square")
    assert doc.character_names() == ["hero", "sidekick"]
    assert doc.validate() == []
    text = doc.to_text()
    if fmt == "toml":
        # The comment introducing the shots still sits right above the first [[shots]].
        assert "letters, digits, _ and -).\n[[shots]]" in text
        assert '[characters.sidekick]\nprompt = "a blue square"\n' in text


def test_add_first_character_goes_above_shots(tmp_path):
    path = tmp_path / "film.toml"
    path.write_text('[[shots]]\nid = "a"\nprompt = "a red circle"\n')
    doc = StoryDocument.open(path)
    doc.add_character("hero", "a red circle")
    text = doc.to_text()
    assert text.index("[characters.hero]") < text.index("[[shots]]")
    assert doc.validate() == []


def test_undo_redo_and_coalescing(tmp_path):
    doc = _doc(tmp_path, "chase.toml")
    original = doc.to_text()
    for n in range(1, 5):  # typing "ab c" into the prompt, a keystroke at a time
        doc.set_shot_text(0, "prompt", "ab c"[:n])
    doc.add_shot()
    assert doc.can_undo and not doc.can_redo
    step = doc.undo()
    assert step.label.startswith("add shot")
    assert doc.shot(0)["prompt"] == "ab c"
    step = doc.undo()  # the whole typed word goes at once
    assert step.focus == ("shot", 0)
    assert doc.to_text() == original and not doc.dirty
    assert doc.undo() is None
    doc.redo()
    doc.redo()
    assert doc.shot_count() == 6 and doc.shot(0)["prompt"] == "ab c"
    doc.undo()
    doc.set_shot_text(1, "seed", "3")  # a new edit drops the redo branch
    assert not doc.can_redo


def test_reroll_seed(tmp_path):
    doc = _doc(tmp_path, "chase.toml")
    before = doc.get_shot_field(2, "seed")
    seed = doc.reroll_seed(2, random.Random(1))
    assert seed != before and doc.get_shot_field(2, "seed") == seed
    assert doc.validate() == []


def test_syntax_error_is_a_document_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[film\ntitle = "x"\n')
    with pytest.raises(DocumentError) as err:
        StoryDocument.open(path)
    assert err.value.problems[0].field == "syntax"
    assert err.value.problems[0].line == 1


def test_save_is_atomic_and_tracks_dirty(tmp_path):
    doc = _doc(tmp_path, "chase.yaml")
    doc.set_shot_text(0, "seed", "5")
    assert doc.dirty
    doc.save()
    assert not doc.dirty and not doc.disk_changed()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left
    doc.path.write_text(doc.path.read_text() + "\n# changed elsewhere\n")
    assert doc.disk_changed()


def test_recovery_files(tmp_path):
    doc = _doc(tmp_path, "chase.toml")
    assert write_recovery(doc) is None and not recovery_path(doc.path).exists()
    doc.set_shot_text(0, "prompt", "{hero} bounces on a black background")
    rec = write_recovery(doc)
    assert rec == tmp_path / ".chase.toml.recover"
    assert recovery_candidate(doc.path) == doc.to_text()
    # Saved later than the autosave: nothing to offer.
    os.utime(doc.path, ns=(time.time_ns() + 10**9,) * 2)
    assert recovery_candidate(doc.path) is None
    os.utime(doc.path, ns=(time.time_ns() - 10**10,) * 2)
    assert recovery_candidate(doc.path) is not None
    discard_recovery(doc.path)
    assert recovery_candidate(doc.path) is None


def test_helpers():
    assert parse_number("") is None
    assert parse_number(" 3 ") == 3 and isinstance(parse_number("3"), int)
    assert parse_number("2.5") == 2.5
    assert parse_number("abc") == "abc"
    assert format_value(1.0) == "1.0" and format_value(["a", "b"]) == "a, b" and format_value(None) == ""
    assert problem_target("shots[2].duration") == ("shot", 2, "duration")
    assert problem_target("shots[0].transition") == ("shot", 0, "transition.type")
    assert problem_target("shots[1].motion.clip") == ("shot", 1, "motion.clip")
    assert problem_target("shots[3].characters[0]") == ("shot", 3, "characters")
    assert problem_target("characters.hero.prompt") == ("character", "hero", "prompt")
    assert problem_target("film.fps") == ("film", None, "fps")
    assert problem_target("consistency.variant") is None


@pytest.mark.parametrize("fmt", ["toml", "yaml"])
def test_retyping_a_field_keeps_its_place_and_comment(tmp_path, fmt):
    path = tmp_path / f"film.{fmt}"
    path.write_text(starter_text(fmt))
    doc = StoryDocument.open(path)
    # Select-all-and-type, keystroke by keystroke: the field is empty for a moment.
    for text in ["", "t", "ti", "tin", "tiny"]:
        doc.set_film_text("model", text)
    for text in ["", "6", "64"]:
        doc.set_shot_text(0, "duration", text)
    lines = doc.to_text().splitlines()
    original = starter_text(fmt).splitlines()
    changed = [(a, b) for a, b in zip(original, lines) if a != b]
    assert len(lines) == len(original) and len(changed) == 2
    assert "tiny" in changed[0][1] and "# backbone" in changed[0][1]
    assert "64" in changed[1][1] and "# seconds" in changed[1][1]
    assert doc.undo().label == "edit duration of shot 1"
    assert doc.undo().label == "edit film model"
    assert doc.to_text() == starter_text(fmt)


@pytest.mark.parametrize("fmt", ["toml", "yaml"])
def test_new_keys_go_above_comments_that_introduce_the_next_table(tmp_path, fmt):
    path = tmp_path / f"film.{fmt}"
    path.write_text(starter_text(fmt))
    doc = StoryDocument.open(path)
    doc.set_character_text("hero", "negative_prompt", "blurry")
    doc.set_shot_text(2, "steps", "30")  # the last shot: nothing follows it
    doc.set_shot_text(1, "guidance", "5")
    text = doc.to_text()
    assert doc.validate() == []
    comment = "# Shots play in order"
    before = text[: text.index(comment)]
    assert "blurry" in before  # the new key sits with its character, above the shots' comment
    after_key = text[text.index("blurry"):text.index(comment)]
    assert after_key.count("\n") >= 2  # a blank line still separates them


def test_typing_back_to_the_original_leaves_no_undo_step(tmp_path):
    doc = _doc(tmp_path, "chase.toml")
    doc.set_shot_text(0, "duration", "2")
    assert doc.can_undo and doc.dirty
    doc.set_shot_text(0, "duration", "1.0")
    assert not doc.can_undo and not doc.dirty


@pytest.mark.parametrize("fmt", ["toml", "yaml"])
def test_comment_between_shots_survives_structural_edits(tmp_path, fmt):
    # A section comment after a blank line ("# Act 2") must not vanish when shots are added,
    # duplicated, moved or deleted (the blank-line normalisation used to drop it in YAML).
    if fmt == "toml":
        text = ('[[shots]]\nid = "a"\nprompt = "a red circle moves left"\n\n# Act 2\n'
                '[[shots]]\nid = "b"\nprompt = "a red circle bounces"\n')
    else:
        text = ('shots:\n  - id: a\n    prompt: a red circle moves left\n\n# Act 2\n'
                '  - id: b\n    prompt: a red circle bounces\n')
    path = tmp_path / f"film.{fmt}"
    path.write_text(text)
    doc = StoryDocument.open(path)
    for edit in (lambda: doc.add_shot(), lambda: doc.duplicate_shot(0), lambda: doc.move_shot(2, -1),
                 lambda: doc.delete_shot(3)):
        edit()
        assert doc.to_text().count("# Act 2") == 1, doc.to_text()
        assert doc.validate() == []
    assert doc.shot_count() == 3


def test_section_comment_after_a_block_list_is_not_copied(tmp_path):
    # In YAML the "# Act 2" after a shot whose last field is a block list hangs on the list's
    # last item, not on the shot: duplicating the shot used to copy it.
    text = ("characters:\n  hero: {prompt: a red circle}\n  foe: {prompt: a blue square}\n"
            "shots:\n  - id: a\n    prompt: a red circle moves left\n    characters:\n"
            "      - hero\n      - foe\n\n  # Act 2\n  - id: b\n    prompt: a red circle bounces\n")
    path = tmp_path / "film.yaml"
    path.write_text(text)
    doc = StoryDocument.open(path)
    for edit in (lambda: doc.duplicate_shot(0), lambda: doc.add_shot(0), lambda: doc.delete_shot(1),
                 lambda: doc.set_shot_field(0, "seed", 7)):
        edit()
        out = doc.to_text()
        assert out.count("# Act 2") == 1 and out.index("# Act 2") < out.index("id: b"), out
        assert doc.validate() == []
    assert doc.shot_ids()[-1] == "b"


@pytest.mark.parametrize("fmt", ["toml", "yaml"])
def test_deleting_the_shot_before_a_section_comment_keeps_the_comment(tmp_path, fmt):
    if fmt == "toml":
        shot = '[[shots]]\nid = "{}"\nprompt = "a red circle"\n'
        text = shot.format("x") + "\n" + shot.format("a") + "\n# Act 2\n" + shot.format("b")
    else:
        shot = "  - id: {}\n    prompt: a red circle\n"
        text = "shots:\n" + shot.format("x") + "\n" + shot.format("a") + "\n# Act 2\n" + shot.format("b")
    path = tmp_path / f"film.{fmt}"
    path.write_text(text)
    doc = StoryDocument.open(path)
    doc.delete_shot(1)
    out = doc.to_text()
    assert doc.shot_ids() == ["x", "b"] and doc.validate() == []
    assert out.count("# Act 2") == 1 and out.index("# Act 2") < out.index("b\n" if fmt == "yaml" else '"b"'), out


def test_clearing_a_film_field_that_created_the_film_table_keeps_history_in_step(tmp_path):
    path = tmp_path / "film.toml"
    original = '[[shots]]\nid = "a"\nprompt = "a red circle"\n'
    path.write_text(original)
    doc = StoryDocument.open(path)
    doc.set_film_field("title", "x")  # creates [film]
    assert "[film]" in doc.to_text()
    doc.set_film_field("title", None)  # same typing run: back to where it began
    assert doc.to_text() == original and not doc.can_undo and not doc.can_redo


def test_a_plan_snapshot_older_than_a_finished_shot_keeps_it_cached(tmp_path):
    from types import SimpleNamespace

    from storyboard.render import ShotResult
    from storyboard.tui.studio import Studio

    shutil.copy(EXAMPLES / "chase.toml", tmp_path / "chase.toml")
    studio = Studio(tmp_path / "chase.toml")
    assert studio.open()
    plan = SimpleNamespace(shots=[SimpleNamespace(key="k1"), SimpleNamespace(key="k2")])
    assert studio.apply_plan(studio.generation, plan, frozenset(), None)
    # A re-plan's worker looks at the cache; k1 finishes before its result arrives.
    studio.shot_finished(ShotResult("a", "rendered", 1.0, "k1"))
    studio.apply_plan(studio.generation, plan, frozenset({"k2"}), None)
    assert studio.cached == {"k1", "k2"}
    # A plan of a later version saw the cache after k1 finished: its snapshot decides (an
    # entry deleted meanwhile is stale again).
    studio.revalidate()
    studio.apply_plan(studio.generation, plan, frozenset({"k2"}), None)
    assert studio.cached == {"k2"}
