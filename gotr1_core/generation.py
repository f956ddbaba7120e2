"""GoT-R1 two-stage generation: reasoning chain, then image tokens, then pixels.

Stage 1 (reasoning) samples text after the prompt template until each row
writes the image-start token (or ``max_reason_tokens``). Stage 2 (image)
samples ``grid_size**2`` image tokens conditioned on prompt + chain, with
classifier-free guidance on a doubled batch: the unconditional row keeps the
first token (BOS) and the image-start token and replaces everything between
by pad, and ``logits = uncond + cfg * (cond - uncond)``. Sampled ids re-enter
the model through the generation embedding + aligner. The VQ decoder turns the
tokens into ``[B, H, W, 3]`` images in 0..1.

Every sample row runs in one batched, KV-cached forward per step (both CFG
halves included; ``decoding.Decoder``). Rows are left-padded with explicit
position ids, so a row's tokens do not depend on what it is batched with. The
only host syncs in the token loops are the stop checks of stage 1, once every
``check_every`` tokens; rows that finished are then dropped from the batch and
its cache.

The same function serves the nodes, the CLI and the GRPO trainer's rollouts:
its result carries the token ids and per-token log-probabilities of both
stages.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from .decoding import Decoder, image_logits
from .layout import Layout
from .model.loading import GotModel
from .model.spec import DRAFT_TOKENS, IMAGE_DECODING
from .model.tokenizer import encode_prompt_ids
from .reasoning import ParsedChain, parse_chain
from .sampling import (STREAM_CHECK, STREAM_DRAFT, STREAM_IMAGE, STREAM_REASON, NoiseSource, distribution, gumbel,
                       row_keys, sample)
from .speculative import accept, accepted_run, residual

ProgressCallback = Callable[[str, int, int], None]
"""``callback(stage, done, total)`` every block of tokens; raise inside it to cancel."""
PreviewCallback = Callable[[str, torch.Tensor, int], None]
"""``preview(stage, tokens, done)``: at the same points as the progress callback, the stage's token buffer
(``[rows, total]``, the first ``done`` columns written) — for live previews; reading it syncs the device."""


DRAFT_SCHEDULES = ("auto", "fixed", "adaptive")


@dataclass(frozen=True)
class GenerationConfig:
    """Sampling settings. ``None`` fields take the checkpoint's defaults (``gotr1.json``)."""

    num_samples: int = 1
    seed: int = 0
    cfg_scale: float | None = None
    cfg_plausibility: float | None = None
    text_temperature: float | None = None
    image_temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    max_reason_tokens: int | None = None
    max_batch: int = 16
    check_every: int = 8
    first_index: int = 0
    image_decoding: str = "sequential"
    draft_tokens: int = DRAFT_TOKENS
    draft_schedule: str = "auto"  # jacobi: fixed | adaptive guesses per pass; auto = adaptive on the CPU only

    def __post_init__(self) -> None:
        problems = []
        if self.draft_schedule not in DRAFT_SCHEDULES:
            problems.append(f"draft_schedule must be one of {', '.join(DRAFT_SCHEDULES)}, "
                            f"got {self.draft_schedule!r}")
        if self.image_decoding not in IMAGE_DECODING:
            problems.append(f"image_decoding must be one of {', '.join(IMAGE_DECODING)}, got {self.image_decoding!r}")
        if self.draft_tokens < 1:
            problems.append(f"draft_tokens must be >= 1, got {self.draft_tokens}")
        if self.num_samples < 1:
            problems.append(f"num_samples must be >= 1, got {self.num_samples}")
        if self.max_batch < 1:
            problems.append(f"max_batch must be >= 1, got {self.max_batch}")
        if self.check_every < 1:
            problems.append(f"check_every must be >= 1, got {self.check_every}")
        if self.first_index < 0:
            problems.append(f"first_index must be >= 0, got {self.first_index}")
        if any(t is not None and t < 0 for t in (self.text_temperature, self.image_temperature)):
            problems.append("temperatures must be >= 0 (0 means greedy)")
        if self.cfg_scale is not None and self.cfg_scale < 0:
            problems.append(f"cfg_scale must be >= 0, got {self.cfg_scale}")
        if self.cfg_plausibility is not None and not 0 <= self.cfg_plausibility < 1:
            problems.append(f"cfg_plausibility must be in [0, 1), got {self.cfg_plausibility}")
        if self.top_k is not None and self.top_k < 1:
            problems.append(f"top_k must be >= 1, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            problems.append(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_reason_tokens is not None and self.max_reason_tokens < 1:
            problems.append(f"max_reason_tokens must be >= 1, got {self.max_reason_tokens}")
        if problems:
            raise ValueError("invalid generation settings: " + "; ".join(problems))


@dataclass
class GenerationResult:
    """Everything one call produced, one entry per sample row (prompt-major).

    ``reason_ids``/``reason_logprobs`` are ``[N, R]`` with ``reason_mask``
    marking real tokens (the chain up to and including its stop token);
    ``image_ids``/``image_logprobs`` are ``[N, T]``. ``sample_index`` is a
    row's place among its prompt's samples; ``seeds`` and ``streams`` name its
    randomness (:func:`generate`). For a user-supplied chain
    the reasoning tensors hold that chain with zero log-probs and
    ``chain_given`` is True.
    """

    prompts: list[str]
    sample_index: list[int]
    seeds: list[int]
    streams: list[int]
    chains: list[str]
    parsed: list[ParsedChain]
    prompt_ids: list[list[int]]
    reason_ids: torch.Tensor
    reason_mask: torch.Tensor
    reason_logprobs: torch.Tensor
    finished: torch.Tensor
    image_ids: torch.Tensor | None = None
    image_logprobs: torch.Tensor | None = None
    images: torch.Tensor | None = None
    chain_given: bool = False
    settings: dict = field(default_factory=dict)

    @property
    def layouts(self) -> list[Layout]:
        return [Layout.from_chain(p) for p in self.parsed]

    def select(self, rows: Sequence[int]) -> "GenerationResult":
        """The same result restricted to ``rows`` (in that order): micro-batches, one prompt's group."""
        rows = list(rows)
        index = torch.tensor(rows, dtype=torch.long)

        def pick(value):
            if isinstance(value, torch.Tensor):
                return value[index.to(value.device)]
            if isinstance(value, list):
                return [value[i] for i in rows]
            return value

        return dataclasses.replace(self, **{f.name: pick(getattr(self, f.name)) for f in dataclasses.fields(self)})

    @classmethod
    def concat(cls, parts: Sequence["GenerationResult"]) -> "GenerationResult":
        """The rows of ``parts`` in order, as one result (chunks of one generation, say).

        Reasoning tensors are right-padded to the widest part (outside
        ``reason_mask``, so the padding value is never read); settings and
        ``chain_given`` are the first part's.
        """
        parts = list(parts)
        width = max(p.reason_ids.shape[1] for p in parts)
        values = {}
        for f in dataclasses.fields(cls):
            items = [getattr(p, f.name) for p in parts]
            if f.name.startswith("reason_"):
                items = [torch.nn.functional.pad(t, (0, width - t.shape[1])) for t in items]
            first = items[0]
            if isinstance(first, torch.Tensor):
                values[f.name] = torch.cat(items)
            elif isinstance(first, list):
                values[f.name] = [v for item in items for v in item]
            else:
                values[f.name] = first
        return cls(**values)


# -- helpers ------------------------------------------------------------------------

def _left_pad(rows: Sequence[Sequence[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row):] = torch.tensor(row, dtype=torch.long)
        mask[i, width - len(row):] = 1
    return ids.to(device), mask.to(device)


def unconditional_ids(ids: Sequence[int], pad_id: int) -> list[int]:
    """The CFG row: first token and last (image-start) token kept, everything between padded."""
    if len(ids) < 2:
        return list(ids)
    return [ids[0]] + [pad_id] * (len(ids) - 2) + [ids[-1]]


def _start(got: GotModel, rows: list[list[int]], extra_tokens: int) -> tuple[Decoder, torch.Tensor]:
    """Prefill a batch, computing each distinct row once.

    The samples of one prompt share their prompt, unconditional CFG rows of
    equal length are identical, and a given chain is shared by every image
    drawn from it: their prefill is computed once, and its cache is shared by
    (or, when few rows repeat, copied to) the rows that continue it.
    """
    unique = list(dict.fromkeys(tuple(r) for r in rows))
    ids, mask = _left_pad(unique, got.token_ids.pad, got.device)
    _check_length(got, ids.shape[1] + extra_tokens)
    decoder = Decoder(got.model.model.language_model, ids.shape[1] + extra_tokens, mask)
    hidden = decoder.prefill(got.model.get_input_embeddings()(ids))
    if len(unique) < len(rows):
        where = {row: i for i, row in enumerate(unique)}
        expand = torch.tensor([where[tuple(r)] for r in rows], device=got.device)
        decoder.expand(expand)
        hidden = hidden[expand]
    return decoder, hidden


def _check_length(got: GotModel, length: int) -> None:
    limit = got.model.config.text_config.max_position_embeddings
    if length > limit:
        raise ValueError(f"prompt + chain + image tokens need {length} positions, the model has {limit}; "
                         "shorten the prompt or lower max_reason_tokens")


# -- stage 1 ------------------------------------------------------------------------

def _reason_budget(got: GotModel, prompt_ids: list[list[int]], wanted: int, image_tokens: int) -> int:
    """Chain tokens that fit: ``wanted``, cut to the positions the model has left after the prompt and,
    when an image follows, its tokens (``image_tokens``, counting the image-start token a cut chain
    gets). Only what the stage being run needs is counted."""
    room = got.model.config.text_config.max_position_embeddings - max(map(len, prompt_ids)) - image_tokens
    if room < 1:
        _check_length(got, max(map(len, prompt_ids)) + 1 + image_tokens)
    return min(wanted, room)


@torch.inference_mode()
def _reason(got: GotModel, prompt_ids: list[list[int]], keys: torch.Tensor, config: GenerationConfig,
            callback: ProgressCallback | None, image_tokens: int, preview: PreviewCallback | None = None):
    ids_t = got.token_ids
    device = got.device
    max_tokens = _reason_budget(got, prompt_ids, config.max_reason_tokens, image_tokens)
    stops = torch.tensor(sorted({ids_t.image_start} | ({ids_t.eos} if ids_t.eos is not None else set())),
                         device=device)
    embed = got.model.get_input_embeddings()
    noise = NoiseSource(got.model.config.text_config.vocab_size, device)
    decoder, hidden = _start(got, prompt_ids, max_tokens)

    rows = len(prompt_ids)
    tokens = torch.full((rows, max_tokens), ids_t.pad, dtype=torch.long, device=device)
    logprobs = torch.zeros((rows, max_tokens), dtype=torch.float32, device=device)
    active = torch.arange(rows, device=device)
    done = torch.zeros(rows, dtype=torch.bool, device=device)
    for t in range(max_tokens):
        tok, lp = sample(got.model.lm_head(hidden), config.text_temperature, keys[active], t, STREAM_REASON, noise)
        tok = torch.where(done, ids_t.pad, tok)
        tokens[active, t] = tok
        logprobs[active, t] = torch.where(done, 0.0, lp)
        done = done | torch.isin(tok, stops)
        if t == max_tokens - 1:
            break
        if (t + 1) % config.check_every == 0:
            if callback:
                callback("reasoning", t + 1, max_tokens)
            if preview:
                preview("reasoning", tokens, t + 1)
            if bool(done.all()):  # one host sync per block of tokens
                break
            if bool(done.any()):
                keep = torch.nonzero(~done).squeeze(1)
                decoder.keep(keep)
                hidden, active, done = hidden[keep], active[keep], done[keep]
                tok = tok[keep]
        hidden = decoder.step(embed(tok[:, None]))
    return tokens, logprobs


# -- stage 2 ------------------------------------------------------------------------

def guide(cond: torch.Tensor, uncond: torch.Tensor, scale: float, plausibility: float = 0.0) -> torch.Tensor:
    """Classifier-free guidance: ``uncond + scale * (cond - uncond)``.

    Guidance ranks tokens by how much more likely the prompt makes them, which
    can favour a token the conditional model itself finds unlikely: where the
    unconditional model is sure of white background, any shape piece gains.
    With ``plausibility`` = a > 0, only tokens whose conditional probability is
    at least ``a`` times the most likely token's are kept (the rest get -inf),
    so guidance chooses among what the prompt allows.
    """
    guided = uncond + scale * (cond - uncond)
    if plausibility > 0:
        floor = cond.max(dim=-1, keepdim=True).values + math.log(plausibility)
        guided = guided.masked_fill(cond < floor, float("-inf"))
    return guided


def _image_logits(got: GotModel, hidden: torch.Tensor, batch: int, config: GenerationConfig) -> torch.Tensor:
    """Guided image logits of the ``batch`` sample rows from the hidden states of the cond (and uncond) rows."""
    logits = image_logits(got.model.model.generation_head, hidden).float()
    if config.cfg_scale != 1.0:
        logits = guide(logits[:batch], logits[batch:], config.cfg_scale, config.cfg_plausibility)
    return logits


def _image_rows(got: GotModel, cond_ids: list[list[int]], config: GenerationConfig) -> list[list[int]]:
    """The rows stage 2 runs: the conditional ones, then (with guidance) their unconditional twins."""
    uncond = [unconditional_ids(r, got.token_ids.pad) for r in cond_ids] if config.cfg_scale != 1.0 else []
    return list(cond_ids) + uncond


def _feed(got: GotModel, tokens: torch.Tensor, config: GenerationConfig) -> torch.Tensor:
    """Embeddings of sampled image tokens ``[B, L]`` for the next pass, for both CFG halves."""
    embeds = got.model.prepare_embeddings_for_image_generation(tokens)
    return torch.cat([embeds, embeds]) if config.cfg_scale != 1.0 else embeds


@torch.inference_mode()
def _draw(got: GotModel, cond_ids: list[list[int]], keys: torch.Tensor, config: GenerationConfig,
          callback: ProgressCallback | None, preview: PreviewCallback | None = None):
    """Stage 2, one forward pass per token. Returns tokens, their log-probabilities and the pass count."""
    device = got.device
    n_tokens = got.num_image_tokens
    decoder, hidden = _start(got, _image_rows(got, cond_ids, config), n_tokens)
    noise = NoiseSource(got.model.config.vq_config.num_embeddings, device)

    batch = len(cond_ids)
    tokens = torch.empty((batch, n_tokens), dtype=torch.long, device=device)
    logprobs = torch.empty((batch, n_tokens), dtype=torch.float32, device=device)
    for t in range(n_tokens):
        logits = _image_logits(got, hidden, batch, config)
        tok, lp = sample(logits, config.image_temperature, keys, t, STREAM_IMAGE, noise, config.top_k, config.top_p)
        tokens[:, t] = tok
        logprobs[:, t] = lp
        if t == n_tokens - 1:
            break
        if (t + 1) % config.check_every == 0:
            if callback:
                callback("image", t + 1, n_tokens)
            if preview:
                preview("image", tokens, t + 1)
        hidden = decoder.step(_feed(got, tok[:, None], config))
    return tokens, logprobs, n_tokens


@torch.inference_mode()
def _draw_jacobi(got: GotModel, cond_ids: list[list[int]], keys: torch.Tensor, config: GenerationConfig,
                 callback: ProgressCallback | None, preview: PreviewCallback | None = None):
    """Stage 2 by speculative Jacobi decoding (:mod:`gotr1_core.speculative`); same returns as :func:`_draw`.

    Each pass feeds the last written token and the draft's guesses for the next places, and gets the model's
    distribution at each. The batch moves on together: every row writes as many tokens as the row that
    accepted fewest (each row's tokens are still its own accepted guesses or its own draws, so the
    distribution is unchanged; which sample a row gets depends on the rows beside it, unlike sequential
    decoding). One host sync per pass reads that count.

    ``draft_schedule``: on the CPU a pass costs more the more places it checks (on a GPU it costs reading the
    weights, whatever its width), so there (``auto``; or ``adaptive`` anywhere) the number of guesses follows what
    passes keep: halved (down to one) after a pass that keeps none, doubled (up to ``draft_tokens``) after one that
    keeps them all. It depends only on passes already made, so the distribution is unchanged; a model that leaves
    nothing to guess then costs about what sequential decoding does instead of a wide pass per token.
    """
    device = got.device
    n_tokens, vocab = got.num_image_tokens, got.model.config.vq_config.num_embeddings
    decoder, hidden = _start(got, _image_rows(got, cond_ids, config), n_tokens)
    noise = NoiseSource(vocab, device)
    greedy = config.image_temperature <= 0
    batch = len(cond_ids)
    window, grid = max(1, min(config.draft_tokens, n_tokens - 1)), got.grid_size

    tokens = torch.empty((batch, n_tokens), dtype=torch.long, device=device)
    logprobs = torch.empty((batch, n_tokens), dtype=torch.float32, device=device)
    first, lp = sample(_image_logits(got, hidden, batch, config), config.image_temperature, keys, 0, STREAM_IMAGE,
                       noise, config.top_k, config.top_p)  # the first token as sequential decoding draws it
    tokens[:, 0], logprobs[:, 0] = first, lp

    def next_draft(done: int, seen: torch.Tensor, drawn: torch.Tensor, valid: torch.Tensor, count: int):
        """Guesses for the ``count`` places from ``done`` on, and the distributions they were drawn from.

        Where the last pass saw a place with every guess before it accepted by the row (``valid``), its
        distribution there is the model's given those guesses: the guess is drawn from it (``drawn``), and
        passes whenever the guesses before it are drawn the same again (the first one always). Elsewhere
        the guess is the token one grid row above (in the first row, the one to its left), a point-mass
        proposal: pictures repeat along their columns, and a distribution computed after a refused guess
        tends to repeat that guess's mistake.
        """
        row = list(tokens[:, :done].unbind(1))
        guessed, logq = [], []
        for k in range(count):
            place = done + k
            above = row[place - grid] if place >= grid else row[place - 1]
            point = torch.full((batch, vocab), float("-inf"), device=device).scatter(-1, above[:, None], 0.0)
            if k < seen.shape[1]:
                above = torch.where(valid[:, k], drawn[:, k], above)
                point = torch.where(valid[:, k, None], seen[:, k], point)
            row.append(above)
            guessed.append(above)
            logq.append(point)
        return torch.stack(guessed, 1), torch.stack(logq, 1)

    nothing = torch.empty((batch, 0, vocab), device=device)
    adaptive = config.draft_schedule == "adaptive" or (config.draft_schedule == "auto" and device.type == "cpu")
    draft, draft_logq = next_draft(1, nothing, nothing[..., 0].long(), nothing[..., 0].bool(), window)
    done, passes, shown = 1, 1, 0
    while done < n_tokens:
        width = min(draft.shape[1], n_tokens - 1 - done)  # guesses checked this pass; it also gives one more place
        step_key = passes * (window + 2)
        hidden = decoder.extend(_feed(got, torch.cat([tokens[:, done - 1:done], draft[:, :width]], 1), config))
        logp = distribution(_image_logits(got, hidden, batch, config), config.image_temperature, config.top_k,
                            config.top_p)  # [batch, width + 1, vocab]: places done..done+width
        passes += 1
        if greedy:
            ok = draft[:, :width] == logp[:, :width].argmax(-1)
        else:
            coins = noise.uniform(keys, step_key, STREAM_CHECK)[:, :width]
            ok = accept(draft[:, :width], logp[:, :width], draft_logq[:, :width], coins)
        run = accepted_run(ok)
        wrote = int(run.min()) + 1  # the host sync of this pass: tokens every row writes
        place = wrote - 1  # the last of them: an accepted guess, or a draw where a row refused (or past the draft)
        if greedy:  # the model's own token where a guess was refused, or past the draft
            drawn = logp[:, place].argmax(-1)
        else:  # refused: from the residual; past the draft: from the model's distribution there
            own = residual(logp[:, place], draft_logq[:, place]) if place < width else logp[:, place]
            drawn = (own + gumbel(noise, keys, step_key + 1, STREAM_CHECK)).argmax(-1)
        last = torch.where(run == place, drawn, draft[:, place]) if place < width else drawn
        new = torch.cat([draft[:, :place], last[:, None]], 1)
        tokens[:, done:done + wrote] = new
        logprobs[:, done:done + wrote] = logp[:, :wrote].gather(-1, new[..., None]).squeeze(-1)
        decoder.rollback(width + 1 - wrote)  # keep the last written token and the accepted guesses before it
        done += wrote
        seen = logp[:, wrote:]  # this pass's distributions at the places after the written ones
        if greedy:
            drawn = seen.argmax(-1)
        else:
            drawn = torch.stack([(seen[:, j] + gumbel(noise, keys, step_key + 2 + j, STREAM_DRAFT)).argmax(-1)
                                 for j in range(seen.shape[1])], 1) if seen.shape[1] else seen[..., 0].long()
        valid = run[:, None] >= torch.arange(wrote, width + 1, device=device)[None]
        count = window
        if adaptive and wrote == 1:  # the pass kept no guess: check fewer
            count = max(1, width // 2)
        elif adaptive and wrote <= width:  # it kept some: as many again
            count = width
        elif adaptive:  # it kept them all: check more
            count = min(window, 2 * width)
        draft, draft_logq = next_draft(done, seen, drawn, valid, count)
        if done // config.check_every > shown and done < n_tokens:
            shown = done // config.check_every
            if callback:
                callback("image", done, n_tokens)
            if preview:
                preview("image", tokens, done)
    return tokens, logprobs, passes


@torch.inference_mode()
def decode_images(got: GotModel, image_ids: torch.Tensor, max_batch: int = 16) -> torch.Tensor:
    """Image tokens ``[N, T]`` -> images ``[N, H, W, 3]`` float32 in 0..1 on the CPU."""
    out = []
    for chunk in image_ids.split(max_batch):
        pixels = got.model.decode_image_tokens(chunk.to(got.device))
        out.append(((pixels.float().clamp(-1, 1) + 1) / 2).cpu())
    return torch.cat(out) if out else torch.empty((0, got.image_size, got.image_size, 3))


def partial_image(got: GotModel, tokens: torch.Tensor) -> torch.Tensor:
    """The picture of the first ``len(tokens)`` image tokens (raster order), the patches still to come grey:
    what a live preview shows while an image is drawn. ``[H, W, 3]`` in 0..1 on the CPU."""
    count, grid = got.num_image_tokens, got.grid_size
    done = int(tokens.shape[0])
    full = torch.zeros(count, dtype=torch.long)
    full[:done] = tokens.cpu()
    if 0 < done < count:
        full[done:] = full[done - 1]  # a token the decoder has seen beside the drawn ones, not a random one
    image = decode_images(got, full[None])[0]
    patch = image.shape[0] // grid
    todo = (torch.arange(count) >= done).view(grid, grid)
    todo = todo.repeat_interleave(patch, 0).repeat_interleave(patch, 1)[..., None]
    return torch.where(todo, torch.tensor(0.5), image)


# -- public API -----------------------------------------------------------------------

def encode_prompt(got: GotModel, prompt: str) -> list[int]:
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("the prompt is empty: describe the image to generate")
    return encode_prompt_ids(got.tokenizer, got.spec.format_prompt(prompt))


def encode_chain(got: GotModel, chain: str, prompt: str | None = None) -> list[int]:
    """Token ids of a user-written chain, always ending with the image-start token; reworded first for a
    model that draws given plans in its own wording (``plan_wording`` in ``gotr1.json``)."""
    if got.spec.plan_wording == "shapeworld":
        from .shapeworld.plans import reworded  # the world is only needed by its own models

        chain = reworded(prompt or "", chain)
    ids = got.tokenizer.encode(chain.rstrip(), add_special_tokens=False)
    if not ids or ids[-1] != got.token_ids.image_start:
        ids.append(got.token_ids.image_start)
    return ids


def _as_list(value, n: int, name: str) -> list:
    if value is None or isinstance(value, str):
        return [value] * n
    value = list(value)
    if len(value) != n:
        raise ValueError(f"got {len(value)} {name} for {n} prompts; give one per prompt or a single one")
    return value


def generate(
    got: GotModel,
    prompts: str | Sequence[str],
    config: GenerationConfig = GenerationConfig(),
    chains: str | Sequence[str | None] | None = None,
    images: bool = True,
    decode: bool = True,
    callback: ProgressCallback | None = None,
    preview: PreviewCallback | None = None,
    streams: Sequence[int] | None = None,
) -> GenerationResult:
    """Generate ``config.num_samples`` chains (and images) per prompt.

    Row ``r`` of the call (prompt-major: the samples of the first prompt,
    then of the second, ...) draws its randomness from the stream
    ``(config.seed, config.first_index + r)``, recorded in ``streams``: a row
    is the same whatever the batch size or chunking, every row of a call has
    a stream of its own (a prompt listed twice gets two different samples),
    and ``first_index=r`` with one sample redraws row ``r`` alone; ``streams`` (one per row) names the
    rows' streams outright, for callers that draw scattered rows of a larger batch (GRPO's refilled
    groups). ``chains`` (one for all prompts, or one per
    prompt) skips stage 1 and conditions the image on that text (:func:`encode_chain`; ``chains`` of the
    result keep it as given, ``reason_ids`` hold what the image was conditioned on).
    ``images=False`` stops after the reasoning (the planner); ``decode=False``
    keeps image tokens without running the VQ decoder. ``preview`` sees the
    tokens so far every ``config.check_every`` tokens (:data:`PreviewCallback`).
    """
    prompt_list = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompt_list:
        raise ValueError("no prompts given")
    chain_list = _as_list(chains, len(prompt_list), "chains")
    spec = got.spec
    config = dataclasses.replace(  # unset fields take the checkpoint's defaults
        config,
        max_reason_tokens=config.max_reason_tokens or spec.max_reason_tokens,
        cfg_scale=spec.cfg_scale if config.cfg_scale is None else config.cfg_scale,
        cfg_plausibility=spec.cfg_plausibility if config.cfg_plausibility is None else config.cfg_plausibility,
        text_temperature=spec.text_temperature if config.text_temperature is None else config.text_temperature,
        image_temperature=spec.image_temperature if config.image_temperature is None else config.image_temperature,
    )

    row_prompts, row_index, row_seeds, row_prompt_ids, row_chain = [], [], [], [], []
    for prompt, chain in zip(prompt_list, chain_list):
        ids = encode_prompt(got, prompt)
        for i in range(config.num_samples):
            row_prompts.append(prompt)
            row_index.append(i)
            row_seeds.append(config.seed)
            row_prompt_ids.append(ids)
            row_chain.append(chain)
    given = [c is not None for c in row_chain]
    if any(given) and not all(given):
        raise ValueError("give a chain for every prompt or for none")
    if streams is None:
        streams = range(config.first_index, config.first_index + len(row_prompts))
    streams = [int(s) for s in streams]
    if len(streams) != len(row_prompts) or min(streams) < 0:
        raise ValueError(f"streams: give one stream >= 0 per row ({len(row_prompts)}), got {len(streams)}")
    keys_all = row_keys(row_seeds, streams, got.device)

    reason_rows: list[list[int]] = []
    reason_lps: list[torch.Tensor] = []
    finished: list[bool] = []
    image_ids, image_lps, image_passes = [], [], 0
    for start in range(0, len(row_prompts), config.max_batch):
        sl = slice(start, start + config.max_batch)
        keys = keys_all[sl]
        if all(given):
            chunk_reason = [encode_chain(got, c, p) for c, p in zip(row_chain[sl], row_prompts[sl])]
            chunk_lps = [torch.zeros(len(r)) for r in chunk_reason]
            chunk_finished = [True] * len(chunk_reason)
        else:
            tokens, lps = _reason(got, row_prompt_ids[sl], keys, config, callback,
                                  got.num_image_tokens + 1 if images else 0, preview)
            chunk_reason, chunk_lps, chunk_finished = _trim(got, tokens.cpu(), lps.cpu())
        reason_rows += chunk_reason
        reason_lps += chunk_lps
        finished += chunk_finished
        if images:
            cond = [p + chain_for_image(got, r) for p, r in zip(row_prompt_ids[sl], chunk_reason)]
            draw = _draw_jacobi if config.image_decoding == "jacobi" else _draw
            tok, lp, passes = draw(got, cond, keys, config, callback, preview)
            image_passes += passes
            image_ids.append(tok.cpu())
            image_lps.append(lp.cpu())

    chains_text = (list(row_chain) if all(given)
                   else [got.tokenizer.decode(r, skip_special_tokens=False) for r in reason_rows])
    width = max(len(r) for r in reason_rows)
    reason_ids = torch.full((len(reason_rows), width), got.token_ids.pad, dtype=torch.long)
    reason_mask = torch.zeros((len(reason_rows), width), dtype=torch.bool)
    reason_logprobs = torch.zeros((len(reason_rows), width), dtype=torch.float32)
    for i, (row, lp) in enumerate(zip(reason_rows, reason_lps)):
        reason_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        reason_mask[i, : len(row)] = True
        reason_logprobs[i, : len(row)] = lp

    result = GenerationResult(
        prompts=row_prompts, sample_index=row_index, seeds=row_seeds, streams=streams, chains=chains_text,
        parsed=[parse_chain(c) for c in chains_text], prompt_ids=row_prompt_ids,
        reason_ids=reason_ids, reason_mask=reason_mask, reason_logprobs=reason_logprobs,
        finished=torch.tensor(finished, dtype=torch.bool), chain_given=all(given),
        settings={k: getattr(config, k) for k in ("seed", "cfg_scale", "cfg_plausibility", "text_temperature",
                                                  "image_temperature", "top_k", "top_p", "max_reason_tokens",
                                                  "num_samples", "first_index", "image_decoding")},
    )
    if images:
        result.settings["image_passes"] = image_passes  # forward passes of the image stage, all chunks
        result.image_ids = torch.cat(image_ids)
        result.image_logprobs = torch.cat(image_lps)
        if decode:
            result.images = decode_images(got, result.image_ids, config.max_batch)
    return result


def _trim(got: GotModel, tokens: torch.Tensor, logprobs: torch.Tensor):
    """Cut each row after its stop token; rows without one were truncated."""
    stops = {got.token_ids.image_start, got.token_ids.eos}
    rows, lps, finished = [], [], []
    for row, lp in zip(tokens.tolist(), logprobs):
        end = next((i + 1 for i, tok in enumerate(row) if tok in stops), len(row))
        rows.append(row[:end])
        lps.append(lp[:end])
        finished.append(end < len(row) or row[-1] in stops)
    return rows, lps, finished


def chain_for_image(got: GotModel, reason: list[int]) -> list[int]:
    """The chain as stage 2 sees it: without a trailing EOS, ending in the image-start token."""
    ids = list(reason)
    if ids and ids[-1] == got.token_ids.eos:
        ids.pop()
    if not ids or ids[-1] != got.token_ids.image_start:
        ids.append(got.token_ids.image_start)
    return ids
