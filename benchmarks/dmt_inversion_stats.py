"""How far DMT's inverted start latent is from the noise the sampler expects, per source kind.

    python benchmarks/dmt_inversion_stats.py [--substeps 1,50]

For every source clip of the transfer benchmark (`motionq eval transfer` / `eval dmt`), encodes
the clip, inverts it with the Euler ODE up the 20-step schedule (`motionq.evaluation.dmt.
invert_path`, empty prompt, as `DMTConfig(inversion=True)` does) with each number of Euler
passes per step (1: the `+inv` rows; 50: the published-recipe row, 1,000 passes like DMT's
999-step DDIM inversion) and builds DMT's start latent (`keep_low_frequencies`, factor 4).
Prints and writes the standard deviations of the clean latent, the inverted sigma = 1 latent and
the start latent, against the seeded noise's (about 1).
Writes benchmarks/results/dmt_inversion_stats.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from diffusers.utils.torch_utils import randn_tensor  # noqa: E402

from motionq.backbones import load_backbone  # noqa: E402
from motionq.control.phases import scheduler_sigmas, scheduler_timesteps  # noqa: E402
from motionq.evaluation.dmt import invert_path, keep_low_frequencies  # noqa: E402
from motionq.evaluation.transfer import TransferSettings, build_pairs  # noqa: E402
from motionq.methods.transfer import _encode_prompts, encode_video  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--substeps", default="1,50", help="Euler passes per sampling step, comma list.")
    args = ap.parse_args()
    substeps = [int(x) for x in args.substeps.split(",") if x.strip()]
    torch.set_num_threads(1)
    backbone = load_backbone("animatic")
    pipe = backbone.pipe
    steps = 20
    ts, sig = scheduler_timesteps(pipe.scheduler, steps), scheduler_sigmas(pipe.scheduler, steps)
    with torch.no_grad():
        empty, _ = _encode_prompts(pipe, "", "", 1.0, backbone.max_sequence_length)
    rows, seen = [], set()
    for pair in build_pairs(backbone, TransferSettings()):
        src = pair.source
        if src.name in seen:
            continue
        seen.add(src.name)
        z = encode_video(pipe, src.frames)
        noise = randn_tensor(tuple(z.shape), generator=torch.Generator().manual_seed(0), dtype=torch.float32)
        for sub in substeps:
            path = invert_path(pipe.transformer, z, sig, ts, empty, substeps=sub)
            start = keep_low_frequencies(path[0], noise, 4)
            rows.append({"source": src.name, "kind": src.kind, "substeps": sub, "clean_std": round(float(z.std()), 3),
                         "inverted_std": round(float(path[0].std()), 3), "start_std": round(float(start.std()), 3),
                         "noise_std": round(float(noise.std()), 3)})
            print(json.dumps(rows[-1]), flush=True)
    by_substeps: dict[str, dict] = {}
    for sub in substeps:
        by_kind = by_substeps[str(sub)] = {}
        for kind in sorted({r["kind"] for r in rows}):
            sel = [r for r in rows if r["kind"] == kind and r["substeps"] == sub]
            by_kind[kind] = {k: round(sum(r[k] for r in sel) / len(sel), 3)
                             for k in ("clean_std", "inverted_std", "start_std", "noise_std")} | {"sources": len(sel)}
            print(f"{sub} pass(es) per step", kind, by_kind[kind])
    out = ROOT / "benchmarks" / "results" / "dmt_inversion_stats.json"
    command = "python benchmarks/dmt_inversion_stats.py"
    if args.substeps != "1,50":
        command += f" --substeps {args.substeps}"
    tmp = out.with_name(out.name + ".part")
    tmp.write_text(json.dumps({"steps": steps, "by_substeps": by_substeps, "sources": rows,
                               "command": command}, indent=1) + "\n")
    os.replace(tmp, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
