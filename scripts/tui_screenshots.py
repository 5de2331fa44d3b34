"""Screenshots of the studio for docs/tui.md: `python scripts/tui_screenshots.py docs/images`.

Drives the app headless through Textual's pilot on a copy of examples/chase.toml and saves
SVG screenshots (`App.save_screenshot`), and plain-text panes (`.txt`, for code blocks) when
given a second folder.

The frames in these pictures are drawn by a stand-in backbone, `SpriteSketch`, which reads each
prompt with the sprite world's caption parser and renders exactly that scene; it is what the
built-in animatic model is trained to produce, without needing its weights. Everything else
(plan, cache keys, render job, cache, preview, contact sheet) is the real code.
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from motionq.api import Progress

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


class SpriteSketch:
    """A backbone that draws the sprite-world scene a prompt describes (for screenshots)."""

    name = "sprite-sketch"

    def __init__(self, step_delay: float = 0.0, hold: threading.Event | None = None):
        self.step_delay = step_delay
        self.hold = hold  # when set: wait for it in the middle of the second call

    calls = 0

    def fingerprint(self) -> str:
        return "sprite-sketch"

    def native_size(self) -> tuple[int, int]:
        return (64, 64)

    def _frames(self, prompt: str, num_frames: int, seed: int) -> np.ndarray:
        from motionq.spriteworld.captions import parse_caption
        from motionq.spriteworld.world import Background, Character, Scene, render_scene, upscale

        parsed = parse_caption(prompt)
        starts = {"right": (7.0, 16.0), "left": (25.0, 16.0), "up": (16.0, 25.0), "down": (16.0, 7.0)}
        characters = []
        for n, c in enumerate(parsed["characters"][:2] or [{}]):
            motion = c.get("motion") or "stay"
            start = starts.get(motion.split("-")[-1] if motion.startswith(("up", "down")) and "-" in motion
                               else motion, (16.0, 16.0 + 6 * n))
            if motion in ("bounce", "zigzag"):
                start = (9.0 if c.get("direction") != "left" else 23.0, 18.0)
            characters.append(Character(
                shape=c.get("shape") or ("circle", "square", "triangle")[seed % 3],
                colour=c.get("colour") or ("purple", "orange", "cyan")[seed % 3],
                size=10.0, motion=motion, speed=2.2, start=start,
                heading=-1 if c.get("direction") == "left" else 1,
                amplitude={"bounce": 7.0, "zigzag": 5.0, "circle": 7.0}.get(motion, 0.0),
            ))
        scene = Scene(characters=tuple(characters),
                      background=Background(colour=parsed["background"] or "black", gradient=True),
                      num_frames=num_frames)
        return upscale(render_scene(scene), 2)

    def render_group(self, request, progress=None):
        SpriteSketch.calls += 1
        out = {}
        for shot in request.shots:
            for step in range(1, shot.steps + 1):
                if self.hold is not None and SpriteSketch.calls == 2 and step == shot.steps // 2:
                    self.hold.wait(30)
                if progress:
                    progress(Progress((shot.shot_id,), step, shot.steps))
                if self.step_delay:
                    time.sleep(self.step_delay)
            out[shot.shot_id] = self._frames(shot.prompt, shot.num_frames, shot.seed)
        return out


def _text(app) -> str:
    from rich.console import Console

    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True,
                      color_system="truecolor", record=True, legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return "\n".join(line.rstrip() for line in console.export_text().splitlines())


async def _shoot(out: Path, text_out: Path | None) -> list[Path]:
    import motionq.backbones

    # The sketch backbone has no model files to hash: give the planner a fixed fingerprint.
    real_fingerprint = motionq.backbones.model_fingerprint
    motionq.backbones.model_fingerprint = lambda name: "5b3e7a0c9d1f2468"
    work = Path(tempfile.mkdtemp(prefix="storyboard-shots-"))
    shutil.copy(EXAMPLES / "chase.toml", work / "chase.toml")
    cwd = Path.cwd()
    os.chdir(work)  # as `storyboard edit chase.toml` in the film's folder: problems say chase.toml:LINE
    try:
        return await _drive(Path("chase.toml"), out, text_out)
    finally:
        os.chdir(cwd)
        shutil.rmtree(work, ignore_errors=True)
        motionq.backbones.model_fingerprint = real_fingerprint


async def _drive(film: Path, out: Path, text_out: Path | None) -> list[Path]:
    from storyboard.tui.app import StoryboardApp
    from storyboard.tui.preview import Preview

    written: list[Path] = []

    async def settle(pilot) -> None:
        for _ in range(3):
            await pilot.pause()
            await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    def save(app, name: str) -> None:
        app.save_screenshot(filename=f"{name}.svg", path=str(out))
        written.append(out / f"{name}.svg")
        if text_out is not None:
            (text_out / f"{name}.txt").write_text(_text(app) + "\n")
            written.append(text_out / f"{name}.txt")

    def freeze(app, frame: int = 4) -> None:
        preview = app.query_one(Preview)
        preview.playing = False
        preview.index = frame
        preview._update_titles()
        preview.refresh()

    hold = threading.Event()
    app = StoryboardApp(film, load_backbone=lambda name: SpriteSketch(step_delay=0.02, hold=hold))
    app.title = "storyboard"
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        save(app, "tui-start")
        # Render; grab the screen while the second shot is half done.
        await pilot.press("r")
        for _ in range(400):
            if app.studio.progress is not None and app.studio.progress.done >= 1 \
                    and app.studio.progress.step >= 6:
                break
            await pilot.pause(0.02)
        await pilot.pause(0.2)
        save(app, "tui-rendering")
        hold.set()
        await settle(pilot)
        await pilot.press("down", "down")
        await settle(pilot)
        freeze(app)
        save(app, "tui-main")
        # A typo in a prompt: the problem appears as you type.
        await pilot.press("enter", "tab", "end", *" with {vilain}")
        await settle(pilot)
        save(app, "tui-problem")
        await pilot.press("ctrl+z", "escape")
        await settle(pilot)
        await pilot.press("t")
        await settle(pilot)
        save(app, "tui-sheet")
        await pilot.press("escape")
        await pilot.press("a", "q")
        await settle(pilot)
        save(app, "tui-quit")
        await pilot.press("escape")
    app = StoryboardApp(film, load_backbone=lambda name: SpriteSketch())
    async with app.run_test(size=(200, 50)) as pilot:
        await settle(pilot)
        await pilot.press("down", "down", "down")
        await settle(pilot)
        freeze(app, 5)
        save(app, "tui-wide")
    return written


def main(argv: list[str] | None = None) -> None:
    """`python scripts/tui_screenshots.py [SVG_DIR [TEXT_DIR]]` (default docs/images)."""
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0] if argv else "docs/images").absolute()
    out.mkdir(parents=True, exist_ok=True)
    text_out = Path(argv[1]).absolute() if len(argv) > 1 else None
    if text_out is not None:
        text_out.mkdir(parents=True, exist_ok=True)
    for path in asyncio.run(_shoot(out, text_out)):
        print(path)


if __name__ == "__main__":
    main()
