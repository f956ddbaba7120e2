"""Speculative Jacobi decoding of image tokens: the acceptance rule on hand-computed numbers, the multi-token
decoder pass against one token at a time, greedy decoding equal to sequential decoding, and sampling from the
same distribution as sequential decoding (a chi-square test that a greedy acceptance rule fails)."""

import pytest
import torch

import gotr1_core.generation as generation
from gotr1_core.decoding import Decoder
from gotr1_core.generation import GenerationConfig, generate
from gotr1_core.logprobs import sequence_logprobs
from gotr1_core.model.loading import load_model
from gotr1_core.speculative import accept, accepted_run, residual
from tiny_janus import make_tiny_model

CHAIN = "a <|obj_start|>red circle<|obj_end|> <|box_start|>(100,200),(400,500)<|box_end|><begin_of_image>"


@pytest.fixture(scope="module")
def got(tmp_path_factory):
    return load_model(make_tiny_model(tmp_path_factory.mktemp("sjd") / "m", stop_bias=2.0), device="cpu",
                      dtype=torch.float64)


def test_the_acceptance_rule_by_hand():
    """p = (0.5, 0.3, 0.2), q = (0.2, 0.6, 0.2): token 0 (p/q = 2.5) always passes, token 1 passes with
    probability 0.5, token 2 (p = q) always; a refusal draws from max(0, p - q) = (0.3, 0, 0) -> token 0."""
    logp = torch.log(torch.tensor([0.5, 0.3, 0.2])).expand(1, 3, 3)
    logq = torch.log(torch.tensor([0.2, 0.6, 0.2])).expand(1, 3, 3)
    draft = torch.tensor([[0, 1, 1]])
    assert accept(draft, logp, logq, torch.tensor([[0.99, 0.49, 0.51]])).tolist() == [[True, True, False]]
    assert accept(torch.tensor([[2]]), logp[:, :1], logq[:, :1], torch.tensor([[0.999]])).tolist() == [[True]]
    assert accepted_run(torch.tensor([[True, True, False, True], [False, True, True, True],
                                      [True, True, True, True]])).tolist() == [2, 0, 4]
    assert residual(logp[0, 0], logq[0, 0]).exp().tolist() == pytest.approx([1.0, 0.0, 0.0])
    assert residual(logp[0, 0], logp[0, 0]).exp().tolist() == pytest.approx([0.5, 0.3, 0.2])  # p = q: p


@pytest.mark.parametrize("seed", range(5))
def test_one_checked_guess_leaves_the_distribution_p(seed):
    """P(y) = q(y) min(1, p(y)/q(y)) + P(refused) residual(y) = p(y), for random p and q."""
    generator = torch.Generator().manual_seed(seed)
    logp = torch.log_softmax(torch.randn(7, generator=generator, dtype=torch.float64) * 2, dim=0)
    logq = torch.log_softmax(torch.randn(7, generator=generator, dtype=torch.float64) * 2, dim=0)
    p, q = logp.exp(), logq.exp()
    kept = q * torch.clamp(p / q, max=1)
    total = kept + (1 - kept.sum()) * residual(logp, logq).exp()
    assert total.tolist() == pytest.approx(p.tolist(), abs=1e-12)


@pytest.mark.parametrize("shared", [False, True])
def test_a_multi_token_pass_equals_one_token_at_a_time_and_rolls_back(got, shared):
    """Decoder.extend over L tokens gives the hidden states of L single steps; after rollback the next tokens
    are computed as if the rolled-back ones never were (with the prefix copied per row, and stored once)."""
    lm = got.model.model.language_model
    embed = got.model.get_input_embeddings()
    prompt = torch.tensor([[5, 6, 7, 8, 9], [1, 1, 7, 8, 9]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]])
    rows = torch.tensor([0, 0, 1, 1, 1, 0]) if shared else torch.tensor([0, 1])
    following = torch.randint(20, 60, (len(rows), 6), generator=torch.Generator().manual_seed(0))

    def started():
        decoder = Decoder(lm, 5 + 6, mask)
        decoder.prefill(embed(prompt))
        decoder.expand(rows)
        assert (decoder.kv.prefix is not None) == shared
        return decoder

    one = started()
    singles = torch.stack([one.step(embed(following[:, t:t + 1])) for t in range(6)], 1)
    many = started()
    together = many.extend(embed(following[:, :4]))
    assert torch.allclose(together, singles[:, :4], atol=1e-5)  # the shared prefix's softmax runs in float32
    many.rollback(2)  # the last two were wrong guesses: write the right ones in their place
    again = many.extend(embed(following[:, 2:6]))
    assert torch.allclose(again, singles[:, 2:6], atol=1e-5)


@pytest.mark.parametrize("settings", [dict(cfg_scale=1.0), dict(cfg_scale=3.0, cfg_plausibility=0.3),
                                      dict(cfg_scale=1.0, draft_schedule="fixed")])
@pytest.mark.parametrize("chain", [None, CHAIN])
def test_greedy_jacobi_writes_the_tokens_of_sequential_decoding_in_fewer_passes(got, settings, chain):
    config = GenerationConfig(num_samples=3, seed=2, max_reason_tokens=12, text_temperature=0.0,
                              image_temperature=0.0, **settings)
    prompts = ["a red circle", "two blue squares"]
    plain = generate(got, prompts, config, chains=chain, decode=False)
    fast = generate(got, prompts, GenerationConfig(**{**config.__dict__, "image_decoding": "jacobi"}), chains=chain,
                    decode=False)
    assert torch.equal(fast.image_ids, plain.image_ids)
    assert torch.allclose(fast.image_logprobs, plain.image_logprobs, atol=1e-6)
    assert plain.settings["image_passes"] == got.num_image_tokens
    assert fast.settings["image_passes"] < got.num_image_tokens


def test_sampled_tokens_have_the_logprobs_grpo_recomputes(got):
    """The rollout's log-probabilities are those of the tokens under the model's own distribution, as the
    trainer recomputes them by teacher forcing (so the first ratio is exactly 1)."""
    config = GenerationConfig(num_samples=4, seed=5, max_reason_tokens=12, cfg_scale=3.0, cfg_plausibility=0.3,
                              text_temperature=0.7, image_temperature=0.7, image_decoding="jacobi", draft_tokens=5)
    result = generate(got, ["a red circle", "two blue squares"], config, decode=False)
    _, image_lp = sequence_logprobs(got, result)
    assert torch.allclose(image_lp.float(), result.image_logprobs, atol=1e-5)


def _chi_square_p(a: torch.Tensor, b: torch.Tensor) -> float:
    """Two-sample chi-square test of equal token distributions; tokens seen fewer than 10 times are pooled."""
    from scipy.stats import chi2_contingency

    counts = torch.stack([torch.bincount(a, minlength=64), torch.bincount(b, minlength=64)])
    common = counts.sum(0) >= 10
    table = torch.cat([counts[:, common], counts[:, ~common].sum(1, keepdim=True)], 1)
    table = table[:, table.sum(0) > 0]
    return float(chi2_contingency(table.numpy())[1])


DRAWS = 2000
PLACES = (1, 2, 5, 9)  # image token places compared (0 is drawn as sequential decoding draws it)
ALPHA = 0.001 / len(PLACES)  # each place's test; 0.1 % for the whole comparison (Bonferroni)


def _draw(got, seed: int, **extra) -> torch.Tensor:
    """Image tokens of DRAWS images, at a temperature that makes the tiny model's choices uneven, with guidance
    and the plausibility floor."""
    config = GenerationConfig(seed=seed, num_samples=DRAWS, max_batch=500, cfg_scale=2.0, cfg_plausibility=0.05,
                              image_temperature=0.4, **extra)
    return generate(got, "a red circle", config, chains=CHAIN, decode=False).image_ids


@pytest.fixture(scope="module")
def sequential(got):
    return _draw(got, 11)


@pytest.mark.parametrize("schedule", ["fixed", "adaptive"])
def test_jacobi_samples_from_the_distribution_of_sequential_decoding(got, sequential, schedule):
    fast = _draw(got, 12, image_decoding="jacobi", draft_tokens=6, draft_schedule=schedule)  # an unrelated seed
    p_values = [_chi_square_p(sequential[:, place], fast[:, place]) for place in PLACES]
    assert min(p_values) > ALPHA, p_values


def test_the_distribution_test_catches_a_greedy_acceptance_rule(got, sequential, monkeypatch):
    """Accepting a guess only when it is the model's favourite (instead of with probability min(1, p/q))
    skews the samples, and the test above sees it."""
    def favourite_only(draft, logp, logq, coins):
        return draft == logp.argmax(-1)

    monkeypatch.setattr(generation, "accept", favourite_only)
    skewed = _draw(got, 12, image_decoding="jacobi", draft_tokens=6)
    p_values = [_chi_square_p(sequential[:, place], skewed[:, place]) for place in PLACES]
    assert min(p_values) < ALPHA, p_values


def test_on_the_cpu_the_draft_narrows_when_passes_keep_nothing_and_widens_when_they_keep_all(got, monkeypatch):
    """Sampling at temperature 1 from a random model keeps almost no guess: the adaptive schedule (the CPU's
    default) soon checks one guess per pass; greedy decoding of a chain the model repeats keeps them all, and the
    width comes back. A fixed schedule checks ``draft_tokens`` guesses every pass but the last ones."""
    widths = []
    extend = Decoder.extend

    def recording(self, embeds):
        widths.append(embeds.shape[1])
        return extend(self, embeds)

    monkeypatch.setattr(Decoder, "extend", recording)

    def passes(schedule: str, temperature: float) -> list[int]:
        widths.clear()
        generate(got, "a red circle", GenerationConfig(seed=3, image_temperature=temperature, cfg_scale=1.0,
                                                       image_decoding="jacobi", draft_tokens=6,
                                                       draft_schedule=schedule), chains=CHAIN, decode=False)
        return [w - 1 for w in widths]  # guesses checked per pass (each pass also feeds the last written token)

    assert GenerationConfig().draft_schedule == "auto" and passes("auto", 1.0) == passes("adaptive", 1.0)
    sampled = passes("adaptive", 1.0)
    assert sampled[0] == 6 and sampled[-4:-1] == [1, 1, 1] and max(sampled[3:]) < 6, sampled
    fixed = passes("fixed", 1.0)
    assert all(w == 6 for w in fixed[:-6]) and len(fixed) <= len(sampled), fixed
    greedy = passes("adaptive", 0.0)  # e.g. [6, 3, 3, 6]: narrowed after a refusal, widened after a full keep
    assert any(later > earlier for earlier, later in zip(greedy, greedy[1:])) and len(greedy) < len(sampled), greedy


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="image_decoding must be one of sequential, jacobi"):
        GenerationConfig(image_decoding="parallel")
    with pytest.raises(ValueError, match="draft_tokens must be >= 1"):
        GenerationConfig(draft_tokens=0)
    with pytest.raises(ValueError, match="draft_schedule must be one of auto, fixed, adaptive"):
        GenerationConfig(draft_schedule="greedy")
