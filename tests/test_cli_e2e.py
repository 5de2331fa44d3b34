"""The `storyboard` command end to end on the tiny test model, as a user runs it (subprocesses)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
BROKEN = Path(__file__).resolve().parent / "broken"


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "storyboard.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def tiny_copy(tmp_path: Path, name: str = "chase.toml", steps: int = 4) -> Path:
    """An example switched to the tiny model and few steps (fast), in its own folder."""
    src = EXAMPLES / name
    dst = tmp_path / name
    text = src.read_text()
    if name.endswith(".toml"):
        text = text.replace('model = "animatic"', 'model = "tiny"')
        text = re.sub(r"^steps = \d+", f"steps = {steps}", text, flags=re.M)
    else:
        text = text.replace("model: animatic", "model: tiny")
        text = re.sub(r"^(\s*)steps: \d+", rf"\g<1>steps: {steps}", text, flags=re.M)
    dst.write_text(text)
    if (EXAMPLES / "clips").is_dir() and not (tmp_path / "clips").exists():
        shutil.copytree(EXAMPLES / "clips", tmp_path / "clips")
    return dst


def test_validate_broken_files_exit_2_one_line_each():
    files = sorted(str(p) for p in BROKEN.iterdir() if p.suffix in (".toml", ".yaml", ".yml"))
    assert files
    r = run_cli("validate", *files)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) >= len(files)
    for line in lines:
        assert re.match(r"^.+\.(toml|ya?ml):\d+: \S+: .+", line), line


def test_validate_examples_pass():
    r = run_cli("validate", *map(str, sorted(EXAMPLES.glob("*.toml")) + sorted(EXAMPLES.glob("*.yaml"))))
    assert r.returncode == 0, r.stderr


def test_render_assemble_cache_and_exports(tmp_path):
    import opentimelineio as otio

    from storyboard.export import probe_video
    from storyboard.load import load_storyboard
    from storyboard.plan import build_plan

    film = tiny_copy(tmp_path)
    out = tmp_path / "out" / "film.mp4"
    r = run_cli("render", str(film), "-o", str(out), "--report", str(tmp_path / "r1.json"))
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "r1.json").read_text())
    assert {s["status"] for s in report["shots"]} == {"rendered"}
    assert all(set(s) >= {"id", "status", "seconds"} for s in report["shots"])

    plan = build_plan(load_storyboard(film))
    info = probe_video(out)
    assert info.codec == "h264" and info.pix_fmt == "yuv420p"
    assert (info.width, info.height) == tuple(plan.size)
    assert abs(info.duration - plan.duration) <= 1.0 / plan.fps + 1e-6

    timeline = otio.adapters.read_from_file(str(out.with_suffix(".otio")))
    clips = list(timeline.find_clips())
    assert [c.name for c in clips] == [s.shot_id for s in plan.shots]
    assert abs(timeline.duration().to_seconds() - plan.duration) <= 1.0 / plan.fps + 1e-6
    assert (out.parent / "film.sheet.png").is_file()

    r = run_cli("render", str(film), "-o", str(out), "--report", str(tmp_path / "r2.json"))
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "r2.json").read_text())
    assert {s["status"] for s in report["shots"]} == {"cached"}
    # Each finished shot says where it was made (provenance beside the key, not in it).
    r = run_cli("plan", str(film), "--json")
    assert r.returncode == 0, r.stderr
    for s in json.loads(r.stdout)["shots"]:
        assert s["status"] == "cached"
        assert s["rendered_on"]["device"] == "cpu" and s["rendered_on"]["dtype"] == "float32"
        assert s["rendered_on"]["torch"].startswith("2.") and s["rendered_on"]["diffusers"] != "unknown"
    r = run_cli("plan", str(film))
    n = len(plan.shots)
    assert re.search(rf"rendered on cpu float32, torch 2\.\S+, diffusers \S+, motionq \S+: {n} shots", r.stdout), r.stdout

    # Edit one shot: only that one renders again.
    film.write_text(film.read_text().replace("{hero} bounces", "{hero} moves left"))
    r = run_cli("render", str(film), "-o", str(out), "--report", str(tmp_path / "r3.json"))
    assert r.returncode == 0, r.stderr
    status = {s["id"]: s["status"] for s in json.loads((tmp_path / "r3.json").read_text())["shots"]}
    assert status.pop("safe") == "rendered" and set(status.values()) == {"cached"}

    # Exports again from the cache alone.
    (out.with_suffix(".otio")).unlink()
    r = run_cli("export", str(film), "--format", "otio", "-o", str(out.with_suffix(".otio")))
    assert r.returncode == 0, r.stderr
    assert out.with_suffix(".otio").is_file()


def test_toml_and_yaml_render_identical_frames(tmp_path):
    from storyboard.cache import RenderCache
    from storyboard.load import load_storyboard
    from storyboard.plan import build_plan

    frames = {}
    for name in ("chase.toml", "chase.yaml"):
        folder = tmp_path / name.replace(".", "_")
        folder.mkdir()
        film = tiny_copy(folder, name)
        r = run_cli("render", str(film), "--no-assemble")
        assert r.returncode == 0, r.stderr
        plan = build_plan(load_storyboard(film))
        cache = RenderCache.beside(film)
        frames[name] = [cache.get(s.key).frames for s in plan.shots]
    for a, b in zip(frames["chase.toml"], frames["chase.yaml"]):
        assert np.array_equal(a, b)


def test_kill_9_then_resume(tmp_path):
    film = tiny_copy(tmp_path, steps=150)  # slow enough to be killed mid-way
    cache_dir = tmp_path / ".storyboard" / "shots"
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", HF_HUB_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, "-m", "storyboard.cli", "render", str(film), "--no-assemble"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    done: list[str] = []
    while time.time() < deadline and proc.poll() is None:
        if cache_dir.is_dir():
            done = [p.name for p in cache_dir.iterdir() if not p.name.startswith(".")]
            if done:
                break
        time.sleep(0.02)
    assert proc.poll() is None, "render finished before it could be killed; raise the steps"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p.name for p in cache_dir.iterdir() if not p.name.startswith(".")}
    assert finished, "no shot finished before the kill"

    r = run_cli("render", str(film), "--no-assemble", "--report", str(tmp_path / "r.json"))
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    by_key = {s["key"]: s["status"] for s in report["shots"]}
    assert all(by_key[k] == "cached" for k in finished)
    assert "rendered" in by_key.values()
    # Leftovers of the interrupted write are gone and every entry is whole.
    assert not [p for p in cache_dir.iterdir() if p.name.startswith(".")]
    for p in cache_dir.iterdir():
        assert (p / "meta.json").is_file() and (p / "frames.npy").is_file()


def test_unknown_shot_and_missing_file_are_one_line_errors(tmp_path):
    film = tiny_copy(tmp_path)
    r = run_cli("render", str(film), "--shots", "nope")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "nope" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run_cli("render", str(tmp_path / "missing.toml"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "missing.toml" in r.stderr
    for args in (("render", str(film), "-o", str(tmp_path / "film")),
                 ("export", str(film), "--format", "otio", "-o", str(tmp_path / "film.mp4"))):
        r = run_cli(*args)
        assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_a_model_that_cannot_be_found_is_reported_at_its_line(tmp_path):
    film = tiny_copy(tmp_path)
    film.write_text(film.read_text().replace('model = "tiny"', 'model = "wan2.1"'))
    line = next(i for i, t in enumerate(film.read_text().splitlines(), 1) if t.startswith("model ="))
    env_before = os.environ.pop("MOTIONQ_WAN21_PATH", None)
    try:
        for command in ("plan", "render"):
            r = run_cli(command, str(film))
            assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
            assert r.stderr.strip().startswith(f"{film}:{line}: film.model: Wan 2.1 weights not configured"), r.stderr
    finally:
        if env_before is not None:
            os.environ["MOTIONQ_WAN21_PATH"] = env_before


def test_short_help_and_version():
    from importlib.metadata import version

    for args in (("-h",), ("render", "-h")):
        r = run_cli(*args)
        assert r.returncode == 0 and "Usage: " in r.stdout and "--help" in r.stdout, r.stderr
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"storyboard {version('storyboard-motionq')}"
    r = subprocess.run([sys.executable, "-m", "motionq.cli", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == f"motionq {version('storyboard-motionq')}", r.stderr


def test_unwritable_outputs_fail_before_any_render(tmp_path):
    film = tiny_copy(tmp_path)
    (tmp_path / "afile").write_text("not a folder")
    for args in (("render", str(film), "-o", str(tmp_path / "afile" / "film.mp4")),
                 ("render", str(film), "--report", str(tmp_path / "afile" / "r.json")),
                 ("export", str(film), "--format", "png", "-o", str(tmp_path / "afile" / "s.png")),
                 ("new", str(tmp_path / "afile" / "new.toml"))):
        r = run_cli(*args)
        assert r.returncode == 2 and "Traceback" not in r.stderr, (args, r.stderr)
        assert "cannot write there" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / ".storyboard" / "shots").exists() or not any((tmp_path / ".storyboard" / "shots").iterdir())


def test_render_a_subset_of_shots_leaves_the_edit_for_later(tmp_path):
    import json

    from storyboard.load import load_storyboard

    film = tiny_copy(tmp_path)
    first = load_storyboard(film).shots[0].id
    r = run_cli("render", str(film), "--shots", first, "--report", str(tmp_path / "r.json"))
    assert r.returncode == 0, r.stderr
    assert "the film also needs" in r.stdout and not film.with_suffix(".mp4").exists()
    report = json.loads((tmp_path / "r.json").read_text())
    assert [s["id"] for s in report["shots"] if s["status"] == "rendered"] == [first]
    assert report["outputs"] == {}


def test_new_writes_a_valid_starter(tmp_path):
    for name in ("film.toml", "film.yaml"):
        r = run_cli("new", str(tmp_path / name))
        assert r.returncode == 0, r.stderr
        r = run_cli("validate", str(tmp_path / name))
        assert r.returncode == 0, r.stderr
    r = run_cli("new", str(tmp_path / "film.toml"))
    assert r.returncode == 2
    (tmp_path / "film.toml").write_text("mine")
    r = run_cli("new", str(tmp_path / "film.toml"), "--force")
    assert r.returncode == 0, r.stderr
    assert "[[shots]]" in (tmp_path / "film.toml").read_text()
    for bad in ("film.txt", "."):
        r = run_cli("new", str(tmp_path / bad))
        assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_plan_notes_character_fields_the_renderer_does_not_use(tmp_path):
    from PIL import Image

    (tmp_path / "masks").mkdir()
    Image.new("L", (8, 8), 255).save(tmp_path / "masks" / "hero.png")
    film = tmp_path / "film.toml"
    film.write_text('schema_version = 1\n\n[film]\ntitle = "t"\nmodel = "tiny"\n\n'
                    '[characters.hero]\nprompt = "a red circle"\nmask = "masks/hero.png"\n\n'
                    '[characters.kit]\nprompt = "a shape"\n\n'
                    '[[shots]]\nid = "a"\nprompt = "{hero} moves left"\nduration = 1.0\n')
    r = run_cli("plan", str(film))
    assert r.returncode == 0, r.stderr
    notes = [l for l in r.stderr.splitlines() if l.startswith("note:")]
    assert notes == [f"note: {film}: characters.hero: mask is checked but not used by the renderer yet"]


def test_plan_shows_whole_prompts_in_narrow_and_wide_terminals(tmp_path):
    film = tiny_copy(tmp_path)
    prompt = "a blue square moves up and right on a navy background"  # closing-in, after {chaser}
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    for cols, below in ((80, True), (200, False)):
        r = subprocess.run([sys.executable, "-m", "storyboard.cli", "plan", str(film)], capture_output=True,
                           text=True, timeout=300, env=dict(env, COLUMNS=str(cols)))
        assert r.returncode == 0, r.stderr
        assert ("prompts:" in r.stdout) == below
        line = [ln for ln in r.stdout.splitlines() if "closing-in" in ln][-1]  # narrow: the list below
        assert prompt in line, r.stdout
        assert max(len(ln) for ln in r.stdout.splitlines()) <= cols


def test_command_line_mistakes_are_usage_errors_not_tracebacks(tmp_path):
    for args in (("validate",), ("render", "--bogus", "x.toml"), ("frob",)):
        r = run_cli(*args)
        assert r.returncode == 2 and "Traceback" not in r.stderr and "Error" in r.stderr, (args, r.stderr)


def test_ctrl_c_during_a_render_says_how_to_resume(tmp_path):
    # 200 steps and 4 s shots: the shots after the first take several seconds, so the signal
    # lands mid-render. The first finished shot is watched for in the cache, not on stderr:
    # read from a pipe, the child's "rendered" lines can arrive late, after the whole render.
    film = tiny_copy(tmp_path, steps=200)
    film.write_text(film.read_text().replace("\nduration = 1.0", "\nduration = 4.0"))
    shots = tmp_path / ".storyboard" / "shots"
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", HF_HUB_OFFLINE="1")
    with tempfile.TemporaryFile("w+") as err:
        # A shell that starts the test runner in the background (`cmd &`) leaves SIGINT ignored,
        # the child inherits that, and Python then never raises KeyboardInterrupt: give the
        # child the default disposition, as a terminal's foreground process has.
        proc = subprocess.Popen([sys.executable, "-m", "storyboard.cli", "render", str(film)], env=env,
                                stderr=err, stdout=subprocess.DEVNULL, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.time() + 120
        while proc.poll() is None and time.time() < deadline:
            if shots.is_dir() and any(not d.name.startswith(".") for d in shots.iterdir()):
                proc.send_signal(signal.SIGINT)
                break
            time.sleep(0.02)
        code = proc.wait(timeout=120)
        err.seek(0)
        out = err.read()
    assert code == 130, out
    assert out.strip().splitlines()[-1].startswith("interrupted: finished shots are kept"), out
    assert "Traceback" not in out
    r = run_cli("plan", str(film), "--json")
    assert sum(s["status"] == "cached" for s in json.loads(r.stdout)["shots"]) >= 1
