// Applies edit scripts to chains for the Python tests (tests/test_plan_editor.py), which parse what comes out
// with the Python parser in strict mode. stdin: [{chain, ops}], stdout: [{chain, texts, boxes} | {error}].
import * as L from "../gotr1/plan_layout.js";

const apply = (plan, op) => {
  const all = L.boxesOf(plan);
  const pick = (i) => all[((i % all.length) + all.length) % all.length];
  const [kind, ...args] = op;
  if (kind === "add") return L.withObject(plan, args[0], L.boxFromCorners(...args.slice(1)));
  if (!all.length) return plan;
  const b = pick(args[0]);
  const box = plan.objects[b.object].boxes[b.box];
  if (kind === "move") return L.withBox(plan, b.object, b.box, L.movedBox(box, args[1], args[2]));
  if (kind === "resize") return L.withBox(plan, b.object, b.box, L.resizedBox(box, args[1], args[2], args[3]));
  if (kind === "nudge") return L.withBox(plan, b.object, b.box, L.nudge(box, args[1], args[2]));
  if (kind === "rename") return L.renamed(plan, b.object, args[1]);
  if (kind === "delete") return L.withoutBox(plan, b.object, b.box);
  throw new Error(`unknown op ${kind}`);
};

let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const out = JSON.parse(input).map(({ chain, ops }) => {
    try {
      const plan = ops.reduce(apply, L.parseChain(chain));
      return { chain: L.formatChain(plan), texts: plan.texts, boxes: L.boxesOf(plan) };
    } catch (e) {
      return { error: String(e.message) };
    }
  });
  process.stdout.write(JSON.stringify(out));
});
