"""What a model folder says about itself, read without loading anything: ``gotr1.json``.

Torch-free on purpose: the command line's help prints the built-in model's
settings, and nothing should load torch for that.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..reasoning import IMAGE_START
from .tokenizer import PAD

BUILTIN_MODEL = Path(__file__).resolve().parents[1] / "assets" / "shapeworld-tiny"
"""The built-in ShapeWorld model's folder (shipped inside the package)."""
QUANTIZED_MODES = ("fp8", "int8", "int4")
"""How a model's decoder layers may be stored (:mod:`.quantize` does it)."""

IMAGE_DECODING = ("sequential", "jacobi")
"""How stage 2 writes image tokens: one forward pass per token, or speculative Jacobi decoding (a draft of
``draft_tokens`` guesses checked per pass, the same distribution: :mod:`gotr1_core.speculative`)."""
DRAFT_TOKENS = 16
"""Guesses checked per pass by speculative Jacobi decoding, unless asked otherwise."""


class CheckpointError(ValueError):
    """A model folder that cannot be loaded; the message names the file and what was expected."""


SPEC_FILE = "gotr1.json"
PLAN_WORDINGS = ("as_written", "shapeworld")
GOTR1_TEMPLATE = "User: Follow the caption to generate an image through a chain of thought process: {prompt}\n\nAssistant:"


@dataclass(frozen=True)
class GenerationSpec:
    """How a checkpoint expects to be prompted (``gotr1.json`` in the model folder).

    ``prompt_template`` wraps the user's prompt (``{prompt}``) in the chat
    format the model was trained on; BOS is put in front when it is encoded
    (:func:`~gotr1_core.model.tokenizer.encode_prompt_ids`). ``plan_wording``
    says how a plan given to the model is read: ``as_written``, or
    ``shapeworld`` — its tagged objects and boxes reworded into the ShapeWorld
    template first (the built-in model,
    :func:`~gotr1_core.shapeworld.plans.reworded`).
    """

    prompt_template: str = GOTR1_TEMPLATE
    image_start_token: str = IMAGE_START
    pad_token: str = PAD
    max_reason_tokens: int = 600
    cfg_scale: float = 5.0
    cfg_plausibility: float = 0.0
    text_temperature: float = 1.0
    image_temperature: float = 1.0
    plan_wording: str = "as_written"

    def __post_init__(self) -> None:
        if self.prompt_template.count("{prompt}") != 1:
            raise CheckpointError(f"prompt_template must contain '{{prompt}}' exactly once: {self.prompt_template!r}")
        if self.plan_wording not in PLAN_WORDINGS:
            raise CheckpointError(f"plan_wording must be one of {', '.join(PLAN_WORDINGS)}, got {self.plan_wording!r}")

    def format_prompt(self, prompt: str) -> str:
        """Trailing whitespace is dropped, leading kept: as the GoT-R1 release prompts its models."""
        return self.prompt_template.replace("{prompt}", prompt.rstrip())

    @classmethod
    def read(cls, folder: Path) -> "GenerationSpec":
        path = folder / SPEC_FILE
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{path}: not valid JSON ({exc})") from None
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CheckpointError(f"{path}: unknown keys {unknown}; expected some of {sorted(known)}")
        return cls(**data)

    def write(self, folder: Path) -> None:
        (folder / SPEC_FILE).write_text(json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n",
                                        encoding="utf-8")


def default_values(name: str) -> str:
    """Where a generation setting comes from when not given, as help texts and tooltips state it: the built-in
    model's value and upstream's for a folder without a ``gotr1.json``, read from the files, never written by
    hand (``0.7 for the built-in model, 1 for a folder without one (upstream's)``)."""
    upstream = f"{getattr(GenerationSpec(), name):g} for a folder without one (upstream's)"
    try:
        return f"{getattr(GenerationSpec.read(BUILTIN_MODEL), name):g} for the built-in model, {upstream}"
    except (OSError, ValueError):  # help must never fail: say what is known
        return upstream
