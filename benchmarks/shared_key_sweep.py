"""How strongly shared attention should weigh the other shots' subject keys, on a model.

    OMP_NUM_THREADS=1 python benchmarks/shared_key_sweep.py --model animatic --sets 8 --bench-seed 1 \
        --weights 1,5,20,40 --variants sdsa,sdsa+qpres,sdsa+qpres+qflow [--blocks "all;2,3"]

For each `shared_key_weight` (each shared key counts as that many of the shot's own keys:
score + log weight; 1 is the paper's plain attention over the union) and each variant, renders
the multi-shot benchmark's first `--sets` character sets (5 shots each, identity-free
character prompts) jointly and scores them with the evaluation's metrics (identity
consistency, motion adherence, share of shots where a character is detected). Vanilla is
rendered once (the weight does not touch it). `--blocks`: ";"-separated sets of transformer
blocks to intervene in ("all" = every block), each swept over the weights. Use a `--bench-seed`
other than the full evaluation's (0), so the setting is not tuned on the sets it is then judged
on. Prints a table, asserts nothing, writes benchmarks/results/shared_key_sweep-<model>.json
(or `--out`).
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
from motionq.methods.multishot import MultiShotOptions  # noqa: E402
from motionq.metrics import mean_ci  # noqa: E402

METRICS = ("identity_consistency", "motion_adherence", "detected")


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="animatic")
    ap.add_argument("--sets", type=int, default=8)
    ap.add_argument("--bench-seed", type=int, default=1)
    ap.add_argument("--weights", default="1,5,20,40")
    ap.add_argument("--variants", default="sdsa,sdsa+qpres,sdsa+qpres+qflow")
    ap.add_argument("--blocks", default=None, help='e.g. "all;2,3" (default: the backbone\'s own)')
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))

    backbone = load_backbone(args.model)
    base = backbone.multishot_options or MultiShotOptions()
    frames = getattr(backbone, "default_frames", 9)
    sets = multishot_benchmark(args.sets, 5, args.bench_seed)
    weights = [float(w) for w in args.weights.split(",")]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]

    def run(variant: str) -> dict:
        t0 = time.perf_counter()
        rows = []
        for spec in sets:
            req = group_request(spec, ConsistencyConfig(variant=variant, anchors="off"),
                                num_frames=frames, steps=args.steps)
            rows.append(evaluate_group(req, backbone.render_group(req)))
        out = {m: mean_ci([r[m] for r in rows]).to_dict() for m in METRICS}
        out["seconds"] = round(time.perf_counter() - t0, 1)
        return out

    block_sets = [base.blocks] if args.blocks is None else [
        None if b.strip() == "all" else tuple(int(x) for x in b.split(",")) for b in args.blocks.split(";")]
    results = []
    backbone.multishot_options = base
    results.append({"variant": "vanilla", "weight": None, "blocks": None, **run("vanilla")})
    for blocks in block_sets:
        for w in weights:
            backbone.multishot_options = dataclasses.replace(base, shared_key_weight=w, blocks=blocks)
            for v in variants:
                results.append({"variant": v, "weight": w, "blocks": "all" if blocks is None else list(blocks), **run(v)})
                r = results[-1]
                print(f"blocks {r['blocks']!s:8s} weight {w:5.1f} {v:26s} " + "  ".join(
                    f"{m} {_fmt(r[m]['mean'])}" for m in METRICS) + f"  ({r['seconds']:.0f} s)", flush=True)
    backbone.multishot_options = base
    doc = {
        "model": args.model,
        "model_fingerprint": backbone.fingerprint(),
        "sets": args.sets,
        "shots_per_set": 5,
        "bench_seed": args.bench_seed,
        "steps": args.steps,
        "results": results,
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
    }
    out = args.out or ROOT / "benchmarks" / "results" / f"shared_key_sweep-{args.model}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
