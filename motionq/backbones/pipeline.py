"""`PipelineBackbone`: the `motionq.api.Backbone` over any diffusers `WanPipeline`, and
`load_pipeline_folder` to load one from a local folder in diffusers layout, offline.

A model folder may carry a `motionq.json` next to `model_index.json` with defaults for this
backbone (all optional): {"name": ..., "native_size": [H, W], "max_sequence_length": N,
"default_frames": F}. Options passed to `load_pipeline_folder` win over it.
"""

from __future__ import annotations

import os

# Never reach for the hub: set before diffusers / huggingface_hub read their constants.
os.environ["HF_HUB_OFFLINE"] = "1"

import contextlib
import hashlib
import importlib
import json
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Mapping

import numpy as np
import torch

from motionq.api import VARIANTS, Frames, GroupRequest, Progress, ProgressFn, ShotRequest
from motionq.backbones import BackboneError
from motionq.paths import cache_dir  # part of this module's API (__all__)

_DTYPES = {
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
    "fp16": torch.float16, "float16": torch.float16, "half": torch.float16,
    "fp32": torch.float32, "float32": torch.float32, "float": torch.float32,
}

#: How to get Wan 2.1 T2V 1.3B in diffusers layout (on a machine with hub access).
WAN21_DOWNLOAD = "huggingface-cli download Wan-AI/Wan2.1-T2V-1.3B-Diffusers --local-dir {dir}"


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """"bf16" | "fp16" | "fp32" | torch.dtype | None (fp32 on CPU, bf16 on an accelerator)."""
    if dtype is None:
        return torch.float32 if device.type == "cpu" else torch.bfloat16
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return _DTYPES[str(dtype).lower()]
    except KeyError:
        raise BackboneError(f"unknown dtype {dtype!r} (use one of bf16, fp16, fp32)") from None


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ---------------------------------------------------------------------------------------------
# Folder checks and fingerprint
# ---------------------------------------------------------------------------------------------

_PICKLED = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def _component_missing(folder: Path, name: str) -> list[str]:
    """Missing files of one component folder (empty list when complete)."""
    comp = folder / name
    if not comp.is_dir():
        return [f"{name}/ (the whole folder)"]
    if name.startswith("scheduler") or (comp / "scheduler_config.json").exists():
        return [] if (comp / "scheduler_config.json").exists() else [f"{name}/scheduler_config.json"]
    if name.startswith("tokenizer"):
        known = ("tokenizer.json", "spiece.model", "tokenizer_config.json", "vocab.json")
        return [] if any((comp / f).exists() for f in known) else [f"{name}/tokenizer.json (or spiece.model)"]
    missing = []
    if not (comp / "config.json").exists():
        missing.append(f"{name}/config.json")
    weights = [p for p in comp.iterdir() if p.suffix == ".safetensors"]
    indexes = [p for p in comp.iterdir() if p.name.endswith(".safetensors.index.json")]
    if not weights and not indexes and any(p.suffix in _PICKLED for p in comp.iterdir()):
        # Pickled weights run code when loaded: refuse them rather than fall back to torch.load.
        return [f"{name}/ weights as *.safetensors (only pickled {sorted({p.suffix for p in comp.iterdir() if p.suffix in _PICKLED})} "
                "found; convert them, motionq does not load pickles)"]
    for index in indexes:
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (OSError, ValueError, KeyError) as exc:
            missing.append(f"{name}/{index.name} (unreadable: {exc})")
            continue
        missing += [f"{name}/{s}" for s in shards if not (comp / s).exists()]
    if not weights and not indexes:
        missing.append(f"{name}/ weights (*.safetensors)")
    return missing


def check_folder(path: str | os.PathLike, hint: str | None = None) -> dict[str, Any]:
    """Check that a diffusers-layout folder is complete; return its model_index.json.

    Raises `BackboneError` listing every missing file and how to get the model (`hint`, or a
    generic text naming the Wan 2.1 download).
    """
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise BackboneError(f"model folder {folder} does not exist")
    index_file = folder / "model_index.json"
    if not index_file.exists():
        raise BackboneError(
            f"{folder} is not a model folder in diffusers layout: model_index.json is missing. "
            + _hint(folder, hint)
        )
    try:
        index = json.loads(index_file.read_text())
    except ValueError as exc:
        raise BackboneError(f"{index_file}: not valid JSON ({exc})") from None
    missing: list[str] = []
    for name, spec in index.items():
        if name.startswith("_") or not isinstance(spec, list) or len(spec) != 2 or spec[0] is None:
            continue
        missing += _component_missing(folder, name)
    if missing:
        raise BackboneError(
            f"model folder {folder} is incomplete; missing: {', '.join(missing)}. "
            + _hint(folder, hint)
        )
    return index


def _hint(folder: Path, hint: str | None) -> str:
    if hint:
        return hint
    return ("Copy the complete model folder (diffusers layout) here; for Wan 2.1 T2V 1.3B, get it "
            f"on a machine with hub access with `{WAN21_DOWNLOAD.format(dir=folder)}`.")


def fingerprint_modules(pipe) -> str:
    """sha256 over an in-memory pipeline's configs and weights (when it has no folder)."""
    h = hashlib.sha256()
    for name, comp in sorted(pipe.components.items()):
        if comp is None:
            continue
        h.update(name.encode())
        cfg = getattr(comp, "config", None)
        if cfg is not None:
            data = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
            h.update(json.dumps(data, sort_keys=True, default=str).encode())
        if isinstance(comp, torch.nn.Module):
            for k, v in sorted(comp.state_dict().items()):
                h.update(k.encode())
                h.update(v.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
        elif hasattr(comp, "get_vocab"):
            h.update(json.dumps(sorted(comp.get_vocab().items())).encode())
    return h.hexdigest()[:16]  # same length as folder_fingerprint


# ---------------------------------------------------------------------------------------------
# The backbone
# ---------------------------------------------------------------------------------------------

VariantRenderer = Callable[["PipelineBackbone", GroupRequest, ProgressFn | None], Mapping[str, Frames]]


class PipelineBackbone:
    """A `motionq.api.Backbone` over a diffusers WanPipeline.

    `render_group` renders each shot independently for the "vanilla" variant (its own seed,
    motion transfer when `shot.motion` is set). Other consistency variants are looked up in
    `variant_renderers`, which `motionq.methods.multishot` fills (imported on first use).

    `multishot_options` (a `motionq.methods.multishot.MultiShotOptions`, None = defaults) and
    `anchor_cache` (the in-memory anchor renders, filled on use) belong to the multi-shot method.
    `transfer_blocks`: the blocks motion transfer injects Q into when a call names none (None =
    the method's default, `methods.transfer.default_blocks`); set per model by its loader.
    """

    #: Consistency variant name -> renderer; the hook point for multi-shot methods.
    variant_renderers: ClassVar[dict[str, VariantRenderer]] = {}

    def __init__(
        self,
        pipe,
        *,
        name: str = "pipeline",
        path: str | os.PathLike | None = None,
        native_size: tuple[int, int] = (480, 832),
        max_sequence_length: int = 512,
        default_frames: int = 81,
    ) -> None:
        self.pipe = pipe
        self.name = name
        self.path = Path(path).expanduser().resolve() if path is not None else None
        self._native_size = (int(native_size[0]), int(native_size[1]))
        self.max_sequence_length = int(max_sequence_length)
        self.default_frames = int(default_frames)
        self._fingerprint: str | None = None
        self.multishot_options = None
        self.anchor_cache = None
        self.transfer_blocks: tuple[int, ...] | None = None
        pipe.set_progress_bar_config(disable=True)

    # -- identity ---------------------------------------------------------------------------
    def fingerprint(self) -> str:
        """Hash of the model's files: `motionq.backbones.fingerprint.folder_fingerprint` of its
        folder, the same key `motionq.backbones.model_fingerprint` gives without loading (so
        render caches agree); an in-memory pipeline hashes its weights and configs instead.
        Loader options (max_sequence_length) are not part of it: they are fixed per model by
        its folder's motionq.json or its loader."""
        if self._fingerprint is None:
            if self.path is not None:
                from motionq.backbones.fingerprint import folder_fingerprint

                self._fingerprint = folder_fingerprint(self.path)
            else:
                self._fingerprint = fingerprint_modules(self.pipe)
        return self._fingerprint

    def native_size(self) -> tuple[int, int]:
        return self._native_size

    def runtime(self) -> dict[str, str]:
        """Where and with what this backbone renders: device, dtype and library versions.
        Not part of any cache key (a project moved to another machine keeps its finished shots);
        recorded beside them so a user can tell where a shot was made."""
        from importlib.metadata import PackageNotFoundError, version

        from motionq.api import package_version

        def ver(dist: str) -> str:
            try:
                return version(dist)
            except PackageNotFoundError:
                return "unknown"

        transformer = getattr(self.pipe, "transformer", None)
        dtype = getattr(transformer, "dtype", None) if transformer is not None else None
        return {"device": str(self.pipe.device), "dtype": str(dtype).replace("torch.", "") if dtype else "unknown",
                "torch": ver("torch"), "diffusers": ver("diffusers"), "motionq": package_version()}

    @property
    def num_layers(self) -> int:
        return len(self.pipe.transformer.blocks)

    def valid_num_frames(self, n: int) -> int:
        """The smallest frame count >= n this model can generate (1 + k * VAE temporal factor)."""
        ft = int(getattr(self.pipe, "vae_scale_factor_temporal", 1) or 1)
        n = max(1, int(n))
        return n if (n - 1) % ft == 0 else ((n - 1) // ft + 1) * ft + 1

    # -- rendering --------------------------------------------------------------------------
    def render_group(self, request: GroupRequest, progress: ProgressFn | None = None) -> dict[str, Frames]:
        """Render every shot; returns uint8 (F, H, W, 3) frames by shot id."""
        variant = request.consistency.variant
        if variant not in VARIANTS:
            raise ValueError(f"unknown consistency variant {variant!r} (known: {', '.join(VARIANTS)})")
        if variant != "vanilla":
            renderer = self.variant_renderers.get(variant)
            if renderer is None:
                # the multi-shot method registers every consistency variant when imported
                import motionq.methods.multishot  # noqa: F401

                renderer = self.variant_renderers.get(variant)
            if renderer is None:
                raise NotImplementedError(
                    f"consistency variant {variant!r} is not implemented yet for {self.name}: "
                    "only 'vanilla' (independent shots) renders for now"
                )
            return dict(renderer(self, request, progress))
        return {shot.shot_id: self.render_shot(shot, progress=progress) for shot in request.shots}

    def render_shot(
        self,
        shot: ShotRequest,
        *,
        height: int | None = None,
        width: int | None = None,
        progress: ProgressFn | None = None,
    ) -> Frames:
        """One shot on its own: seeded by `shot.seed`, with motion transfer if `shot.motion`.

        A frame count the VAE cannot produce is rendered at the next valid count and trimmed,
        so the result has exactly `shot.num_frames` frames.
        """
        from motionq.methods.transfer import generate, transfer

        h, w = height or self._native_size[0], width or self._native_size[1]
        n = self.valid_num_frames(shot.num_frames)

        def report(phase: str, done: int, total: int) -> None:
            if progress:
                progress(Progress(shot_ids=(shot.shot_id,), step=done, total=total, phase=phase))

        common = dict(num_frames=n, height=h, width=w, steps=shot.steps, guidance=shot.guidance,
                      seed=shot.seed, negative_prompt=shot.negative_prompt, progress=report,
                      max_sequence_length=self.max_sequence_length)
        if shot.motion is not None:
            frames = transfer(self.pipe, shot.motion.clip, shot.prompt, strength=shot.motion.strength,
                              blocks=self.transfer_blocks, **common)
        else:
            frames = generate(self.pipe, shot.prompt, **common)
        return frames[: shot.num_frames]

    def generate(self, prompt: str, **kwargs) -> np.ndarray:
        """Plain generation with this backbone's defaults (see `methods.transfer.generate`);
        a frame count the VAE cannot produce is rendered at the next valid one and trimmed."""
        from motionq.methods.transfer import generate

        kw = self._defaults(kwargs)
        return self._trim(generate(self.pipe, prompt, **kw), kwargs, kw)

    def transfer(self, clip, prompt: str, **kwargs) -> np.ndarray:
        """Motion transfer with this backbone's defaults (see `methods.transfer.transfer`)."""
        from motionq.methods.transfer import transfer

        kw = self._defaults(kwargs)
        if kw.get("blocks") is None:
            kw["blocks"] = self.transfer_blocks
        return self._trim(transfer(self.pipe, clip, prompt, **kw), kwargs, kw)

    @staticmethod
    def _trim(out, asked: dict, used: dict):
        # a frame count the VAE can't make was rounded up: give back exactly what was asked
        n = asked.get("num_frames")
        if n is not None and n != used["num_frames"] and used.get("output_type", "np") == "np":
            return out[:n]
        return out

    def _defaults(self, kwargs: dict) -> dict:
        # None means "the backbone's default" (the CLI passes unset options as None)
        out = {k: v for k, v in kwargs.items()
               if not (v is None and k in ("height", "width", "num_frames", "max_sequence_length"))}
        out.setdefault("height", self._native_size[0])
        out.setdefault("width", self._native_size[1])
        out.setdefault("num_frames", self.default_frames)
        out.setdefault("max_sequence_length", self.max_sequence_length)
        if out.get("num_frames") is not None:
            out["num_frames"] = self.valid_num_frames(out["num_frames"])
        return out

    def __repr__(self) -> str:
        where = f" at {self.path}" if self.path else ""
        return f"PipelineBackbone({self.name!r}{where}, native_size={self._native_size})"


@contextlib.contextmanager
def _quiet_loading() -> Iterator[None]:
    """Hide diffusers'/transformers' loading progress bars (they would break a TUI or CLI)."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    d_on, t_on = dlog.is_progress_bar_enabled(), tlog.is_progress_bar_enabled()
    level = dlog.get_verbosity()
    dlog.disable_progress_bar()
    tlog.disable_progress_bar()
    # diffusers warns that a VAE which is not AutoencoderKLWan was "expected" (our codec is one,
    # by design); the warning would tell a user nothing they can act on.
    dlog.set_verbosity_error()
    try:
        yield
    finally:
        dlog.set_verbosity(level)
        if d_on:
            dlog.enable_progress_bar()
        if t_on:
            tlog.enable_progress_bar()


def read_sidecar(folder: Path) -> dict[str, Any]:
    """The optional motionq.json of a model folder ({} when absent)."""
    f = folder / "motionq.json"
    if not f.exists():
        return {}
    try:
        return json.loads(f.read_text())
    except ValueError as exc:
        raise BackboneError(f"{f}: not valid JSON ({exc})") from None


def load_pipeline_folder(
    path: str | os.PathLike,
    dtype: str | torch.dtype | None = None,
    device: str | torch.device | None = None,
    offload: bool = False,
    vae_tiling: bool = False,
    *,
    name: str | None = None,
    native_size: tuple[int, int] | None = None,
    max_sequence_length: int | None = None,
    default_frames: int | None = None,
    hint: str | None = None,
) -> PipelineBackbone:
    """Load a WanPipeline from a local diffusers-layout folder, offline, as a backbone.

    dtype: "bf16" | "fp16" | "fp32" | torch.dtype (default fp32 on CPU, bf16 on GPU); the VAE
        stays fp32 (Wan's VAE is run in fp32 in the reference code).
    device: where to run (default cuda if available); ignored with `offload`, which calls
        `enable_model_cpu_offload()` (components move to the GPU only while they run).
    vae_tiling: decode in spatial tiles (less memory at large sizes).
    max_sequence_length: text tokens (Wan: 512; small models 16-32).
    hint: how to get the model, added to the error when the folder is incomplete.
    Raises `BackboneError` naming what is missing when the folder is incomplete.
    """
    folder = Path(path).expanduser()
    index = check_folder(folder, hint)
    if index.get("_class_name") not in (None, "WanPipeline"):
        raise BackboneError(f"{folder}: a {index.get('_class_name')} folder; motionq runs WanPipeline models")
    side = read_sidecar(folder)
    dev = torch.device(device) if device is not None else default_device()
    torch_dtype = resolve_dtype(dtype, dev)
    from diffusers import WanPipeline

    # Components whose class lives in motionq (the built-in model's codec) load once their
    # module is imported; diffusers never imports a module a folder names. Only our own package
    # is imported this way: code from anywhere else is not run (no trust_remote_code).
    for spec in index.values():
        if isinstance(spec, list) and spec and isinstance(spec[0], str) and spec[0].startswith("motionq."):
            try:
                importlib.import_module(spec[0])
            except ImportError as exc:
                raise BackboneError(f"{folder}: component module {spec[0]} is not in this install ({exc})") from None
    try:
        with _quiet_loading():
            # VAE in fp32 whatever the rest (as Wan's reference code runs it)
            pipe = WanPipeline.from_pretrained(
                str(folder), local_files_only=True, use_safetensors=True,
                dtype={"default": torch_dtype, "vae": torch.float32},
            )
    except (OSError, ValueError, EnvironmentError) as exc:
        raise BackboneError(f"could not load {folder}: {exc}") from exc
    if offload:
        if dev.type == "cpu":
            raise BackboneError("offload needs an accelerator (CUDA); none is available here")
        pipe.enable_model_cpu_offload(device=dev)
    else:
        pipe.to(dev)
    if vae_tiling:
        if not hasattr(pipe.vae, "enable_tiling"):
            raise BackboneError(f"the VAE of {folder} does not support tiling")
        pipe.vae.enable_tiling()
    return PipelineBackbone(
        pipe,
        name=name or side.get("name") or folder.name,
        path=folder,
        native_size=tuple(native_size or side.get("native_size") or (480, 832)),
        max_sequence_length=max_sequence_length or side.get("max_sequence_length") or 512,
        default_frames=default_frames or side.get("default_frames") or 81,
    )


__all__ = [
    "PipelineBackbone",
    "check_folder",
    "fingerprint_modules",
    "load_pipeline_folder",
    "resolve_dtype",
    "cache_dir",
]
