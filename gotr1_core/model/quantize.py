"""Quantized storage for the language model's linear layers: fp8, int8 (weight-only) and int4 (NF4).

The decoder layers' projections hold ~93 % of a Janus-Pro model's weights,
and reading them is what a decoding step costs, so they are what a smaller
weights mode stores smaller; embeddings, heads, norms and the VQ model stay
in the compute dtype. Layers are quantized one tensor at a time while the
checkpoint is read (:func:`quantized_linear`), so the full-precision model
never exists in memory.

* ``fp8`` / ``int8``: :class:`ScaledLinear` — one byte per weight
  (``float8_e4m3fn`` or ``int8``) and one float32 scale per output row
  (absmax). The product runs in the compute dtype on the layer's weight cast
  at use (one layer's copy at a time, as ComfyUI runs fp8 diffusion weights),
  with the scale applied to the output. Activations are never quantized.
* ``int4``: bitsandbytes' NF4 (``Linear4bit``): half a byte per weight, one
  absmax per 64 weights (itself quantized, "double quantization"), and
  bitsandbytes' 4-bit kernels on CPU and CUDA.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F

from .spec import QUANTIZED_MODES

WEIGHT_MODES = ("auto", "bf16", "fp16", "fp32", *QUANTIZED_MODES)
"""How a model's weights are stored: a compute dtype (``auto``: bf16 on a GPU, fp32 on the CPU) or a quantized
storage of the decoder layers' projections (computed in the ``auto`` dtype)."""
LANGUAGE_LAYERS = "model.language_model.layers."
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
NF4_BLOCK = 64          # weights per absmax (bitsandbytes' default for NF4)
NF4_NESTED_BLOCK = 256  # absmax values per float32 scale of the double quantization
_STORAGE = {"fp8": torch.float8_e4m3fn, "int8": torch.int8}
_LARGEST = {"fp8": 448.0, "int8": 127.0}  # largest finite e4m3 value; symmetric int8 range


def is_quantized_layer(module_name: str) -> bool:
    """Whether a weights mode stores this module (a decoder layer's projection) quantized."""
    return module_name.startswith(LANGUAGE_LAYERS) and module_name.rsplit(".", 1)[-1] in PROJECTIONS


def split_weights_mode(mode: str) -> tuple[str, str | None]:
    """``(dtype, quantize)`` for :func:`~gotr1_core.model.loading.load_model` from a weights mode."""
    if mode not in WEIGHT_MODES:
        raise ValueError(f"unknown weights mode {mode!r}; use one of {', '.join(WEIGHT_MODES)}")
    return ("auto", mode) if mode in QUANTIZED_MODES else (mode, None)


def check_mode(quantize: str | None) -> str | None:
    if quantize not in (None, *QUANTIZED_MODES):
        raise ValueError(f"unknown quantization {quantize!r}; use one of {', '.join(QUANTIZED_MODES)} (or none)")
    return quantize


class ScaledLinear(torch.nn.Module):
    """``y = (x @ q.T) * scale + bias`` with ``q`` stored in 8 bits (int8 or float8 e4m3) and a float32 scale per
    output row.

    Casting the model (``.to(dtype)``, ``.float()``) keeps the 8-bit storage:
    a cast would silently give back the memory the mode saves.
    """

    def __init__(self, weight: torch.Tensor, scale: torch.Tensor, bias: torch.nn.Parameter | None):
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.weight = torch.nn.Parameter(weight, requires_grad=False)
        self.register_buffer("scale", scale)
        self.bias = bias

    @classmethod
    def quantize(cls, weight: torch.Tensor, bias: torch.nn.Parameter | None, mode: str) -> "ScaledLinear":
        full = weight.float()
        scale = (full.abs().amax(dim=1) / _LARGEST[mode]).clamp(min=torch.finfo(torch.float32).tiny)
        scaled = full / scale[:, None]
        if mode == "int8":
            scaled = scaled.round_().clamp_(-127, 127)
        return cls(scaled.to(_STORAGE[mode]), scale, bias)

    def dequantized(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The weight this layer computes with (for tests and error measurements)."""
        return (self.weight.float() * self.scale[:, None]).to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight.to(x.dtype)) * self.scale.to(x.dtype)
        return out + self.bias if self.bias is not None else out

    def _apply(self, fn, recurse=True):
        return super()._apply(lambda t: fn(t).to(t.dtype), recurse)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, weight={self.weight.dtype}"


def _bitsandbytes():
    """bitsandbytes, imported quietly: on CPUs with AVX-512 BF16 it tries a kernel from the model hub
    (unreachable, and not needed: it falls back to its own) and warns about it."""
    quiet = logging.getLogger("bitsandbytes")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        import bitsandbytes
    except ImportError:
        raise ImportError("int4 weights need bitsandbytes: pip install 'bitsandbytes>=0.45'") from None
    finally:
        quiet.setLevel(level)
    return bitsandbytes


def quantized_linear(linear: torch.nn.Linear, weight: torch.Tensor, mode: str,
                     compute_dtype: torch.dtype) -> torch.nn.Module:
    """The quantized replacement of ``linear`` (whose bias, if any, is kept as it is) holding ``weight``,
    on ``weight``'s device."""
    if mode in _STORAGE:
        return ScaledLinear.quantize(weight, linear.bias, mode)
    if mode != "int4":
        raise ValueError(f"unknown quantization {mode!r}; use one of {', '.join(QUANTIZED_MODES)}")
    if linear.in_features % NF4_BLOCK:
        raise ValueError(f"int4 (NF4) stores each row in blocks of {NF4_BLOCK} weights; this model's layers are "
                         f"{linear.in_features} wide. Use int8 or fp8 for it")
    bnb = _bitsandbytes()
    layer = bnb.nn.Linear4bit(linear.in_features, linear.out_features, bias=False, compute_dtype=compute_dtype,
                              quant_type="nf4", device="meta")
    layer.weight = bnb.nn.Params4bit(weight.to(compute_dtype), requires_grad=False, quant_type="nf4",
                                     blocksize=NF4_BLOCK, compress_statistics=True)
    layer = layer.to(weight.device)  # bitsandbytes quantizes when the weight is moved to its device
    layer.bias = linear.bias
    return layer


def quantize_model(model: torch.nn.Module, mode: str, compute_dtype: torch.dtype) -> torch.nn.Module:
    """Quantize a loaded model's decoder-layer projections in place, one layer at a time (for models
    transformers loads, like the Qwen2.5-VL judge: quantize on the CPU, then move to the GPU)."""
    check_mode(mode)
    for name, module in list(model.named_modules()):
        if is_quantized_layer(name) and type(module) is torch.nn.Linear:
            parent, _, child = name.rpartition(".")
            with torch.no_grad():
                setattr(model.get_submodule(parent), child,
                        quantized_linear(module, module.weight.detach(), mode, compute_dtype))
    return model


def quantized_bytes(shape: tuple[int, ...], mode: str) -> int:
    """Bytes a quantized weight of ``shape`` occupies (its statistics included), as stored above."""
    rows, count = int(shape[0]), math.prod(int(s) for s in shape)
    if mode in _STORAGE:
        return count + rows * 4
    if mode == "int4":
        blocks = math.ceil(count / NF4_BLOCK)
        nested = math.ceil(blocks / NF4_NESTED_BLOCK)
        # packed pairs, one uint8 absmax per block, a float32 absmax per nested block, the NF4 and nested code
        # books (16 and 256 float32) and the nested offset (one float32)
        return math.ceil(count / 2) + blocks + nested * 4 + 16 * 4 + 256 * 4 + 4
    raise ValueError(f"unknown quantization {mode!r}; use one of {', '.join(QUANTIZED_MODES)}")


def stored_bytes(model: torch.nn.Module) -> int:
    """Bytes of every parameter, buffer and 4-bit statistic a loaded model holds (tied tensors once)."""
    seen, total = set(), 0

    def count(tensor: torch.Tensor | None) -> None:
        nonlocal total
        if tensor is not None and id(tensor) not in seen:
            seen.add(id(tensor))
            total += tensor.numel() * tensor.element_size()

    for tensor in [*model.parameters(), *model.buffers()]:
        count(tensor)
        state = getattr(tensor, "quant_state", None)
        while state is not None:
            for part in (state.absmax, state.code, getattr(state, "offset", None)):
                count(part)
            state = state.state2 if state.nested else None
    return total
