"""The GoT-R1 chain grammar: parse, format and validate reasoning chains.

A chain is free text in which the model names objects and plans their boxes::

    A <|obj_start|>red apple<|obj_end|> <|box_start|>(120,340),(410,690)<|box_end|> sits ...<begin_of_image>

* Coordinates are integers on a 0-1000 grid, ``(x1,y1),(x2,y2)`` = top-left,
  bottom-right, whatever the output resolution.
* An object may carry several box groups (one after another, separated only by
  whitespace) or none.

Model output is never trusted. :func:`parse_chain` never raises on any string:
it returns what it could recover plus :class:`Diagnostic` values saying what was
wrong and where (the place the problem was found: the tag that came instead
of ``<|obj_end|>``, the end of a box that was never closed). ``strict=True``
(for chains a user typed) turns the errors into a :class:`ChainSyntaxError`
that lists each with line and column.

A chain is *well-formed* when it parses without diagnostics; then
``format_chain(parse_chain(s)) == s`` exactly, and for every valid
:class:`ParsedChain` value ``c``, ``parse_chain(format_chain(c)) == c``.

The scanner is a single left-to-right pass over tag positions found by one
literal-alternation regex; box bodies are matched by patterns without nested
quantifiers. Parsing is linear in the input length, including adversarial input
(megabytes of brackets or unbalanced tags).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

OBJ_START = "<|obj_start|>"
OBJ_END = "<|obj_end|>"
BOX_START = "<|box_start|>"
BOX_END = "<|box_end|>"
IMAGE_START = "<begin_of_image>"
CHAIN_TOKENS = (OBJ_START, OBJ_END, BOX_START, BOX_END)
"""Special tokens the tokenizer must keep whole (plus :data:`IMAGE_START`)."""

GRID = 1000
"""Coordinates live on a 0..GRID integer grid, independent of the image size."""

MAX_DIAGNOSTICS = 200
"""Diagnostics kept per parse; the rest are counted in a final summary entry."""

TAG_RE = re.compile(r"<\|(?:obj_start|obj_end|box_start|box_end)\|>|<begin_of_image>")
"""Matches any tag of the grammar (a literal alternation: no backtracking)."""
_CANONICAL_BOX_RE = re.compile(r"\((0|[1-9]\d{0,3}),(0|[1-9]\d{0,3})\),\((0|[1-9]\d{0,3}),(0|[1-9]\d{0,3})\)")
_NUM = r"(-?\d+(?:\.\d*)?)"
_LOOSE_BOX_RE = re.compile(
    rf"\s*[\(\[]\s*{_NUM}\s*,\s*{_NUM}\s*[\)\]]\s*,?\s*[\(\[]\s*{_NUM}\s*,\s*{_NUM}\s*[\)\]]\s*"
)
_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")
_NAME_STOP_RE = re.compile(r"[\n.,;]")
_LONGEST_TAG = max(len(t) for t in (*CHAIN_TOKENS, IMAGE_START))
_MAX_DIGITS = 12  # longer digit runs are "huge": clamped without int() (which caps at 4300 digits)


class ChainSyntaxError(ValueError):
    """A chain that strict parsing rejects: every error (up to the cap), each with where and what was expected.

    ``diagnostic``, ``line`` and ``column`` are the first error's; the message
    has one line per error, the first one first.
    """

    def __init__(self, diagnostic: "Diagnostic", diagnostics: tuple["Diagnostic", ...] = ()):
        self.diagnostic = diagnostic
        self.diagnostics = diagnostics or (diagnostic,)
        self.line = diagnostic.line
        self.column = diagnostic.column
        super().__init__("\n".join(f"line {d.line}, column {d.column}: {d.message}" for d in self.diagnostics))


@dataclass(frozen=True)
class Diagnostic:
    """One problem found while parsing.

    ``severity`` is ``"error"`` for anything strict mode rejects (the chain was
    repaired or part of it dropped) and ``"note"`` for harmless normalisation
    (extra spaces inside a box). ``offset`` is the character index in the input;
    ``line``/``column`` are 1-based.
    """

    code: str
    message: str
    offset: int
    line: int
    column: int
    severity: str = "error"

    def __str__(self) -> str:
        return f"{self.line}:{self.column}: {self.severity}: {self.message} [{self.code}]"


@dataclass(frozen=True)
class Box:
    """A box on the 0-1000 grid; ``x1 < x2`` and ``y1 < y2``."""

    x1: int
    y1: int
    x2: int
    y2: int

    def __post_init__(self) -> None:
        for name in ("x1", "y1", "x2", "y2"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= GRID:
                raise ValueError(f"box {name}={value!r} must be an integer in 0..{GRID}")
        if self.x1 >= self.x2 or self.y1 >= self.y2:
            raise ValueError(
                f"box ({self.x1},{self.y1}),({self.x2},{self.y2}) needs x1 < x2 and y1 < y2 "
                "(top-left corner first, bottom-right second, non-zero area)"
            )

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.x1, self.y1, self.x2, self.y2)

    def format(self) -> str:
        return f"({self.x1},{self.y1}),({self.x2},{self.y2})"


@dataclass(frozen=True)
class ChainObject:
    """An object named in the chain with its planned boxes.

    ``name`` is kept exactly as written (spaces included) so formatting is
    lossless; ``label`` is the stripped name. ``gaps[i]`` is the text between
    the previous tag and box ``i`` (whitespace in a well-formed chain).
    """

    name: str
    boxes: tuple[Box, ...] = ()
    gaps: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.gaps) != len(self.boxes):
            object.__setattr__(self, "gaps", tuple(self.gaps) + (" ",) * (len(self.boxes) - len(self.gaps)))

    @property
    def label(self) -> str:
        return self.name.strip()


@dataclass(frozen=True)
class ParsedChain:
    """A chain as data: ``texts`` interleave with ``objects``.

    ``texts[0]`` precedes the first object, ``texts[i+1]`` follows object ``i``
    (after its last box), so ``len(texts) == len(objects) + 1``.
    ``ends_with_image_start`` records the closing ``<begin_of_image>``.
    """

    texts: tuple[str, ...] = ("",)
    objects: tuple[ChainObject, ...] = ()
    ends_with_image_start: bool = False
    diagnostics: tuple[Diagnostic, ...] = field(default=(), compare=True)

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.objects) + 1:
            raise ValueError(
                f"ParsedChain needs len(texts) == len(objects) + 1, got {len(self.texts)} texts "
                f"for {len(self.objects)} objects"
            )

    @property
    def ok(self) -> bool:
        """True when nothing had to be repaired (no error diagnostics)."""
        return not any(d.severity == "error" for d in self.diagnostics)

    @property
    def text(self) -> str:
        """The free text with tags removed: what a person reads."""
        parts = [self.texts[0]]
        for obj, after in zip(self.objects, self.texts[1:]):
            parts.append(obj.name)
            parts.append(after)
        return "".join(parts)


class _Scanner:
    """Single pass over the tags of one string; builds a :class:`ParsedChain`."""

    def __init__(self, text: str):
        self.src = text
        self.texts: list[str] = []
        self.objects: list[ChainObject] = []
        self.diagnostics: list[Diagnostic] = []
        self.dropped = 0
        self._newlines: list[int] | None = None
        self.pending_text: list[str] = []
        # The object currently collecting boxes: name, boxes, gaps.
        self.current: tuple[str, list[Box], list[str]] | None = None

    # -- diagnostics ----------------------------------------------------
    def report(self, code: str, message: str, offset: int, severity: str = "error") -> None:
        if len(self.diagnostics) >= MAX_DIAGNOSTICS:
            self.dropped += 1
            return
        if self._newlines is None:
            self._newlines = [i for i, ch in enumerate(self.src) if ch == "\n"]
        line = bisect.bisect_left(self._newlines, offset)
        column = offset - (self._newlines[line - 1] + 1 if line else 0)
        self.diagnostics.append(Diagnostic(code, message, offset, line + 1, column + 1, severity))

    # -- building --------------------------------------------------------
    def add_text(self, text: str) -> None:
        """Append free text. Pieces come from between tags, so none holds a tag;
        but dropping a tag can splice two pieces into a new one ('<' + '|obj_start|>'),
        so a space keeps such pieces apart."""
        if not text:
            return
        if self.pending_text:
            window = self.pending_text[-1][-_LONGEST_TAG:] + text[:_LONGEST_TAG]
            if TAG_RE.search(window):
                self.pending_text.append(" ")
        self.pending_text.append(text)

    def open_object(self, name: str) -> None:
        self.close_object()
        self.texts.append("".join(self.pending_text))
        self.pending_text = []
        self.current = (name, [], [])

    def close_object(self) -> None:
        if self.current is not None:
            name, boxes, gaps = self.current
            self.objects.append(ChainObject(name, tuple(boxes), tuple(gaps)))
            self.current = None

    def attach_box(self, box: Box | None, offset: int) -> None:
        """Attach a box to the open object; text before it becomes its gap."""
        if box is None:
            return
        if self.current is None:
            self.report(
                "box-without-object",
                f"box {box.format()} comes before any <|obj_start|>name<|obj_end|>; dropped",
                offset,
            )
            return
        gap = "".join(self.pending_text)
        if gap.strip():
            self.report(
                "box-after-text",
                f"box {box.format()} is separated from object '{self.current[0].strip()}' by text; "
                "attached to that object (put the box right after <|obj_end|>)",
                offset,
            )
        self.current[1].append(box)
        self.current[2].append(gap)
        self.pending_text = []

    def finish(self, ends_with_image_start: bool) -> ParsedChain:
        self.close_object()
        self.texts.append("".join(self.pending_text))
        if self.dropped:
            self.diagnostics.append(
                Diagnostic("too-many-diagnostics", f"{self.dropped} more problems not listed",
                           len(self.src), self.diagnostics[-1].line, self.diagnostics[-1].column)
            )
        return ParsedChain(tuple(self.texts), tuple(self.objects), ends_with_image_start, tuple(self.diagnostics))


def _to_int(raw: str) -> tuple[int, bool]:
    """Parse a coordinate; returns (value, was_float). Huge digit runs saturate."""
    negative = raw.startswith("-")
    digits = raw.lstrip("-")
    whole, _, frac = digits.partition(".")
    if len(whole) > _MAX_DIGITS:
        return (-GRID - 1 if negative else GRID + 1), bool(frac)
    if frac:
        value = float(digits[: _MAX_DIGITS + 8])
        rounded = int(value + 0.5)
        return (-rounded if negative else rounded), True
    value = int(whole) if whole else 0
    return (-value if negative else value), False


def _make_box(scan: _Scanner, raws: list[str], offset: int) -> Box | None:
    """Turn four coordinate strings into a valid box, repairing and reporting."""
    values = []
    had_float = False
    for raw in raws:
        value, was_float = _to_int(raw)
        had_float |= was_float
        values.append(value)
    written = f"({raws[0]},{raws[1]}),({raws[2]},{raws[3]})"
    if had_float:
        scan.report("float-coordinate", f"box {written} has non-integer coordinates; rounded to integers", offset)
    if any(v < 0 or v > GRID for v in values):
        values = [min(max(v, 0), GRID) for v in values]
        scan.report("out-of-range", f"box {written} has values outside 0..{GRID}; clamped", offset)
    x1, y1, x2, y2 = values
    if x1 > x2 or y1 > y2:
        x1, x2 = min(x1, x2), max(x1, x2)
        y1, y2 = min(y1, y2), max(y1, y2)
        scan.report(
            "inverted-corners",
            f"box {written} does not go top-left to bottom-right; corners swapped to ({x1},{y1}),({x2},{y2})",
            offset,
        )
    if x1 == x2 or y1 == y2:
        scan.report("zero-area", f"box {written} has zero width or height; dropped", offset)
        return None
    return Box(x1, y1, x2, y2)


def _parse_box_body(scan: _Scanner, body: str, offset: int, closed: bool) -> tuple[Box | None, str]:
    """Parse the text after ``<|box_start|>``; returns the box and unconsumed text.

    With ``<|box_end|>`` present the whole body is the box. Without it, only a
    box-shaped prefix is taken and the rest stays free text.
    """
    if closed:
        m = _CANONICAL_BOX_RE.fullmatch(body)
        if m:
            return _make_box(scan, list(m.groups()), offset), ""
        m = _LOOSE_BOX_RE.fullmatch(body)
        if m:
            tidy = "(%s,%s),(%s,%s)" % m.groups()
            leading_zero = any(re.match(r"-?0\d", g) for g in m.groups())
            if tidy != body or leading_zero:
                scan.report("spacing", f"box '{body.strip()}' is not written exactly as (x1,y1),(x2,y2); "
                            f"read as {tidy}", offset, severity="note")
            return _make_box(scan, list(m.groups()), offset), ""
        numbers = _NUMBER_RE.findall(body)
        if len(numbers) == 4:
            scan.report("box-syntax", f"box '{_preview(body)}' is not (x1,y1),(x2,y2); read its four numbers", offset)
            return _make_box(scan, numbers, offset), ""
        scan.report(
            "box-syntax",
            f"expected (x1,y1),(x2,y2) after <|box_start|>, found '{_preview(body)}' "
            f"({len(numbers)} numbers); box dropped",
            offset,
        )
        return None, ""
    m = _LOOSE_BOX_RE.match(body)
    if m:
        box = _make_box(scan, list(m.groups()), offset)
        return box, body[m.end():]
    scan.report("box-syntax", f"expected (x1,y1),(x2,y2) after <|box_start|>, found '{_preview(body)}'; box dropped",
                offset)
    return None, body


def _preview(text: str, limit: int = 40) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[:limit] + "..."


def parse_chain(text: str, strict: bool = False) -> ParsedChain:
    """Parse a reasoning chain.

    Never raises in tolerant mode (the default), whatever ``text`` holds: broken
    tags, boxes and values are repaired or dropped, each with a diagnostic.
    With ``strict=True`` any error raises a :class:`ChainSyntaxError` listing them all.
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_chain expects a str, got {type(text).__name__}")
    scan = _Scanner(text)
    tags = [(m.start(), m.end(), m.group()) for m in TAG_RE.finditer(text)]
    tags.append((len(text), len(text), ""))
    pos = 0  # start of the not-yet-consumed text
    i = 0
    ends_with_image_start = False
    while i < len(tags) - 1:
        start, end, tag = tags[i]
        before = text[pos:start]
        nxt_start, _, nxt_tag = tags[i + 1]
        if tag == OBJ_START:
            scan.add_text(before)
            if nxt_tag == OBJ_END:
                name = text[end:nxt_start]
                if not name.strip():
                    scan.report("empty-name", "object between <|obj_start|> and <|obj_end|> has no name; dropped", start)
                    pos = tags[i + 1][1]
                    i += 2
                    continue
                scan.open_object(name)
                pos = tags[i + 1][1]
                i += 2
                continue
            body = text[end:nxt_start]
            if nxt_tag == BOX_START:
                name, rest = body, ""
            else:
                stop = _NAME_STOP_RE.search(body)
                name, rest = (body[: stop.start()], body[stop.start():]) if stop else (body, "")
            if not name.strip():
                scan.report("missing-obj-end", "<|obj_start|> is not followed by a name and <|obj_end|>; ignored", start)
                scan.add_text(body)
            else:
                where = nxt_start if nxt_tag == BOX_START or not stop else end + stop.start()
                scan.report(
                    "missing-obj-end",
                    f"expected <|obj_end|> after object name '{_preview(name.strip())}', "
                    f"found {_describe(nxt_tag) if where == nxt_start else repr(body[stop.start()])}; "
                    "name closed there",
                    where,
                )
                scan.open_object(name)
                scan.add_text(rest)
            pos = nxt_start
            i += 1
        elif tag == BOX_START:
            scan.add_text(before)
            body = text[end:nxt_start]
            closed = nxt_tag == BOX_END
            box, rest = _parse_box_body(scan, body, end, closed)
            if not closed:  # reported where the box text ended and <|box_end|> should have been
                after = end + len(body) - len(rest)
                found = _describe(nxt_tag) if not rest.strip() else f"'{_preview(rest.strip(), 20)}'"
                scan.report("missing-box-end", f"expected <|box_end|> after the box, found {found}", after)
            scan.attach_box(box, start)
            scan.add_text(rest)
            if closed:
                pos = tags[i + 1][1]
                i += 2
            else:
                pos = nxt_start
                i += 1
        elif tag == IMAGE_START:
            scan.add_text(before)
            ends_with_image_start = True
            if end < len(text):
                blank = not text[end:].strip()
                scan.report("text-after-image-start",
                            f"{len(text) - end} {'blank ' if blank else ''}characters after {IMAGE_START} ignored",
                            end, severity="note" if blank else "error")
            pos = len(text)
            break
        else:  # a closing tag with nothing open
            scan.add_text(before)
            opener = "<|obj_start|>" if tag == OBJ_END else "<|box_start|>"
            scan.report("stray-tag", f"{tag} without a matching {opener}; ignored", start)
            pos = end
            i += 1
    scan.add_text(text[pos:])
    parsed = scan.finish(ends_with_image_start)
    if strict:
        raise_if_invalid(parsed)
    return parsed


def _describe(tag: str) -> str:
    return tag if tag else "end of text"


def raise_if_invalid(parsed: ParsedChain) -> None:
    """Raise :class:`ChainSyntaxError` listing every error diagnostic, if there is one."""
    errors = tuple(d for d in parsed.diagnostics if d.severity == "error")
    if errors:
        raise ChainSyntaxError(errors[0], errors)


def chain_to_draw(text: str) -> tuple[str, ParsedChain]:
    """A chain a person gave, as the image stage should see it: ``(chain, parsed)``.

    The chain is parsed tolerantly and written back in the grammar
    (:func:`format_chain`), so the model never sees broken tags: what was
    repaired is drawn as repaired, and ``parsed.diagnostics`` says what that
    was. A chain in which no object has a box gives the model nothing to
    follow: :class:`ValueError`, saying why and what the parser found.
    """
    parsed = parse_chain(text)
    if not any(obj.boxes for obj in parsed.objects):
        found = ("; ".join(str(d) for d in parsed.diagnostics[:3]) if parsed.diagnostics
                 else f"{len(parsed.objects)} objects, none followed by a box")
        raise ValueError(
            f"no object with a box in the chain: {found}. Write each object as "
            f"{OBJ_START}name{OBJ_END}{BOX_START}(x1,y1),(x2,y2){BOX_END} with integers on the 0-{GRID} grid, "
            "or give no chain to let the model plan")
    parsed = ParsedChain(parsed.texts, parsed.objects, True, parsed.diagnostics)
    return format_chain(parsed), parsed


def well_formed(parsed: ParsedChain) -> ParsedChain:
    """The same objects, boxes and words, written so that the chain parses without a diagnostic.

    A repaired chain can keep text between an object and its box (the box is
    attached to the object, the text kept as its gap); here each such text
    moves to just after the object's boxes. Editors that rewrite a plan start
    from this form, so whatever they write back parses in strict mode.
    """
    texts, objects = list(parsed.texts), []
    for i, obj in enumerate(parsed.objects):
        moved = "".join(gap for gap in obj.gaps if gap.strip())
        gaps = tuple(gap if not gap.strip() else " " for gap in obj.gaps)
        objects.append(ChainObject(obj.name, obj.boxes, gaps))
        if moved:
            texts[i + 1] = f" {moved.strip()} {texts[i + 1]}"
    return ParsedChain(tuple(texts), tuple(objects), parsed.ends_with_image_start)


def diagnostics_text(parsed: ParsedChain) -> str:
    """One line per diagnostic (``line:column: severity: message [code]``), or 'no problems found'."""
    if not parsed.diagnostics:
        return "no problems found"
    return "\n".join(str(d) for d in parsed.diagnostics)


CHAIN_SEPARATOR = "\n\n<|next_chain|>\n\n"
"""Joins the chains of a batch into one string (one chain per generated image)."""


def join_chains(chains: list[str]) -> str:
    return CHAIN_SEPARATOR.join(chains)


def split_chains(text: str) -> list[str]:
    """Inverse of :func:`join_chains`; a text without separators is one chain."""
    return [part.strip("\n") for part in text.split(CHAIN_SEPARATOR.strip())]


def format_chain(parsed: ParsedChain) -> str:
    """Write a chain back as text; the inverse of :func:`parse_chain`."""
    parts = [parsed.texts[0]]
    for obj, after in zip(parsed.objects, parsed.texts[1:]):
        parts += [OBJ_START, obj.name, OBJ_END]
        for gap, box in zip(obj.gaps, obj.boxes):
            parts += [gap, BOX_START, box.format(), BOX_END]
        parts.append(after)
    if parsed.ends_with_image_start:
        parts.append(IMAGE_START)
    return "".join(parts)
