"""How a sample's rewards combine into the one number GRPO ranks its group by.

| preset | total | range |
|---|---|---|
| ``v1`` | ``r_pi * (r_sem + r_spa) * r_ri`` | [0, 2] |
| ``v2`` | ``r_pi * (r_sem + r_spa) / 2 * r_ri * r_hps`` | [0, 1] |
| ``custom`` | an arithmetic expression over the five rewards | what it computes |

``v1`` is the product the GoT-R1 paper's first version and its authors' README give; ``v2`` adds the
visual-quality factor R_HPS (a Human Preference Score) and averages the two plan rewards, as the second
version of the paper is read in docs/rewards.md. A custom formula is for users who weigh the stages
differently; it is parsed once and evaluated on its syntax tree (numbers, the five names, ``+ - * /``,
``**``, ``min``, ``max``), never with ``eval``, because it may come from a shared config.
"""

from __future__ import annotations

import ast
import operator
from dataclasses import dataclass

REWARD_NAMES = ("r_sem", "r_spa", "r_ri", "r_pi", "r_hps")
PRESETS = {"v1": "r_pi * (r_sem + r_spa) * r_ri", "v2": "r_pi * (r_sem + r_spa) / 2 * r_ri * r_hps"}
FORMULAS = ("v1", "v2", "custom")

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.Pow: operator.pow}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_CALLS = {"min": min, "max": max}


def _check(node: ast.AST, expression: str) -> None:
    """Refuse anything but the small arithmetic a reward formula needs, naming what was found."""
    if isinstance(node, ast.Expression):
        return _check(node.body, expression)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        _check(node.left, expression)
        return _check(node.right, expression)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _check(node.operand, expression)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return None
    if isinstance(node, ast.Name) and node.id in REWARD_NAMES:
        return None
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _CALLS
            and node.args and not node.keywords):
        for arg in node.args:
            _check(arg, expression)
        return None
    what = ast.get_source_segment(expression, node) or type(node).__name__
    raise ValueError(f"reward formula {expression!r}: {what!r} is not allowed; use numbers, "
                     f"{', '.join(REWARD_NAMES)}, + - * / **, min() and max()")


def _evaluate(node: ast.AST, values: dict[str, float]) -> float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, values)
    if isinstance(node, ast.BinOp):
        left, right = _evaluate(node.left, values), _evaluate(node.right, values)
        if isinstance(node.op, ast.Div) and right == 0:
            return 0.0  # a ratio of rewards with a zero denominator earns nothing rather than crashing a run
        return float(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp):
        return float(_UNARY[type(node.op)](_evaluate(node.operand, values)))
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.Name):
        return float(values[node.id])
    return float(_CALLS[node.func.id](_evaluate(arg, values) for arg in node.args))


@dataclass(frozen=True)
class RewardFormula:
    """A named way to combine rewards: ``v1``, ``v2`` or ``custom`` with its ``expression``."""

    name: str = "v1"
    expression: str = PRESETS["v1"]

    @classmethod
    def of(cls, name: str = "v1", expression: str | None = None) -> RewardFormula:
        """The preset ``name``, or ``custom`` with ``expression``; a bad choice says what the choices are."""
        if name not in FORMULAS:
            raise ValueError(f"reward_formula: {name!r} is not one of {', '.join(FORMULAS)}")
        if name == "custom":
            if not expression:
                raise ValueError("reward_formula custom needs reward_expression, e.g. 'r_pi * r_ri * r_hps'")
            return cls("custom", expression)
        if expression and expression != PRESETS[name]:
            raise ValueError(f"reward_expression is only read with reward_formula custom (got {name!r})")
        return cls(name, PRESETS[name])

    def __post_init__(self) -> None:
        try:
            tree = ast.parse(self.expression, mode="eval")
        except SyntaxError as exc:
            raise ValueError(f"reward formula {self.expression!r} is not an expression: {exc.msg}") from None
        _check(tree, self.expression)
        object.__setattr__(self, "_tree", tree)

    @property
    def needs(self) -> frozenset[str]:
        """The rewards the formula reads (``r_hps`` asks for a quality model)."""
        return frozenset(n.id for n in ast.walk(self._tree) if isinstance(n, ast.Name) and n.id in REWARD_NAMES)

    def __call__(self, **values: float) -> float:
        return _evaluate(self._tree, values)

    def describe(self) -> str:
        return self.name if self.name != "custom" else f"custom: {self.expression}"
