"""Measures the peak memory of one generation on the CPU, for test_memory.py.

usage: memory_peak_driver.py MODEL_FOLDER IMAGES decode|tokens [WEIGHTS_MODE]

How: the process loads the model and generates once to warm up (libraries,
kernels), frees it, reads its resident set size and resets the kernel's
high-water mark (``/proc/self/clear_refs``); then it loads the model again and
generates ``IMAGES`` images from one given chain (with the VQ decode, or the
image tokens only). Measured peak = the high-water mark (``VmHWM``) minus that
baseline. (Not ``ru_maxrss``: it keeps the parent's resident set at the fork,
so under a large pytest process it reads the parent.) Run with glibc's
``MALLOC_MMAP_THRESHOLD_`` fixed low, so every tensor is its own mapping,
returned when freed and resident only while alive.
Prints JSON: the measured peak and the plan's bytes for the same generation.
"""

import gc
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gotr1_core.generation import GenerationConfig, encode_chain, encode_prompt, generate  # noqa: E402
from gotr1_core.memory import plan_memory  # noqa: E402
from gotr1_core.model.loading import load_model  # noqa: E402
from gotr1_core.model.quantize import split_weights_mode  # noqa: E402

PROMPT = "a red circle left of a blue square"
CHAIN = ("a <|obj_start|>red circle<|obj_end|> <|box_start|>(100,200),(400,500)<|box_end|> left of a "
         "<|obj_start|>blue square<|obj_end|> <|box_start|>(500,200),(900,600)<|box_end|>")


def status_bytes(field: str) -> int:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``) in bytes."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


if __name__ == "__main__":
    folder, images, what = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    mode = sys.argv[4] if len(sys.argv) > 4 else "fp32"
    dtype, quantize = split_weights_mode(mode)
    warm = load_model(folder, device="cpu", dtype=dtype, quantize=quantize)
    generate(warm, PROMPT, GenerationConfig(num_samples=1, seed=0, cfg_scale=3.0), chains=CHAIN)
    del warm
    gc.collect()
    baseline = status_bytes("VmRSS")
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")  # the high-water mark starts again from here
    got = load_model(folder, device="cpu", dtype=dtype, quantize=quantize)
    generate(got, PROMPT, GenerationConfig(num_samples=images, seed=0, cfg_scale=3.0, max_batch=images),
             chains=CHAIN, decode=what == "decode")
    measured = status_bytes("VmHWM") - baseline
    plan = plan_memory(got.model.config, images, weights=mode, device="cpu",
                       prompt_tokens=len(encode_prompt(got, PROMPT)), reason_tokens=len(encode_chain(got, CHAIN)) - 1,
                       chain_given=True)
    planned = plan.peak if what == "decode" else plan.weights + plan.stage_peaks["image tokens"]
    print(json.dumps({"measured": measured, "planned": planned}))
