"""Evaluation of motionq: the multi-shot benchmark (identity consistency vs motion), motion
transfer (fidelity and identity leakage vs strength), the DMT-style optimisation baseline, plots
and the generated report (docs/results.md).

    motionq eval all --model animatic        # everything: JSON, plots, docs/results.md
    motionq eval estimate --model animatic   # time a sample of each part, extrapolate the run
    motionq eval multishot --model animatic --sets 30 --seeds 2 --variants all \
        --out benchmarks/results/eval_multishot.json
    motionq eval transfer --model animatic
    motionq eval dmt --model animatic
    motionq eval report                      # plots + docs/results.md from the JSON files
    motionq eval storyboards bench/          # the benchmark sets as storyboard files

This module holds the `eval` sub-command (`eval_app`, registered by motionq.cli); everything
heavy (torch, the backbones, OpenCV, matplotlib) is imported inside the commands.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import typer

#: Where results (JSON) go by default, relative to the working directory (the repository root).
RESULTS_DIR = Path("benchmarks/results")
#: Where plots go, and the generated report.
IMAGES_DIR = Path("docs/images")
REPORT_PATH = Path("docs/results.md")
RESULT_FILES = {"multishot": "eval_multishot.json", "transfer": "eval_transfer.json",
                "transfer_motion": "eval_transfer-motion.json",
                "transfer_heldout": "eval_transfer-motion-heldout.json",
                "transfer_heldout_clip": "eval_transfer-heldout.json", "dmt": "eval_dmt.json",
                "dmt_motion": "eval_dmt-motion.json"}

__all__ = ["IMAGES_DIR", "REPORT_PATH", "RESULTS_DIR", "RESULT_FILES", "eval_app", "load_results", "save_json"]

eval_app = typer.Typer(
    help="Evaluate the method: multi-shot consistency vs motion, motion transfer, cost vs DMT.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def save_json(data: Any, path: str | os.PathLike) -> Path:
    """Write JSON atomically (a reader never sees half a file; an interrupted run keeps the
    last complete save)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".part")
    tmp.write_text(json.dumps(data, indent=1, default=_json_default) + "\n")
    os.replace(tmp, p)
    return p


def _json_default(o):
    import numpy as np

    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def load_results(results_dir: str | os.PathLike = RESULTS_DIR) -> dict[str, Any]:
    """{"multishot": doc | None, "transfer": ..., "dmt": ...} from `results_dir`."""
    out: dict[str, Any] = {}
    for kind, name in RESULT_FILES.items():
        p = Path(results_dir) / name
        out[kind] = json.loads(p.read_text()) if p.exists() else None
    return out


def _command_line(ctx: typer.Context | None = None) -> str:
    """The running `motionq eval ...` command with every option spelled out (defaults too), so
    the JSON says exactly what produced it."""
    if ctx is None:
        return "motionq " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    parts = ["motionq"] + ctx.command_path.split()[1:]
    for p in ctx.command.params:
        v = ctx.params.get(p.name)
        if getattr(p, "param_type_name", "") == "argument":
            parts.append(shlex.quote(str(v)))
        elif v is None or p.name == "help":
            continue
        elif getattr(p, "is_flag", False):
            if p.secondary_opts:
                parts.append(p.opts[0] if v else p.secondary_opts[0])
            elif v:
                parts.append(p.opts[0])
        else:
            parts += [p.opts[0], shlex.quote(str(v))]
    return " ".join(parts)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _setup_threads(threads: int) -> None:
    # One torch thread by default: the dev machine's 2 cores are shared with training, and two
    # multi-threaded torch processes slow each other down 20-80x.
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    torch.set_num_threads(threads)


def _load_model(model: str, device: Optional[str]):
    from motionq.backbones import BackboneError, load_backbone

    try:
        return load_backbone(model, **({"device": device} if device else {}))
    except ModuleNotFoundError as exc:
        raise BackboneError(f"model {model!r} is not available in this install ({exc.name} missing)") from None


def _user_errors() -> tuple[type[BaseException], ...]:
    from motionq.backbones import BackboneError
    from motionq.video import VideoError

    return (BackboneError, VideoError, ValueError, FileNotFoundError)


class _Bar:
    """A rich progress bar driven by progress(done, total, description) calls."""

    def __init__(self, title: str) -> None:
        from rich.progress import (
            BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn,
        )

        self.progress = Progress(TextColumn(f"{title:>9}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                 TextColumn("{task.description}"), transient=False)
        self.task: int | None = None

    def __enter__(self) -> "_Bar":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def __call__(self, done: int, total: int, description: str) -> None:
        if self.task is None:
            self.task = self.progress.add_task(description, total=total)
        self.progress.update(self.task, completed=done, total=total, description=description)

    def log(self, message: str) -> None:
        self.progress.console.print(message)


def _parse_floats(spec: str) -> tuple[float, ...]:
    """"0:1:0.1" (start:stop:step, inclusive) or "0,0.5,1" -> floats."""
    spec = spec.strip()
    try:
        if ":" in spec:
            a, b, c = (float(x) for x in spec.split(":"))
            n = int(round((b - a) / c))
            return tuple(round(a + i * c, 6) for i in range(n + 1))
        return tuple(float(x) for x in spec.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"bad number list {spec!r}: use e.g. 0:1:0.1 or 0,0.5,1") from None


def _parse_names(spec: Optional[str], known: Sequence[str], what: str) -> Optional[tuple[str, ...]]:
    """A comma list of sprite-world names (None when empty); unknown ones are a user error."""
    if not spec:
        return None
    names = tuple(x.strip() for x in spec.split(",") if x.strip())
    bad = [n for n in names if n not in known]
    if bad:
        raise ValueError(f"unknown {what}(s) {', '.join(bad)} (known: {', '.join(known)})")
    return names


def _parse_shapes(spec: Optional[str]) -> Optional[tuple[str, ...]]:
    from motionq.spriteworld import SHAPES

    return _parse_names(spec, SHAPES, "shape")


def _parse_motions(spec: Optional[str]) -> Optional[tuple[str, ...]]:
    from motionq.spriteworld import MOTIONS

    return _parse_names(spec, MOTIONS, "motion")


def _parse_ints(spec: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in spec.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"bad integer list {spec!r}: use e.g. 5,10,20") from None


# ---------------------------------------------------------------------------------------------
# The parts, as functions (used by the commands and by `all`)
# ---------------------------------------------------------------------------------------------


def do_multishot(backbone, settings, out: Path, images: Optional[Path], resume: bool,
                 command: str) -> dict[str, Any]:
    """Run (or resume) the multi-shot evaluation, saving after every group."""
    from motionq.evaluation.multishot import render_examples, run_multishot

    records: list[dict[str, Any]] = []
    before = before_run = 0.0  # wall and rendering time of the interrupted run(s) being resumed
    if resume and out.exists():
        old = json.loads(out.read_text())
        keys = ("sets", "shots", "bench_seed", "steps", "guidance", "num_frames", "anchors")
        if any(old.get("settings", {}).get(k) != settings.to_dict()[k] for k in keys) \
                or old.get("fingerprint") != _fingerprint(backbone):
            raise ValueError(f"{out} was made with other settings or another model; "
                             "remove it or run without --resume")
        records = [r for r in old.get("records", []) if r["variant"] in settings.variants]
        before = float(old.get("wall_seconds") or 0.0)
        before_run = float(old.get("seconds_total") or 0.0)
    t0 = time.time()

    def save_partial(doc: dict[str, Any]) -> None:
        doc["command"] = command
        doc["wall_seconds"] = round(before + time.time() - t0, 1)  # so far, for a later resume
        doc["seconds_total"] = round(before_run + doc.get("seconds_total", 0.0), 2)
        save_json(doc, out)

    with _Bar("multishot") as bar:
        result = run_multishot(backbone, settings, progress=bar, records=records, on_record=save_partial,
                               log=bar.log)
    result["command"] = command
    result["wall_seconds"] = round(before + time.time() - t0, 1)
    result["seconds_total"] = round(before_run + result.get("seconds_total", 0.0), 2)
    if images is not None:
        try:
            result["images"] = render_examples(backbone, result, images)
        except Exception as exc:  # noqa: BLE001 - pictures are a nicety; the numbers are saved
            result["images"], result["images_error"] = [], f"{type(exc).__name__}: {exc}"
    save_json(result, out)
    return result


def _fingerprint(backbone) -> Optional[str]:
    try:
        return backbone.fingerprint()
    except Exception:
        return None


def do_transfer(backbone, settings, out: Path, images: Optional[Path], command: str) -> dict[str, Any]:
    from motionq.evaluation.transfer import run_transfer

    t0 = time.time()
    with _Bar("transfer") as bar:
        result = run_transfer(backbone, settings, progress=bar, images_dir=images)
    result["command"] = command
    result["wall_seconds"] = round(time.time() - t0, 1)
    save_json(result, out)
    return result


def do_dmt(backbone, settings, out: Path, command: str) -> dict[str, Any]:
    from motionq.evaluation.dmt import run_dmt

    t0 = time.time()
    with _Bar("dmt") as bar:
        result = run_dmt(backbone, settings, progress=bar)
    result["command"] = command
    result["wall_seconds"] = round(time.time() - t0, 1)
    save_json(result, out)
    return result


def motion_transfer_settings(steps: int = 20, seeds: int = 2):
    """The `eval all` transfer run whose prompts name the motion (4 strengths, 2 seeds)."""
    from motionq.evaluation.transfer import TransferSettings

    return TransferSettings(strengths=(0.0, 0.3, 0.6, 1.0), seeds=seeds, steps=steps, prompt_mode="motion",
                            free_paths=True)


def heldout_transfer_settings(steps: int = 20, seeds: int = 3):
    """The `eval all` check of the default strength on pairs it was not chosen on: sprite
    sources, targets and sampling seeds drawn with bench seed 1, prompts that name the motion."""
    from motionq.evaluation.transfer import TransferSettings

    return TransferSettings(strengths=(0.3, 0.6, 1.0), seeds=seeds, steps=steps, prompt_mode="motion",
                            real=False, bench_seed=1, free_paths=True)


def heldout_clip_transfer_settings(steps: int = 20, seeds: int = 3):
    """The `eval all` check of clip-alone transfer on pairs the default was not chosen on:
    bench seed 1 as above, prompts that leave the motion to the clip, strengths 0.6 to 1."""
    from motionq.evaluation.transfer import TransferSettings

    return TransferSettings(strengths=(0.6, 0.7, 0.8, 0.9, 1.0), seeds=seeds, steps=steps, prompt_mode="none",
                            real=False, bench_seed=1, free_paths=True)


def do_report(results_dir: Path, images: Path, report: Path) -> list[str]:
    from motionq.evaluation.plots import plot_all, write_report

    results = load_results(results_dir)
    written = plot_all(results, images)
    written.append(str(write_report(results, report, images_dir=images, results_dir=results_dir)))
    return written


# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------

_MODEL = typer.Option("animatic", "--model", help="Registered model name or a model folder.")
_DEVICE = typer.Option(None, "--device", help="cpu, cuda, ... (default: cuda if present).")
_THREADS = typer.Option(1, "--threads", min=1, help="torch threads (1 keeps timings steady when other jobs share the cores).")
_STEPS = typer.Option(20, "--steps", min=1, help="Sampling steps.")
_GUIDANCE = typer.Option(4.0, "--guidance", help="Classifier-free guidance scale.")
_FRAMES = typer.Option(None, "--frames", help="Frames per clip (default: the model's).")
_IMAGES = typer.Option(IMAGES_DIR, "--images", help="Folder for plots and contact sheets.")


@eval_app.command("multishot")
def multishot_cmd(
    ctx: typer.Context,
    model: str = _MODEL,
    sets: int = typer.Option(30, "--sets", min=1, help="Character sets (paper: 30)."),
    shots: int = typer.Option(5, "--shots", min=2, help="Shots per set (paper: 5)."),
    seeds: int = typer.Option(2, "--seeds", min=1, help="Seed replicas per set."),
    variants: str = typer.Option("all", "--variants", help="all, or a comma list (vanilla,sdsa,...,anchors)."),
    anchors: int = typer.Option(2, "--anchors", min=1, help="Anchor shots in anchor mode."),
    steps: int = _STEPS,
    guidance: float = _GUIDANCE,
    frames: Optional[int] = _FRAMES,
    bench_seed: int = typer.Option(0, "--bench-seed", min=0, help="Seed of the benchmark sets."),
    out: Path = typer.Option(RESULTS_DIR / RESULT_FILES["multishot"], "--out", help="Result JSON."),
    images: Path = _IMAGES,
    examples: bool = typer.Option(True, "--examples/--no-examples", help="Contact sheets of a win and a failure."),
    resume: bool = typer.Option(False, "--resume", help="Keep the groups already in --out."),
    device: Optional[str] = _DEVICE,
    threads: int = _THREADS,
) -> None:
    """Identity consistency vs motion per consistency variant (the paper's ablation)."""
    from motionq.evaluation.multishot import MultishotSettings, parse_variants

    _setup_threads(threads)
    try:
        settings = MultishotSettings(sets=sets, shots=shots, seeds=seeds, variants=parse_variants(variants),
                                     steps=steps, guidance=guidance, num_frames=frames, bench_seed=bench_seed,
                                     anchors=anchors)
        backbone = _load_model(model, device)
        result = do_multishot(backbone, settings, out, images if examples else None, resume, _command_line(ctx))
    except _user_errors() as exc:
        _fail(str(exc))
    _print_multishot(result)
    typer.echo(f"wrote {out}")


def _print_multishot(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    from motionq.evaluation.multishot import METRICS

    n = result["settings"]["sets"] * result["settings"]["seeds"]
    table = Table(title=f"multi-shot, model {result['model']}, {n} groups per variant (mean ±95% CI half-width)")
    table.add_column("variant", no_wrap=True)
    for m in METRICS:
        table.add_column(m.replace("_", " "))
    for v, st in result["variants"].items():
        if not st.get("summary"):
            table.add_row(v, *([st.get("status", "")] + [""] * (len(METRICS) - 1)))
            continue
        table.add_row(v, *[_fmt(st["summary"][m]) for m in METRICS])
    Console().print(table)


def _fmt(est: dict[str, Any] | None) -> str:
    """"0.937 ±0.045" (mean and half the 95% interval's width; the JSON has the bounds)."""
    if not est or est.get("mean") is None:
        return "n/a"
    return f"{est['mean']:.3f} ±{(est['hi'] - est['lo']) / 2:.3f}"


@eval_app.command("transfer")
def transfer_cmd(
    ctx: typer.Context,
    model: str = _MODEL,
    strengths: str = typer.Option("0:1:0.1", "--strengths", help="start:stop:step or a comma list."),
    seeds: int = typer.Option(1, "--seeds", min=1, help="Seed replicas per pair."),
    prompt_mode: str = typer.Option("none", "--prompt-mode", help="none | still | motion (target prompt wording)."),
    real: bool = typer.Option(True, "--real/--no-real", help="Include the non-sprite clips."),
    free_paths: bool = typer.Option(True, "--free-paths/--no-free-paths",
                                    help="Include the sprite clips on paths no caption names (turns, arcs, pauses)."),
    max_pairs: Optional[int] = typer.Option(None, "--max-pairs", min=1, help="Only the first N pairs."),
    shapes: Optional[str] = typer.Option(None, "--shapes", help="Sprite shapes, comma list (default: the model's)."),
    sprite_motions: Optional[str] = typer.Option(
        None, "--sprite-motions", help="Motions of the sprite source clips, comma list (default: all eight)."),
    bench_seed: int = typer.Option(
        0, "--bench-seed", min=0,
        help="0: the published pairs; another value draws held-out sources, targets and sampling seeds."),
    steps: int = _STEPS,
    guidance: float = _GUIDANCE,
    frames: Optional[int] = _FRAMES,
    out: Path = typer.Option(RESULTS_DIR / RESULT_FILES["transfer"], "--out", help="Result JSON."),
    images: Path = _IMAGES,
    examples: bool = typer.Option(True, "--examples/--no-examples",
                                  help="Contact sheets: one pair per type; the biggest wins and failures against the text."),
    device: Optional[str] = _DEVICE,
    threads: int = _THREADS,
) -> None:
    """Motion fidelity and identity leakage vs strength: same-/different-shape, free-path and real clips."""
    from motionq.evaluation.transfer import PROMPT_MODES, SPRITE_SOURCE_MOTIONS, TransferSettings

    _setup_threads(threads)
    try:
        if prompt_mode not in PROMPT_MODES:
            raise ValueError(f"--prompt-mode must be one of {', '.join(PROMPT_MODES)}")
        settings = TransferSettings(strengths=_parse_floats(strengths), seeds=seeds, steps=steps,
                                    guidance=guidance, prompt_mode=prompt_mode, real=real, free_paths=free_paths,
                                    num_frames=frames, max_pairs=max_pairs,
                                    shapes=_parse_shapes(shapes), bench_seed=bench_seed,
                                    sprite_motions=_parse_motions(sprite_motions) or SPRITE_SOURCE_MOTIONS)
        backbone = _load_model(model, device)
        result = do_transfer(backbone, settings, out, images if examples else None, _command_line(ctx))
    except _user_errors() as exc:
        _fail(str(exc))
    s = result["summary"]
    typer.echo(f"median seconds by strength: {s['median_seconds']}; overhead at "
               f"{s['overhead_strength']:g}: {s['overhead_vs_plain']}x plain")
    typer.echo(f"wrote {out}")


@eval_app.command("dmt")
def dmt_cmd(
    ctx: typer.Context,
    model: str = _MODEL,
    pairs: int = typer.Option(26, "--pairs", min=1, help="Pairs (a prefix of the transfer pairs; 26 = all)."),
    free_paths: bool = typer.Option(False, "--free-paths/--no-free-paths",
                                    help="Add the free-path sources to the transfer pairs."),
    pair_types: Optional[str] = typer.Option(
        None, "--pair-types", help="Only these pair types, comma list (same-shape, different-shape, free-path, real)."),
    seeds: int = typer.Option(1, "--seeds", min=1),
    budgets: str = typer.Option("5,10,20,40", "--budgets", help="Adam iterations per guided step, comma list."),
    inversion_budgets: str = typer.Option("10,20", "--inversion-budgets",
                                          help="Budgets run again with DMT's source inversion and start latent "
                                               "('' = none)."),
    recipe_budgets: str = typer.Option("10", "--recipe-budgets",
                                       help="Budgets run as DMT's published recipe: inversion, start latent and "
                                            "restart sampling ('' = none)."),
    recipe_inversion_steps: int = typer.Option(999, "--recipe-inversion-steps", min=1,
                                               help="Euler passes of the published recipe's source inversion "
                                                    "(DMT's preprocessing: 999 DDIM steps)."),
    fraction: float = typer.Option(0.4, "--fraction", min=0.0, max=1.0, help="Share of steps optimised."),
    lr: str = typer.Option("0.02,0.01", "--lr", help="Learning rate at the first,last guided step."),
    block: Optional[int] = typer.Option(None, "--block", help="Feature block (default: the middle one)."),
    strength: float = typer.Option(0.6, "--strength", min=0.0, max=1.0, help="Our transfer's strength."),
    prompt_mode: str = typer.Option("none", "--prompt-mode",
                                    help="none | still | motion (target prompt wording, as in `eval transfer`)."),
    steps: int = _STEPS,
    guidance: float = _GUIDANCE,
    frames: Optional[int] = _FRAMES,
    out: Path = typer.Option(RESULTS_DIR / RESULT_FILES["dmt"], "--out", help="Result JSON."),
    device: Optional[str] = _DEVICE,
    threads: int = _THREADS,
) -> None:
    """Cost of our zero-shot transfer against a DMT-style optimisation baseline."""
    from motionq.evaluation.dmt import DMTSettings
    from motionq.evaluation.transfer import PROMPT_MODES

    _setup_threads(threads)
    try:
        if prompt_mode not in PROMPT_MODES:
            raise ValueError(f"--prompt-mode must be one of {', '.join(PROMPT_MODES)}")
        lrs = _parse_floats(lr)
        if len(lrs) == 1:
            lrs = (lrs[0], lrs[0])
        settings = DMTSettings(pairs=pairs, seeds=seeds, steps=steps, guidance=guidance, strength=strength,
                               budgets=_parse_ints(budgets), fraction=fraction, lr=lrs[:2], block=block,
                               inversion_budgets=_parse_ints(inversion_budgets),
                               recipe_budgets=_parse_ints(recipe_budgets),
                               recipe_inversion_steps=recipe_inversion_steps,
                               num_frames=frames, prompt_mode=prompt_mode, free_paths=free_paths,
                               pair_types=tuple(t.strip() for t in pair_types.split(",") if t.strip())
                               if pair_types else None)
        backbone = _load_model(model, device)
        result = do_dmt(backbone, settings, out, _command_line(ctx))
    except _user_errors() as exc:
        _fail(str(exc))
    c = result["cost"]
    typer.echo(f"{c['dmt']} / {c['ours']}: {c['ratio']}x the time "
               f"({'at equal or better fidelity' if c['reached'] else 'fidelity NOT reached'})")
    typer.echo(f"wrote {out}")


@eval_app.command("report")
def report_cmd(
    results_dir: Path = typer.Option(RESULTS_DIR, "--results", help="Folder of the eval_*.json files."),
    images: Path = _IMAGES,
    report: Path = typer.Option(REPORT_PATH, "--report", help="Markdown report to write."),
) -> None:
    """Plots and docs/results.md from the JSON results (renders nothing)."""
    for p in do_report(results_dir, images, report):
        typer.echo(f"wrote {p}")


@eval_app.command("storyboards")
def storyboards_cmd(
    folder: Path = typer.Argument(..., help="Where to write <set_id>.toml files."),
    sets: int = typer.Option(30, "--sets", min=1),
    shots: int = typer.Option(5, "--shots", min=2),
    bench_seed: int = typer.Option(0, "--bench-seed", min=0),
    variant: Optional[str] = typer.Option(None, "--variant", help="Default: none written, so the model's default."),
    model: str = typer.Option("animatic", "--model"),
) -> None:
    """Write the multi-shot benchmark as storyboard files (render them with `storyboard`)."""
    from motionq.evaluation.benchmark_sets import multishot_benchmark, write_storyboards

    paths = write_storyboards(multishot_benchmark(sets, shots, bench_seed), folder, variant=variant, model=model)
    typer.echo(f"wrote {len(paths)} storyboards to {folder}")


@eval_app.command("estimate")
def estimate_cmd(
    model: str = _MODEL,
    sets: int = typer.Option(30, "--sets", min=1),
    seeds: int = typer.Option(2, "--seeds", min=1),
    transfer_seeds: int = typer.Option(2, "--transfer-seeds", min=1),
    steps: int = _STEPS,
    device: Optional[str] = _DEVICE,
    threads: int = _THREADS,
) -> None:
    """Time one group per variant, one transfer pair and one DMT pair; extrapolate `eval all`."""
    from motionq.evaluation.dmt import DMTSettings, run_dmt
    from motionq.evaluation.multishot import ALL_VARIANTS, MultishotSettings, run_multishot
    from motionq.evaluation.transfer import TransferSettings, build_pairs, run_transfer

    _setup_threads(threads)
    try:
        backbone = _load_model(model, device)
        ms = run_multishot(backbone, MultishotSettings(sets=1, seeds=1, steps=steps))
        tr = run_transfer(backbone, TransferSettings(steps=steps, max_pairs=1))
        dm = run_dmt(backbone, DMTSettings(pairs=1, steps=steps))
        n_pairs = len(build_pairs(backbone, TransferSettings(free_paths=True)))
    except _user_errors() as exc:
        _fail(str(exc))
    groups = sets * seeds
    lines, total = [], 0.0
    for v in ALL_VARIANTS:
        st = ms["variants"][v]
        if not st.get("groups"):
            lines.append(f"  {v:28s} {st.get('status')} ({st.get('reason', '')[:70]})")
            continue
        sec = st["seconds"] * groups
        total += sec
        lines.append(f"  {v:28s} {st['seconds']:.2f} s/group ({st['seconds'] / 5:.2f} s/shot) -> {sec / 60:.1f} min")
    t_tr = tr["seconds_total"] * n_pairs  # one seed; the runs below scale from it
    total += t_tr * transfer_seeds
    lines.append(f"  transfer ({n_pairs} pairs x 12 clips x {transfer_seeds} seeds) -> "
                 f"{t_tr * transfer_seeds / 60:.1f} min")
    per_clip = t_tr / n_pairs / (len(TransferSettings().strengths) + 1)

    def run_time(s, pairs: int) -> float:  # every strength + the text-only baseline, per seed
        return per_clip * pairs * (len(s.strengths) + 1) * s.seeds

    tms = motion_transfer_settings(steps)
    t_trm = run_time(tms, n_pairs)
    total += t_trm
    lines.append(f"  transfer, motion named (x {(len(tms.strengths) + 1) * tms.seeds} clips)    -> {t_trm / 60:.1f} min")
    hts = heldout_transfer_settings(steps)
    held_pairs = len(build_pairs(backbone, hts))
    t_ho = run_time(hts, held_pairs)
    total += t_ho
    lines.append(f"  transfer, held-out ({held_pairs} pairs)        -> {t_ho / 60:.1f} min")
    t_hc = run_time(heldout_clip_transfer_settings(steps), held_pairs)
    total += t_hc
    lines.append(f"  transfer, held-out, clip alone ({held_pairs} pairs) -> {t_hc / 60:.1f} min")
    t_dmt = sum(r["seconds"] for r in dm["records"]) * DMTSettings().pairs
    total += 2 * t_dmt  # prompts without the motion, and naming it
    lines.append(f"  dmt ({DMTSettings().pairs} pairs, 2 prompt modes)      -> {2 * t_dmt / 60:.1f} min")
    per_group = sum(ms["variants"][v].get("seconds", 0.0) for v in ALL_VARIANTS)
    typer.echo(f"estimate for `motionq eval all --model {model}` ({groups} groups per variant, {steps} steps), "
               "from one sample of each (+-30%):")
    for ln in lines:
        typer.echo(ln)
    typer.echo(f"  total about {total / 60:.0f} min; with --seeds 1 about "
               f"{(total - per_group * sets * (seeds - 1)) / 60:.0f} min")


@eval_app.command("all")
def all_cmd(
    ctx: typer.Context,
    model: str = _MODEL,
    sets: int = typer.Option(30, "--sets", min=1),
    seeds: int = typer.Option(2, "--seeds", min=1, help="Seed replicas per multi-shot set."),
    variants: str = typer.Option("all", "--variants"),
    transfer_seeds: int = typer.Option(2, "--transfer-seeds", min=1),
    motion_seeds: int = typer.Option(2, "--motion-seeds", min=1,
                                     help="Seed replicas of the transfer run whose prompts name the motion."),
    dmt_pairs: int = typer.Option(26, "--dmt-pairs", min=1),
    steps: int = _STEPS,
    quick: bool = typer.Option(False, "--quick", help="A smoke run: 2 sets x 3 shots, 1 seed, 3 strengths, 2 DMT pairs."),
    resume: bool = typer.Option(False, "--resume", help="Resume the multi-shot part from its JSON."),
    results_dir: Path = typer.Option(RESULTS_DIR, "--results", help="Folder for the eval_*.json files."),
    images: Path = _IMAGES,
    report: Path = typer.Option(REPORT_PATH, "--report"),
    device: Optional[str] = _DEVICE,
    threads: int = _THREADS,
) -> None:
    """Everything: multi-shot, transfer, DMT, plots and docs/results.md."""
    from motionq.evaluation.dmt import DMTSettings
    from motionq.evaluation.multishot import MultishotSettings, parse_variants
    from motionq.evaluation.transfer import TransferSettings

    _setup_threads(threads)
    command = _command_line(ctx)
    try:
        backbone = _load_model(model, device)
        if quick:
            ms = MultishotSettings(sets=2, shots=3, seeds=1, variants=parse_variants(variants), steps=steps)
            ts = TransferSettings(strengths=(0.0, 0.5, 1.0), steps=steps, max_pairs=4)
            tms = TransferSettings(strengths=(0.0, 0.6), steps=steps, max_pairs=2, prompt_mode="motion")
            hts = TransferSettings(strengths=(0.6,), steps=steps, max_pairs=2, prompt_mode="motion",
                                   real=False, bench_seed=1)
            hcs = TransferSettings(strengths=(0.6,), steps=steps, max_pairs=2, real=False, bench_seed=1)
            smoke = dict(pairs=2, budgets=(5,), inversion_budgets=(5,), recipe_budgets=(5,),
                         recipe_inversion_steps=2 * steps, steps=steps)
            ds = DMTSettings(**smoke)
            dms = DMTSettings(**smoke, prompt_mode="motion")
        else:
            ms = MultishotSettings(sets=sets, seeds=seeds, variants=parse_variants(variants), steps=steps)
            ts = TransferSettings(seeds=transfer_seeds, steps=steps, free_paths=True)
            tms = motion_transfer_settings(steps, motion_seeds)
            hts = heldout_transfer_settings(steps)
            hcs = heldout_clip_transfer_settings(steps)
            ds = DMTSettings(pairs=dmt_pairs, steps=steps)
            dms = DMTSettings(pairs=dmt_pairs, steps=steps, prompt_mode="motion")
        t0 = time.time()
        do_multishot(backbone, ms, results_dir / RESULT_FILES["multishot"], images, resume, command)
        do_transfer(backbone, ts, results_dir / RESULT_FILES["transfer"], images, command)
        do_transfer(backbone, tms, results_dir / RESULT_FILES["transfer_motion"], None, command)
        do_transfer(backbone, hts, results_dir / RESULT_FILES["transfer_heldout"], None, command)
        do_transfer(backbone, hcs, results_dir / RESULT_FILES["transfer_heldout_clip"], None, command)
        do_dmt(backbone, ds, results_dir / RESULT_FILES["dmt"], command)
        do_dmt(backbone, dms, results_dir / RESULT_FILES["dmt_motion"], command)
        written = do_report(results_dir, images, report)
    except _user_errors() as exc:
        _fail(str(exc))
    for p in written:
        typer.echo(f"wrote {p}")
    typer.echo(f"eval all took {(time.time() - t0) / 60:.1f} min")
