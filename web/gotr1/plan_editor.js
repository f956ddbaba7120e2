// The GoT-R1 Plan Editor's canvas: a DOM widget that draws the plan's boxes over an optional background and
// turns mouse and keys into edits (logic in plan_layout.js). The edited chain is the node's `plan` widget
// value, so it is saved in the workflow; empty means "pass the incoming plan through".
import { app } from "../../../scripts/app.js";
import { api } from "../../../scripts/api.js";
import * as L from "./plan_layout.js";

const NODE_TYPE = "GoTR1PlanEditor";
const hex = ([r, g, b]) => `#${[r, g, b].map((v) => v.toString(16).padStart(2, "0")).join("")}`;
const HANDLE_PX = 5;
const ASPECTS = { "1:1": 1, "4:3": 3 / 4, "3:4": 4 / 3, "3:2": 2 / 3, "2:3": 3 / 2, "16:9": 9 / 16, "9:16": 16 / 9 };

function button(label, title, onClick) {
  const b = document.createElement("button");
  b.textContent = label;
  b.title = title;
  b.style.cssText = "font-size:12px;padding:1px 6px;margin-right:3px;cursor:pointer";
  b.addEventListener("click", (e) => {
    e.stopPropagation();
    onClick();
  });
  return b;
}

class PlanCanvas {
  constructor(node) {
    this.node = node;
    this.planWidget = node.widgets.find((w) => w.name === "plan");
    this.aspectWidget = node.widgets.find((w) => w.name === "aspect_ratio");
    this.history = new L.History();
    this.selected = null; // {object, box}
    this.drag = null;
    this.background = null;
    this.lastGood = L.parseChain("");

    this.root = document.createElement("div");
    this.root.className = "gotr1-plan-editor";
    this.root.style.cssText =
      "position:relative;display:flex;flex-direction:column;gap:3px;width:100%;height:100%;overflow:hidden";
    const bar = (this.bar = document.createElement("div"));
    const then = (action) => () => {
      action();
      this.focus(); // keys (nudge, Delete, Ctrl+Z) go on working on the plan
    };
    bar.append(
      button("Add", "add an object (its name is asked)", then(() => this.addObject())),
      button("Delete", "delete the selected box (Delete key)", then(() => this.deleteSelected())),
      button("Undo", "Ctrl+Z", then(() => this.undo())),
      button("Redo", "Ctrl+Y / Ctrl+Shift+Z", then(() => this.redo())),
      button("Reset", "back to the incoming plan (edits dropped)", then(() => this.reset())),
    );
    this.canvas = document.createElement("canvas");
    this.canvas.style.cssText = "flex:none;outline:none;background:#fff;touch-action:none;align-self:center";
    // Keys go to an invisible input beside the canvas: ComfyUI leaves keys typed into an input to it, so
    // Ctrl+Z / Delete / arrows edit the plan here instead of undoing or deleting in the graph around it.
    this.keys = document.createElement("input");
    this.keys.readOnly = true;
    this.keys.setAttribute("aria-label", "GoT-R1 Plan Editor keys");
    this.keys.style.cssText = "position:absolute;left:0;top:0;width:1px;height:1px;opacity:0;pointer-events:none";
    this.status = document.createElement("div");
    this.status.style.cssText = "font-size:11px;opacity:0.8;white-space:nowrap;overflow:hidden;text-overflow:ellipsis";
    this.root.append(bar, this.canvas, this.status, this.keys);

    this.canvas.addEventListener("pointerdown", (e) => this.onDown(e));
    this.canvas.addEventListener("pointermove", (e) => this.onMove(e));
    this.canvas.addEventListener("pointerup", (e) => this.onUp(e));
    this.canvas.addEventListener("dblclick", (e) => this.onDoubleClick(e));
    this.keys.addEventListener("keydown", (e) => this.onKey(e));
    new ResizeObserver(() => this.draw()).observe(this.root);
    const shaped = this.aspectWidget?.callback;
    if (this.aspectWidget) {
      this.aspectWidget.callback = (...args) => {
        shaped?.apply(this.aspectWidget, args);
        this.draw();
      };
    }
    const typed = this.planWidget.callback;
    this.planWidget.callback = (...args) => {
      typed?.apply(this.planWidget, args);
      this.draw();
    };
  }

  focus() {
    this.keys.focus({ preventScroll: true });
  }

  get incoming() {
    return this.node.properties?.gotr1_incoming ?? "";
  }

  get edited() {
    return Boolean(this.planWidget.value && this.planWidget.value.trim());
  }

  /** The plan shown: the edited one, else the incoming one; text that does not parse keeps the last good. */
  plan() {
    const text = this.edited ? this.planWidget.value : this.incoming;
    try {
      this.lastGood = L.parseChain(text);
      this.error = null;
    } catch (e) {
      this.error = e.message;
    }
    return this.lastGood;
  }

  /** Make `next` the edited plan; `undoable`: the plan before it is what Undo returns to. */
  commit(next, undoable) {
    if (undoable) this.history.push(this.edited ? this.planWidget.value : "");
    this.planWidget.value = L.formatChain(next);
    this.planWidget.callback?.(this.planWidget.value); // redraws (see the constructor)
    this.node.setDirtyCanvas?.(true, true);
  }

  restore(text) {
    this.planWidget.value = text;
    this.selected = null;
    this.node.setDirtyCanvas?.(true, true);
    this.draw();
  }

  undo() {
    this.restore(this.history.undo(this.edited ? this.planWidget.value : ""));
  }

  redo() {
    this.restore(this.history.redo(this.edited ? this.planWidget.value : ""));
  }

  reset() {
    if (!this.edited) return;
    this.history.push(this.planWidget.value);
    this.restore("");
  }

  addObject() {
    const name = window.prompt("Name of the new object", "object");
    if (name === null) return;
    try {
      const plan = this.plan();
      const next = L.withObject(plan, name, { x1: 350, y1: 350, x2: 650, y2: 650 });
      this.commit(next, true);
      const boxes = L.boxesOf(next);
      this.selected = { object: boxes.at(-1).object, box: boxes.at(-1).box };
      this.draw();
    } catch (e) {
      this.status.textContent = e.message;
    }
  }

  deleteSelected() {
    if (!this.selected) return;
    const next = L.withoutBox(this.plan(), this.selected.object, this.selected.box);
    this.selected = null;
    this.commit(next, true);
  }

  toGrid(e) {
    const r = this.canvas.getBoundingClientRect();
    return { x: ((e.clientX - r.left) / r.width) * L.GRID, y: ((e.clientY - r.top) / r.height) * L.GRID };
  }

  tolerance() {
    return (HANDLE_PX * 2 * L.GRID) / Math.max(1, this.canvas.getBoundingClientRect().width);
  }

  onDown(e) {
    e.stopPropagation();
    this.focus();
    const p = this.toGrid(e);
    const plan = this.plan();
    const hit = L.hitTest(plan, p.x, p.y, this.tolerance());
    this.selected = hit ? { object: hit.object, box: hit.box } : null;
    if (hit) {
      this.drag = { ...hit, start: p, original: { ...plan.objects[hit.object].boxes[hit.box] }, plan, moved: false };
      this.canvas.setPointerCapture(e.pointerId);
    }
    this.draw();
  }

  onMove(e) {
    const p = this.toGrid(e);
    if (!this.drag) {
      const hit = L.hitTest(this.plan(), p.x, p.y, this.tolerance());
      const cursors = { move: "move", n: "ns-resize", s: "ns-resize", e: "ew-resize", w: "ew-resize",
        ne: "nesw-resize", sw: "nesw-resize", nw: "nwse-resize", se: "nwse-resize" };
      this.canvas.style.cursor = hit ? cursors[hit.handle] : "default";
      return;
    }
    e.stopPropagation();
    const d = this.drag;
    const box = d.handle === "move"
      ? L.movedBox(d.original, p.x - d.start.x, p.y - d.start.y)
      : L.resizedBox(d.original, d.handle, p.x, p.y);
    const first = !d.moved;
    d.moved = true;
    this.commit(L.withBox(d.plan, d.object, d.box, box), first);
  }

  onUp(e) {
    if (this.drag) this.canvas.releasePointerCapture?.(e.pointerId);
    this.drag = null;
  }

  onDoubleClick(e) {
    e.stopPropagation();
    const p = this.toGrid(e);
    const plan = this.plan();
    const hit = L.hitTest(plan, p.x, p.y, this.tolerance());
    if (!hit) return;
    const name = window.prompt("Rename the object", plan.objects[hit.object].name.trim());
    if (name === null) return;
    try {
      this.commit(L.renamed(plan, hit.object, name), true);
    } catch (err) {
      this.status.textContent = err.message;
    }
  }

  onKey(e) {
    const ctrl = e.ctrlKey || e.metaKey;
    if (ctrl && (e.key === "z" || e.key === "Z")) e.shiftKey ? this.redo() : this.undo();
    else if (ctrl && (e.key === "y" || e.key === "Y")) this.redo();
    else if ((e.key === "Delete" || e.key === "Backspace") && this.selected) this.deleteSelected();
    else if (e.key.startsWith("Arrow") && this.selected) {
      const plan = this.plan();
      const box = plan.objects[this.selected.object].boxes[this.selected.box];
      this.commit(L.withBox(plan, this.selected.object, this.selected.box, L.nudge(box, e.key, e.shiftKey)), true);
    } else return;
    e.preventDefault();
    e.stopPropagation();
  }

  setBackground(picture) {
    if (!picture) {
      this.background = null;
      return;
    }
    const image = new Image();
    const query = new URLSearchParams({ filename: picture.filename, subfolder: picture.subfolder ?? "",
      type: picture.type ?? "temp" });
    image.onload = () => this.draw();
    image.src = api.apiURL(`/view?${query}`);
    this.background = image;
  }

  draw() {
    const plan = this.plan();
    const image = this.background?.complete && this.background.naturalWidth ? this.background : null;
    const ratio = image ? image.naturalHeight / image.naturalWidth : ASPECTS[this.aspectWidget?.value] ?? 1;
    // the largest canvas of this shape that fits the widget (below the buttons, above the status line)
    const room = this.root.clientHeight - this.bar.offsetHeight - this.status.offsetHeight - 8;
    let drawWidth = Math.max(50, this.root.clientWidth);
    let height = drawWidth * ratio;
    if (room > 50 && height > room) {
      height = room;
      drawWidth = height / ratio;
    }
    this.canvas.width = Math.round(drawWidth * devicePixelRatio);
    this.canvas.height = Math.round(height * devicePixelRatio);
    this.canvas.style.width = `${drawWidth}px`;
    this.canvas.style.height = `${height}px`;
    const g = this.canvas.getContext("2d");
    g.setTransform(devicePixelRatio, 0, 0, devicePixelRatio, 0, 0);
    g.fillStyle = "#fafafa";
    g.fillRect(0, 0, drawWidth, height);
    if (image) g.drawImage(image, 0, 0, drawWidth, height);
    const sx = drawWidth / L.GRID;
    const sy = height / L.GRID;
    const boxes = L.boxesOf(plan);
    const colours = L.labelColours(boxes.map((b) => b.label)).map(hex); // as the Layout Viewer draws them
    boxes.forEach((b, i) => {
      const colour = colours[i];
      const x = b.x1 * sx;
      const y = b.y1 * sy;
      const w = (b.x2 - b.x1) * sx;
      const h = (b.y2 - b.y1) * sy;
      g.fillStyle = `${colour}22`;
      g.fillRect(x, y, w, h);
      g.strokeStyle = colour;
      g.lineWidth = 2;
      g.strokeRect(x, y, w, h);
      g.font = "12px sans-serif";
      const tw = g.measureText(b.label).width + 6;
      g.fillStyle = colour;
      g.fillRect(x, Math.max(0, y - 16), tw, 16);
      g.fillStyle = "#fff";
      g.fillText(b.label, x + 3, Math.max(12, y - 4));
      const chosen = this.selected && this.selected.object === b.object && this.selected.box === b.box;
      if (chosen) {
        g.fillStyle = colour;
        for (const [hx, hy] of [[x, y], [x + w, y], [x, y + h], [x + w, y + h], [x + w / 2, y], [x + w / 2, y + h],
          [x, y + h / 2], [x + w, y + h / 2]]) {
          g.fillRect(hx - HANDLE_PX, hy - HANDLE_PX, HANDLE_PX * 2, HANDLE_PX * 2);
        }
      }
    });
    const count = L.boxesOf(plan).length;
    this.status.textContent = this.error
      ? `plan text does not parse: ${this.error}`
      : `${this.edited ? "edited plan" : this.incoming ? "incoming plan (not edited)" : "no plan yet: run the graph, or Add"}` +
        ` — ${count} box${count === 1 ? "" : "es"}`;
  }
}

app.registerExtension({
  name: "gotr1.PlanEditor",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name !== NODE_TYPE) return;
    const created = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const result = created?.apply(this, arguments);
      this.properties = this.properties ?? {};
      this.gotr1Canvas = new PlanCanvas(this);
      this.addDOMWidget("plan_canvas", "gotr1_plan_canvas", this.gotr1Canvas.root, {
        serialize: false,
        hideOnZoom: false,
        getMinHeight: () => 380,
      });
      this.setSize([Math.max(this.size[0], 440), Math.max(this.size[1], 640)]);
      requestAnimationFrame(() => this.gotr1Canvas.draw());
      return result;
    };
    const configured = nodeType.prototype.onConfigure;
    nodeType.prototype.onConfigure = function () {
      const result = configured?.apply(this, arguments);
      requestAnimationFrame(() => this.gotr1Canvas?.draw());
      return result;
    };
    const executed = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (output) {
      executed?.apply(this, arguments);
      const info = output?.gotr1_plan?.[0];
      if (!info || !this.gotr1Canvas) return;
      this.properties.gotr1_incoming = info.incoming; // saved with the workflow: drawn again when it is opened
      this.gotr1Canvas.setBackground(info.background);
      this.gotr1Canvas.draw();
    };
  },
});
