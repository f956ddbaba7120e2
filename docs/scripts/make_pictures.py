"""Every picture of the built-in model that README, docs/ and workflows/ show, redrawn by one command.

    python docs/scripts/make_pictures.py                            # the CLI's pictures and the workflow sheets
    python docs/scripts/make_pictures.py --comfyui /path/to/ComfyUI # ... and the screenshots in ComfyUI's editor
    python docs/scripts/make_pictures.py --only docs/images/demo.png

Each picture is drawn by the command a user would run (``gotr1 demo``, ``gotr1-train eval --disagreements``,
the shipped workflows on the built-in model) and recorded in ``docs/images/pictures.json`` with the sha256 of
the picture and of the built-in model's weights it shows. ``tests/test_pictures.py`` fails when a picture is
missing from that manifest, differs from what the command wrote, or was drawn with other weights than the ones
shipped: retrain the model, and the pictures must be redrawn with it.

The screenshots need ComfyUI's requirements, ``playwright`` and Chromium in this environment (as the server
tests do, docs/workflows.md); the pack is linked into the ComfyUI folder's ``custom_nodes/``, and a server is
started on a free local port and stopped afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from trainer.bench import harness  # noqa: E402
from trainer.bench.sources import sha256  # noqa: E402  (test_pictures checks the manifest with it)

WEIGHTS = ROOT / "gotr1_core" / "assets" / "shapeworld-tiny" / "model.safetensors"
MANIFEST = Path("docs/images/pictures.json")
PROMPT = "a red circle to the left of a blue square"
RUNNABLE = ("text_to_image", "edit_the_plan", "best_of_n")


def _run(*command: str, env: dict | None = None) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, cwd=ROOT, check=True, env={**os.environ, **(env or {})})


def _demo(root: Path, scratch: Path) -> None:
    _run(sys.executable, "-m", "gotr1_core.cli", "demo", PROMPT, "--output", str(scratch))
    shutil.copyfile(scratch / "demo.png", root / "docs/images/demo.png")


def _judges_disagree(root: Path, scratch: Path) -> None:
    _run(sys.executable, "-m", "trainer.cli", "eval", "builtin", "--split", "heldout", "--samples", "1",
         "--disagreements", str(root / "docs/images/judges_disagree.png"))


BENCH = ("gotr1-train", "bench", "shapeworld", "builtin", "--count", "25", "--images-per-prompt", "4")


def _bench_chart(root: Path, scratch: Path) -> None:
    """The ShapeWorld bench's chart. Its images stay in the bench's own folder under runs/ (the command's default),
    so a rerun with the same weights finds them all and only scores them again (they are the same images:
    image i of a prompt is the stream (seed, i)); images of other weights are deleted first (the bench refuses
    to mix them)."""
    out = ROOT / "runs" / "bench-shapeworld-shapeworld-tiny"
    try:
        harness.claim(out, harness.weights_identity(WEIGHTS.parent, seed=0, quantize=None))
    except ValueError:
        shutil.rmtree(out)
    _run(sys.executable, "-m", "trainer.cli", *BENCH[1:], "--out", str(out))
    shutil.copyfile(out / "chart.png", root / "docs/images/bench_shapeworld.png")


def _workflow_sheets(root: Path, scratch: Path) -> None:
    sys.path.insert(0, str(ROOT / "workflows"))
    from build_workflows import write_examples

    write_examples(root / "workflows/examples")


def _editor_screenshots(root: Path, scratch: Path, comfyui: Path) -> None:
    sys.path.insert(0, str(ROOT / "workflows"))
    from screenshot_workflows import take_screenshots

    with comfyui_server(comfyui, scratch) as url:
        take_screenshots(url, folder=root / "workflows/examples")


def _plan_editor_drag(root: Path, scratch: Path, comfyui: Path) -> None:
    """The server test that drags a box in the real editor saves its before / after / images sheet."""
    _run(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_comfyui_server.py",
         "-k", "dragging_a_box", env={"COMFYUI_PATH": str(comfyui),
                                      "GOTR1_SCREENSHOT": str(root / "workflows/examples/plan_editor_drag.png")})


# picture -> (what draws it, the command a person reads in the manifest, needs ComfyUI)
PICTURES = {
    "docs/images/demo.png": (_demo, f'gotr1 demo "{PROMPT}"', False),
    "docs/images/judges_disagree.png": (
        _judges_disagree, "gotr1-train eval builtin --split heldout --samples 1 --disagreements PATH", False),
    "docs/images/bench_shapeworld.png": (_bench_chart, " ".join(BENCH), False),
    **{f"workflows/examples/{name}.png": (_workflow_sheets, "python workflows/build_workflows.py --examples", False)
       for name in RUNNABLE},
    **{f"workflows/examples/{name}_editor.png": (
        _editor_screenshots, "python workflows/screenshot_workflows.py URL", True) for name in RUNNABLE},
    "workflows/examples/plan_editor_drag.png": (
        _plan_editor_drag, "GOTR1_SCREENSHOT=PATH pytest tests/test_comfyui_server.py -k dragging_a_box", True),
}


@contextlib.contextmanager
def comfyui_server(comfyui: Path, scratch: Path):
    """A ComfyUI server on CPU with this pack in ``custom_nodes/``, on a free local port; yields its URL."""
    link = comfyui / "custom_nodes" / "ComfyUI-GoT-R1"
    if not link.exists():
        link.symlink_to(ROOT, target_is_directory=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with open(scratch / "server.log", "w") as log:
        process = subprocess.Popen([sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
                                    "--output-directory", str(scratch / "output")], cwd=comfyui, stdout=log,
                                   stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 300
            while True:
                if process.poll() is not None:
                    raise SystemExit(f"ComfyUI exited with {process.returncode}; its log: {scratch / 'server.log'}")
                try:
                    urllib.request.urlopen(f"{url}/system_stats", timeout=5).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise SystemExit("ComfyUI did not answer within 300 s") from None
                    time.sleep(0.5)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=60)


def make(root: Path, only: list[str], comfyui: Path | None) -> dict:
    """Draw the pictures asked for (each drawing step once), update the manifest under ``root``; returns it."""
    unknown = sorted(set(only) - set(PICTURES))
    if unknown:
        raise SystemExit(f"unknown picture(s) {unknown}; these are made here: {sorted(PICTURES)}")
    wanted = [name for name in PICTURES if not only or name in only]
    needs_comfyui = [name for name in wanted if PICTURES[name][2]]
    if needs_comfyui and comfyui is None:
        if only:
            raise SystemExit(f"{needs_comfyui} are screenshots in ComfyUI's editor: give --comfyui PATH")
        print("no --comfyui: the editor screenshots are left as they are", file=sys.stderr)
        wanted = [name for name in wanted if not PICTURES[name][2]]
    manifest_path = root / MANIFEST
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.exists() else {}
    weights = sha256(WEIGHTS)
    done = set()
    for name in wanted:
        draw, _, in_comfyui = PICTURES[name]
        if draw in done:
            continue
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as scratch:
            draw(root, Path(scratch), comfyui) if in_comfyui else draw(root, Path(scratch))
        done.add(draw)
        for drawn, (step, command, _) in PICTURES.items():  # a step may draw more than was asked: record all
            if step is draw:
                manifest[drawn] = {"sha256": sha256(root / drawn), "weights_sha256": weights, "command": command}
                print(f"drew {drawn}")
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(json.dumps(dict(sorted(manifest.items())), indent=2) + "\n", encoding="utf-8")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comfyui", type=Path, help="a ComfyUI folder, for the screenshots in its editor")
    parser.add_argument("--only", nargs="+", default=[], metavar="PICTURE", help=f"some of: {', '.join(PICTURES)}")
    parser.add_argument("--root", type=Path, default=ROOT, help="write pictures and manifest under this folder")
    args = parser.parse_args(argv)
    make(args.root, args.only, args.comfyui)
    return 0


if __name__ == "__main__":
    sys.exit(main())
