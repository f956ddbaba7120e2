"""The judge served apart: an OpenAI-compatible chat-completions server answers the reward questions.

Error handling (a server that is down, busy, or answers garbage) runs against
small HTTP servers started here. The real thing — ``transformers serve`` with
the tiny random Qwen2.5-VL folder, compared with the in-process judge — needs
a Python whose transformers can serve Qwen2.5-VL: ``transformers[serving]``
plus torchvision (Qwen2.5-VL's processor includes a video processor that
imports it), which does not import beside the CPU torch 2.13.0 wheel the suite
runs on. Point ``GOTR1_SERVE_PYTHON`` at such a Python to run those tests.
"""

import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gotr1_core.rewards import JudgeServerError, MLLMJudge, ServedJudge, judge_problem, load_judge
from gotr1_core.rewards.served_judge import qwen_size
from gotr1_core.shapeworld import generate_split

from tiny_qwen import make_tiny_qwen

SERVE_PYTHON = os.environ.get("GOTR1_SERVE_PYTHON")
TINY_PIXELS = dict(min_pixels=28 * 28, max_pixels=112 * 112)  # the tiny folder's processor settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Scripted(BaseHTTPRequestHandler):
    """Answers each POST with the next scripted (status, body); counts requests in flight."""

    script: list = []
    in_flight = 0
    most_in_flight = 0
    lock = threading.Lock()

    def do_POST(self):  # noqa: N802 - http.server's naming
        cls = type(self)
        with cls.lock:
            cls.in_flight += 1
            cls.most_in_flight = max(cls.most_in_flight, cls.in_flight)
            status, body = cls.script.pop(0) if len(cls.script) > 1 else cls.script[0]
        self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(0.05)
        self.send_response(status)
        self.end_headers()
        self.wfile.write(body.encode())
        with cls.lock:
            cls.in_flight -= 1

    def log_message(self, *args):
        pass


@pytest.fixture
def scripted():
    handler = type("Handler", (_Scripted,), {"script": [], "in_flight": 0, "most_in_flight": 0,
                                              "lock": threading.Lock()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield handler, f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def _completion(text: str) -> str:
    return json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]})


def test_a_server_that_is_down_is_named_in_the_error():
    url = f"http://127.0.0.1:{_free_port()}/v1"
    with pytest.raises(JudgeServerError, match=f"{url}.*2 attempt.*running"):
        ServedJudge(url, retries=1)  # asks /models for the served model
    judge = ServedJudge(url, model="qwen", retries=0)
    with pytest.raises(JudgeServerError, match=url):
        judge.ask([("Score?", None)])


def test_garbage_answers_are_named_not_scored(scripted):
    handler, url = scripted
    handler.script = [(200, "<html>busy</html>")]
    with pytest.raises(JudgeServerError, match="not JSON"):
        ServedJudge(url, model="qwen").ask([("Score?", None)])
    handler.script = [(200, json.dumps({"error": "no such model"}))]
    with pytest.raises(JudgeServerError, match="without a chat completion.*no such model"):
        ServedJudge(url, model="qwen").ask([("Score?", None)])
    handler.script = [(400, json.dumps({"error": "bad request"}))]  # the request is wrong: not retried
    with pytest.raises(JudgeServerError, match="1 attempt.*HTTP 400"):
        ServedJudge(url, model="qwen", retries=3).ask([("Score?", None)])


def test_busy_server_is_retried_and_answers_are_parsed_like_the_local_judges(scripted):
    handler, url = scripted
    handler.script = [(503, "overloaded"), (429, "slow down"), (200, _completion("Score: 7 - fine"))]
    judge = ServedJudge(url, model="qwen", retries=2)
    assert judge.ask([("Score?", None)]) == ["Score: 7 - fine"]
    handler.script = [(200, _completion("Score: 8"))]
    scene = generate_split("test", 1, seed=0)[0]
    rewards = judge.score([scene.prompt], [scene.chain], None, scene.render()[None].astype(np.float32) / 255)
    assert rewards.r_sem == rewards.r_spa == rewards.r_pi == [0.8]  # parse_score of "Score: 8" on the 0-10 scale
    assert rewards.r_ri == [0.0] and any("no boxes" in note for note in rewards.explanations[0])


def test_requests_in_flight_stay_within_the_pool(scripted):
    handler, url = scripted
    handler.script = [(200, _completion("Score: 5"))]
    answers = ServedJudge(url, model="qwen", concurrency=3).ask([(f"Q{i}", None) for i in range(12)])
    assert answers == ["Score: 5"] * 12
    assert 1 < handler.most_in_flight <= 3


def test_images_go_out_at_the_size_the_model_sees():
    assert qwen_size(64, 64, 56 * 56, 28 * 28 * 1280) == (56, 56)
    assert qwen_size(1000, 500, 56 * 56, 28 * 28 * 16) == (140, 56)  # scaled under max_pixels, multiples of 28
    judge = ServedJudge.__new__(ServedJudge)
    judge.min_pixels, judge.max_pixels = 56 * 56, 28 * 28 * 1280
    part = judge._image_part(Image.new("RGB", (64, 64), "white"))
    import base64
    import io

    sent = Image.open(io.BytesIO(base64.b64decode(part["image_url"]["url"].split(",", 1)[1])))
    assert sent.size == (56, 56)


def test_a_url_is_a_judge_everywhere_a_judge_is_named():
    assert judge_problem("http://10.0.0.5:8000/v1") is None
    assert "judge server URL" in judge_problem("ftp://judge")
    with pytest.raises(ValueError, match="judge server URL"):
        load_judge("nowhere")
    from trainer.config import load_config
    from trainer.grpo import GRPOConfig

    config = load_config(GRPOConfig, None, ["output_dir=/tmp/x", "model=builtin", "judge=http://127.0.0.1:9/v1"])
    assert config.judge == "http://127.0.0.1:9/v1"


# -- against a real server (opt-in: GOTR1_SERVE_PYTHON) -------------------------------------

needs_server = pytest.mark.skipif(not SERVE_PYTHON, reason="GOTR1_SERVE_PYTHON (a Python with transformers[serving] "
                                                         "and torchvision) not set")


def _start_server(folder: Path, port: int) -> subprocess.Popen:
    script = Path(SERVE_PYTHON).parent / "transformers"
    process = subprocess.Popen([str(script), "serve", str(folder), "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2).read()
            return process
        except OSError:
            if process.poll() is not None:
                raise RuntimeError("transformers serve exited before answering")
            time.sleep(1)
    process.kill()
    raise RuntimeError("transformers serve did not answer within 180 s")


def _answers_in_plain_text(folder: Path) -> None:
    """Keep the random judge's greedy answers to printable ASCII: a token that decodes to part of a UTF-8
    character is rendered differently by a server decoding token by token than by one decode at the end,
    which would hide whether the tokens agree."""
    import torch
    from transformers import AutoTokenizer, Qwen2_5_VLForConditionalGeneration

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(str(folder))
    special = set(tokenizer.all_special_ids)  # servers differ in which special tokens they print
    keep = [i not in special and tokenizer.decode([i]) != "" and all(32 <= ord(c) < 127 for c in tokenizer.decode([i]))
            for i in range(len(tokenizer))]
    keep[tokenizer.convert_tokens_to_ids("<|im_end|>")] = True
    with torch.no_grad():
        model.lm_head.weight[~torch.tensor(keep)] = 0.0
        # random weights answer every question alike; louder inputs make answers differ by question and image
        model.model.language_model.embed_tokens.weight *= 5
        for layer in model.model.language_model.layers:
            layer.mlp.down_proj.weight *= 5
    model.save_pretrained(str(folder))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = make_tiny_qwen(tmp_path_factory.mktemp("judge") / "qwen")
    _answers_in_plain_text(folder)
    port = _free_port()
    process = _start_server(folder, port)
    yield folder, f"http://127.0.0.1:{port}/v1", process
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


@needs_server
def test_served_judge_answers_as_the_in_process_judge(served):
    folder, url, _ = served
    scenes = generate_split("test", 3, seed=0)
    prompts, chains = [s.prompt for s in scenes], [s.chain for s in scenes]
    images = np.stack([s.render() for s in scenes]).astype(np.float32) / 255
    local = MLLMJudge(folder, device="cpu", max_batch=1)
    remote = ServedJudge(url, **TINY_PIXELS)
    assert remote.model == str(folder)
    pictures = [Image.fromarray(s.render()) for s in scenes]
    questions = [("Rate the picture from 0 to 10.", p) for p in pictures] + [("Rate the chain.", None)]
    answers = local.ask(questions)
    assert len(set(answers)) > 1  # the answers depend on the question and the image
    assert remote.ask(questions) == answers  # greedy, image and text questions alike
    a, b = local.score(prompts, chains, None, images), remote.score(prompts, chains, None, images)
    for name in ("r_sem", "r_spa", "r_ri", "r_pi", "explanations"):  # explanations quote each answer
        assert getattr(a, name) == getattr(b, name), name
    started = time.time()
    remote.score(prompts * 4, chains * 4, None, np.concatenate([images] * 4))
    served_rate = 12 / (time.time() - started)
    started = time.time()
    local.score(prompts * 4, chains * 4, None, np.concatenate([images] * 4))
    print(f"\nserved judge {served_rate:.2f} images/s, in-process {12 / (time.time() - started):.2f} images/s")


@needs_server
def test_judge_server_killed_mid_run_stops_training_with_its_name_and_keeps_the_checkpoint(served, tmp_path):
    from grpo_helpers import tiny_run_config
    from tiny_janus import make_tiny_model

    from trainer.checkpoint import find_checkpoint, load_checkpoint
    from trainer.grpo import train_grpo

    folder, url, process = served
    judge, calls = ServedJudge(url, retries=1, **TINY_PIXELS), []

    class KillsTheServerOnStep3:
        name = "served"

        def score(self, *args, **kwargs):
            calls.append(1)
            if len(calls) == 3:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(30)
            return judge.score(*args, **kwargs)

    model = make_tiny_model(tmp_path / "policy", stop_bias=3.0)
    config = tiny_run_config(tmp_path, model, steps=4, save_every=2, prompts_per_step=1, group_size=2,
                             eval_prompts=[])
    with pytest.raises(JudgeServerError, match=url.replace(".", r"\.")):
        train_grpo(config, progress=False, judge=KillsTheServerOnStep3())
    found = find_checkpoint(tmp_path / "run")
    assert found.name == "step-00000002"
    tensors, state = load_checkpoint(found)
    assert state["step"] == 2 and tensors


class _Hostile(BaseHTTPRequestHandler):
    """``/slow``: a 200 that drips its body a byte at a time; ``/cut``: a 500 whose body stops short (the
    connection closes mid-body); anything: records the Authorization header it got."""

    seen_auth: list = []

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).seen_auth.append(self.headers.get("Authorization"))
        if self.path.endswith("/slow/chat/completions"):
            body = _completion("Score: 9").encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for byte in body:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.05)
        else:
            self.send_response(500)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"partial")
            self.wfile.flush()
            self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def hostile():
    handler = type("Hostile", (_Hostile,), {"seen_auth": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield handler, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_server_that_drips_its_answer_is_cut_off_at_the_deadline(hostile):
    _, base = hostile
    judge = ServedJudge(f"{base}/slow", model="qwen", timeout=1.0, retries=0)
    began = time.monotonic()
    with pytest.raises(JudgeServerError, match="deadline"):
        judge.ask([("Score?", None)])  # the socket never waits 1 s for a byte; the whole answer takes ~4 s
    assert time.monotonic() - began < 3.0


def test_an_error_body_cut_short_is_reported_not_raised(hostile):
    _, base = hostile
    with pytest.raises(JudgeServerError, match=r"HTTP 500: \(body unreadable|HTTP 500: partial"):
        ServedJudge(f"{base}/cut", model="qwen", timeout=5, retries=0).ask([("Score?", None)])


def test_the_api_key_comes_from_the_environment_as_a_bearer_header(hostile, monkeypatch):
    handler, base = hostile
    for key in (None, "s3cret"):
        if key:
            monkeypatch.setenv("GOTR1_JUDGE_API_KEY", key)
        with pytest.raises(JudgeServerError):
            ServedJudge(f"{base}/cut", model="qwen", timeout=5, retries=0).ask([("Score?", None)])
    assert handler.seen_auth == [None, "Bearer s3cret"]


def test_only_hosts_the_user_allowed_may_be_named_by_a_workflow(monkeypatch):
    from gotr1_core.rewards.served_judge import check_allowed_host

    monkeypatch.delenv("GOTR1_JUDGE_HOSTS", raising=False)
    for url in ("http://127.0.0.1:8000/v1", "http://localhost:8000/v1", "http://[::1]:8000/v1",
                "http://127.8.9.1/v1"):
        check_allowed_host(url)
    for url in ("http://evil.example:8000/v1", "https://10.0.0.5/v1", "http://localhost.evil.example/v1"):
        with pytest.raises(ValueError, match="not an allowed host.*GOTR1_JUDGE_HOSTS"):
            check_allowed_host(url)
    monkeypatch.setenv("GOTR1_JUDGE_HOSTS", "judge-node, 10.0.0.5:9000")
    check_allowed_host("http://judge-node:8000/v1")
    check_allowed_host("http://10.0.0.5:9000/v1")
    with pytest.raises(ValueError, match="not an allowed host"):
        check_allowed_host("http://10.0.0.5:9001/v1")  # allowed on one port only


def test_the_judge_loader_refuses_a_workflows_server_before_contacting_it(monkeypatch):
    from nodes.judge_nodes import JudgeLoader

    monkeypatch.delenv("GOTR1_JUDGE_HOSTS", raising=False)
    contacted = []
    monkeypatch.setattr(ServedJudge, "_served_model", lambda self: contacted.append(self.url) or "qwen")
    with pytest.raises(ValueError, match="not an allowed host"):
        JudgeLoader().load("shapeworld", server_url="http://attacker.example:8000/v1")
    assert contacted == []
    JudgeLoader().load("shapeworld", server_url="http://127.0.0.1:8000/v1")
    assert contacted == ["http://127.0.0.1:8000/v1"]
