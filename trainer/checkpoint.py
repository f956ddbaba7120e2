"""Checkpoints that survive a kill at any moment.

A checkpoint is a folder ``checkpoints/step-00000500/`` holding the model
(``model.safetensors``), the trainer state (optimizer, scheduler, RNG states,
step, data position) as ``state.safetensors`` + ``state.json``, and a
``COMPLETE`` marker written last. It is assembled in a temporary folder,
every file fsynced, then renamed into place — a rename is atomic, so a folder
with the final name is always whole. ``latest`` (a one-line file, itself
replaced atomically) points at the newest; older ones beyond ``keep_last``
are deleted only after the new one is in place. Resuming takes ``latest`` if
complete, else the newest complete folder.

Tensors go to safetensors and everything else to JSON: nothing is pickled.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from gotr1_core.model.loading import owned_tensor

COMPLETE = "COMPLETE"
LATEST = "latest"


def _flatten(value, prefix: str, tensors: dict[str, torch.Tensor]):
    """JSON-able skeleton of nested dicts/lists/tuples, tensors moved into ``tensors``."""
    if isinstance(value, torch.Tensor):
        key = prefix or "root"
        tensors[key] = value.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(value, dict):
        return {"__dict__": [[_flatten(k, f"{prefix}.k{i}", tensors), _flatten(v, f"{prefix}.{i}", tensors)]
                             for i, (k, v) in enumerate(value.items())]}
    if isinstance(value, (list, tuple)):
        items = [_flatten(v, f"{prefix}.{i}", tensors) for i, v in enumerate(value)]
        return {"__tuple__": items} if isinstance(value, tuple) else items
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store {type(value).__name__} at {prefix!r} in a checkpoint")


def _unflatten(value, tensors: dict[str, torch.Tensor]):
    if isinstance(value, dict):
        if "__tensor__" in value:
            return tensors[value["__tensor__"]]
        if "__tuple__" in value:
            return tuple(_unflatten(v, tensors) for v in value["__tuple__"])
        return {_unflatten(k, tensors): _unflatten(v, tensors) for k, v in value["__dict__"]}
    if isinstance(value, list):
        return [_unflatten(v, tensors) for v in value]
    return value


def rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state()[1].tolist(),
            "numpy_pos": int(np.random.get_state()[2]), "python": random.getstate()}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", np.array(state["numpy"], dtype=np.uint32), state["numpy_pos"], 0, 0.0))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def _fsync(path: Path) -> None:
    fd = os.open(str(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    _fsync(tmp)
    os.replace(tmp, path)
    _fsync(path.parent)


def step_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step-{step:08d}"


def save_checkpoint(run_dir: str | Path, step: int, model_tensors: dict[str, torch.Tensor], state: dict,
                    keep_last: int = 3) -> Path:
    """Write a checkpoint atomically, point ``latest`` at it, and prune old ones."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = step_dir(run_dir, step)
    tmp = root / f".tmp-step-{step:08d}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_file({k: v.detach().cpu().contiguous() for k, v in model_tensors.items()}, str(tmp / "model.safetensors"))
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _flatten({**state, "step": step}, "state", tensors)
    save_file(tensors, str(tmp / "state.safetensors"))
    (tmp / "state.json").write_text(json.dumps(skeleton), encoding="utf-8")
    (tmp / COMPLETE).write_text(str(step), encoding="utf-8")
    for f in tmp.iterdir():
        _fsync(f)
    _fsync(tmp)
    if (final / COMPLETE).exists():
        # The same step again (a run resumed from an older checkpoint): runs are deterministic, so the
        # existing folder already holds this state, and keeping it never leaves a window without it.
        shutil.rmtree(tmp)
    else:
        if final.exists():  # an incomplete leftover under the final name cannot come from us, but be safe
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync(root)
    _write_atomic_text(root / LATEST, final.name + "\n")
    complete = sorted(p for p in root.glob("step-*") if (p / COMPLETE).exists())
    for old in complete[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(".tmp-step-*"):  # leftovers of writers that were killed
        if stale != tmp:
            shutil.rmtree(stale, ignore_errors=True)
    return final


def find_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return None
    pointer = root / LATEST
    if pointer.exists():
        named = root / pointer.read_text(encoding="utf-8").strip()
        if (named / COMPLETE).exists():
            return named
    complete = sorted(p for p in root.glob("step-*") if (p / COMPLETE).exists())
    return complete[-1] if complete else None


def step_checkpoint(run_dir: str | Path, step: int) -> Path:
    """The complete checkpoint of ``step``, or a FileNotFoundError listing the steps the run kept."""
    path = step_dir(run_dir, step)
    kept = sorted(int(p.name.removeprefix("step-")) for p in path.parent.glob("step-*") if (p / COMPLETE).exists())
    if step not in kept:
        raise FileNotFoundError(f"{run_dir} kept no complete checkpoint of step {step}; kept steps: "
                                f"{', '.join(map(str, kept)) or 'none'} (keep more with keep_last=N)")
    return path


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(model tensors, trainer state) of a complete checkpoint folder."""
    if not (path / COMPLETE).exists():
        raise FileNotFoundError(f"{path} is not a complete checkpoint (no {COMPLETE} marker)")
    tensors = _owned(load_file(str(path / "state.safetensors")))
    state = _unflatten(json.loads((path / "state.json").read_text(encoding="utf-8")), tensors)
    return _owned(load_file(str(path / "model.safetensors"))), state


def _owned(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Aligned copies where safetensors left a tensor at its file offset (optimizer state is used as
    loaded, and its kernels must not depend on where the tensor sat in the file)."""
    return {name: owned_tensor(t, None) for name, t in tensors.items()}
