"""KV-cached decoding of the Janus language model (Llama), one token per step.

Generation runs the decoder on 2-48 rows per step (samples x CFG halves).
At that size a step costs reading the weights and the KV cache plus the
overhead of every call on the way, so the Llama layer step is written out
here with the arithmetic of transformers' ``LlamaDecoderLayer`` (its weights,
norm modules and activation; the tests compare the two) and without its
per-call machinery. Other decoder layer classes are called as they are.

The cache is preallocated and written in place, positions and masks come
from the padding (so a row's numbers do not depend on its batch), and the
rotary tables and attention masks are built once per batch. A prefill that
several rows continue is kept once (``SharedPrefix``) instead of copied into
each of them.
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


def project(x: torch.Tensor, linear: torch.nn.Module) -> torch.Tensor:
    """``linear(x)``, in the operand order that is fastest for this many rows (values equal up to rounding).

    The swapped form returns a column-major result; element-wise operations and
    the next product take it as it is.
    """
    rows = x.numel() // x.shape[-1]
    low, high = SWAPPED_PRODUCT_ROWS
    if (type(linear) is not torch.nn.Linear  # quantized layers (and LoRA-wrapped ones) compute their own way
            or x.device.type != "cpu" or not low <= rows <= high or torch.get_num_threads() == 1):
        return linear(x)
    out = (linear.weight @ x.reshape(rows, x.shape[-1]).t()).t()  # column-major [rows, out_features]
    if linear.bias is not None:
        out = out + linear.bias
    return out.view(*x.shape[:-1], out.shape[-1])


class SharedPrefix:
    """Keys/values of prefilled rows that several batch rows continue from, stored once.

    The samples of one prompt start from the same prompt; the images drawn from
    one chain start from the same prompt + chain, and so do their
    unconditional rows. Copying that prefix into every row makes each step read
    it once per row; kept once, it is read once per distinct row. ``keys[l]``
    and ``values[l]`` are ``[kv_heads, prefixes * width, head_dim]`` (all
    distinct prefixes side by side) and the additive ``mask``
    ``[rows, 1, 1, prefixes * width]`` lets each row see the real tokens of
    its own prefix only.
    """

    def __init__(self, keys: list[torch.Tensor], values: list[torch.Tensor], mask: torch.Tensor):
        self.keys, self.values, self.mask = keys, values, mask

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layer_idx: int, scale: float,
               own_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Attention of each row's queries ``q [B, heads, L, D]`` over its prefix and its own keys ``k, v [B, kv_heads, t, D]``.

        One softmax over the concatenated scores (prefix, own tokens), so the
        result is the attention over the row's whole sequence. The prefix
        scores of all rows come from one product with the stored prefixes.
        Several queries (a speculative draft checked in one pass) see their
        own tokens through ``own_mask [L, t]`` (additive, causal).
        """
        batch, heads, length, dim = q.shape
        kv_heads = k.shape[1]
        group = heads // kv_heads  # query heads per key/value head
        keys, values = self.keys[layer_idx], self.values[layer_idx]
        width = keys.shape[1]
        q = (q * scale).reshape(batch, kv_heads, group * length, dim)
        by_head = q.transpose(0, 1).reshape(kv_heads, batch * group * length, dim)
        prefix = (by_head @ keys.transpose(1, 2)).view(kv_heads, batch, group * length, width).transpose(0, 1)
        own = q @ k.transpose(2, 3)
        if own_mask is not None:
            own = (own.view(batch, kv_heads, group, length, -1) + own_mask).view(batch, kv_heads, group * length, -1)
        scores = torch.cat([prefix + self.mask, own], dim=-1)
        weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
        from_prefix = weights[..., :width].transpose(0, 1).reshape(kv_heads, batch * group * length, width) @ values
        out = from_prefix.view(kv_heads, batch, group * length, dim).transpose(0, 1) + weights[..., width:] @ v
        return out.reshape(batch, heads, length, dim)


class KVBuffer:
    """Preallocated keys/values per layer; ``update`` writes in place and returns views.

    A cache that concatenates on every step copies the whole cache each token
    (quadratic in the sequence length); here each step writes one slot. The
    ``update`` signature is the one transformers' attention layers call. With
    a ``prefix`` the buffer holds only each row's own tokens after it.
    """

    def __init__(self, num_layers: int, capacity: int, prefix: SharedPrefix | None = None):
        self.keys: list[torch.Tensor | None] = [None] * num_layers
        self.values: list[torch.Tensor | None] = [None] * num_layers
        self.length = 0  # tokens stored (the same for every layer after a full forward)
        self.capacity = capacity
        self.prefix = prefix

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
        if self.prefix is not None:
            self.prefix = SharedPrefix(self.prefix.keys, self.prefix.values, self.prefix.mask[rows])


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding: ``x * cos + rotate_half(x) * sin`` with ``rotate_half(x) = (-x2, x1)``."""
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


def llama_layer_step(layer, hidden: torch.Tensor, mask: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                     cache: KVBuffer, layer_idx: int) -> torch.Tensor:
    """One ``LlamaDecoderLayer`` forward over ``hidden [B, L, D]`` with the cache (no dropout, inference).

    ``cos``/``sin`` are ``[B, L, head_dim]`` for these positions, ``mask`` is
    additive ``[B, 1, L, keys]`` (with a shared prefix, where every own token
    is real: None, or ``[L, own keys]`` to keep several new tokens causal). Queries and keys are rotated together, in one row-major
    tensor (which the fused attention kernels need).
    """
    attn, mlp = layer.self_attn, layer.mlp
    batch, length, _ = hidden.shape
    heads, kv_heads = attn.config.num_attention_heads, attn.config.num_key_value_heads
    x = layer.input_layernorm(hidden)
    qk = torch.cat([project(x, attn.q_proj), project(x, attn.k_proj)], dim=-1)
    qk = _rotate(qk.view(batch, length, heads + kv_heads, attn.head_dim).transpose(1, 2), cos[:, None], sin[:, None])
    v = project(x, attn.v_proj).view(batch, length, kv_heads, attn.head_dim).transpose(1, 2)
    k, v = cache.update(qk[:, heads:], v, layer_idx)
    if cache.prefix is not None:
        out = cache.prefix.attend(qk[:, :heads], k, v, layer_idx, attn.scaling, mask)
    else:
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

    def _run(self, embeds: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor,
             every: bool = False) -> torch.Tensor:
        cos, sin = self.cos[positions], self.sin[positions]
        hidden = embeds
        for idx, layer in enumerate(self.lm.layers):
            if self.fast:
                hidden = llama_layer_step(layer, hidden, mask, cos, sin, self.kv, idx)
            else:
                hidden = layer(hidden, attention_mask=mask, position_embeddings=(cos, sin), cache=self.kv)
        self.kv.length += embeds.shape[1]
        return self.lm.norm(hidden if every else hidden[:, -1])

    def prefill(self, embeds: torch.Tensor) -> torch.Tensor:
        """Run the whole prompt batch; returns the final hidden state of each row ``[rows, D]``."""
        hidden = self._run(embeds, self.positions, self.prefill_mask)
        self.prefill_mask = None
        self.next_pos = self.positions[:, -1:] + 1
        return hidden

    def step(self, embeds: torch.Tensor) -> torch.Tensor:
        """One new token per row (``embeds [rows, 1, D]``); returns ``[rows, D]``."""
        self.width += 1
        mask = None if self.kv.prefix is not None else self.step_mask[:, :, :, : self.width]
        hidden = self._run(embeds, self.next_pos, mask)
        self.next_pos = self.next_pos + 1
        return hidden

    def extend(self, embeds: torch.Tensor) -> torch.Tensor:
        """Several new tokens per row in one pass (``embeds [rows, L, D]``), each seeing the ones before it;
        returns the hidden state after every one of them ``[rows, L, D]``: a speculative draft is checked
        in one forward instead of ``L``."""
        length = embeds.shape[1]
        start = self.width
        self.width += length
        later = torch.ones((length, length), dtype=torch.bool, device=embeds.device).triu(1)  # query j, key > j
        blocked = torch.finfo(embeds.dtype).min
        if self.kv.prefix is not None:  # own keys: every earlier token of the row, then the new ones
            mask = embeds.new_zeros((length, self.kv.length + length))
            mask[:, self.kv.length:] = mask[:, self.kv.length:].masked_fill(later, blocked)
        else:
            mask = self.step_mask[:, :, :, : self.width].expand(-1, -1, length, -1).clone()
            mask[:, :, :, start:] = mask[:, :, :, start:].masked_fill(later, blocked)
        positions = self.next_pos + torch.arange(length, device=embeds.device)
        hidden = self._run(embeds, positions, mask, every=True)
        self.next_pos = self.next_pos + length
        return hidden

    def rollback(self, count: int) -> None:
        """Forget the last ``count`` tokens of every row (draft tokens that were not accepted): the next
        tokens are written over them."""
        self.width -= count
        self.kv.length -= count
        self.next_pos = self.next_pos - count

    def keep(self, rows: torch.Tensor) -> None:
        """Drop all other rows from the batch and its cache (also expands: rows may repeat)."""
        self.kv.keep(rows)
        if self.step_mask is not None:
            self.step_mask = self.step_mask[rows]
        self.next_pos = self.next_pos[rows]

    def expand(self, rows: torch.Tensor) -> None:
        """Continue each prefilled row as several batch rows (``rows`` indexes the prefilled rows).

        When rows repeat enough (at least two batch rows per prefilled row on
        average) and every layer takes the own step, the prefill's keys/values
        become a ``SharedPrefix`` read once per step; otherwise they are copied
        into every row.
        """
        prefilled = self.step_mask.shape[0]
        if not self.fast or 2 * prefilled > len(rows):
            self.keep(rows)
            return
        width = self.positions.shape[1]

        def side_by_side(cache: torch.Tensor) -> torch.Tensor:  # [rows, kv, cap, D] -> [kv, rows * width, D]
            return cache[:, :, :width].transpose(0, 1).reshape(cache.shape[1], prefilled * width, cache.shape[3])

        own = self.step_mask[:, 0, 0, :width]  # [prefilled, width]: 0 for real tokens, blocked for padding
        mask = own.new_full((len(rows), prefilled, width), torch.finfo(own.dtype).min)
        mask[torch.arange(len(rows), device=rows.device), rows] = own[rows]
        prefix = SharedPrefix([side_by_side(k) for k in self.kv.keys], [side_by_side(v) for v in self.kv.values],
                              mask.view(len(rows), 1, 1, prefilled * width))
        self.kv = KVBuffer(len(self.lm.layers), self.kv.capacity - width, prefix)
        self.step_mask = None
        self.next_pos = self.next_pos[rows]
