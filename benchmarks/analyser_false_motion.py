"""How often the analyser's motion classifier reads a hop or a zigzag into a straight line.

    python benchmarks/analyser_false_motion.py --baseline d875ffa

Straight horizontal paths (2-3 px per frame, left or right) with Gaussian jitter on both
coordinates, 4,000 per setting: the share that `motion_class` calls "bounce" or "zigzag", for
this checkout's analyser and for the one at git revision --baseline. Finer phase templates fit
noise more easily; this is the check that they do not turn jittery lines into hops. Writes
benchmarks/results/analyser_false_motion.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from analyser_revision import analyser_at  # noqa: E402


def false_waves(module, frames: int, jitter: float, n: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    t = np.arange(frames, dtype=np.float64)
    hits = 0
    for _ in range(n):
        speed = rng.uniform(2.0, 3.0) * rng.choice([-1.0, 1.0])
        path = np.stack([16 + speed * (t - frames / 2), np.full(frames, 16.0)], axis=1)
        path += rng.normal(0.0, jitter, path.shape)
        hits += module.motion_class(path) in ("bounce", "zigzag")
    return hits / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", required=True, help="git revision whose analyser is the baseline")
    ap.add_argument("--paths", type=int, default=4000)
    args = ap.parse_args()
    import motionq.spriteworld.analyser as current

    baseline = analyser_at(args.baseline)
    rows = []
    for frames in (6, 9):
        for jitter in (0.3, 0.5, 0.7):
            row = {"frames": frames, "jitter_px": jitter,
                   "baseline": false_waves(baseline, frames, jitter, args.paths, seed=frames * 10 + int(jitter * 10)),
                   "current": false_waves(current, frames, jitter, args.paths, seed=frames * 10 + int(jitter * 10))}
            rows.append(row)
            print(f"{frames} frames, jitter {jitter} px: read as a hop or zigzag {100 * row['baseline']:.1f}% "
                  f"(baseline) -> {100 * row['current']:.1f}%", flush=True)
    out = ROOT / "benchmarks" / "results" / "analyser_false_motion.json"
    out.write_text(json.dumps({"baseline": args.baseline, "paths_per_setting": args.paths, "rows": rows,
                               "command": "python benchmarks/analyser_false_motion.py " + " ".join(sys.argv[1:])},
                              indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
