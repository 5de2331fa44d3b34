"""Does the analyser count two touching sprites as two once the model's codec has blurred them?

    python benchmarks/touching_sprites.py [N]

The sprite world keeps characters at least 1.5 px apart, so the analyser's exactness tests
never see two sprites touch; the model draws them touching often enough. This renders N
random two-character scenes with both characters still and their bounding boxes touching
(gap 0) or 1 px apart, side by side or stacked, passes them through the built-in model's codec
(encode + decode: the blur every sample of the model has), and counts the clips the analyser
reads as exactly two characters of the right colours, with and without its seam step
(`analyse(drop_seams=...)`). Sharp renders are checked too. Writes
benchmarks/results/touching_sprites.json.
"""

from __future__ import annotations

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
from motionq.backbones.animatic import AnimaticConfig  # noqa: E402
from motionq.spriteworld import analyse  # noqa: E402
from motionq.spriteworld import render_scene, touching_pair_scene  # noqa: E402
from motionq.train import world_config  # noqa: E402


def round_trip(codec, frames: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(frames).float().div(255).mul(2).sub(1).permute(3, 0, 1, 2)[None]
    with torch.no_grad():
        rec = codec.decode(codec.encode(x).latent_dist.mode()).sample
    return ((rec[0].permute(1, 2, 3, 0).clamp(-1, 1) + 1) * 127.5).round().byte().numpy()


def reads_two(frames: np.ndarray, colours: list[str], drop_seams: bool) -> bool:
    found = analyse(frames, drop_seams=drop_seams).characters
    return sorted(t.colour for t in found) == sorted(colours)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    torch.set_num_threads(1)
    codec = load_backbone("animatic").pipe.vae
    wcfg = world_config(AnimaticConfig())  # the shapes and colours the model draws
    t0 = time.time()
    results = {}
    for gap in (0.0, 1.0):
        counts = {"sharp": 0, "codec, no seam step": 0, "codec": 0}
        for i in range(n):
            scene = touching_pair_scene(7_000_000 + i, wcfg, gap)
            colours = [c.colour for c in scene.characters]
            sharp = render_scene(scene)
            blurred = round_trip(codec, sharp)
            counts["sharp"] += reads_two(sharp, colours, True)
            counts["codec, no seam step"] += reads_two(blurred, colours, False)
            counts["codec"] += reads_two(blurred, colours, True)
        results[f"gap {gap:g} px"] = counts
        print(f"gap {gap:g} px: read as the two asked characters, of {n}: "
              + ", ".join(f"{k} {v}" for k, v in counts.items()), flush=True)
    out = ROOT / "benchmarks" / "results" / "touching_sprites.json"
    out.write_text(json.dumps({"clips_per_gap": n, "seeds": [7_000_000, 7_000_000 + n - 1], "results": results,
                               "seconds": round(time.time() - t0, 1),
                               "command": "python benchmarks/touching_sprites.py " + str(n)}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
