import pytest
import torch

import reference_loops as ref
from gotr1_core.generation import GenerationConfig, encode_chain, encode_prompt, generate, guide
from gotr1_core.model.loading import load_model
from gotr1_core.sampling import STREAM_IMAGE, STREAM_REASON, NoiseSource, sample, sample_key
from tiny_janus import make_tiny_model

PROMPTS = ["a red circle left of a blue square", "a cat on a sofa"]
CHAIN = ("a <|obj_start|>red circle<|obj_end|> <|box_start|>(100,200),(400,500)<|box_end|> left of a "
         "<|obj_start|>blue square<|obj_end|> <|box_start|>(500,200),(900,600)<|box_end|><begin_of_image>")


@pytest.fixture(scope="module")
def got(tmp_path_factory):
    """float64 so that batched and one-row arithmetic agree far below any argmax margin."""
    folder = make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", stop_bias=2.0)
    return load_model(folder, device="cpu", dtype=torch.float64)


def sampler(got, seed: int, index: int, temperature: float, stream: int, vocab: int, top_k=None, top_p=None):
    noise = NoiseSource(vocab, torch.device("cpu"))
    key = torch.tensor([sample_key(seed, index)])

    def pick(logits, step):
        token, lp = sample(logits, temperature, key, step, stream, noise, top_k, top_p)
        return int(token[0]), float(lp[0])

    return pick


def rows_of(result, i):
    n = int(result.reason_mask[i].sum())
    return result.reason_ids[i, :n].tolist(), result.reason_logprobs[i, :n].tolist()


def test_greedy_matches_naive_loop_both_stages_with_cfg(got):
    config = GenerationConfig(num_samples=2, text_temperature=0, image_temperature=0, cfg_scale=3.0,
                              max_reason_tokens=20)
    result = generate(got, PROMPTS, config)
    for i, prompt in enumerate(result.prompts):
        prompt_ids = encode_prompt(got, prompt)
        want_reason, want_lps = ref.reason(got, prompt_ids, 20, ref.greedy)
        got_reason, got_lps = rows_of(result, i)
        assert got_reason == want_reason
        assert got_lps == pytest.approx(want_lps, abs=1e-5)  # stored as float32
        cond = prompt_ids + (want_reason if want_reason[-1] == got.token_ids.image_start
                             else want_reason + [got.token_ids.image_start])
        want_image, want_image_lps = ref.draw(got, cond, 3.0, ref.greedy)
        assert result.image_ids[i].tolist() == want_image
        assert result.image_logprobs[i].tolist() == pytest.approx(want_image_lps, abs=1e-5)  # stored as float32


def test_guidance_by_hand_and_the_plausibility_floor():
    """uncond + s (cond - uncond); with plausibility a, tokens below a x the conditional best are dropped."""
    cond = torch.log(torch.tensor([[0.80, 0.15, 0.05]]))
    uncond = torch.log(torch.tensor([[0.98, 0.0199, 0.0001]]))
    plain = guide(cond, uncond, 3.0)
    # 0.05 vs 0.0001 in the unconditional: the least likely token under the prompt wins the plain guidance
    assert plain.argmax().item() == 2
    # 3 ln p_cond - 2 ln p_uncond, by hand
    assert plain[0].tolist() == pytest.approx([-0.62902, 2.14270, 9.43348], abs=1e-4)
    floored = guide(cond, uncond, 3.0, plausibility=0.1)  # keeps p >= 0.08
    assert torch.isinf(floored[0, 2]) and floored[0, :2].tolist() == pytest.approx(plain[0, :2].tolist())
    assert floored.argmax().item() == 1


def test_plausibility_zero_is_plain_guidance(got):
    config = GenerationConfig(num_samples=2, seed=3, cfg_scale=3.0, max_reason_tokens=12)
    a = generate(got, PROMPTS, config)
    b = generate(got, PROMPTS, GenerationConfig(**{**config.__dict__, "cfg_plausibility": 0.0}))
    assert torch.equal(a.image_ids, b.image_ids)


def test_sampling_matches_naive_loop_row_by_row(got):
    """Temperature 1 with early stops at different steps, truncation, and CFG."""
    config = GenerationConfig(num_samples=4, seed=11, cfg_scale=2.5, text_temperature=1.0, image_temperature=0.8,
                              top_k=40, max_reason_tokens=16, check_every=2)
    result = generate(got, PROMPTS, config)
    lengths = result.reason_mask.sum(1).tolist()
    assert len(set(lengths)) > 2, "test needs rows that stop at different steps"
    text_vocab = got.model.config.text_config.vocab_size
    image_vocab = got.model.config.vq_config.num_embeddings
    for i, prompt in enumerate(result.prompts):
        seed, index = result.seeds[i], result.streams[i]
        prompt_ids = encode_prompt(got, prompt)
        want_reason, want_lps = ref.reason(got, prompt_ids, 16, sampler(got, seed, index, 1.0, STREAM_REASON,
                                                                        text_vocab))
        got_reason, got_lps = rows_of(result, i)
        assert got_reason == want_reason, f"row {i}"
        assert got_lps == pytest.approx(want_lps, abs=1e-5)  # stored as float32
        assert bool(result.finished[i]) == (want_reason[-1] == got.token_ids.image_start)
        cond = prompt_ids + (want_reason if want_reason[-1] == got.token_ids.image_start
                             else want_reason + [got.token_ids.image_start])
        want_image, _ = ref.draw(got, cond, 2.5, sampler(got, seed, index, 0.8, STREAM_IMAGE, image_vocab, top_k=40))
        assert result.image_ids[i].tolist() == want_image, f"row {i}"


def test_cfg_one_is_the_conditional_model(got):
    config = GenerationConfig(image_temperature=0, text_temperature=0, cfg_scale=1.0, max_reason_tokens=6)
    result = generate(got, PROMPTS[0], config)
    prompt_ids = encode_prompt(got, PROMPTS[0])
    cond = prompt_ids + result.reason_ids[0, : int(result.reason_mask[0].sum())].tolist()
    if cond[-1] != got.token_ids.image_start:
        cond.append(got.token_ids.image_start)
    assert result.image_ids[0].tolist() == ref.draw(got, cond, 1.0, ref.greedy)[0]
    cfg3 = generate(got, PROMPTS[0], GenerationConfig(image_temperature=0, text_temperature=0, cfg_scale=3.0,
                                                      max_reason_tokens=6))
    assert cfg3.image_ids[0].tolist() != result.image_ids[0].tolist()


def test_user_chain_skips_reasoning_and_conditions_on_exactly_it(got):
    result = generate(got, PROMPTS, GenerationConfig(num_samples=2, seed=3, image_temperature=0), chains=CHAIN)
    chain_ids = encode_chain(got, CHAIN)
    assert result.chain_given
    assert result.chains == [CHAIN] * 4
    assert [o.label for o in result.parsed[0].objects] == ["red circle", "blue square"]
    for i in range(4):
        assert rows_of(result, i)[0] == chain_ids
        assert result.reason_logprobs[i].abs().sum() == 0
        want, _ = ref.draw(got, encode_prompt(got, result.prompts[i]) + chain_ids, 5.0, ref.greedy)
        assert result.image_ids[i].tolist() == want
    # The chain's own tokens carry the tags as single tokens and end with <begin_of_image>.
    assert chain_ids.count(got.token_ids.obj_start) == 2 and chain_ids[-1] == got.token_ids.image_start
    assert encode_chain(got, CHAIN.replace("<begin_of_image>", "")) == chain_ids


def test_sampled_images_from_one_chain_match_the_naive_loop(got):
    """Rows drawn from one given chain share its prefill (and its keys/values) but sample their own tokens."""
    config = GenerationConfig(num_samples=3, seed=21, cfg_scale=2.0, image_temperature=1.0, top_p=0.9)
    result = generate(got, PROMPTS, config, chains=CHAIN, decode=False)
    image_vocab = got.model.config.vq_config.num_embeddings
    for i, prompt in enumerate(result.prompts):
        cond = encode_prompt(got, prompt) + encode_chain(got, CHAIN)
        want, want_lps = ref.draw(got, cond, 2.0, sampler(got, result.seeds[i], result.streams[i], 1.0,
                                                          STREAM_IMAGE, image_vocab, top_p=0.9))
        assert result.image_ids[i].tolist() == want, f"row {i}"
        assert result.image_logprobs[i].tolist() == pytest.approx(want_lps, abs=1e-5)
    for group in result.image_ids.view(2, 3, -1).tolist():  # per prompt: the samples did not copy each other
        assert len({tuple(row) for row in group}) > 1


def test_sample_i_is_the_same_whatever_the_batch(got):
    base = dict(seed=100, cfg_scale=2.0, max_reason_tokens=12, check_every=3)
    batched = generate(got, PROMPTS, GenerationConfig(num_samples=4, max_batch=8, **base), decode=False)
    chunked = generate(got, PROMPTS, GenerationConfig(num_samples=4, max_batch=3, **base), decode=False)
    alone = generate(got, PROMPTS[1], GenerationConfig(num_samples=1, first_index=4 + 2, **base), decode=False)
    assert torch.equal(batched.reason_ids, chunked.reason_ids)
    assert torch.equal(batched.image_ids, chunked.image_ids)
    row = 4 + 2  # prompt 1, sample 2: redrawn alone as row 6
    n = int(alone.reason_mask[0].sum())
    assert batched.reason_ids[row, :n].tolist() == alone.reason_ids[0, :n].tolist()
    assert batched.image_ids[row].tolist() == alone.image_ids[0].tolist()
    again = generate(got, PROMPTS, GenerationConfig(num_samples=4, max_batch=8, **base), decode=False)
    assert torch.equal(again.image_ids, batched.image_ids)
    other_seed = generate(got, PROMPTS, GenerationConfig(num_samples=4, max_batch=8, **{**base, "seed": 7}),
                          decode=False)
    assert not torch.equal(other_seed.image_ids, batched.image_ids)


def test_neighbouring_seeds_share_no_sample(got):
    """ComfyUI's "increment" runs seed 0, then 1, ...: no sample of one batch may reappear in the next."""
    base = dict(num_samples=4, cfg_scale=2.0, max_reason_tokens=12, image_temperature=1.0)
    batches = [generate(got, PROMPTS[0], GenerationConfig(seed=seed, **base), decode=False) for seed in (0, 1, 2)]
    rows = [tuple(row) for batch in batches for row in batch.image_ids.tolist()]
    assert len(set(rows)) == len(rows)
    chains = [c for batch in batches for c in batch.chains]
    assert len(set(chains)) > 4  # chains repeat only by chance, not by construction
    assert batches[0].seeds == [0] * 4 and batches[1].streams == [0, 1, 2, 3]
    twice = generate(got, [PROMPTS[0]] * 2, GenerationConfig(seed=0, **{**base, "num_samples": 1}), decode=False)
    assert twice.streams == [0, 1] and not torch.equal(twice.image_ids[0], twice.image_ids[1])


def test_images_and_outputs_have_the_documented_shapes(got):
    result = generate(got, PROMPTS, GenerationConfig(num_samples=3, max_reason_tokens=8))
    n = 6
    assert result.images.shape == (n, got.image_size, got.image_size, 3)
    assert result.images.dtype == torch.float32
    assert 0.0 <= float(result.images.min()) and float(result.images.max()) <= 1.0
    assert result.image_ids.shape == (n, got.num_image_tokens) == result.image_logprobs.shape
    assert result.reason_ids.shape == result.reason_mask.shape == result.reason_logprobs.shape
    assert (result.image_logprobs <= 0).all() and (result.reason_logprobs <= 0).all()
    assert len(result.chains) == len(result.parsed) == len(result.layouts) == n
    assert result.sample_index == [0, 1, 2, 0, 1, 2]
    planned = generate(got, PROMPTS, GenerationConfig(num_samples=3, max_reason_tokens=8), images=False)
    assert planned.image_ids is None and planned.images is None
    assert torch.equal(planned.reason_ids, result.reason_ids)
    tokens_only = generate(got, PROMPTS, GenerationConfig(num_samples=3, max_reason_tokens=8), decode=False)
    assert tokens_only.images is None and torch.equal(tokens_only.image_ids, result.image_ids)


def test_progress_callback_and_cancel(got):
    calls = []
    generate(got, PROMPTS[0], GenerationConfig(max_reason_tokens=8, check_every=4),
             callback=lambda stage, done, total: calls.append((stage, done, total)))
    assert ("image", 4, got.num_image_tokens) in calls

    class Cancelled(Exception):
        pass

    def cancel(stage, done, total):
        raise Cancelled

    with pytest.raises(Cancelled):
        generate(got, PROMPTS[0], GenerationConfig(max_reason_tokens=8, check_every=2), callback=cancel)


@pytest.mark.parametrize("kwargs, message", [
    ({"num_samples": 0}, "num_samples"),
    ({"text_temperature": -1}, "temperatures"),
    ({"top_p": 1.5}, "top_p"),
    ({"max_batch": 0}, "max_batch"),
    ({"cfg_plausibility": 1.0}, "cfg_plausibility"),
])
def test_bad_settings_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GenerationConfig(**kwargs)


def test_bad_inputs_are_clear_errors(got):
    with pytest.raises(ValueError, match="prompt is empty"):
        generate(got, "   ")
    with pytest.raises(ValueError, match="no prompts"):
        generate(got, [])
    with pytest.raises(ValueError, match="2 chains for 1 prompts"):
        generate(got, ["a"], chains=[CHAIN, CHAIN])
    with pytest.raises(ValueError, match="positions"):
        generate(got, "a " * 3000)


def test_chains_are_cut_where_the_context_ends_counting_only_the_stage_run(tmp_path):
    """A model with 96 positions: planning alone may use all that the prompt leaves, planning before an
    image leaves room for its 16 tokens; a long token budget is cut, not refused."""
    short = load_model(make_tiny_model(tmp_path / "short", max_positions=96), device="cpu")
    prompt = "a red circle"
    room = 96 - len(encode_prompt(short, prompt))
    config = GenerationConfig(max_reason_tokens=1000, text_temperature=0)
    planned = generate(short, prompt, config, images=False)
    drawn = generate(short, prompt, config)
    assert int(planned.reason_mask.sum()) == room and not planned.finished[0]  # ran to the end of the context
    assert int(drawn.reason_mask.sum()) == room - short.num_image_tokens - 1  # and <begin_of_image>
    assert drawn.image_ids.shape == (1, short.num_image_tokens)
    with pytest.raises(ValueError, match="positions"):
        generate(short, "a " * 90)
