"""GoT-R1 rewards behind one :class:`Judge` interface."""

from pathlib import Path

from .base import Judge, Rewards
from .combined import ScoredJudge
from .formula import FORMULAS, RewardFormula
from .mllm_judge import MLLMJudge
from .prompts import QUESTION_PRESETS
from .quality import HPSScorer, hps_problem
from .served_judge import JudgeServerError, ServedJudge, is_judge_url
from .shapeworld_judge import ShapeWorldJudge

__all__ = ["FORMULAS", "HPSScorer", "Judge", "JudgeServerError", "MLLMJudge", "RewardFormula", "Rewards",
           "ScoredJudge", "ServedJudge", "ShapeWorldJudge", "hps_problem", "judge_problem", "load_judge",
           "reward_settings_problem"]

JUDGE_CHOICES = "'shapeworld' (exact, built in), a Qwen2.5-VL folder, or a judge server URL (http://HOST:PORT/v1)"


def judge_problem(name: str) -> str | None:
    """Why ``name`` names no judge (for config checks), or None."""
    if name == "shapeworld" or is_judge_url(name) or (Path(name).expanduser() / "config.json").is_file():
        return None
    return f"judge: {name!r} is not {JUDGE_CHOICES}"


def reward_settings_problem(exact_judge: bool, has_quality: bool, formula: RewardFormula, questions: str,
                            quality_hint: str) -> str | None:
    """Why these reward settings cannot work together, or None — one rule for the trainer's config check, the
    CLI and the Judge Loader node. ``quality_hint`` says how the caller's user names a quality model."""
    if questions not in QUESTION_PRESETS:
        return f"judge questions: use {' or '.join(QUESTION_PRESETS)}, got {questions!r}"
    if questions != "pack" and exact_judge:
        return ("judge questions: the exact ShapeWorld judge asks no questions; the paper wording is for a "
                "Qwen2.5-VL judge (a folder or a server)")
    if "r_hps" in formula.needs and not has_quality:
        return f"reward formula {formula.describe()} multiplies by R_HPS: {quality_hint} or use reward_formula v1"
    return None


def load_judge(name: str, device: str = "auto", quantize: str | None = None, quality: str | None = None,
               formula: RewardFormula | None = None, questions: str = "pack") -> Judge:
    """The judge ``name`` names (a server's judge asks it which model it serves); ``quantize`` stores an
    in-process MLLM judge's language model in fp8, int8 or int4. ``quality`` (a CLIP folder: HPS v2.1) adds
    R_HPS, ``formula`` combines the rewards (``v1`` when not given) and ``questions`` picks an MLLM judge's
    wording (pack or paper)."""
    formula = formula or RewardFormula()
    for problem in (judge_problem(name), quality and hps_problem(quality),
                    reward_settings_problem(name == "shapeworld", bool(quality), formula, questions,
                                            "give a quality model folder (HPS v2.1)")):
        if problem:
            raise ValueError(problem)
    if name == "shapeworld":
        judge = ShapeWorldJudge()
    else:
        judge = ServedJudge(name) if is_judge_url(name) else MLLMJudge(name, device=device, quantize=quantize)
        judge.questions = questions
    if not quality and formula == RewardFormula():
        return judge
    return ScoredJudge(judge, HPSScorer(quality, device=device) if quality else None, formula)
