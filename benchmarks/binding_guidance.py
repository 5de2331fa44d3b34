"""Can sampling-time guidance fix the built-in model's two-character binding (the model draws the
asked motions, on the wrong character)? Two guidance rules against plain classifier-free guidance,
on validation seeds disjoint from training (< 10^9) and from the quality bench (10^9 + i),
two-character fully specified captions only:

- ``swap``: contrastive guidance away from the same caption with the two subjects swapped
  (``eps_u + g (eps_c - eps_u) + w (eps_c - eps_swapped)``): the difference is exactly the
  binding.
- ``clauses``: composable guidance with each character's clause as its own caption
  (``eps_u + g (eps_c - eps_u) + w sum_i (eps_i - eps_u)``; w < 0 means composition alone,
  ``eps_u + g sum_i (eps_i - eps_u)``).

    python benchmarks/binding_guidance.py --samples 100 swap:0,30,100,300 clauses:0,1,2,-1

Prints one line per clip and the totals (motion right per character, characters found) and
writes benchmarks/results/binding_guidance.json. Also prints how far apart the model's
predictions for a caption and its swapped version are, against caption vs empty prompt.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import animatic_quality as bench  # noqa: E402
from motionq.backbones import load_backbone  # noqa: E402
from motionq.backbones.animatic import published_config  # noqa: E402
from motionq.methods.multishot import decode  # noqa: E402
from motionq.methods.transfer import pipeline_num_frames  # noqa: E402
from motionq.spriteworld import analyse, caption, parse_caption, sample_scene  # noqa: E402
from motionq.train import world_config  # noqa: E402

_BACKGROUND = re.compile(r"(?:^|\s)((?:on|against|over) an? \w+ background)(?:\s|$)")


def _articles(text: str) -> str:
    text = re.sub(r"\ban (?=[^aeiou])", "a ", text)
    return re.sub(r"\ba (?=[aeiou])", "an ", text)


def swapped(text: str, chars: list[dict]) -> list[str] | None:
    """The caption with the two subjects' identity phrases exchanged (motions change owner)."""
    a, b = (f"{c['colour']} {c['shape']}" for c in chars)
    if a == b:
        return None
    return [_articles(text.replace(a, "\0").replace(b, a).replace("\0", b))]


def clauses(text: str, chars: list[dict]) -> list[str] | None:
    """Each character's clause with the background, as two one-character captions."""
    m = _BACKGROUND.search(text)
    if not m:
        return None
    rest = (text[: m.start()] + " " + text[m.end():]).strip()
    parts = re.split(r" while | and (?=an? )", rest)
    return [p.strip() + " " + m.group(1) for p in parts] if len(parts) == 2 else None


def _encode(pipe, cfg, prompt: str):
    """(prompt, empty-prompt) embeddings, as the pipeline makes them."""
    return pipe.encode_prompt(prompt=prompt, negative_prompt="", do_classifier_free_guidance=True,
                              num_videos_per_prompt=1, max_sequence_length=cfg.max_sequence_length,
                              device=torch.device("cpu"))


@torch.no_grad()
def guided(pipe, cfg, text: str, extra: list[str], seed: int, rule: str, weight: float,
           guidance: float, steps: int) -> np.ndarray:
    cond, uncond = _encode(pipe, cfg, text)
    emb = torch.cat([cond, uncond] + [_encode(pipe, cfg, x)[0] for x in extra])
    frames = pipeline_num_frames(pipe, cfg.num_frames)
    lat = pipe.prepare_latents(1, pipe.transformer.config.in_channels, cfg.height, cfg.width, frames,
                               torch.float32, torch.device("cpu"), torch.Generator().manual_seed(seed), None)
    sched = copy.deepcopy(pipe.scheduler)
    sched.set_timesteps(steps)
    sched.set_begin_index(0)
    n = emb.shape[0]
    for t in sched.timesteps:
        out = pipe.transformer(hidden_states=lat.repeat(n, 1, 1, 1, 1), timestep=t.expand(n),
                               encoder_hidden_states=emb, return_dict=False)[0]
        c, u, others = out[0:1], out[1:2], out[2:]
        if rule == "swap":
            eps = u + guidance * (c - u) + weight * (c - others)
        elif weight < 0:
            eps = u + guidance * (others - u).sum(0, keepdim=True)
        else:
            eps = u + guidance * (c - u) + weight * (others - u).sum(0, keepdim=True)
        lat = sched.step(eps, t, lat, return_dict=False)[0]
    return decode(pipe, lat)


def separation(pipe, cfg, text: str, swap: str) -> dict:
    """|eps(caption) - eps(swapped)| and |eps(caption) - eps(empty)| at a few timesteps."""
    (c, u), (s, _) = _encode(pipe, cfg, text), _encode(pipe, cfg, swap)
    frames = pipeline_num_frames(pipe, cfg.num_frames)
    lat = pipe.prepare_latents(1, pipe.transformer.config.in_channels, cfg.height, cfg.width, frames,
                               torch.float32, torch.device("cpu"), torch.Generator().manual_seed(1), None)
    sched = copy.deepcopy(pipe.scheduler)
    sched.set_timesteps(20)
    rows = {}
    with torch.no_grad():
        for t in sched.timesteps[::5]:
            out = pipe.transformer(hidden_states=lat.repeat(3, 1, 1, 1, 1), timestep=t.expand(3),
                                   encoder_hidden_states=torch.cat([c, u, s]), return_dict=False)[0]
            rows[f"{float(t):.0f}"] = {"caption_vs_empty": round(float((out[0] - out[1]).norm()), 4),
                                      "caption_vs_swapped": round(float((out[0] - out[2]).norm()), 4)}
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("rules", nargs="+", help="swap:W1,W2,... and/or clauses:W1,W2,...")
    ap.add_argument("--samples", type=int, default=100, help="validation seeds to draw captions from")
    ap.add_argument("--first-seed", type=int, default=2_000_000_000)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=4.0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "binding_guidance.json")
    ap.add_argument("--checkpoint", type=Path, default=None,
                    help="use the EMA weights of this training run instead of the published ones")
    args = ap.parse_args()
    if args.first_seed < 10**9 + 10**6:
        raise SystemExit("--first-seed must lie past the training seeds and the bench's (>= 1,001,000,000)")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    pipe = load_backbone("animatic").pipe
    pipe.set_progress_bar_config(disable=True)
    if args.checkpoint is not None:
        from sampler_validation import blend_weights

        blend_weights(pipe, args.checkpoint, 0.0)
    cfg = published_config()
    wcfg = world_config(cfg)
    makers = {"swap": swapped, "clauses": clauses}
    runs = [(r, float(w)) for spec in args.rules for r, ws in [spec.split(":")] for w in ws.split(",")]
    if any(r not in makers for r, _ in runs):
        raise SystemExit("rules are swap:W,... or clauses:W,...")
    totals: dict[str, dict[str, int]] = {}
    clips = []
    for i in range(args.samples):
        seed = args.first_seed + i
        rng = np.random.default_rng(seed)
        text = caption(sample_scene(rng, wcfg), rng, detail="full", cfg=wcfg)
        asked = parse_caption(text)["characters"]
        if len(asked) != 2:
            continue
        extras = {r: makers[r](text, asked) for r in makers}
        if any(extras[r] is None for r, _ in runs):
            continue
        videos = {"plain": bench.sample(pipe, text, seed, cfg, args.steps, args.guidance)}
        for r, w in runs:
            videos[f"{r}:{w:g}"] = guided(pipe, cfg, text, extras[r], seed, r, w, args.guidance, args.steps)
        row = {"seed": seed, "caption": text, "motions_differ": asked[0]["motion"] != asked[1]["motion"]}
        for key, frames in videos.items():
            found = analyse(frames)
            right = sum(int(got is not None and got.motion == want.get("motion"))
                        for want, got in bench.match(asked, found.characters))
            t = totals.setdefault(key, {"motion_right": 0, "characters_asked": 0, "count_right": 0, "clips": 0})
            t["motion_right"] += right
            t["characters_asked"] += 2
            t["count_right"] += int(len(found.characters) == 2)
            t["clips"] += 1
            row[key] = {"motion_right": right, "found": len(found.characters)}
        clips.append(row)
        print(seed, " ".join(f"{k}:{v['motion_right']}/{v['found']}" for k, v in row.items()
                             if isinstance(v, dict)), text, flush=True)
    first = next(c for c in clips if c["motions_differ"])
    sep = separation(pipe, cfg, first["caption"],
                     swapped(first["caption"], parse_caption(first["caption"])["characters"])[0])
    for key, t in totals.items():
        print(f"{key:>12}: motion {t['motion_right']}/{t['characters_asked']}, "
              f"two characters found {t['count_right']}/{t['clips']}")
    print("prediction distance (L2) by timestep:", json.dumps(sep))
    args.out.write_text(json.dumps({"first_seed": args.first_seed, "samples": args.samples, "steps": args.steps,
                                    "guidance": args.guidance, "totals": totals, "separation": sep,
                                    "separation_caption": first["caption"], "clips": clips,
                                    "command": "python benchmarks/binding_guidance.py " + " ".join(sys.argv[1:])},
                                   indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
