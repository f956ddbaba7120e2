"""KV-cached decoding of the Janus language model (Llama), one token per step.

Generation runs the decoder on 2-48 rows per step (samples x CFG halves).
At that size a step costs reading the weights and the KV cache plus the
overhead of every call on the way, so the Llama layer step is written out
here with the arithmetic of transformers' ``LlamaDecoderLayer`` (its weights,
norm modules and activation; the tests compare the two) and without its
per-call machinery. Other decoder layer classes are called as they are.

The cache is preallocated and written in place, positions and masks come
from the padding (so a row's numbers do not depend on its batch), and the
rotary tables and attention masks are built once per batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# On the CPU with more than one thread, MKL computes x @ W.T (what nn.Linear
# does) for 12-48 rows up to 2x slower than (W @ x.T).T, the same product with
# the operands swapped; for fewer or more rows, or on one thread, the plain
# form is as fast or faster. Measured on Janus layer shapes from hidden 512 to
# 4096 (see README, Speed).
SWAPPED_PRODUCT_ROWS = (12, 48)


def project(x: torch.Tensor, linear: torch.nn.Linear) -> torch.Tensor:
    """``linear(x)``, in the operand order that is fastest for this many rows (values equal up to rounding).

    The swapped form returns a column-major result; element-wise operations and
    the next product take it as it is.
    """
    rows = x.numel() // x.shape[-1]
    low, high = SWAPPED_PRODUCT_ROWS
    if x.device.type != "cpu" or not low <= rows <= high or torch.get_num_threads() == 1:
        return linear(x)
    out = (linear.weight @ x.reshape(rows, x.shape[-1]).t()).t()  # column-major [rows, out_features]
    if linear.bias is not None:
        out = out + linear.bias
    return out.view(*x.shape[:-1], out.shape[-1])


class KVBuffer:
    """Preallocated keys/values per layer; ``update`` writes in place and returns views.

    A cache that concatenates on every step copies the whole cache each token
    (quadratic in the sequence length); here each step writes one slot. The
    ``update`` signature is the one transformers' attention layers call.
    """

    def __init__(self, num_layers: int, capacity: int):
        self.keys: list[torch.Tensor | None] = [None] * num_layers
        self.values: list[torch.Tensor | None] = [None] * num_layers
        self.length = 0  # tokens stored (the same for every layer after a full forward)
        self.capacity = capacity

    def update(self, key: torch.Tensor, value: torch.Tensor, layer_idx: int, *args, **kwargs):
        if self.keys[layer_idx] is None:
            shape = (key.shape[0], key.shape[1], self.capacity, key.shape[3])
            self.keys[layer_idx] = key.new_empty(shape)
            self.values[layer_idx] = value.new_empty(shape)
        end = self.length + key.shape[2]
        self.keys[layer_idx][:, :, self.length:end] = key
        self.values[layer_idx][:, :, self.length:end] = value
        return self.keys[layer_idx][:, :, :end], self.values[layer_idx][:, :, :end]

    def keep(self, rows: torch.Tensor) -> None:
        self.keys = [k[rows] if k is not None else None for k in self.keys]
        self.values = [v[rows] if v is not None else None for v in self.values]


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding: ``x * cos + rotate_half(x) * sin`` with ``rotate_half(x) = (-x2, x1)``."""
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


def llama_layer_step(layer, hidden: torch.Tensor, mask: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                     cache: KVBuffer, layer_idx: int) -> torch.Tensor:
    """One ``LlamaDecoderLayer`` forward over ``hidden [B, L, D]`` with the cache (no dropout, inference).

    ``cos``/``sin`` are ``[B, L, head_dim]`` for these positions, ``mask`` is
    additive ``[B, 1, L, keys]``. Queries and keys are rotated together, in
    one row-major tensor (which the fused attention kernels need).
    """
    attn, mlp = layer.self_attn, layer.mlp
    batch, length, _ = hidden.shape
    heads, kv_heads = attn.config.num_attention_heads, attn.config.num_key_value_heads
    x = layer.input_layernorm(hidden)
    qk = torch.cat([project(x, attn.q_proj), project(x, attn.k_proj)], dim=-1)
    qk = _rotate(qk.view(batch, length, heads + kv_heads, attn.head_dim).transpose(1, 2), cos[:, None], sin[:, None])
    v = project(x, attn.v_proj).view(batch, length, kv_heads, attn.head_dim).transpose(1, 2)
    k, v = cache.update(qk[:, heads:], v, layer_idx)
    out = F.scaled_dot_product_attention(qk[:, :heads], k, v, attn_mask=mask, scale=attn.scaling,
                                         enable_gqa=kv_heads != heads)
    hidden = hidden + project(out.transpose(1, 2).reshape(batch, length, -1), attn.o_proj)
    x = layer.post_attention_layernorm(hidden)
    return hidden + project(mlp.act_fn(project(x, mlp.gate_proj)) * project(x, mlp.up_proj), mlp.down_proj)


def image_logits(head, hidden: torch.Tensor) -> torch.Tensor:
    """Janus' generation head (``proj_out``, activation, ``vision_head``) with ``project``."""
    if type(head).__name__ != "JanusVQVAEHead":
        return head(hidden)
    return project(head.activation_fn(project(hidden, head.proj_out)), head.vision_head)


class Decoder:
    """KV-cached forward of a left-padded batch through the language model's layers.

    ``mask`` ``[rows, width]`` marks real prompt tokens (1) and left padding
    (0); ``total_len`` is the width plus every token still to come.
    """

    def __init__(self, language_model, total_len: int, mask: torch.Tensor):
        self.lm = language_model
        dtype = self.lm.embed_tokens.weight.dtype
        rows, width = mask.shape
        self.kv = KVBuffer(len(self.lm.layers), total_len)
        self.fast = all(type(layer).__name__ == "LlamaDecoderLayer" for layer in self.lm.layers)
        self.width = width
        self.positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        all_positions = torch.arange(total_len, device=mask.device)[None]
        probe = torch.zeros((), dtype=dtype, device=mask.device)
        cos, sin = self.lm.rotary_emb(probe, all_positions)
        self.cos, self.sin = cos[0], sin[0]
        # Key j is visible to every later query when it is a real token (or the query itself).
        blocked = torch.finfo(dtype).min
        key_ok = torch.ones((rows, total_len), dtype=torch.bool, device=mask.device)
        key_ok[:, :width] = mask.bool()
        self.step_mask = torch.zeros((rows, 1, 1, total_len), dtype=dtype, device=mask.device)
        self.step_mask.masked_fill_(~key_ok[:, None, None, :], blocked)
        causal = torch.ones((width, width), dtype=torch.bool, device=mask.device).tril()
        allowed = (causal[None] & key_ok[:, None, :width]) | torch.eye(width, dtype=torch.bool,
                                                                        device=mask.device)[None]
        self.prefill_mask = torch.zeros((rows, 1, width, width), dtype=dtype, device=mask.device)
        self.prefill_mask.masked_fill_(~allowed[:, None], blocked)

    def _run(self, embeds: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        cos, sin = self.cos[positions], self.sin[positions]
        hidden = embeds
        for idx, layer in enumerate(self.lm.layers):
            if self.fast:
                hidden = llama_layer_step(layer, hidden, mask, cos, sin, self.kv, idx)
            else:
                hidden = layer(hidden, attention_mask=mask, position_embeddings=(cos, sin), cache=self.kv)
        self.kv.length += embeds.shape[1]
        return self.lm.norm(hidden[:, -1])

    def prefill(self, embeds: torch.Tensor) -> torch.Tensor:
        """Run the whole prompt batch; returns the final hidden state of each row ``[rows, D]``."""
        hidden = self._run(embeds, self.positions, self.prefill_mask)
        self.prefill_mask = None
        self.next_pos = self.positions[:, -1:] + 1
        return hidden

    def step(self, embeds: torch.Tensor) -> torch.Tensor:
        """One new token per row (``embeds [rows, 1, D]``); returns ``[rows, D]``."""
        self.width += 1
        hidden = self._run(embeds, self.next_pos, self.step_mask[:, :, :, : self.width])
        self.next_pos = self.next_pos + 1
        return hidden

    def keep(self, rows: torch.Tensor) -> None:
        """Drop all other rows from the batch and its cache (also expands: rows may repeat)."""
        self.kv.keep(rows)
        self.step_mask = self.step_mask[rows]
        self.next_pos = self.next_pos[rows]
