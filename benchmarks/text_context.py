"""How much the built-in model's text encoder knows who does what: the change of a word's
vector when a caption gives each motion to the other character (`swap_subjects`), before and
after `Trainer.contextualise_text` (on a scratch copy of the training checkpoint).

    python benchmarks/text_context.py --steps 2000

Writes benchmarks/results/text_context.json (norms of the per-word differences; a word's
vector has norm about 10).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from motionq.backbones.animatic.text import encode_prompts  # noqa: E402
from motionq.spriteworld import swap_subjects  # noqa: E402
from motionq.train import Trainer  # noqa: E402

CAPTION = "a red circle moves left while an orange square bounces to the right on a navy background"
WORDS = ("left", "bounces", "red", "square")


def scratch_trainer(checkpoint: Path, folder: Path) -> Trainer:
    """A Trainer on a copy of a training checkpoint in `folder` (the original stays untouched)."""
    for name in ("model.safetensors", "ema.safetensors", "codec.safetensors", "state.json"):
        shutil.copyfile(checkpoint / name, folder / name)
    return Trainer(folder)


def swap_gaps(tr: Trainer) -> dict[str, float]:
    swapped = swap_subjects(CAPTION)
    with torch.no_grad():
        ea, eb = (encode_prompts(tr.tokenizer, tr.text_encoder, [t], 32)[0] for t in (CAPTION, swapped))
    wa, wb = CAPTION.split(" "), swapped.split(" ")
    out = {w: round(float((ea[wa.index(w)] - eb[wb.index(w)]).norm()), 4) for w in WORDS}
    out["norm_of_left"] = round(float(ea[wa.index("left")].norm()), 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "animatic")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "text_context.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        tr = scratch_trainer(args.checkpoint, Path(tmp))
        before = swap_gaps(tr)
        print("before", json.dumps(before), flush=True)
        probes = tr.contextualise_text(args.steps)
        after = swap_gaps(tr)
        print("after", json.dumps(after), flush=True)
    args.out.write_text(json.dumps({"caption": CAPTION, "swapped": swap_subjects(CAPTION), "steps": args.steps,
                                    "step": tr.step, "before": before, "after": after, "final_probe_losses": probes,
                                    "command": "python benchmarks/text_context.py " + " ".join(sys.argv[1:])},
                                   indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
