"""Every ComfyUI service the nodes use, in one place.

Inside ComfyUI these call the real modules (``comfy.utils.ProgressBar``,
``comfy.model_management``, ``folder_paths``). Without ComfyUI (tests, the CLI)
they fall back to plain equivalents, so each node can be called as ComfyUI
would call it and checked without a server.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable

import torch

try:  # pragma: no cover - exercised only inside ComfyUI
    import comfy.model_management as _mm
    import comfy.utils as _comfy_utils
    import folder_paths as _folder_paths

    IN_COMFYUI = True
except ImportError:
    _mm = _comfy_utils = _folder_paths = None
    IN_COMFYUI = False

MODEL_FOLDER = "gotr1"
"""Models live in ``ComfyUI/models/gotr1/<name>/``."""


class InterruptedByUser(Exception):
    """Raised by :func:`check_interrupted` outside ComfyUI after :func:`request_interrupt`."""


_interrupt = threading.Event()


def request_interrupt(flag: bool = True) -> None:
    """Outside ComfyUI: make the next :func:`check_interrupted` raise (the cancel button)."""
    if flag:
        _interrupt.set()
    else:
        _interrupt.clear()


def check_interrupted() -> None:
    """Raise if the user pressed cancel; call between steps of long work."""
    if IN_COMFYUI:
        _mm.throw_exception_if_processing_interrupted()
    elif _interrupt.is_set():
        _interrupt.clear()
        raise InterruptedByUser("processing interrupted")


class _PlainProgress:
    def __init__(self, total: int):
        self.total = total
        self.current = 0

    def update(self, value: int) -> None:
        self.current = min(self.current + value, self.total)

    def update_absolute(self, value: int, total: int | None = None, preview=None) -> None:
        if total is not None:
            self.total = total
        self.current = min(value, self.total)


def progress_bar(total: int):
    """A progress bar with ``update(n)`` / ``update_absolute(v)``: ComfyUI's when available."""
    if IN_COMFYUI:
        return _comfy_utils.ProgressBar(total)
    return _PlainProgress(total)


def progress_text(text: str) -> None:
    """Show ``text`` under the running node (ComfyUI's progress-text channel); nothing where there is none."""
    if not IN_COMFYUI:
        return
    try:  # pragma: no cover - exercised only inside ComfyUI
        from comfy_execution.utils import get_executing_context
        from server import PromptServer

        context = get_executing_context()
        if context is not None and hasattr(PromptServer.instance, "send_progress_text"):
            PromptServer.instance.send_progress_text(text, context.node_id)
    except (ImportError, AttributeError):  # an older server without the channel
        pass


def torch_device() -> torch.device:
    """The device ComfyUI computes on (its ``--cpu`` etc. honoured), else CUDA if present."""
    if IN_COMFYUI:
        return _mm.get_torch_device()
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def offload_device() -> torch.device:
    """Where idle models wait."""
    if IN_COMFYUI:
        return _mm.unet_offload_device()
    return torch.device("cpu")


def free_memory(num_bytes: int, device: torch.device) -> None:
    """Ask ComfyUI to unload other models until ``num_bytes`` are free on ``device``."""
    if IN_COMFYUI:
        _mm.free_memory(num_bytes, device)
    elif device.type == "cuda":
        torch.cuda.empty_cache()


def free_bytes(device: torch.device) -> int | None:
    """Memory free on ``device`` as ComfyUI counts it (its own cache included); outside ComfyUI the device's."""
    if IN_COMFYUI:
        return int(_mm.get_free_memory(device))
    from gotr1_core.fitting import free_memory_bytes

    return free_memory_bytes(device)


def generation_need(got, device: torch.device, prompt_tokens: int, config, chain_given: bool) -> int:
    """The memory the plan says ``config``'s whole batch needs on ``device`` beside the model's weights."""
    from gotr1_core.fitting import plan_options
    from gotr1_core.memory import plan_memory

    options = {**plan_options(got, config, chain_given, prompt_tokens), "device": device.type}
    plan = plan_memory(got.model.config, config.num_samples, **options)
    return plan.peak - plan.weights


class GoTR1Weights(torch.nn.Module):
    """The module ComfyUI's ModelPatcher manages: it holds the real model as a child.

    The patcher writes ``model.device`` and its bookkeeping attributes on the
    module it gets; a transformers model's ``device`` is a read-only property,
    so it gets this plain container, whose parameters are the model's own.
    """

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.inner = module


class ManagedModel:
    """A model that ComfyUI may offload between runs (its ModelPatcher), or a plain holder.

    Call :meth:`load` before computing: inside ComfyUI it asks model
    management to make room and move the model to the compute device.
    """

    def __init__(self, module: torch.nn.Module, load_device: torch.device, offload_device: torch.device):
        self.module = module
        self.load_device = load_device
        self.offload_device = offload_device
        self.patcher = None
        if IN_COMFYUI:  # pragma: no cover - exercised only inside ComfyUI
            import comfy.model_patcher

            self.patcher = comfy.model_patcher.ModelPatcher(GoTR1Weights(module), load_device=load_device,
                                                            offload_device=offload_device)

    def load(self, working_bytes: int = 0) -> torch.nn.Module:
        """Put the model on its device with ``working_bytes`` free beside it for the run (its key/value cache,
        activations): inside ComfyUI one ``load_models_gpu`` call, which unloads other models for both
        and never this one."""
        if self.patcher is not None:  # pragma: no cover
            # Whole model on the device: our modules cannot run with some weights left on the offload
            # device (ComfyUI's partial loading relies on its own casting layers).
            _mm.load_models_gpu([self.patcher], memory_required=working_bytes, force_full_load=True)
            if any(p.device.type != self.load_device.type for p in self.module.parameters()):
                self.module.to(self.load_device)  # --novram loads partially even when asked for all
        else:
            self.module.to(self.load_device)
            if working_bytes:
                free_memory(working_bytes, self.load_device)
        return self.module

    def offload(self) -> None:
        self.module.to(self.offload_device)


def make_room_for(folder: Path, device: torch.device) -> None:
    """Free memory on ``device`` for the safetensors weights in ``folder`` before loading them."""
    free_memory(sum(p.stat().st_size for p in Path(folder).glob("*.safetensors")), device)


def folder_fingerprint(folder) -> str:
    """Names, sizes and modification times of a model folder's files: changes when its weights do.

    Loader nodes return it from ``IS_CHANGED``, so ComfyUI keeps a loaded model
    cached until a new checkpoint is written over its folder.
    """
    entries = sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in Path(folder).iterdir() if f.is_file())
    return repr(entries)


def loader_is_changed(resolve: Callable[[str], Path], name: str):
    """A loader node's ``IS_CHANGED``: the fingerprint of the folder ``resolve(name)``.

    A name that does not resolve (gone, outside the model folders) gives NaN,
    which never equals itself: ComfyUI runs the node, and its load explains
    what is wrong.
    """
    try:
        return folder_fingerprint(resolve(name))
    except (OSError, ValueError):
        return float("nan")


def temp_image(image: torch.Tensor) -> dict | None:
    """Save one ``IMAGE`` (``[H, W, 3]`` in 0..1) as a PNG in ComfyUI's temp folder for the browser to show;
    returns the ``/view`` address parts (filename, subfolder, type), or ``None`` outside ComfyUI."""
    if not IN_COMFYUI:
        return None
    import uuid

    from gotr1_core.images import to_pil

    folder = Path(_folder_paths.get_temp_directory())
    folder.mkdir(parents=True, exist_ok=True)
    name = f"gotr1_plan_{uuid.uuid4().hex[:12]}.png"
    to_pil(image).save(folder / name, compress_level=1)
    return {"filename": name, "subfolder": "", "type": "temp"}


def _default_models_dir() -> Path:
    return Path(os.environ.get("GOTR1_MODELS_DIR", Path.home() / ".cache" / "gotr1" / "models"))


def register_model_folder() -> None:
    """Register ``models/gotr1`` with ComfyUI so users drop checkpoints there."""
    if not IN_COMFYUI:
        return
    path = os.path.join(_folder_paths.models_dir, MODEL_FOLDER)
    if MODEL_FOLDER in _folder_paths.folder_names_and_paths:
        _folder_paths.add_model_folder_path(MODEL_FOLDER, path)
    else:
        _folder_paths.folder_names_and_paths[MODEL_FOLDER] = ([path], set())


def model_roots() -> list[Path]:
    """Directories searched for model folders (ComfyUI's list, or ``$GOTR1_MODELS_DIR``)."""
    if IN_COMFYUI:
        return [Path(p) for p in _folder_paths.get_folder_paths(MODEL_FOLDER)]
    return [_default_models_dir()]


def list_model_dirs(subfolder: str = "") -> list[str]:
    """Names of model folders (those holding a ``config.json``) under the model roots.

    With ``subfolder`` (e.g. "judges") the names carry it: "judges/<name>".
    """
    names = set()
    for root in model_roots():
        base = root / subfolder if subfolder else root
        if base.is_dir():
            names.update(f"{subfolder}/{p.parent.name}" if subfolder else p.parent.name
                         for p in base.glob("*/config.json"))
    return sorted(names)


def resolve_model_dir(name: str) -> Path:
    """The model folder called ``name``; only plain names inside the model roots.

    Names come from workflow JSON files people share, so ``..``, absolute paths
    and anything that resolves outside a root are rejected.
    """
    if not name or not isinstance(name, str):
        raise ValueError("no model selected: pick a model from the list")
    if Path(name).is_absolute() or any(part in ("..", "") for part in Path(name).parts) or "\\" in name:
        raise ValueError(f"model name {name!r} is not a plain folder name inside models/{MODEL_FOLDER}/")
    for root in model_roots():
        candidate = (root / name).resolve()
        if candidate.is_dir() and candidate.is_relative_to(root.resolve()):
            return candidate
    roots = ", ".join(str(r) for r in model_roots())
    raise FileNotFoundError(f"model {name!r} not found in {roots}; put the model folder there and refresh")
