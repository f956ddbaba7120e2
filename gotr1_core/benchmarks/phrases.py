"""Reading T2I-CompBench's prompts without a parser model: noun phrases, the two related objects, adjectives.

The official scorers parse prompts with spaCy's ``en_core_web_sm``, a model that
installs from GitHub releases, not from the package index. The benchmark's
prompts are short and regular ("a green bench and a blue bowl", "a balloon on
the left of a giraffe", "The slimy green frog hopped onto the wet brown lily
pad."), so written rules recover what spaCy finds in them:

* **noun phrases** (BLIP-VQA asks one question per phrase): a phrase starts at a
  determiner or number and runs to the next boundary — punctuation, a
  conjunction, a preposition, a form of *be*/*have*, or the next determiner;
  a final ``-ed`` word of a phrase that already holds two words is a verb
  ("the frog hopped"), an ``-ing`` word followed by a determiner is one
  ("a man wearing a hat"), as is a lone ``-ing`` word ("was resting on") and
  a few verbs the prompts put between objects ("sits", "holds"); a comma
  between adjectives stays inside the phrase ("the soft, cozy comfort"). spaCy's own list of
  dropped chunks (``top``, ``the side``, ``the left``, ``the right``) is kept.
* **the two objects of a relation** (2D-spatial): the last word before the
  relation phrase and the last word of the phrase after it.
* **adjectives** (complex's CLIP score reads the prompt without them): the
  colour, material, shape, size and look words of the benchmark's attribute
  vocabulary, and words with an adjective-only suffix (-ful, -ous, -ish, -less).

These are approximations of a tagger, stated in docs/benchmarks.md, and tested
on the benchmark's own kinds of sentence.
"""

from __future__ import annotations

import re

DETERMINERS = frozenset(
    "a an the this that these those some many several each every his her their its my our your one two three four "
    "five six seven eight nine ten".split())
BOUNDARIES = frozenset(
    "and or but while as with on onto in into at of to over under above below beside besides behind near next by "
    "for from across around through up down against among between inside outside underneath beneath atop upon "
    "toward towards via is are was were be been being has have had it they he she we who which that "
    # verbs the attribute prompts use between their objects ("The bath tub sits empty", "the pouch holds ...")
    "sits sit stands stand lies lie holds hold hangs hang rests rest looks look made makes".split())
DROPPED_CHUNKS = frozenset({"top", "the side", "the left", "the right"})  # the official scorer's exclusions

# The official 2D-spatial vocabulary, searched in this order (the first found is the relation).
RELATIONS = ("on side of", "next to", "near", "on the left of", "on the right of", "on the bottom of",
             "on the top of", "on top of")
# complex prompts name the relation with these (the official complex rule looks for them)
COMPLEX_RELATIONS = ("on top of", "on bottom of", "on the left", "on the right", "next to", "on side of", "near")

ADJECTIVES = frozenset("""
red orange yellow green blue purple pink brown black white gray grey gold golden silver beige violet cyan magenta
teal turquoise maroon navy crimson
metallic metal wooden wood glass plastic rubber fabric leather fluffy furry soft hard smooth rough shiny velvet
woolen wool silk silky ceramic stone concrete paper cotton denim marble steel iron copper bronze
round circular square rectangular triangular oval oblong cubic spherical cylindrical conical pyramidal hexagonal
pentagonal octagonal teardrop diamond flat curved
big small large tiny tall short long wide narrow huge little giant massive thin thick
old new bright dark light pale deep striped spotted wet dry slimy jagged towering sheer rocky sleek fuzzy
fresh ripe rotten cute happy sad angry sleepy shiny dusty dirty clean empty full hot cold warm cool
""".split())
ADJECTIVE_SUFFIXES = ("ful", "ous", "ish", "less")

_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'\-]*|[^\sA-Za-z0-9]")


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _is_word(token: str) -> bool:
    return token[0].isalnum()


def _verb_like_ed(word: str) -> bool:
    return word.endswith("ed") and len(word) > 4 and not word.endswith("eed")


def noun_phrases(prompt: str) -> list[str]:
    """The prompt's noun phrases, in order, lower case (as the official scorer asks about them)."""
    tokens = _tokens(prompt)
    phrases: list[list[str]] = []
    current: list[str] = []

    def close() -> None:
        nonlocal current
        while len(current) > 2 and _verb_like_ed(current[-1]):
            current.pop()
        lone_verb = len(current) == 1 and current[0].endswith("ing")  # "was resting on": no phrase
        if any(word not in DETERMINERS for word in current) and not lone_verb:
            phrases.append(current)
        current = []

    for i, token in enumerate(tokens):
        following = tokens[i + 1] if i + 1 < len(tokens) else ""
        if token == "," and current and following and following not in DETERMINERS | BOUNDARIES:
            continue  # "the soft, cozy comfort": a comma between a phrase's adjectives
        if not _is_word(token) or token in BOUNDARIES:
            close()
        elif token in DETERMINERS and any(word not in DETERMINERS for word in current):
            close()
            current.append(token)
        elif token.endswith("ing") and following in DETERMINERS and len(current) > 1:
            close()  # "a man wearing a hat": the -ing word is a verb
        else:
            current.append(token)
    close()
    return [text for text in (" ".join(words) for words in phrases) if text not in DROPPED_CHUNKS]


def _last_word(words: list[str]) -> str | None:
    content = [w for w in words if _is_word(w) and w not in DETERMINERS and w not in BOUNDARIES]
    return content[-1] if content else None


def _first_phrase(words: list[str]) -> list[str]:
    """The words after a relation up to the end of their noun phrase."""
    out: list[str] = []
    for word in words:
        if not _is_word(word) or (word in BOUNDARIES and out) or (word in DETERMINERS and any(
                w not in DETERMINERS for w in out)):
            break
        out.append(word)
    return out


def relation_objects(prompt: str, relations: tuple[str, ...] = RELATIONS) -> tuple[str | None, str | None, str | None]:
    """``(relation, first object, second object)`` of a two-object relation prompt: "a balloon on the left of a
    giraffe" -> ("on the left of", "balloon", "giraffe"). The relation is the first of ``relations`` found in the
    prompt (the official order); Nones where the prompt holds none."""
    text = " ".join(_tokens(prompt))
    for relation in relations:
        match = re.search(rf"(?:^| ){re.escape(relation)}(?: |$)", text)
        if match:
            before, after = text[:match.start()].split(), text[match.end():].split()
            return relation, _last_word(before), _last_word(_first_phrase(after))
    return None, None, None


def without_adjectives(prompt: str) -> str:
    """The prompt with its adjectives removed (words kept in order, punctuation dropped as a tagger's tokens
    rejoined would keep it: attached to nothing)."""
    kept = [t for t in _tokens(prompt) if _is_word(t) and t not in ADJECTIVES and not (
        t.endswith(ADJECTIVE_SUFFIXES) and len(t) > 5)]
    return " ".join(kept)
