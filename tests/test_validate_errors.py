"""Every broken storyboard in tests/broken/ yields exactly the expected problems, at the right
line, on the right field, with a helpful message; all problems of a file are reported at once."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from storyboard.errors import Problem, StoryboardError, format_field
from storyboard.load import check_clip, load_storyboard, load_text, validate_file, validate_text

BROKEN = Path(__file__).parent / "broken"

# file -> [(line, field, text the message must contain), ...] in report order.
EXPECTED: dict[str, list[tuple[int, str, str]]] = {
    "syntax.toml": [(3, "syntax", "Expected '=' after a key")],
    "syntax.yaml": [(7, "syntax", "hint: quote text that starts with {")],
    "unknown_top_field.toml": [(3, "flim", "unknown field (did you mean 'film'?)")],
    "unknown_shot_field.toml": [
        (7, "shots[1].prompt", "required field is missing"),
        (9, "shots[1].promt", "unknown field (did you mean 'prompt'?)"),
    ],
    "wrong_type.toml": [
        (6, "shots[0].duration", "must be a number, got 'long' (seconds, 0 < duration <= 60)")
    ],
    "unknown_character_prompt.toml": [
        (15, "shots[1].prompt", "unknown character {villian} (did you mean 'villain'?)")
    ],
    "unknown_character_list.yaml": [
        (10, "shots[0].characters[1]", "unknown character 'villian' (did you mean 'villain'?)")
    ],
    "duplicate_id.toml": [(8, "shots[1].id", "duplicate shot id 'intro' (already used by shots[0]")],
    "missing_prompt.toml": [(7, "shots[1].prompt", "required field is missing")],
    "clip_missing.toml": [(6, "shots[0].motion.clip", "file 'clips/nowhere.mp4' not found")],
    "clip_unreadable.toml": [
        (7, "shots[0].motion.clip", "'clips/not_a_video.mp4' cannot be read as a video")
    ],
    "path_outside.toml": [(8, "shots[0].motion.clip", "'../outside.mp4' is outside the storyboard's folder")],
    "path_absolute.yaml": [(5, "characters.hero.mask", "is outside the storyboard's folder")],
    "bad_duration.toml": [
        (6, "shots[0].duration", "must be > 0 (seconds, 0 < duration <= 60)"),
        (11, "shots[1].duration", "must be > 0 (seconds, 0 < duration <= 60)"),
        (16, "shots[2].duration", "must be <= 60 (seconds, 0 < duration <= 60)"),
    ],
    "bad_size.toml": [(4, "film.size", "width 255 is odd ([width, height] in pixels, even")],
    "bad_fps.toml": [(4, "film.fps", "must be >= 1 (frames per second of the edit, whole number 1..60)")],
    "unknown_variant.toml": [
        (4, "consistency.variant", "unknown value 'sdsa+qpress' (did you mean 'sdsa+qpres'?)")
    ],
    "unknown_transition.toml": [
        (6, "shots[0].transition", "unknown value 'wipe' ('cut', 'crossfade' or 'fade')")
    ],
    "transition_too_long.toml": [
        (7, "shots[0].transition.duration", "a 1.5 s crossfade is too long (must be shorter than both shots")
    ],
    "last_transition.toml": [(10, "shots[1].transition", "the last shot has no next shot")],
    "bad_strength.toml": [(7, "shots[0].motion.strength", "must be <= 1 (how closely to follow the clip")],
    "bad_version.toml": [(1, "schema_version", "unsupported version 99 (supported: 1)")],
    "empty_shots.toml": [(2, "shots", "must not be empty (at least one shot")],
    "duplicate_key.yaml": [(6, "shots[0].duration", "duplicate key")],
    "anchors_off_unquoted.yaml": [(3, "consistency.anchors", 'write "off" in quotes')],
    "cut_with_duration.toml": [
        (4, "film.fps", "must be a whole number, got 8.0"),
        (9, "shots[0].transition.duration", "a cut has no duration: set the type to 'crossfade' or 'fade' "
                                             "(the type defaults to 'cut')"),
    ],
    "motion_not_mapping.yaml": [
        (4, "shots[0].prompt", "unknown character {hero} (no characters are defined; add one to 'characters')"),
        (5, "shots[0].motion", '(a mapping: { clip: "clips/move.mp4", strength: 0.6 })'),
    ],
    "several.toml": [
        (6, "film.fps", "must be <= 60"),
        (15, "shots[0].duration", "must be > 0"),
        (18, "shots[1].id", "duplicate shot id 'intro'"),
        (19, "shots[1].prompt", "unknown character {heor} (did you mean 'hero'?)"),
        (20, "shots[1].colour", "unknown field (allowed: id, prompt,"),
        (25, "shots[2].motion.clip", "file 'clips/nowhere.mp4' not found"),
        (25, "shots[2].motion.strength", "must be <= 1"),
    ],
    "several.yaml": [
        (5, "film.size", "height 17 is odd"),
        (12, "shots[0].duration", "must be a number, got 'long'"),
        (15, "shots[1].characters[1]", "unknown character 'villain' (defined characters: hero)"),
        (16, "shots[1].transition", "unknown value 'crosfade' (did you mean 'crossfade'?)"),
        (17, "shots[2].prompt", "required field is missing"),
        (18, "shots[2].prmpt", "unknown field (did you mean 'prompt'?)"),
    ],
}


def write_clip(path: Path, frames: int = 4) -> Path:
    """A tiny real video OpenCV can read back."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 8, (32, 32))
    for i in range(frames):
        writer.write(np.full((32, 32, 3), 40 * i, np.uint8))
    writer.release()
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a readable clip and a text file posing as one, for the clip cases."""
    root = tmp_path_factory.mktemp("broken")
    write_clip(root / "clips" / "ok.mp4")
    (root / "clips" / "not_a_video.mp4").write_text("this is not a video\n")
    return root


def test_every_broken_file_has_expectations() -> None:
    on_disk = {p.name for p in BROKEN.iterdir() if p.suffix in (".toml", ".yaml", ".yml")}
    assert on_disk == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_broken_file(name: str, world: Path) -> None:
    path = world / name
    shutil.copy(BROKEN / name, path)
    problems = validate_file(path)
    got = [(p.line, p.field) for p in problems]
    want = [(line, field) for line, field, _ in EXPECTED[name]]
    assert got == want, "\n".join(map(str, problems))
    for problem, (_, _, text) in zip(problems, EXPECTED[name]):
        assert text in problem.message, str(problem)
        assert problem.file == str(path)
    with pytest.raises(StoryboardError) as info:
        load_storyboard(path)
    assert info.value.problems == problems


def test_problem_line_format() -> None:
    path = BROKEN / "bad_duration.toml"
    first = validate_file(path)[0]
    assert str(first) == f"{path}:6: shots[0].duration: must be > 0 (seconds, 0 < duration <= 60)"
    error = StoryboardError(validate_file(path))
    assert str(error).count("\n") == 2  # one line per problem
    assert str(Problem("a.toml", None, "file", "not found")) == "a.toml: file: not found"


def test_several_problems_are_all_reported() -> None:
    assert len(validate_file(BROKEN / "several.toml")) >= 3
    assert len(validate_file(BROKEN / "several.yaml")) >= 3


def test_allow_outside(tmp_path: Path) -> None:
    board_dir = tmp_path / "board"
    board_dir.mkdir()
    shutil.copy(BROKEN / "path_outside.toml", board_dir / "sb.toml")
    assert [p.field for p in validate_file(board_dir / "sb.toml")] == ["shots[0].motion.clip"]
    # Allowed outside but absent: now it's "not found" ...
    missing = validate_file(board_dir / "sb.toml", allow_outside=True)
    assert len(missing) == 1 and "not found" in missing[0].message
    # ... and present: it loads, with the clip resolved to an absolute path.
    write_clip(tmp_path / "outside.mp4")
    board = load_storyboard(board_dir / "sb.toml", allow_outside=True)
    assert board.shots[0].motion is not None
    assert board.shots[0].motion.clip_path == tmp_path / "outside.mp4"


def test_symlink_out_of_the_folder_is_outside(tmp_path: Path) -> None:
    board_dir = tmp_path / "board"
    board_dir.mkdir()
    write_clip(tmp_path / "outside.mp4")
    (board_dir / "clips").symlink_to(tmp_path, target_is_directory=True)
    text = (BROKEN / "path_outside.toml").read_text().replace("../outside.mp4", "clips/outside.mp4")
    (board_dir / "sb.toml").write_text(text)
    problems = validate_file(board_dir / "sb.toml")
    assert [p.field for p in problems] == ["shots[0].motion.clip"]
    assert "outside the storyboard's folder through a symbolic link" in problems[0].message
    assert validate_file(board_dir / "sb.toml", allow_outside=True) == []


def test_check_clip(world: Path, tmp_path: Path) -> None:
    assert check_clip(world / "clips" / "ok.mp4") is None
    assert check_clip(world / "clips" / "not_a_video.mp4") == "cannot be read as a video"
    assert check_clip(tmp_path / "absent.mp4") == "is not a file"
    assert check_clip(tmp_path) == "is not a file"


@pytest.mark.parametrize(
    "size, text",
    [
        ("[0, 256]", "width 0 is out of range"),
        ("[256, 8192]", "height 8192 is out of range"),
        ("[256]", "must have exactly 2 numbers, got 1"),
        ('"256x256"', "must be a list, got '256x256'"),
        ("[256.0, 256]", "must be a whole number"),
    ],
)
def test_bad_sizes(size: str, text: str, tmp_path: Path) -> None:
    src = f'schema_version = 1\n[film]\nsize = {size}\n[[shots]]\nid = "a"\nprompt = "a red circle"\n'
    problems = validate_text(src, tmp_path / "sb.toml")
    assert len(problems) == 1 and problems[0].line == 3, problems
    assert problems[0].field.startswith("film.size")
    assert text in problems[0].message


@pytest.mark.parametrize(
    "fps, text",
    [("61", "must be <= 60"), ("8.5", "must be a whole number, got 8.5"), ("true", "must be a whole number, got true")],
)
def test_bad_fps(fps: str, text: str, tmp_path: Path) -> None:
    src = f'schema_version = 1\n[film]\nfps = {fps}\n[[shots]]\nid = "a"\nprompt = "a red circle"\n'
    problems = validate_text(src, tmp_path / "sb.toml")
    assert [(p.line, p.field) for p in problems] == [(3, "film.fps")]
    assert text in problems[0].message


def test_yaml_positions_and_wording(tmp_path: Path) -> None:
    src = (
        "schema_version: 1\n"
        "characters:\n"
        "  hero: {prompt: a red circle}\n"
        "shots:\n"
        "  - id: a\n"
        "    prompt: {hero}\n"  # valid YAML: a mapping, not text
        "  - {id: b, prompt: x, motion: nope}\n"
    )
    problems = validate_text(src, tmp_path / "sb.yaml")
    assert [(p.line, p.field) for p in problems] == [(6, "shots[0].prompt"), (7, "shots[1].motion")]
    assert "must be text, got a mapping" in problems[0].message
    assert "quote text that starts with {" in problems[0].message
    assert "must be a mapping, got 'nope'" in problems[1].message


def test_transitions_must_fit_in_a_shot(tmp_path: Path) -> None:
    shots = "".join(
        f'[[shots]]\nid = "s{i}"\nprompt = "x"\nduration = 1.0\ntransition = {{ type = "crossfade", duration = 0.6 }}\n'
        for i in range(2)
    ) + '[[shots]]\nid = "s2"\nprompt = "x"\n'
    problems = validate_text("schema_version = 1\n" + shots, tmp_path / "sb.toml")
    # s1 receives 0.6 s from s0 and gives 0.6 s to s2: 1.2 s of transitions in a 1.0 s shot.
    assert [p.field for p in problems] == ["shots[1].transition.duration"]
    assert "0.6 s + 0.6 s" in problems[0].message


def test_misc_problems(tmp_path: Path) -> None:
    src = (
        "schema_version = 1\n"
        'title = "misplaced"\n'
        '[characters."bad name"]\n'
        'prompt = "a {weird} shape"\n'
        "[[shots]]\n"
        'id = "has space"\n'
        'prompt = "{bad name"\n'
        "anchor = true\n"
        "seed = -1\n"
    )
    problems = {(p.line, p.field): p.message for p in validate_text(src, tmp_path / "sb.toml")}
    assert "'title' belongs in the film table" in problems[(2, "title")]
    assert "invalid character name" in problems[(3, 'characters["bad name"]')]
    assert "cannot contain { or }" in problems[(4, 'characters["bad name"].prompt')]
    assert "is not a valid name" in problems[(6, "shots[0].id")]
    assert "unmatched '{'" in problems[(7, "shots[0].prompt")]
    assert "no characters" in problems[(8, "shots[0].anchor")]
    assert "must be >= 0" in problems[(9, "shots[0].seed")]


def test_file_level_problems(tmp_path: Path) -> None:
    assert [str(p) for p in validate_file(tmp_path / "absent.toml")] == [f"{tmp_path / 'absent.toml'}: file: not found"]
    (tmp_path / "sb.json").write_text("{}")
    assert "unknown file type '.json'" in validate_file(tmp_path / "sb.json")[0].message
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    assert validate_file(tmp_path / "list.yaml")[0].message == "must be a mapping of fields, got a list"
    (tmp_path / "empty.yaml").write_text("# nothing\n")
    assert [p.field for p in validate_file(tmp_path / "empty.yaml")] == ["shots"]
    with pytest.raises(StoryboardError):
        load_text('schema_version = 1\n[[shots]]\nid = "a"\n', tmp_path / "x.toml")


def test_format_field() -> None:
    assert format_field(("shots", 2, "duration")) == "shots[2].duration"
    assert format_field(("characters", "a b", "prompt")) == 'characters["a b"].prompt'
    assert format_field(("characters", "x", "[key]")) == "characters.x"


def test_yaml_anchors_and_extension_keys(tmp_path: Path) -> None:
    src = (
        "schema_version: 1\n"
        "x-defaults: &d\n"
        "  duration: 1.0\n"
        "shots:\n"
        "  - <<: *d\n"
        "    id: a\n"
        "    prompt: x\n"
        "  - <<: *d\n"
        "    id: b\n"
        "    prompt: y\n"
        "    duration: -1\n"  # overriding a merged key is not a duplicate
    )
    problems = validate_text(src, tmp_path / "sb.yaml")
    assert [(p.line, p.field) for p in problems] == [(11, "shots[1].duration")]
    board = load_text(src.replace("-1", "2.0"), tmp_path / "sb.yaml")
    assert [s.duration for s in board.shots] == [1.0, 2.0]


@pytest.mark.parametrize("model,message", [
    ("wan3", "unknown model 'wan3' (did you mean 'wan2.1'?"),
    ("Animatic", "did you mean 'animatic'?"),
    ("./clips", "is not a model folder in diffusers layout"),
    ("./nowhere", "model folder './nowhere' not found"),
])
def test_unknown_model_is_a_problem_at_its_line(tmp_path: Path, model: str, message: str) -> None:
    (tmp_path / "clips").mkdir()
    (tmp_path / "m.toml").write_text(f'[film]\nmodel = "{model}"\n\n[[shots]]\nid = "a"\nprompt = "a red circle"\n')
    problems = validate_file(tmp_path / "m.toml")
    assert [(p.line, p.field) for p in problems] == [(2, "film.model")]
    assert message in problems[0].message


def test_shot_shorter_than_a_frame_and_mixed_steps_in_one_loop(tmp_path: Path) -> None:
    base = ('[characters.hero]\nprompt = "a red circle"\n\n'
            '[[shots]]\nid = "a"\nprompt = "{hero} moves left"\nsteps = 10\n\n'
            '[[shots]]\nid = "b"\nprompt = "{hero} bounces"\nsteps = 12\n')
    (tmp_path / "sb.toml").write_text(base)
    [p] = validate_file(tmp_path / "sb.toml")
    assert (p.line, p.field) == (12, "shots[1].steps") and "differs from 'a' (10)" in p.message
    # Only the first shot sets steps: that is the line to fix.
    (tmp_path / "sb.toml").write_text(base.replace("steps = 12\n", ""))
    [p] = validate_file(tmp_path / "sb.toml")
    assert (p.line, p.field) == (7, "shots[0].steps") and "steps 10 of 'a' differs from 'b' (20)" in p.message
    # Rendered one by one (vanilla), the two shots may differ.
    (tmp_path / "sb.toml").write_text(base + '\n[consistency]\nvariant = "vanilla"\n')
    assert validate_file(tmp_path / "sb.toml") == []
    (tmp_path / "sb.toml").write_text(base.replace("steps = 12", "steps = 10\nduration = 0.05"))
    [p] = validate_file(tmp_path / "sb.toml")
    assert p.field == "shots[1].duration" and "shorter than one frame at 8 fps" in p.message


def test_anchor_flag_with_anchors_off_or_unknown_character(tmp_path: Path) -> None:
    text = ('[consistency]\nanchors = "off"\n\n[characters.hero]\nprompt = "a red circle"\n\n'
            '[[shots]]\nid = "a"\nprompt = "{hero} moves left"\nanchor = true\n')
    (tmp_path / "sb.toml").write_text(text)
    [p] = validate_file(tmp_path / "sb.toml")
    assert p.field == "shots[0].anchor" and 'consistency.anchors is "off"' in p.message
    # An unknown character is reported as such, not as "the shot has no characters".
    (tmp_path / "sb.toml").write_text(text.replace('anchors = "off"', 'anchors = "auto"').replace("{hero}", "{hera}"))
    [p] = validate_file(tmp_path / "sb.toml")
    assert p.field == "shots[0].prompt" and "unknown character {hera}" in p.message


def test_a_value_with_line_breaks_still_gives_one_line_per_problem(tmp_path: Path) -> None:
    (tmp_path / "sb.toml").write_text('[film]\nfps = """8\n9"""\n[[shots]]\nid = "a\\nb"\nprompt = "x"\n')
    problems = validate_file(tmp_path / "sb.toml")
    assert [p.field for p in problems] == ["film.fps", "shots[0].id"]
    assert all("\n" not in str(p) for p in problems) and "'8\\n9'" in str(problems[0])


def test_a_number_as_a_yaml_key_is_reported_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "sb.yaml").write_text('characters:\n  hero: {prompt: a red circle}\n  2:\n    prompt: a blue square\n'
                                      'shots:\n  - id: a\n    prompt: "{hero} moves"\n')
    problems = validate_file(tmp_path / "sb.yaml")
    assert problems and all(p.line == 3 for p in problems), [str(p) for p in problems]
