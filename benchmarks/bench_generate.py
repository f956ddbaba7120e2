"""Generation speed: ours vs a naive per-token loop vs transformers' generate, same weights and seed.

    python benchmarks/bench_generate.py [--batch 8] [--hidden 512] [--layers 8] [--device cpu]

Builds a random mid-size Janus (written to a temp folder and loaded through the
public loader), then generates ``--batch`` images of one prompt, each row writing its own chain
(greedy, so all rows are equal), three ways:

(a) naive: the reference procedure of the upstream release — one sample at a
    time, a Python loop per token that reads each token back to the host
    (``.item()``) to test for the stop token, KV cache, CFG on a pair of rows;
(b) transformers: ``generate()`` for the chain (text mode), then
    ``generate(generation_mode="image")`` for the image tokens, batched;
(c) ours: ``gotr1_core.generation.generate`` (batched both stages, one forward
    per step, host checks once per ``check_every`` tokens).

All greedy, so the three must produce identical tokens; the script checks that.
Reports images/s and image tokens/s (chain + image stages + VQ decode), median of
interleaved repeats.

    python benchmarks/bench_generate.py --quantize fp8 int8 int4 [--hidden 1024]

compares weights modes instead: the same model loaded in full precision and in
each mode, ours only — parameter memory, generation time, and how many greedy
chain and image tokens agree with full precision.

    python benchmarks/bench_generate.py --decoding [--builtin] [--batches 1 8] [--draft-tokens 16]

compares the image stage's decodings instead, at the model's own sampling
settings: sequential (one forward pass per image token) and speculative Jacobi
decoding, as it runs here (on the CPU its draft width adapts) and with a fixed
draft width (as on a GPU). Chains are planned once per batch and given to both, so only the
image stage is timed. Reports forward passes per image stage (what a GPU's time
follows), wall time (median of interleaved repeats) and whether greedy decoding
gives identical tokens. ``--builtin`` uses the built-in ShapeWorld model instead
of the random one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gotr1_core.generation import GenerationConfig, chain_for_image, decode_images, encode_prompt, generate  # noqa: E402
from gotr1_core.model.configs import small_janus_config  # noqa: E402
from gotr1_core.model.loading import GenerationSpec, load_model  # noqa: E402
from gotr1_core.model.tokenizer import IMAGE_PLACEHOLDER, train_tokenizer  # noqa: E402

PROMPT = "two red circles left of a blue square, a green triangle above a yellow circle"


def build_model(folder: Path, args) -> None:
    from transformers import JanusForConditionalGeneration

    tokenizer = train_tokenizer([PROMPT * 4, "User: Assistant: chain of thought process"] * 20, vocab_size=400)
    ids = {"bos": tokenizer.bos_token_id, "eos": tokenizer.eos_token_id, "pad": tokenizer.pad_token_id,
           "image_placeholder": tokenizer.convert_tokens_to_ids(IMAGE_PLACEHOLDER)}
    config = small_janus_config(vocab_size=args.vocab, hidden_size=args.hidden, num_layers=args.layers,
                                num_heads=args.hidden // 64, grid_size=args.grid, codebook_size=args.codebook,
                                vq_channels=64, vq_levels=3, special_ids=ids)
    torch.manual_seed(0)
    model = JanusForConditionalGeneration(config)
    with torch.no_grad():  # a chain that never stops early: every method does the same work
        model.lm_head.weight[tokenizer.convert_tokens_to_ids("<begin_of_image>")] *= 0
        model.lm_head.weight[tokenizer.eos_token_id] *= 0
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    GenerationSpec(max_reason_tokens=args.reason_tokens).write(folder)


@torch.inference_mode()
def naive(got, batch: int, reason_tokens: int, cfg: float):
    """Per-sample, per-token loop with a host read of every token (the upstream reference procedure)."""
    lm = got.model.model.language_model
    embed = got.model.get_input_embeddings()
    image_start, pad = got.token_ids.image_start, got.token_ids.pad
    chains, images = [], []
    for _ in range(batch):
        prompt_ids = torch.tensor([encode_prompt(got, PROMPT)], device=got.device)
        inputs, cache, generated, token = embed(prompt_ids), None, [], -1
        while token != image_start and len(generated) < reason_tokens:
            out = lm(inputs_embeds=inputs, cache=cache, use_cache=True)
            cache = out.cache
            next_token = torch.argmax(got.model.lm_head(out.last_hidden_state[:, -1]), dim=-1, keepdim=True)
            token = next_token.item()
            generated.append(token)
            inputs = embed(next_token)
        chains.append(generated)
        ids = torch.tensor([prompt_ids[0].tolist() + chain_for_image(got, generated)], device=got.device)
        rows = ids.repeat(2, 1)
        rows[1, 1:-1] = pad
        inputs, cache, tokens = embed(rows), None, []
        for _ in range(got.num_image_tokens):
            out = lm(inputs_embeds=inputs, cache=cache, use_cache=True)
            cache = out.cache
            logits = got.model.model.generation_head(out.last_hidden_state[:, -1])
            logits = logits[1:] + cfg * (logits[:1] - logits[1:])
            next_token = torch.argmax(logits, dim=-1, keepdim=True)
            tokens.append(next_token)
            inputs = got.model.prepare_embeddings_for_image_generation(next_token.repeat(2, 1))
        images.append(torch.cat(tokens, dim=1))
    image_ids = torch.cat(images)
    return chains, image_ids, decode_images(got, image_ids)


@torch.inference_mode()
def transformers_generate(got, batch: int, reason_tokens: int, cfg: float):
    """transformers' own generation, each stage with one complete ``GenerationConfig``.

    The text stage goes straight to ``GenerationMixin.generate``: Janus' ``generate(generation_mode="text")``
    only forwards there, adding an argument beside the config that transformers warns about.
    """
    from transformers import GenerationConfig as HFGenerationConfig
    from transformers import GenerationMixin

    prompt_ids = torch.tensor([encode_prompt(got, PROMPT)] * batch, device=got.device)
    ids_t = got.token_ids
    text_config = HFGenerationConfig(max_new_tokens=reason_tokens, do_sample=False, eos_token_id=ids_t.image_start,
                                     pad_token_id=ids_t.pad, bos_token_id=ids_t.bos)
    text = GenerationMixin.generate(got.model, inputs=prompt_ids, attention_mask=torch.ones_like(prompt_ids),
                                    generation_config=text_config)
    chains = [row[prompt_ids.shape[1]:].tolist() for row in text]
    cond = torch.tensor([prompt_ids[0].tolist() + chain_for_image(got, c) for c in chains], device=got.device)
    image_config = HFGenerationConfig(do_sample=False, guidance_scale=cfg, bos_token_id=ids_t.bos,
                                      pad_token_id=ids_t.pad, generation_kwargs={"boi_token_id": ids_t.image_start})
    image_ids = got.model.generate(cond, attention_mask=torch.ones_like(cond), generation_mode="image",
                                   generation_config=image_config)
    return chains, image_ids, decode_images(got, image_ids)


def ours(got, batch: int, reason_tokens: int, cfg: float):
    result = generate(got, PROMPT, GenerationConfig(num_samples=batch, text_temperature=0, image_temperature=0,
                                                    cfg_scale=cfg, max_reason_tokens=reason_tokens,
                                                    max_batch=batch))
    chains = [row[mask].tolist() for row, mask in zip(result.reason_ids, result.reason_mask)]
    return chains, result.image_ids, result.images


def run_all(methods: dict, got, args) -> dict:
    """Median seconds per method; repeats are interleaved so machine drift hits every method alike."""
    for fn in methods.values():
        fn(got, 1, 4, args.cfg)  # warm-up
    times: dict[str, list[float]] = {name: [] for name in methods}
    outputs = {}
    for _ in range(args.repeats):
        for name, fn in methods.items():
            if got.device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            outputs[name] = fn(got, args.batch, args.reason_tokens, args.cfg)
            if got.device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(times[name]), outputs[name]) for name in methods}


def compare_modes(folder: Path, args) -> int:
    """Each weights mode against full precision on the same model: memory, time, greedy agreement."""
    from gotr1_core.model.quantize import stored_bytes

    modes = ["full", *args.quantize]
    models = {m: load_model(folder, device=args.device, dtype=args.dtype, quantize=None if m == "full" else m)
              for m in modes}
    full = models["full"]
    print(f"model: {sum(p.numel() for p in full.model.parameters()) / 1e6:.1f}M params, hidden {args.hidden}, "
          f"{args.layers} layers, device {full.device}, compute {full.dtype}, threads {torch.get_num_threads()}")
    print(f"batch {args.batch} images, chain {args.reason_tokens} tokens each, cfg {args.cfg}, greedy\n")
    results = run_all({m: (lambda got, *a, m=m: ours(models[m], *a)) for m in modes}, full, args)
    base_time, (base_chains, base_images, _) = results["full"]
    base_bytes = stored_bytes(full.model)
    print(f"{'weights':<9}{'memory':>10}{'vs full':>9}{'seconds':>9}{'img tok/s':>11}{'speed':>8}"
          f"{'same chains':>13}{'same image tokens':>19}")
    for mode, (seconds, (chains, image_ids, _)) in results.items():
        held = stored_bytes(models[mode].model)
        chain_tokens = [(a == b) for x, y in zip(chains, base_chains) for a, b in zip(x, y)]
        same_chain = sum(chain_tokens) / max(1, len(chain_tokens))
        same_image = (image_ids.cpu() == base_images.cpu()).float().mean().item()
        print(f"{mode:<9}{held / 2**20:>8.1f}MB{held / base_bytes:>8.2f}x{seconds:>9.2f}"
              f"{args.batch * full.num_image_tokens / seconds:>11.0f}{base_time / seconds:>7.2f}x"
              f"{same_chain:>12.1%}{same_image:>18.1%}")
    return 0


def compare_decoding(got, args) -> int:
    """Sequential vs speculative Jacobi image decoding at the model's own settings, per batch size."""
    prompt = "a red circle left of a blue square" if args.builtin else PROMPT
    print(f"{'batch':>5}  {'decoding':<13}{'passes':>7}{'fewer':>8}{'seconds':>9}{'faster':>8}  greedy identical")
    identical = True
    for batch in args.batches:
        planned = generate(got, prompt, GenerationConfig(num_samples=batch, max_batch=batch), images=False).chains

        def draw(mode: str, batch=batch, planned=planned, **extra):
            decoding, _, schedule = mode.partition(" ")
            config = GenerationConfig(seed=1, max_batch=batch, image_decoding=decoding, draft_tokens=args.draft_tokens,
                                      draft_schedule=schedule or "auto", **extra)
            return generate(got, [prompt] * batch, config, chains=planned, decode=False)

        # jacobi as it runs here (auto: adaptive on the CPU) and with a fixed draft width, as it runs on a GPU
        modes = ("sequential", "jacobi", "jacobi fixed")
        for mode in modes if args.repeats > 1 else ():  # warm-up (one repeat: a single long run, timed as it is)
            draw(mode)
        times, passes = {mode: [] for mode in modes}, {}
        for _ in range(args.repeats):
            for mode in modes:
                start = time.perf_counter()
                passes[mode] = draw(mode).settings["image_passes"]  # the same every repeat: same seed
                times[mode].append(time.perf_counter() - start)
        greedy = [draw(mode, image_temperature=0).image_ids for mode in modes]
        same = all(torch.equal(greedy[0], ids) for ids in greedy[1:])
        identical &= same
        base = statistics.median(times["sequential"])
        for mode in modes:
            seconds = statistics.median(times[mode])
            print(f"{batch:>5}  {mode:<13}{passes[mode]:>7}{passes['sequential'] / passes[mode]:>7.2f}x"
                  f"{seconds:>9.2f}{base / seconds:>7.2f}x  {'yes' if same else 'NO'}")
    return 0 if identical else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--codebook", type=int, default=4096)
    parser.add_argument("--grid", type=int, default=12, help="image tokens per side")
    parser.add_argument("--reason-tokens", type=int, default=48)
    parser.add_argument("--cfg", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--skip", nargs="*", default=[], choices=["naive", "transformers"])
    parser.add_argument("--quantize", nargs="+", choices=["fp8", "int8", "int4"], metavar="MODE",
                        help="compare these weights modes with full precision instead (ours only)")
    parser.add_argument("--decoding", action="store_true",
                        help="compare sequential and speculative Jacobi image decoding instead (ours only)")
    parser.add_argument("--builtin", action="store_true", help="with --decoding: the built-in ShapeWorld model")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="with --decoding: batch sizes")
    parser.add_argument("--draft-tokens", type=int, default=16, help="with --decoding: guesses checked per pass")
    args = parser.parse_args()

    if args.decoding and args.builtin:
        from gotr1_core.demo import builtin_model_path

        got = load_model(builtin_model_path(), device=args.device, dtype=args.dtype)
        print(f"built-in model, {got.num_image_tokens} image tokens, device {got.device}, "
              f"threads {torch.get_num_threads()}; the model's own sampling settings\n")
        return compare_decoding(got, args)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "bench-janus"
        build_model(folder, args)
        if args.quantize:
            return compare_modes(folder, args)
        if args.decoding:
            got = load_model(folder, device=args.device, dtype=args.dtype)
            print(f"random model: {sum(p.numel() for p in got.model.parameters()) / 1e6:.1f}M params, "
                  f"{got.num_image_tokens} image tokens, device {got.device}, threads {torch.get_num_threads()}; "
                  f"the model's own sampling settings\n")
            return compare_decoding(got, args)
        # transformers' generate(generation_mode="image") reads the vision tower's config: load it too
        got = load_model(folder, device=args.device, dtype=args.dtype, understanding="transformers" not in args.skip)
    params = sum(p.numel() for p in got.model.parameters()) / 1e6
    print(f"model: {params:.1f}M params, hidden {args.hidden}, {args.layers} layers, vocab {args.vocab}, "
          f"{got.num_image_tokens} image tokens, device {got.device}, dtype {got.dtype}, "
          f"threads {torch.get_num_threads()}")
    print(f"batch {args.batch} images, chain {args.reason_tokens} tokens each, cfg {args.cfg}, greedy\n")

    methods = {"naive loop": naive, "transformers generate": transformers_generate, "gotr1 (ours)": ours}
    methods = {k: v for k, v in methods.items()
               if not ("naive" in args.skip and k == "naive loop")
               and not ("transformers" in args.skip and k == "transformers generate")}
    results = run_all(methods, got, args)
    ours_time, (ours_chains, ours_images, _) = results["gotr1 (ours)"]
    n_tokens = args.batch * got.num_image_tokens
    print(f"{'method':<24}{'seconds':>9}{'images/s':>10}{'img tok/s':>11}{'ours is':>10}  identical tokens")
    for name, (seconds, (chains, image_ids, _)) in results.items():
        same = chains == ours_chains and torch.equal(image_ids.cpu(), ours_images.cpu())
        print(f"{name:<24}{seconds:>9.2f}{args.batch / seconds:>10.2f}{n_tokens / seconds:>11.0f}"
              f"{seconds / ours_time:>9.2f}x  {'yes' if same else 'NO'}")
    return 0 if all(r[1][0] == ours_chains for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
