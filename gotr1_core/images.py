"""Image hand-off between torch (ComfyUI's float 0..1 IMAGE), numpy and PIL."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def to_uint8(image) -> np.ndarray:
    """``[H, W, 3]`` uint8 from an ``[H, W, C]`` float (0..1, rounded) or uint8 array or tensor, C in 1/3/4."""
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an [H,W,C] image with C in 1/3/4, got shape {tuple(array.shape)}")
    if array.dtype != np.uint8:
        array = (np.clip(array.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return np.ascontiguousarray(array[:, :, :3])


def to_pil(image) -> Image.Image:
    return Image.fromarray(to_uint8(image), "RGB")
