"""Why denoising does not teach the built-in model who does what: on two-character training
clips, the loss gap between the subject-swapped caption and the true one, and the size of its
gradient against the denoising gradient, at four noise levels.

    python benchmarks/binding_gradient.py [--checkpoint checkpoints/animatic]

Writes benchmarks/results/binding_gradient.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from motionq.train import encode_tokens, step_batch  # noqa: E402
from text_context import scratch_trainer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "animatic")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "binding_gradient.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        tr = scratch_trainer(args.checkpoint, Path(tmp))
    frames, ids, mask, (idx, nids, nmask) = step_batch(asdict(tr.cfg.model), 0, 123, 32, 0.0, 1.0, True)
    video = torch.from_numpy(frames).permute(0, 4, 1, 2, 3).float() / 127.5 - 1
    with torch.no_grad():
        x0 = tr.codec.normalize(tr.codec.encode_latent(video))[idx]
    ids, mask = ids[idx], mask[idx]
    params = list(tr._trainable_params())
    rows = {}
    for level in (0.9, 0.7, 0.5, 0.3):
        torch.manual_seed(0)
        sigma = torch.full((x0.shape[0],), level)
        noise = torch.randn_like(x0)
        xt = (1 - level) * x0 + level * noise
        target = noise - x0
        pred = tr.transformer(xt, sigma * 1000, encode_tokens(tr.text_encoder, ids, mask), return_dict=False)[0]
        swapped = tr.transformer(xt, sigma * 1000, encode_tokens(tr.text_encoder, nids, nmask), return_dict=False)[0]
        l_true = (pred - target).pow(2).flatten(1).mean(1)
        l_swap = (swapped - target).pow(2).flatten(1).mean(1)
        gap = (l_swap - l_true).mean()
        g_gap = torch.autograd.grad(gap, params, retain_graph=True, allow_unused=True)
        g_main = torch.autograd.grad(l_true.mean(), params, allow_unused=True)

        def norm(gs) -> float:
            return float(sum(float(g.pow(2).sum()) for g in gs if g is not None) ** 0.5)

        rows[str(level)] = {"loss": round(float(l_true.detach().mean()), 5), "gap": float(gap.detach()),
                            "grad_gap": norm(g_gap), "grad_denoising": norm(g_main),
                            "ratio": norm(g_main) / max(norm(g_gap), 1e-30)}
        print(level, json.dumps(rows[str(level)]), flush=True)
    args.out.write_text(json.dumps({"clips": int(len(idx)), "step": tr.step, "by_noise_level": rows,
                                    "command": "python benchmarks/binding_gradient.py " + " ".join(sys.argv[1:])},
                                   indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
