"""Where in sampling the refinement should act, and how strongly, on a model.

    OMP_NUM_THREADS=1 python benchmarks/refine_range_sweep.py --model animatic --sets 8 \
        --bench-seeds 1,2 --ranges "100,500;100,600;300,600;590,950" --alphas 0.8

Renders the multi-shot benchmark's first `--sets` character sets (5 shots each, identity-free
character prompts) of each `--bench-seeds` jointly with `sdsa+qpres+qflow+refine` for every
refinement range (timesteps, "low,high") and `refine_alpha`, plus `vanilla` and
`sdsa+qpres+qflow` (no refinement) as references, and scores them with the evaluation's
metrics (identity consistency, motion adherence, share of shots where a character is found).
Use bench seeds other than the full evaluation's (0), so the setting is not tuned on the sets
it is then judged on. `--anchors 2` renders the refinement runs in anchor mode (the first 2
shots as anchors), the way a storyboard renders a 5-shot group by default. Prints a table,
asserts nothing, writes benchmarks/results/refine_range_sweep-<model>.json (or `--out`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from motionq.api import ConsistencyConfig  # noqa: E402
from motionq.backbones import load_backbone  # noqa: E402
from motionq.evaluation.benchmark_sets import group_request, multishot_benchmark  # noqa: E402
from motionq.evaluation.multishot import evaluate_group  # noqa: E402
from motionq.metrics import mean_ci  # noqa: E402

METRICS = ("identity_consistency", "motion_adherence", "detected")


def _ranges(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(";"):
        lo, hi = (int(x) for x in part.split(","))
        out.append((lo, hi))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="animatic")
    ap.add_argument("--sets", type=int, default=8)
    ap.add_argument("--bench-seeds", default="1,2")
    ap.add_argument("--ranges", default="100,500;100,600;300,600;590,950")
    ap.add_argument("--alphas", default="0.8")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--variant", default="sdsa+qpres+qflow+refine",
                    help="variant of the refinement runs (\"refine\": the refinement without sharing)")
    ap.add_argument("--refine-mode", default=None, help="MultiShotOptions.refine_mode (default: the model's)")
    ap.add_argument("--shared-key-weight", type=float, default=None,
                    help="MultiShotOptions.shared_key_weight for the refinement runs (default: the model's; "
                         "a tiny weight such as 1e-6 turns sharing off)")
    ap.add_argument("--anchors", type=int, default=0,
                    help="render refinement runs in anchor mode with this many anchors (0: jointly)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))

    backbone = load_backbone(args.model)
    if args.refine_mode:
        backbone.multishot_options = dataclasses.replace(backbone.multishot_options, refine_mode=args.refine_mode)
    base_options = backbone.multishot_options
    refine_options = (dataclasses.replace(base_options, shared_key_weight=args.shared_key_weight)
                      if args.shared_key_weight is not None else base_options)
    seeds = [int(s) for s in args.bench_seeds.split(",")]
    sets = [(seed, s) for seed in seeds for s in multishot_benchmark(args.sets, 5, seed)]
    n = backbone.default_frames

    runs: list[tuple[str, str, tuple[int, int] | None, float | None]] = [
        ("vanilla", "vanilla", None, None), ("no refinement", "sdsa+qpres+qflow", None, None)]
    for alpha in (float(a) for a in args.alphas.split(",")):
        for rng in _ranges(args.ranges):
            runs.append((f"{args.variant} {rng[0]}-{rng[1]} alpha {alpha:g}", args.variant, rng, alpha))

    rows = []
    for label, variant, rng, alpha in runs:
        t0 = time.time()
        backbone.multishot_options = (dataclasses.replace(refine_options, refine_alpha=alpha)
                                      if alpha is not None else base_options)
        anchored = args.anchors > 0 and rng is not None
        cfg = ConsistencyConfig(variant=variant, anchors="auto" if anchored else "off", refine_range=rng)
        scores = []
        for _, spec in sets:
            req = group_request(spec, cfg, num_frames=n, steps=args.steps,
                                anchors=args.anchors if anchored else 0)
            scores.append(evaluate_group(req, backbone.render_group(req)))
        row = {"label": label + (" anchors" if anchored else ""), "variant": variant,
               "refine_mode": base_options.refine_mode if rng else None,
               "shared_key_weight": backbone.multishot_options.shared_key_weight,
               "anchors": args.anchors if anchored else 0, "refine_range": list(rng) if rng else None,
               "refine_alpha": alpha, "groups": len(scores), "seconds": round(time.time() - t0, 1)}
        for m in METRICS:
            row[m] = mean_ci([s[m] for s in scores]).to_dict()
        rows.append(row)
        print(f"{label:32s} " + " ".join(f"{m} {row[m]['mean']:.2f}" for m in METRICS)
              + f" ({row['seconds']:.0f} s)", flush=True)
    backbone.multishot_options = base_options

    out = args.out or ROOT / "benchmarks" / "results" / f"refine_range_sweep-{Path(args.model).name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"model": args.model, "fingerprint": backbone.fingerprint(), "sets": args.sets, "bench_seeds": seeds,
           "steps": args.steps, "anchors": args.anchors, "rows": rows,
           "command": "python benchmarks/refine_range_sweep.py " + " ".join(sys.argv[1:])}
    tmp = out.with_name(out.name + ".part")
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
