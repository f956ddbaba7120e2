"""``gotr1 demo``: the whole GoT-R1 idea on one sheet.

Plans ``n`` chains for a prompt, draws an image from each, judges them
(exactly, when the prompt is a ShapeWorld prompt), and writes one PNG: the
prompt; per sample the planned layout, the image, the image with the plan
overlaid, and its rewards; and the first chain's text.
"""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .images import to_uint8
from .generation import GenerationConfig, GenerationResult, generate
from .layout import render_layout
from .model.loading import GotModel, load_model
from .model.spec import DRAFT_TOKENS

BUILTIN_MODEL = Path(__file__).parent / "assets" / "shapeworld-tiny"
DEFAULT_PROMPT = "a red circle left of a blue square"
TILE = 192
PAD = 12


def builtin_model_path() -> Path:
    if not (BUILTIN_MODEL / "config.json").exists():
        raise FileNotFoundError(f"the built-in ShapeWorld model is missing from {BUILTIN_MODEL}; "
                                "reinstall the package or pass --model DIR")
    return BUILTIN_MODEL


def is_builtin(got: GotModel) -> bool:
    return got.path is not None and Path(got.path).resolve() == BUILTIN_MODEL.resolve()


def model_prompt(got: GotModel, prompt: str) -> str:
    """The prompt as ``got`` should see it.

    The built-in model was trained on ShapeWorld's canonical prompts only, so
    any usual phrasing ("a red circle to the left of a blue square") is
    rewritten into the world's own wording first; a prompt outside the world
    raises ``ShapeWorldPromptError`` with its vocabulary and the closest prompt
    it understands. Other models get the prompt as written.
    """
    if is_builtin(got):
        from .shapeworld import canonical_prompt

        return canonical_prompt(prompt)
    return prompt


def _tile(image: np.ndarray) -> Image.Image:
    return Image.fromarray(image).resize((TILE, TILE), Image.NEAREST)


def build_sheet(prompt: str, result: GenerationResult, rewards=None) -> Image.Image:
    """The demo sheet as a PIL image."""
    n = len(result.chains)
    font = ImageFont.load_default(size=16)
    small = ImageFont.load_default(size=12)
    chain_lines = textwrap.wrap(result.chains[0], width=max(40, (n * (TILE + PAD)) // 7))[:12]
    width = PAD + n * (TILE + PAD)
    height = 40 + 3 * (TILE + PAD) + 80 + 18 * len(chain_lines) + PAD
    sheet = Image.new("RGB", (max(width, 480), height), (250, 250, 250))
    draw = ImageDraw.Draw(sheet)
    draw.text((PAD, 10), f"prompt: {prompt}", fill=(0, 0, 0), font=font)
    for i in range(n):
        x = PAD + i * (TILE + PAD)
        layout = result.layouts[i]
        image = to_uint8(result.images[i])
        plan = to_uint8(render_layout(layout, TILE, TILE))
        big = np.asarray(_tile(image))
        overlay = to_uint8(render_layout(layout, background=big, fill_alpha=0.0))
        for row, picture in enumerate((plan, big, overlay)):
            sheet.paste(Image.fromarray(picture), (x, 40 + row * (TILE + PAD)))
        label = f"sample {i} (seed {result.seeds[i]})"
        if rewards is not None:
            label += f"\ntotal {rewards.total[i]:.2f}  {'correct' if rewards.correct and rewards.correct[i] else ''}"
            label += (f"\nsem {rewards.r_sem[i]:.2f} spa {rewards.r_spa[i]:.2f} "
                      f"ri {rewards.r_ri[i]:.2f} pi {rewards.r_pi[i]:.2f}")
        draw.multiline_text((x, 40 + 3 * (TILE + PAD)), label, fill=(0, 0, 0), font=small)
    y = 40 + 3 * (TILE + PAD) + 80
    draw.text((PAD, y - 16), "rows: planned layout / image / image with plan.  chain of sample 0:",
              fill=(90, 90, 90), font=small)
    for line in chain_lines:
        draw.text((PAD, y), line, fill=(30, 30, 30), font=small)
        y += 18
    return sheet


def run_demo(prompt: str = DEFAULT_PROMPT, num: int = 4, output: str | Path = "out", model: str | Path | None = None,
             seed: int = 0, device: str = "auto", got: GotModel | None = None, image_decoding: str = "sequential",
             draft_tokens: int = DRAFT_TOKENS) -> dict:
    """Plan, generate, judge and write ``demo.png`` (``got``: an already loaded model)."""
    from .rewards import ShapeWorldJudge
    from .shapeworld import ShapeWorldPromptError, parse_prompt

    start = time.perf_counter()
    got = got or load_model(model or builtin_model_path(), device=device)
    loaded = time.perf_counter()
    prompt = model_prompt(got, prompt)
    result = generate(got, prompt, GenerationConfig(num_samples=num, seed=seed, image_decoding=image_decoding,
                                                    draft_tokens=draft_tokens))
    generated = time.perf_counter()
    rewards = None
    try:
        parse_prompt(prompt)
        rewards = ShapeWorldJudge().score(result.prompts, result.chains, None, result.images)
    except ShapeWorldPromptError:
        pass  # not a ShapeWorld prompt: no exact rewards
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "demo.png"
    build_sheet(prompt, result, rewards).save(path)
    return {"sheet": str(path), "prompt": prompt, "load_seconds": loaded - start,
            "generate_seconds": generated - loaded,
            "total_seconds": time.perf_counter() - start, "chains": result.chains,
            "rewards": rewards.to_list() if rewards is not None else None}
