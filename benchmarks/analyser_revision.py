"""What an analyser change does to the built-in model's figures, on the same frames.

    python benchmarks/analyser_revision.py --baseline d875ffa

Samples the three validation sets of `sampler_validation.py` (fully specified captions, seeds
S + i for S = 2, 3 and 4 x 10^9, disjoint from training and from the quality bench; published
weights, 20 steps, guidance 4), caches the frames under --cache, and scores them twice: with
the analyser of this checkout and with the one at git revision --baseline. Prints colour,
shape, motion and exact-count figures for both, the clips whose reading changed, and writes
benchmarks/results/analyser_revision.json. Used to check an analyser change on data the bench
never sees before the bench is run once.

    python benchmarks/analyser_revision.py --baseline d875ffa --bench

does the same on the quality bench's 200 clips (seeds 10^9 + i, sampled as
`animatic_quality.py` samples them), to say how much of a change in the bench's figures is the
analyser's; writes benchmarks/results/analyser_revision-bench.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from motionq.spriteworld import parse_caption  # noqa: E402

SETS = (2_000_000_000, 3_000_000_000, 4_000_000_000)
BENCH = 1_000_000_000  # animatic_quality.HELD_OUT


def sample_set(first_seed: int, samples: int, cache: Path) -> tuple[np.ndarray, list[str]]:
    """Frames and captions of one set, sampled once and cached as .npz: clip by clip as
    `animatic_quality.py` does for the bench's seeds, in the batched call of
    `sampler_validation.py` (one clip per call) for the validation sets."""
    path = cache / f"set{first_seed}.npz"
    if path.exists():
        d = np.load(path)
        if len(d["texts"]) >= samples:
            return d["frames"][:samples], [str(t) for t in d["texts"][:samples]]
    import torch

    from motionq.backbones import load_backbone
    from motionq.backbones.animatic import published_config
    from motionq.spriteworld import caption, sample_scene
    from motionq.train import sample_frames, sample_frames_batch, world_config

    torch.set_num_threads(1)
    cfg = published_config()
    wcfg = world_config(cfg)
    pipe = load_backbone("animatic").pipe
    pipe.set_progress_bar_config(disable=True)
    texts, frames = [], []
    with torch.no_grad():
        for i in range(samples):
            rng = np.random.default_rng(first_seed + i)
            texts.append(caption(sample_scene(rng, wcfg), rng, detail="full", cfg=wcfg))
            if first_seed == BENCH:
                frames.append(sample_frames(pipe, texts[-1], first_seed + i, cfg, 20, 4.0))
            else:
                frames.append(sample_frames_batch(pipe, [texts[-1]], [first_seed + i], cfg, 20, 4.0)[0])
            print(f"\rsampling set {first_seed}: {i + 1}/{samples}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, frames=np.stack(frames), texts=np.array(texts))
    os.replace(tmp, path)
    return np.stack(frames), texts


def analyser_at(revision: str):
    """The analyser module as it was at a git revision (imported from a temporary file)."""
    source = subprocess.run(["git", "show", f"{revision}:motionq/spriteworld/analyser.py"], cwd=ROOT,
                            check=True, capture_output=True, text=True).stdout
    name = f"analyser_{revision}"
    with tempfile.TemporaryDirectory() as folder:  # the module is compiled on import: drop the file after
        path = Path(folder) / f"{name}.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the class is built
        spec.loader.exec_module(module)
    return module


def read(module, frames: np.ndarray, text: str) -> dict:
    """One clip as read by an analyser module: per asked character (asked, found) attributes."""
    asked = parse_caption(text)["characters"]
    found = module.analyse(frames).characters
    chars = [{a: (want.get(a), getattr(got, a) if got is not None else None) for a in ("colour", "shape", "motion")}
             for want, got in module.match_characters(asked, found)]
    return {"asked": len(asked), "found": len(found), "characters": chars}


def figures(readings: list[dict]) -> dict:
    chars = [c for r in readings for c in r["characters"]]
    two = [c for r in readings if r["asked"] == 2 for c in r["characters"]]
    out = {a: sum(c[a][0] == c[a][1] for c in chars) for a in ("colour", "shape", "motion")}
    out.update(characters=len(chars), two_character_motion=sum(c["motion"][0] == c["motion"][1] for c in two),
               two_characters=len(two), count=sum(r["asked"] == r["found"] for r in readings), clips=len(readings))
    errors: dict[str, int] = {}
    for r in readings:
        if r["asked"] != r["found"]:
            key = f"{r['asked']}->{r['found']}"
            errors[key] = errors.get(key, 0) + 1
    out["count_errors"] = dict(sorted(errors.items()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", required=True, help="git revision whose analyser is the baseline")
    ap.add_argument("--samples", type=int, default=200, help="clips per validation set")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "motionq-validation-frames")
    ap.add_argument("--bench", action="store_true", help="the quality bench's clips instead of the validation sets")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    name = "analyser_revision-bench.json" if args.bench else "analyser_revision.json"
    args.out = args.out or ROOT / "benchmarks" / "results" / name
    import motionq.spriteworld.analyser as current

    baseline = analyser_at(args.baseline)
    result: dict = {"baseline": args.baseline, "samples_per_set": args.samples, "sets": {}, "changed": []}
    totals = {"baseline": [], "current": []}
    for first in (BENCH,) if args.bench else SETS:
        frames, texts = sample_set(first, args.samples, args.cache)
        per = {"baseline": [], "current": []}
        for i, (clip, text) in enumerate(zip(frames, texts)):
            before, after = read(baseline, clip, text), read(current, clip, text)
            per["baseline"].append(before)
            per["current"].append(after)
            if before != after:
                result["changed"].append({"seed": first + i, "caption": text, "baseline": before, "current": after})
        result["sets"][str(first)] = {k: figures(v) for k, v in per.items()}
        for k in totals:
            totals[k] += per[k]
        print(first, json.dumps(result["sets"][str(first)]))
    result["all"] = {k: figures(v) for k, v in totals.items()}
    print("all", json.dumps(result["all"]))
    print(f"{len(result['changed'])} clips read differently")
    result["command"] = "python benchmarks/analyser_revision.py " + " ".join(sys.argv[1:])
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
