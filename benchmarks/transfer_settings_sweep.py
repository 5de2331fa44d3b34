"""Which injection settings carry the most motion on the built-in model.

    python benchmarks/transfer_settings_sweep.py [--prompt-mode none] [--bench-seed 0] [--configs all]

Motion transfer (`motionq.methods.transfer.transfer`) has three knobs besides the strength: the
blocks whose Q is injected, whether Q is recorded once at a low-noise timestep ("single", at
`record_t`) or at each injected step's own timestep ("per_step"), and that timestep. The
built-in model uses blocks 2-5, single, t = 200; those blocks were chosen on the step-20,306
weights and the recording mode and timestep were never swept on this model. Besides those, it
tries choices the paper leaves open or that could keep the target from following its own noise:
the prompt the reference is recorded with (`record_empty`), a share of the reference's latent in
the starting latent (`mix*`), and the injection policy (only one guidance pass, or blending the
recorded Q with the target's own instead of replacing it; `injection_policy`). This script runs
`motionq eval transfer`'s pairs, seeds and scoring (`run_transfer`) once per setting, at
strengths 0.3, 0.6 and 1.0 plus the text-only baseline, and prints fidelity, identity kept and
leakage per pair type and the paired gain over the text-only prompt that names the motion.
`--free-paths` adds the free-path sprite sources (rows carry displacement / position errors too).
Writes benchmarks/results/transfer_settings_sweep[-<mode>][-bench<seed>][-free].json, keeping
the rows of settings not re-run when the file was made with the same pairs and settings.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from motionq.backbones import load_backbone  # noqa: E402
from motionq.evaluation.transfer import TransferSettings, path_kind, paired_vs_text, run_transfer  # noqa: E402

#: name -> transfer keyword overrides; "default" is what the built-in model ships with.
CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "blocks0-5": {"blocks": [0, 1, 2, 3, 4, 5]},
    "blocks1-5": {"blocks": [1, 2, 3, 4, 5]},
    "blocks0-3": {"blocks": [0, 1, 2, 3]},
    "t100": {"record_t": 100.0},
    "t400": {"record_t": 400.0},
    "t600": {"record_t": 600.0},
    "per_step": {"record": "per_step"},
    "blocks0-5+per_step": {"blocks": [0, 1, 2, 3, 4, 5], "record": "per_step"},
    "record_empty": {"record_prompt": ""},
    "mix0.1": {"init_mix": 0.1},
    "mix0.2": {"init_mix": 0.2},
    "mix0.3": {"init_mix": 0.3},
    # injection policy, not transfer() arguments (see `injection_policy`)
    "cond_only": {"_passes": ["cond"]},
    "uncond_only": {"_passes": ["uncond"]},
    "blend0.75": {"_blend": 0.75},
    "blend0.5": {"_blend": 0.5},
}


@contextmanager
def injection_policy(passes: list[str] | None = None, blend: float | None = None):
    """Swap the Q-injection policy `generate` installs for one that injects only into `passes`
    and/or blends, `blend * recorded + (1 - blend) * own` Q. The method injects into both
    guidance passes and replaces Q outright; these settings exist to measure that choice, so
    they live here rather than in `transfer()`."""
    from motionq.control.controller import InjectQ
    from motionq.methods import transfer as transfer_module

    class Policy(InjectQ):
        def __init__(self, *args, **kwargs):
            if passes is not None:
                kwargs["passes"] = passes
            super().__init__(*args, **kwargs)

        def on_query(self, layer, q, ctx):
            new = super().on_query(layer, q, ctx)
            return new if blend is None else blend * new + (1.0 - blend) * q

    original = transfer_module.InjectQ
    transfer_module.InjectQ = Policy
    try:
        yield
    finally:
        transfer_module.InjectQ = original


class WithTransferSettings:
    """The backbone, with `overrides` added to every transfer call (everything else delegated)."""

    def __init__(self, backbone, overrides: dict[str, Any]) -> None:
        self._backbone = backbone
        self._overrides = overrides

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backbone, name)

    def transfer(self, clip, prompt: str, **kwargs) -> Any:
        args = {k: v for k, v in self._overrides.items() if not k.startswith("_")}
        policy = {k[1:]: v for k, v in self._overrides.items() if k.startswith("_")}
        if not policy:
            return self._backbone.transfer(clip, prompt, **{**kwargs, **args})
        with injection_policy(**policy):
            return self._backbone.transfer(clip, prompt, **{**kwargs, **args})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompt-mode", default="none", choices=("none", "motion"))
    ap.add_argument("--bench-seed", type=int, default=0)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--no-real", action="store_true", help="sprite sources only")
    ap.add_argument("--free-paths", action="store_true",
                    help="add the free-path sprite sources (paths no caption names), as `eval transfer` does")
    ap.add_argument("--configs", default="all", help=f"comma list of {', '.join(CONFIGS)} (default all)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    names = list(CONFIGS) if args.configs == "all" else args.configs.split(",")
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        sys.exit(f"unknown config(s): {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")
    torch.set_num_threads(1)
    backbone = load_backbone("animatic")
    strengths = (0.3, 0.6, 1.0)
    settings = TransferSettings(strengths=strengths, seeds=args.seeds, prompt_mode=args.prompt_mode,
                                real=not args.no_real, bench_seed=args.bench_seed, free_paths=args.free_paths)
    suffix = ("" if args.prompt_mode == "none" else f"-{args.prompt_mode}") + \
        ("" if args.bench_seed == 0 else f"-bench{args.bench_seed}") + ("-free" if args.free_paths else "")
    out = args.out or ROOT / "benchmarks" / "results" / f"transfer_settings_sweep{suffix}.json"
    result: dict[str, Any] = {"command": "python benchmarks/transfer_settings_sweep.py " + " ".join(sys.argv[1:]),
                              "settings": settings.to_dict(), "default_blocks": list(backbone.transfer_blocks),
                              "configs": {}}
    if out.exists():  # same pairs and settings: keep the rows of the settings not re-run
        try:
            earlier = json.loads(out.read_text())
        except ValueError:
            earlier = {}
        if earlier.get("settings") == result["settings"]:
            result["configs"] = {k: v for k, v in earlier.get("configs", {}).items() if k not in names}
    for name in names:
        t0 = time.time()
        run = run_transfer(WithTransferSettings(backbone, CONFIGS[name]), settings)
        recs = run["records"]
        summary = run["summary"]
        row = {
            "command": result["command"],  # rows of earlier runs keep theirs
            "overrides": CONFIGS[name],
            "seconds": round(time.time() - t0, 1),
            "fidelity": {t: {s: v["fidelity"] for s, v in by.items()} for t, by in summary["by_strength"].items()},
            "identity_kept": {t: {s: v["identity_kept"] for s, v in by.items()}
                              for t, by in summary["by_strength"].items()},
            "leakage": {t: {s: v["leakage"] for s, v in by.items()} for t, by in summary["by_strength"].items()},
            "displacement_error": {t: {s: v["displacement_error"] for s, v in by.items()}
                                   for t, by in summary["by_strength"].items()},
            "position_error": {t: {s: v["position_error"] for s, v in by.items()}
                               for t, by in summary["by_strength"].items()},
            "text_errors": {t: {k: v[k] for k in ("displacement_error", "position_error")}
                            for t, v in summary["text_baseline"].items()},
            "text_fidelity": {t: v["fidelity"] for t, v in summary["text_baseline"].items()},
            "paired_vs_text": summary["paired_vs_text"],
            "paired_vs_text_by_path": paired_vs_text(recs, strengths, group=path_kind),
            "median_seconds": summary["median_seconds"],
            "median_seconds_text": summary["median_seconds_text"],
            "records": [{k: r.get(k) for k in ("pair", "pair_type", "source_kind", "source_motion", "mode", "strength",
                                               "replica", "fidelity", "displacement_error", "position_error",
                                               "identity_kept", "leak_any")} for r in recs],
        }
        result["configs"][name] = row
        fid = row["fidelity"]
        cells = "  ".join(f"{t}: " + "/".join(f"{fid[t][s]['mean']:.2f}" for s in ("0.3", "0.6", "1"))
                          + f" (text {row['text_fidelity'][t]['mean']:.2f})" for t in fid)
        print(f"{name:22s} {cells}  [{row['seconds']:.0f} s]", flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(result, indent=1))
        os.replace(tmp, out)  # written after every config, so a stopped run keeps what it finished
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
