"""What every goal module shares: `CampaignError`, the strict schema base, error helpers.

Validators raise through `fail(message, at=...)`; `at` is a key path appended to pydantic's
error location, which `search.goals.loader` turns into the one-line
`<file>: <key path>: <rule>, got <value>` message of a `CampaignError`.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, NoReturn

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

__all__ = ["ERR_AT", "CampaignError", "Schema", "fail", "short"]

ERR_AT = "campaign_at"  # pydantic error context key: extra key path appended to the error's loc


class CampaignError(ValueError):
    """A campaign file or goal is invalid, or a goal spec names nothing that exists.

    The message is one line: `<file>: <key path>: <rule>, got <value>[; allowed: ...]`.
    `errors` holds every problem found (the message shows the first and counts the rest).
    """

    def __init__(self, message: str, errors: Sequence[str] | None = None) -> None:
        super().__init__(message)
        self.errors: list[str] = list(errors) if errors else [message]


def fail(message: str, at: str = "") -> NoReturn:
    """Raise a validation error whose location gets `at` appended (see `loader`'s formatting)."""
    raise PydanticCustomError("campaign", message, {ERR_AT: at})


def short(value: object, limit: int = 80) -> str:
    """`repr(value)`, cut to `limit` characters for an error message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Schema(BaseModel):
    """Base of every campaign schema: strict types, frozen, unknown keys listed with a hint.

    `_internal_fields` are fields the loader fills; they are left out of the allowed keys an
    error lists.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    _internal_fields: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            fail(f"must be a mapping of keys to values, got {short(data)}")
        allowed = [name for name in cls.model_fields if name not in cls._internal_fields]
        for key in data:
            if key in cls.model_fields:
                continue
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            fail(f"unknown key{hint}; allowed: {', '.join(allowed)}", at=str(key))
        return data
