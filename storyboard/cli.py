"""`storyboard ...`: the command line of the authoring tool.

Every command follows the same one-way flow: load (validate) -> plan -> render (cached) ->
assemble/export. User mistakes end in one line per problem on stderr and exit status 2, never
a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:  # annotations only: the CLI imports the heavy parts per command
    from storyboard.assemble import EditSpec, ShotClip
    from storyboard.cache import CacheEntry, RenderCache
    from storyboard.plan import Plan
    from storyboard.schema import Storyboard

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Write a film as a storyboard (TOML or YAML), render it with a text-to-video model, "
         "keep characters consistent across shots, and export the edit.",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool) -> None:
    if value:
        from motionq.api import package_version

        typer.echo(f"storyboard {package_version()}")
        raise typer.Exit()


@app.callback()
def _main(show_version: bool = typer.Option(False, "--version", is_eager=True, callback=_show_version,
                                           help="Print the version and exit.")) -> None:
    """Write a film as a storyboard (TOML or YAML), render it with a text-to-video model, keep
    characters consistent across shots, and export the edit."""


err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)
#: Terminal columns below which `storyboard plan` lists prompts under the table, not in it.
PLAN_INLINE_PROMPT_WIDTH = 140
FILE_HELP = "Storyboard file (.toml, .yaml or .yml)"
OUTSIDE_HELP = "Allow clip and image paths outside the storyboard's folder"
INTERRUPTED = "interrupted: finished shots are kept in the cache; run again to resume"
#: The exit code `render` uses after saying INTERRUPTED itself; `main` exits 130 without repeating it.
INTERRUPT_SAID = 1130


class UserError(Exception):
    """A problem the user can fix; printed as one line, exit status 2."""


def _load(path: Path, allow_outside: bool):
    from storyboard.load import load_storyboard

    return load_storyboard(path, allow_outside=allow_outside)


def _note_unused(file: Path, sb) -> None:
    """Say which accepted fields the renderer does not use yet (rather than ignore them silently)."""
    for name, ch in sb.characters.items():
        unused = [f for f in ("mask", "reference") if getattr(ch, f) is not None]
        if unused:
            err.print(f"note: {file}: characters.{name}: {' and '.join(unused)} "
                      f"{'is' if len(unused) == 1 else 'are'} checked but not used by the renderer yet",
                      markup=False)


def _plan(sb):
    from motionq.api import BackboneError
    from storyboard.errors import StoryboardError
    from storyboard.load import field_problem
    from storyboard.plan import build_plan

    try:
        return build_plan(sb)
    except BackboneError as exc:  # the model the file names cannot be found: say where it is named
        raise StoryboardError([field_problem(sb.path, ("film", "model"), str(exc))]) from None


def _check_writable(path: Path) -> None:
    """Fail now, in one line, if `path` cannot be written (not after minutes of rendering)."""
    import tempfile

    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a folder; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".storyboard-check-"):
            pass
    except OSError as exc:
        raise UserError(f"{path}: cannot write there ({exc.strerror or exc})") from None


def outputs_for(sb, output: Path | None) -> dict[str, Path]:
    """Where a render writes: the film (default: beside the storyboard), timeline, sheet, clips."""
    film = Path(output) if output else Path(sb.path).with_suffix(".mp4")
    if film.suffix.lower() != ".mp4":
        raise UserError(f"{film}: the film is written as MP4; give a name ending in .mp4")
    stem = film.with_suffix("")
    return {
        "mp4": film,
        "otio": stem.with_suffix(".otio"),
        "png": stem.parent / f"{stem.name}.sheet.png",
        "shots": stem.parent / f"{stem.name}_shots",
    }


@app.command()
def new(file: Path = typer.Argument(..., help="Storyboard to create (.toml, .yaml or .yml)"),
        force: bool = typer.Option(False, "--force", help="Overwrite an existing file")) -> None:
    """Write a commented starter storyboard."""
    from storyboard.load import dump_starter

    if file.is_dir():
        raise UserError(f"{file}: is a folder; give a file name ending in .toml, .yaml or .yml")
    if file.exists() and not force:
        raise UserError(f"{file}: already exists (use --force to overwrite)")
    try:
        dump_starter(file, overwrite=force)
    except ValueError as exc:
        raise UserError(f"{file}: {exc}") from None
    except OSError as exc:
        raise UserError(f"{file}: cannot write there ({exc.strerror or exc})") from None
    out.print(f"wrote {file}; next: storyboard render {file}")


@app.command()
def validate(files: list[Path] = typer.Argument(..., help="Storyboard files"),
             allow_outside: bool = typer.Option(False, "--allow-outside",
                                                help="Allow paths outside the storyboard's folder")) -> None:
    """Check storyboards; prints FILE:LINE: field: problem for every problem found."""
    from storyboard.load import validate_file

    bad = 0
    for f in files:
        problems = validate_file(f, allow_outside=allow_outside)
        for p in problems:
            err.print(str(p), markup=False)
        if problems:
            bad += 1
        else:
            out.print(f"{f}: ok")
    if bad:
        raise typer.Exit(2)


@app.command()
def plan(file: Path = typer.Argument(..., help=FILE_HELP), as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON"),
         allow_outside: bool = typer.Option(False, "--allow-outside", help=OUTSIDE_HELP)) -> None:
    """Show the plan: shots, frames, consistency groups, anchors, cache keys and status."""
    from storyboard.cache import RenderCache

    sb = _load(file, allow_outside)
    _note_unused(file, sb)
    p = _plan(sb)
    cache = RenderCache.beside(sb.path)
    if as_json:
        data = p.to_json()
        for s in data["shots"]:
            entry = cache.get(s["key"])
            s["status"] = "cached" if entry is not None else "stale"
            if entry is not None and entry.meta.get("runtime"):
                s["rendered_on"] = entry.meta["runtime"]  # device, dtype, versions: not in the key
        print(json.dumps(data, indent=2))
        return
    # In a narrow terminal the prompt column would be squeezed to nothing: prompts go below.
    prompts_inline = out.width >= PLAN_INLINE_PROMPT_WIDTH
    t = Table(title=f"{p.title} — {p.duration:.2f} s at {p.fps} fps, model {p.model}, "
                    f"consistency {p.consistency.variant}")
    heads = ("#", "shot", "frames", "seed", "group", "characters", "key", "status") if prompts_inline else \
        ("#", "shot", "fr", "seed", "group", "chars", "key", "status")
    for col in heads:
        t.add_column(col, no_wrap=col not in ("group", "characters", "chars"))
    if prompts_inline:
        t.add_column("prompt", overflow="fold", ratio=1)
    entries = [cache.get(s.key) for s in p.shots]
    for s, entry in zip(p.shots, entries):
        group = p.group_of(s.shot_id)
        gtxt = f"{s.group} ({group.mode}{', anchor' if s.anchor else ''})"
        row = [str(s.index + 1), s.shot_id, str(s.request.num_frames), str(s.request.seed), gtxt,
               ", ".join(s.request.characters), s.key[:10 if prompts_inline else 8],
               "cached" if entry is not None else "stale"]
        t.add_row(*row, *([s.request.prompt] if prompts_inline else []))
    out.print(t)
    if not prompts_inline:
        out.print("prompts:")
        for s in p.shots:
            out.print(f"  {s.index + 1} {s.shot_id}: {s.request.prompt}", markup=False)
    for line in _rendered_on_lines(entries):
        out.print(line, markup=False)


def _rendered_on_lines(entries: list[CacheEntry | None]) -> list[str]:
    """One line per machine setup the cached shots were rendered with (not part of the cache
    key, so a project moved between machines mixes them: worth seeing)."""
    from collections import Counter

    counts = Counter(f"{rt.get('device', '?')} {rt.get('dtype', '?')}, torch {rt.get('torch', '?')}, "
                     f"diffusers {rt.get('diffusers', '?')}, motionq {rt.get('motionq', '?')}"
                     for rt in (e.meta.get("runtime") for e in entries if e is not None) if rt)
    return [f"rendered on {what}: {n} shot{'s' * (n != 1)}" for what, n in counts.items()]


@app.command()
def render(
    file: Path = typer.Argument(..., help=FILE_HELP),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Film to write (default: FILE.mp4)"),
    shots: Optional[str] = typer.Option(None, "--shots", help="Comma-separated shot ids to render"),
    force: bool = typer.Option(False, "--force", help="Re-render even if cached"),
    report: Optional[Path] = typer.Option(None, "--report", help="Write a JSON report of the render"),
    allow_outside: bool = typer.Option(False, "--allow-outside", help=OUTSIDE_HELP),
    no_assemble: bool = typer.Option(False, "--no-assemble", help="Render shots only, no edit"),
) -> None:
    """Render the shots that are not cached, then assemble the film and its exports."""
    from motionq.api import load_backbone
    from storyboard.cache import RenderCache
    from storyboard.progress import RichListener
    from storyboard.render import RenderJob

    sb = _load(file, allow_outside)
    _note_unused(file, sb)
    p = _plan(sb)
    paths = outputs_for(sb, output)  # a bad -o fails now, not after the render
    if not no_assemble:
        _check_writable(paths["mp4"])
    if report:
        _check_writable(report)
    cache = RenderCache.beside(sb.path)
    ids = [s.strip() for s in shots.split(",") if s.strip()] if shots else None
    if ids:
        unknown = [i for i in ids if i not in {s.shot_id for s in p.shots}]
        if unknown:
            raise UserError(f"{file}: --shots: unknown shot id(s) {', '.join(unknown)} "
                            f"(known: {', '.join(s.shot_id for s in p.shots)})")
    with RichListener(p, err) as listener:
        job = RenderJob(p, cache, lambda: load_backbone(p.model), shots=ids, force=force, listener=listener)
        try:
            results = job.run()
        except KeyboardInterrupt:
            results = None
    if results is None:
        # Said here, below the stopped progress bars, with how to resume.
        err.print(INTERRUPTED)
        raise typer.Exit(INTERRUPT_SAID)
    failed = [r for r in results if r.status == "failed"]
    for r in failed:
        err.print(f"{file}: shot {r.shot_id}: render failed: {r.error}", markup=False)
    written: dict[str, str] = {}
    unrendered = [s.shot_id for s in p.shots if not cache.has(s.key)]
    if not failed and not no_assemble and ids and unrendered:
        # A subset was asked for: the edit waits for the rest rather than failing.
        out.print(f"{', '.join(ids)}: done; the film also needs {', '.join(unrendered)}: "
                  f"run `storyboard render {file}` to finish it", markup=False)
    elif not failed and not no_assemble:
        try:
            written = {k: str(v) for k, v in export_all(sb, p, cache, paths).items()}
        except OSError as exc:  # disk full and the like: the shots stay in the cache
            raise UserError(f"{paths['mp4']}: could not write the film ({exc}); the rendered shots "
                            "are cached: run `storyboard export` once fixed") from None
        out.print(f"wrote {written['mp4']} ({p.duration:.2f} s), {written['otio']}, {written['png']}")
    if report:
        from storyboard.atomic import atomic_write_text

        atomic_write_text(report, json.dumps({
            "storyboard": str(sb.path), "model": p.model, "duration": p.duration,
            "shots": [r.to_json() for r in results], "outputs": written,
        }, indent=2))
    if failed:
        raise typer.Exit(1)


def export_all(sb: "Storyboard", p: "Plan", cache: "RenderCache", paths: dict[str, Path],
               formats: tuple[str, ...] = ("mp4", "otio", "png")) -> dict[str, Path]:
    """Write the film, per-shot clips, the timeline and the contact sheet from the cache."""
    from storyboard.assemble import assemble
    from storyboard.export import contact_sheet, write_otio, write_shot_clips

    clips, spec = shot_clips(p, cache)
    written: dict[str, Path] = {}
    if "mp4" in formats:
        written["mp4"] = assemble(clips, spec, paths["mp4"])
    if "otio" in formats:
        clip_paths = write_shot_clips(clips, spec, paths["shots"])
        written["otio"] = write_otio(clips, spec, clip_paths, paths["otio"])
    if "png" in formats:
        masks = {s.shot_id: m for s in p.shots if (m := cache.get(s.key).extra("masks")) is not None}
        written["png"] = contact_sheet(clips, paths["png"], masks=masks or None)
    return written


def shot_clips(p: "Plan", cache: "RenderCache") -> tuple[list["ShotClip"], "EditSpec"]:
    """The plan's shots as assembly inputs, read from the cache (all must be rendered)."""
    from storyboard.assemble import EditSpec, ShotClip

    missing = [s.shot_id for s in p.shots if not cache.has(s.key)]
    if missing:
        raise UserError(f"{p.storyboard}: not rendered yet: {', '.join(missing)} "
                        f"(run: storyboard render {p.storyboard})")
    clips = [
        ShotClip(shot_id=s.shot_id, frames=cache.get(s.key).frames, duration=s.duration,
                 transition=s.transition, transition_duration=s.transition_duration,
                 label=s.request.prompt)
        for s in p.shots
    ]
    return clips, EditSpec(fps=p.fps, size=tuple(p.size), title=p.title)


@app.command()
def export(file: Path = typer.Argument(..., help=FILE_HELP),
           fmt: str = typer.Option("mp4", "--format", help="mp4 | otio | png"),
           output: Optional[Path] = typer.Option(None, "-o", "--output",
                                                 help="Where to write (default: beside FILE, e.g. FILE.mp4)"),
           allow_outside: bool = typer.Option(False, "--allow-outside", help=OUTSIDE_HELP)) -> None:
    """Write one export again from the cache (no rendering)."""
    from storyboard.cache import RenderCache

    if fmt not in ("mp4", "otio", "png"):
        raise UserError(f"--format: unknown format '{fmt}' (allowed: mp4, otio, png)")
    sb = _load(file, allow_outside)
    p = _plan(sb)
    paths = outputs_for(sb, None)
    if output:
        if Path(output).suffix.lower() != f".{fmt}":
            raise UserError(f"{output}: a {fmt} export needs a name ending in .{fmt}")
        paths[fmt] = output
    _check_writable(paths[fmt])
    written = export_all(sb, p, RenderCache.beside(sb.path), paths, formats=(fmt,))
    out.print(f"wrote {written[fmt]}")


@app.command()
def edit(file: Path = typer.Argument(..., help=FILE_HELP + " (created from the starter if missing)"),
         allow_outside: bool = typer.Option(False, "--allow-outside", help=OUTSIDE_HELP)) -> None:
    """Open the terminal studio (creates the file from the starter template if missing)."""
    from storyboard.tui.app import run_app

    run_app(file, allow_outside=allow_outside)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors become one line and exit status 2."""
    from motionq.api import BackboneError
    from storyboard.errors import StoryboardError

    try:
        rc = app(args=argv, standalone_mode=False)
        # standalone_mode=False makes click return the code of typer.Exit instead of exiting.
        # Typer turns Ctrl-C into a bare exit 130 (older click: an Abort, below).
        if rc == 130:
            err.print("interrupted")
        sys.exit(130 if rc == INTERRUPT_SAID else rc if isinstance(rc, int) else 0)
    except StoryboardError as e:
        for p in e.problems:
            err.print(str(p), markup=False)
        sys.exit(2)
    except (UserError, BackboneError) as e:
        err.print(f"error: {e}", markup=False)
        sys.exit(2)
    except typer.Exit as e:
        sys.exit(130 if e.exit_code == INTERRUPT_SAID else e.exit_code)
    except Exception as e:  # click usage errors, and Ctrl-C where click turns it into Abort
        usage_errors, aborts = _click_exception_types()
        if isinstance(e, usage_errors):
            e.show()
            sys.exit(e.exit_code if isinstance(getattr(e, "exit_code", None), int) else 2)
        if isinstance(e, aborts):
            err.print("interrupted")
            sys.exit(130)
        raise
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


def _click_exception_types() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """(usage errors, aborts) of click and of the copy of click that newer typer releases bundle
    (typer._click), whichever are installed: both kinds reach `main`."""
    import importlib

    errors: list[type] = []
    aborts: list[type] = []
    for name in ("click.exceptions", "typer._click.exceptions", "typer.exceptions"):
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        errors += [getattr(mod, "ClickException")] if hasattr(mod, "ClickException") else []
        aborts += [getattr(mod, "Abort")] if hasattr(mod, "Abort") else []
    return tuple(errors), tuple(aborts)


if __name__ == "__main__":
    main()
