"""Reading a config: YAML, dotted ``key=value`` overrides, types checked and coerced, one message per problem."""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from nlp_transfer.config.checks import check_values
from nlp_transfer.config.overrides import deep_update, parse_override, set_override, yaml_number_surprise
from nlp_transfer.config.schema import DATA_FILE_KEYS, RunConfig
from nlp_transfer.errors import ConfigError

YAML_FALSE = ("no", "off", "false")
YAML_TRUE = ("yes", "on", "true")


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = (), **defaults: Any) -> RunConfig:
    """Read a YAML config, apply ``key=value`` overrides and return a checked :class:`RunConfig`.

    ``defaults`` (dotted keys) sit under the file: a recipe uses them for its task's defaults.
    """
    if isinstance(overrides, str):  # load_config(path, "training.epochs=3") read each character as an override
        raise ConfigError(f"overrides={overrides!r}: give a list of key=value strings, e.g. [{overrides!r}].")
    raw: dict[str, Any] = {}
    for key, value in defaults.items():
        set_override(raw, key, value)
    if path is not None:
        deep_update(raw, _read_yaml(Path(path)))
    overridden = apply_overrides(raw, overrides)
    return config_from_dict(raw, source=str(path) if path else "config", overridden=overridden)


def apply_overrides(raw: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, str]:
    """Set each ``key=value`` of ``overrides`` in the nested config dict ``raw``, the value read as YAML.

    Returns where the keys they set came from, for messages: each dotted key an override set (the keys inside a
    mapping it gave whole, the sections it added) -> ``override KEY=VALUE`` as typed (:func:`shown_override`).
    """
    overridden: dict[str, str] = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: write overrides as key=value, e.g. training.epochs=3")
        key = key.strip()
        value = parse_override(key, text)
        parts = key.split(".")
        added = [".".join(parts[:depth]) for depth in range(1, len(parts)) if not _has_key(raw, parts[:depth])]
        set_override(raw, key, value)
        shown = shown_override(key, text, value)
        for set_key in [*added, key, *_nested_keys(value, key + ".")]:
            overridden[set_key] = shown  # a key set twice is the last override's, as its value is
    return overridden


#: a key whose value a message never repeats: a secret typed by mistake (hub.token=hf_...) must not reach logs
SECRET_NAME = re.compile(r"token|secret|password", re.IGNORECASE)


def shown_override(key: str, text: str, value: Any) -> str:
    """``override KEY=VALUE`` as a message names it; the value is hidden (``***``) when the key, or a key of the
    mapping it gives, names a token, a secret or a password."""
    if any(SECRET_NAME.search(name) for name in [key, *_nested_keys(value, "")]):
        return f"override {key}=***"
    text = text.strip()
    return f"override {key}={text if len(text) <= 80 else text[:77] + '...'}"


def _has_key(raw: dict[str, Any], parts: list[str]) -> bool:
    """Whether the nested dict ``raw`` holds the dotted key ``parts`` (each level a mapping)."""
    node: Any = raw
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _nested_keys(value: Any, prefix: str) -> list[str]:
    """The dotted keys (``prefix`` + name) inside a mapping ``value``, at every depth; none for another value."""
    if not isinstance(value, dict):
        return []
    keys = []
    for name, inner in value.items():
        keys.append(f"{prefix}{name}")
        keys.extend(_nested_keys(inner, f"{prefix}{name}."))
    return keys


def load_saved_config(path: str | Path) -> RunConfig:
    """A finished run's ``config.yaml``, for the verbs that read its data (check, export).

    Its strategy does not matter to them: a strategy added outside the package (registered by a module this process has
    not imported), or a transfer option refused since the run trained, reads the config as strategy ``full`` without
    its transfer section, where it stopped them before. A problem with the data settings is still an error.
    """
    from nlp_transfer.transfer import STRATEGIES

    raw = _read_yaml(Path(path))
    config = None
    if raw.get("strategy") in STRATEGIES:
        try:
            config = config_from_dict(raw, source=str(path))
        except ConfigError:  # e.g. a transfer option refused since the run trained; the data settings are checked below
            pass
    config = config or config_from_dict({**raw, "strategy": "full", "transfer": {}}, source=str(path))
    _check_relative_data_paths(config, path)
    return config


def _check_relative_data_paths(config: RunConfig, path: str | Path) -> None:
    """Refuse a relative training or validation path of a saved config that does not resolve from here: it starts
    from the folder the run was trained in, which the plain "no such file" did not say."""
    if config.data.format == "hub":
        return
    for key in ("train_file", "validation_file"):
        value = getattr(config.data, key)
        if value and not Path(value).is_absolute() and "," not in value and not Path(value).exists():
            raise ConfigError(
                f"{path}: data.{key}={value} is not found from {Path.cwd()}; a run's relative data paths start from the "
                "folder it was trained in. Run this command from there, or write the path absolute in that config.yaml."
            )


def config_from_dict(raw: dict[str, Any], source: str = "config", *, overridden: dict[str, str] | None = None) -> RunConfig:
    """Build a :class:`RunConfig` from nested dicts, naming the key of any problem.

    A problem is said to come from ``source`` (the file), or for a key in ``overridden`` (what :func:`apply_overrides`
    returns) from the override that set it.
    """
    config = _build(RunConfig, raw, prefix="", origins=_Origins(source, overridden or {}))
    _expand_home(config)
    check_values(config, source)
    return config


def _expand_home(config: RunConfig) -> None:
    """``~`` in the output folder and the data files means the home folder, as it does in ``model`` (it made a folder
    named ``~`` in the current one); each file of a comma-separated list is expanded."""
    config.output_dir = os.path.expanduser(config.output_dir)
    for key in DATA_FILE_KEYS:
        value = getattr(config.data, key)
        if isinstance(value, str) and "~" in value and config.data.format != "hub":
            parts = [os.path.expanduser(p.strip()) if p.strip().startswith("~") else p for p in value.split(",")]
            setattr(config.data, key, ",".join(parts))


def checked_config(config: RunConfig, source: str = "RunConfig") -> RunConfig:
    """``config`` (built in Python) checked as :func:`load_config` checks a file: types, ranges, contradictions.

    A ``Path`` where a setting takes a path string is accepted and becomes that string.
    """

    def as_text(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: as_text(v) for k, v in node.items()}
        if isinstance(node, list):
            return [as_text(v) for v in node]
        return str(node) if isinstance(node, Path) else node

    return config_from_dict(as_text(config_to_dict(config)), source)


def config_to_dict(config: Any) -> dict[str, Any]:
    """The config as plain nested dicts, ready for YAML."""
    return dataclasses.asdict(config)


def save_config(config: RunConfig, path: str | Path) -> None:
    """Write the resolved config as YAML."""
    Path(path).write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False), encoding="utf-8")


def describe_settings(cls: type = RunConfig, prefix: str = "") -> list[tuple[str, str, Any, str]]:
    """Rows of (dotted key, type, default, help) for every setting: the config reference."""
    rows = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = prefix + f.name
        if dataclasses.is_dataclass(hints[f.name]):
            rows.extend(describe_settings(hints[f.name], key + "."))
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        rows.append((key, _type_name(hints[f.name]), default, f.metadata.get("help", "")))
    return rows


class _IntWithText(int):
    """A YAML integer that remembers how it was written (``010``, ``10:30``), for a text setting to keep."""

    yaml_text = ""


class _FloatWithText(float):
    """A YAML float that remembers how it was written (``0.50``)."""

    yaml_text = ""


def _keeping_text(construct: Any, cls: type) -> Any:
    """A YAML constructor that returns ``construct``'s number as ``cls``, with the text it was read from."""

    def build(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
        number = cls(construct(loader, node))
        number.yaml_text = str(node.value)
        return number

    return build


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (the plain loader keeps the last, silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """The mapping of ``node``; a ``ConstructorError`` at the second of two equal keys (keys a YAML merge ``<<:``
        brings in may be overridden, as YAML intends)."""
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:  # an unhashable key: the base loader says what is wrong with it
                continue
            if first != key_node.start_mark.line + 1:
                problem = f"'{key}' is given twice, on lines {first} and {key_node.start_mark.line + 1}; keep one"
                raise yaml.constructor.ConstructorError(None, None, problem, key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", _keeping_text(yaml.SafeLoader.construct_yaml_int, _IntWithText))
_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:float", _keeping_text(yaml.SafeLoader.construct_yaml_float, _FloatWithText))


def _read_yaml(path: Path) -> dict[str, Any]:
    if path.is_dir():
        raise ConfigError(f"{path}: a folder, not a config file. Give the path of a YAML file (recipes/configs/ holds examples).")
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found. Check the path (recipes/configs/ holds examples).")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # a SafeLoader: no Python objects
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text. Save the config as UTF-8.") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"{where}: invalid YAML ({problem}). Fix the syntax at that line.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config is a mapping of keys to values, not a {type(data).__name__}.")
    return data


#: the config's section names (data, training, ...): never suggested for a misspelt setting
_SECTIONS = {name for name, hint in typing.get_type_hints(RunConfig).items() if dataclasses.is_dataclass(hint)}


def _all_keys(cls: type, prefix: str = "") -> list[str]:
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        keys.append(prefix + f.name)
        if dataclasses.is_dataclass(hints[f.name]):
            keys.extend(_all_keys(hints[f.name], prefix + f.name + "."))
    return keys


#: names users bring from other tools -> this config's setting
KEY_ALIASES = {
    "lr": "learning_rate", "num_epochs": "epochs", "num_train_epochs": "epochs", "bs": "batch_size",
    "per_device_train_batch_size": "batch_size", "model_name_or_path": "model",
}  # fmt: skip


def _unknown_key(key: str, source: str) -> ConfigError:
    """An unknown key, with the setting it most likely means: the same name in another section, an alias, or a close
    spelling among the settings (never a section name) of the section it names."""
    leaf = key.rsplit(".", 1)[-1]
    secret = leaf.lower() == "token" or leaf.lower().endswith("_token")  # hub.token, hf_token, use_auth_token
    if secret:  # a secret never goes in a config: where it does go (data.token_col is a spelling of data.token_column)
        return ConfigError(
            f"{source}: unknown config key '{key}'. A Hub token is never a config setting (configs are saved with runs): "
            "set the HF_TOKEN environment variable, or run hf auth login."
        )
    if "." not in key and key.lower() in _SECTIONS:  # Data: for data:
        return ConfigError(f"{source}: unknown config key '{key}'. Did you mean '{key.lower()}'? Keys are lower case.")
    settings = [k for k in _all_keys(RunConfig) if k.rsplit(".", 1)[-1] not in _SECTIONS]
    section = key.rsplit(".", 1)[0] + "." if "." in key else ""
    same_leaf = [k for k in settings if k.rsplit(".", 1)[-1] in (leaf, KEY_ALIASES.get(leaf.lower()))]
    in_section = [k for k in settings if k.startswith(section) and "." not in k[len(section) :]]
    leaves = {k[len(section) :]: k for k in in_section}
    close = [leaves[name] for name in difflib.get_close_matches(leaf.lower(), list(leaves), n=1, cutoff=0.6)]
    guess = (sorted(same_leaf, key=lambda k: not k.startswith(section)) or close)[:1]
    hint = f" Did you mean '{guess[0]}'?" if guess else " Run 'nlp-transfer config' to list the valid keys."
    return ConfigError(f"{source}: unknown config key '{key}'.{hint}")


@dataclasses.dataclass(frozen=True)
class _Origins:
    """Where the keys of a raw config came from: the file ``source``, or an override (dotted key -> how it is named)."""

    source: str
    overridden: dict[str, str]

    def of(self, key: str) -> str:
        """What a message about ``key`` names as its origin."""
        return self.overridden.get(key, self.source)


def _build(cls: type, raw: Any, prefix: str, origins: _Origins) -> Any:
    """The dataclass ``cls`` from the mapping ``raw`` (its keys under ``prefix``); a ConfigError naming a key's origin."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{origins.of(prefix.rstrip('.'))}: '{prefix.rstrip('.')}' must be a mapping of keys, got {raw!r}.")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in names:
            raise _unknown_key(prefix + str(key), origins.of(prefix + str(key)))
    values = {}
    for name in raw:
        hint = hints[name]
        key = prefix + name
        if dataclasses.is_dataclass(hint):  # an empty section (`training:`) is its defaults; `training: false` is refused
            values[name] = _build(hint, {} if raw[name] is None else raw[name], key + ".", origins)
        else:  # a mapping given whole is taken as given (hub_splits without validation: validation is carved)
            values[name] = _coerce(raw[name], hint, key, origins.of(key))
    return cls(**values)


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(hint))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "null"
    if origin is not None:
        return str(hint).replace("typing.", "")
    return getattr(hint, "__name__", str(hint))


def _coerce(value: Any, hint: Any, key: str, source: str) -> Any:
    """Check ``value`` against ``hint``; ints are accepted for floats. Raise naming the key."""
    _refuse_surprising_number(value, hint, key, source)
    ok, result = _match(value, hint)
    if ok:
        return result
    choices = typing.get_args(hint) if typing.get_origin(hint) is Literal else None
    if choices is None and typing.get_origin(hint) in (Union, types.UnionType):
        literal_args = [a for a in typing.get_args(hint) if typing.get_origin(a) is Literal]
        if literal_args:
            choices = typing.get_args(literal_args[0])
    if choices and isinstance(value, str):
        same_but_case = [str(c) for c in choices if str(c).lower() == value.lower()]  # LoRA, NER, BF16
        close = same_but_case or difflib.get_close_matches(value, [str(c) for c in choices], n=1)
        hint_text = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"{source}: {key}={value!r} is not one of {', '.join(map(repr, choices))}.{hint_text}")
    items = value if isinstance(value, list) else list(value) if isinstance(value, dict) else [value]
    if "str" in _type_name(hint) and any(isinstance(v, bool) for v in items):  # labels: [yes, no]
        raise ConfigError(
            f"{source}: {key} must be {_type_name(hint)}, got {value!r}: YAML reads yes/no/on/off/true/false unquoted as "
            "true or false. Quote them ('yes')."
        )
    fix = (
        f"Write it as a list, {key}=[{value}]"
        if isinstance(value, str) and "list" in _type_name(hint)
        else f"Fix the value of {key}"
    )
    raise ConfigError(f"{source}: {key} must be {_type_name(hint)}, got {value!r} ({_plain_type(value)}). {fix}.")


def _plain_type(value: Any) -> str:
    """The name of ``value``'s type as a user knows it: the YAML reader's number types are int and float."""
    return next((base.__name__ for base in (bool, int, float) if isinstance(value, base)), type(value).__name__)


def _refuse_surprising_number(value: Any, hint: Any, key: str, source: str) -> None:
    """Refuse a number YAML 1.1 reads otherwise than it looks (:func:`yaml_number_surprise`), for a number setting; a
    text setting keeps what was typed instead."""
    text = getattr(value, "yaml_text", "")
    surprise = yaml_number_surprise(text) if text and "str" not in _type_name(hint) else None
    if surprise:
        raise ConfigError(f"{source}: {key}: {text} ({value}) is {surprise}.")


def _match(value: Any, hint: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(hint)
    if hint is Any:
        return True, value
    if hint is type(None):
        return value is None, None
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(hint):
            ok, result = _match(value, arg)
            if ok:
                return True, result
        return False, None
    if origin is Literal:
        choices = typing.get_args(hint)
        if isinstance(value, bool):  # YAML 1.1 reads no/off as False and yes/on as True
            spelled = [c for c in choices if isinstance(c, str) and c.lower() in (YAML_FALSE if not value else YAML_TRUE)]
            return bool(spelled), spelled[0] if spelled else None
        return value in choices, value
    if origin is list:
        if not isinstance(value, list):
            return False, None
        (item_hint,) = typing.get_args(hint)
        items = [_match(v, item_hint) for v in value]
        return all(ok for ok, _ in items), [r for _, r in items]
    if origin is dict:
        if not isinstance(value, dict) or any(isinstance(k, bool) for k in value):  # {yes: ...}: YAML's true
            return False, None
        _, value_hint = typing.get_args(hint)
        items = {k: _match(v, value_hint) for k, v in value.items()}
        return all(ok for ok, _ in items.values()), {getattr(k, "yaml_text", str(k)): r for k, (_, r) in items.items()}
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):  # quoted ("3"), as floats may be
            return True, int(value)
        ok = isinstance(value, int) and not isinstance(value, bool)
        return ok, int(value) if ok else None
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads "2e-5" (no dot) as text
            try:
                return True, float(value)
            except ValueError:
                return False, None
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else None
    if hint is str:
        # YAML reads `label` as str but `1e-5` or `yes` as other types: a str field keeps its text.
        if isinstance(value, str):
            return True, value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, getattr(value, "yaml_text", str(value))  # `label_column: 010` stays "010"
        return False, None
    return isinstance(value, hint), value
