"""ShapeWorld vocabulary and prompt grammar: prompts <-> scene specs.

The world has coloured shapes on a small canvas. A prompt names groups of
shapes, optionally with one spatial relation between two single shapes::

    a red circle
    two blue squares
    two red circles and a yellow triangle
    a green triangle above a yellow circle

Grammar (all lower case, single spaces)::

    prompt   := group (" and " group)*  |  single " " relation " " single
    group    := count " " colour " " shape["s" when count > 1]
    single   := "a " colour " " shape
    count    := a | two | three | four
    relation := left of | right of | above | below

:func:`parse_prompt` turns a prompt back into a :class:`SceneSpec`; anything
outside the grammar raises :class:`ShapeWorldPromptError` listing what the
world knows.
"""

from __future__ import annotations

from dataclasses import dataclass

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "yellow": (235, 200, 20),
    "green": (40, 170, 60),
    "cyan": (30, 190, 210),
    "blue": (40, 70, 220),
    "purple": (150, 50, 200),
}
SHAPES = ("circle", "square", "triangle")
COUNT_WORDS = {1: "a", 2: "two", 3: "three", 4: "four"}
RELATIONS = ("left of", "right of", "above", "below")
MAX_OBJECTS = 4


class ShapeWorldPromptError(ValueError):
    """A prompt outside the ShapeWorld vocabulary or grammar; the message lists what is known."""

    def __init__(self, prompt: str, problem: str):
        self.prompt = prompt
        super().__init__(
            f"not a ShapeWorld prompt: {problem} in {prompt!r}. ShapeWorld knows colours "
            f"{', '.join(COLOURS)}; shapes {', '.join(SHAPES)}; counts {', '.join(COUNT_WORDS.values())} "
            f"(up to {MAX_OBJECTS} objects); relations {', '.join(RELATIONS)}. Examples: 'a red circle', "
            "'two blue squares and a green triangle', 'a green triangle above a yellow circle'."
        )


@dataclass(frozen=True)
class Group:
    """``count`` shapes of one colour and kind."""

    count: int
    colour: str
    shape: str

    def __post_init__(self) -> None:
        if self.colour not in COLOURS or self.shape not in SHAPES or self.count not in COUNT_WORDS:
            raise ValueError(f"unknown group {self}")

    @property
    def name(self) -> str:
        """The singular object name used in chains: 'red circle'."""
        return f"{self.colour} {self.shape}"

    def phrase(self) -> str:
        plural = "s" if self.count > 1 else ""
        return f"{COUNT_WORDS[self.count]} {self.colour} {self.shape}{plural}"


@dataclass(frozen=True)
class SceneSpec:
    """What a prompt asks for: groups, and optionally ``groups[0] <relation> groups[1]``."""

    groups: tuple[Group, ...]
    relation: str | None = None

    def __post_init__(self) -> None:
        if not self.groups:
            raise ValueError("a scene needs at least one group")
        if self.num_objects > MAX_OBJECTS:
            raise ValueError(f"at most {MAX_OBJECTS} objects, got {self.num_objects}")
        if self.relation is not None:
            if self.relation not in RELATIONS:
                raise ValueError(f"unknown relation {self.relation!r}")
            if len(self.groups) != 2 or any(g.count != 1 for g in self.groups):
                raise ValueError("a relation links exactly two single objects")

    @property
    def num_objects(self) -> int:
        return sum(g.count for g in self.groups)

    @property
    def pairs(self) -> set[tuple[str, str]]:
        """Colour-shape pairs the scene contains."""
        return {(g.colour, g.shape) for g in self.groups}

    def object_names(self) -> list[str]:
        """One name per object, in chain order."""
        return [g.name for g in self.groups for _ in range(g.count)]


def format_prompt(spec: SceneSpec) -> str:
    if spec.relation is not None:
        return f"{spec.groups[0].phrase()} {spec.relation} {spec.groups[1].phrase()}"
    return " and ".join(g.phrase() for g in spec.groups)


_WORD_COUNTS = {word: n for n, word in COUNT_WORDS.items()}


def _parse_group(words: list[str], prompt: str) -> Group:
    if len(words) != 3:
        raise ShapeWorldPromptError(prompt, f"expected '<count> <colour> <shape>', found {' '.join(words)!r}")
    count_word, colour, shape = words
    if count_word not in _WORD_COUNTS:
        raise ShapeWorldPromptError(prompt, f"unknown count {count_word!r}")
    count = _WORD_COUNTS[count_word]
    if colour not in COLOURS:
        raise ShapeWorldPromptError(prompt, f"unknown colour {colour!r}")
    singular = shape[:-1] if shape.endswith("s") and shape[:-1] in SHAPES else shape
    if singular not in SHAPES:
        raise ShapeWorldPromptError(prompt, f"unknown shape {shape!r}")
    if (count > 1) != (shape != singular):
        raise ShapeWorldPromptError(prompt, f"'{count_word} {shape}' needs {'plural' if count > 1 else 'singular'}")
    return Group(count, colour, singular)


def parse_prompt(prompt: str) -> SceneSpec:
    """The scene spec of a ShapeWorld prompt (case and extra spaces are forgiven)."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ShapeWorldPromptError(str(prompt), "empty prompt")
    text = " ".join(prompt.lower().replace(",", " ").split()).rstrip(".")
    words = text.split(" ")
    for relation in RELATIONS:
        rel_words = relation.split(" ")
        for i in range(len(words) - len(rel_words) + 1):
            if words[i:i + len(rel_words)] == rel_words:
                left, right = words[:i], words[i + len(rel_words):]
                groups = (_parse_group(left, prompt), _parse_group(right, prompt))
                if any(g.count != 1 for g in groups):
                    raise ShapeWorldPromptError(prompt, f"'{relation}' links two single objects ('a ...')")
                return SceneSpec(groups, relation)
    parts = text.split(" and ")
    groups = tuple(_parse_group(part.split(" "), prompt) for part in parts)
    if sum(g.count for g in groups) > MAX_OBJECTS:
        raise ShapeWorldPromptError(prompt, f"more than {MAX_OBJECTS} objects")
    if len({(g.colour, g.shape) for g in groups}) != len(groups):
        raise ShapeWorldPromptError(prompt, "the same colour and shape named twice (use a count)")
    return SceneSpec(groups)
