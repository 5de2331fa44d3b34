"""The architecture's boundaries, checked on the source: motionq never imports storyboard, the
storyboard layer talks to motionq through `motionq.api` only, and planning a film stays free
of torch (cache keys need model fingerprints and settings, not a model)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(package: str) -> list[tuple[str, int, str]]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found += [(str(path.relative_to(ROOT)), node.lineno, a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.append((str(path.relative_to(ROOT)), node.lineno, node.module))
    return found


def test_motionq_never_imports_storyboard():
    bad = [i for i in _imports("motionq") if i[2].split(".")[0] == "storyboard"]
    assert bad == []


def test_storyboard_uses_motionq_through_its_api_only():
    bad = [i for i in _imports("storyboard") if i[2].split(".")[0] == "motionq" and i[2] != "motionq.api"]
    assert bad == []


def test_planning_the_demo_film_does_not_import_torch(tmp_path):
    import shutil

    shutil.copy(ROOT / "examples" / "chase.toml", tmp_path / "chase.toml")
    code = ("import sys\nfrom storyboard.load import load_storyboard\nfrom storyboard.plan import build_plan\n"
            "p = build_plan(load_storyboard('chase.toml'))\n"
            "assert len(p.shots) == 5 and all(s.key for s in p.shots)\n"
            "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
