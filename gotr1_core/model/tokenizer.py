"""Tokenizers for GoT-R1 checkpoints: check the chain tokens, or train a small one.

The chain tags and ``<begin_of_image>`` must each be a single token: the
planner stops on the image-start id, and a tag split into pieces would let the
model emit half a tag. :func:`check_chain_tokens` says clearly when a
checkpoint's tokenizer lacks them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from ..reasoning import CHAIN_TOKENS, IMAGE_START

# Janus' own special-token spellings (fullwidth bars and U+2581), kept so that
# tokenizers we train look like the checkpoints users bring.
BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
PAD = "<｜▁pad▁｜>"
IMAGE_END = "<end_of_image>"
IMAGE_PLACEHOLDER = "<image_placeholder>"
SPECIAL_TOKENS = (BOS, EOS, PAD, *CHAIN_TOKENS, IMAGE_START, IMAGE_END, IMAGE_PLACEHOLDER)


class TokenizerError(ValueError):
    """A tokenizer that cannot serve GoT-R1 (missing or split special tokens)."""


@dataclass(frozen=True)
class ChainTokenIds:
    """Ids of the tokens generation relies on."""

    bos: int | None
    eos: int | None
    pad: int
    image_start: int
    obj_start: int
    obj_end: int
    box_start: int
    box_end: int


def _single_id(tokenizer, token: str) -> int | None:
    ids = tokenizer.encode(token, add_special_tokens=False)
    return ids[0] if len(ids) == 1 else None


def check_chain_tokens(tokenizer, pad_token: str = PAD, image_start: str = IMAGE_START,
                       where: str = "the tokenizer") -> ChainTokenIds:
    """Ids of the chain tokens; :class:`TokenizerError` listing every one that is not a single token."""
    wanted = {"obj_start": CHAIN_TOKENS[0], "obj_end": CHAIN_TOKENS[1], "box_start": CHAIN_TOKENS[2],
              "box_end": CHAIN_TOKENS[3], "image_start": image_start, "pad": pad_token}
    ids, missing = {}, []
    for field, token in wanted.items():
        token_id = _single_id(tokenizer, token)
        if token_id is None and field == "pad" and tokenizer.pad_token_id is not None:
            token_id = tokenizer.pad_token_id
        if token_id is None:
            missing.append(token)
        ids[field] = token_id
    if missing:
        raise TokenizerError(
            f"{where} does not encode {', '.join(missing)} as single tokens; GoT-R1 chains need them. "
            "Use the tokenizer of a GoT-R1 checkpoint, or add them with "
            "tokenizer.add_tokens([...]) and resize the model's embeddings before fine-tuning."
        )
    return ChainTokenIds(bos=tokenizer.bos_token_id, eos=tokenizer.eos_token_id, **ids)


def encode_prompt_ids(tokenizer, text: str) -> list[int]:
    """Ids of a formatted prompt, starting with exactly one BOS whatever the tokenizer files say.

    Checkpoints disagree on who adds BOS: some ``tokenizer.json`` files carry a
    post-processor that prepends it, others leave it to ``add_bos_token`` in
    ``tokenizer_config.json`` (which Janus' own loader honours). The model was
    trained on prompts that start with one BOS, and the unconditional CFG row
    keeps the first token, so the prompt is encoded bare and BOS put in front
    here, once.
    """
    ids = tokenizer.encode(text, add_special_tokens=False)
    bos = tokenizer.bos_token_id
    if bos is not None and (not ids or ids[0] != bos):
        ids.insert(0, bos)
    return ids


def train_tokenizer(texts: Iterable[str], vocab_size: int = 512, extra_special: tuple[str, ...] = (),
                    split_digits: bool = True):
    """Train a byte-level BPE tokenizer carrying the chain and Janus special tokens.

    Byte-level: any prompt encodes without unknown tokens. With
    ``split_digits`` numbers are split into single digits before BPE, as
    DeepSeek's tokenizer (Janus-Pro, GoT-R1) splits them: every coordinate of the 0-1000 grid is then a sequence over
    ten digit tokens the model sees all of, rather than a whole-number token
    for the values its training chains happened to use and unseen pieces for
    the rest. Returns a ``PreTrainedTokenizerFast`` that adds BOS like Janus'
    tokenizer does.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = list(SPECIAL_TOKENS) + [t for t in extra_special if t not in SPECIAL_TOKENS]
    core = Tokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.pre_tokenizer = (pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
                          if split_digits else byte_level)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    core.train_from_iterator(texts, trainer=trainer)
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, core.token_to_id(BOS))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token=BOS, eos_token=EOS, pad_token=PAD,
        additional_special_tokens=specials[3:], clean_up_tokenization_spaces=False,
    )
