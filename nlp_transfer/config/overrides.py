"""``key=value`` overrides: each value read as its setting's type asks, and placed where the setting lives.

A section (``training``) takes its keys, not a value: ``training.epochs=2``, or ``training={epochs: 2}`` to change
several at once. A text setting keeps the text as typed (``data.label_column=010`` stays ``010``, and a ``#`` is part of
it, not a YAML comment); quote a value to have YAML read it (``output_dir="runs/a b"``). A mapping setting
(``data.hub_splits``) keeps its defaults for the keys a dotted override does not name
(``data.hub_splits.test=validation``), loses a key set to null (``data.hub_splits.validation=null``), and is taken as
given when the override names it whole (``data.hub_splits={train: train, test: validation}``).
"""

from __future__ import annotations

import copy
import dataclasses
import re
import types
import typing
from typing import Any, Union

import yaml

from nlp_transfer.config.schema import RunConfig
from nlp_transfer.errors import ConfigError

#: what YAML reads as null
NULL_SPELLINGS = ("", "~", "null", "Null", "NULL")


def field_of(key: str) -> tuple[Any, Any] | None:
    """``(type hint, default)`` of the setting or section a dotted ``key`` names; None for an unknown key."""
    cls: Any = RunConfig
    hint: Any = None
    default: Any = None
    for part in key.split("."):
        if not dataclasses.is_dataclass(cls):
            return None
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if part not in fields:
            return None
        hint = typing.get_type_hints(cls)[part]
        field = fields[part]
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()  # type: ignore[misc]
        cls = hint
    return hint, default


def _without_none(hint: Any) -> Any:
    """``X`` of ``X | None`` (the hint itself otherwise)."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0] if len(args) == 1 else hint
    return hint


def _a_choice(found: tuple[Any, Any] | None, text: str) -> bool:
    """Whether ``text`` is one of the choices of the setting ``found`` (``training.class_weights`` has ``none``)."""
    if found is None:
        return False
    hint = _without_none(found[0])
    return typing.get_origin(hint) is typing.Literal and text in typing.get_args(hint)


#: text settings for which a tab or a space typed alone is the value (the delimiter); elsewhere blank means null
WHITESPACE_SETTINGS = ("data.delimiter", "data.label_separator")


def parse_override(key: str, text: str) -> Any:
    """The value of ``key=text``: YAML, except that a text setting keeps unquoted text as typed."""
    stripped = text.strip()
    found = field_of(key)
    if text and not stripped and key in WHITESPACE_SETTINGS:
        return text  # data.delimiter=<tab> or a space: the text itself, not an empty value read as null
    try:
        value = yaml.safe_load(stripped) if stripped else None
    except yaml.YAMLError:
        value = text
    if stripped in ("None", "none") and not _a_choice(found, stripped):  # Python's spelling of null
        value = None
    elif value is None and stripped not in NULL_SPELLINGS:  # "#" alone: YAML read a comment
        value = stripped
    if found is None or value is None or stripped[:1] in ("'", '"'):
        return value
    hint = _without_none(found[0])
    if hint is str:
        return stripped
    surprise = yaml_number_surprise(stripped) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if surprise:
        raise ConfigError(f"override {key}={stripped}: {stripped} ({value}) is {surprise}.")
    if typing.get_origin(hint) is list and typing.get_args(hint) == (str,) and isinstance(value, list):
        return yaml.load(stripped, Loader=yaml.BaseLoader)  # every item as typed: [07, 08] stays ["07", "08"]
    return value


def yaml_number_surprise(text: str) -> str | None:
    """What YAML 1.1 makes of a number written ``text`` when it is not what it looks like (``010`` is octal 8, ``1:30``
    base 60, i.e. 90): "<what it is>; <the fix>", or None for a plain number."""
    digits = text.replace("_", "")
    if re.fullmatch(r"[+-]?0\d+", digits):
        return f"an octal number in YAML; write {int(digits)} for the decimal number"
    if ":" in digits:
        return "a base-60 number in YAML; write the number itself"
    return None


def set_override(raw: dict[str, Any], key: str, value: Any) -> None:
    """Put ``value`` at dotted ``key`` of the raw config ``raw`` (before types are checked)."""
    parts = key.split(".")
    node = raw
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if not isinstance(child, dict):
            found = field_of(".".join(parts[: depth + 1]))
            mapping = found is not None and not dataclasses.is_dataclass(found[0]) and isinstance(found[1], dict)
            child = copy.deepcopy(found[1]) if mapping else {}  # a mapping setting keeps its other defaults
            node[part] = child
        node = child
    found = field_of(key)
    parent = field_of(".".join(parts[:-1])) if len(parts) > 1 else None
    if value is None and parent is not None and isinstance(parent[1], dict) and not dataclasses.is_dataclass(parent[0]):
        node.pop(parts[-1], None)  # `data.hub_splits.validation=null`: the mapping loses that key
        return
    if found is not None and dataclasses.is_dataclass(found[0]):
        if not isinstance(value, dict):
            raise ConfigError(
                f"override {key}={value!r}: '{key}' is a section; set its keys ({key}.KEY=VALUE), or several at once "
                f"with {key}={{KEY: VALUE, ...}}."
            )
        if not isinstance(node.get(parts[-1]), dict):
            node[parts[-1]] = {}
        deep_update(node[parts[-1]], value)  # `training={epochs: 2}` changes epochs alone
        return
    node[parts[-1]] = value


def deep_update(base: dict[str, Any], new: dict[str, Any]) -> None:
    """Merge ``new`` into ``base``, nested mappings key by key."""
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value
