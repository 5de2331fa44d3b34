"""Cost of motion transfer against plain generation, same model, size, steps and seed.

    python benchmarks/transfer_overhead.py --model tiny --repeats 7

Times `repeats` plain generations and `repeats` motion transfers, interleaved (so a load
change on a shared machine hits both alike), and reports the ratio of the medians and of the
minimums (the least disturbed runs, on a shared machine). The transfer
time includes everything the method adds: reading and resampling the reference clip, its VAE
encoding, the recording forward pass(es) and the controlled generation; a breakdown by phase
comes from the progress callback.

Memory: on CUDA, peak allocated GPU memory of each mode (torch.cuda.max_memory_allocated).
On CPU, peak resident set size (ru_maxrss) of a fresh subprocess running one generation of
each mode: the whole process (Python, libraries, model, activations), so the difference between
the two is what transfer adds; plus the exact bytes of the recorded Q.

Writes benchmarks/results/transfer_overhead.json.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROMPT = "a red square moves left"


def _setup(args):
    import torch

    torch.set_num_threads(args.threads)
    from motionq.backbones import load_backbone

    opts = {"device": args.device} if args.device else {}
    bb = load_backbone(args.model, **opts)
    h, w = bb.native_size()
    size = dict(num_frames=bb.valid_num_frames(args.frames or bb.default_frames),
                height=args.height or h, width=args.width or w)
    return bb, size


def _reference_clip(path: Path, num_frames: int, height: int, width: int) -> Path:
    """A square moving diagonally over a gradient, written as an mp4 (so reading is timed)."""
    import numpy as np

    from motionq.video import write_video

    n = max(num_frames, 2)
    y, x = np.mgrid[:height, :width]
    frames = np.empty((n, height, width, 3), np.uint8)
    side = max(2, min(height, width) // 4)
    for i in range(n):
        frames[i] = np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1),
                              np.full_like(x, 60)], -1)
        p = int(i * (min(height, width) - side) / (n - 1))
        frames[i, p : p + side, p : p + side] = (250, 40, 40)
    return write_video(frames, path, fps=16)


def _sync(device_type: str) -> None:
    if device_type == "cuda":
        import torch

        torch.cuda.synchronize()


def _one(bb, size, args, clip, mode: str, phases: dict | None = None) -> float:
    marks: dict[str, list[float]] = {}

    def progress(phase: str, done: int, total: int) -> None:
        marks.setdefault(phase, []).append(time.perf_counter())

    kw = dict(steps=args.steps, guidance=args.guidance, seed=0, progress=progress, **size)
    dev = bb.pipe._execution_device.type
    _sync(dev)
    t0 = time.perf_counter()
    if mode == "plain":
        bb.generate(PROMPT, **kw)
    else:
        bb.transfer(clip, PROMPT, strength=args.strength, record=args.record, **kw)
    _sync(dev)
    t1 = time.perf_counter()
    if phases is not None:
        # phase durations from the callback's timestamps; "setup" = clip + prompts before encoding
        enc = marks.get("encode", [t0, t0])
        rec = marks.get("record", [enc[-1]])
        phases.setdefault("setup", []).append(enc[0] - t0)
        phases.setdefault("encode", []).append(enc[-1] - enc[0])
        phases.setdefault("record", []).append(rec[-1] - enc[-1])
        phases.setdefault("sample+decode", []).append(t1 - rec[-1])
    return t1 - t0


def _memory_child(args) -> None:
    """Subprocess: one run of one mode, print its peak memory as JSON."""
    import resource

    import torch

    bb, size = _setup(args)
    clip = Path(args.clip)
    cuda = bb.pipe._execution_device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _one(bb, size, args, clip, args.memory_child)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = {"ru_maxrss_kib_before": before, "ru_maxrss_kib": after}
    if cuda:
        out["cuda_peak_bytes"] = torch.cuda.max_memory_allocated()
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny", help="registered name or model folder (later: animatic)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=4.0)
    ap.add_argument("--strength", type=float, default=0.6)
    ap.add_argument("--record", default="single", choices=["single", "per_step"])
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--height", type=int, default=None)
    ap.add_argument("--width", type=int, default=None)
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "transfer_overhead.json"))
    ap.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--clip", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        return _memory_child(args)

    import torch

    bb, size = _setup(args)
    tmp = Path(tempfile.mkdtemp(prefix="mq-bench-"))
    atexit.register(shutil.rmtree, tmp, True)  # also when the run fails or is interrupted
    clip = _reference_clip(tmp / "ref.mp4", size["num_frames"] * 2, size["height"], size["width"])
    # warm-up: first calls pay for lazy initialisation
    _one(bb, size, args, clip, "plain")
    _one(bb, size, args, clip, "transfer")
    times = {"plain": [], "transfer": []}
    phases: dict[str, list[float]] = {}
    for r in range(args.repeats):
        order = ("plain", "transfer") if r % 2 == 0 else ("transfer", "plain")
        for mode in order:
            times[mode].append(_one(bb, size, args, clip, mode, phases if mode == "transfer" else None))

    # recorded-Q bytes, exactly, for this configuration
    from motionq.methods import transfer as T

    frames = T.load_clip(clip, size["num_frames"], size["height"], size["width"])
    pe, _ = T._encode_prompts(bb.pipe, PROMPT, "", args.guidance, bb.max_sequence_length)
    motion = T.record_motion(bb.pipe, T.encode_video(bb.pipe, frames), pe, steps=args.steps,
                             strength=args.strength, record=args.record)

    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "model": args.model,
        "device": str(bb.pipe._execution_device),
        "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "size": size,
        "steps": args.steps,
        "guidance": args.guidance,
        "strength": args.strength,
        "record": args.record,
        "blocks": motion.blocks,
        "repeats": args.repeats,
        "seconds": times,
        "median_seconds": med,
        "min_seconds": {k: min(v) for k, v in times.items()},
        "ratio": med["transfer"] / med["plain"],
        # on a shared machine the fastest run of each mode is the least disturbed one
        "ratio_of_minimums": min(times["transfer"]) / min(times["plain"]),
        "transfer_phase_median_seconds": {k: statistics.median(v) for k, v in phases.items()},
        "q_cache_bytes": motion.nbytes,
    }

    if not args.no_memory:
        mem = {}
        for mode in ("plain", "transfer"):
            cmd = [sys.executable, __file__, "--memory-child", mode, "--clip", str(clip),
                   "--model", args.model, "--steps", str(args.steps), "--strength", str(args.strength),
                   "--record", args.record, "--threads", str(args.threads)]
            for flag in ("frames", "height", "width", "device"):
                if getattr(args, flag):
                    cmd += [f"--{flag}", str(getattr(args, flag))]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            mem[mode] = json.loads(out.strip().splitlines()[-1])
        result["memory"] = {
            "what": "peak GPU memory allocated (cuda_peak_bytes) where CUDA, and peak RSS of a "
                    "fresh process running one generation of the mode (ru_maxrss, KiB)",
            **mem,
            "rss_delta_kib": mem["transfer"]["ru_maxrss_kib"] - mem["plain"]["ru_maxrss_kib"],
        }

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    ph = ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in result["transfer_phase_median_seconds"].items())
    print(f"{args.model} on {result['device']} ({result['threads']} thread(s)), "
          f"{size['num_frames']}x{size['height']}x{size['width']}, {args.steps} steps, "
          f"strength {args.strength}, record={args.record}, blocks {motion.blocks}")
    print(f"plain    median {med['plain'] * 1000:.1f} ms   (n={args.repeats})")
    print(f"transfer median {med['transfer'] * 1000:.1f} ms   ({ph})")
    print(f"ratio transfer/plain: {result['ratio']:.2f}x of medians, "
          f"{result['ratio_of_minimums']:.2f}x of minimums   recorded Q: {motion.nbytes / 2**10:.1f} KiB")
    if "memory" in result:
        m = result["memory"]
        line = (f"peak RSS plain {m['plain']['ru_maxrss_kib'] / 1024:.0f} MiB, "
                f"transfer {m['transfer']['ru_maxrss_kib'] / 1024:.0f} MiB "
                f"(+{m['rss_delta_kib'] / 1024:.1f} MiB)")
        if "cuda_peak_bytes" in m["plain"]:
            line += (f"; GPU peak plain {m['plain']['cuda_peak_bytes'] / 2**20:.0f} MiB, "
                     f"transfer {m['transfer']['cuda_peak_bytes'] / 2**20:.0f} MiB")
        print(line)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
