"""Compare samplers of the built-in model on validation seeds, disjoint from training (< 10^9)
and from the quality bench (10^9 + i): fully specified captions only, motion class and count.

    python benchmarks/sampler_validation.py --samples 200 --first-seed 2000000000 euler unipc dpm

Used to pick the model's scheduler before measuring once on the bench
(benchmarks/animatic_quality.py). Prints one line per sampler and writes
benchmarks/results/sampler_validation-<first seed>.json.
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

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from motionq.backbones import load_backbone  # noqa: E402
from motionq.backbones.animatic import published_config  # noqa: E402
from motionq.backbones.animatic.settings import WEIGHTS_DIR  # noqa: E402
from motionq.train import validation_scores  # noqa: E402


def make_scheduler(kind: str, model_config: dict, shift: float):
    """The model's own scheduler ("euler") or one of Wan's multistep solvers at the same shift."""
    from diffusers import DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

    if kind == "euler":
        return FlowMatchEulerDiscreteScheduler.from_config(model_config)
    common = dict(num_train_timesteps=1000, prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=shift)
    if kind == "unipc":
        return UniPCMultistepScheduler(**common)
    if kind == "dpm":
        return DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2, **common)
    raise SystemExit(f"unknown sampler {kind!r} (euler, unipc, dpm)")


def score(pipe, samples: int, first_seed: int, guidance: float, steps: int) -> dict:
    """Motion (every asked character), two-character motion and count; clip by clip."""
    scores, _ = validation_scores(pipe, published_config(), first_seed, samples, batch=1, steps=steps,
                                  guidance=guidance)
    return {k: scores[k] for k in ("motion", "motion_right", "characters_asked", "two_character_motion",
                                   "count", "count_errors")}


def blend_weights(pipe, checkpoint: Path, raw_share: float) -> None:
    """Load raw_share x the raw training weights + the rest x their EMA into the pipeline."""
    from safetensors.torch import load_file

    raw, ema = load_file(checkpoint / "model.safetensors"), load_file(checkpoint / "ema.safetensors")
    mixed = {k: raw_share * raw[k].float() + (1 - raw_share) * v.float() for k, v in ema.items()}
    for prefix, module in (("transformer.", pipe.transformer), ("text_encoder.", pipe.text_encoder)):
        part = {k[len(prefix):]: v for k, v in mixed.items() if k.startswith(prefix)}
        missing, unexpected = module.load_state_dict(part, strict=False)
        if unexpected or len(part) == 0:
            raise SystemExit(f"checkpoint does not match the published {prefix[:-1]}: {unexpected[:3]}")


def _text_layers(folder: Path) -> int:
    return json.loads((folder / "text_encoder" / "config.json").read_text())["num_layers"]


def load_weights_folder(pipe, folder: Path) -> None:
    """Replace the transformer and text encoder by those of another pipeline folder of the same
    architecture (an older step, or an interpolation of two published steps)."""
    from safetensors.torch import load_file

    for sub, module in (("transformer/diffusion_pytorch_model.safetensors", pipe.transformer),
                        ("text_encoder/model.safetensors", pipe.text_encoder)):
        missing, unexpected = module.load_state_dict(load_file(folder / sub), strict=False)
        # The text encoder's token embedding is tied to `shared` and not stored twice.
        if unexpected or any(not k.endswith("embed_tokens.weight") for k in missing):
            raise SystemExit(f"{folder / sub} does not match the published architecture: "
                             f"missing {missing[:3]}, unexpected {unexpected[:3]}")


def guidance_on_steps(pipe, steps: set[int], there: float, guidance: float) -> None:
    """Sample with guidance `there` instead of `guidance` on the given step indices (0-based;
    `there` = 1: no guidance, a guidance interval). The pipeline mixes
    u' + guidance * (c - u'); returning u' = (guidance * c - r) / (guidance - 1) for its
    unconditional prediction makes that r = u + there * (c - u). Only measures quality: both
    passes still run, so no time is saved."""
    state = {"calls": 0, "cond": None}

    def hook(module, args, kwargs, out):
        n = state["calls"]
        state["calls"] += 1
        step, uncond = divmod(n, 2)  # WanPipeline calls cond, then uncond, each step
        if not uncond:
            state["cond"] = out
            return out
        if step not in steps:
            return out
        # return_dict=False: the transformer returns a tuple whose first item is the prediction
        c, u = (state["cond"][0], out[0]) if isinstance(out, tuple) else (state["cond"], out)
        r = u + there * (c - u)
        mixed = (guidance * c - r) / (guidance - 1)
        return (mixed, *out[1:]) if isinstance(out, tuple) else mixed

    pipe.transformer.register_forward_hook(hook, with_kwargs=True)
    call = type(pipe).__call__

    def counted(self, *a, **k):
        state["calls"] = 0
        return call(self, *a, **k)

    pipe.__class__ = type(type(pipe).__name__, (type(pipe),), {"__call__": counted})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("samplers", nargs="+", help="euler (the model's), unipc, dpm")
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--first-seed", type=int, default=2_000_000_000)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=4.0)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--raw-share", type=float, default=None,
                    help="replace the published (EMA) weights by RAW_SHARE x raw + (1 - RAW_SHARE) x EMA "
                         "from the training checkpoint (--checkpoint)")
    ap.add_argument("--weights", type=Path, default=None,
                    help="a pipeline folder of the same architecture whose transformer and text encoder "
                         "replace the published ones")
    ap.add_argument("--label", default=None, help="suffix for the result key (e.g. the weights' name)")
    ap.add_argument("--guidance-steps", default=None, metavar="STEPS=G",
                    help="other guidance on some steps (0-based), e.g. 0,1,2,3=1 (none there) or 0,1,2,3=2")
    ap.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "animatic")
    args = ap.parse_args()
    if args.first_seed < 10**9 + 10**6:
        raise SystemExit("--first-seed must lie past the training seeds and the bench's (>= 1,001,000,000)")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if args.weights is not None and args.raw_share is not None:
        raise SystemExit("--weights and --raw-share both replace the weights: give one")
    if args.weights is not None and _text_layers(args.weights) != _text_layers(WEIGHTS_DIR):
        # a grown text encoder (`--text-layers`): the folder is a whole pipeline, load it as one
        pipe = load_backbone(str(args.weights)).pipe
    else:
        pipe = load_backbone("animatic").pipe
        if args.weights is not None:
            load_weights_folder(pipe, args.weights)
    if args.raw_share is not None:
        blend_weights(pipe, args.checkpoint, args.raw_share)
    pipe.set_progress_bar_config(disable=True)
    if args.guidance_steps:
        where, there = args.guidance_steps.split("=")
        guidance_on_steps(pipe, {int(x) for x in where.split(",")}, float(there), args.guidance)
    own = dict(pipe.scheduler.config)
    results = {}
    for kind in args.samplers:
        pipe.scheduler = make_scheduler(kind, own, float(own.get("shift", 2.0)))
        t0 = time.time()
        key = kind if args.raw_share is None else f"{kind}@raw{args.raw_share:g}"
        key += f"@{args.label}" if args.label else ""
        results[key] = score(pipe, args.samples, args.first_seed, args.guidance, args.steps)
        print(key, json.dumps(results[key]), f"{time.time() - t0:.0f} s", flush=True)
    out = args.out or ROOT / "benchmarks" / "results" / f"sampler_validation-{args.first_seed}.json"
    out.write_text(json.dumps({"samples": args.samples, "first_seed": args.first_seed, "steps": args.steps,
                               "guidance": args.guidance, "results": results,
                               "command": "python benchmarks/sampler_validation.py " + " ".join(sys.argv[1:])},
                              indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
