// Unit tests of the Plan Editor's layout logic: node --test web/tests/
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  ChainError,
  GRID,
  History,
  MIN_SIZE,
  boxFromCorners,
  boxesOf,
  formatChain,
  hitTest,
  movedBox,
  nudge,
  parseChain,
  renamed,
  resizedBox,
  withBox,
  withObject,
  withoutBox,
} from "../gotr1/plan_layout.js";

const CHAIN =
  "A <|obj_start|>red circle<|obj_end|> <|box_start|>(100,200),(400,500)<|box_end|> left of a " +
  "<|obj_start|>blue square<|obj_end|> <|box_start|>(500,200),(900,600)<|box_end|>" +
  "<|box_start|>(10,700),(90,990)<|box_end|>.<begin_of_image>";

test("a chain parses into text, objects and boxes and formats back exactly", () => {
  const plan = parseChain(CHAIN);
  assert.deepEqual(plan.texts, ["A ", " left of a ", "."]);
  assert.deepEqual(plan.objects.map((o) => o.name), ["red circle", "blue square"]);
  assert.deepEqual(plan.objects[1].boxes, [
    { x1: 500, y1: 200, x2: 900, y2: 600 },
    { x1: 10, y1: 700, x2: 90, y2: 990 },
  ]);
  assert.deepEqual(plan.objects[1].gaps, [" ", ""]);
  assert.equal(plan.endsWithImageStart, true);
  assert.equal(formatChain(plan), CHAIN);
  for (const text of ["", "just words", "<|obj_start|>cat<|obj_end|> with no box"]) {
    assert.equal(formatChain(parseChain(text)), text);
  }
});

test("chains that are not well formed are refused with what and where", () => {
  const cases = [
    ["<|obj_start|>cat <|box_start|>(1,2),(3,4)<|box_end|>", /expected <\|obj_end\|>/],
    ["<|obj_start|>cat<|obj_end|> <|box_start|>(1,2),(3,4)", /expected <\|box_end\|>/],
    ["<|obj_start|>cat<|obj_end|> <|box_start|>(1,2),(3,1001)<|box_end|>", /must read|0\.\.1000/],
    ["<|obj_start|>cat<|obj_end|> <|box_start|>(5,2),(3,4)<|box_end|>", /x1 < x2/],
    ["<|obj_start|>cat<|obj_end|> <|box_start|>(1.5,2),(3,4)<|box_end|>", /whole numbers/],
    ["<|obj_start|> <|obj_end|>", /no name/],
    ["text <|box_end|>", /without an object/],
    ["<begin_of_image> more", /text after/],
  ];
  for (const [text, message] of cases) {
    assert.throws(() => parseChain(text), (e) => e instanceof ChainError && message.test(e.message), text);
  }
});

test("hit-testing finds the topmost box, its corners and edges", () => {
  const plan = parseChain(CHAIN);
  assert.deepEqual(hitTest(plan, 250, 350), { object: 0, box: 0, handle: "move" });
  assert.deepEqual(hitTest(plan, 101, 201), { object: 0, box: 0, handle: "nw" });
  assert.deepEqual(hitTest(plan, 905, 400), { object: 1, box: 0, handle: "e" });
  assert.deepEqual(hitTest(plan, 700, 598), { object: 1, box: 0, handle: "s" });
  assert.equal(hitTest(plan, 450, 900), null);
  const small = withBox(plan, 0, 0, { x1: 100, y1: 100, x2: 140, y2: 140 });
  assert.deepEqual(hitTest(small, 112, 112, 40), { object: 0, box: 0, handle: "move" }); // not a corner
  assert.deepEqual(hitTest(small, 101, 101, 40), { object: 0, box: 0, handle: "nw" });
  const overlapping = withBox(plan, 1, 0, { x1: 200, y1: 300, x2: 600, y2: 700 }); // drawn after the circle
  assert.deepEqual(hitTest(overlapping, 300, 400), { object: 1, box: 0, handle: "move" });
});

test("moving snaps to whole units and keeps the box inside the canvas at its size", () => {
  const box = { x1: 100, y1: 200, x2: 400, y2: 500 };
  assert.deepEqual(movedBox(box, 10.4, -20.6), { x1: 110, y1: 179, x2: 410, y2: 479 });
  assert.deepEqual(movedBox(box, 5000, -5000), { x1: 700, y1: 0, x2: GRID, y2: 300 });
  assert.deepEqual(movedBox(box, -150, 0), { x1: 0, y1: 200, x2: 300, y2: 500 });
});

test("resizing moves only the held edges, snaps, stays inside and never flips", () => {
  const box = { x1: 100, y1: 200, x2: 400, y2: 500 };
  assert.deepEqual(resizedBox(box, "se", 612.7, 733.2), { x1: 100, y1: 200, x2: 613, y2: 733 });
  assert.deepEqual(resizedBox(box, "w", 50.2, 999), { x1: 50, y1: 200, x2: 400, y2: 500 });
  assert.deepEqual(resizedBox(box, "n", 0, -300), { x1: 100, y1: 0, x2: 400, y2: 500 });
  assert.deepEqual(resizedBox(box, "e", 20, 0), { x1: 100, y1: 200, x2: 100 + MIN_SIZE, y2: 500 });
  assert.deepEqual(resizedBox(box, "ne", 2000, 900), { x1: 100, y1: 500 - MIN_SIZE, x2: GRID, y2: 500 });
});

test("a new box from a drag in any direction", () => {
  assert.deepEqual(boxFromCorners(300.6, 400, 100, 200.2), { x1: 100, y1: 200, x2: 301, y2: 400 });
  assert.deepEqual(boxFromCorners(995, 995, 999, 999), { x1: 992 - 0, y1: 992, x2: 1000, y2: 1000 });
});

test("adding, renaming and deleting keep the text around the objects", () => {
  const plan = parseChain(CHAIN);
  const added = withObject(plan, " green triangle ", { x1: 10, y1: 20, x2: 30, y2: 40 });
  assert.equal(
    formatChain(added),
    CHAIN.replace(
      ".<begin_of_image>",
      ", <|obj_start|>green triangle<|obj_end|> <|box_start|>(10,20),(30,40)<|box_end|>.<begin_of_image>",
    ),
  );
  const first = withObject(parseChain(""), "cat", { x1: 1, y1: 2, x2: 3, y2: 4 });
  assert.equal(formatChain(first), "<|obj_start|>cat<|obj_end|> <|box_start|>(1,2),(3,4)<|box_end|>");
  assert.equal(formatChain(renamed(plan, 0, "yellow circle")), CHAIN.replace("red circle", "yellow circle"));
  assert.throws(() => renamed(plan, 0, "a <|obj_end|> b"), ChainError);
  assert.throws(() => renamed(plan, 0, "  "), ChainError);
  const oneBoxLess = withoutBox(plan, 1, 1);
  assert.equal(formatChain(oneBoxLess), CHAIN.replace("<|box_start|>(10,700),(90,990)<|box_end|>", ""));
  const noCircle = withoutBox(plan, 0, 0);
  assert.equal(formatChain(noCircle).startsWith("A red circle left of a <|obj_start|>blue square"), true);
  assert.equal(boxesOf(noCircle).length, 2);
  assert.equal(formatChain(plan), CHAIN); // edits never change the plan they start from
});

test("undo and redo walk the edits back and forth; a new edit clears redo", () => {
  const history = new History();
  let plan = parseChain(CHAIN);
  const start = plan;
  history.push(plan);
  plan = withBox(plan, 0, 0, { x1: 0, y1: 0, x2: 10, y2: 10 });
  const moved = plan;
  history.push(plan);
  plan = renamed(plan, 1, "green square");
  plan = history.undo(plan);
  assert.equal(plan, moved);
  plan = history.undo(plan);
  assert.equal(plan, start);
  assert.equal(history.undo(plan), start); // nothing more to undo
  plan = history.redo(plan);
  assert.equal(plan, moved);
  history.push(plan);
  assert.equal(history.redo(plan), plan);
});

test("arrow keys nudge by one unit, ten with shift, inside the canvas", () => {
  const box = { x1: 0, y1: 200, x2: 300, y2: 500 };
  assert.deepEqual(nudge(box, "ArrowRight"), { x1: 1, y1: 200, x2: 301, y2: 500 });
  assert.deepEqual(nudge(box, "ArrowUp", true), { x1: 0, y1: 190, x2: 300, y2: 490 });
  assert.deepEqual(nudge(box, "ArrowLeft"), box);
  assert.deepEqual(nudge(box, "Enter"), box);
});
