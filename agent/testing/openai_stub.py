"""A scripted OpenAI-compatible chat server on 127.0.0.1, for tests and for trying the agent.

`ScriptedOpenAIServer` is a real HTTP server (stdlib `http.server`) that answers
`POST /v1/chat/completions` and `GET /v1/models` with the shapes OpenAI uses, so the real
clients (`openai`, through smolagents' `OpenAIServerModel`, and `litellm`) talk to it exactly
as they would to vLLM, Ollama or OpenAI. What it answers comes from a *script*:

* `Reply(content)`: a normal completion (`choices[0].message.content`, `usage` token counts).
* `Status(code)`: an HTTP error with an OpenAI-style error body (429 carries `Retry-After`).
* `Hang(seconds)`: reads the request and never answers (until `seconds` pass or the server
  stops), so the client's timeout fires.
* `Malformed(body)`: a 200 whose body is not JSON, or JSON of the wrong shape.

Each chat request consumes the next step. When the script runs out, the `responder` (a function
from the request's messages to the reply content) answers if one was given, else `fallback`,
else the last step repeats (an empty script with neither answers `Reply("")`).

Example:
    >>> from agent.testing import Reply, ScriptedOpenAIServer, Status
    >>> with ScriptedOpenAIServer([Status(429, retry_after=0.1), Reply("hi")]) as server:
    ...     url = server.url  # "http://127.0.0.1:<port>/v1"
    ...     # point OpenAIServerModel(api_base=url) at it; server.requests records every call

Run `python -m agent.testing.openai_stub --port 8011` to serve the offline policy
(`agent.models.offline.OfflineModel`) over HTTP, then
`agentune run GOAL --model stub --api-base http://127.0.0.1:8011/v1`.

The server only ever binds 127.0.0.1. It keeps every request (headers included, so a test can
check the `Authorization` header) in memory only; its log lines carry the request line, never
a header.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any

__all__ = [
    "Hang",
    "Malformed",
    "RecordedRequest",
    "Reply",
    "Responder",
    "ScriptedOpenAIServer",
    "Status",
    "Step",
    "main",
    "offline_responder",
]

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"

Responder = Callable[[list[dict[str, Any]]], str]
"""Computes a reply's content from the request's `messages` (OpenAI chat message dicts). A
responder with a true `takes_stop` attribute is called as `responder(messages, stop)` with the
request's stop sequences (a list, maybe empty)."""


@dataclass(frozen=True)
class Reply:
    """A normal chat completion.

    Attributes:
        content: the assistant message's content. Scripted model failures (code that does not
            parse, a refusal, a call that makes a tool fail) are just content.
        prompt_tokens: `usage.prompt_tokens`; `None` estimates it from the request's text
            (about 4 characters a token).
        completion_tokens: `usage.completion_tokens`; `None` estimates it from `content`.
        finish_reason: `choices[0].finish_reason`.
    """

    content: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str = "stop"


@dataclass(frozen=True)
class Status:
    """An HTTP error answer.

    Attributes:
        code: the HTTP status (429, 500, 503, 401...).
        body: the response body; `None` writes an OpenAI-style `{"error": {...}}` JSON body.
        retry_after: seconds sent in `Retry-After` (fractions allowed; the openai client honours
            them up to 120 s). `None` sends `1` for a 429 and no header otherwise.
    """

    code: int
    body: str | None = None
    retry_after: float | None = None


@dataclass(frozen=True)
class Hang:
    """Read the request and never answer it.

    The handler waits `seconds` (or until the server stops, whichever comes first) and then
    closes the connection without a response. Give the client a timeout shorter than `seconds`.

    Attributes:
        seconds: how long to hold the connection open.
    """

    seconds: float = 30.0


@dataclass(frozen=True)
class Malformed:
    """A successful status with a body that is not a chat completion.

    Attributes:
        body: the raw body, e.g. `"<html>oops"` (not JSON) or `'{"choices": []}'` (wrong shape).
        status: the HTTP status sent with it.
        content_type: the `Content-Type` header sent with it.
    """

    body: str
    status: int = 200
    content_type: str = "application/json"


Step = Reply | Status | Hang | Malformed


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received.

    Attributes:
        method: `"GET"` or `"POST"`.
        path: the request path (`"/v1/chat/completions"`).
        headers: header names (lower case) to values, `authorization` included.
        body: the parsed JSON body (`None` for a GET or a body that is not JSON).
        step: the kind of answer it got: `"reply"`, `"status"`, `"hang"`, `"malformed"`,
            `"models"` or `"not_found"`.
        received_at: `time.monotonic()` when it arrived.
    """

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any
    step: str
    received_at: float = field(default_factory=time.monotonic)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The chat request's `messages` (empty for anything else)."""
        if isinstance(self.body, dict) and isinstance(self.body.get("messages"), list):
            return list(self.body["messages"])
        return []


def _estimate_tokens(text: str) -> int:
    """A deterministic token estimate: one token per 4 characters, at least 1."""
    return max(1, (len(text) + 3) // 4)


def _message_text(message: Mapping[str, Any]) -> str:
    """The text of an OpenAI chat message whose content is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return ""


def _apply_stop(content: str, stop: object) -> str:
    """Cut `content` at the first stop sequence, as OpenAI-compatible servers do."""
    sequences = [stop] if isinstance(stop, str) else stop if isinstance(stop, list) else []
    cut = len(content)
    for seq in sequences:
        if isinstance(seq, str) and seq:
            at = content.find(seq)
            if at != -1:
                cut = min(cut, at)
    return content[:cut]


def _error_body(code: int) -> str:
    kinds = {
        400: ("invalid_request_error", "scripted bad request"),
        401: ("authentication_error", "scripted authentication failure"),
        404: ("not_found_error", "scripted not found"),
        429: (
            "rate_limit_error",
            "Rate limit reached (scripted); retry after the Retry-After delay",
        ),
    }
    kind, message = kinds.get(code, ("server_error", f"scripted server error {code}"))
    return json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})


class _Httpd(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    owner: ScriptedOpenAIServer


class _Handler(BaseHTTPRequestHandler):
    server: _Httpd
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("stub %s: %s", self.address_string(), format % args)

    def _send(
        self,
        code: int,
        body: str,
        *,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        data = body.encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            logger.debug("stub: client went away before the answer was written")

    def _headers(self) -> dict[str, str]:
        return {name.lower(): value for name, value in self.headers.items()}

    def do_GET(self) -> None:
        owner = self.server.owner
        if self.path.rstrip("/") == "/v1/models":
            owner._record(RecordedRequest("GET", self.path, self._headers(), None, "models"))
            created = int(time.time())
            listing = {
                "object": "list",
                "data": [
                    {
                        "id": owner.model,
                        "object": "model",
                        "created": created,
                        "owned_by": "agentune-stub",
                    }
                ],
            }
            self._send(200, json.dumps(listing))
            return
        owner._record(RecordedRequest("GET", self.path, self._headers(), None, "not_found"))
        self._send(404, _error_body(404))

    def do_POST(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        try:
            body: Any = json.loads(raw.decode("utf-8")) if raw else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            body = None
        if self.path.rstrip("/") != "/v1/chat/completions":
            owner._record(RecordedRequest("POST", self.path, self._headers(), body, "not_found"))
            self._send(404, _error_body(404))
            return
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            owner._record(RecordedRequest("POST", self.path, self._headers(), body, "status"))
            self._send(400, _error_body(400))
            return
        step = owner._next_step(body)
        kind = type(step).__name__.lower()
        owner._record(RecordedRequest("POST", self.path, self._headers(), body, kind))
        if isinstance(step, Hang):
            owner._stopping.wait(step.seconds)
            self.close_connection = True
            return
        if isinstance(step, Malformed):
            self._send(step.status, step.body, content_type=step.content_type)
            return
        if isinstance(step, Status):
            headers: dict[str, str] = {}
            retry_after = step.retry_after
            if retry_after is None and step.code == 429:
                retry_after = 1.0
            if retry_after is not None:
                headers["Retry-After"] = f"{retry_after:g}"
            body_text = step.body if step.body is not None else _error_body(step.code)
            self._send(step.code, body_text, headers=headers)
            return
        self._send(200, json.dumps(owner._completion(step, body)))


class ScriptedOpenAIServer:
    """An OpenAI-compatible chat server on 127.0.0.1 that answers from a script.

    Use it as a context manager (or call `start()`/`stop()`); it serves from a daemon thread.
    Every request is recorded in `requests`. Stopping wakes any `Hang` step, so shutdown takes
    well under a second.

    Args:
        script: the steps answering chat requests, one per request, in order.
        responder: after the script: computes each reply's content from the request's messages.
        fallback: after the script, when there is no responder; `None` repeats the last step.
        model: the model id reported by `GET /v1/models` (a chat reply echoes the request's).
        port: the port to bind on 127.0.0.1; 0 picks a free one.
        apply_stop: cut reply content at the request's `stop` sequences, as real servers do.
    """

    def __init__(
        self,
        script: Iterable[Step] = (),
        *,
        responder: Responder | None = None,
        fallback: Step | None = None,
        model: str = "stub",
        port: int = 0,
        apply_stop: bool = True,
    ) -> None:
        self._script: list[Step] = list(script)
        self._position = 0
        self.responder = responder
        self.fallback = fallback
        self.model = model
        self.apply_stop = apply_stop
        self._port = port
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._stopping = threading.Event()
        self._httpd: _Httpd | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> ScriptedOpenAIServer:
        """Bind 127.0.0.1 and serve from a daemon thread; returns self. Idempotent."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = _Httpd((LOOPBACK, self._port), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self._port = int(httpd.server_address[1])
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"openai-stub-{self.port}",
            daemon=True,
        )
        self._thread.start()
        logger.debug("openai stub serving at %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving, wake hanging handlers and close the socket. Idempotent."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ScriptedOpenAIServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what tests read -------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (the requested one before `start()`; kept after `stop()`)."""
        return self._port

    @property
    def url(self) -> str:
        """The OpenAI base URL: `http://127.0.0.1:<port>/v1`."""
        return f"http://{LOOPBACK}:{self.port}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """The `POST /v1/chat/completions` requests received so far."""
        return [r for r in self.requests if r.path.rstrip("/") == "/v1/chat/completions"]

    def push(self, *steps: Step) -> None:
        """Append steps to the script (consumed after the ones already there)."""
        with self._lock:
            self._script.extend(steps)

    # -- internals used by the handler -----------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _next_step(self, body: Mapping[str, Any]) -> Step:
        with self._lock:
            if self._position < len(self._script):
                step = self._script[self._position]
                self._position += 1
                return step
            responder = self.responder
            if responder is None:
                if self.fallback is not None:
                    return self.fallback
                return self._script[-1] if self._script else Reply("")
        try:
            if getattr(responder, "takes_stop", False):  # the policy also reads the request's stop
                stop = body.get("stop")
                stops = [stop] if isinstance(stop, str) else list(stop or [])
                return Reply(responder(list(body["messages"]), stops))  # type: ignore[call-arg]
            return Reply(responder(list(body["messages"])))
        except Exception as e:  # a responder bug answers 500, like a broken server would
            logger.warning("openai stub responder failed: %s: %s", type(e).__name__, e)
            return Status(500, _error_body(500))

    def _completion(self, step: Reply, body: Mapping[str, Any]) -> dict[str, Any]:
        content = step.content
        if self.apply_stop:
            content = _apply_stop(content, body.get("stop"))
        prompt_text = "".join(_message_text(m) for m in body.get("messages", []))
        prompt_tokens = (
            step.prompt_tokens if step.prompt_tokens is not None else _estimate_tokens(prompt_text)
        )
        completion_tokens = (
            step.completion_tokens
            if step.completion_tokens is not None
            else _estimate_tokens(content)
        )
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(body.get("model") or self.model),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "logprobs": None,
                    "finish_reason": step.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


def _to_chat_message(message: Mapping[str, Any]) -> Any:
    """An OpenAI chat message dict as the smolagents `ChatMessage` a `Model.generate` receives.

    Content becomes a list of `{"type": "text", "text": ...}` parts (image parts are dropped);
    a role smolagents does not know becomes `user`.
    """
    from smolagents.models import ChatMessage, MessageRole

    try:
        role = MessageRole(str(message.get("role", "user")))
    except ValueError:
        role = MessageRole.USER
    content = message.get("content")
    parts: list[dict[str, Any]]
    if isinstance(content, str):
        parts = [{"type": "text", "text": content}]
    elif isinstance(content, Sequence):
        parts = [
            {"type": "text", "text": str(p.get("text", ""))}
            for p in content
            if isinstance(p, Mapping) and p.get("type") == "text"
        ]
    else:
        parts = []
    return ChatMessage(role=role, content=parts)


def offline_responder() -> Responder:
    """A responder that answers with the offline policy (`agent.models.offline.OfflineModel`).

    The OpenAI messages are converted to smolagents `ChatMessage`s (content as text parts, as
    a `CodeAgent` sends them) and the policy's reply content is returned. Calls are serialised:
    one policy instance answers every request.

    Returns:
        A `Responder` for `ScriptedOpenAIServer(responder=...)`.
    """
    from agent.models.offline import OfflineModel

    model = OfflineModel()
    lock = threading.Lock()

    def respond(messages: list[dict[str, Any]], stop: list[str] | None = None) -> str:
        chat = [_to_chat_message(m) for m in messages]
        with lock:
            # the stop sequences tell the policy which kind of call this is (a code step,
            # a planning call, the out-of-steps final answer), as they would a real LLM
            answer = model.generate(chat, stop_sequences=stop or None)
        content = answer.content
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
        return ""

    respond.takes_stop = True  # type: ignore[attr-defined]
    return respond


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the offline policy as an OpenAI-compatible server on 127.0.0.1 until interrupted.

    Args:
        argv: command-line arguments (`--port P`, `--model NAME`); `None` reads `sys.argv`.

    Returns:
        The exit status (0 after Ctrl-C or SIGTERM).
    """
    parser = argparse.ArgumentParser(
        prog="python -m agent.testing.openai_stub",
        description="Serve agentune's offline policy as an OpenAI-compatible chat server on "
        "127.0.0.1, for `agentune run GOAL --model stub --api-base http://127.0.0.1:PORT/v1`.",
    )
    parser.add_argument("--port", type=int, default=8011, help="port on 127.0.0.1 (0: any free)")
    parser.add_argument("--model", default="stub", help="model id listed by GET /v1/models")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    done = threading.Event()

    def _on_term(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _on_term)
    with ScriptedOpenAIServer(responder=offline_responder(), model=args.model, port=args.port) as s:
        print(f"OpenAI-compatible stub (offline policy) at {s.url}", flush=True)
        print(
            f"try: agentune run GOAL --model {args.model} --api-base {s.url}   (Ctrl-C stops)",
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            done.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
