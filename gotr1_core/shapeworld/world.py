"""ShapeWorld vocabulary and prompt grammar: prompts <-> scene specs.

The world has coloured shapes on a small canvas. A prompt names groups of
shapes, optionally with one spatial relation between two single shapes::

    a red circle
    two blue squares
    two red circles and a yellow triangle
    a green triangle above a yellow circle

Canonical grammar (what :func:`format_prompt` writes and models are trained on)::

    prompt   := group (" and " group)*  |  single " " relation " " single
    group    := count " " colour " " shape["s" when count > 1]
    single   := "a " colour " " shape
    count    := a | two | three | four
    relation := left of | right of | above | below

:func:`parse_prompt` turns a prompt back into a :class:`SceneSpec`, and reads
the usual ways people write the same thing ("A red circle to the left of a
blue square.", "one cyan square on top of a red circle"); anything else raises
:class:`ShapeWorldPromptError` listing what the world knows and, where it can,
the closest prompt it understands.
"""

from __future__ import annotations

import difflib
import re
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


def excerpt(text: str, limit: int = 60) -> str:
    """``text`` quoted for a message, cut to ``limit`` characters with its length said: an error about a long
    prompt names it without echoing all of it."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}… ({len(text):,} characters)"


class ShapeWorldPromptError(ValueError):
    """A prompt outside the ShapeWorld vocabulary or grammar; the message lists what is known.

    ``suggestion`` is the closest prompt the world does understand (``None``
    when nothing in the text resembles a shape), so a caller can offer it.
    """

    def __init__(self, prompt: str, problem: str):
        self.prompt = prompt
        self.problem = problem
        self.suggestion = suggest_prompt(prompt)
        hint = f" Did you mean '{self.suggestion}'?" if self.suggestion else ""
        super().__init__(
            f"not a ShapeWorld prompt: {problem} in {excerpt(prompt)}.{hint} ShapeWorld knows colours "
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


FLIPPED = {"right of": "left of", "below": "above"}
"""Relations written the other way round: ``A right of B`` is the scene ``B left of A``."""


def scene_key(spec: SceneSpec) -> str:
    """The scene a spec describes, whatever its wording: the canonical prompt of its normal form.

    Two prompts describe one scene when they ask for the same objects in the
    same arrangement: groups in any order (``two red circles and a blue
    square`` = ``a blue square and two red circles``) and a relation read from
    either side (``A below B`` = ``B above A``, ``A right of B`` = ``B left of
    A``). The normal form orders groups by colour, shape and count as the world
    lists them and keeps only ``left of`` and ``above``; its canonical prompt
    is a readable, stable key (it is hashed to assign scenes to splits, so it
    must not change between versions).
    """
    groups, rel = spec.groups, spec.relation
    if rel in FLIPPED:
        groups, rel = groups[::-1], FLIPPED[rel]
    elif rel is None:
        order = list(COLOURS)
        groups = tuple(sorted(groups, key=lambda g: (order.index(g.colour), SHAPES.index(g.shape), g.count)))
    return format_prompt(SceneSpec(tuple(groups), rel))


# -- reading what people write ------------------------------------------------------------
#
# People phrase the same scene many ways. Every phrasing below is read as the
# world's own word; the canonical prompt (format_prompt) is what a ShapeWorld
# model is trained on and is given.

RELATION_PHRASES: dict[str, tuple[str, ...]] = {
    "left of": ("left of", "to the left of", "on the left of", "at the left of", "to the left side of",
                "on the left side of", "left to"),
    "right of": ("right of", "to the right of", "on the right of", "at the right of", "to the right side of",
                 "on the right side of", "right to"),
    "above": ("above", "on top of", "over", "atop", "higher than"),
    "below": ("below", "under", "underneath", "beneath", "lower than"),
}
COUNT_PHRASES: dict[str, int] = {"a": 1, "an": 1, "one": 1, "1": 1, "the": 1, "single": 1, "two": 2, "2": 2,
                                 "three": 3, "3": 3, "four": 4, "4": 4}
SEPARATORS = frozenset({"and", ",", "&", "plus"})
_RELATIONS_BY_LENGTH = sorted(((tuple(p.split()), rel) for rel, phrases in RELATION_PHRASES.items()
                               for p in phrases), key=lambda item: -len(item[0]))


def _tokens(prompt: str) -> list[str]:
    """Lower-case words and the separators ',' and '&'; other punctuation and spacing are dropped."""
    return re.findall(r"[a-z0-9]+|[,&]", prompt.lower())


def _relation_at(words: list[str], i: int) -> tuple[str, int] | None:
    """(canonical relation, number of words) of a relation phrase starting at ``words[i]``."""
    for phrase, rel in _RELATIONS_BY_LENGTH:
        if tuple(words[i:i + len(phrase)]) == phrase:
            return rel, len(phrase)
    return None


def _singular(shape: str) -> str | None:
    if shape in SHAPES:
        return shape
    return shape[:-1] if shape.endswith("s") and shape[:-1] in SHAPES else None


def _parse_group(words: list[str], prompt: str) -> Group:
    """``[count] colour shape``; a missing count reads as one ("red circle left of blue square")."""
    shown = " ".join(words)
    if len(words) == 2 and words[0] in COLOURS:
        if _singular(words[1]) != words[1]:
            raise ShapeWorldPromptError(prompt, f"{excerpt(shown)} needs a count (two, three or four)")
        words = ["a", *words]
    if len(words) != 3:
        raise ShapeWorldPromptError(prompt, f"expected '<count> <colour> <shape>', found {excerpt(shown)}")
    count_word, colour, shape = words
    if count_word not in COUNT_PHRASES:
        raise ShapeWorldPromptError(prompt, f"unknown count {count_word!r}")
    count = COUNT_PHRASES[count_word]
    if colour not in COLOURS:
        raise ShapeWorldPromptError(prompt, f"unknown colour {colour!r}")
    singular = _singular(shape)
    if singular is None:
        raise ShapeWorldPromptError(prompt, f"unknown shape {shape!r}")
    if (count > 1) != (shape != singular):
        raise ShapeWorldPromptError(prompt, f"{excerpt(shown)} needs {'plural' if count > 1 else 'singular'}")
    return Group(count, colour, singular)


def parse_prompt(prompt: str) -> SceneSpec:
    """The scene spec of a ShapeWorld prompt, in any of the usual phrasings.

    Case, spacing and punctuation are forgiven; relations may be written as
    in :data:`RELATION_PHRASES` and counts as in :data:`COUNT_PHRASES`.
    Anything else raises :class:`ShapeWorldPromptError`, with the closest
    prompt the world understands when there is one.
    """
    if not isinstance(prompt, str) or not prompt.strip():
        raise ShapeWorldPromptError(str(prompt), "empty prompt")
    words = _tokens(prompt)
    for i in range(len(words)):
        found = _relation_at(words, i)
        if found is not None:
            relation, length = found
            groups = (_parse_group(words[:i], prompt), _parse_group(words[i + length:], prompt))
            if any(g.count != 1 for g in groups):
                raise ShapeWorldPromptError(prompt, f"'{relation}' links two single objects ('a ...')")
            return SceneSpec(groups, relation)
    parts, current = [], []
    for word in words:
        if word in SEPARATORS:
            if current:
                parts.append(current)
            current = []
        else:
            current.append(word)
    if current:
        parts.append(current)
    if not parts:
        raise ShapeWorldPromptError(prompt, "no shape named")
    groups = tuple(_parse_group(part, prompt) for part in parts)
    if sum(g.count for g in groups) > MAX_OBJECTS:
        raise ShapeWorldPromptError(prompt, f"more than {MAX_OBJECTS} objects")
    if len({(g.colour, g.shape) for g in groups}) != len(groups):
        raise ShapeWorldPromptError(prompt, "the same colour and shape named twice (use a count)")
    return SceneSpec(groups)


def prompt_scene_key(prompt: str) -> str:
    """:func:`scene_key` of a prompt in any phrasing :func:`parse_prompt` reads (raises as it does)."""
    return scene_key(parse_prompt(prompt))


def canonical_prompt(prompt: str) -> str:
    """The world's own wording of a prompt ("A red circle to the left of a blue square." ->
    "a red circle left of a blue square"): what a ShapeWorld model sees."""
    return format_prompt(parse_prompt(prompt))


# -- "did you mean ...?" ----------------------------------------------------------------------

_NUMBER_WORDS = {**COUNT_PHRASES, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
                 "several": 2, "some": 2, "many": MAX_OBJECTS}
_RELATION_WORDS = sorted({w for phrases in RELATION_PHRASES.values() for p in phrases for w in p.split()})
_VOCABULARY = sorted(set(COLOURS) | set(SHAPES) | {s + "s" for s in SHAPES} | set(_NUMBER_WORDS)
                     | set(_RELATION_WORDS) | {"and"})


def _closest_word(word: str) -> str | None:
    if word in _VOCABULARY or word in SEPARATORS:
        return word
    if len(word) < 3:
        return None
    match = difflib.get_close_matches(word, _VOCABULARY, n=1, cutoff=0.75)
    return match[0] if match else None


def suggest_prompt(prompt: str) -> str | None:
    """The closest prompt the world understands, or ``None`` if the text names no colour and shape.

    Misspelt words are replaced by the nearest vocabulary word, unknown ones
    dropped; the colour-shape pairs found are then read in order with the
    count before each (capped at the world's limits, repeats merged), and the
    relation kept only where it links two single shapes, as the grammar says.
    Never raises.
    """
    if not isinstance(prompt, str):
        return None
    words = [w for w in (_closest_word(t) for t in _tokens(prompt)) if w is not None]
    counts: dict[tuple[str, str], int] = {}
    relation, relation_after, count, colour = None, 0, None, None
    i = 0
    while i < len(words):
        found = _relation_at(words, i)
        if found is not None and counts and relation is None:
            relation, relation_after = found[0], len(counts)
            i += found[1]
            continue
        word = words[i]
        i += 1
        if word in _NUMBER_WORDS:
            count = _NUMBER_WORDS[word]
        elif word in COLOURS:
            colour = word
        elif _singular(word) is not None and colour is not None:
            pair = (colour, _singular(word))
            wanted = count if count is not None else (2 if word != pair[1] else 1)
            counts[pair] = counts.get(pair, 0) + wanted
            count, colour = None, None
    if not counts:
        return None
    groups, room = [], MAX_OBJECTS
    for (colour, shape), n in counts.items():
        n = min(n, room)
        if n < 1:
            break
        groups.append(Group(n, colour, shape))
        room -= n
    related = (relation is not None and relation_after == 1 and len(groups) == 2
               and all(g.count == 1 for g in groups))
    return format_prompt(SceneSpec(tuple(groups), relation if related else None))


BENCH_CATEGORIES = ("binding", "spatial", "counting", "complex")
"""The ShapeWorld bench's categories, shaped like T2I-CompBench's (docs/benchmarks.md)."""


def bench_category(spec: SceneSpec) -> str | None:
    """The bench category of a scene (None for a single object, which no category asks about)."""
    counts = [g.count for g in spec.groups]
    if spec.relation:
        return "spatial"
    if len(counts) == 1:
        return "counting" if counts[0] > 1 else None
    return "binding" if max(counts) == 1 else "complex"
