"""GoT-R1 rewards behind one :class:`Judge` interface."""

from pathlib import Path

from .base import Judge, Rewards
from .mllm_judge import MLLMJudge
from .served_judge import JudgeServerError, ServedJudge, is_judge_url
from .shapeworld_judge import ShapeWorldJudge

__all__ = ["Judge", "JudgeServerError", "MLLMJudge", "Rewards", "ServedJudge", "ShapeWorldJudge", "judge_problem",
           "load_judge"]

JUDGE_CHOICES = "'shapeworld' (exact, built in), a Qwen2.5-VL folder, or a judge server URL (http://HOST:PORT/v1)"


def judge_problem(name: str) -> str | None:
    """Why ``name`` names no judge (for config checks), or None."""
    if name == "shapeworld" or is_judge_url(name) or (Path(name).expanduser() / "config.json").is_file():
        return None
    return f"judge: {name!r} is not {JUDGE_CHOICES}"


def load_judge(name: str, device: str = "auto", quantize: str | None = None) -> Judge:
    """The judge ``name`` names (a server's judge asks it which model it serves); ``quantize`` stores an
    in-process MLLM judge's language model in fp8, int8 or int4."""
    if (problem := judge_problem(name)) is not None:
        raise ValueError(problem)
    if name == "shapeworld":
        return ShapeWorldJudge()
    if is_judge_url(name):
        return ServedJudge(name)
    return MLLMJudge(name, device=device, quantize=quantize)
