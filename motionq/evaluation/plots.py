"""Plots of the evaluation (matplotlib, Agg backend, PNG into docs/images/) and contact sheets.

- `plot_transfer`: motion fidelity and identity leakage against strength, per pair type, with
  95% intervals, and the text-only baseline as a reference line;
- `plot_multishot`: identity consistency against motion adherence (and against motion
  diversity) per consistency variant, with 95% intervals on both axes;
- `plot_dmt`: fidelity against seconds per clip for our transfer and the DMT-style baseline;
- `group_contact_sheet`: rows of frames (typical wins and failures), through
  `storyboard.export.contact_sheet`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from motionq.metrics import mean_ci, paired_gain

__all__ = ["group_contact_sheet", "plot_all", "plot_dmt", "plot_multishot", "plot_transfer", "write_report"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # files only; never a display
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.part.png")
    try:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return str(path)


def _val(est: Mapping[str, Any] | None, key: str = "mean") -> float:
    if not est or est.get(key) is None:
        return float("nan")
    return float(est[key])


def group_contact_sheet(rows: Sequence[tuple[str, np.ndarray, str]], path: str | os.PathLike,
                        cell: int = 48) -> Path:
    """A contact sheet with one row per (name, frames, label): every frame of each clip."""
    from motionq.sheets import SheetRow, contact_sheet_image

    if not rows:
        raise ValueError("no rows to draw")
    per_row = max(len(fr) for _, fr, _ in rows)
    sheet = contact_sheet_image([SheetRow(f"{name}  {label}" if label else name, np.asarray(fr))
                                 for name, fr, label in rows], frames_per_row=per_row, cell=cell)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part.png")
    try:
        sheet.save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# ---------------------------------------------------------------------------------------------


def plot_transfer(result: Mapping[str, Any], out_dir: str | os.PathLike) -> str:
    """Fidelity and leakage vs strength per pair type (docs/images/transfer_tradeoff.png)."""
    plt = _plt()
    summary = result["summary"]
    fig, (ax_f, ax_l) = plt.subplots(1, 2, figsize=(10.5, 4))
    colours = {"same-shape": "tab:red", "different-shape": "tab:blue", "free-path": "tab:purple", "real": "tab:green"}
    for ptype, per in summary["by_strength"].items():
        s = np.array([float(k) for k in per])
        order = np.argsort(s)
        s = s[order]
        keys = [list(per)[i] for i in order]
        c = colours.get(ptype, None)
        fid = [per[k]["fidelity"] for k in keys]
        m = np.array([_val(e) for e in fid])
        ax_f.plot(s, m, "o-", color=c, label=ptype)
        ax_f.fill_between(s, [_val(e, "lo") for e in fid], [_val(e, "hi") for e in fid], color=c, alpha=0.15)
        base = summary.get("text_baseline", {}).get(ptype, {}).get("fidelity")
        if base and base.get("mean") is not None:
            ax_f.axhline(base["mean"], color=c, ls="--", lw=1, alpha=0.8)
        if ptype != "real":
            leak = [per[k]["leakage"] for k in keys]
            ax_l.plot(s, [_val(e) for e in leak], "o-", color=c, label=f"{ptype}: any")
            ax_l.fill_between(s, [_val(e, "lo") for e in leak], [_val(e, "hi") for e in leak], color=c, alpha=0.15)
            col = [per[k]["leak_colour"] for k in keys]
            ax_l.plot(s, [_val(e) for e in col], "x:", color=c, label=f"{ptype}: colour")
        kept = [per[k]["identity_kept"] for k in keys]
        ax_l.plot(s, [_val(e) for e in kept], "s--", color=c, alpha=0.5, ms=3, label=f"{ptype}: identity kept")
    ax_f.set(xlabel="strength (fraction of steps with injected Q)", ylabel="motion fidelity (path correlation)",
             title="Motion fidelity (dashed: text-only baseline)", ylim=(-1.05, 1.05))
    ax_f.axhline(0, color="grey", lw=0.5)
    ax_f.legend(fontsize=8)
    ax_l.set(xlabel="strength", ylabel="share of clips", title="Identity leakage / identity kept", ylim=(-0.02, 1.02))
    ax_l.legend(fontsize=7, ncol=2)
    fig.suptitle(f"Motion transfer, model {result.get('model')} (95% bootstrap CI)", fontsize=10)
    return _save(fig, Path(out_dir) / "transfer_tradeoff.png")


def plot_multishot(result: Mapping[str, Any], out_dir: str | os.PathLike) -> str:
    """Consistency vs adherence and vs diversity per variant (docs/images/multishot_tradeoff.png)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.2))
    markers = "osD^vP*X"
    for i, (v, st) in enumerate(result["variants"].items()):
        summ = st.get("summary")
        if not summ:
            continue
        y = summ["identity_consistency"]
        for ax, xkey in zip(axes, ("motion_adherence", "motion_diversity")):
            x = summ[xkey]
            xm, ym = _val(x), _val(y)
            if not (np.isfinite(xm) and np.isfinite(ym)):
                continue
            ax.errorbar(xm, ym, xerr=[[xm - _val(x, "lo")], [_val(x, "hi") - xm]],
                        yerr=[[ym - _val(y, "lo")], [_val(y, "hi") - ym]],
                        fmt=markers[i % len(markers)], capsize=3, label=v)
    axes[0].set(xlabel="motion adherence (share of shots moving as asked)",
                ylabel="identity consistency (share of shot pairs)", xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))
    axes[1].set(xlabel="motion diversity (mean pairwise path distance, canvas units)",
                ylabel="identity consistency", ylim=(-0.02, 1.02))
    axes[0].legend(fontsize=7)
    n = result["settings"]["sets"] * result["settings"]["seeds"]
    fig.suptitle(f"Multi-shot consistency vs motion, model {result.get('model')}, "
                 f"{n} groups per variant (95% bootstrap CI)", fontsize=10)
    return _save(fig, Path(out_dir) / "multishot_tradeoff.png")


def plot_dmt(result: Mapping[str, Any], out_dir: str | os.PathLike) -> str:
    """Fidelity vs seconds per clip: ours, plain generation and DMT budgets (docs/images/dmt_cost.png)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, row in result["methods"].items():
        sec = row["seconds"]["median"]
        fid = row["fidelity"]
        m = _val(fid)
        ax.errorbar(sec, m, yerr=[[m - _val(fid, "lo")], [_val(fid, "hi") - m]], fmt="o", capsize=3)
        ax.annotate(name, (sec, m), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xscale("log")
    ax.set(xlabel="seconds per clip (median, log scale)", ylabel="motion fidelity (path correlation)",
           title=f"Cost of motion transfer, model {result.get('model')}")
    return _save(fig, Path(out_dir) / "dmt_cost.png")


def plot_all(results: Mapping[str, Mapping[str, Any] | None], out_dir: str | os.PathLike) -> list[str]:
    """Every plot whose result is present; returns the written paths."""
    out = []
    if results.get("multishot"):
        out.append(plot_multishot(results["multishot"], out_dir))
    if results.get("transfer"):
        out.append(plot_transfer(results["transfer"], out_dir))
    if results.get("dmt"):
        out.append(plot_dmt(results["dmt"], out_dir))
    return out


# ---------------------------------------------------------------------------------------------
# The report (docs/results.md)
# ---------------------------------------------------------------------------------------------

_SETUP_TEXT = """\
## Setup and choices

Where the paper is silent these are our choices (code: `motionq/evaluation/`).

- **Multi-shot benchmark** (`benchmark_sets.py`, the paper's shape: 30 sets x 5 shots). Each set
  is one recurring character with an identity-free prompt ("a shape" or "something"): the text
  fixes no shape or colour, so consistency across shots is entirely the method's doing. Each shot
  asks for a different motion (5 distinct classes of the 11 moving ones; "stays still" is left
  out so that motion diversity is meaningful), on its own background, with its own seed.
  Deterministic from `--bench-seed`; `motionq eval storyboards DIR` writes the sets as storyboard
  files. A group is rendered with one `GroupRequest` (`characters=("x",)`,
  `subjects=(character prompt,)`): joint variants with `anchors="off"`; `<variant>@anchors`
  is that variant with `anchors="auto"` and the first 2 shots as `anchor_ids`, which is how a
  storyboard renders a group of 5 shots by default. Besides the paper's ladder, `refine` is
  ours: the refinement alone (no shared keys, no Q control); it is the built-in model's default
  variant (`motionq.backbones.default_variant`; other models default to the paper's full method)
  because on this model sharing subject keys costs motion and aligns no identity
  (docs/consistency.md). The refinement runs in the model's own range (the built-in model: t
  in [100, 500]). Seed replica r shifts every shot seed by r x 1,000,003.
- **Transfer sources**: 8 sprite clips (one per motion: left, right, up, down-right, up-left,
  bounce, zigzag, circle; random shape, colour, background; shapes are those the model draws,
  from its training.json: the built-in model leaves out "cross") and 5 other clips:
  examples/clips/bounce.mp4 and pan.mp4, and three made with ffmpeg's test sources
  (a Game-of-Life board behind a diagonally moving window, a mandelbrot view panning, a testsrc2
  box sliding over a backdrop; about 2.5 px/frame at 32 px, like the sprites); their motion class
  is read from the fitted clip's tracked path (bounce.mp4's two hops fitted into 9 frames read as
  a zigzag, and that is what the text baseline then asks for). `eval transfer` adds 5 free-path
  sprite clips (`FREE_PATHS`: an L-turn, a half-circle arc, an S-curve, a stop-and-go and a
  speed-up, mirrored at random, centred): paths no caption names, the case motion references
  are for; the text baseline asks for the motion class the analyser reads from them (the
  nearest thing the captions say: "moves right" for all but the L-turn). Every sprite source
  has a same-shape target (its shape, another colour) and a different-shape target (another shape
  and colour; free-path sources' two targets form one `free-path` group); other clips have two
  random targets. In the first transfer run target prompts
  name identity and background only ("a blue circle on a navy background"), so motion can only
  come from the reference; the text-only baseline names the source's motion instead ("...
  bounces to the right ..."). The second run names the motion in both, so the paired difference
  is what the clip adds to the text.
- **DMT-style baseline** (`dmt.py`): DMT's space-time (SMM) loss, pairwise frame differences of the
  spatially averaged output of the middle transformer block, `1 - cos` against the source's;
  the latent is optimised with Adam for the first 40% of the steps, then the ordinary guided
  step. In the plain rows the source's features come from its latent forward-noised with the
  generation's own noise (steps at sigma = 1 are skipped: there the noised source equals the
  start noise). The `+inv` rows follow DMT's own recipe for the source (its DDIM inversion,
  here with the flow-matching Euler ODE: one unguided pass per step, empty prompt, billed to
  the baseline) and start from DMT's latent (the inverted latent's low spatial frequencies,
  factor 4, plus the seed's high ones). The `+invM+rs` row is DMT's published recipe at our
  step count: its preprocessing inverts the source with 999 DDIM steps, so here the inversion
  takes M Euler passes per sampling step (M = ceil(999 / steps), 1,000 passes at 20 steps), and
  it adds DMT's restart sampling, which its configuration switches on: after every step but
  the last the latent is re-noised back to that step's noise level (fresh seeded noise) and
  the step is taken again, a second guided pass per step (not after the first step, which
  starts at sigma = 1, where re-noising would replace the latent by fresh noise; DMT's DDPM
  schedule keeps signal at its top timestep); 10 iterations. Budgets are Adam iterations per
  guided step (DMT's configuration uses 10); the cost ratio uses the cheapest DMT row that
  reaches our fidelity at strength 0.6 (or, when none does, the row with the best fidelity);
  the published recipe's ratio is given under it. It runs twice: with target prompts that leave
  the motion out (the clip is the only source of motion) and with prompts that name it (how a
  storyboard uses a reference).
- **Timing**: one process, one torch thread (the dev machine's 2 cores are shared with other
  jobs), an untimed warm-up first; methods compared in the same run, interleaved per pair for
  the DMT comparison.
"""

_METRIC_TEXT = """\
## Metrics

All computed by `motionq/metrics.py`; sprite clips are read by the sprite analyser
(`motionq.spriteworld.analyse`, exact on ground-truth renders). A shot's *character* is the
analyser's most confident track.

- **Identity consistency** (multi-shot): share of the group's shot pairs whose characters have
  the same (shape, colour); a shot without a character makes its pairs inconsistent.
- **Motion adherence**: share of shots whose character's motion class (`motion_class` of its
  centroid path) is the one the prompt asks for (`parse_caption`).
- **Motion diversity**: mean over shot pairs of `mean_t |D_i(t) - D_j(t)|` (clipped to 1), where
  `D(t) = (c(t) - c(0)) / S` is the character's displacement from its first position in canvas
  sides (S = min(H, W)). Frozen shots and shots that all move alike score 0; shots without a
  character are left out.
- **Dynamic degree**: mean Farneback optical-flow magnitude over all pixels and frame pairs, in
  pixels per frame of the clip's resolution (frames upscaled to >= 128 px). The flow is computed
  on each colour channel and the three fields are averaged per pixel by their local gradient
  energy: on grey frames a red or blue sprite on the grey background (0 and 3 grey levels apart)
  has no flow.
- **Motion fidelity** (transfer): vector correlation of the mean-centred source and target paths,
  `sum_t <a_t - a_bar, b_t - b_bar> / sqrt(sum_t |a_t - a_bar|^2 sum_t |b_t - b_bar|^2)`, in
  [-1, 1] (1: same trajectory shape at any speed and position; 0: unrelated, or a target that does
  not move or has no character). Source path: analyser centroids for sprite sources; for the
  other clips, the cumulative median displacement of corner points tracked frame to frame
  (`goodFeaturesToTrack` + `calcOpticalFlowPyrLK`, forward-backward checked, on each colour
  channel and pooled). Target path: the analyser's centroids (targets are sprite-world
  generations). In the JSON also *track
  fidelity* (tracked points in both clips), which needs no analyser. Path correlation is
  dominated by the net displacement: a straight line in the right direction scores 0.84-0.99
  against an arc, an S-curve, an L-turn or a speed-up.
- **Flow fidelity** (transfer): per-frame direction agreement, measured on both clips alike
  without the analyser: the colour-aware Farneback flow above of each consecutive frame pair,
  averaged over the frame to one vector; the cosine of the source's and the target's vectors,
  weighted by the source's magnitude (pairs where the source hardly moves say little; a target
  pair without motion counts 0). The idea of DMT's motion-fidelity score (cosine of per-frame displacements of
  tracklets), with one whole-frame vector instead of tracklets. Speed and end position do not
  count; a turn, an arc or a bounce's phase does.
- **Displacement error** (transfer): `mean_t |D_src(t) - D_tgt(t)|` with D as in motion diversity
  (displacement from the first frame in canvas sides, clipped to 1; a target without its
  character scores 1), lower is better: where fidelity ignores speed, this counts it.
  **Position error**: the same on absolute positions (sprite sources only; the other clips'
  paths are displacements).
- **Motion match**: the target's motion class equals the source's.
- **Identity kept**: the target shows exactly the asked shape and colour.
- **Identity leakage**: the target shows the source's colour (or, for different-shape pairs, its
  shape) instead of the asked one. Same-shape pairs can only leak colour.
- **Intervals**: 95% percentile bootstrap (2000 resamples, seeded) over the evaluation units:
  (set, seed) groups for multi-shot, (pair, seed) clips for transfer.
- **Cost**: wall seconds of `render_group` per shot / per clip, in one process with one torch
  thread, after an untimed warm-up; ratios are against plain generation in the same run.
"""


def _cell(est: Mapping[str, Any] | None, digits: int = 2) -> str:
    if not est or est.get("mean") is None:
        return "n/a"
    if est.get("lo") is None or est["lo"] == est["hi"]:
        return f"{est['mean']:.{digits}f}"
    return f"{est['mean']:.{digits}f} [{est['lo']:.{digits}f}, {est['hi']:.{digits}f}]"


def _rel(path: str | os.PathLike, report: Path) -> str:
    try:
        return os.path.relpath(Path(path).resolve(), report.resolve().parent)
    except ValueError:
        return str(path)


def _machine_line(doc: Mapping[str, Any]) -> str:
    m = doc.get("machine", {})
    dev = m.get("cuda") or f"CPU ({m.get('machine')}, {m.get('threads')} torch thread(s))"
    return f"model `{doc.get('model')}` (fingerprint `{doc.get('fingerprint')}`), {dev}"


def _multishot_section(doc: Mapping[str, Any] | None, report: Path, images_dir: Path) -> list[str]:
    out = ["## Multi-shot consistency against motion", ""]
    if not doc:
        return out + ["Not run yet: `motionq eval multishot` (or `motionq eval all`).", ""]
    st = doc["settings"]
    out += [
        f"{st['sets']} character sets x {st['shots']} shots x {st['seeds']} seed(s) = "
        f"{st['sets'] * st['seeds']} groups per variant; identity-free character prompts (\"a shape\", "
        f"\"something\"), a different motion per shot; {st['steps']} steps, guidance {st['guidance']}, "
        f"{doc.get('num_frames')} frames at {doc.get('native_size')}; anchor mode uses the first "
        f"{st['anchors']} shots as anchors. {_machine_line(doc)}; {doc.get('seconds_total', 0) / 60:.1f} min.",
        "" if not doc.get("partial") else "\n**Partial result: the run did not finish.**",
        "",
    ]
    default = doc.get("default_variant")
    if default:
        out += [f"The model's default variant (what a storyboard that names none renders with) is "
                f"`{default}`; a group of 5 shots renders in anchor mode, so `{default}@anchors` is "
                "what storyboards get. Both rows are marked **default**.", ""]
    out += [
        "| variant | identity consistency | motion adherence | motion diversity | dynamic degree (px/frame) "
        "| s/shot | cost vs vanilla | n |",
        "|---|---|---|---|---|---|---|---|",
    ]
    skipped = []
    for v, s in doc["variants"].items():
        summ = s.get("summary")
        if not summ:
            skipped.append(f"- `{v}`: {s.get('status')}: {s.get('reason', '')}")
            continue
        mark = " **default**" if default and v in (default, f"{default}@anchors") else ""
        out.append(f"| `{v}`{mark} | {_cell(summ['identity_consistency'])} | {_cell(summ['motion_adherence'])} | "
                   f"{_cell(summ['motion_diversity'])} | {_cell(summ['dynamic_degree'])} | "
                   f"{_cell(summ['seconds_per_shot'])} | {s.get('cost_vs_vanilla')} | "
                   f"{summ['identity_consistency']['n']} |")
    out.append("")
    if skipped:
        out += ["Not measured (skipped: the backbone raised NotImplementedError; error: it failed):", ""] \
            + skipped + [""]
    png = images_dir / "multishot_tradeoff.png"
    if png.exists():
        out += [f"![consistency vs motion]({_rel(png, report)})", ""]
    for p in doc.get("images", []):
        out += [f"Contact sheet ({Path(p).stem.replace('multishot_', '')}: rows are variant x shot, "
                f"labels give the asked motion and what the analyser found):", "",
                f"![{Path(p).stem}]({_rel(p, report)})", ""]
    return out


def _transfer_section(doc: Mapping[str, Any] | None, report: Path, images_dir: Path) -> list[str]:
    out = ["## Motion transfer: fidelity and leakage against strength", ""]
    if not doc:
        return out + ["Not run yet: `motionq eval transfer` (or `motionq eval all`).", ""]
    st, summ = doc["settings"], doc["summary"]
    op = f"{summ.get('overhead_strength', st['operating_strength']):g}"
    types = {}
    for p in doc["pairs"]:
        types[p["pair_type"]] = types.get(p["pair_type"], 0) + 1
    out += [
        f"{len(doc['pairs'])} pairs ({', '.join(f'{n} {t}' for t, n in types.items())}) x {st['seeds']} seed(s); "
        f"{_PROMPT_MODE_TEXT.get(st['prompt_mode'], '')} (mode `{st['prompt_mode']}`); {st['steps']} steps, "
        f"guidance {st['guidance']}, geometry {doc['geometry']}. {_machine_line(doc)}; "
        f"{doc.get('seconds_total', 0) / 60:.1f} min.",
        "",
        f"Median seconds per clip: plain generation {summ['median_seconds'].get('0', 'n/a')}, transfer at "
        f"{op}: {summ['median_seconds'].get(op, 'n/a')} (**{summ.get('overhead_vs_plain') or 'n/a'}x plain**; "
        f"the bar is <= 1.3x).",
        "",
    ]
    out += _headline_by_path(doc, summ.get("overhead_strength", st["operating_strength"]))
    for ptype, per in summ["by_strength"].items():
        out += [f"**{ptype}** pairs:", "",
                "| strength | fidelity | flow fidelity | displacement error | position error | motion match | "
                "identity kept | leakage (any) | colour leak | shape leak | n |",
                "|---|---|---|---|---|---|---|---|---|---|---|"]
        base = summ["text_baseline"].get(ptype)
        rows = list(per.items())
        if base:
            rows.append(("text only", base))
        for s, e in rows:
            out.append(f"| {s} | {_cell(e['fidelity'])} | {_cell(e.get('flow_fidelity'))} | "
                       f"{_cell(e.get('displacement_error'))} | "
                       f"{_cell(e.get('position_error'))} | {_cell(e['motion_match'])} | {_cell(e['identity_kept'])} | "
                       f"{_cell(e['leakage'])} | {_cell(e['leak_colour'])} | {_cell(e['leak_shape'])} | "
                       f"{e['fidelity']['n']} |")
        out.append("")
    ran = [f"{s:g}" for s in st["strengths"]]
    shown = [s for s in ran if s in ("0.3", "0.6", "1")] or ran  # the sweep's 11 columns would not fit
    out += _by_path_section(doc, shown, "Paired on the same (pair, seed), fidelity with the clip minus that of "
                                        "the text-only baseline (which names the motion; the prompts with the clip "
                                        "here do not), mean [95% CI] and clear wins / losses, by the kind of the "
                                        "source's path")
    out += _by_path_section(doc, shown, _FLOW_INTRO, metric="flow_fidelity")
    out += _by_path_section(doc, shown, _DISPLACEMENT_INTRO, metric="displacement_error")
    out += _by_path_section(doc, shown, _POSITION_INTRO, metric="position_error")
    png = images_dir / "transfer_tradeoff.png"
    if png.exists():
        out += [f"![fidelity and leakage vs strength]({_rel(png, report)})", ""]
    for p in doc.get("images", []):
        kind = Path(p).stem.removeprefix("transfer_")
        caption = _TRANSFER_SHEETS.get(kind, "").format(op=op)
        if caption:
            out += [caption, "", f"![transfer {kind}]({_rel(p, report)})", ""]
    return out


#: Captions of the transfer run's contact sheets, by file name (transfer_<kind>.png).
_TRANSFER_SHEETS = {
    "examples": "Examples (one pair per type; source, then strength 0, 0.2, ..., 1.0 and the text-only baseline):",
    "win": ("Contact sheet (win: up to two pairs where the clip at {op} gained most fidelity over the text-only "
            "baseline on the same seed; rows: source, clip at {op}, clip at 1, text only; labels give what "
            "the analyser found):"),
    "failure": ("Contact sheet (failure: up to two pairs where the clip at {op} lost most against the text-only "
                "baseline; same rows):"),
}


_PROMPT_MODE_TEXT = {
    "none": "target prompts name only identity and background",
    "still": "target prompts ask the character to stay still",
    "motion": "target prompts also name the source's motion",
}


#: Held-out runs (bench seed 1, sprite clips): the report section's title and how to run it.
_HELDOUT_RUNS = {
    "motion": ("## Held-out check: new pairs and seeds, prompts that name the motion",
               "--prompt-mode motion --strengths 0.3,0.6,1 --seeds 3 --no-real --bench-seed 1 --no-examples "
               "--out benchmarks/results/eval_transfer-motion-heldout.json"),
    "none": ("## Held-out check, clip alone: new pairs and seeds, prompts that leave the motion to the clip",
             "--strengths 0.6,0.7,0.8,0.9,1 --seeds 3 --no-real --bench-seed 1 --no-examples "
             "--out benchmarks/results/eval_transfer-heldout.json"),
}


def _transfer_motion_section(doc: Mapping[str, Any] | None, heldout: bool = False,
                             prompt_mode: str = "motion") -> list[str]:
    """The transfer run whose prompts name the motion too: what the reference adds to the text.
    `heldout`: the same on pairs and seeds drawn apart (bench seed != 0), sprite clips only;
    with `prompt_mode` "none" the held-out clip-alone run (the text-only baseline names the
    motion, the prompts with the clip do not)."""
    title = (_HELDOUT_RUNS[prompt_mode][0] if heldout
             else "## Motion transfer when the prompt names the motion too")
    out = [title, ""]
    if not doc:
        how = (_HELDOUT_RUNS[prompt_mode][1] if heldout
               else "--prompt-mode motion --no-examples --out benchmarks/results/eval_transfer-motion.json")
        return out + [f"Not run yet: `motionq eval transfer {how}` (or `motionq eval all`).", ""]
    st, summ = doc["settings"], doc["summary"]
    strengths = [f"{s:g}" for s in st["strengths"]]
    op = f"{st['operating_strength']:g}"
    if heldout:
        pairs = (f"The default strength ({op}) was set before this run; here it meets sprite sources, "
                 f"targets and sampling seeds drawn with bench seed {st.get('bench_seed')}, none of them "
                 f"in the runs above: {len(doc.get('pairs') or [])} pairs x {st['seeds']} seed(s)")
    else:
        pairs = ("How a storyboard uses a motion reference: the shot's prompt says what happens (\"a green "
                 "circle moves left\") and the clip says exactly how (start, speed, path). Same pairs as above, "
                 f"{st['seeds']} seed(s)")
    if st.get("prompt_mode") == "motion":
        baseline = (f"{_PROMPT_MODE_TEXT['motion']}, and the text-only baseline is the same prompt without the "
                    f"clip{' (strength 0 is that same generation)' if '0' in strengths else ''}")
    else:
        baseline = (f"{_PROMPT_MODE_TEXT.get(st.get('prompt_mode'), '')}, so the motion comes from the clip "
                    "alone; the text-only baseline names the motion instead")
    out += [
        f"{pairs}; {baseline}. "
        f"{_machine_line(doc)}; "
        f"{doc.get('seconds_total', 0) / 60:.1f} min.",
        "",
        *(_headline_by_path(doc, st["operating_strength"]) if st.get("prompt_mode") == "none" else []),
        "| pairs | text only | " + " | ".join(f"strength {s}" for s in strengths)
        + f" | identity kept at {op} | leakage at {op} | n |",
        "|---|---|" + "---|" * len(strengths) + "---|---|---|",
    ]
    for ptype, per in summ["by_strength"].items():
        base = summ["text_baseline"].get(ptype) or {}
        at_op = per.get(op, {})
        out.append(f"| {ptype} | {_cell(base.get('fidelity'))} | "
                   + " | ".join(_cell(per[s]["fidelity"]) for s in strengths if s in per)
                   + f" | {_cell(at_op.get('identity_kept'))} | {_cell(at_op.get('leakage'))} | "
                   f"{(base.get('fidelity') or {}).get('n', 'n/a')} |")
    out += ["", "Cells are motion fidelity (correlation of the target's path with the source's).", ""]
    paired = summ.get("paired_vs_text")
    if paired:
        out += ["What the clip adds, paired on the same (pair, seed): fidelity with the clip minus "
                "fidelity of the text-only baseline, mean [95% CI], and clear wins / losses (|diff| > 0.01):",
                ""] + _paired_table("pairs", paired, strengths)
    out += _by_path_section(doc, strengths, "The same difference by the kind of the source's path")
    out += _by_path_section(doc, strengths, _FLOW_INTRO, metric="flow_fidelity")
    out += _by_path_section(doc, strengths, _DISPLACEMENT_INTRO, metric="displacement_error")
    out += _by_path_section(doc, strengths, _POSITION_INTRO, metric="position_error")
    return out


def _paired_table(label: str, paired: Mapping[str, Any], strengths: Sequence[str]) -> list[str]:
    shown = [s for s in strengths if s != "0"]
    out = [f"| {label} | " + " | ".join(f"strength {s}" for s in shown) + " |", "|---|" + "---|" * len(shown)]
    for group, per in paired.items():
        cells = [f"{_cell(per[s])} ({per[s].get('wins', 0)} / {per[s].get('losses', 0)})" for s in shown if s in per]
        out.append(f"| {group} | " + " | ".join(cells) + " |")
    return out + [""]


_POSITION_INTRO = (
    "Position error, the same on absolute positions (sprite sources only): where the character is, "
    "which no prompt here says; text-only error minus the clip's, so positive favours the clip")

_FLOW_INTRO = (
    "Flow fidelity, the per-frame direction agreement (source-magnitude-weighted cosine of the two clips' "
    "mean optical-flow vectors, frame pair by frame pair; the kind of score DMT-style papers call motion "
    "fidelity, and blind to where the path ends up, which dominates path correlation); paired as above, "
    "with the clip minus text-only, so positive favours the clip")

_DISPLACEMENT_INTRO = (
    "Displacement error, the speed-aware complement of fidelity: mean distance between the source's and "
    "the target's displacement from their first frame, in canvas sides (0 = same path at the same speed; "
    "a target without its character scores 1); paired as above, the text-only baseline's error minus the "
    "clip's, so positive means the clip brings the target closer to the source's actual path")


def _headline_by_path(doc: Mapping[str, Any], strength: float) -> list[str]:
    """One table for the question the run answers: at `strength`, by the kind of the source's
    path, the clip against the text-only baseline on path correlation and on flow fidelity
    (means, and the paired gain with its CI and wins / losses)."""
    from motionq.evaluation.transfer import paired_vs_text, path_kind

    records = doc.get("records") or []
    at = [r for r in records if r["mode"] == "transfer" and r["strength"] == strength]
    text = [r for r in records if r["mode"] == "text"]
    if not at or not text:
        return []
    gains = {m: paired_vs_text(records, [strength], group=path_kind, metric=m)
             for m in ("fidelity", "flow_fidelity")}
    kinds = [k for k in dict.fromkeys(path_kind(r) for r in at)]
    out = [f"At strength {strength:g}, by the kind of the source's path (see below): mean with the clip, mean "
           "of the text-only baseline, and the paired gain (mean [95% CI], wins / losses), for path "
           "correlation (*fidelity*) and per-frame direction (*flow fidelity*):", "",
           "| path | clips | fidelity: clip | text | gain | flow fidelity: clip | text | gain |",
           "|---|---|---|---|---|---|---|---|"]
    for k in kinds:
        cells = []
        for m in ("fidelity", "flow_fidelity"):
            mine = mean_ci([r.get(m) for r in at if path_kind(r) == k]).to_dict()
            base = mean_ci([r.get(m) for r in text if path_kind(r) == k]).to_dict()
            g = gains[m].get(k, {}).get(f"{strength:g}", {})
            cells += [_cell(mine), _cell(base), f"{_cell(g)} ({g.get('wins', 0)} / {g.get('losses', 0)})"]
        n = sum(1 for r in at if path_kind(r) == k)
        out.append(f"| {k} | {n} | " + " | ".join(cells) + " |")
    return out + [""]


def _by_path_section(doc: Mapping[str, Any], strengths: Sequence[str], intro: str,
                     metric: str = "fidelity") -> list[str]:
    """The paired gain of `metric` by the kind of the source's path (computed from the records,
    so results saved before the summary carried it show it too; empty when no record has it)."""
    from motionq.evaluation.transfer import CURVED_MOTIONS, paired_vs_text, path_kind

    records = doc.get("records") or []
    if not any(r.get("mode") == "text" and r.get(metric) is not None for r in records):
        return []
    by_path = paired_vs_text(records, doc["settings"]["strengths"], group=path_kind, metric=metric)
    by_path = {g: per for g, per in by_path.items() if any(e.get("n") for e in per.values())}
    if metric != "fidelity":
        return [f"{intro}:", ""] + _paired_table("path", by_path, strengths)
    return [f"{intro}: curved ({', '.join(sorted(CURVED_MOTIONS))}: "
            "the text names the class, not the phase, amplitude or turns) or straight (the text alone "
            "reproduces it up to speed and position, which path correlation ignores, so the baseline is at "
            "or near the ceiling of 1); `free` are the free-path sources (turns, an arc, a pause, a speed-up: "
            "the text asks for the nearest class); `-real` marks the non-sprite clips:", ""] \
        + _paired_table("path", by_path, strengths)


def _dmt_section(doc: Mapping[str, Any] | None, report: Path, images_dir: Path,
                 title: str = "## Cost against a DMT-style optimisation baseline",
                 plot: bool = True) -> list[str]:
    out = [title, ""]
    if not doc:
        return out + ["Not run yet: `motionq eval dmt` (or `motionq eval all`).", ""]
    st = doc["settings"]
    mode = st.get("prompt_mode", "none")
    out += [
        f"{st['pairs']} pairs x {st['seeds']} seed(s); {_PROMPT_MODE_TEXT.get(mode, '')} (mode `{mode}`; "
        f"`plain` is that prompt alone); same model, {st['steps']} steps and size for all methods; "
        f"DMT optimises the latent for the first {st['fraction']:.0%} of steps with Adam (lr {st['lr'][0]} -> "
        f"{st['lr'][1]}) on the space-time (SMM pairwise-difference) loss of block {doc.get('block')}; "
        f"budgets = Adam iterations per guided step"
        + ("; `+inv`: source features from its ODE inversion (billed; `+invM`: M Euler passes per step) and "
           "DMT's start latent" if st.get("inversion_budgets") or st.get("recipe_budgets") else "")
        + ("; `+rs`: DMT's restart sampling (every step but the first and the last is undone by re-noising and "
           "taken again)"
           if st.get("recipe_budgets") else "")
        + f". {_machine_line(doc)}.",
        "",
        "| method | fidelity | flow fidelity | motion match | identity kept | leakage | s/clip (median) | x plain |",
        "|---|---|---|---|---|---|---|---|",
    ]
    plain = doc["methods"]["plain"]["seconds"]["median"]
    flows = {m: _flow_fidelity(doc, m) for m in doc["methods"]}
    for m, row in doc["methods"].items():
        sec = row["seconds"]["median"]
        out.append(f"| {m} | {_cell(row['fidelity'])} | {_cell(flows[m])} | {_cell(row['motion_match'])} | "
                   f"{_cell(row['identity_kept'])} | {_cell(row['leakage'])} | {sec:.3f} | {sec / plain:.2f} |")
    c = doc["cost"]
    verdict = ("at equal or better fidelity" if c["reached"]
               else "**no DMT budget reached our fidelity**; ratio of its best-fidelity budget")
    out += ["", f"Cost ratio {c['dmt']} / {c['ours']}: **{c['ratio']}x** ({verdict}); goal >= 10x.", ""]
    out += _near_miss_lines(doc)
    out += _flow_cost_line(doc, flows)
    out += _paired_vs_dmt_lines(doc)
    ours = doc["methods"].get(c["ours"])
    for m, row in doc["methods"].items():
        inv = re.search(r"\+inv(\d*)\+rs$", m)
        if not inv or not ours:
            continue
        passes = int(inv.group(1) or 1) * st["steps"]
        ratio = row["seconds"]["median"] / ours["seconds"]["median"]
        # DMT inverts a source once and keeps the latents: the ratio when that is reused
        rest = [r["seconds"] - r.get("seconds_inverting", 0.0) for r in doc.get("records", []) if r["method"] == m]
        reused = (f"; {float(np.median(rest)) / ours['seconds']['median']:.2f}x without the inversion, which DMT "
                  "computes once per source and reuses" if rest else "")
        out += [f"Against DMT's published recipe at our step count (`{m}`: source inversion in {passes} Euler passes, "
                f"start latent, restart sampling): **{ratio:.2f}x** our time{reused}; fidelity {_cell(row['fidelity'])} "
                f"against our {_cell(ours['fidelity'])}.", ""]
    out += _dmt_iteration_cost(doc)
    png = images_dir / "dmt_cost.png"
    if plot and png.exists():
        out += [f"![cost vs fidelity]({_rel(png, report)})", ""]
    return out


def _near_miss_lines(doc: Mapping[str, Any], margin: float = 0.01) -> list[str]:
    """DMT rows cheaper than the one the ratio names that miss our mean fidelity by less than
    `margin`: with these sample sizes such a miss is noise, and the ratio would be theirs."""
    c, methods = doc["cost"], doc["methods"]
    ours = methods.get(c["ours"])
    chosen = methods.get(c["dmt"])
    if not ours or not chosen or not c.get("reached"):
        return []
    target = ours["fidelity"]["mean"]
    lines = []
    for m, row in methods.items():
        if not m.startswith("dmt") or m == c["dmt"]:
            continue
        f, sec = row["fidelity"]["mean"], row["seconds"]["median"]
        if target - margin < f < target and sec < chosen["seconds"]["median"]:
            lines.append(f"Near miss: {m} reaches {f:.3f} against our {target:.3f} (less than {margin} below) "
                         f"at **{sec / ours['seconds']['median']:.2f}x** our time; with these samples the two "
                         f"are level, so read the ratio above as the cost of clearing our mean, not of "
                         f"matching it.")
    return lines + [""] if lines else []


def paired_vs_dmt(doc: Mapping[str, Any], metric: str) -> dict[str, dict[str, Any]]:
    """Per DMT row: our `metric` minus its, paired on the same (pair, seed), mean with a bootstrap
    CI and clear wins / losses (|diff| > 0.01, positive favours ours). Pairing removes the spread
    between pairs, which makes the unpaired means of two methods look apart or level by chance."""
    ours_name = doc["cost"]["ours"]
    recs = doc.get("records", [])
    ours = {(r["pair"], r["replica"]): r.get(metric) for r in recs if r["method"] == ours_name}
    out: dict[str, dict[str, Any]] = {}
    for m in doc["methods"]:
        if not m.startswith("dmt"):
            continue
        diffs = [float(ours[(r["pair"], r["replica"])]) - float(r[metric]) for r in recs
                 if r["method"] == m and r.get(metric) is not None
                 and ours.get((r["pair"], r["replica"])) is not None]
        if diffs:
            out[m] = paired_gain(diffs)
    return out


def _paired_vs_dmt_lines(doc: Mapping[str, Any]) -> list[str]:
    """The cost comparison with its sampling noise shown: ours minus each DMT row, paired."""
    cols = [(k, paired_vs_dmt(doc, k)) for k in ("fidelity", "flow_fidelity", "identity_kept")]
    rows = list(cols[0][1])
    if not rows:
        return []
    ours_sec = doc["methods"][doc["cost"]["ours"]]["seconds"]["median"]
    out = ["Paired on the same (pair, seed): ours minus each DMT row, mean [95% CI] (ours better / worse, "
           "|diff| > 0.01). An interval that spans 0 means these samples cannot tell the two apart.", "",
           "| DMT row | x our time | fidelity | flow fidelity | identity kept |", "|---|---|---|---|---|"]
    for m in rows:
        cells = [f"{_cell(c.get(m))} ({c[m]['wins']} / {c[m]['losses']})" if m in c else "n/a" for _, c in cols]
        sec = doc["methods"][m]["seconds"]["median"] / ours_sec
        out.append(f"| {m} | {sec:.2f} | " + " | ".join(cells) + " |")
    return out + [""]


def _flow_fidelity(doc: Mapping[str, Any], method: str) -> dict[str, Any] | None:
    """A DMT-run method's flow fidelity: from its summary, else from its records (summaries
    written before the column existed lack it; every record has it)."""
    row = doc["methods"][method]
    if row.get("flow_fidelity"):
        return row["flow_fidelity"]
    recs = [r.get("flow_fidelity") for r in doc.get("records", []) if r["method"] == method]
    return mean_ci(recs).to_dict() if recs else None


def _flow_cost_line(doc: Mapping[str, Any], flows: Mapping[str, Any]) -> list[str]:
    """The cost ratio again with flow fidelity as the yardstick: the cheapest plain-source DMT
    budget whose mean flow fidelity is at least ours."""
    c, methods = doc["cost"], doc["methods"]
    ours = flows.get(c["ours"]) or {}
    if ours.get("mean") is None:
        return []
    budgets = [m for m in methods
               if re.match(r"dmt-(\d+)x[\d.]+$", m) and (flows.get(m) or {}).get("mean") is not None]
    if not budgets:
        return []
    reached = [m for m in budgets if flows[m]["mean"] >= ours["mean"]]
    sec = {m: methods[m]["seconds"]["median"] for m in methods}
    if reached:
        m = min(reached, key=lambda k: sec[k])
        return [f"With flow fidelity as the yardstick: {m} is the cheapest DMT budget at or above our "
                f"{ours['mean']:.2f} ({flows[m]['mean']:.2f}), **{sec[m] / sec[c['ours']]:.2f}x** our time.", ""]
    best = max(budgets, key=lambda k: flows[k]["mean"])
    return [f"With flow fidelity as the yardstick: no DMT budget reaches our {ours['mean']:.2f}; its best, "
            f"{best} ({flows[best]['mean']:.2f}), costs **{sec[best] / sec[c['ours']]:.2f}x** our time.", ""]


def _dmt_iteration_cost(doc: Mapping[str, Any]) -> list[str]:
    """What one Adam iteration costs, measured, and the budget at which DMT would cost 10x ours:
    the arithmetic behind the ratio."""
    st, methods, c = doc["settings"], doc["methods"], doc["cost"]
    per_it, guided = [], []
    for r in doc.get("records", []):
        m = re.match(r"dmt-(\d+)x[\d.]+$", r["method"])  # the plain-source rows: no inversion, no restart
        if m and int(m.group(1)) > 0 and r.get("losses"):
            per_it.append(r["seconds_optimising"] / (int(m.group(1)) * len(r["losses"])))
            guided.append(len(r["losses"]))
    if not per_it or c["ours"] not in methods:
        return []
    it = float(np.median(per_it))
    n_guided = int(np.median(guided))
    plain = methods["plain"]["seconds"]["median"]
    ours = methods[c["ours"]]["seconds"]["median"]
    per_pass = plain / (2 * st["steps"])  # a plain step is a conditional and an unconditional pass
    need = (10 * ours - plain) / (n_guided * it)
    return [f"One Adam iteration costs {it * 1000:.1f} ms, {it / per_pass:.1f}x a plain generation's share per "
            f"forward pass ({per_pass * 1000:.1f} ms; {st['steps']} steps x 2 passes); with {n_guided} guided steps "
            f"DMT would cost 10x ours at about {need:.0f} iterations per guided step (its configuration uses 10).",
            ""]


def write_report(
    results: Mapping[str, Mapping[str, Any] | None],
    report: str | os.PathLike,
    images_dir: str | os.PathLike,
    results_dir: str | os.PathLike = "benchmarks/results",
) -> Path:
    """docs/results.md: tables (means, 95% CIs, n), plots and the commands that made them."""
    report, images_dir = Path(report), Path(images_dir)
    cmds = sorted({doc.get("command") for doc in results.values() if doc and doc.get("command")})
    lines = [
        "# Evaluation results",
        "",
        "<!-- Generated by `motionq eval report` from " + str(results_dir) + "/eval_*.json. Do not edit by hand:",
        "     change motionq/evaluation/plots.py (write_report) and regenerate. -->",
        "",
        "Reproduces the paper's identity-motion trade-offs on the built-in model and measures cost against",
        "baselines. Numbers come from the JSON files next to the commands below; every table gives",
        "means with 95% bootstrap intervals and n.",
        "",
        "## How to reproduce",
        "",
        "```",
        "motionq eval all --model animatic        # everything below (JSON, plots, this file)",
        "motionq eval estimate --model animatic   # time a sample first: prints the expected duration",
        "motionq eval multishot --model animatic --sets 30 --seeds 2 --variants all --out benchmarks/results/eval_multishot.json",
        "motionq eval transfer --model animatic",
        "motionq eval transfer --model animatic --prompt-mode motion --strengths 0,0.3,0.6,1 --seeds 2 "
        "--no-examples --out benchmarks/results/eval_transfer-motion.json",
        "motionq eval transfer --model animatic --prompt-mode motion --strengths 0.3,0.6,1 --seeds 3 --no-real "
        "--bench-seed 1 --no-examples --out benchmarks/results/eval_transfer-motion-heldout.json",
        "motionq eval transfer --model animatic --strengths 0.6,0.7,0.8,0.9,1 --seeds 3 --no-real --bench-seed 1 "
        "--no-examples --out benchmarks/results/eval_transfer-heldout.json",
        "motionq eval dmt --model animatic",
        "motionq eval dmt --model animatic --prompt-mode motion --out benchmarks/results/eval_dmt-motion.json",
        "motionq eval report                      # plots + this file from the JSON files",
        "```",
        "",
    ]
    if cmds:
        lines += ["Commands that produced the results shown:", "", "```"] + cmds + ["```", ""]
    walls = {k: doc.get("wall_seconds") for k, doc in results.items() if doc and doc.get("wall_seconds")}
    if walls:
        parts = ", ".join(f"{k} {v / 60:.1f} min" for k, v in walls.items())
        lines += [f"Wall time of the runs shown: {parts} (total {sum(walls.values()) / 60:.1f} min).", ""]
    lines += _multishot_section(results.get("multishot"), report, images_dir)
    lines += _transfer_section(results.get("transfer"), report, images_dir)
    lines += _transfer_motion_section(results.get("transfer_motion"))
    lines += _transfer_motion_section(results.get("transfer_heldout"), heldout=True)
    lines += _transfer_motion_section(results.get("transfer_heldout_clip"), heldout=True, prompt_mode="none")
    lines += _dmt_section(results.get("dmt"), report, images_dir)
    if results.get("dmt_motion"):
        lines += _dmt_section(results["dmt_motion"], report, images_dir, plot=False,
                              title="## Cost against DMT when the prompt names the motion too")
    lines += [_SETUP_TEXT, _METRIC_TEXT]
    report.parent.mkdir(parents=True, exist_ok=True)
    tmp = report.with_name(report.name + ".part")
    tmp.write_text("\n".join(lines).rstrip() + "\n")
    os.replace(tmp, report)
    return report
