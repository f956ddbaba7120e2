"""A model folder's files as they are read: its config, weights and tokenizer.

Below the loader (:mod:`.loading`) and the reader of original-layout
checkpoints (:mod:`.convert`), which both read files through it; it imports
neither (only :mod:`.spec`, for the error that names a bad folder).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import torch

from .spec import CheckpointError

WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"


def read_config_json(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.exists():
        raise CheckpointError(f"{folder} has no config.json; point at the folder that holds the model files")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return data


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files of a folder, checked to exist (single file or index + shards)."""
    index = folder / WEIGHTS_INDEX
    if index.exists():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{index}: not a safetensors index with a 'weight_map' ({exc})") from None
        names = sorted({str(name) for name in weight_map.values()})
        outside = [n for n in names if not (folder / n).resolve().is_relative_to(folder.resolve())]
        if outside:  # an index is data from whoever made the folder: it must not reach other files
            raise CheckpointError(f"{index} names shards outside the model folder ({', '.join(outside[:3])}); "
                                  "a shard is a file name inside the folder")
        files = [folder / name for name in names]
        missing = [f.name for f in files if not f.exists()]
        if missing:
            raise CheckpointError(f"{index} lists shards that are missing: {', '.join(missing)}")
        return files
    single = folder / WEIGHTS_FILE
    if single.exists():
        return [single]
    others = sorted(p.name for p in folder.glob("*.safetensors"))
    if others:
        return [folder / name for name in others]
    legacy = sorted(p.name for p in folder.glob("*.bin"))
    hint = (f" Found {', '.join(legacy)}: convert it with `gotr1 convert {folder} OUT`." if legacy else "")
    raise CheckpointError(f"no {WEIGHTS_FILE} (or {WEIGHTS_INDEX}) in {folder}.{hint}")


def iter_safetensors(files: list[Path], device: torch.device,
                     wanted=lambda name: True) -> Iterator[tuple[str, torch.Tensor, Path]]:
    """Yield ``(name, tensor, file)`` for the names ``wanted`` accepts (others are not read); a truncated or
    corrupt file raises naming it."""
    from safetensors import safe_open

    where = "cpu" if torch.device(device).type == "cpu" else str(device)  # safetensors refuses "cpu:0"
    for path in files:
        try:
            with safe_open(str(path), framework="pt", device=where) as handle:
                for name in handle.keys():
                    if wanted(name):
                        yield name, handle.get_tensor(name), path
        except CheckpointError:
            raise
        except Exception as exc:  # safetensors raises its own error types for damaged files
            raise CheckpointError(f"{path}: cannot read safetensors file ({exc}); it may be truncated or "
                                  "damaged — download or export it again") from None


def load_tokenizer(folder: Path):
    """The folder's fast tokenizer (``tokenizer.json``), read as it is.

    Loaded through transformers' tokenizers backend directly rather than
    ``AutoTokenizer``: the auto path reads ``config.json`` to pick a class (an
    original-format ``multi_modality`` config is not one transformers knows)
    and second-guesses the ``LlamaTokenizerFast`` class Janus checkpoints name
    for a byte-level ``tokenizer.json`` — both only to end up here, with a
    warning on every load. BOS is handled at encoding time
    (:func:`~gotr1_core.model.tokenizer.encode_prompt_ids`).
    """
    from transformers import PreTrainedTokenizerFast

    if not (folder / "tokenizer.json").exists():
        raise CheckpointError(f"{folder} has no tokenizer.json; GoT-R1 / Janus-Pro folders ship one with "
                              "tokenizer_config.json (copy both from the checkpoint you started from)")
    try:
        return PreTrainedTokenizerFast.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:  # missing or unreadable tokenizer files
        raise CheckpointError(f"cannot load the tokenizer from {folder} ({exc}); the folder needs "
                              "tokenizer.json and tokenizer_config.json") from None
