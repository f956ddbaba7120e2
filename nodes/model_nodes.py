"""Nodes that load a GoT-R1 model, plan a chain and generate images."""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch

from gotr1_core.demo import builtin_model_path, model_prompt
from gotr1_core.fitting import fitting_chunk, generate_fitting
from gotr1_core.generation import GenerationConfig, GenerationResult, encode_prompt, generate
from gotr1_core.layout import Layout
from gotr1_core.model.loading import GotModel, load_model, resolve_dtype
from gotr1_core.model.quantize import WEIGHT_MODES, split_weights_mode
from gotr1_core.model.spec import IMAGE_DECODING, default_values
from gotr1_core.reasoning import chain_to_draw, diagnostics_text, join_chains

from . import services
from .layout_nodes import GOT_LAYOUT
from .previews import LivePreview

GOT_MODEL = "GOT_MODEL"
CATEGORY = "GoT-R1"
BUILTIN = "shapeworld-tiny (built in)"
MAX_SEED = 0xFFFFFFFFFFFFFFFF


@dataclass(eq=False)
class LoadedModel:
    """What travels on a GOT_MODEL link: the model and ComfyUI's handle on its memory."""

    got: GotModel
    handle: services.ManagedModel
    name: str

    def ready(self, prompt: str | None = None, config: GenerationConfig | None = None,
              chain_given: bool = False) -> GotModel:
        """The model on its device; with a generation's ``prompt`` and ``config``, loaded together with the
        memory the plan says that generation needs (ComfyUI unloads other models for both)."""
        need = 0
        if config is not None:
            need = services.generation_need(self.got, self.handle.load_device,
                                            len(encode_prompt(self.got, prompt)), config, chain_given)
        self.handle.load(need)
        return self.got


_loaded: "weakref.WeakValueDictionary[tuple, LoadedModel]" = weakref.WeakValueDictionary()


class ModelLoader:
    CATEGORY = CATEGORY
    RETURN_TYPES = (GOT_MODEL,)
    RETURN_NAMES = ("model",)
    FUNCTION = "load"
    DESCRIPTION = "Loads a GoT-R1 / Janus-Pro model folder from models/gotr1/."

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ([BUILTIN] + services.list_model_dirs(), {
                    "tooltip": "The built-in ShapeWorld model, or a model folder inside models/gotr1/ "
                               "(config.json, safetensors, tokenizer)."}),
                "weights": (list(WEIGHT_MODES), {
                    "default": "auto", "tooltip": "auto: bf16 on GPU (fp16 where unsupported), fp32 on CPU. "
                    "fp8 / int8 (one byte per weight) and int4 (NF4, half a byte) store the language model's "
                    "layers quantized and compute in the auto dtype: for GPUs the model does not fit otherwise."}),
                "device": (["auto", "cpu"], {
                    "default": "auto", "tooltip": "auto: ComfyUI's compute device; cpu forces the CPU."}),
            }
        }

    @classmethod
    def IS_CHANGED(cls, model: str, weights: str, device: str):
        """Re-run when the folder's files change (say, a new export written over it), not otherwise."""
        return services.loader_is_changed(_model_folder, model)

    def load(self, model: str, weights: str, device: str):
        folder = _model_folder(model)
        dtype, quantize = split_weights_mode(weights)
        target = services.torch_device() if device == "auto" else torch.device("cpu")
        key = (str(folder), weights, str(target), services.folder_fingerprint(folder))
        cached = _loaded.get(key)
        if cached is not None:
            return (cached,)
        services.make_room_for(folder, target)
        got = load_model(folder, device=services.offload_device(), dtype=resolve_dtype(dtype, target),
                         quantize=quantize)
        loaded = LoadedModel(got, services.ManagedModel(got.model, target, services.offload_device()), model)
        _loaded[key] = loaded
        return (loaded,)


def _model_folder(model: str):
    return builtin_model_path() if model == BUILTIN else services.resolve_model_dir(model)


def _progress_callback(total_steps: int):
    """Map generation progress onto a ComfyUI progress bar; cancel between token blocks. Returns the callback
    and the bar (live previews are shown on it)."""
    bar = services.progress_bar(total_steps)
    state = {"stage": None, "base": 0, "last": 0}

    def callback(stage: str, done: int, total: int) -> None:
        services.check_interrupted()
        if stage != state["stage"] or done < state["last"]:  # next stage or next chunk of the batch
            state["base"] += state["last"]
            state["stage"] = stage
        state["last"] = done
        bar.update_absolute(min(state["base"] + done, total_steps), total_steps)

    return callback, bar


def _check_model(model) -> LoadedModel:
    if not isinstance(model, LoadedModel):
        raise TypeError(f"'model' must come from a GoT-R1 Model Loader, got {type(model).__name__}")
    return model


def _seed_input(tooltip: str):
    return ("INT", {"default": 0, "min": 0, "max": MAX_SEED, "tooltip": tooltip})


MODEL_DEFAULT = -1.0
"""A cfg or temperature of -1 takes the checkpoint's own setting (its gotr1.json)."""


def _own_setting(name: str) -> str:
    """What -1 means for a setting, with the values a user will meet."""
    return f" -1: the model's own setting (its gotr1.json): {default_values(name)}."


def _temperature_input(tooltip: str, setting: str):
    return ("FLOAT", {"default": MODEL_DEFAULT, "min": MODEL_DEFAULT, "max": 2.0, "step": 0.05,
                      "tooltip": tooltip + _own_setting(setting)})


def _or_model_default(value: float) -> float | None:
    return None if value < 0 else value


MODEL_INPUT = (GOT_MODEL, {"tooltip": "From GoT-R1 Model Loader."})
LIVE_PREVIEW_INPUT = ("BOOLEAN", {"default": True, "tooltip": "Show the work while it happens (the image so far, "
                                  "the chain so far); they cost about 1 % of the run's time."})
PROMPT_INPUT = ("STRING", {"multiline": True, "default": "", "tooltip": "What the image should show."})


class ReasoningPlanner:
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING", GOT_LAYOUT)
    RETURN_NAMES = ("chain", "layout")
    FUNCTION = "plan"
    DESCRIPTION = "Stage 1: the model writes a reasoning chain that places every object with a box."

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": MODEL_INPUT,
                "prompt": PROMPT_INPUT,
                "seed": _seed_input("Same seed, same chain."),
                "temperature": _temperature_input("Sampling temperature of the chain; 0 is greedy.",
                                                  "text_temperature"),
                "max_tokens": ("INT", {"default": -1, "min": -1, "max": 4096,
                                       "tooltip": "Longest chain in tokens; the chain is cut there (and where the "
                                                  "model's context ends)." + _own_setting("max_reason_tokens")}),
            },
            "optional": {"live_preview": LIVE_PREVIEW_INPUT},
        }

    def plan(self, model, prompt: str, seed: int, temperature: float, max_tokens: int, live_preview: bool = True):
        loaded = _check_model(model)
        prompt = model_prompt(loaded.got, prompt)
        if max_tokens == 0 or max_tokens < -1:
            raise ValueError(f"max_tokens must be -1 (the model's own setting) or at least 1, got {max_tokens}")
        limit = loaded.got.spec.max_reason_tokens if max_tokens == -1 else max_tokens
        config = GenerationConfig(seed=seed, text_temperature=_or_model_default(temperature),
                                  max_reason_tokens=limit)
        got = loaded.ready(prompt, config)
        callback, _ = _progress_callback(limit)
        preview = LivePreview(got) if live_preview else None
        result = generate(got, prompt, config, images=False, callback=callback, preview=preview)
        if preview is not None:
            preview.finish(result.chains[0])
        return (result.chains[0], result.layouts[0])


class Generator:
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "STRING", "STRING")
    RETURN_NAMES = ("images", "chains", "diagnostics")
    FUNCTION = "generate"
    DESCRIPTION = ("Both stages: plans a chain per image (or uses the chain / layout you give) and draws "
                   "the images from it.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": MODEL_INPUT,
                "prompt": PROMPT_INPUT,
                "batch_size": ("INT", {"default": 4, "min": 1, "max": 64,
                                       "tooltip": "Images to generate; each plans its own chain."}),
                "cfg": ("FLOAT", {"default": MODEL_DEFAULT, "min": MODEL_DEFAULT, "max": 20.0, "step": 0.1,
                                  "tooltip": "Classifier-free guidance scale of the image stage; 1 turns it off."
                                             + _own_setting("cfg_scale")}),
                "seed": _seed_input("Image i of the batch draws from (seed, i): the same image whatever the "
                                    "batch size, and a new seed gives a wholly new batch. To redraw image i "
                                    "alone, keep the seed and set batch_size 1 and first_index i."),
                "text_temperature": _temperature_input("Chain sampling temperature; 0 is greedy.", "text_temperature"),
                "image_temperature": _temperature_input("Image-token sampling temperature; 0 is greedy.",
                                                        "image_temperature"),
            },
            "optional": {
                "chain": ("STRING", {"multiline": True, "default": "",
                                     "tooltip": "A chain to draw instead of planning one: paste the planner's "
                                                "chain here and edit its boxes (keep the prompt, change the "
                                                "layout). Empty: plan. Wins over 'layout'."}),
                "layout": (GOT_LAYOUT, {"tooltip": "A layout to draw instead of planning one."}),
                "first_index": ("INT", {"default": 0, "min": 0, "max": 0xFFFF,
                                        "tooltip": "Number the images from here: image k of this run is image "
                                                   "first_index + k of the seed's sequence."}),
                "live_preview": LIVE_PREVIEW_INPUT,
                "image_decoding": (list(IMAGE_DECODING), {
                    "default": "sequential",
                    "tooltip": "sequential: one model pass per image token. jacobi: speculative Jacobi decoding, "
                               "several guessed tokens checked per pass; images from the same distribution in "
                               "fewer passes (which image a seed gives differs from sequential)."}),
            },
        }

    def generate(self, model, prompt: str, batch_size: int, cfg: float, seed: int, text_temperature: float,
                 image_temperature: float, chain: str | None = None, layout: Layout | None = None,
                 first_index: int = 0, live_preview: bool = True, image_decoding: str = "sequential"):
        loaded = _check_model(model)
        prompt = model_prompt(loaded.got, prompt)
        given, report = None, None
        if chain and chain.strip():
            given, parsed = chain_to_draw(chain)  # drawn as repaired; no box at all is an error
            report = "given chain: " + diagnostics_text(parsed)
            if parsed.diagnostics:
                print(f"[GoT-R1 Generator] the chain was repaired before drawing:\n{diagnostics_text(parsed)}")
        elif isinstance(layout, Layout):
            given, report = layout.to_chain(), "given layout: no problems found"
        config = GenerationConfig(num_samples=batch_size, seed=seed, first_index=first_index,
                                  cfg_scale=_or_model_default(cfg),
                                  text_temperature=_or_model_default(text_temperature),
                                  image_temperature=_or_model_default(image_temperature),
                                  image_decoding=image_decoding)
        got = loaded.ready(prompt, config, chain_given=given is not None)
        steps = (0 if given else got.spec.max_reason_tokens) + got.num_image_tokens
        chunk = fitting_chunk(got, batch_size, config, given is not None, len(encode_prompt(got, prompt)),
                              services.free_bytes(got.device))
        callback, bar = _progress_callback(steps * -(-batch_size // chunk))
        preview = LivePreview(got, bar) if live_preview else None
        result: GenerationResult = generate_fitting(got, prompt, config, chains=given, chunk=chunk, callback=callback,
                                                    preview=preview)
        if preview is not None:
            preview.finish(None if given else result.chains[0], result.images[0])
        if report is None:  # the model's own chains, one report per image
            report = "\n".join(f"image {i}: {diagnostics_text(p)}" for i, p in zip(result.streams, result.parsed))
        return (result.images, join_chains(result.chains), report)


NODE_CLASS_MAPPINGS = {
    "GoTR1ModelLoader": ModelLoader,
    "GoTR1ReasoningPlanner": ReasoningPlanner,
    "GoTR1Generator": Generator,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "GoTR1ModelLoader": "GoT-R1 Model Loader",
    "GoTR1ReasoningPlanner": "GoT-R1 Reasoning Planner",
    "GoTR1Generator": "GoT-R1 Generator",
}
