"""Load GoT-R1 / Janus-Pro checkpoints from local folders into transformers' Janus class.

One path for every checkpoint: read the config, build an empty
``JanusForConditionalGeneration`` skeleton (parameters on the meta device),
then read the safetensors files ourselves — checking every name and shape
against the skeleton, so a missing, truncated or mismatched file fails with an
error that names it instead of silently leaving random weights — and assign
the tensors in place. Never ``trust_remote_code``, never pickle.

Generation does not use the understanding path (the SigLIP tower and its
aligner, ~0.3 B parameters at 7B): unless ``understanding=True`` it is not
read at all, and a :class:`NotLoaded` module stands in its place (listed in
``GotModel.extra["not_loaded"]``; calling it says how to load it). Saving such
a model copies those weights from the folder it came from, so an export is
always whole.

A model folder holds ``config.json``, ``model.safetensors`` (or shards with
``model.safetensors.index.json``), the tokenizer files, and optionally
``gotr1.json`` with the prompt template and special-token spellings
(:class:`GenerationSpec`); without it the GoT-R1 defaults apply.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch

from .convert import is_original_config, open_original
from .files import iter_safetensors, load_tokenizer, read_config_json, weight_files
from .spec import CheckpointError, GenerationSpec
from .tokenizer import ChainTokenIds, TokenizerError, check_chain_tokens

UNDERSTANDING = ("model.vision_model", "model.aligner")
"""The understanding path of a Janus model: image-to-text only, never used to generate."""


@dataclass
class GotModel:
    """A loaded checkpoint: the Janus model, its tokenizer and how to prompt it."""

    model: torch.nn.Module
    tokenizer: object
    spec: GenerationSpec
    token_ids: ChainTokenIds
    path: Path | None = None
    extra: dict = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """The compute dtype (quantized layers store their weights in another)."""
        return self.model.get_input_embeddings().weight.dtype

    @property
    def grid_size(self) -> int:
        """Image tokens per side (24 for 384 px Janus-Pro)."""
        return int(self.model.config.vq_config.num_patches)

    @property
    def num_image_tokens(self) -> int:
        return self.grid_size ** 2

    @property
    def image_size(self) -> int:
        """Decoded image side in pixels: each VQ level but the last halves the resolution."""
        return self.grid_size * 2 ** (len(self.model.config.vq_config.channel_multiplier) - 1)


# -- devices ----------------------------------------------------------------------

def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """bf16 (or fp16 where bf16 is unsupported) on GPU, fp32 on CPU, unless asked otherwise."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None or dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    names = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
             "fp16": torch.float16, "float16": torch.float16}
    if dtype not in names:
        raise ValueError(f"unknown dtype {dtype!r}; use one of auto, {', '.join(sorted(names))}")
    return names[dtype]


def pretrained_problem(folder: str | Path, model_types: tuple[str, ...], what: str,
                       tokenizers: tuple[tuple[str, ...], ...] = (), expected: str = "", complete: bool = True
                       ) -> str | None:
    """Why ``folder`` cannot be loaded as ``what`` — a transformers folder of one of ``model_types`` — or None.

    ``tokenizers``: alternative sets of files, one of which must be there whole (none: no tokenizer needed);
    ``expected`` ends the message about a missing config.json (what the folder should hold, where to get it).
    ``complete=False`` reads only config.json, so a run can be planned before the weights are fetched."""
    folder = Path(folder).expanduser()
    config = folder / "config.json"
    if not config.is_file():
        return f"{what} {folder}: no config.json; {expected}".rstrip("; ")
    try:
        model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError) as exc:
        return f"{config}: not readable JSON ({exc})"
    if model_type not in model_types:
        return f"{config}: model_type is {model_type!r}; the {what} must be {' or '.join(map(repr, model_types))}"
    if not complete:
        return None
    if not any(folder.glob("*.safetensors")):
        return f"{what} {folder}: no *.safetensors weights (pickled .pt/.bin files are never loaded)"
    if tokenizers and not any(all((folder / name).is_file() for name in files) for files in tokenizers):
        return f"{what} {folder}: no tokenizer ({', or '.join(' + '.join(files) for files in tokenizers)})"
    return None


def load_pretrained(model_class, folder: Path, dtype, device: torch.device, what: str):
    """A transformers model from a local folder as the pack loads every third-party model (a judge, the quality
    model): safetensors only, no remote code, no download, and every weight present — else a CheckpointError
    naming ``what`` and the folder."""
    try:
        model, info = model_class.from_pretrained(
            str(folder), dtype=resolve_dtype(dtype, device), local_files_only=True, trust_remote_code=False,
            use_safetensors=True, output_loading_info=True)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot load {what} from {folder}: {exc}") from None
    if info.get("missing_keys"):
        raise CheckpointError(f"{folder}: weights missing from {what}: {', '.join(sorted(info['missing_keys'])[:8])}")
    return model


# -- reading weights --------------------------------------------------------------

def _summarise(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


ALIGNMENT = 64  # bytes: what torch's CPU allocator guarantees (a full AVX-512 vector)


def owned_tensor(tensor: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """``tensor`` in ``dtype`` (``None``: as stored) in memory of its own, aligned like any torch tensor.

    safetensors hands back each tensor in a buffer that sits wherever the tensor
    sat in the file (any multiple of its element size), and a converted
    tensor may be a slice of a fused one (q/k/v). CPU kernels pick their code
    path by the alignment of their operands, so the same weights at different
    offsets give outputs that differ in the last bits: a model would then
    depend on how its file was written. Loaded weights are therefore owned,
    aligned tensors — independent of the file and its layout — at the price of
    one copy of a tensor that was not aligned (one tensor at a time, so the
    peak grows by the largest tensor, not by the model).
    """
    if dtype is not None and tensor.is_floating_point() and tensor.dtype != dtype:
        return tensor.to(dtype)  # a new, aligned tensor
    if tensor.data_ptr() % ALIGNMENT or not tensor.is_contiguous() or tensor.untyped_storage().nbytes() != \
            tensor.numel() * tensor.element_size():
        return tensor.clone(memory_format=torch.contiguous_format)
    return tensor


def within(name: str, modules: tuple[str, ...]) -> bool:
    """Whether the parameter or module ``name`` is one of ``modules`` or inside one of them."""
    return any(name == m or name.startswith(m + ".") for m in modules)


def load_weights(model: torch.nn.Module, tensors: Iterator[tuple[str, torch.Tensor, Path]],
                 dtype: torch.dtype | None, skip: tuple[str, ...] = (), quantize: str | None = None) -> None:
    """Assign tensors to a meta-device skeleton, checking names and shapes first.

    Floating tensors are cast to ``dtype``; ``None`` keeps the stored dtypes.
    Tensors under the module names in ``skip`` are neither expected nor kept.
    With ``quantize`` (fp8, int8, int4) each decoder-layer projection is
    replaced by its quantized form as its weight is read, so no full-precision
    copy of those layers is ever held.
    """
    from .quantize import is_quantized_layer, quantized_linear

    expected = {k: v for k, v in model.state_dict().items() if not within(k, skip)}
    tied = set(_tied_keys(model))
    loaded: dict[str, torch.Tensor] = {}
    quantized: set[str] = set()
    unexpected: list[str] = []
    for name, tensor, path in tensors:
        if within(name, skip):
            continue
        if name not in expected:
            unexpected.append(f"{name} ({path.name})")
            continue
        want = tuple(expected[name].shape)
        if tuple(tensor.shape) != want:
            raise CheckpointError(f"{path}: tensor {name} has shape {tuple(tensor.shape)}, the config expects "
                                  f"{want}; the weights do not belong to this config.json")
        module_name, _, kind = name.rpartition(".")
        if quantize and kind == "weight" and is_quantized_layer(module_name):
            parent, _, child = module_name.rpartition(".")
            holder = model.get_submodule(parent)
            setattr(holder, child, quantized_linear(getattr(holder, child), tensor, quantize, dtype or tensor.dtype))
            quantized.add(name)
            continue
        loaded[name] = owned_tensor(tensor, dtype)
    if unexpected:
        raise CheckpointError(f"weights not used by JanusForConditionalGeneration: {_summarise(unexpected)}")
    missing = sorted(set(expected) - set(loaded) - quantized - tied)
    if missing:
        raise CheckpointError(f"weights missing from the checkpoint: {_summarise(missing)}")
    model.load_state_dict(loaded, strict=False, assign=True)
    if tied - set(loaded):
        model.tie_weights()


def _tied_keys(model: torch.nn.Module) -> list[str]:
    if not getattr(model.config, "tie_word_embeddings", False):
        return []
    keys = getattr(model, "_tied_weights_keys", None) or {}
    return list(keys) if isinstance(keys, dict) else list(keys)


def build_skeleton(config) -> torch.nn.Module:
    """The model with parameters on the meta device (buffers real), ready for assignment."""
    from accelerate import init_empty_weights
    from transformers import JanusForConditionalGeneration

    with init_empty_weights(include_buffers=False):
        return JanusForConditionalGeneration(config)


# -- public entry point -----------------------------------------------------------

def janus_config(data: dict, path: Path):
    from transformers import JanusConfig

    model_type = data.get("model_type")
    if model_type != "janus":
        raise CheckpointError(f"{path}: model_type is {model_type!r}, expected 'janus' (a Janus-Pro / GoT-R1 model)")
    try:
        return JanusConfig.from_dict(data)
    except Exception as exc:  # transformers validates fields with its own exception types
        raise CheckpointError(f"{path}: invalid Janus config ({exc})") from None


class NotLoaded(torch.nn.Module):
    """Stands where a part of the model was not loaded; using it says how to load it."""

    def __init__(self, name: str, parameters: int):
        super().__init__()
        self.name, self.parameters_skipped = name, parameters

    def forward(self, *args, **kwargs):
        raise RuntimeError(f"{self.name} was not loaded (generation-only loading skips the understanding path, "
                           f"{self.parameters_skipped:,} parameters): load the model with "
                           "load_model(..., understanding=True) to use it")

    def extra_repr(self) -> str:
        return f"{self.name}: not loaded ({self.parameters_skipped:,} parameters)"


def _leave_out(model: torch.nn.Module, names: tuple[str, ...]) -> dict[str, int]:
    """Put :class:`NotLoaded` where each named (meta-device) module is; returns name -> parameter count."""
    counts = {}
    for name in names:
        parent, _, child = name.rpartition(".")
        holder = model.get_submodule(parent) if parent else model
        module = getattr(holder, child)
        counts[name] = sum(p.numel() for p in module.parameters())
        setattr(holder, child, NotLoaded(name, counts[name]))
    return counts


def _tensor_source(folder: Path, data: dict):
    """(config, tokenizer, tensors(device, wanted)) of a folder, HF or original layout."""
    if is_original_config(data):  # original DeepSeek / GoT-R1 layout: converted while loading
        config, tokenizer, original_tensors = open_original(folder)
        return config, tokenizer, lambda device, wanted: (t for t in original_tensors(device) if wanted(t[0]))
    config = janus_config(data, folder / "config.json")
    files = weight_files(folder)
    return config, load_tokenizer(folder), lambda device, wanted: iter_safetensors(files, device, wanted)


def load_model(path: str | Path, device: str | torch.device | None = "auto",
               dtype: str | torch.dtype | None = "auto", understanding: bool = False,
               quantize: str | None = None) -> GotModel:
    """Load a model folder for generation (eval mode, no gradients).

    ``understanding=True`` also loads the image-understanding path (SigLIP
    tower + aligner), which generation never uses; without it those weights
    are not read and ``extra["not_loaded"]`` lists them. ``quantize`` (fp8,
    int8, int4) stores the decoder layers' projections that way
    (:mod:`.quantize`; ``extra["quantize"]``), computing in ``dtype``.
    """
    from .quantize import check_mode

    check_mode(quantize)
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise CheckpointError(f"model folder not found: {path} (looked for {folder.resolve()}); give the folder that "
                              "holds config.json, the safetensors weights and tokenizer.json")
    target = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, target)
    data = read_config_json(folder)
    spec = GenerationSpec.read(folder)
    config, tokenizer, tensors = _tensor_source(folder, data)
    skip = () if understanding else UNDERSTANDING
    try:
        token_ids = check_chain_tokens(tokenizer, spec.pad_token, spec.image_start_token, where=f"{folder}'s tokenizer")
    except TokenizerError as exc:
        raise CheckpointError(str(exc)) from None
    model = build_skeleton(config)
    load_weights(model, tensors(target, lambda name: not within(name, skip)), torch_dtype, skip, quantize)
    not_loaded = _leave_out(model, skip)
    model.to(device=target, dtype=torch_dtype).eval().requires_grad_(False)
    extra = {"not_loaded": not_loaded} if not_loaded else {}
    if quantize:
        extra["quantize"] = quantize
    return GotModel(model=model, tokenizer=tokenizer, spec=spec, token_ids=token_ids, path=folder, extra=extra)


def _parts_put_back(got: GotModel) -> list[tuple[torch.nn.Module, str, torch.nn.Module]]:
    """Put the modules left out at loading back, rebuilt on the CPU from the folder the model came from;
    returns (holder, attribute, placeholder) to undo it."""
    missing = [(name, module) for name, module in got.model.named_modules() if isinstance(module, NotLoaded)]
    if not missing:
        return []
    if got.path is None:
        raise CheckpointError(f"{', '.join(n for n, _ in missing)} not loaded and no source folder to copy them "
                              "from; load the model with understanding=True to save it")
    names = tuple(name for name, _ in missing)
    config, _, tensors = _tensor_source(got.path, read_config_json(got.path))
    whole = build_skeleton(config)
    state = {n: owned_tensor(t, got.dtype) for n, t, _ in tensors(torch.device("cpu"), lambda n: within(n, names))}
    swaps = []
    for name, placeholder in missing:
        module = whole.get_submodule(name)
        try:
            module.load_state_dict({k[len(name) + 1:]: v for k, v in state.items() if within(k, (name,))},
                                   strict=True, assign=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{got.path}: cannot read {name} back to save the model whole ({exc})") from None
        parent, _, child = name.rpartition(".")
        holder = got.model.get_submodule(parent) if parent else got.model
        swaps.append((holder, child, placeholder))
        setattr(holder, child, module)
    return swaps


def save_model(got: GotModel, folder: str | Path, max_shard_size: str = "4GB") -> Path:
    """Write a model folder in the format :func:`load_model` reads (HF Janus + gotr1.json).

    A model loaded for generation only is written whole: the parts it left out
    are read again from its source folder for the write.
    """
    if got.extra.get("quantize"):
        raise CheckpointError(f"this model was loaded with {got.extra['quantize']} weights; saving keeps full "
                              "precision only: load it without quantization to save it")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    swaps = _parts_put_back(got)
    try:
        got.model.save_pretrained(str(out), max_shard_size=max_shard_size, safe_serialization=True)
    finally:
        for holder, child, placeholder in swaps:
            setattr(holder, child, placeholder)
    got.tokenizer.save_pretrained(str(out))
    got.spec.write(out)
    return out


def convert_checkpoint(src: str | Path, dst: str | Path, dtype: str = "auto", max_shard_size: str = "4GB") -> Path:
    """Write an HF-format folder (sharded safetensors) for an original-format one.

    ``dtype`` "auto" keeps the stored dtype of each tensor.
    """
    source, target = Path(src), Path(dst)
    if target.exists() and any(target.iterdir()):
        raise CheckpointError(f"{target} exists and is not empty; choose a new folder")
    config, tokenizer, tensors = open_original(source, allow_pickle=True)
    torch_dtype = None if dtype == "auto" else resolve_dtype(dtype, torch.device("cpu"))  # auto: as stored
    model = build_skeleton(config)
    load_weights(model, tensors(torch.device("cpu")), torch_dtype)
    spec = GenerationSpec()
    got = GotModel(model=model.eval(), tokenizer=tokenizer, spec=spec,
                   token_ids=check_chain_tokens(tokenizer, spec.pad_token, spec.image_start_token))
    return save_model(got, target, max_shard_size=max_shard_size)
