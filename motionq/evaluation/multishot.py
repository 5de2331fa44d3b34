"""Multi-shot evaluation: identity consistency against motion, per consistency variant.

For every variant (the paper's ablation ladder `motionq.api.VARIANTS` plus anchor mode), every
character set of the benchmark (`benchmark_sets.multishot_benchmark`) and every seed replica,
the set is rendered as one `GroupRequest` through `Backbone.render_group`, each shot is read
with the sprite analyser, and the set gets:

- identity consistency (share of shot pairs showing the same shape and colour),
- motion adherence (share of shots moving as their prompt asks),
- motion diversity (mean pairwise distance of the shots' displacement paths),
- dynamic degree (mean optical-flow magnitude, px/frame),
- seconds per shot (wall time of `render_group` / shots).

The unit of the statistics is a (set, replica) group: means and 95% bootstrap intervals are
over groups, so the 10 pairs / 5 shots inside a group are not treated as independent.

A variant the backbone does not implement yet (NotImplementedError from render_group) is
recorded as skipped with the backbone's message, and the run goes on; a variant whose
render_group raises anything else is recorded as an error (type, message, where) and its
remaining groups are not rendered.
"""

from __future__ import annotations

import math
import platform
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from motionq.api import DEFAULT_VARIANT, PAPER_VARIANTS, VARIANTS, ConsistencyConfig, GroupRequest
from motionq.backbones import default_variant
from motionq.evaluation.benchmark_sets import CharacterSet, group_request, multishot_benchmark
from motionq.metrics import (
    ShotReading,
    displacement_path,
    dynamic_degree,
    identity_consistency,
    mean_ci,
    motion_adherence,
    motion_diversity,
    prompt_motion,
    read_shot,
)

__all__ = [
    "ALL_VARIANTS",
    "ANCHOR_VARIANT",
    "METRICS",
    "MultishotSettings",
    "best_full_variant",
    "build_result",
    "consistency_for",
    "evaluate_group",
    "parse_variants",
    "pick_examples",
    "render_examples",
    "run_multishot",
    "summarise",
    "warm_up",
]

#: Anchor mode: the full method with the first `anchors` shots as anchors (others rendered
#: alone against the anchors' cached subject keys/values).
ANCHOR_VARIANT = "sdsa+qpres+qflow+refine@anchors"
#: The paper's ladder, our "refine" (the built-in model's default variant), and both in anchor
#: mode, which is how a storyboard renders a group of 5 shots.
ALL_VARIANTS: tuple[str, ...] = PAPER_VARIANTS + ("refine", ANCHOR_VARIANT, "refine@anchors")
#: What `--variants` accepts by name ("all" = ALL_VARIANTS, the paper's ladder and anchor mode):
#: every variant jointly, and in anchor mode ("<variant>@anchors") every one that couples shots.
KNOWN_VARIANTS: tuple[str, ...] = VARIANTS + tuple(f"{v}@anchors" for v in VARIANTS if v != "vanilla")
#: Per-group metrics summarised with confidence intervals, in report order.
METRICS: tuple[str, ...] = (
    "identity_consistency", "motion_adherence", "motion_diversity", "dynamic_degree",
    "seconds_per_shot", "detected",
)

#: progress(done, total, description)
EvalProgress = Callable[[int, int, str], None]


@dataclass
class MultishotSettings:
    """What to run. `num_frames` None = the backbone's default clip length."""

    sets: int = 30
    shots: int = 5
    seeds: int = 2
    variants: tuple[str, ...] = ALL_VARIANTS
    steps: int = 20
    guidance: float = 4.0
    num_frames: int | None = None
    bench_seed: int = 0
    anchors: int = 2

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["variants"] = list(self.variants)
        return d


def parse_variants(spec: str | Sequence[str]) -> tuple[str, ...]:
    """"all" | "vanilla,sdsa,..." | a sequence -> validated variant names (order kept)."""
    if isinstance(spec, str):
        names = list(ALL_VARIANTS) if spec.strip() == "all" else [s.strip() for s in spec.split(",") if s.strip()]
    else:
        names = list(spec)
    aliases = {"anchors": ANCHOR_VARIANT, "anchor": ANCHOR_VARIANT}
    names = [aliases.get(n, n) for n in names]
    bad = [n for n in names if n not in KNOWN_VARIANTS]
    if bad:
        raise ValueError(f"unknown variant(s) {', '.join(bad)} (known: all, {', '.join(KNOWN_VARIANTS)}, anchors)")
    if not names:
        raise ValueError("no variants given")
    return tuple(dict.fromkeys(names))


def consistency_for(variant: str) -> tuple[ConsistencyConfig, bool]:
    """(ConsistencyConfig, anchor mode?) of an evaluation variant.

    Every joint variant renders the whole group together (anchors="off"); "<variant>@anchors"
    renders it in anchor mode (anchors="auto" and the request's `anchor_ids` set);
    `ANCHOR_VARIANT` is the paper's full method (`motionq.api.DEFAULT_VARIANT`) in anchor mode.
    """
    base, at, mode = variant.partition("@")
    if at and mode == "anchors" and base in VARIANTS and base != "vanilla":
        return ConsistencyConfig(variant=base, anchors="auto"), True
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}")
    return ConsistencyConfig(variant=variant, anchors="off"), False


def _finite(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


def evaluate_group(request: GroupRequest, frames: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Per-shot readings and the group's metrics for one rendered group."""
    readings: list[ShotReading] = []
    shots = []
    dyn = []
    for shot in request.shots:
        if shot.shot_id not in frames:
            raise KeyError(f"render_group returned no frames for shot {shot.shot_id!r}")
        fr = np.asarray(frames[shot.shot_id])
        r = read_shot(fr)
        readings.append(r)
        d = dynamic_degree(fr)
        dyn.append(d)
        shots.append({"shot_id": shot.shot_id, "prompt": shot.prompt, "seed": shot.seed,
                      "asked_motion": prompt_motion(shot.prompt), **r.to_dict(),
                      "dynamic_degree": _finite(d)})
    asked = [s["asked_motion"] for s in shots]
    paths = [displacement_path(r.centroids, r.canvas) for r in readings]
    return {
        "identity_consistency": _finite(identity_consistency([r.identity for r in readings])),
        "motion_adherence": _finite(motion_adherence(asked, [r.motion for r in readings])),
        "motion_diversity": _finite(motion_diversity(paths)),
        "dynamic_degree": _finite(float(np.mean(dyn)) if dyn else float("nan")),
        "detected": _finite(sum(r.identity is not None for r in readings) / max(1, len(readings))),
        "shots": shots,
    }


def summarise(records: Sequence[Mapping[str, Any]], variant: str) -> dict[str, Any]:
    """Means with 95% bootstrap intervals and n over the variant's groups, per metric."""
    rows = [r for r in records if r["variant"] == variant]
    return {m: mean_ci([r.get(m) for r in rows]).to_dict() for m in METRICS}


def _machine() -> dict[str, Any]:
    import os

    info: dict[str, Any] = {"machine": platform.machine(), "python": platform.python_version(),
                            "cpus": os.cpu_count()}
    try:
        import torch

        info.update(torch=torch.__version__, threads=torch.get_num_threads(),
                    cuda=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
    except ImportError:  # pragma: no cover
        pass
    return info


def _frames_of(backbone, settings: MultishotSettings) -> int:
    return int(settings.num_frames or getattr(backbone, "default_frames", 8) or 8)


def warm_up(backbone, num_frames: int, steps: int) -> float:
    """One untimed single-shot render (first calls pay one-off costs); returns its seconds."""
    from motionq.api import ShotRequest

    t0 = time.perf_counter()
    backbone.render_group(GroupRequest(shots=(ShotRequest(
        shot_id="warm-up", prompt="a shape moves left", num_frames=num_frames, seed=0, steps=steps),)))
    return time.perf_counter() - t0


def run_multishot(
    backbone,
    settings: MultishotSettings,
    *,
    progress: EvalProgress | None = None,
    records: list[dict[str, Any]] | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Render and score every (variant, set, replica) group; returns the result document.

    records: results of an interrupted run to resume from (groups already there are not
    rendered again). on_record(partial_document) is called after each group with the result
    document so far (`"partial": true`), e.g. to save it. log(message) receives one-line
    notices (skipped variants).
    """
    sets = multishot_benchmark(settings.sets, settings.shots, settings.bench_seed)
    num_frames = _frames_of(backbone, settings)
    records = list(records or [])
    done = {(r["variant"], r["set_id"], r["replica"]) for r in records}
    status: dict[str, dict[str, Any]] = {}
    total = len(settings.variants) * len(sets) * settings.seeds
    count = len([k for k in done if k[0] in settings.variants])
    t_start = time.perf_counter()
    warm = warm_up(backbone, num_frames, settings.steps) if count < total else 0.0
    for variant in settings.variants:
        config, anchored = consistency_for(variant)
        status[variant] = {"status": "ok"}
        for spec in sets:
            for replica in range(settings.seeds):
                if (variant, spec.set_id, replica) in done:
                    continue
                if status[variant]["status"] in ("skipped", "error"):
                    count += 1
                    continue
                request = group_request(spec, config, num_frames=num_frames, steps=settings.steps,
                                        guidance=settings.guidance, replica=replica,
                                        anchors=settings.anchors if anchored else 0)
                if progress:
                    progress(count, total, f"{variant} {spec.set_id}/{replica}")
                t0 = time.perf_counter()
                try:
                    frames = backbone.render_group(request)
                except NotImplementedError as exc:
                    status[variant] = {"status": "skipped", "reason": str(exc)}
                    if log:
                        log(f"skipping variant {variant}: {exc}")
                    count += 1
                    continue
                except Exception as exc:  # noqa: BLE001
                    # A variant that crashes must not cost the other variants of a 2-hour run:
                    # record it (with where it failed) and go on; the report lists it.
                    import traceback

                    where = traceback.extract_tb(exc.__traceback__)[-1]
                    reason = f"{type(exc).__name__}: {exc} (at {where.filename}:{where.lineno})"
                    status[variant] = {"status": "error", "reason": reason, "set_id": spec.set_id}
                    if log:
                        log(f"variant {variant} failed on {spec.set_id}: {reason}")
                    count += 1
                    continue
                seconds = time.perf_counter() - t0
                rec = {"variant": variant, "set_id": spec.set_id, "replica": replica,
                       "character_prompt": spec.character_prompt, "seconds": round(seconds, 4),
                       "seconds_per_shot": round(seconds / len(request.shots), 4),
                       **evaluate_group(request, frames)}
                records.append(rec)
                count += 1
                if on_record:
                    doc = build_result(backbone, settings, records, status, num_frames,
                                       seconds_total=time.perf_counter() - t_start, warm_up_seconds=warm)
                    doc["partial"] = True
                    on_record(doc)
        if progress:
            progress(count, total, variant)
    return build_result(backbone, settings, records, status, num_frames,
                        seconds_total=time.perf_counter() - t_start, warm_up_seconds=warm)


def build_result(backbone, settings: MultishotSettings, records: list[dict[str, Any]],
                 status: Mapping[str, Mapping[str, Any]], num_frames: int,
                 seconds_total: float = 0.0, warm_up_seconds: float = 0.0) -> dict[str, Any]:
    """The result document (JSON-ready) from records; shared by final and partial saves."""
    variants: dict[str, Any] = {}
    vanilla_sps = None
    rows = {v: [r for r in records if r["variant"] == v] for v in settings.variants}
    if rows.get("vanilla"):
        vanilla_sps = float(np.mean([r["seconds_per_shot"] for r in rows["vanilla"]]))
    for v in settings.variants:
        st = dict(status.get(v, {"status": "ok" if rows[v] else "pending"}))
        if rows[v]:
            st["summary"] = summarise(records, v)
            st["groups"] = len(rows[v])
            sps = float(np.mean([r["seconds_per_shot"] for r in rows[v]]))
            st["seconds"] = round(float(sum(r["seconds"] for r in rows[v])), 3)
            st["cost_vs_vanilla"] = round(sps / vanilla_sps, 3) if vanilla_sps else None
        variants[v] = st
    name = getattr(backbone, "name", str(backbone))
    return {
        "kind": "multishot",
        "model": name,
        # what a storyboard for this model gets when it names no variant (the report marks it)
        "default_variant": default_variant(name),
        "fingerprint": _safe_fingerprint(backbone),
        "native_size": list(backbone.native_size()) if hasattr(backbone, "native_size") else None,
        "num_frames": num_frames,
        "settings": settings.to_dict(),
        "machine": _machine(),
        "seconds_total": round(seconds_total, 2),
        "warm_up_seconds": round(warm_up_seconds, 3),
        "variants": variants,
        "records": records,
    }


def _safe_fingerprint(backbone) -> str | None:
    try:
        return backbone.fingerprint()
    except Exception:  # a fingerprint is a label here, never a reason to fail a run
        return None


def pick_examples(result: Mapping[str, Any], full: str | None = None) -> dict[str, tuple[str, int] | None]:
    """Groups worth looking at: the biggest win of the full method over vanilla (consistency
    + adherence gained on the same set and seed) and its worst failure (lowest consistency +
    adherence). Returns {"win": (set_id, replica) | None, "failure": ...}."""
    recs = result.get("records", [])
    full = full or best_full_variant(result)
    if full is None:
        return {"win": None, "failure": None}
    score = lambda r: (r.get("identity_consistency") or 0.0) + (r.get("motion_adherence") or 0.0)  # noqa: E731
    van = {(r["set_id"], r["replica"]): score(r) for r in recs if r["variant"] == "vanilla"}
    mine = [r for r in recs if r["variant"] == full]
    if not mine:
        return {"win": None, "failure": None}
    win = max(mine, key=lambda r: score(r) - van.get((r["set_id"], r["replica"]), 0.0))
    fail = min(mine, key=score)
    return {"win": (win["set_id"], win["replica"]), "failure": (fail["set_id"], fail["replica"])}


def best_full_variant(result: Mapping[str, Any]) -> str | None:
    """The model's default variant if it ran (in anchor mode first: what storyboards get),
    else the most complete non-vanilla one that did."""
    ran = [v for v, st in result.get("variants", {}).items() if st.get("groups")]
    default = result.get("default_variant") or DEFAULT_VARIANT
    for v in (f"{default}@anchors", default, ANCHOR_VARIANT, DEFAULT_VARIANT, "sdsa+qpres+qflow", "sdsa+qpres",
              "sdsa"):
        if v in ran:
            return v
    return None


def render_examples(
    backbone,
    result: Mapping[str, Any],
    out_dir,
    variants: Sequence[str] | None = None,
) -> list[str]:
    """Re-render the picked win and failure groups for vanilla, sdsa and the full method and
    draw each as a contact sheet (one row per variant x shot). Returns the PNG paths."""
    from pathlib import Path

    from motionq.evaluation.plots import group_contact_sheet

    settings = result["settings"]
    sets = {s.set_id: s for s in multishot_benchmark(settings["sets"], settings["shots"], settings["bench_seed"])}
    full = best_full_variant(result)
    chosen = list(variants or [v for v in ("vanilla", "sdsa", full) if v])
    chosen = [v for v in dict.fromkeys(chosen)
              if result["variants"].get(v, {}).get("groups")]
    out = []
    for label, key in pick_examples(result, full).items():
        if key is None:
            continue
        set_id, replica = key
        spec: CharacterSet = sets[set_id]
        rows = []
        for v in chosen:
            config, anchored = consistency_for(v)
            req = group_request(spec, config, num_frames=result["num_frames"], steps=settings["steps"],
                                guidance=settings["guidance"], replica=replica,
                                anchors=settings["anchors"] if anchored else 0)
            frames = backbone.render_group(req)
            scored = evaluate_group(req, frames)
            for shot, info in zip(req.shots, scored["shots"]):
                found = "none" if not info["identity"] else f"{info['identity'][1]} {info['identity'][0]}"
                rows.append((f"{v} {shot.shot_id}",
                             frames[shot.shot_id],
                             f"asked {info['asked_motion']}; got {found}, {info['motion']}"))
        path = Path(out_dir) / f"multishot_{label}.png"
        group_contact_sheet(rows, path)
        out.append(str(path))
    return out
