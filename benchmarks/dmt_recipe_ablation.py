"""Which part of DMT's published recipe moves its fidelity on the built-in model.

    python benchmarks/dmt_recipe_ablation.py [--prompt-mode none] [--pairs 26]

`motionq eval dmt` runs DMT's published recipe (`dmt-10x0.4+inv50+rs`: a 1,000-pass source
inversion, DMT's start latent, restart sampling, 10 Adam iterations per guided step) next to the
cheaper DMT rows. This script takes the recipe apart on the same pairs, prompts, seeds, steps
and size (`motionq.evaluation.dmt.dmt_transfer`, scored with `score_clip` as the evaluation
does): restart sampling alone on a plain generation, then the recipe with and without restart
and with one inversion pass per step or ceil(999 / steps) (1,000 passes at 20 steps). Prints a
table and writes benchmarks/results/dmt_recipe_ablation[-<mode>].json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from motionq.backbones import load_backbone  # noqa: E402
from motionq.evaluation.dmt import DMTConfig, DMTSettings, dmt_transfer  # noqa: E402
from motionq.evaluation.transfer import (  # noqa: E402
    TransferSettings, build_pairs, geometry, score_clip, source_path, target_prompt,
)
from motionq.metrics import mean_ci  # noqa: E402


def recipe_parts(steps: int) -> dict[str, DMTConfig]:
    """The recipe's parts; the long inversion takes as many passes per step as `eval dmt`'s recipe row."""
    fine = -(-DMTSettings.recipe_inversion_steps // steps)
    configs = [DMTConfig(iterations=0), DMTConfig(iterations=0, restart=True),
               DMTConfig(iterations=10, inversion=True), DMTConfig(iterations=10, inversion=True, restart=True),
               DMTConfig(iterations=10, inversion=True, inversion_substeps=fine),
               DMTConfig(iterations=10, inversion=True, inversion_substeps=fine, restart=True)]
    return {("plain" + ("+rs" if c.restart else "")) if c.iterations == 0 else c.label: c for c in configs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompt-mode", default="none", choices=("none", "motion"))
    ap.add_argument("--pairs", type=int, default=26)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(1)
    backbone = load_backbone("animatic")
    n, h, w = geometry(backbone)
    pairs = build_pairs(backbone, TransferSettings(max_pairs=args.pairs))
    seed = 17  # replica 0 of `motionq eval dmt`
    table = recipe_parts(args.steps)
    records = []
    t0 = time.time()
    for i, pair in enumerate(pairs):
        prompt = target_prompt(pair, args.prompt_mode)
        path = source_path(pair.source)
        for name, cfg in table.items():
            t = time.perf_counter()
            frames, _ = dmt_transfer(backbone.pipe, pair.source.frames, prompt, config=cfg, num_frames=n, height=h,
                                     width=w, steps=args.steps, guidance=4.0, seed=seed,
                                     max_sequence_length=backbone.max_sequence_length)
            records.append({"pair": pair.name, "pair_type": pair.pair_type, "row": name,
                            "seconds": round(time.perf_counter() - t, 3), **score_clip(pair, frames, path)})
        print(f"{i + 1}/{len(pairs)} {pair.name} ({time.time() - t0:.0f} s)", flush=True)
    summary = {}
    for name in table:
        mine = [r for r in records if r["row"] == name]
        summary[name] = {
            "fidelity": mean_ci([r["fidelity"] for r in mine]).to_dict(),
            "fidelity_by_type": {k: round(mean_ci([r["fidelity"] for r in mine if r["pair_type"] == k]).mean, 3)
                                 for k in sorted({r["pair_type"] for r in mine})},
            "motion_match": mean_ci([r["motion_match"] for r in mine]).to_dict(),
            "identity_kept": mean_ci([r["identity_kept"] for r in mine]).to_dict(),
            "seconds_median": round(float(np.median([r["seconds"] for r in mine])), 3),
        }
        s = summary[name]
        print(f"{name:22s} fidelity {s['fidelity']['mean']:.2f} {s['fidelity_by_type']} "
              f"match {s['motion_match']['mean']:.2f} identity {s['identity_kept']['mean']:.2f} "
              f"{s['seconds_median']:.2f} s")
    suffix = "" if args.prompt_mode == "none" else f"-{args.prompt_mode}"
    out = ROOT / "benchmarks" / "results" / f"dmt_recipe_ablation{suffix}.json"
    command = "python benchmarks/dmt_recipe_ablation.py" + "".join(
        f" --{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v != ap.get_default(k))
    tmp = out.with_name(out.name + ".part")
    tmp.write_text(json.dumps({"command": command, "settings": vars(args), "seed": seed,
                               "geometry": [n, h, w], "rows": {k: v.to_dict() for k, v in table.items()},
                               "summary": summary, "records": records,
                               "wall_seconds": round(time.time() - t0, 1)}, indent=1) + "\n")
    os.replace(tmp, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
