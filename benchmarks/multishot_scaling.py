"""How consistent multi-shot generation scales with the number of shots: joint SDSA against
anchor mode (2 anchors), with independent plain generation as the yardstick.

    OMP_NUM_THREADS=1 python benchmarks/multishot_scaling.py --model tiny
    OMP_NUM_THREADS=1 python benchmarks/multishot_scaling.py --model animatic
    OMP_NUM_THREADS=1 python benchmarks/multishot_scaling.py --model animatic-untrained

("animatic-untrained": the built-in model's architecture with its initial random weights, built
in memory: its compute profile, for timing while its trained weights are not published.)

For N = 1, 2, 4, 8 shots of one recurring character (every shot shares it, so every shot is
coupled), in one run, same model, size, steps and seeds:

* plain: the N shots rendered one by one (variant "vanilla");
* joint: the N shots as one consistency group (vanilla pass + consistent pass, the batch is N);
* anchors: the first min(2, N) shots are anchors, rendered jointly with their subject K/V
  recorded (the anchor cache is emptied before every run, so this cost is included), then
  every other shot alone against them.

Times are medians over `--repeats` runs, the modes interleaved so that load changes on a
shared machine hit all alike. Memory: a fresh subprocess per mode and N loads the model, resets
the peak resident set size (Linux: /proc/self/clear_refs) and does one run; "mem" is that run's
peak RSS over the RSS before it (the render's own memory: activations, caches, decoded frames;
ru_maxrss, which includes loading, is kept in the JSON too); on CUDA the peak allocated GPU
memory too. Plus exact bytes of the vanilla Q cache and of the
anchor K/V, from the renderer's stats, and the work done as "shot-forwards" (the sum of batch
sizes over all transformer calls: the cost on a model whose time grows with the batch; the tiny
model's time does not, it is all per-call overhead). Prints a table, asserts nothing, writes
benchmarks/results/multishot_scaling.json with the ratio anchor time(8) / time(2) (goal <= 4.5:
linear cost, where joint rendering's attention is quadratic) and the same ratio of work.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

MODES = ("plain", "joint", "anchors")
PROMPTS = [
    "a red cat moves left", "a red cat jumps up", "a red cat runs right", "a red cat spins around",
    "a red cat falls down", "a red cat walks slowly", "a red cat rises up", "a red cat stays still",
]
SUBJECT = "a red cat"


def _setup(args):
    import torch

    torch.set_num_threads(args.threads)
    from motionq.backbones import load_backbone

    opts = {"device": args.device} if args.device else {}
    if args.model == "animatic-untrained":
        return _untrained_animatic(args)
    try:
        bb = load_backbone(args.model, **opts)
    except Exception as exc:  # noqa: BLE001 - report any loading failure in words
        print(f"could not load model {args.model!r}: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(2)
    return bb


def _untrained_animatic(args):
    """The built-in model's architecture and sizes with its initial (random) weights: the
    compute profile of the real model, for timing before its weights are published."""
    from motionq.backbones.animatic import AnimaticConfig, build_pipeline
    from motionq.backbones.pipeline import PipelineBackbone
    from motionq.spriteworld import VOCABULARY

    cfg = AnimaticConfig()
    pipe = build_pipeline(cfg, VOCABULARY, seed=0)
    for m in (pipe.transformer, pipe.text_encoder, pipe.vae):
        m.eval()
    if pipe.vae.config.latents_mean is None:  # set by codec training; identity until then
        pipe.vae.register_to_config(latents_mean=[0.0] * cfg.z_dim, latents_std=[1.0] * cfg.z_dim)
    pipe.to(args.device or "cpu")
    return PipelineBackbone(pipe, name="animatic-untrained", native_size=(cfg.height, cfg.width),
                            max_sequence_length=cfg.max_sequence_length, default_frames=cfg.num_frames)


def _shots(n: int, args):
    from motionq.api import ShotRequest

    frames = args.frames
    return [ShotRequest(f"shot{i + 1}", PROMPTS[i % len(PROMPTS)], num_frames=frames, seed=100 + i,
                        steps=args.steps, guidance=args.guidance, subjects=(SUBJECT,),
                        characters=("cat",)) for i in range(n)]


def _sync(bb) -> None:
    import torch

    if torch.cuda.is_available() and bb.pipe._execution_device.type == "cuda":
        torch.cuda.synchronize()


def _run(bb, mode: str, n: int, args) -> tuple[float, dict]:
    """One render of `mode` at N shots; returns (seconds, stats)."""
    from motionq.api import ConsistencyConfig, GroupRequest
    from motionq.methods import multishot as MS

    shots = _shots(n, args)
    cfg = ConsistencyConfig(variant=args.variant, anchors="off")
    stats: dict = {}
    # work = sum of batch sizes over transformer forwards ("shot-forwards"): the cost on a
    # model whose time is proportional to the batch (not the case of the tiny one)
    work = [0]
    handle = bb.pipe.transformer.register_forward_pre_hook(
        lambda m, a, k: work.__setitem__(0, work[0] + int(k["hidden_states"].shape[0])), with_kwargs=True)
    _sync(bb)
    t0 = time.perf_counter()
    if mode == "plain":
        for s in shots:
            bb.render_shot(s)
    elif mode == "joint":
        res = MS.render_joint(bb, shots, cfg)
        stats = {"q_cache_bytes": res.stats["q_cache_bytes"], "coupled": len(res.stats["coupled"])}
    else:
        bb.anchor_cache = None  # cold: the anchors' joint render is part of the cost
        anchors = tuple(s.shot_id for s in shots[: min(2, n)])
        MS.render_group(bb, GroupRequest(tuple(shots), cfg, anchor_ids=anchors))
        entry = next(iter(MS.anchor_cache(bb).values()))
        stats = {"anchor_kv_bytes": entry.nbytes}
    _sync(bb)
    seconds = time.perf_counter() - t0
    handle.remove()
    stats["shot_forwards"] = work[0]
    return seconds, stats


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _memory_child(args) -> None:
    import resource

    import torch

    bb = _setup(args)
    mode, n = args.memory_child.split(":")
    cuda = torch.cuda.is_available() and bb.pipe._execution_device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is the peak since the process started (model loading included); on Linux the
    # peak (VmHWM) can be reset, which isolates the render's own peak
    reset = _reset_peak_rss()
    rss0 = _status_kib("VmRSS")
    _run(bb, mode, int(n), args)
    out = {"ru_maxrss_kib_before": before,
           "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
    if reset and rss0 is not None:
        peak = _status_kib("VmHWM")
        out.update(rss_before_kib=rss0, peak_rss_kib=peak, render_peak_over_baseline_kib=peak - rss0)
    if cuda:
        out["cuda_peak_bytes"] = torch.cuda.max_memory_allocated()
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny",
                    help="registered name or model folder (tiny, animatic, ...), or animatic-untrained")
    ap.add_argument("--shots", default="1,2,4,8")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=4.0)
    ap.add_argument("--frames", type=int, default=None, help="frames per shot (default: the model's)")
    ap.add_argument("--variant", default="sdsa+qpres+qflow")
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "multishot_scaling.json"))
    ap.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        if args.frames is None:
            args.frames = 0
        return _memory_child(args)

    import torch

    bb = _setup(args)
    args.frames = bb.valid_num_frames(args.frames or bb.default_frames)
    ns = [int(x) for x in args.shots.split(",")]
    print(f"model {args.model} on {bb.pipe._execution_device}, {args.frames} frames at "
          f"{bb.native_size()[0]}x{bb.native_size()[1]}, {args.steps} steps, variant {args.variant}",
          flush=True)
    for mode in MODES:  # warm-up: lazy initialisation
        _run(bb, mode, 2, args)
    times = {m: {n: [] for n in ns} for m in MODES}
    stats = {m: {} for m in MODES}
    for r in range(args.repeats):
        for n in ns:
            order = MODES if r % 2 == 0 else MODES[::-1]
            for mode in order:
                sec, st = _run(bb, mode, n, args)
                times[mode][n].append(sec)
                stats[mode][n] = st
    med = {m: {n: statistics.median(times[m][n]) for n in ns} for m in MODES}

    memory: dict = {}
    if not args.no_memory:
        for mode in MODES:
            for n in ns:
                cmd = [sys.executable, __file__, "--memory-child", f"{mode}:{n}", "--model", args.model,
                       "--steps", str(args.steps), "--guidance", str(args.guidance),
                       "--frames", str(args.frames), "--variant", args.variant,
                       "--threads", str(args.threads)]
                if args.device:
                    cmd += ["--device", args.device]
                env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
                p = subprocess.run(cmd, capture_output=True, text=True, env=env)
                if p.returncode != 0:
                    memory[f"{mode}:{n}"] = {"error": p.stderr.strip().splitlines()[-1:]}
                    continue
                memory[f"{mode}:{n}"] = json.loads(p.stdout.strip().splitlines()[-1])

    def ratio(mode: str, a: int, b: int) -> float | None:
        return med[mode][a] / med[mode][b] if a in med[mode] and b in med[mode] else None

    def work_ratio(mode: str, a: int, b: int) -> float | None:
        wa, wb = stats[mode].get(a, {}).get("shot_forwards"), stats[mode].get(b, {}).get("shot_forwards")
        return wa / wb if wa and wb else None

    result = {
        "model": args.model,
        "device": str(bb.pipe._execution_device),
        "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "size": {"num_frames": args.frames, "height": bb.native_size()[0], "width": bb.native_size()[1]},
        "steps": args.steps,
        "guidance": args.guidance,
        "variant": args.variant,
        "repeats": args.repeats,
        "shots": ns,
        "seconds": {m: {str(n): v for n, v in times[m].items()} for m in MODES},
        "median_seconds": {m: {str(n): v for n, v in med[m].items()} for m in MODES},
        # on a shared machine the fastest run is the least disturbed one
        "min_seconds": {m: {str(n): min(times[m][n]) for n in ns} for m in MODES},
        "anchor_min_time_ratio_8_over_2": (min(times["anchors"][8]) / min(times["anchors"][2])
                                           if 8 in ns and 2 in ns else None),
        "stats": {m: {str(n): v for n, v in stats[m].items()} for m in MODES},
        "memory": memory,
        "anchor_time_ratio_8_over_2": ratio("anchors", 8, 2),
        "shot_forwards": {m: {str(n): stats[m].get(n, {}).get("shot_forwards") for n in ns} for m in MODES},
        "anchor_work_ratio_8_over_2": work_ratio("anchors", 8, 2),
        "joint_work_ratio_8_over_2": work_ratio("joint", 8, 2),
        "joint_time_ratio_8_over_2": ratio("joint", 8, 2),
        "plain_time_ratio_8_over_2": ratio("plain", 8, 2),
        "anchor_ratio_goal": 4.5,
    }

    print(f"\n{'N':>3} {'plain s':>9} {'joint s':>9} {'anchors s':>10} {'joint/plain':>12} "
          f"{'anch/plain':>11} {'Q cache':>10} {'anchor K/V':>11} {'mem joint':>10} {'mem anch':>10}")
    def peak(mode: str, n: int):
        m = memory.get(f"{mode}:{n}", {})
        return m.get("render_peak_over_baseline_kib", m.get("ru_maxrss_kib"))

    for n in ns:
        mj, ma = peak("joint", n), peak("anchors", n)
        q = stats["joint"].get(n, {}).get("q_cache_bytes", 0)
        kv = stats["anchors"].get(n, {}).get("anchor_kv_bytes", 0)
        print(f"{n:>3} {med['plain'][n]:>9.3f} {med['joint'][n]:>9.3f} {med['anchors'][n]:>10.3f} "
              f"{med['joint'][n] / med['plain'][n]:>12.2f} {med['anchors'][n] / med['plain'][n]:>11.2f} "
              f"{q / 2**20:>8.2f}Mi {kv / 2**20:>9.2f}Mi "
              f"{(mj or 0) / 1024:>8.0f}Mi {(ma or 0) / 1024:>8.0f}Mi")
    print("shot-forwards (sum of batch sizes over transformer calls): " + "; ".join(
        f"{m} " + ", ".join(f"{n}:{stats[m].get(n, {}).get('shot_forwards')}" for n in ns) for m in MODES))
    if result["anchor_min_time_ratio_8_over_2"] is not None:
        print(f"anchors min time(8)/min time(2) = {result['anchor_min_time_ratio_8_over_2']:.2f}")
    for mode in MODES:
        r, w = ratio(mode, 8, 2), work_ratio(mode, 8, 2)
        if r is not None:
            print(f"{mode} time(8)/time(2) = {r:.2f}, shot-forwards(8)/(2) = {w:.2f}"
                  + ("  (goal <= 4.5)" if mode == "anchors" else ""))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
