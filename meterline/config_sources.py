"""Where settings come from, and one clear line when they are wrong.

`Settings` reads `METERLINE_*` environment variables and an optional YAML file. A mistake
in either must reach the user as one line naming the variable or the file, line and key
(never a pydantic traceback), so every failure here is a `ConfigError` whose message is
that line:

- the YAML file named by `METERLINE_CONFIG` is missing, is not YAML (file:line:column), is
  not a mapping, or has an unknown key (named, with the closest valid key);
- an environment variable holds a value its field cannot take: list-valued variables take
  a JSON list or a plain comma-separated value (`127.0.0.1/32,10.0.0.0/8`), maps of plain
  values a JSON object or `name=value,name=value`, anything else JSON;
- a value fails validation (`describe_settings_error` says which variable or key, and
  what is expected).
"""

from __future__ import annotations

import difflib
import json
import os
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, InitSettingsSource

__all__ = [
    "ConfigError",
    "EnvSource",
    "YamlFileSource",
    "describe_settings_error",
    "env_name",
    "load_yaml_mapping",
]

ENV_PREFIX = "METERLINE_"
_MAX_SHOWN = 60  # characters of a bad value repeated back
_MAX_ERRORS = 3  # per line: the first few say enough


class ConfigError(Exception):
    """A configuration mistake; `str()` is the one line to show the user.

    Not a ValueError on purpose: pydantic and pydantic-settings would wrap one.
    """


def env_name(field_name: str) -> str:
    return f"{ENV_PREFIX}{field_name.upper()}"


# --- environment ---------------------------------------------------------------------


def _unwrap(annotation: Any) -> Any:
    """`X | None` and `Annotated[X, ...]` -> X."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _is_plain(annotation: Any) -> bool:
    """A value written as text without JSON: str, a Literal of strings, a number."""
    annotation = _unwrap(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return True
    return annotation in (str, int, float)


def _shape(field: FieldInfo) -> str | None:
    """'list' or 'map' for a field a plain text form can express, else None (JSON only)."""
    annotation = _unwrap(field.annotation)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (list, tuple, set, frozenset, Sequence) and args and _is_plain(args[0]):
        return "list"
    if origin in (dict, Mapping) and len(args) == 2 and _is_plain(args[1]):
        return "map"
    return None


def _split(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


class EnvSource(EnvSettingsSource):
    """pydantic-settings' environment source, plus plain comma-separated lists and maps."""

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        text = value.strip()
        shape = _shape(field)
        if shape == "list" and not text.startswith("["):
            return _split(text)
        if shape == "map" and not text.startswith("{"):
            return self._map(field_name, text)
        try:
            return json.loads(text)
        except ValueError as exc:
            expected = {"list": "a JSON list or comma-separated values", "map": "a JSON object"}
            raise ConfigError(
                f"{env_name(field_name)}: expected {expected.get(shape or '', 'JSON')} "
                f"({exc.args[0] if exc.args else exc})"
            ) from None

    @staticmethod
    def _map(field_name: str, text: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in _split(text):
            name, sep, val = item.partition("=")
            if not sep or not name.strip():
                raise ConfigError(
                    f"{env_name(field_name)}: expected name=value pairs separated by commas "
                    f"or a JSON object, got {_shown(item)}"
                )
            out[name.strip()] = val.strip()
        return out


# --- the YAML file ---------------------------------------------------------------------


def load_yaml_mapping(path: Path) -> dict[str, Any]:
    """The file's top-level mapping (empty file: {}); ConfigError names file:line:column."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the configuration file ({exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(_yaml_problem(path, exc)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got a {type(data).__name__}")
    return data


def _yaml_problem(path: Path, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"{where}: malformed YAML: {problem}"


def _known_keys(model: type[BaseModel]) -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        keys.append(name)
        if isinstance(field.alias, str):
            keys.append(field.alias)
    return keys


def _unknown_key(where: str, key: str, known: list[str]) -> ConfigError:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return ConfigError(f"{where}: unknown key '{key}'{hint}")


class YamlFileSource(InitSettingsSource):
    """The YAML file's values, refusing any top-level key `Settings` does not have
    (nested models refuse theirs with `extra="forbid"`)."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        data = load_yaml_mapping(path)
        known = _known_keys(settings_cls)
        lowered = {k.lower() for k in known}
        for key in data:
            if not isinstance(key, str) or key.lower() not in lowered:
                raise _unknown_key(str(path), str(key), known)
        self.path = path
        super().__init__(settings_cls, data)


# --- validation errors -----------------------------------------------------------------


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _expected(error: Mapping[str, Any]) -> str:
    message = str(error.get("msg", "invalid value"))
    for prefix, replacement in (("Input should be ", "expected "), ("Value error, ", "")):
        if message.startswith(prefix):
            return replacement + message[len(prefix) :]
    return message


def _model_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model holding the last key of `loc` (for 'did you mean'), if one can be found."""
    current: Any = model
    skip = False  # the next part is a list index or a dict key, not a field
    for part in loc[:-1]:
        if skip:
            skip = False
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        annotation = _unwrap(field.annotation)
        args = typing.get_args(annotation)
        skip = bool(args)
        current = _unwrap(args[-1]) if args else annotation
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def describe_settings_error(
    exc: ValidationError,
    settings_cls: type[BaseSettings],
    yaml_path: Path | None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """One line: which variable or key is wrong and what it expects."""
    environ = os.environ if environ is None else environ
    env = {name.upper() for name in environ}
    lines = []
    # An unknown key first: it usually explains the "missing" error beside it.
    errors = sorted(exc.errors(include_url=False), key=lambda e: e.get("type") != "extra_forbidden")
    for error in errors[:_MAX_ERRORS]:
        loc = tuple(error.get("loc", ()))
        field_name = str(loc[0]) if loc else ""
        field = settings_cls.model_fields.get(field_name)
        secret = field is not None and _unwrap(field.annotation) is SecretStr
        if env_name(field_name) in env:
            where = env_name(field_name) + _location(loc)[len(field_name) :]
        elif yaml_path is not None:
            where = f"{yaml_path}: {_location(loc)}"
        else:
            where = _location(loc) or "settings"
        if error.get("type") == "extra_forbidden":
            holder = _model_at(settings_cls, loc)
            known = _known_keys(holder) if holder is not None else []
            head = where.rsplit(_location(loc[-1:]), 1)[0].rstrip(".: ") or where
            lines.append(str(_unknown_key(head, str(loc[-1]), known)))
            continue
        if error.get("type") == "missing":
            lines.append(f"{where}: required, but not given")
            continue
        # A value error's own message already names the value; a secret is never repeated.
        quiet = secret or "input" not in error or error.get("type") == "value_error"
        got = "" if quiet else f", got {_shown(error['input'])}"
        lines.append(f"{where}: {_expected(error)}{got}")
    more = len(errors) - _MAX_ERRORS
    return "; ".join(lines) + (f" (and {more} more)" if more > 0 else "")
