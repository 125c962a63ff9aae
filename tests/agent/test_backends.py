"""Real LLM backends against a scripted OpenAI-compatible server on 127.0.0.1.

Every test here talks HTTP to `ScriptedOpenAIServer` through the real clients (openai via
smolagents' `OpenAIServerModel`, and litellm via `LiteLLMModel`): no network, no real key.
"""

from __future__ import annotations

import json
import logging
import pickle
import socket
import subprocess
import sys
import time
import types
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from smolagents import CodeAgent
from smolagents.models import ChatMessage, LiteLLMModel, MessageRole, OpenAIServerModel

from agent.models.backends import (
    AgentModelError,
    LazyModel,
    ModelConfigError,
    ModelSettings,
    build_model,
    redact,
)
from agent.proposer import AgentError
from agent.testing import Hang, Malformed, Reply, ScriptedOpenAIServer, Status, Step

KEY_ENV = "AGENTUNE_TEST_LLM_KEY"
FAKE_KEY = "sk-agentune-FAKE-7f3a9c1e5b2d4a60"
MESSAGES = [ChatMessage(role=MessageRole.USER, content=[{"type": "text", "text": "hello"}])]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_ENV, FAKE_KEY)
    return FAKE_KEY


@pytest.fixture
def server() -> Iterator[ScriptedOpenAIServer]:
    with ScriptedOpenAIServer() as s:
        yield s


def _settings(url: str, *, backend: str = "openai-server", **kw: object) -> ModelSettings:
    model = "stub" if backend == "openai-server" else "litellm:openai/stub"
    args: dict = {"api_base": url, "api_key_env": KEY_ENV, "timeout_s": 0.5, "max_retries": 1}
    args.update(kw)
    return ModelSettings(model=model, **args)


def _lazy(settings: ModelSettings) -> LazyModel:
    model = build_model(settings)
    assert isinstance(model, LazyModel)
    return model


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- settings and selection ------------------------------------------------------------------


def test_settings_from_llm_reads_campaign_fields_and_cli_overrides() -> None:
    llm = types.SimpleNamespace(
        model="anthropic/claude-sonnet-4-5",
        temperature=0.7,
        max_steps=6,
        api_key_env="ANTHROPIC_API_KEY",
        api_base=None,
        token_budget=1000,
    )
    s = ModelSettings.from_llm(llm)
    assert (s.model, s.temperature, s.api_key_env, s.api_base) == (
        "anthropic/claude-sonnet-4-5",
        0.7,
        "ANTHROPIC_API_KEY",
        None,
    )
    assert (s.timeout_s, s.max_retries, s.backend) == (60.0, 1, "litellm")
    s = ModelSettings.from_llm(llm, model="qwen", api_base="http://127.0.0.1:9/v1")
    assert (s.model, s.api_base, s.backend, s.endpoint) == (
        "qwen",
        "http://127.0.0.1:9/v1",
        "openai-server",
        "127.0.0.1:9",
    )
    assert ModelSettings.from_llm(None).backend == "offline"


@pytest.mark.parametrize(
    ("model", "api_base", "backend", "model_id"),
    [
        ("offline", None, "offline", "offline"),
        ("offline", "http://127.0.0.1:1/v1", "offline", "offline"),
        ("qwen2.5-coder", "http://127.0.0.1:1/v1", "openai-server", "qwen2.5-coder"),
        ("openai-server:gpt-4o", None, "openai-server", "gpt-4o"),
        ("litellm:openai/stub", "http://127.0.0.1:1/v1", "litellm", "openai/stub"),
        ("anthropic/claude-sonnet-4-5", None, "litellm", "anthropic/claude-sonnet-4-5"),
    ],
)
def test_selection_rule(model: str, api_base: str | None, backend: str, model_id: str) -> None:
    s = ModelSettings(model=model, api_base=api_base)
    assert (s.backend, s.model_id) == (backend, model_id)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"model": " "}, "non-empty"),
        ({"model": "openai-server:"}, "no model id"),
        ({"model": "x", "api_base": "127.0.0.1:8000/v1"}, "http(s) URL"),
        ({"model": "x", "timeout_s": 0}, "timeout_s"),
        ({"model": "x", "max_retries": -1}, "max_retries"),
        ({"model": "x", "temperature": 3.0}, "temperature"),
        ({"model": "x", "api_key_env": "sk-live-abc"}, "never the key itself"),
    ],
)
def test_settings_reject_bad_values(kwargs: dict, needle: str) -> None:
    with pytest.raises(ModelConfigError, match=None) as info:
        ModelSettings(**kwargs)
    assert needle in str(info.value)
    assert isinstance(info.value, ValueError | AgentError)
    assert "sk-live-abc" not in str(info.value)


def test_build_offline_returns_the_offline_policy() -> None:
    offline = pytest.importorskip("agent.models.offline")
    model = build_model(ModelSettings(model="offline", api_base="http://127.0.0.1:1/v1"))
    assert isinstance(model, offline.OfflineModel)


def test_build_openai_server_wires_timeout_retries_and_key(
    key: str, server: ScriptedOpenAIServer
) -> None:
    server.push(Reply("hi"))
    model = _lazy(_settings(server.url, temperature=0.3))
    inner = model._inner
    assert isinstance(inner, OpenAIServerModel)
    assert inner.client.timeout == 0.5 and inner.client.max_retries == 1
    assert inner.retryer.max_attempts == 1  # smolagents' 120-240 s rate-limit retry is off
    assert model.generate(MESSAGES).content == "hi"
    (request,) = server.chat_requests
    assert request.headers["authorization"] == f"Bearer {key}"
    assert request.body["model"] == "stub" and request.body["temperature"] == 0.3
    # flattened, string contents: what every OpenAI-compatible server accepts
    assert request.body["messages"] == [{"role": "user", "content": "hello"}]


def test_no_key_env_sends_a_placeholder(server: ScriptedOpenAIServer) -> None:
    server.push(Reply("hi"))
    model = _lazy(ModelSettings(model="stub", api_base=server.url, timeout_s=1))
    model.generate(MESSAGES)
    assert server.chat_requests[0].headers["authorization"] == "Bearer not-needed"


def test_litellm_backend_talks_to_the_stub(key: str, server: ScriptedOpenAIServer) -> None:
    server.push(Reply("from litellm", prompt_tokens=7, completion_tokens=2))
    model = _lazy(_settings(server.url, backend="litellm"))
    assert isinstance(model._inner, LiteLLMModel)
    message = model.generate(MESSAGES, stop_sequences=["</code>"])
    assert message.content == "from litellm"
    assert (model.input_tokens, model.output_tokens, model.calls) == (7, 2, 1)
    (request,) = server.chat_requests
    assert request.body["model"] == "stub" and request.body["stop"] == ["</code>"]
    assert request.headers["authorization"] == f"Bearer {key}"


def test_missing_key_variable_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(AgentModelError) as info:
        build_model(_settings("http://127.0.0.1:1/v1"))
    message = str(info.value)
    assert info.value.kind == "missing_key" and isinstance(info.value, AgentError)
    assert KEY_ENV in message and f"export {KEY_ENV}=" in message and "\n" not in message


# -- failure modes: one line, the right reason, bounded time, never the key -------------------

FAILURES = [
    # (script, kind, message start, seconds at most) with timeout_s=0.5, max_retries=1
    ([Status(429, retry_after=0.05)], "rate_limited", "HTTP 429 rate limited by {host}", 3),
    ([Status(500)], "server_error", "HTTP 500 from {host}", 3),
    ([Status(503)], "server_error", "HTTP 503 from {host}", 3),
    ([Hang(30)], "timeout", "no reply from {url} within 0.5 s (2 attempts)", 4),
    ([Malformed("<html>not json</html>")], "malformed", "malformed response from {host}", 2),
    ([Malformed('{"unexpected": "shape"}')], "malformed", "malformed response from {host}", 2),
    ([Status(401)], "http_error", "HTTP 401 from {host}", 2),
    ([Status(404)], "http_error", "HTTP 404 from {host}", 2),
]


@pytest.mark.parametrize("backend", ["openai-server", "litellm"])
@pytest.mark.parametrize(("script", "kind", "start", "bound"), FAILURES)
def test_failure_modes(
    key: str,
    backend: str,
    script: list,
    kind: str,
    start: str,
    bound: float,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with ScriptedOpenAIServer(script) as server:
        model = _lazy(_settings(server.url, backend=backend))
        began = time.monotonic()
        with pytest.raises(AgentModelError) as info:
            model.generate(MESSAGES)
        elapsed = time.monotonic() - began
    error = info.value
    message = str(error)
    expected = start.format(host=f"127.0.0.1:{server.port}", url=server.url)
    assert message.startswith(expected), message
    assert error.kind == kind
    assert "\n" not in message and len(message) < 400
    assert elapsed < bound
    if kind == "http_error" and "401" in start:
        assert f"check the key in {KEY_ENV}" in message
    assert model.calls == 0 and model.total_tokens == 0  # a failed call counts nothing
    out, err = capfd.readouterr()
    leaks = [message, repr(error), repr(model), out, err, caplog.text]
    assert all(key not in text for text in leaks)
    assert key.encode() not in pickle.dumps(model)


@pytest.mark.parametrize("backend", ["openai-server", "litellm"])
def test_unreachable_server(key: str, backend: str) -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"
    model = _lazy(_settings(url, backend=backend, max_retries=0))
    with pytest.raises(AgentModelError) as info:
        model.generate(MESSAGES)
    assert info.value.kind in ("connection", "timeout")
    assert url in str(info.value) and "\n" not in str(info.value)


def test_a_key_echoed_by_the_server_is_redacted(key: str) -> None:
    body = json.dumps({"error": {"message": f"Incorrect API key provided: {key}"}})
    with ScriptedOpenAIServer([Status(401, body=body)]) as server:
        model = _lazy(_settings(server.url))
        with pytest.raises(AgentModelError) as info:
            model.generate(MESSAGES)
    assert key not in str(info.value) and "Incorrect API key provided: ***" in str(info.value)


@pytest.mark.parametrize("backend", ["openai-server", "litellm"])
def test_429_then_reply_succeeds_after_the_retry_after_delay(key: str, backend: str) -> None:
    script: list[Step] = [Status(429, retry_after=0.3), Reply("ok")]
    with ScriptedOpenAIServer(script) as server:
        model = _lazy(_settings(server.url, backend=backend))
        assert model.generate(MESSAGES).content == "ok"
        first, second = server.chat_requests
    assert 0.25 <= second.received_at - first.received_at < 2.0  # the client honoured it
    assert model.calls == 1


def test_no_retries_fails_on_the_first_429(key: str) -> None:
    with ScriptedOpenAIServer([Status(429, retry_after=0.05), Reply("ok")]) as server:
        model = _lazy(_settings(server.url, max_retries=0))
        with pytest.raises(AgentModelError, match=r"^HTTP 429 .*\(1 attempt\)"):
            model.generate(MESSAGES)
        assert len(server.chat_requests) == 1


# -- tokens, pickling, redaction --------------------------------------------------------------


def test_tokens_are_counted_per_call(key: str) -> None:
    script: list[Step] = [
        Reply("a", prompt_tokens=10, completion_tokens=3),
        Status(400),
        Reply("b", prompt_tokens=20, completion_tokens=5),
    ]
    with ScriptedOpenAIServer(script) as server:
        model = _lazy(_settings(server.url, max_retries=0))
        first = model.generate(MESSAGES)
        assert first.token_usage is not None and first.token_usage.total_tokens == 13
        assert model.last_usage == first.token_usage
        with pytest.raises(AgentModelError):
            model.generate(MESSAGES)
        model.generate(MESSAGES)
    assert model.last_usage is not None and model.last_usage.input_tokens == 20
    assert (model.calls, model.input_tokens, model.output_tokens) == (2, 30, 8)
    assert model.total_tokens == 38


def test_lazy_model_pickles_without_the_key_and_rebuilds(
    key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ScriptedOpenAIServer([Reply("one", prompt_tokens=4, completion_tokens=1)]) as server:
        model = _lazy(_settings(server.url))
        model.generate(MESSAGES)
        blob = pickle.dumps(model)
        assert key.encode() not in blob
        assert key not in repr(model) and key not in json.dumps(model.to_dict())
        clone = pickle.loads(blob)
        assert not clone.built and clone.total_tokens == 5
        monkeypatch.setenv(KEY_ENV, "sk-agentune-ROTATED-0000")
        assert clone.generate(MESSAGES).content == "one"  # the last step repeats
        assert clone.built and clone.calls == 2
        assert (
            server.chat_requests[-1].headers["authorization"] == "Bearer sk-agentune-ROTATED-0000"
        )
        assert b"ROTATED" not in pickle.dumps(clone)
        cloudpickle = pytest.importorskip("ray.cloudpickle")  # what Ray Tune pickles with
        assert key.encode() not in cloudpickle.dumps(model)
        monkeypatch.delenv(KEY_ENV)
        orphan = pickle.loads(blob)
        with pytest.raises(AgentModelError, match=KEY_ENV) as info:
            orphan.generate(MESSAGES)
        assert info.value.kind == "missing_key"


def test_redact() -> None:
    text = f"auth failed for {FAKE_KEY}; header Authorization: Bearer abc.def-123 sent"
    cleaned = redact(text, [FAKE_KEY, None, "", "ab"])
    assert FAKE_KEY not in cleaned and "abc.def-123" not in cleaned
    assert cleaned == "auth failed for ***; header Authorization: Bearer *** sent"
    assert redact("about a cab", ["ab"]) == "about a cab"  # too short to be a key


# -- the whole client path: a real CodeAgent --------------------------------------------------


def _agent(model: LazyModel, max_steps: int = 2) -> CodeAgent:
    return CodeAgent(tools=[], model=model, max_steps=max_steps, verbosity_level=0)


def test_code_agent_runs_through_the_stub(key: str) -> None:
    with ScriptedOpenAIServer([Reply("<code>\nfinal_answer('ok')\n</code>")]) as server:
        model = _lazy(_settings(server.url, timeout_s=5))
        assert _agent(model).run("Answer ok.") == "ok"
        (request,) = server.chat_requests
    assert model.calls == 1 and model.total_tokens > 0
    assert "</code>" in request.body["stop"]  # the stub cuts there, smolagents re-closes it
    assert request.body["messages"][0]["role"] == "system"


def test_code_agent_survives_malformed_code_and_a_refusal(key: str) -> None:
    script: list[Step] = [
        Reply("<code>\nthis is not python (\n</code>"),
        Reply("I'm sorry, but I can't help with that."),
        Reply("<code>\nfinal_answer('ok')\n</code>"),
    ]
    with ScriptedOpenAIServer(script) as server:
        model = _lazy(_settings(server.url, timeout_s=5))
        assert _agent(model, max_steps=4).run("Answer ok.") == "ok"
        third = server.chat_requests[2]
    assert model.calls == 3
    seen = json.dumps(third.body["messages"])
    assert "SyntaxError" in seen or "invalid syntax" in seen  # the model was shown its error


def test_code_agent_surfaces_a_server_failure_as_agent_model_error(key: str) -> None:
    from smolagents.utils import AgentGenerationError

    with ScriptedOpenAIServer([Status(500)]) as server:
        model = _lazy(_settings(server.url, max_retries=0))
        with pytest.raises(AgentGenerationError) as info:
            _agent(model).run("Answer ok.")
    cause = info.value.__cause__
    assert isinstance(cause, AgentModelError) and cause.kind == "server_error"
    assert str(cause).startswith(f"HTTP 500 from 127.0.0.1:{server.port}")


# -- the stub itself ---------------------------------------------------------------------------


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_stub_models_listing_unknown_paths_and_responder() -> None:
    seen: list[list[dict]] = []

    def responder(messages: list[dict]) -> str:
        seen.append(messages)
        return f"saw {len(messages)} messages. Observation: cut here"

    with ScriptedOpenAIServer(responder=responder, model="stub-x") as server:
        assert _get(server.url + "/models") == (
            200,
            {
                "object": "list",
                "data": [
                    {
                        "id": "stub-x",
                        "object": "model",
                        "created": _get(server.url + "/models")[1]["data"][0]["created"],
                        "owned_by": "agentune-stub",
                    }
                ],
            },
        )
        assert _get(server.url + "/nope")[0] == 404
        model = _lazy(ModelSettings(model="stub-x", api_base=server.url, timeout_s=2))
        reply = model.generate(MESSAGES, stop_sequences=["Observation:"])
    assert reply.content == "saw 1 messages. "
    assert seen == [[{"role": "user", "content": "hello"}]]
    assert [r.step for r in server.requests] == ["models", "models", "not_found", "reply"]


def test_stub_shuts_down_promptly_while_hanging(key: str) -> None:
    server = ScriptedOpenAIServer([Hang(60)]).start()
    model = _lazy(_settings(server.url, timeout_s=0.3, max_retries=0))
    with pytest.raises(AgentModelError, match="no reply"):
        model.generate(MESSAGES)
    began = time.monotonic()
    server.stop()
    assert time.monotonic() - began < 2
    server.stop()  # idempotent


def test_stub_cli_serves_the_offline_policy() -> None:
    pytest.importorskip("agent.models.offline")
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent.testing.openai_stub", "--port", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "http://127.0.0.1:" in line, line
        url = line.split()[-1]
        assert _get(url + "/models")[0] == 200
        model = _lazy(ModelSettings(model="stub", api_base=url, timeout_s=20))
        reply = model.generate(MESSAGES)
        assert isinstance(reply.content, str)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
