"""`motionq` command line: motion transfer, memory estimates, the model registry.

Every command fails with one line on stderr and exit status 2 (no traceback) when the input
is wrong (a bad clip, a missing model, an invalid setting). Subcommands are added to the
module-level `app` (e.g. `app.command("train")(...)` from motionq.train).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer

from motionq.backbones import DEFAULT_BACKBONE as DEFAULT_MODEL  # the registry's default model

app = typer.Typer(
    name="motionq",
    help="Motion by Queries: zero-shot motion transfer and consistent multi-shot video.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool) -> None:
    if value:
        from motionq.api import package_version

        typer.echo(f"motionq {package_version()}")
        raise typer.Exit()


@app.callback()
def _main(show_version: bool = typer.Option(False, "--version", is_eager=True, callback=_show_version,
                                           help="Print the version and exit.")) -> None:
    """Motion by Queries: zero-shot motion transfer and consistent multi-shot video."""


#: Errors a user can fix; anything else is a bug and keeps its traceback.
def _user_errors() -> tuple[type[BaseException], ...]:
    from motionq.backbones import BackboneError
    from motionq.video import VideoError

    return (BackboneError, VideoError, ValueError, FileNotFoundError, NotImplementedError, KeyError)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _load(model: str, options: dict):
    """load_backbone, with a registered-but-not-installed model reported as a user error."""
    from motionq.backbones import BackboneError, load_backbone

    try:
        return load_backbone(model, **options)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("motionq"):
            raise BackboneError(f"model {model!r} is not available in this install ({exc.name} missing)") from None
        raise
    except TypeError as exc:  # an option the model's loader does not take
        raise BackboneError(f"model {model!r}: {exc}") from None


def _parse_blocks(spec: Optional[str]) -> Optional[list[int]]:
    """"20-29" / "20,22,24" / "20-24,28" -> [ints]; None -> None."""
    if not spec:
        return None
    out: list[int] = []
    try:
        for part in spec.split(","):
            part = part.strip()
            if "-" in part:
                a, b = part.split("-", 1)
                out += list(range(int(a), int(b) + 1))
            elif part:
                out.append(int(part))
    except ValueError:
        raise ValueError(f"bad --blocks {spec!r}: use e.g. 20-29 or 20,22,24") from None
    return out


@app.command()
def transfer(
    clip: Path = typer.Option(..., "--clip", help="Motion reference clip (mp4, mov, ...)."),
    prompt: str = typer.Option(..., "--prompt", help="What the new video shows."),
    output: Path = typer.Option(Path("out.mp4"), "-o", "--output", help="Where to write the result."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", help="Registered model name or a model folder."),
    strength: float = typer.Option(0.6, "--strength", min=0.0, max=1.0,
                                   help="Fraction of steps with injected Q (motion vs identity)."),
    frames: Optional[int] = typer.Option(None, "--frames", help="Frames to generate (model default)."),
    height: Optional[int] = typer.Option(None, "--height", help="Height (model's native size)."),
    width: Optional[int] = typer.Option(None, "--width", help="Width (model's native size)."),
    steps: int = typer.Option(20, "--steps", min=1),
    guidance: float = typer.Option(4.0, "--guidance"),
    seed: int = typer.Option(0, "--seed"),
    negative_prompt: str = typer.Option("", "--negative-prompt"),
    blocks: Optional[str] = typer.Option(None, "--blocks", help="Blocks to inject, e.g. 20-29 (default: last third)."),
    record: str = typer.Option("single", "--record", help="single | per_step"),
    record_t: float = typer.Option(200.0, "--record-t", help="Timestep of the single recording (0..1000)."),
    inject_at: str = typer.Option("pre_rotary", "--inject-at", help="pre_rotary | post_rotary"),
    fps: float = typer.Option(16.0, "--fps", help="Frame rate of the written clip."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:1 ... (default: cuda if present)."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="bf16 | fp16 | fp32 (default: fp32 on CPU, bf16 on GPU)."),
    offload: bool = typer.Option(False, "--offload", help="Keep components on the CPU until they run (GPU only)."),
    vae_tiling: bool = typer.Option(False, "--vae-tiling", help="Decode in tiles (less memory)."),
) -> None:
    """Generate PROMPT with the motion of CLIP (zero-shot, by query injection)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from motionq.control.processors import INJECT_POINTS
    from motionq.methods.transfer import RECORD_MODES
    from motionq.video import check_video_path, read_video, write_video

    # everything that can be checked before loading a model and generating is checked first
    if record not in RECORD_MODES:
        _fail(f"--record: unknown value {record!r} (use one of {', '.join(RECORD_MODES)})")
    if inject_at not in INJECT_POINTS:
        _fail(f"--inject-at: unknown value {inject_at!r} (use one of {', '.join(INJECT_POINTS)})")
    try:
        check_video_path(output)
        read_video(clip)  # fail on a bad clip before loading a model
        options = {k: v for k, v in dict(device=device, dtype=dtype).items() if v is not None}
        if offload:
            options["offload"] = True
        if vae_tiling:
            options["vae_tiling"] = True
        backbone = _load(model, options)
        if not hasattr(backbone, "transfer"):
            raise ValueError(f"model {model!r} does not support motion transfer")
        with Progress(TextColumn("{task.description:>8}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), transient=True, console=None) as bar:
            tasks: dict[str, int] = {}

            def report(phase: str, done: int, total: int) -> None:
                if phase not in tasks:
                    tasks[phase] = bar.add_task(phase, total=total)
                bar.update(tasks[phase], completed=done, total=total)

            video = backbone.transfer(
                clip, prompt, strength=strength, num_frames=frames, height=height, width=width,
                steps=steps, guidance=guidance, seed=seed, negative_prompt=negative_prompt,
                blocks=_parse_blocks(blocks), record=record, record_t=record_t,
                inject_at=inject_at, progress=report,
            )
        write_video(video, output, fps=fps)
    except _user_errors() as exc:
        _fail(str(exc).strip("'\""))
    typer.echo(f"wrote {output} ({video.shape[0]} frames, {video.shape[2]}x{video.shape[1]})")


@app.command()
def memory(
    height: int = typer.Option(480, "--height"),
    width: int = typer.Option(832, "--width"),
    frames: int = typer.Option(81, "--frames"),
    blocks: Optional[str] = typer.Option(None, "--blocks", help="Recorded blocks, e.g. 20-29 (default: last third)."),
    layers: int = typer.Option(30, "--layers", help="Transformer depth (Wan 2.1 1.3B: 30)."),
    heads: int = typer.Option(12, "--heads"),
    head_dim: int = typer.Option(128, "--head-dim"),
    steps_recorded: int = typer.Option(1, "--steps-recorded", help="1 for record=single; injected steps for per_step."),
    dtype_bytes: int = typer.Option(2, "--dtype-bytes", help="2 for bf16/fp16, 4 for fp32."),
    as_json: bool = typer.Option(False, "--json", help="Print the numbers as JSON."),
) -> None:
    """Estimate the memory of recorded Q and of one attention layer (default: Wan 2.1 1.3B)."""
    import json

    from motionq.backbones.wan import memory_estimate
    from motionq.methods.transfer import default_blocks

    try:
        chosen = _parse_blocks(blocks) or default_blocks(layers)
        est = memory_estimate(height, width, frames, chosen, steps_recorded, dtype_bytes, heads, head_dim)
    except _user_errors() as exc:
        _fail(str(exc))
    if as_json:
        typer.echo(json.dumps({k: v for k, v in est.items()}, default=list))
    else:
        typer.echo(est["summary"])


@app.command()
def models() -> None:
    """List the registered models."""
    from motionq.backbones import DEFAULT_BACKBONE, available
    from motionq.backbones.wan import ENV_VAR

    notes = {
        "tiny": "tiny random Wan for tests (built on first use)",
        "wan2.1": f"Wan 2.1 T2V 1.3B from a local folder (${ENV_VAR}"
                  + (f" = {os.environ[ENV_VAR]})" if os.environ.get(ENV_VAR) else ", not set)"),
        "animatic": "built-in animatic model",
    }
    for name in available():
        mark = " (default)" if name == DEFAULT_BACKBONE else ""
        typer.echo(f"{name}{mark}: {notes.get(name, '')}".rstrip(": "))
    typer.echo("or a path to a local model folder in diffusers layout")


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
def train(ctx: typer.Context) -> None:
    """Train the built-in animatic model (resumable chunks); `motionq train --help` for options."""
    from motionq.train import main as train_main

    train_main(list(ctx.args))


def _register_eval() -> None:
    """`motionq eval ...`: the evaluation (motionq.evaluation; heavy imports stay inside its
    commands, so registering it costs only that module's import)."""
    from motionq.evaluation import eval_app

    app.add_typer(eval_app, name="eval")


_register_eval()


def main() -> None:
    """Entry point of the `motionq` script."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    app(prog_name="motionq")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
