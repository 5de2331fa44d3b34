"""How much of a clip survives the built-in model's codec, read by the sprite analyser.

    python benchmarks/codec_roundtrip.py [N]

Encodes and decodes N held-out ground-truth clips of the world the model is trained on and
counts the clips whose characters keep shape, colour, motion class and count. This is the
ceiling of what the analyser can read from any sample of the model. Writes
benchmarks/results/codec_roundtrip.json.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from motionq.backbones import load_backbone  # noqa: E402
from motionq.backbones.animatic import AnimaticConfig  # noqa: E402
from motionq.spriteworld import analyse, sample_clip  # noqa: E402
from motionq.train import world_config  # noqa: E402


def identities(analysis) -> list[tuple]:
    return sorted((t.colour, t.shape, t.motion) for t in analysis.characters)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    torch.set_num_threads(1)
    codec = load_backbone("animatic").pipe.vae
    wcfg = world_config(AnimaticConfig())
    kept, misses = 0, []
    for i in range(n):
        clip = sample_clip(10_000 + i, wcfg, detail="full")
        x = torch.from_numpy(clip.frames).float().div(255).mul(2).sub(1).permute(3, 0, 1, 2)[None]
        with torch.no_grad():
            rec = codec.decode(codec.encode(x).latent_dist.mode()).sample
        frames = ((rec[0].permute(1, 2, 3, 0).clamp(-1, 1) + 1) * 127.5).round().byte().numpy()
        want, got = identities(analyse(clip.frames)), identities(analyse(frames))
        if want == got:
            kept += 1
        else:
            misses.append({"seed": 10_000 + i, "truth": want, "decoded": got})
    result = {"clips": n, "kept": kept, "share": kept / n, "misses": misses,
              "command": "python benchmarks/codec_roundtrip.py " + str(n)}
    out = ROOT / "benchmarks" / "results" / "codec_roundtrip.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"{kept}/{n} clips keep shape, colour, motion and count through the codec")


if __name__ == "__main__":
    main()
