"""The terminal studio (`storyboard edit`), driven headless through Textual's pilot."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("textual")

from textual.widgets import Input  # noqa: E402
from textual.worker import WorkerState  # noqa: E402

from motionq.api import Progress  # noqa: E402
from storyboard.cache import RenderCache  # noqa: E402
from storyboard.load import load_storyboard, starter_text  # noqa: E402
from storyboard.plan import build_plan  # noqa: E402
from storyboard.render import RenderJob  # noqa: E402
from storyboard.tui.app import StoryboardApp, run_app  # noqa: E402
from storyboard.tui.contact_sheet import ContactSheet  # noqa: E402
from storyboard.tui.dialogs import ConfirmQuit, ConfirmRestore, NamePrompt  # noqa: E402
from storyboard.tui.document import recovery_path  # noqa: E402
from storyboard.tui.errors_panel import ErrorsPanel  # noqa: E402
from storyboard.tui.preview import Preview, fit, halfblock_lines  # noqa: E402
from storyboard.tui.shot_list import ShotList  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SIZE = (100, 30)

pytestmark = pytest.mark.anyio  # async tests run on anyio's pytest plugin (asyncio backend)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"

TINY_FILM = """\
# A tiny film for the studio's tests.
schema_version = 1

[film]
title = "Tiny"
fps = 8
size = [32, 32]
model = "tiny"
steps = 3

[consistency]
variant = "vanilla"   # shot-by-shot renders, so tests can watch single shots

[characters.hero]
prompt = "a red circle"   # the hero

[[shots]]
id = "one"
prompt = "{hero} moves right"
duration = 0.5

[[shots]]
id = "two"
prompt = "a blue square jumps"   # no character
duration = 0.5

[[shots]]
id = "three"
prompt = "{hero} jumps"
duration = 0.5
"""


@pytest.fixture
def fake_fingerprint(monkeypatch):
    """Plans without hashing a model (fake backbones have no files)."""
    import motionq.backbones

    monkeypatch.setattr(motionq.backbones, "model_fingerprint", lambda name: "0123456789abcdef")


@pytest.fixture
def tiny_model(monkeypatch):
    """The tiny random Wan, resolvable by name for planning (fingerprint) and rendering."""
    tiny = pytest.importorskip("motionq.backbones.tiny")
    if not hasattr(tiny, "model_folder"):  # the registry asks the module for its folder
        monkeypatch.setattr(tiny, "model_folder", lambda: tiny.build_tiny(), raising=False)
    return tiny


@pytest.fixture
def film(tmp_path) -> Path:
    path = tmp_path / "film.toml"
    path.write_text(TINY_FILM)
    return path


async def settle(pilot) -> None:
    """Let messages, workers (plans, renders) and the messages they post all finish."""
    app = pilot.app
    await pilot.pause()
    for _ in range(6):
        await app.workers.wait_for_complete()
        await pilot.pause()  # handle what the workers posted (which may start another worker)
        if not any(w.state in (WorkerState.PENDING, WorkerState.RUNNING) for w in app.workers):
            break


def statuses(app) -> list[str]:
    return [row.status for row in app.studio.shot_rows()]


class FakeBackbone:
    """Renders flat frames; optionally blocks in its `block_on`-th call until released."""

    name = "fake"

    def __init__(self, block_on: int | None = None):
        self.calls = 0
        self.block_on = block_on
        self.blocked = threading.Event()
        self.release = threading.Event()

    def fingerprint(self) -> str:
        return "fake"

    def native_size(self) -> tuple[int, int]:
        return (16, 16)

    def render_group(self, request, progress=None):
        self.calls += 1
        out = {}
        for shot in request.shots:
            for step in range(1, 5):
                if self.calls == self.block_on and step == 2:
                    self.blocked.set()
                    self.release.wait(5)
                if progress:
                    progress(Progress((shot.shot_id,), step, 4))
            out[shot.shot_id] = np.full((shot.num_frames, 16, 16, 3), 40 * self.calls, np.uint8)
        return out


# -- editing ----------------------------------------------------------------------------------


async def test_add_shot_edit_prompt_error_appears_and_clears(film, fake_fingerprint):
    app = StoryboardApp(film, load_backbone=lambda name: FakeBackbone())
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.studio.doc.shot_ids() == ["one", "two", "three"]
        await pilot.press("a")  # after the selected (first) shot
        await settle(pilot)
        assert app.studio.doc.shot_count() == 4
        assert app.selection == ("shot", 1)
        new_id = app.studio.doc.shot_ids()[1]
        assert app.query_one(ShotList).get_row_at(1)[0].plain == new_id

        prompt = app.query_one("#shot-prompt", Input)
        prompt.focus()
        await pilot.press("end", "ctrl+u", *"{x}")  # clear the input, then type
        await settle(pilot)
        panel = app.query_one(ErrorsPanel)
        assert panel.display
        assert [p.field for p in panel.problems] == ["shots[1].prompt"]
        assert "unknown character {x}" in panel.problems[0].message
        assert str(panel.problems[0]).startswith(f"{film}:")  # FILE:LINE like `storyboard validate`
        assert prompt.has_class("-invalid")
        assert statuses(app)[1] == "invalid"

        await pilot.press("backspace", "backspace")  # "{": another problem, live
        await settle(pilot)
        assert "unmatched '{'" in panel.problems[0].message

        await pilot.press(*"hero}")
        await settle(pilot)
        assert app.studio.doc.shot(1)["prompt"] == "{hero}"
        assert not panel.display and panel.problems == []
        assert not prompt.has_class("-invalid")
        assert statuses(app)[1] == "stale"
        assert app.studio.doc.dirty


async def test_undo_redo(film, fake_fingerprint):
    app = StoryboardApp(film)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("a", "a")
        await settle(pilot)
        assert app.studio.doc.shot_count() == 5
        await pilot.press("ctrl+z")
        await settle(pilot)
        assert app.studio.doc.shot_count() == 4
        await pilot.press("ctrl+z")
        await settle(pilot)
        assert app.studio.doc.shot_count() == 3 and not app.studio.doc.dirty
        await pilot.press("ctrl+y")
        await settle(pilot)
        assert app.studio.doc.shot_count() == 4
        # Undo works from inside an input too (priority binding), and reverts a typed word.
        await pilot.press("enter")  # shot list -> editor
        await pilot.press("tab")
        assert isinstance(app.focused, Input) and app.focused.id == "shot-prompt"
        before = app.studio.doc.shot(app.selection[1])["prompt"]
        await pilot.press(*" ok")
        await settle(pilot)
        assert app.studio.doc.shot(app.selection[1])["prompt"] == before + " ok"
        await pilot.press("ctrl+z")
        await settle(pilot)
        assert app.studio.doc.shot(app.selection[1])["prompt"] == before
        assert app.query_one("#shot-prompt", Input).value == before


async def test_move_duplicate_delete_reroll(film, fake_fingerprint):
    app = StoryboardApp(film)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("J")  # move the first shot down
        await settle(pilot)
        assert app.studio.doc.shot_ids() == ["two", "one", "three"]
        assert app.selection == ("shot", 1)
        await pilot.press("K")
        await settle(pilot)
        assert app.studio.doc.shot_ids() == ["one", "two", "three"]
        await pilot.press("d")
        await settle(pilot)
        assert app.studio.doc.shot_ids() == ["one", "one-2", "two", "three"]
        await pilot.press("x")
        await settle(pilot)
        assert app.studio.doc.shot_ids() == ["one", "two", "three"]
        await pilot.press("s")
        await settle(pilot)
        seed = app.studio.doc.get_shot_field(app.selection[1], "seed")
        assert isinstance(seed, int)
        assert app.query_one("#shot-seed", Input).value == str(seed)


async def test_rename_character_references_follow(film, fake_fingerprint):
    app = StoryboardApp(film)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("tab")  # shot list -> character list
        assert app.selection == ("character", "hero")
        await pilot.press("N")
        await pilot.pause()
        assert isinstance(app.screen, NamePrompt)
        await pilot.press("end", "ctrl+u", *"lead", "enter")
        await settle(pilot)
        doc = app.studio.doc
        assert doc.character_names() == ["lead"]
        assert doc.shot(0)["prompt"] == "{lead} moves right"
        assert doc.shot(2)["prompt"] == "{lead} jumps"
        assert "# the hero" in doc.to_text()  # the character's comment stays with it
        assert app.studio.problems == []
        assert app.selection == ("character", "lead")
        # Add a character through the dialog too; a taken name is refused in place.
        await pilot.press("A")
        await pilot.press(*"lead", "enter")
        await pilot.pause()
        assert isinstance(app.screen, NamePrompt)  # still asking
        await pilot.press("end", "ctrl+u", *"pal", "enter")
        await settle(pilot)
        assert doc.character_names() == ["lead", "pal"]
        assert app.focused.id == "character-prompt"


@pytest.mark.parametrize("fmt", ["toml", "yaml"])
async def test_save_and_reload_keep_comments(tmp_path, fmt, fake_fingerprint):
    path = tmp_path / f"film.{fmt}"
    path.write_text(starter_text(fmt))
    app = StoryboardApp(path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("down")  # second shot
        await pilot.press("enter", "tab", *" now")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert not app.studio.doc.dirty
    text = path.read_text()
    original = starter_text(fmt).splitlines()
    # Only the edited line differs: comments, order and formatting are the author's.
    assert len(text.splitlines()) == len(original)
    changed = [(a, b) for a, b in zip(original, text.splitlines()) if a != b]
    assert len(changed) == 1 and changed[0][1].endswith(' now"') and "bounces" in changed[0][0]
    assert load_storyboard(path).shots[1].prompt == "{hero} bounces on a navy background now"
    assert not recovery_path(path).exists()

    app = StoryboardApp(path)  # reload
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.studio.doc.shot(1)["prompt"] == "{hero} bounces on a navy background now"
        assert app.studio.doc.to_text() == text


async def test_quit_asks_about_unsaved_changes(film, fake_fingerprint):
    app = StoryboardApp(film)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmQuit)
        await pilot.press("escape")  # stay
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmQuit) and app.is_running
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmQuit)
        await pilot.press("s")  # save and quit
        await pilot.pause()
    assert load_storyboard(film).shots[1].id == app.studio.doc.shot_ids()[1]
    assert len(load_storyboard(film).shots) == 4


async def test_autosave_and_recovery(film, fake_fingerprint):
    app = StoryboardApp(film, autosave_delay=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        deadline = time.monotonic() + 5
        while not recovery_path(film).exists() and time.monotonic() < deadline:
            await pilot.pause(0.05)
        assert recovery_path(film).read_text() == app.studio.doc.to_text()
        edited = app.studio.doc.to_text()
        # A crash now: nothing saved, the recovery file stays.
    assert film.read_text() == TINY_FILM

    app = StoryboardApp(film)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, ConfirmRestore)
        await pilot.press("y")
        await settle(pilot)
        assert app.studio.doc.to_text() == edited and app.studio.doc.dirty
        assert app.studio.doc.shot_count() == 4
        await pilot.press("ctrl+z")  # the restore is one undoable step
        await settle(pilot)
        assert app.studio.doc.to_text() == TINY_FILM


async def test_broken_file_shows_problems(tmp_path, fake_fingerprint):
    path = tmp_path / "film.toml"
    path.write_text('[film\ntitle = "x"\n')
    app = StoryboardApp(path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        panel = app.query_one(ErrorsPanel)
        assert panel.display and panel.problems[0].field == "syntax"
        await pilot.press("a")  # editing is off, nothing breaks
        path.write_text(TINY_FILM)
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert app.studio.doc is not None and app.studio.doc.shot_count() == 3
        assert not panel.display


def test_run_app_creates_the_file_from_the_starter(tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(StoryboardApp, "run", lambda self: ran.append(self.studio.path))
    path = tmp_path / "new" / "film.yaml"
    run_app(path)
    assert ran == [path] and path.read_text() == starter_text("yaml")


# -- rendering ----------------------------------------------------------------------------------


async def test_render_with_tiny_model_and_cli_agrees(film, tiny_model):
    app = StoryboardApp(film)
    seen: list[list[str]] = []
    original = app.studio.shot_rows

    def spy():
        rows = original()
        seen.append([r.status for r in rows])
        return rows

    app.studio.shot_rows = spy  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert statuses(app) == ["stale", "stale", "stale"]
        await pilot.press("r")
        await settle(pilot)
        assert statuses(app) == ["cached", "cached", "cached"]
        flat = {s.split(" ")[0] for row in seen for s in row}
        assert {"queued", "rendering"} <= flat
        assert app.query_one(Preview).frames is not None  # the selected shot plays
        await pilot.press("t")
        await pilot.pause()
        assert isinstance(app.screen, ContactSheet)
        assert all(s.frames is not None for s in app.screen.shots)
        await pilot.press("escape")

    # What the studio rendered, the command line's planner and cache report as cached.
    plan = build_plan(load_storyboard(film))
    cache = RenderCache.beside(film)
    assert all(cache.has(s.key) for s in plan.shots)


async def test_cli_render_shows_as_cached_in_the_studio(film, tiny_model):
    from motionq.backbones import load_backbone

    sb = load_storyboard(film)
    plan = build_plan(sb)
    RenderJob(plan, RenderCache.beside(sb.path), lambda: load_backbone(plan.model), shots=["two"]).run()
    app = StoryboardApp(film)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert statuses(app) == ["stale", "cached", "stale"]
        await pilot.press("down")
        await settle(pilot)
        assert app.query_one(Preview).frames is not None
        # Editing the prompt makes it stale; undoing makes it cached again (same key).
        await pilot.press("enter", "tab", "x")
        await settle(pilot)
        assert statuses(app)[1] == "stale"
        await pilot.press("ctrl+z")
        await settle(pilot)
        assert statuses(app)[1] == "cached"


async def test_render_selected_and_failure(film, fake_fingerprint):
    class Failing(FakeBackbone):
        def render_group(self, request, progress=None):
            if request.shots[0].shot_id == "two":
                raise RuntimeError("out of sprites")
            return super().render_group(request, progress)

    app = StoryboardApp(film, load_backbone=lambda name: Failing())
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("R")  # the selected shot only
        await settle(pilot)
        assert statuses(app) == ["cached", "stale", "stale"]
        await pilot.press("r")
        await settle(pilot)
        st = statuses(app)
        assert st[0] == "cached" and st[2] == "cached"
        assert st[1].startswith("failed (RuntimeError: out of sprites")


async def test_cancel_keeps_finished_shots(film, fake_fingerprint):
    backbone = FakeBackbone(block_on=2)
    app = StoryboardApp(film, load_backbone=lambda name: backbone)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("r")
        deadline = time.monotonic() + 10
        while not backbone.blocked.is_set() and time.monotonic() < deadline:
            await pilot.pause(0.02)
        assert backbone.blocked.is_set()
        await pilot.pause(0.1)
        assert app.studio.rendering
        # Groups render in plan order: one and three share the hero, so three comes second.
        one, two, three = statuses(app)
        assert one == "cached" and three.startswith("rendering") and two == "queued"
        await pilot.press("c")
        backbone.release.set()
        await settle(pilot)
        assert not app.studio.rendering
        assert statuses(app) == ["cached", "stale", "stale"]
        # Escape cancels too (when no input has focus); the cache keeps what was done.
        backbone2 = FakeBackbone(block_on=1)
        app.backbones._loaded.clear()
        app.backbones.loader = lambda name: backbone2
        await pilot.press("r")
        while not backbone2.blocked.is_set() and time.monotonic() < deadline + 10:
            await pilot.pause(0.02)
        await pilot.press("escape")
        backbone2.release.set()
        await settle(pilot)
        assert statuses(app) == ["cached", "stale", "stale"]
    plan = build_plan(load_storyboard(film))
    assert [RenderCache.beside(film).has(s.key) for s in plan.shots] == [True, False, False]


# -- pieces ---------------------------------------------------------------------------------------


def test_halfblocks_keep_aspect_and_colours():
    assert fit((32, 32), (40, 10)) == (20, 20)
    assert fit((32, 64), (40, 10)) == (40, 20)
    frame = np.zeros((4, 2, 3), np.uint8)
    frame[0] = (255, 0, 0)
    frame[1] = (0, 255, 0)
    lines = halfblock_lines(frame, 2, 2)
    assert len(lines) == 2
    top = lines[0][0]
    assert top.text == "▀▀"
    assert top.style.color.triplet == (255, 0, 0) and top.style.bgcolor.triplet == (0, 255, 0)


def test_main_screen_snapshot(tmp_path, snap_compare, fake_fingerprint):
    path = tmp_path / "film.toml"
    shutil.copy(EXAMPLES / "two_friends.toml", path)

    async def run_before(pilot) -> None:
        await settle(pilot)

    assert snap_compare(StoryboardApp(path), terminal_size=SIZE, run_before=run_before)
