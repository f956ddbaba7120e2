// The Plan Editor's layout logic, apart from any DOM: chain text <-> boxes, hit-testing, moving and
// resizing with snapping, adding, deleting, renaming, undo/redo. The widget (plan_editor.js) only draws
// and forwards mouse and keys here; tests (web/tests/) run this module under node.
//
// A chain is free text in which objects are named and planned on a 0-1000 grid:
//   a <|obj_start|>red circle<|obj_end|> <|box_start|>(120,340),(410,690)<|box_end|> left of ...
// The plan keeps the text around the objects exactly, so editing a box changes only its numbers.

export const GRID = 1000;
export const MIN_SIZE = 8; // the smallest box a drag makes, in grid units (still large enough to grab)
export const OBJ_START = "<|obj_start|>";
export const OBJ_END = "<|obj_end|>";
export const BOX_START = "<|box_start|>";
export const BOX_END = "<|box_end|>";
export const IMAGE_START = "<begin_of_image>";

const TAG = /<\|(?:obj_start|obj_end|box_start|box_end)\|>|<begin_of_image>/g;
const BOX_BODY = /^\((0|[1-9]\d{0,3}),(0|[1-9]\d{0,3})\),\((0|[1-9]\d{0,3}),(0|[1-9]\d{0,3})\)$/;
const FORBIDDEN_IN_NAME = /<\||\|>|<begin_of_image>/;

export class ChainError extends Error {}

/**
 * Parse a well-formed chain into {texts, objects: [{name, boxes: [{x1,y1,x2,y2}], gaps}], endsWithImageStart}.
 * texts[0] precedes the first object, texts[i + 1] follows object i. A chain that is not well formed
 * throws ChainError naming what and where (the node repairs model output before it reaches the editor).
 */
export function parseChain(text) {
  if (typeof text !== "string") throw new ChainError("a chain must be text");
  const tags = [...text.matchAll(TAG)].map((m) => ({ tag: m[0], start: m.index, end: m.index + m[0].length }));
  const plan = { texts: [""], objects: [], endsWithImageStart: false };
  let pos = 0;
  let i = 0;
  const fail = (message, at) => {
    throw new ChainError(`${message} at character ${at}`);
  };
  while (i < tags.length) {
    const { tag, start, end } = tags[i];
    const before = text.slice(pos, start);
    if (tag === OBJ_START) {
      const close = tags[i + 1];
      if (!close || close.tag !== OBJ_END) fail("expected <|obj_end|> after an object's name", end);
      const name = text.slice(end, close.start);
      if (!name.trim()) fail("an object has no name", end);
      plan.texts[plan.texts.length - 1] += before;
      const object = { name, boxes: [], gaps: [] };
      pos = close.end;
      i += 2;
      while (i < tags.length && tags[i].tag === BOX_START && !text.slice(pos, tags[i].start).trim()) {
        const boxEnd = tags[i + 1];
        if (!boxEnd || boxEnd.tag !== BOX_END) fail("expected <|box_end|> after a box", tags[i].end);
        object.gaps.push(text.slice(pos, tags[i].start));
        object.boxes.push(parseBox(text.slice(tags[i].end, boxEnd.start), tags[i].end));
        pos = boxEnd.end;
        i += 2;
      }
      plan.objects.push(object);
      plan.texts.push("");
    } else if (tag === IMAGE_START) {
      if (text.slice(end).trim()) fail("text after <begin_of_image>", end);
      plan.texts[plan.texts.length - 1] += before;
      plan.endsWithImageStart = true;
      pos = text.length;
      break;
    } else {
      fail(`${tag} without an object before it`, start);
    }
  }
  if (pos < text.length) plan.texts[plan.texts.length - 1] += text.slice(pos);
  return plan;
}

function parseBox(body, at) {
  const m = BOX_BODY.exec(body);
  if (!m) throw new ChainError(`a box must read (x1,y1),(x2,y2) with whole numbers, got '${body}' at character ${at}`);
  const box = { x1: +m[1], y1: +m[2], x2: +m[3], y2: +m[4] };
  checkBox(box, at);
  return box;
}

function checkBox(box, at = "?") {
  for (const key of ["x1", "y1", "x2", "y2"]) {
    const v = box[key];
    if (!Number.isInteger(v) || v < 0 || v > GRID) {
      throw new ChainError(`box ${key}=${v} must be a whole number in 0..${GRID} (character ${at})`);
    }
  }
  if (box.x1 >= box.x2 || box.y1 >= box.y2) {
    throw new ChainError(`box (${box.x1},${box.y1}),(${box.x2},${box.y2}) needs x1 < x2 and y1 < y2`);
  }
}

/** The chain text of a plan: the inverse of parseChain. */
export function formatChain(plan) {
  const parts = [plan.texts[0]];
  plan.objects.forEach((object, i) => {
    parts.push(OBJ_START, object.name, OBJ_END);
    object.boxes.forEach((b, k) => {
      parts.push(object.gaps[k] ?? " ", BOX_START, `(${b.x1},${b.y1}),(${b.x2},${b.y2})`, BOX_END);
    });
    parts.push(plan.texts[i + 1]);
  });
  if (plan.endsWithImageStart) parts.push(IMAGE_START);
  return parts.join("");
}

/**
 * Object colours, the same list as gotr1_core/layout.py's PALETTE (a test keeps them equal): readable on white,
 * on ComfyUI's dark canvas and under white label text.
 */
export const PALETTE = [
  [230, 25, 75], [67, 99, 216], [46, 160, 67], [232, 113, 22], [165, 70, 205],
  [0, 150, 180], [214, 40, 200], [154, 99, 36], [128, 128, 0], [0, 128, 128],
];

/** A label as the palette sees it: whitespace runs made one space, trimmed, ASCII lowercase (as in Python). */
function colourKey(label) {
  const folded = label.replace(/[ \t\r\n]+/g, " ").replace(/^ +| +$/g, "");
  return new TextEncoder().encode(folded.replace(/[A-Z]/g, (c) => c.toLowerCase()));
}

/** 32-bit FNV-1a of bytes: the number Python's _fnv1a gives. */
function fnv1a(bytes) {
  let h = 0x811c9dc5;
  for (const byte of bytes) h = Math.imul(h ^ byte, 0x01000193) >>> 0;
  return h;
}

/**
 * One [r, g, b] per label, as label_colours in gotr1_core/layout.py: the colour the label's hash names, or the
 * next one no other label of the plan has; the same label, the same colour. So an object looks the same in the
 * Plan Editor, the Layout Viewer and the demo sheet.
 */
export function labelColours(labels) {
  const chosen = new Map();
  return labels.map((label) => {
    const bytes = colourKey(label);
    const key = bytes.join(",");
    if (!chosen.has(key)) {
      const start = fnv1a(bytes) % PALETTE.length;
      const used = new Set(chosen.values());
      let pick = start;
      for (let k = 0; k < PALETTE.length; k++) {
        if (!used.has((start + k) % PALETTE.length)) {
          pick = (start + k) % PALETTE.length;
          break;
        }
      }
      chosen.set(key, pick);
    }
    return PALETTE[chosen.get(key)];
  });
}

/** Every box of a plan, in drawing order: {object, box, label, x1, y1, x2, y2}. */
export function boxesOf(plan) {
  const out = [];
  plan.objects.forEach((object, o) =>
    object.boxes.forEach((b, k) => out.push({ object: o, box: k, label: object.name.trim(), ...b })),
  );
  return out;
}

/**
 * What a point (grid units) is on: the topmost box (drawn last) whose edge, corner or inside is within
 * `tolerance` grid units (at most a quarter of the box's side, so a small box can still be moved). Returns {object, box, handle} with handle "move" or a compass corner/edge
 * ("n", "ne", "e", "se", "s", "sw", "w", "nw"), or null.
 */
export function hitTest(plan, x, y, tolerance = 12) {
  const all = boxesOf(plan);
  for (let i = all.length - 1; i >= 0; i--) {
    const b = all[i];
    if (x < b.x1 - tolerance || x > b.x2 + tolerance || y < b.y1 - tolerance || y > b.y2 + tolerance) continue;
    const reach = Math.min(tolerance, (b.x2 - b.x1) / 4, (b.y2 - b.y1) / 4); // a small box is mostly "move"
    const near = (a, v) => Math.abs(a - v) <= reach;
    const ns = near(y, b.y1) ? "n" : near(y, b.y2) ? "s" : "";
    const we = near(x, b.x1) ? "w" : near(x, b.x2) ? "e" : "";
    const handle = ns + we;
    if (handle) return { object: b.object, box: b.box, handle };
    if (x >= b.x1 && x <= b.x2 && y >= b.y1 && y <= b.y2) return { object: b.object, box: b.box, handle: "move" };
  }
  return null;
}

const snap = (v) => Math.round(v);
const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

/** The box moved by (dx, dy) grid units, snapped to whole units and kept inside the canvas (size kept). */
export function movedBox(box, dx, dy) {
  const w = box.x2 - box.x1;
  const h = box.y2 - box.y1;
  const x1 = clamp(snap(box.x1 + dx), 0, GRID - w);
  const y1 = clamp(snap(box.y1 + dy), 0, GRID - h);
  return { x1, y1, x2: x1 + w, y2: y1 + h };
}

/**
 * The box with the edges a handle holds dragged to the point (x, y): snapped, inside the canvas, and at
 * least MIN_SIZE wide and tall (the dragged edge stops there rather than flipping over the other).
 */
export function resizedBox(box, handle, x, y) {
  let { x1, y1, x2, y2 } = box;
  const px = clamp(snap(x), 0, GRID);
  const py = clamp(snap(y), 0, GRID);
  if (handle.includes("w")) x1 = Math.min(px, x2 - MIN_SIZE);
  if (handle.includes("e")) x2 = Math.max(px, x1 + MIN_SIZE);
  if (handle.includes("n")) y1 = Math.min(py, y2 - MIN_SIZE);
  if (handle.includes("s")) y2 = Math.max(py, y1 + MIN_SIZE);
  return { x1: clamp(x1, 0, GRID), y1: clamp(y1, 0, GRID), x2: clamp(x2, 0, GRID), y2: clamp(y2, 0, GRID) };
}

/** A box from two corners of a drag (any order), snapped, inside the canvas, at least MIN_SIZE. */
export function boxFromCorners(ax, ay, bx, by) {
  const x1 = clamp(snap(Math.min(ax, bx)), 0, GRID - MIN_SIZE);
  const y1 = clamp(snap(Math.min(ay, by)), 0, GRID - MIN_SIZE);
  const x2 = clamp(Math.max(snap(Math.max(ax, bx)), x1 + MIN_SIZE), 0, GRID);
  const y2 = clamp(Math.max(snap(Math.max(ay, by)), y1 + MIN_SIZE), 0, GRID);
  return { x1, y1, x2, y2 };
}

function copy(plan) {
  return {
    texts: [...plan.texts],
    objects: plan.objects.map((o) => ({ name: o.name, boxes: o.boxes.map((b) => ({ ...b })), gaps: [...o.gaps] })),
    endsWithImageStart: plan.endsWithImageStart,
  };
}

/** A new plan with one box replaced. */
export function withBox(plan, object, box, value) {
  checkBox(value);
  const next = copy(plan);
  next.objects[object].boxes[box] = { ...value };
  return next;
}

/** Check an object name a person typed: not empty, no chain tags, one line. Returns it or throws. */
export function checkName(name) {
  if (typeof name !== "string" || !name.trim()) throw new ChainError("an object needs a name");
  if (FORBIDDEN_IN_NAME.test(name)) throw new ChainError("a name cannot contain chain tags (<|...|>)");
  if (/[\n\r]/.test(name)) throw new ChainError("a name is one line");
  return name;
}

/** A new plan with object `object` renamed (the spaces around its old name kept). */
export function renamed(plan, object, name) {
  checkName(name);
  const next = copy(plan);
  const old = next.objects[object].name;
  const lead = old.match(/^\s*/)[0];
  const trail = old.match(/\s*$/)[0];
  next.objects[object].name = lead + name.trim() + trail;
  return next;
}

/**
 * A new plan with an object added after the last one: ", <|obj_start|>name<|obj_end|> <|box_start|>...<|box_end|>"
 * (a closing "." or spaces of the chain stay at its end).
 */
export function withObject(plan, name, box) {
  checkName(name);
  checkBox(box);
  const next = copy(plan);
  const last = next.texts.length - 1;
  const closing = next.texts[last];
  const tail = closing.match(/[.!?\s]*$/)[0];
  next.texts[last] = closing.slice(0, closing.length - tail.length) + (next.objects.length ? ", " : "");
  next.objects.push({ name: name.trim(), boxes: [{ ...box }], gaps: [" "] });
  next.texts.push(tail);
  return next;
}

/**
 * A new plan without box `box` of object `object`; an object left with no box is removed with its tags
 * (its name stays in the text around it as plain words, so the sentence still reads).
 */
export function withoutBox(plan, object, box) {
  const next = copy(plan);
  const target = next.objects[object];
  target.boxes.splice(box, 1);
  target.gaps.splice(box, 1);
  if (target.boxes.length === 0) {
    next.objects.splice(object, 1);
    const merged = next.texts[object] + target.name + next.texts[object + 1];
    next.texts.splice(object, 2, merged);
  }
  return next;
}

/** Undo/redo over plan values (each edit is a new plan; nothing is mutated). */
export class History {
  constructor(limit = 200) {
    this.past = [];
    this.future = [];
    this.limit = limit;
  }

  /** Record `before` as the state to come back to; clears redo. */
  push(before) {
    this.past.push(before);
    if (this.past.length > this.limit) this.past.shift();
    this.future = [];
  }

  undo(current) {
    if (!this.past.length) return current;
    this.future.push(current);
    return this.past.pop();
  }

  redo(current) {
    if (!this.future.length) return current;
    this.past.push(current);
    return this.future.pop();
  }
}

/** Keyboard nudging: arrow keys move the selected box one unit, ten with Shift. */
export function nudge(box, key, shift = false) {
  const step = shift ? 10 : 1;
  const d = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] }[key];
  return d ? movedBox(box, d[0], d[1]) : box;
}
