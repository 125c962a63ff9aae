"""The one override parser and formatter (agent.overrides): prefixes, keys and values split the
same way everywhere, and every formatted value reads back through Hydra's own parser as itself."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import OverrideType

from agent.overrides import (
    Override,
    format_override_value,
    iter_override_items,
    model_from_overrides,
    override_key,
    override_values,
    parse_override,
)
from agent.safety.errors import UnsafeOverrideError
from agent.safety.overrides import format_value

HYDRA = OverridesParser.create()
HYDRA_TYPES = {
    "": OverrideType.CHANGE,
    "+": OverrideType.ADD,
    "++": OverrideType.FORCE_ADD,
    "~": OverrideType.DEL,
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("trainer.lr=1e-3", Override("", "trainer.lr", "1e-3")),
        ("+model.extra=3", Override("+", "model.extra", "3")),
        ("++seed=1", Override("++", "seed", "1")),
        ("~trainer.scheduler", Override("~", "trainer.scheduler", None)),
        ("~trainer.scheduler=cosine", Override("~", "trainer.scheduler", "cosine")),
        ("model=resnet1d", Override("", "model", "resnet1d")),
        ("db/mysql=x", Override("", "db/mysql", "x")),
        ("model.name='a b'", Override("", "model.name", "'a b'")),
        ("model.kernels=[3,5]", Override("", "model.kernels", "[3,5]")),
        ("trainer.tag=", Override("", "trainer.tag", "")),
        ("a=b=c", Override("", "a", "b=c")),  # the first '=' ends the key
        ("  model.width = 32 ", Override("", "model.width", "32")),
    ],
)
def test_parse_override_splits_prefix_key_and_value(text: str, expected: Override) -> None:
    parsed = parse_override(text)
    assert parsed == expected
    assert override_key(text) == (None if expected.value is None else expected.key)
    canonical = parsed.text
    assert parse_override(canonical) == parsed  # the written-back text parses to the same
    if expected.value != "b=c":  # Hydra refuses a second '='; the split still names the key
        hydra = HYDRA.parse_override(canonical)  # and Hydra reads the same key and kind
        assert hydra.key_or_group == parsed.key
        assert hydra.type == HYDRA_TYPES[parsed.prefix]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("trainer.lr", "no '='"),
        ("+trainer.lr", "no '='"),
        ("", "no '='"),
        ("=3", "needs a key"),
        ("+=3", "needs a key"),
        ("~", "needs a key"),
        ("+~a=1", "at most one prefix"),
        ("+++a=1", "at most one prefix"),
        ("a b=1", "at most one prefix"),
    ],
)
def test_text_that_is_not_an_override_is_refused(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as info:
        parse_override(text)
    message = str(info.value)
    assert repr(text) in message and "write e.g." in message  # what was wrong, what to do
    assert override_key(text) is None


def test_non_string_is_refused() -> None:
    with pytest.raises(ValueError, match="got int 3"):
        parse_override(3)  # type: ignore[arg-type]


def test_override_values_last_wins_and_skips_deletions_and_junk() -> None:
    overrides = ["model=cnn1d", "trainer.lr=0.1", "~model.width=8", "junk", "model=resnet1d"]
    assert override_values(overrides) == {"model": "resnet1d", "trainer.lr": "0.1"}
    assert model_from_overrides(overrides) == "resnet1d"
    assert model_from_overrides(["+model=gen_a"]) == "gen_a"
    # a deletion selects nothing
    assert model_from_overrides(["~model=cnn1d", "trainer.lr=1"]) is None
    assert model_from_overrides([]) is None


def test_proposer_names_delegate_to_the_one_parser() -> None:
    from agent import proposer

    assert proposer.override_key is override_key
    assert proposer.model_from_overrides is model_from_overrides


def test_iter_override_items_flattens_nested_mappings() -> None:
    config = {"trainer": {"lr": 0.1, "opt": {"name": "adam"}}, "model": "cnn1d", "empty": {}}
    assert list(iter_override_items(config)) == [
        ("trainer.lr", 0.1),
        ("trainer.opt.name", "adam"),
        ("model", "cnn1d"),
        ("empty", {}),
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.001, "0.001"),
        (1e-3, "0.001"),
        (3e-4, "0.0003"),
        (1e-05, "1e-05"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1e16, "1e+16"),
        (np.float64(0.25), "0.25"),
        (np.float32(0.1), "0.10000000149011612"),
        (float("inf"), "inf"),
        (float("-inf"), "-inf"),
        (float("nan"), "nan"),
        (3, "3"),
        (np.int64(128), "128"),
        (True, "true"),
        (None, "null"),
        ("cnn1d", "cnn1d"),
        ("adamw/fused-v2.1", "adamw/fused-v2.1"),
        ("true", "'true'"),
        ("Null", "'Null'"),
        ("1.5", "'1.5'"),
        ("it's a b", "'it\\'s a b'"),
        ("C:\\dir\\", "'C:\\dir\\\\'"),
        ("", "''"),
        ([1, 2.5, "a"], "[1,2.5,a]"),
        ({"a": 1}, "{a:1}"),
        ((1, 2), "[1,2]"),
        ([], "[]"),
        (["a b", None, False], "['a b',null,false]"),
        ("inf", "'inf'"),
        ("3", "'3'"),
        ("a=b", "'a=b'"),
        ("x,y", "'x,y'"),
    ],
)
def test_format_override_value_round_trips_through_hydra(value: Any, expected: str) -> None:
    text = format_override_value(value)
    assert text == expected
    parsed = OverridesParser.create().parse_override(f"k={text}").value()
    if isinstance(value, float | np.floating) and math.isnan(value):
        assert isinstance(parsed, float) and math.isnan(parsed)
    elif isinstance(value, np.generic):
        assert parsed == value.item()
    elif isinstance(value, tuple):  # Hydra has lists only
        assert parsed == list(value)
    else:
        assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        ("${oc.env:HOME}", ValueError, "interpolations"),
        ({"a b": 1}, ValueError, "plain names"),
        ({"x\n": 1}, ValueError, "plain names"),
        (object(), TypeError, "cannot write a object"),
        ({1, 2}, TypeError, "cannot write a set"),
    ],
)
def test_format_refuses_what_hydra_cannot_read_back(
    value: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match) as info:
        format_override_value(value)
    assert "; " in str(info.value)  # the message says what to do


def test_a_trailing_newline_is_quoted_not_written_bare() -> None:
    text = format_override_value("cnn1d\n")
    assert text.startswith("'")
    assert HYDRA.parse_override(f"k={text}").value() == "cnn1d\n"


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (float("nan"), "finite"),
        ([1.0, float("inf")], "finite"),
        (10**19, "at most 1e18"),
        ("${x}", "interpolations"),
        (object(), "cannot write a object"),
    ],
)
def test_safety_formatter_is_the_same_formatter_but_stricter(value: Any, match: str) -> None:
    with pytest.raises(UnsafeOverrideError, match=match):
        format_value(value)


@pytest.mark.parametrize("value", [0.001, 1e-3, "it's", [1, "a", True], None, False, 7])
def test_safety_formatter_agrees_with_the_one_formatter(value: Any) -> None:
    assert format_value(value) == format_override_value(value)
