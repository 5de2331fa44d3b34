"""Whose motion does a transfer follow: the clip's, or the one its own starting noise gives?

    python benchmarks/transfer_noise_vs_clip.py [--prompt-mode none] [--seeds 3] [--bench-seed 0]
                                                 [--init-mix B] [--weights DIR]

On the built-in model the clip alone (a target prompt without motion words) carries only part
of the source's path (docs/motion-transfer.md). This script asks why. For every sprite pair of
`motionq eval transfer` and every seed it renders the plain generation (strength 0: the motion
the model picks from that seed's noise and the prompt) and transfers at 0.3, 0.6 and 1.0 from
the same noise, then reads every centroid path with the analyser and reports, per strength:

- `vs_source`: path correlation of the transfer with the source (the evaluation's fidelity);
- `vs_plain`: path correlation of the transfer with the plain generation of the same seed;
- `plain_vs_source`: how far the plain generation already follows the source by chance;
- `share_plain_wins`: among the rendered clips whose plain generation does not already follow
  the source (plain_vs_source < 0.5), the share whose path is closer to the plain generation's
  than to the source's;
- `found`: share of clips where the analyser finds the character at all (a character that
  dissolves scores fidelity 0); `plain_found` the same for the plain generations.

`--prompt-mode still` asks for a character that "stays still" instead of naming no motion:
a prompt of the form the model was trained on (every training caption that names a character
names its motion) that the clip contradicts.

With `--init-mix B` the target's starting noise is also mixed with the source's latent
((1 - B) * noise + B * source, a crude stand-in for the low-frequency initialisation of
inversion-based methods) to see whether the starting latent is what decides the motion.
`--weights DIR` scores other weights (a `motionq train --publish-to DIR` folder) with the
built-in model's codec and settings.
Writes benchmarks/results/transfer_noise_vs_clip[-<DIR name>][-<mode>][-mix<B>][-bench<seed>].json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from motionq.backbones import load_backbone  # noqa: E402
from motionq.evaluation.transfer import (  # noqa: E402
    TransferSettings,
    build_pairs,
    geometry,
    path_kind,
    source_path,
    target_prompt,
)
from motionq.metrics import mean_ci, path_correlation, read_shot  # noqa: E402

STRENGTHS = (0.3, 0.6, 1.0)


def _est(values: list[float]) -> dict[str, Any]:
    e = mean_ci(values)
    return {"mean": round(e.mean, 3), "ci": [round(e.lo, 3), round(e.hi, 3)], "n": e.n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompt-mode", default="none", choices=("none", "still", "motion"))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--bench-seed", type=int, default=0)
    ap.add_argument("--init-mix", type=float, default=0.0)
    ap.add_argument("--weights", type=Path, default=None,
                    help="a folder written by `motionq train --publish-to`: its transformer and text "
                         "encoder replace the built-in model's (codec and method settings stay)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    backbone = load_backbone("animatic")
    if args.weights is not None:
        from sampler_validation import load_weights_folder

        load_weights_folder(backbone.pipe, args.weights)
    settings = TransferSettings(strengths=STRENGTHS, seeds=args.seeds, prompt_mode=args.prompt_mode,
                                real=False, bench_seed=args.bench_seed)
    n, h, w = geometry(backbone)
    pairs = build_pairs(backbone, settings)
    common = dict(num_frames=n, height=h, width=w, steps=settings.steps, guidance=settings.guidance,
                  init_mix=args.init_mix)
    t0 = time.time()
    records = []
    for pair in pairs:
        prompt = target_prompt(pair, args.prompt_mode)
        src = source_path(pair.source)
        for replica in range(args.seeds):
            seed = 1000 * replica + 17 + 1_000_003 * args.bench_seed  # as `run_transfer`
            plain = read_shot(backbone.transfer(pair.source.frames, prompt, strength=0.0, seed=seed, **common))
            rec = {"pair": pair.name, "pair_type": pair.pair_type, "source_motion": pair.source.motion,
                   "path_kind": path_kind({"source_motion": pair.source.motion}), "seed": seed,
                   "plain_vs_source": path_correlation(src, plain.centroids),
                   "plain_found": plain.identity is not None, "by_strength": {}}
            for s in STRENGTHS:
                out = read_shot(backbone.transfer(pair.source.frames, prompt, strength=s, seed=seed, **common))
                vs_plain = path_correlation(plain.centroids, out.centroids) if plain.centroids is not None else None
                rec["by_strength"][f"{s:g}"] = {
                    "vs_source": path_correlation(src, out.centroids),
                    "vs_plain": vs_plain if vs_plain is None or np.isfinite(vs_plain) else None,
                    "found": out.identity is not None,
                }
            records.append(rec)
        print(f"{pair.name:34s} plain~source {np.mean([r['plain_vs_source'] for r in records[-args.seeds:]]):+.2f}"
              + "".join(f"  {k}: src {np.mean([r['by_strength'][k]['vs_source'] for r in records[-args.seeds:]]):+.2f}"
                        for k in ("0.3", "0.6", "1")), flush=True)

    summary: dict[str, Any] = {}
    for group in ("all", "same-shape", "different-shape", "straight", "curved"):
        rows = [r for r in records if group == "all" or group in (r["pair_type"], r["path_kind"])]
        g: dict[str, Any] = {"plain_vs_source": _est([r["plain_vs_source"] for r in rows]),
                             "plain_found": round(float(np.mean([r["plain_found"] for r in rows])), 3)}
        for k in (f"{s:g}" for s in STRENGTHS):
            cells = [r["by_strength"][k] for r in rows]
            differ = [(r, c) for r, c in zip(rows, cells)
                      if r["plain_vs_source"] < 0.5 and c["vs_plain"] is not None and c["found"]]
            g[k] = {
                "vs_source": _est([c["vs_source"] for c in cells]),
                "vs_source_found": _est([c["vs_source"] for c in cells if c["found"]]),
                "vs_plain": _est([c["vs_plain"] for c in cells if c["vs_plain"] is not None]),
                "found": round(float(np.mean([c["found"] for c in cells])), 3),
                "share_plain_wins": (round(float(np.mean([c["vs_plain"] > c["vs_source"] for _, c in differ])), 3)
                                     if differ else None),
                "n_differ": len(differ),
            }
        summary[group] = g
    suffix = ("" if args.weights is None else f"-{args.weights.name}") + \
        ("" if args.prompt_mode == "none" else f"-{args.prompt_mode}") + \
        ("" if args.init_mix == 0 else f"-mix{args.init_mix:g}") + \
        ("" if args.bench_seed == 0 else f"-bench{args.bench_seed}")
    out = args.out or ROOT / "benchmarks" / "results" / f"transfer_noise_vs_clip{suffix}.json"
    result = {"command": "python benchmarks/transfer_noise_vs_clip.py " + " ".join(sys.argv[1:]),
              "settings": settings.to_dict(), "init_mix": args.init_mix,
              "weights": None if args.weights is None else str(args.weights),
              "seconds": round(time.time() - t0, 1), "summary": summary, "records": records}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, out)
    for group, g in summary.items():
        print(f"{group:16s} plain: found {g['plain_found']:.2f} ~source {g['plain_vs_source']['mean']:+.2f}  " + "  ".join(
            f"{k}: found {g[k]['found']:.2f} ~source {g[k]['vs_source']['mean']:+.2f} "
            f"(found {g[k]['vs_source_found']['mean']:+.2f}) ~plain {g[k]['vs_plain']['mean']:+.2f} "
            f"plain wins {g[k]['share_plain_wins']} (n {g[k]['n_differ']})" for k in ("0.3", "0.6", "1")))
    print(f"wrote {out} ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
