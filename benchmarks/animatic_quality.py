"""Quality and speed of the built-in animatic model, measured with the sprite analyser.

    python benchmarks/animatic_quality.py                 # 200 samples, 20 steps (the model card)
    python benchmarks/animatic_quality.py --samples 40    # quicker look

1. Fully specified captions from held-out seeds (never used in training: seeds >= 10^9) and a
   mix of one- and two-character scenes: colour, shape and motion class of the asked characters
   and whether exactly the asked number of characters appears. Motion is also split by the
   number of characters in the clip, counting wrong motions that another asked character owns.
2. Identity-free captions ("a shape moves left", ...): distinct (shape, colour) identities over
   20 seeds of one caption, for several captions.
3. Seconds to sample one clip (20 steps, guidance on), median of several.
Writes benchmarks/results/animatic_quality.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from motionq.backbones import load_backbone  # noqa: E402
from motionq.backbones.animatic import published_config  # noqa: E402
from motionq.spriteworld import (  # noqa: E402
    MOTIONS, analyse, caption, identity_phrase, motion_phrase, parse_caption, sample_scene,
)
from motionq.spriteworld import match_characters as match  # noqa: E402  (also used by other benchmarks)
from motionq.train import sample_frames as sample  # noqa: E402  (also used by other benchmarks)
from motionq.train import world_config  # noqa: E402

HELD_OUT = 1_000_000_000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="animatic")
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=4.0)
    ap.add_argument("--free-captions", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "animatic_quality.json")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))

    backbone = load_backbone(args.model)
    pipe = backbone.pipe
    pipe.set_progress_bar_config(disable=True)
    cfg = published_config()  # the sizes the published weights use
    wcfg = world_config(cfg)  # the world the model was trained on

    hits = {"colour": 0, "shape": 0, "motion": 0}
    asked_total = 0
    count_ok = 0
    per_motion: dict[str, list[int]] = {}
    motion_by_count: dict[str, dict[str, int]] = {}
    t0 = time.time()
    for i in range(args.samples):
        rng = np.random.default_rng(HELD_OUT + i)
        scene = sample_scene(rng, wcfg)
        text = caption(scene, rng, detail="full", cfg=wcfg)
        frames = sample(pipe, text, HELD_OUT + i, cfg, args.steps, args.guidance)
        asked = parse_caption(text)["characters"]
        found = analyse(frames)
        count_ok += int(len(found.characters) == len(asked))
        for want, got in match(asked, found.characters):
            asked_total += 1
            ok_motion = int(got is not None and got.motion == want.get("motion"))
            hits["colour"] += int(got is not None and got.colour == want.get("colour"))
            hits["shape"] += int(got is not None and got.shape == want.get("shape"))
            hits["motion"] += ok_motion
            per_motion.setdefault(want.get("motion") or "?", []).append(ok_motion)
            # In a two-character clip, a wrong motion that is the other character's asked motion is
            # a binding failure (the model drew the right motions on the wrong characters).
            by_count = motion_by_count.setdefault(str(len(asked)), {"asked": 0, "correct": 0, "other_characters_motion": 0})
            by_count["asked"] += 1
            by_count["correct"] += ok_motion
            if not ok_motion and got is not None and got.motion in [a.get("motion") for a in asked if a is not want]:
                by_count["other_characters_motion"] += 1
        if (i + 1) % 20 == 0:
            print(f"{i + 1}/{args.samples} samples ({time.time() - t0:.0f} s)", flush=True)
    specified = {k: v / asked_total for k, v in hits.items()}
    specified["count"] = count_ok / args.samples
    specified["characters_asked"] = asked_total
    specified["per_motion"] = {m: round(float(np.mean(v)), 3) for m, v in sorted(per_motion.items())}
    for row in motion_by_count.values():
        row["motion"] = round(row["correct"] / row["asked"], 3)
    specified["motion_by_character_count"] = dict(sorted(motion_by_count.items()))

    # Identity-free captions: how many identities does the model choose among 20 seeds?
    free = []
    rng = np.random.default_rng(7)
    for c in range(args.free_captions):
        motion = MOTIONS[int(rng.integers(len(MOTIONS)))]
        text = f"{identity_phrase(None, None)} {motion_phrase(motion)}"
        ids = set()
        for s in range(20):
            found = analyse(sample(pipe, text, HELD_OUT + 10_000 + 100 * c + s, cfg, args.steps, args.guidance))
            if found.characters:
                t = found.characters[0]
                ids.add((t.shape, t.colour))
        free.append({"caption": text, "distinct_identities": len(ids)})
        print(f"'{text}': {len(ids)} distinct identities over 20 seeds", flush=True)

    times = []
    for s in range(5):
        t1 = time.perf_counter()
        sample(pipe, "a red circle moves right", s, cfg, args.steps, args.guidance)
        times.append(time.perf_counter() - t1)

    result = {
        "model": args.model,
        "model_fingerprint": backbone.fingerprint(),
        "samples": args.samples,
        "steps": args.steps,
        "guidance": args.guidance,
        "threads": torch.get_num_threads(),
        "specified": specified,
        "identity_free": free,
        "seconds_per_clip_median": statistics.median(times),
        "frames_per_clip": cfg.num_frames,
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
