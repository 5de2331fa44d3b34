"""Pictures for docs/consistency.md: one contact sheet per consistency variant, subject masks
overlaid, from a real run of a given model.

    OMP_NUM_THREADS=1 python benchmarks/consistency_figures.py --model animatic
    OMP_NUM_THREADS=1 python benchmarks/consistency_figures.py --model tiny   # machinery only

Four shots of one recurring character ("a red circle") with different motions and
backgrounds, plus one shot of another character, rendered as one consistency group with each
variant (same seeds). Writes into --out (default docs/images):

* consistency-<variant>.png: the shots' frames (one row per shot), the Otsu subject masks
  tinted over them (the masks come from the vanilla pass, so they are the same for every
  variant); "+" in variant names becomes "-";
* consistency-attention.png: the normalised cross-attention maps of the character's words
  (before thresholding), to see what the masks are made from;
* consistency-anchors.png: the same shots in anchor mode (the first two are the anchors).

On the tiny random model the frames are noise: the script then only shows that the machinery
runs end to end. Re-run it on the trained built-in model (`--model animatic`) for the docs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

HERO, OTHER = "a red circle", "a blue square"
SHOTS = [
    ("walk", f"{HERO} moves right on a navy background", ("hero",)),
    ("jump", f"{HERO} bounces on a grey background", ("hero",)),
    ("zig", f"{HERO} zigzags to the left on a forest background", ("hero",)),
    ("meet", f"{HERO} and {OTHER} move left on a black background", ("hero", "other")),
    ("other", f"{OTHER} circles on a brown background", ("other",)),
]
TEXTS = {"hero": HERO, "other": OTHER}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="animatic")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=4.0)
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cell", type=int, default=64, help="pixels per frame in the sheets")
    ap.add_argument("--out", default=str(ROOT / "docs" / "images"))
    args = ap.parse_args()

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from motionq.api import VARIANTS, ConsistencyConfig, GroupRequest, ShotRequest
    from motionq.backbones import load_backbone
    from motionq.methods import multishot as MS
    from storyboard.assemble import ShotClip
    from storyboard.export import contact_sheet

    opts = {"device": args.device} if args.device else {}
    try:
        bb = load_backbone(args.model, **opts)
    except Exception as exc:  # noqa: BLE001
        print(f"could not load model {args.model!r}: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(2)
    frames = bb.valid_num_frames(args.frames or bb.default_frames)
    shots = [ShotRequest(sid, prompt, num_frames=frames, seed=args.seed + i, steps=args.steps,
                         guidance=args.guidance, subjects=tuple(TEXTS[c] for c in chars), characters=chars)
             for i, (sid, prompt, chars) in enumerate(SHOTS)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written, timings = [], {}

    def sheet(name: str, frames_by_id, masks_by_id, label: str) -> None:
        clips = [ShotClip(s.shot_id, np.asarray(frames_by_id[s.shot_id]), 1.0, label=f"{label}: {s.prompt}")
                 for s in shots]
        path = contact_sheet(clips, out / f"consistency-{name}.png", frames_per_row=min(8, frames),
                             cell=args.cell, masks=masks_by_id)
        written.append(str(path))

    soft = None
    for variant in VARIANTS:
        cfg = ConsistencyConfig(variant=variant, anchors="off")
        t0 = time.perf_counter()
        res = MS.render_joint(bb, shots, cfg)
        timings[variant] = time.perf_counter() - t0
        masks = {k: v.masks for k, v in res.frames.items() if v.masks is not None}
        sheet(variant.replace("+", "-"), res.frames, masks, variant)
        if soft is None:
            soft = {k: m.soft.max(axis=0) for k, m in res.masks.items()
                    if m.soft is not None and m.soft.shape[0]}
            sheet("attention", res.frames, soft, "attention")
    cfg = ConsistencyConfig(variant="sdsa+qpres+qflow")
    t0 = time.perf_counter()
    anchored = MS.render_group(bb, GroupRequest(tuple(shots), cfg, anchor_ids=("walk", "jump")))
    timings["anchors"] = time.perf_counter() - t0
    sheet("anchors", anchored, {k: v.masks for k, v in anchored.items() if v.masks is not None},
          "anchors walk+jump")
    info = {"model": args.model, "frames": frames, "steps": args.steps, "seconds": timings,
            "images": written}
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
