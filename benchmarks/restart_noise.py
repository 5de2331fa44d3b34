"""How much of the noise DMT's restart sampling draws afresh, on the built-in model's schedule.

    python benchmarks/restart_noise.py

A restart moves the latent from the next step's noise level s_lo back up to the step's own
level s_hi (`motionq.evaluation.dmt.renoise`): x -> a x + b eps with a = (1 - s_hi) / (1 - s_lo)
and b^2 = s_hi^2 - (a s_lo)^2, so b^2 / s_hi^2 of the noise at s_hi is new. Prints that share for
every restarted step of the built-in model's flow-matching schedule at 20 and 50 steps (steps
starting at sigma = 1 are not restarted, as in `dmt_transfer`) and its mean over the first 40%
of steps, where DMT's optimisation plants the motion. No model is run.
Writes benchmarks/results/restart_noise.json.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from diffusers import FlowMatchEulerDiscreteScheduler  # noqa: E402

from motionq.control.phases import scheduler_sigmas  # noqa: E402


def fresh_shares(sigmas: list[float]) -> list[float | None]:
    """Per step i (all but the last): share of the noise at sigmas[i] that a restart redraws;
    None where the step starts at sigma = 1 (not restarted)."""
    out: list[float | None] = []
    for hi, lo in zip(sigmas[:-1], sigmas[1:]):
        if hi >= 0.999:
            out.append(None)
            continue
        a = (1.0 - hi) / (1.0 - lo)
        out.append((hi ** 2 - (a * lo) ** 2) / hi ** 2)
    return out


def main() -> None:
    cfg = json.loads((ROOT / "motionq/backbones/animatic/weights/scheduler/scheduler_config.json").read_text())
    sched = FlowMatchEulerDiscreteScheduler.from_config(cfg)
    result = {}
    for steps in (20, 50):
        shares = fresh_shares(scheduler_sigmas(sched, steps))
        early = [s for s in shares[: round(0.4 * steps)] if s is not None]
        done = [s for s in shares if s is not None]
        result[str(steps)] = {"per_step": [None if s is None else round(s, 3) for s in shares],
                              "mean_first_40pct": round(sum(early) / len(early), 3),
                              "mean_all": round(sum(done) / len(done), 3)}
        print(f"{steps} steps: fresh share of the noise per restart, first 40% of steps "
              f"{result[str(steps)]['mean_first_40pct']:.2f}, all {result[str(steps)]['mean_all']:.2f}")
    out = ROOT / "benchmarks" / "results" / "restart_noise.json"
    tmp = out.with_name(out.name + ".part")
    tmp.write_text(json.dumps({"command": "python benchmarks/restart_noise.py", "by_steps": result}, indent=1) + "\n")
    os.replace(tmp, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
