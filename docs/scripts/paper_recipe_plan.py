"""The memory plans of the paper's recipe in docs/training.md, from published sizes alone.

Writes folders holding only the config.json of GoT-R1-7B, Qwen2.5-VL-7B-Instruct and HPS v2.1 (ViT-H/14) into a
temporary directory, points ``trainer/configs/gotr1_paper_recipe.yaml`` at them and prints what
``gotr1-train grpo --dry-run`` prints for each setup: the recipe (LoRA r = 32) on the paper's 8 GPUs, a full
fine-tune on 8 GPUs with ZeRO-2, and the recipe on one 80 GB card.

    python docs/scripts/paper_recipe_plan.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

SETUPS = (("8 x 80 GB, the recipe (LoRA r = 32)", 8, []), ("8 x 80 GB, full fine-tune, ZeRO-2", 8, ["lora_rank=0"]),
          ("1 x 80 GB, the recipe (LoRA r = 32)", 1, []))


def main(argv: list[str] | None = None) -> str:
    from trainer.config import load_config
    from trainer.grpo import GRPOConfig
    from trainer.plan import dry_run, write_skeleton

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        prompts = tmp / "prompts.jsonl"
        prompts.write_text('{"prompt": "a red apple left of a blue cup"}\n', encoding="utf-8")
        folders = [f"model={write_skeleton('GoT-R1-7B', tmp / 'GoT-R1-7B')}",
                   f"judge={write_skeleton('Qwen2.5-VL-7B-Instruct', tmp / 'Qwen2.5-VL-7B-Instruct')}",
                   f"quality_model={write_skeleton('HPS-v2.1', tmp / 'HPS-v2.1')}",
                   f"prompts={prompts}", f"eval_prompts=[{prompts}]", f"output_dir={tmp / 'run'}"]
        parts = []
        for title, gpus, overrides in SETUPS:
            config = load_config(GRPOConfig, ROOT / "trainer" / "configs" / "gotr1_paper_recipe.yaml",
                                 folders + overrides + list(argv or []))
            parts.append(f"## {title}\n" + dry_run(config, gpus, "80GB").replace(str(tmp) + "/", ""))
    text = "\n\n".join(parts)
    print(text)
    return text


if __name__ == "__main__":
    main(sys.argv[1:])
