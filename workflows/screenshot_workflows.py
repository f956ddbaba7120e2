"""Screenshots of the shipped workflows in ComfyUI's own editor, after running them.

    python workflows/screenshot_workflows.py http://127.0.0.1:8188 [--chromium /usr/bin/chromium]

Needs a running ComfyUI with this pack in ``custom_nodes/``, ``pip install
playwright`` and a Chromium binary. Each UI-format workflow is loaded as drag
and drop would load it, queued from the editor, and the page is saved as
``workflows/examples/<name>_editor.png`` once the run has finished, so the
pictures show what a user sees: the graph, the previews and the saved images.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from build_workflows import RUNNABLE  # noqa: E402

QUEUE_AND_WAIT = """async (workflow) => {
    const finished = async () => Object.keys(await (await fetch("/history?max_items=1000")).json()).length;
    const idle = async () => (await (await fetch("/prompt")).json()).exec_info.queue_remaining === 0;
    await window.app.loadGraphData(workflow);
    const before = await finished();
    await window.app.queuePrompt(0, 1);
    for (let i = 0; i < 600; i++) {
        await new Promise((r) => setTimeout(r, 500));
        if (await finished() > before && await idle()) return true;
    }
    return false;
}"""


SHOWN = """() => new Promise((resolve) => {  // every preview's pictures loaded, then one frame drawn with them
    const pictures = window.app.graph._nodes.flatMap((n) => n.imgs ?? []);
    const loaded = pictures.length > 0 && pictures.every((img) => img.complete && img.naturalWidth > 0);
    window.app.canvas.setDirty(true, true);
    requestAnimationFrame(() => requestAnimationFrame(() => resolve(loaded)));
})"""


def take_screenshots(url: str, chromium: str = "/usr/bin/chromium", folder: Path = HERE / "examples") -> list[Path]:
    """Run each runnable workflow in the editor at ``url`` and save the page once it has finished."""
    from playwright.sync_api import sync_playwright

    written = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.goto(url, wait_until="networkidle", timeout=120_000)
        page.wait_for_function("() => window.app && window.app.graph", timeout=120_000)
        for name in RUNNABLE:
            workflow = json.loads((HERE / f"{name}.json").read_text(encoding="utf-8"))
            if not page.evaluate(QUEUE_AND_WAIT, workflow):
                raise RuntimeError(f"{name}: the run did not finish within 300 s")
            page.wait_for_function(SHOWN)
            target = folder / f"{name}_editor.png"
            page.screenshot(path=str(target))
            written.append(target)
        browser.close()
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="a running ComfyUI, e.g. http://127.0.0.1:8188")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    for target in take_screenshots(args.url, args.chromium):
        print(f"wrote {target.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
