"""Real LLM backends for the agent: smolagents' `OpenAIServerModel` and `LiteLLMModel`.

`build_model(settings)` turns the campaign's `llm` settings (through `ModelSettings`) into a
smolagents `Model` for a `CodeAgent`. Selection rule, first match wins:

1. `model: offline` -> `agent.models.offline.OfflineModel` (no key, no network; `api_base`
   is ignored).
2. `model: openai-server:<id>` -> `OpenAIServerModel(<id>)` at `api_base` (the OpenAI API
   itself when `api_base` is unset).
3. `model: litellm:<id>` -> `LiteLLMModel(<id>)`, at `api_base` when one is given (LiteLLM's
   `openai/<id>` speaks to any OpenAI-compatible server).
4. any other model with an `api_base` -> `OpenAIServerModel(<model>)` at `api_base` (vLLM,
   Ollama, llama.cpp, the loopback test stub...).
5. any other model -> `LiteLLMModel(<model>)` (`anthropic/claude-...`, `gpt-4o`, ...).

Keys: the key is read from `os.environ[api_key_env]` when the model is built (and again when a
pickled model is rebuilt); a named variable that is unset or empty raises `AgentModelError`.
Without `api_key_env`, `OpenAIServerModel` sends the placeholder `not-needed` (local servers
ignore it) and LiteLLM falls back to its provider's own variable (`ANTHROPIC_API_KEY`, ...).
The key lives only inside the built client: never in `ModelSettings`, in a pickle, in a
message, a repr or a log line of this module.

Remote models come wrapped in `LazyModel`, a picklable smolagents `Model` (Ray Tune pickles the
searcher, and the proposer's model with it) that counts tokens per call and turns every
transport failure into a one-line `AgentModelError`.

Retries: smolagents' own `ApiModel` retry is turned off (`retry=False`): it waits 120-240 s
before its first retry of a rate-limit error and retries 3 times. The HTTP client retries
instead, `max_retries` times (so `max_retries + 1` attempts) on 408/409/429/5xx, timeouts and
connection errors, honouring a server's `Retry-After` of up to 120 s, else backing off
0.5 s, 1 s, 2 s... (the openai client; LiteLLM passes `max_retries` to it for OpenAI-style
providers). A call that never gets a reply therefore fails after about
`(max_retries + 1) * timeout_s` plus the back-off.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from smolagents.models import ChatMessage, Model
from smolagents.monitoring import TokenUsage

from agent.proposer import AgentError

if TYPE_CHECKING:
    from smolagents.tools import Tool

__all__ = [
    "LITELLM_PREFIX",
    "OFFLINE_MODEL",
    "OPENAI_SERVER_PREFIX",
    "AgentModelError",
    "LazyModel",
    "ModelConfigError",
    "ModelSettings",
    "build_model",
    "redact",
]

logger = logging.getLogger(__name__)

OFFLINE_MODEL = "offline"
OPENAI_SERVER_PREFIX = "openai-server:"
LITELLM_PREFIX = "litellm:"
NO_KEY_PLACEHOLDER = "not-needed"
"""The key `OpenAIServerModel` sends when no `api_key_env` is named (local servers ignore it)."""

Backend = Literal["offline", "openai-server", "litellm"]

ErrorKind = Literal[
    "missing_key",
    "config",
    "not_installed",
    "rate_limited",
    "server_error",
    "http_error",
    "timeout",
    "connection",
    "malformed",
    "failed",
]

_MIN_SECRET_LEN = 4
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s'\"]+")
_DETAIL_CHARS = 160
# LiteLLM reports a body it cannot parse as a 500 "InternalServerError"; these mark it.
_MALFORMED_MARKERS = (
    "Expecting value",
    "no 'choices'",
    "Received response -",
    "Invalid response object",
    "JSONDecodeError",
    "Unexpected API response",
)


class AgentModelError(AgentError):
    """A model could not be built or a model call failed; the message is one key-free line.

    Attributes:
        kind: what went wrong, for records and tests: `missing_key`, `config`,
            `not_installed`, `rate_limited`, `server_error`, `http_error`, `timeout`,
            `connection`, `malformed` or `failed`.
    """

    def __init__(self, message: str, *, kind: ErrorKind = "failed") -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind


class ModelConfigError(AgentModelError, ValueError):
    """`ModelSettings` got a value outside its contract (empty model, bad URL, timeout <= 0)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, kind="config")


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Mask every secret, and any `Bearer <token>`, in `text`.

    Args:
        text: the text to clean (an error message, a log line...).
        secrets: values to mask; `None`, empty and shorter-than-4-character values are skipped
            (masking those would shred ordinary words and they are no real key).

    Returns:
        `text` with each occurrence of each secret replaced by `***` and the token of every
        `Bearer <token>` replaced by `***`.
    """
    cleaned = text
    for secret in sorted({s for s in secrets if s and len(s) >= _MIN_SECRET_LEN}, key=len)[::-1]:
        cleaned = cleaned.replace(secret, "***")
    return _BEARER.sub(r"\1***", cleaned)


def _safe_url(url: str) -> str:
    """`url` without user info, query or fragment (which may carry credentials)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}".rstrip("/")


@dataclass(frozen=True)
class ModelSettings:
    """What `build_model` needs to make the agent's model; holds no key, only its variable's name.

    Attributes:
        model: `offline`, `openai-server:<id>`, `litellm:<id>` or a plain model id (see the
            module docstring for the selection rule).
        temperature: sampling temperature sent with every call (0 to 2).
        api_base: an OpenAI-compatible base URL (`http://127.0.0.1:8000/v1`), or `None`.
        api_key_env: the environment variable that holds the API key, or `None`.
        timeout_s: seconds one HTTP attempt may take before it is abandoned (> 0).
        max_retries: HTTP retries after the first attempt (429, 5xx, timeouts), >= 0.

    Raises:
        ModelConfigError: a value breaks the rules above.
    """

    model: str
    temperature: float = 0.2
    api_base: str | None = None
    api_key_env: str | None = None
    timeout_s: float = 60.0
    max_retries: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ModelConfigError(
                f"llm model must be a non-empty name such as 'offline' or 'anthropic/claude-"
                f"sonnet-4-5', got {self.model!r}"
            )
        if self.model != self.model.strip():
            object.__setattr__(self, "model", self.model.strip())
        if self.model.startswith((OPENAI_SERVER_PREFIX, LITELLM_PREFIX)) and not self.model_id:
            raise ModelConfigError(
                f"llm model {self.model!r} names a backend but no model id; write e.g. "
                f"'{OPENAI_SERVER_PREFIX}qwen2.5-coder'"
            )
        if self.api_base is not None:
            parts = urlsplit(self.api_base)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ModelConfigError(
                    f"api_base must be an http(s) URL such as http://127.0.0.1:8000/v1, got "
                    f"{_safe_url(self.api_base) if parts.scheme else self.api_base[:40]!r}"
                )
        if not (isinstance(self.temperature, int | float) and 0 <= self.temperature <= 2):
            raise ModelConfigError(f"temperature must be between 0 and 2, got {self.temperature!r}")
        if not (
            isinstance(self.timeout_s, int | float)
            and math.isfinite(self.timeout_s)
            and self.timeout_s > 0
        ):
            raise ModelConfigError(
                f"timeout_s must be a number of seconds > 0, got {self.timeout_s!r}"
            )
        if (
            isinstance(self.max_retries, bool)
            or not isinstance(self.max_retries, int)
            or (self.max_retries < 0)
        ):
            raise ModelConfigError(f"max_retries must be an integer >= 0, got {self.max_retries!r}")
        if self.api_key_env is not None and not re.fullmatch(
            r"[A-Za-z_][A-Za-z0-9_]*", self.api_key_env
        ):
            raise ModelConfigError(
                "api_key_env must name an environment variable (letters, digits, '_'), e.g. "
                "OPENAI_API_KEY; never the key itself"
            )

    @classmethod
    def from_llm(
        cls, llm: Any, *, model: str | None = None, api_base: str | None = None
    ) -> ModelSettings:
        """Settings from any object with the campaign's `LLMSettings` attributes.

        Reads `model`, `temperature`, `api_base`, `api_key_env` and, when present, `timeout_s`
        and `max_retries`; a missing attribute takes this class's default (`model`: offline).

        Args:
            llm: the campaign's `llm` settings (or any object with those attributes), or `None`.
            model: a command-line `--model`, replacing `llm.model` when given.
            api_base: a command-line `--api-base`, replacing `llm.api_base` when given.

        Returns:
            The settings.

        Raises:
            ModelConfigError: a value breaks the `ModelSettings` rules.
        """
        return cls(
            model=model or getattr(llm, "model", None) or OFFLINE_MODEL,
            temperature=float(getattr(llm, "temperature", 0.2)),
            api_base=api_base or getattr(llm, "api_base", None),
            api_key_env=getattr(llm, "api_key_env", None),
            timeout_s=float(getattr(llm, "timeout_s", 60.0)),
            max_retries=int(getattr(llm, "max_retries", 1)),
        )

    @property
    def backend(self) -> Backend:
        """Which client `build_model` uses, by the module docstring's selection rule."""
        if self.model == OFFLINE_MODEL:
            return "offline"
        if self.model.startswith(OPENAI_SERVER_PREFIX):
            return "openai-server"
        if self.model.startswith(LITELLM_PREFIX):
            return "litellm"
        return "openai-server" if self.api_base else "litellm"

    @property
    def model_id(self) -> str:
        """The id sent to the backend: `model` without an `openai-server:`/`litellm:` prefix."""
        for prefix in (OPENAI_SERVER_PREFIX, LITELLM_PREFIX):
            if self.model.startswith(prefix):
                return self.model[len(prefix) :].strip()
        return self.model

    @property
    def endpoint(self) -> str:
        """Where calls go, for messages: `host:port` of `api_base`, else the provider's name."""
        if self.api_base:
            parts = urlsplit(self.api_base)
            host = parts.hostname or "?"
            return f"{host}:{parts.port}" if parts.port is not None else host
        if self.backend == "openai-server":
            return "api.openai.com"
        provider = self.model_id.split("/", 1)[0] if "/" in self.model_id else "litellm"
        return f"{provider} (litellm)"

    @property
    def where(self) -> str:
        """`api_base` without credentials, else `endpoint`: the address timeouts name."""
        return _safe_url(self.api_base) if self.api_base else self.endpoint


def _read_key(settings: ModelSettings) -> str | None:
    """The key from `os.environ[settings.api_key_env]`; `None` when no variable is named.

    Raises:
        AgentModelError: the variable is named but unset or empty.
    """
    name = settings.api_key_env
    if name is None:
        return None
    value = os.environ.get(name)
    if not value:
        raise AgentModelError(
            f"the API key variable {name} is not set; export it in the shell that starts "
            f"agentune (export {name}=...) or run with --model offline",
            kind="missing_key",
        )
    return value


def _quiet_litellm() -> None:
    """Keep LiteLLM off the network at import and quiet on errors (it prints help banners)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    if hasattr(litellm, "telemetry"):
        litellm.telemetry = False


def _build_client_model(settings: ModelSettings, key: str | None) -> Model:
    """The smolagents model for a remote backend (it holds the key; never pickle it)."""
    if settings.backend == "openai-server":
        try:
            import openai  # noqa: F401 (fail here with an install hint, not inside smolagents)
        except ModuleNotFoundError:
            raise AgentModelError(
                "the openai package is not installed; pip install openai (needed for "
                "OpenAI-compatible servers) or run with --model offline",
                kind="not_installed",
            ) from None
        from smolagents.models import OpenAIServerModel

        return OpenAIServerModel(
            model_id=settings.model_id,
            api_base=settings.api_base,
            api_key=key or NO_KEY_PLACEHOLDER,
            client_kwargs={"timeout": settings.timeout_s, "max_retries": settings.max_retries},
            # text-only agent: plain string contents suit every OpenAI-compatible server
            flatten_messages_as_text=True,
            retry=False,  # smolagents' own retry sleeps 120-240 s; the client retries instead
            temperature=settings.temperature,
        )
    try:
        _quiet_litellm()
    except ModuleNotFoundError:
        raise AgentModelError(
            f"model {settings.model!r} needs the litellm package; pip install litellm, or "
            f"give --api-base URL for an OpenAI-compatible server, or run with --model offline",
            kind="not_installed",
        ) from None
    from smolagents.models import LiteLLMModel

    return LiteLLMModel(
        model_id=settings.model_id,
        api_base=settings.api_base,
        api_key=key,
        retry=False,
        temperature=settings.temperature,
        timeout=settings.timeout_s,
        # LiteLLM's num_retries needs tenacity; max_retries goes to the provider's client
        max_retries=settings.max_retries,
    )


def build_model(settings: ModelSettings) -> Model:
    """The agent's smolagents model for `settings`, by the module docstring's selection rule.

    Args:
        settings: which model, where, and the name of the key's variable.

    Returns:
        `OfflineModel()` for `offline`, else a `LazyModel` around an `OpenAIServerModel` or a
        `LiteLLMModel` (already built, so a missing key or package fails here, not mid-run).

    Raises:
        AgentModelError: the key's variable is unset (`kind="missing_key"`) or the client
            package is not installed (`kind="not_installed"`).
    """
    if settings.backend == "offline":
        if settings.api_base:
            logger.info("model 'offline' ignores api_base %s", _safe_url(settings.api_base))
        from agent.models.offline import OfflineModel

        offline: Model = OfflineModel()
        return offline
    key = _read_key(settings)
    model = LazyModel(settings, model=_build_client_model(settings, key))
    logger.info("agent model %s via %s at %s", settings.model_id, settings.backend, settings.where)
    return model


def _first_line(text: str) -> str:
    line = next((s.strip() for s in text.splitlines() if s.strip()), "")
    return line if len(line) <= _DETAIL_CHARS else line[: _DETAIL_CHARS - 3] + "..."


def _server_detail(error: BaseException) -> str:
    """The server's own short message of an HTTP error, without client boilerplate."""
    body = getattr(error, "body", None)
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, Mapping) else None
        if isinstance(message, str) and message.strip():
            return _first_line(message)
    text = str(error).split(", Received response", 1)[0]
    for marker in ("Exception - error - ", "Exception - ", " - "):
        if marker in text:
            text = text.rsplit(marker, 1)[-1]
            break
    return _first_line(text)


def _chain(error: BaseException, depth: int = 8) -> list[BaseException]:
    """`error` and the exceptions it was raised from (LiteLLM wraps the openai client's)."""
    chain = [error]
    while len(chain) < depth:
        nxt = chain[-1].__cause__ or chain[-1].__context__
        if nxt is None or nxt in chain:
            break
        chain.append(nxt)
    return chain


def _explain(error: Exception, settings: ModelSettings) -> AgentModelError:
    """One key-free line for a failed call (the caller redacts it): what, where, what to do."""
    try:
        import openai
    except ModuleNotFoundError:  # LiteLLM without openai cannot happen; stay defensive
        openai = None  # type: ignore[assignment]
    host = settings.endpoint
    attempts = settings.max_retries + 1
    text = str(error)
    chain = _chain(error)
    if openai is not None and any(isinstance(e, openai.APITimeoutError) for e in chain):
        return AgentModelError(
            f"no reply from {settings.where} within {settings.timeout_s:g} s "
            f"({attempts} attempt{'s' if attempts > 1 else ''}); check the server is up and "
            f"not overloaded, or raise the timeout",
            kind="timeout",
        )
    if openai is not None and any(isinstance(e, openai.APIConnectionError) for e in chain):
        return AgentModelError(
            f"cannot connect to {settings.where}: {_first_line(str(chain[-1]))}; check the "
            f"server is running and api_base is right",
            kind="connection",
        )
    if any(marker in text for marker in _MALFORMED_MARKERS):
        return AgentModelError(
            f"malformed response from {host}: {_first_line(_server_detail(error))}; the server "
            f"is not answering like an OpenAI chat completion",
            kind="malformed",
        )
    if openai is not None and isinstance(error, openai.APIStatusError):
        code = int(getattr(error, "status_code", 0) or 0)
        detail = _server_detail(error)
        if code == 429:
            return AgentModelError(
                f"HTTP 429 rate limited by {host} ({attempts} attempt"
                f"{'s' if attempts > 1 else ''}): {detail}; wait before the next call or lower "
                f"the request rate",
                kind="rate_limited",
            )
        if code >= 500:
            return AgentModelError(
                f"HTTP {code} from {host} ({attempts} attempt{'s' if attempts > 1 else ''}): "
                f"{detail}; the server failed, try again later",
                kind="server_error",
            )
        hint = {
            401: f"check the key in {settings.api_key_env or 'the api_key_env variable'}",
            403: f"check the key in {settings.api_key_env or 'the api_key_env variable'}",
            404: f"check the model id {settings.model_id!r} and api_base (it usually ends in /v1)",
        }.get(code, "the server refused the request")
        return AgentModelError(f"HTTP {code} from {host}: {detail}; {hint}", kind="http_error")
    if openai is not None and isinstance(error, openai.APIResponseValidationError):
        return AgentModelError(
            f"malformed response from {host}: {_first_line(text)}", kind="malformed"
        )
    if isinstance(error, ValueError | TypeError | AttributeError | LookupError):
        return AgentModelError(
            f"malformed response from {host}: {type(error).__name__}: {_first_line(text)}; the "
            f"server is not answering like an OpenAI chat completion",
            kind="malformed",
        )
    return AgentModelError(
        f"model call to {host} failed: {type(error).__name__}: {_first_line(text)}",
        kind="failed",
    )


class LazyModel(Model):
    """A picklable smolagents `Model` around a remote backend, rebuilt from settings on demand.

    Pickling keeps `settings`, the smolagents `Model` attributes and the token counters; it
    drops the built client (which holds the key). The first `generate` after unpickling
    rebuilds the client, re-reading the key from the environment.

    Token counting: after every successful call `last_usage` is that call's `TokenUsage` and
    `calls`, `input_tokens`, `output_tokens` and `total_tokens` grow by it (a reply without
    usage counts as 0 tokens). A failed call counts nothing.

    Failures: every exception of the underlying client becomes an `AgentModelError` with a
    one-line message naming the cause and the endpoint, never the key (see `_explain`).

    Args:
        settings: what to build; remote backends only (not `offline`).
        model: an already built client model for `settings` (what `build_model` passes);
            `None` builds it on first use.
    """

    def __init__(self, settings: ModelSettings, *, model: Model | None = None) -> None:
        if settings.backend == "offline":
            raise ModelConfigError(
                "LazyModel wraps remote backends; use build_model() for model 'offline'"
            )
        super().__init__(model_id=settings.model_id)
        self.settings = settings
        self._inner: Model | None = model
        self._lock = threading.Lock()
        self.calls = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.last_usage: TokenUsage | None = None

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens over every successful call of this object."""
        return self.input_tokens + self.output_tokens

    @property
    def built(self) -> bool:
        """Whether the client is built (False after unpickling, until the next call)."""
        return self._inner is not None

    def _client_model(self) -> Model:
        with self._lock:
            if self._inner is None:
                self._inner = _build_client_model(self.settings, _read_key(self.settings))
            return self._inner

    def _secrets(self) -> list[str | None]:
        """Values to mask in messages: the key variable's value and the built client's key."""
        secrets: list[str | None] = []
        if self.settings.api_key_env:
            secrets.append(os.environ.get(self.settings.api_key_env))
        inner = self._inner
        if inner is not None:
            secrets.append(getattr(inner, "api_key", None))
            client_kwargs = getattr(inner, "client_kwargs", None)
            if isinstance(client_kwargs, Mapping):
                secrets.append(client_kwargs.get("api_key"))
        return [s for s in secrets if s != NO_KEY_PLACEHOLDER]

    def generate(
        self,
        messages: list[ChatMessage],
        stop_sequences: list[str] | None = None,
        response_format: dict[str, str] | None = None,
        tools_to_call_from: list[Tool] | None = None,
        **kwargs: Any,
    ) -> ChatMessage:
        """Ask the backend for the next message; counts its tokens.

        Args:
            messages: the conversation, as a smolagents agent passes it.
            stop_sequences: strings that end the reply.
            response_format: passed through to the backend.
            tools_to_call_from: passed through to the backend.
            **kwargs: passed through to the backend's completion call.

        Returns:
            The backend's `ChatMessage` (with its `token_usage`).

        Raises:
            AgentModelError: the key's variable is unset at rebuild, or the call failed
                (rate limit, server error, timeout, connection, malformed reply...).
        """
        inner = self._client_model()
        try:
            message = inner.generate(
                messages,
                stop_sequences=stop_sequences,
                response_format=response_format,
                tools_to_call_from=tools_to_call_from,
                **kwargs,
            )
        except AgentModelError:
            raise
        except Exception as e:
            error = _explain(e, self.settings)
            error = AgentModelError(redact(str(error), self._secrets()), kind=error.kind)
            logger.info("agent model call failed: %s", error)
            raise error from None
        usage = message.token_usage or TokenUsage(input_tokens=0, output_tokens=0)
        with self._lock:
            self.calls += 1
            self.input_tokens += usage.input_tokens
            self.output_tokens += usage.output_tokens
            self.last_usage = usage
        logger.debug(
            "agent model call %d: %d tokens in, %d out",
            self.calls,
            usage.input_tokens,
            usage.output_tokens,
        )
        return message

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain data (never the key), for smolagents' `agent.to_dict()`."""
        return {
            "model_id": self.settings.model_id,
            "model": self.settings.model,
            "backend": self.settings.backend,
            "api_base": self.settings.where if self.settings.api_base else None,
            "api_key_env": self.settings.api_key_env,
            "temperature": self.settings.temperature,
            "timeout_s": self.settings.timeout_s,
            "max_retries": self.settings.max_retries,
        }

    def __repr__(self) -> str:
        api_base = self.settings.where if self.settings.api_base else None
        return (
            f"LazyModel(model={self.settings.model!r}, backend={self.settings.backend!r}, "
            f"api_base={api_base!r}, api_key_env={self.settings.api_key_env!r}, "
            f"total_tokens={self.total_tokens})"
        )

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_inner"] = None
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._inner = None
        self._lock = threading.Lock()
