"""Safe YAML in and out: the only YAML reader for text an agent wrote, and the writer of
agent-written configs.

`safe_load_yaml` accepts the subset of YAML that a Hydra config needs (one document of plain
mappings, lists and scalars, comments, `# @package` headers) and refuses everything that can
surprise a reader: duplicate keys (the last one silently wins elsewhere), merge keys (`<<`),
anchors and aliases (billion-laughs bombs), tags other than the core schema's
(`!!python/object/apply:os.system`, custom `!tags`), several documents, deep nesting, huge
inputs and non-string keys (`yes:` is a bool in YAML 1.1). Scalars resolve the way OmegaConf
reads them (`1e-3` is a float, dates stay strings), so what the safety layer checks is what
Hydra later sees.

`dump_yaml` writes block-style YAML with keys in the given order, quoting every string that
OmegaConf would otherwise read as another type.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.events import AliasEvent, CollectionStartEvent, NodeEvent

from agent.safety.errors import UnsafeConfigError

__all__ = ["dump_yaml", "safe_load_yaml"]

# Tags of YAML's core schema; any other explicit tag is refused. "!" is the non-specific tag
# (`! text`), which just means "a string".
_CORE_NAMES = ("str", "int", "float", "bool", "null", "seq", "map")
_CORE_TAGS = frozenset({"!"} | {f"tag:yaml.org,2002:{t}" for t in _CORE_NAMES})
_MERGE_TAG = "tag:yaml.org,2002:merge"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
# OmegaConf's float resolver (omegaconf._utils.get_yaml_loader): unlike PyYAML's, it reads
# `1e-3` (no dot) as a float. Mirrored so that this loader and Hydra agree on every scalar.
_OMEGACONF_FLOAT = re.compile(
    r"""^(?:
     [-+]?[0-9]+(?:_[0-9]+)*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9]+(?:_[0-9]+)*(?:[eE][-+]?[0-9]+)
    |\.[0-9]+(?:_[0-9]+)*(?:[eE][-+][0-9]+)?
    |[-+]?[0-9]+(?:_[0-9]+)*(?::[0-5]?[0-9])+\.[0-9_]*
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class _SafeLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors, aliases, foreign tags, merge keys, duplicate and
    non-string keys, and nesting deeper than `max_depth`."""

    source = "<yaml>"
    max_depth = 16
    _depth = 0

    def _refuse(self, mark: Any, rule: str) -> UnsafeConfigError:
        line = mark.line + 1 if mark is not None else "?"
        return UnsafeConfigError(f"{self.source}: line {line}: {rule}")

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            raise self._refuse(
                event.start_mark,
                f"YAML aliases (*{event.anchor}) are not allowed; write the value out in full",
            )
        if isinstance(event, NodeEvent) and event.anchor is not None:
            raise self._refuse(
                event.start_mark,
                f"YAML anchors (&{event.anchor}) are not allowed; write each value out in full",
            )
        tag = getattr(event, "tag", None)
        if tag is not None and tag not in _CORE_TAGS:
            raise self._refuse(
                event.start_mark,
                f"YAML tag {tag.replace('tag:yaml.org,2002:', '!!')!r} is not allowed (only plain "
                "str/int/float/bool/null/list/map values); remove the tag",
            )
        if not isinstance(event, CollectionStartEvent):
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > self.max_depth:
                raise self._refuse(
                    event.start_mark,
                    f"nesting deeper than {self.max_depth} levels is not allowed; flatten it",
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                raise self._refuse(
                    key_node.start_mark,
                    "YAML merge keys (<<) are not allowed; write every key out",
                )
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                raise self._refuse(
                    key_node.start_mark,
                    f"mapping keys must be strings, got {key!r} ({type(key).__name__}); "
                    "quote the key",
                )
            if key in seen:
                raise self._refuse(
                    key_node.start_mark,
                    f"duplicate key {key!r}; give each key once",
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_FLOAT_TAG, _FLOAT_FIRST = "tag:yaml.org,2002:float", list("-+0123456789.")
_SafeLoader.add_implicit_resolver(_FLOAT_TAG, _OMEGACONF_FLOAT, _FLOAT_FIRST)
_SafeLoader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag != _TIMESTAMP_TAG]
    for first, resolvers in _SafeLoader.yaml_implicit_resolvers.items()
}


class _Dumper(yaml.SafeDumper):
    """SafeDumper that also quotes strings OmegaConf would read as floats (`'1e-3'`)."""


_Dumper.add_implicit_resolver(_FLOAT_TAG, _OMEGACONF_FLOAT, _FLOAT_FIRST)


def safe_load_yaml(
    text: str, *, source: str = "<yaml>", max_bytes: int = 65536, max_depth: int = 16
) -> Any:
    """Parse one YAML document of plain data, refusing the features listed in the module doc.

    Args:
        text: the YAML text (comments and `# @package` header lines are fine).
        source: what the messages call the text (a file name, "mods").
        max_bytes: largest accepted input, UTF-8 encoded.
        max_depth: deepest accepted nesting of mappings and lists.

    Returns:
        The data: dicts with str keys, lists, str, int, float, bool, None (None for an empty
        document).

    Raises:
        UnsafeConfigError: "<source>: line <n>: <rule>" for a refused feature or bad YAML.
    """
    if not isinstance(text, str):
        raise UnsafeConfigError(
            f"{source}: YAML must be given as text, got {type(text).__name__}; pass a str"
        )
    size = len(text.encode("utf-8", errors="replace"))
    if size > max_bytes:
        raise UnsafeConfigError(
            f"{source}: YAML text of {size} bytes is over the limit of {max_bytes}; "
            "write a smaller config"
        )
    loader = _SafeLoader(text)
    loader.source, loader.max_depth = source, max_depth
    try:
        node = loader.get_single_node()
        return None if node is None else loader.construct_document(node)
    except yaml.composer.ComposerError as e:
        if "single document" in str(e):
            raise UnsafeConfigError(
                f"{source}: line {_line(e)}: only one YAML document is allowed (found '---' "
                "or '...' starting another); remove it"
            ) from e
        raise _yaml_error(source, e) from e
    except yaml.YAMLError as e:
        raise _yaml_error(source, e) from e
    except RecursionError as e:
        raise UnsafeConfigError(f"{source}: YAML nested too deeply; flatten it") from e
    finally:
        loader.dispose()


def _line(error: yaml.YAMLError) -> int | str:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    return mark.line + 1 if mark is not None else "?"


def _yaml_error(source: str, error: yaml.YAMLError) -> UnsafeConfigError:
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    return UnsafeConfigError(
        f"{source}: line {_line(error)}: invalid YAML: {' '.join(str(problem).split())}; "
        "fix the syntax"
    )


def dump_yaml(data: Any) -> str:
    """Block-style YAML for plain data, keys in the given order, unicode kept as is.

    Raises:
        yaml.representer.RepresenterError: `data` holds something other than dicts, lists
            and scalars.
    """
    return yaml.dump(
        data,
        Dumper=_Dumper,
        default_flow_style=False,
        sort_keys=False,
        allow_unicode=True,
        width=100,
    )
