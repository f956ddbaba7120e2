"""Every runnable shipped workflow through a real ComfyUI server (opt-in: needs a ComfyUI checkout).

    COMFYUI_PATH=/path/to/ComfyUI python -m pytest tests/test_comfyui_server.py

ComfyUI's own requirements must be installed in the same environment. The pack
is linked into ``custom_nodes/`` (if it is not there yet), the server is started
on CPU on a free port with a temporary output folder, each workflow is posted
to ``/prompt``, ``/history`` is polled until it finishes, and the images it
saved are checked.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
COMFYUI = os.environ.get("COMFYUI_PATH")
RUNNABLE = ("text_to_image", "edit_the_plan", "best_of_n")
pytestmark = pytest.mark.skipif(not COMFYUI, reason="set COMFYUI_PATH to a ComfyUI checkout to run")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    comfy = Path(COMFYUI)
    link = comfy / "custom_nodes" / "ComfyUI-GoT-R1"
    if not link.exists():
        link.symlink_to(ROOT, target_is_directory=True)
    output = tmp_path_factory.mktemp("comfy-output")
    port = _free_port()
    log = open(output / "server.log", "w")
    process = subprocess.Popen([sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
                                "--output-directory", str(output)], cwd=comfy, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            if process.poll() is not None:
                pytest.fail(f"ComfyUI exited with {process.returncode}; see {output / 'server.log'}")
            try:
                _get(f"{base}/system_stats")
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("ComfyUI did not start within 120 s")
        yield base, output
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_the_server_lists_every_node_of_the_pack(server):
    base, _ = server
    info = _get(f"{base}/object_info")
    from nodes import NODE_CLASS_MAPPINGS

    assert set(NODE_CLASS_MAPPINGS) <= set(info)


@pytest.mark.parametrize("name", RUNNABLE)
def test_workflow_runs_on_the_real_server(server, name):
    base, output = server
    graph = json.loads((ROOT / "workflows" / f"{name}_api.json").read_text(encoding="utf-8"))
    body = json.dumps({"prompt": graph, "client_id": "gotr1-tests"}).encode()
    request = urllib.request.Request(f"{base}/prompt", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        prompt_id = json.loads(response.read())["prompt_id"]
    for _ in range(600):
        history = _get(f"{base}/history/{prompt_id}")
        if prompt_id in history:
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"{name} did not finish within 300 s")
    entry = history[prompt_id]
    assert entry["status"]["status_str"] == "success", entry["status"]
    files = [image for node in entry["outputs"].values() for image in node.get("images", [])
             if image.get("type") == "output"]
    assert files, f"{name} saved no image"
    for image in files:
        picture = Image.open(output / image.get("subfolder", "") / image["filename"])
        assert picture.size[0] > 0 and picture.mode in ("RGB", "RGBA")
