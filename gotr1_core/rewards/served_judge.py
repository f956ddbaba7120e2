"""The MLLM judge served apart: the same questions, asked of an OpenAI-compatible server.

With a 7B Qwen2.5-VL judge inside every training process, each GPU holds
policy + reference + judge. Served apart (vLLM, SGLang, ``transformers
serve``; one server or several behind a load balancer), the judge answers
every process over HTTP and the policy GPUs hold none of it.

The questions, the answer parsing and the box matching are the in-process
judge's (:class:`~.mllm_judge.QwenQuestions`); only asking differs. Questions
go out concurrently through a bounded pool, each greedy (``temperature: 0``)
with a timeout, and are retried with exponential backoff when the server
cannot be reached or answers 5xx / 429. A server that stays down, or answers
something that is not a chat completion, raises :class:`JudgeServerError`
naming it. Images are resized here to the size Qwen2.5-VL's processor gives
them (sides multiples of 28 within ``min_pixels``..``max_pixels``), so the
server's own resize leaves them as they are and the boxes it answers are in
pixels this side knows.

Only the standard library's HTTP client is used: no extra dependency.

A key for a server that wants one comes from the ``GOTR1_JUDGE_API_KEY``
environment variable (sent as ``Authorization: Bearer``), never from a
workflow or config file people share. Every request has an overall deadline
(``timeout``) besides the socket's, so a server that answers a byte at a time
cannot hold a run. Which hosts a *workflow* may name is the node's business:
:func:`check_allowed_host`.
"""

from __future__ import annotations

import base64
import http.client
import io
import ipaddress
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed

from PIL import Image

from . import prompts
from .mllm_judge import QwenQuestions, _Progress

PATCH = 28
"""Qwen2.5-VL's resize unit: 14 px patches merged 2 × 2."""
API_KEY_VARIABLE = "GOTR1_JUDGE_API_KEY"
ALLOWED_HOSTS_VARIABLE = "GOTR1_JUDGE_HOSTS"


class JudgeServerError(RuntimeError):
    """The judge server is unreachable, failing, or answering something that is not a chat completion."""


def qwen_size(width: int, height: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """(width, height) Qwen2.5-VL's processor resizes an image to: the nearest multiples of 28, scaled into
    ``min_pixels``..``max_pixels`` keeping the aspect ratio."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize  # no torchvision needed

    h, w = smart_resize(height, width, factor=PATCH, min_pixels=min_pixels, max_pixels=max_pixels)
    return int(w), int(h)


def is_judge_url(name: str) -> bool:
    return name.startswith(("http://", "https://"))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_allowed_host(url: str, allowed: str | None = None) -> None:
    """Refuse a judge URL whose host the user has not allowed: loopback always, others only when named in
    ``allowed`` (default: the ``GOTR1_JUDGE_HOSTS`` environment variable, comma-separated ``host`` or
    ``host:port``).

    Why: a workflow file people share can carry a server URL, and a judge is
    sent the user's images; opening a graph must not send them to a host its
    author picked. Raises ``ValueError`` saying how to allow the host.
    """
    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host:
        raise ValueError(f"judge server URL {url!r} names no host; use http://HOST:PORT/v1")
    if _is_loopback(host):
        return
    listed = os.environ.get(ALLOWED_HOSTS_VARIABLE, "") if allowed is None else allowed
    names = {n.strip().lower() for n in listed.split(",") if n.strip()}
    if host in names or (parts.port is not None and f"{host}:{parts.port}" in names):
        return
    raise ValueError(f"the judge server {host} is not an allowed host: this machine's judge servers (localhost) "
                     f"are, others only when you name them in the {ALLOWED_HOSTS_VARIABLE} environment variable "
                     f"(e.g. {ALLOWED_HOSTS_VARIABLE}={host}) before starting ComfyUI — a shared workflow must not "
                     "send your images to a server you did not choose")


def _read_within(response, deadline: float) -> bytes:
    """The whole body, or ``TimeoutError`` once ``deadline`` (``time.monotonic()``) has passed."""
    chunks = []
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError("the answer did not arrive within the request's deadline")
        chunk = response.read1(65536)  # what has arrived (read() would wait for all of it)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _error_text(error: urllib.error.HTTPError) -> str:
    """The start of an error response's body, or what stopped it being read (a server may close mid-body)."""
    try:
        return error.read(200).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as exc:
        return f"(body unreadable: {exc.__class__.__name__})"


class ServedJudge(QwenQuestions):
    """Rewards judged by a Qwen2.5-VL behind ``url`` (``http://HOST:PORT/v1``)."""

    name = "mllm-served"

    def __init__(self, url: str, model: str | None = None, concurrency: int = 8, timeout: float = 120.0,
                 retries: int = 3, min_pixels: int = 56 * 56, max_pixels: int = 28 * 28 * 1280):
        if not is_judge_url(url):
            raise ValueError(f"judge server URL must start with http:// or https://, got {url!r}")
        if concurrency < 1 or retries < 0 or timeout <= 0:
            raise ValueError("concurrency >= 1, retries >= 0 and timeout > 0, please")
        self.url = url.rstrip("/")
        self.concurrency, self.timeout, self.retries = concurrency, timeout, retries
        self.min_pixels, self.max_pixels = min_pixels, max_pixels
        self.model = model or self._served_model()

    def __repr__(self) -> str:
        return f"ServedJudge({self.url!r}, model={self.model!r})"

    # -- HTTP -----------------------------------------------------------------------------

    def _request(self, path: str, body: dict | None = None) -> dict:
        """JSON of ``GET``/``POST url+path``, retried with backoff when the server is unreachable or busy."""
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if key := os.environ.get(API_KEY_VARIABLE):
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(self.url + path, data=data, headers=headers)
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(0.5 * 2 ** (attempt - 1), 8.0))
            deadline = time.monotonic() + self.timeout  # the whole request, however slowly the bytes come
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    raw = _read_within(response, deadline)
            except urllib.error.HTTPError as exc:
                problem = f"HTTP {exc.code}: {_error_text(exc)}"
                if exc.code < 500 and exc.code != 429:  # the request is wrong: asking again will not help
                    break
                continue
            except (OSError, http.client.HTTPException) as exc:  # unreachable, refused, timed out, cut off
                problem = str(getattr(exc, "reason", exc)) or exc.__class__.__name__
                continue
            try:
                return json.loads(raw)
            except ValueError:
                raise JudgeServerError(f"judge server {self.url} answered {path} with something that is not "
                                       f"JSON: {raw[:200]!r}") from None
        raise JudgeServerError(f"judge server {self.url} failed on {path} after {attempt + 1} attempt(s): "
                               f"{problem}. Is it running and serving a Qwen2.5-VL model?")

    def _served_model(self) -> str:
        listing = self._request("/models")
        try:
            return str(listing["data"][0]["id"])
        except (KeyError, IndexError, TypeError):
            raise JudgeServerError(f"judge server {self.url} lists no model at /models ({str(listing)[:200]}); "
                                   "name the served model: ServedJudge(url, model=NAME)") from None

    # -- asking ---------------------------------------------------------------------------

    def seen_size(self, image: Image.Image) -> tuple[int, int]:
        return qwen_size(image.width, image.height, self.min_pixels, self.max_pixels)

    def _image_part(self, image: Image.Image) -> dict:
        size = self.seen_size(image)
        resized = image.convert("RGB")
        if resized.size != size:
            resized = resized.resize(size, Image.Resampling.BICUBIC)
        buffer = io.BytesIO()
        resized.save(buffer, format="PNG")
        url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
        return {"type": "image_url", "image_url": {"url": url}}

    def _answer(self, question: str, image: Image.Image | None, max_new_tokens: int) -> str:
        content = ([self._image_part(image)] if image is not None else []) + [{"type": "text", "text": question}]
        body = {"model": self.model, "max_tokens": max_new_tokens, "temperature": 0.0,
                "messages": [{"role": "system", "content": prompts.SYSTEM}, {"role": "user", "content": content}]}
        reply = self._request("/chat/completions", body)
        try:
            text = reply["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            text = None
        if not isinstance(text, str):
            raise JudgeServerError(f"judge server {self.url} answered without a chat completion: {str(reply)[:200]}")
        return text

    def ask(self, questions: list[tuple[str, Image.Image | None]], max_new_tokens: int = 48,
            progress: _Progress | None = None) -> list[str]:
        """Greedy answers, in order; at most ``concurrency`` questions in flight."""
        answers: list[str] = [""] * len(questions)
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            pending = {pool.submit(self._answer, q, img, max_new_tokens): i for i, (q, img) in enumerate(questions)}
            try:
                for done in as_completed(pending):
                    answers[pending[done]] = done.result()
                    if progress is not None:
                        progress.answered += 1
                        progress.report()
            except BaseException:
                for future in pending:
                    future.cancel()
                raise
        return answers
