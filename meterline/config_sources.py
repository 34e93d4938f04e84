"""Where settings come from, and one clear line when they are wrong.

`Settings` reads `METERLINE_*` environment variables and an optional YAML file. A mistake
in either must reach the user as one line naming the variable or the file, line and key
(never a pydantic traceback), so every failure here is a `ConfigError` whose message is
that line:

- the YAML file named by `METERLINE_CONFIG` is missing, is not YAML (file:line:column), is
  not a mapping, or has an unknown key (named, with the closest valid key);
- an environment variable holds a value its field cannot take (each setting's variable is
  `METERLINE_<FIELD>` at the top level, `METERLINE_<SECTION>_<FIELD>` in a section, SECTION
  the innermost section's name; a `METERLINE_*` variable naming no setting is logged once,
  with the closest valid name): list-valued variables take
  a JSON list or a plain comma-separated value (`127.0.0.1/32,10.0.0.0/8`), maps of plain
  values a JSON object or `name=value,name=value`, anything else JSON;
- a value fails validation (`describe_settings_error` says which variable or key, and
  what is expected).
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, SecretStr, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, InitSettingsSource, PydanticBaseSettingsSource

__all__ = [
    "ConfigError",
    "EnvSource",
    "Section",
    "YamlFileSource",
    "decode_env_value",
    "describe_settings_error",
    "env_leaves",
    "flat_names",
    "load_yaml_mapping",
    "settings_env",
    "unknown_env_warnings",
    "warn_unknown_env",
]

ENV_PREFIX = "METERLINE_"
_MAX_SHOWN = 60  # characters of a bad value repeated back
_MAX_ERRORS = 3  # per line: the first few say enough
_log = logging.getLogger("meterline.settings")


class ConfigError(Exception):
    """A configuration mistake; `str()` is the one line to show the user.

    Not a ValueError on purpose: pydantic and pydantic-settings would wrap one.
    """


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


class Section(BaseModel):
    """A group of settings: its fields are set one variable each (`env_leaves`), and a
    key it does not have is an error. A value model that is not a Section (a provider, a
    price) is one setting, written as JSON."""

    model_config = ConfigDict(extra="forbid")


def _section_model(field: FieldInfo) -> type[Section] | None:
    """The section a field opens, if it is typed as one."""
    annotation = field.annotation
    if isinstance(annotation, type) and issubclass(annotation, Section):
        return annotation
    return None


def env_leaves(settings_cls: type[BaseModel]) -> dict[str, tuple[tuple[str, ...], FieldInfo]]:
    """Every setting's variable -> (its path, its field).

    A top-level field is `METERLINE_<FIELD>`; a field inside a section is
    `METERLINE_<SECTION>_<FIELD>`, SECTION the innermost section's own name
    (`processors.llmjacking.window_s` -> `METERLINE_LLMJACKING_WINDOW_S`).
    """
    out: dict[str, tuple[tuple[str, ...], FieldInfo]] = {}

    def walk(model: type[BaseModel], path: tuple[str, ...]) -> None:
        for name, field in model.model_fields.items():
            section = _section_model(field)
            if section is not None:
                walk(section, (*path, name))
                continue
            stem = f"{path[-1]}_{name}" if path else name
            variable = f"{ENV_PREFIX}{stem.upper()}"
            if variable in out:
                raise TypeError(f"{variable} would name both {out[variable][0]} and {path}")
            out[variable] = ((*path, name), field)

    walk(settings_cls, ())
    return out


def _is_complex(annotation: Any) -> bool:
    """A value only JSON can express: a list, map or model (possibly optional)."""
    annotation = _unwrap(annotation)
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, set, frozenset, dict, Sequence, Mapping):
        return True
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def decode_env_value(variable: str, field: FieldInfo, value: str) -> Any:
    """A variable's text -> the value handed to validation (lists and maps also take the
    plain comma-separated form)."""
    text = value.strip()
    shape = _shape(field)
    if shape == "list" and not text.startswith("["):
        return _split(text)
    if shape == "map" and not text.startswith("{"):
        return _map(variable, text)
    if shape is None and not _is_complex(field.annotation):
        return value
    try:
        return json.loads(text)
    except ValueError as exc:
        expected = {"list": "a JSON list or comma-separated values", "map": "a JSON object"}
        raise ConfigError(
            f"{variable}: expected {expected.get(shape or '', 'JSON')} "
            f"({exc.args[0] if exc.args else exc})"
        ) from None


def _map(variable: str, text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in _split(text):
        name, sep, val = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(
                f"{variable}: expected name=value pairs separated by commas "
                f"or a JSON object, got {_shown(item)}"
            )
        out[name.strip()] = val.strip()
    return out


class EnvSource(PydanticBaseSettingsSource):
    """`METERLINE_*` variables, each named after its setting (`env_leaves`), as the nested
    mapping of the settings they set. Variable names are matched case-insensitively."""

    def __init__(
        self, settings_cls: type[BaseSettings], environ: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(settings_cls)
        self.environ = os.environ if environ is None else environ

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads every variable at once

    def __call__(self) -> dict[str, Any]:
        given = {name.upper(): value for name, value in self.environ.items()}
        out: dict[str, Any] = {}
        for variable, (path, field) in env_leaves(self.settings_cls).items():
            if variable not in given:
                continue
            holder = out
            for part in path[:-1]:
                holder = holder.setdefault(part, {})
            holder[path[-1]] = decode_env_value(variable, field, given[variable])
        return out


def settings_env(settings: BaseModel) -> dict[str, str]:
    """The variables that reproduce `settings` (secrets unmasked; unset optional values
    left out), for a child process."""
    env: dict[str, str] = {}
    for variable, (path, _field) in env_leaves(type(settings)).items():
        value: Any = settings
        for part in path:
            value = getattr(value, part)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            env[variable] = value.get_secret_value()
        elif isinstance(value, (str, int, float, bool)):
            env[variable] = str(value)
        else:
            dumped = TypeAdapter(Any).dump_python(value, mode="json")
            env[variable] = dumped if isinstance(dumped, str) else json.dumps(dumped)
    return env


_warned: set[str] = set()


def unknown_env_warnings(
    settings_cls: type[BaseModel],
    environ: Mapping[str, str],
    ignored: Iterable[str] = (),
    former_names: Mapping[str, str] | None = None,
) -> list[str]:
    """One line per `METERLINE_*` variable that names no setting, with the closest one."""
    leaves = env_leaves(settings_cls)
    by_path = {".".join(path): variable for variable, (path, _f) in leaves.items()}
    skip = {name.upper() for name in ignored}
    lines = []
    for name in sorted(environ):
        variable = name.upper()
        if not variable.startswith(ENV_PREFIX) or variable in leaves or variable in skip:
            continue
        former = (former_names or {}).get(variable[len(ENV_PREFIX) :].lower())
        close = [by_path[former]] if former in by_path else []
        close = close or difflib.get_close_matches(variable, list(leaves), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        lines.append(f"{name} names no Meterline setting and is ignored{hint}")
    return lines


def warn_unknown_env(
    settings_cls: type[BaseModel],
    environ: Mapping[str, str],
    ignored: Iterable[str] = (),
    former_names: Mapping[str, str] | None = None,
) -> None:
    """Log each unknown-variable line once per process (settings are built often)."""
    for line in unknown_env_warnings(settings_cls, environ, ignored, former_names):
        if line not in _warned:
            _warned.add(line)
            _log.warning("%s", line)


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


def flat_names(
    settings_cls: type[BaseModel], former_names: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Pre-section flat keys (`llmjacking_default_mode`) -> where they now live
    (`processors.llmjacking.default_mode`)."""
    out = dict(former_names or {})
    for variable, (path, _field) in env_leaves(settings_cls).items():
        if len(path) > 1:
            out.setdefault(variable[len(ENV_PREFIX) :].lower(), ".".join(path))
    return out


class YamlFileSource(InitSettingsSource):
    """The YAML file's values, refusing any top-level key `Settings` does not have
    (sections refuse theirs with `extra="forbid"`); a pre-section flat key is told where
    it now lives."""

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        path: Path,
        former_names: Mapping[str, str] | None = None,
    ) -> None:
        data = load_yaml_mapping(path)
        known = _known_keys(settings_cls)
        lowered = {k.lower() for k in known}
        moved = flat_names(settings_cls, former_names)
        for key in data:
            if isinstance(key, str) and key.lower() in moved and key.lower() not in lowered:
                raise ConfigError(
                    f"{path}: unknown key '{key}': settings are grouped now, "
                    f"it is {moved[key.lower()]}"
                )
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
    by_path = {
        path: (variable, field) for variable, (path, field) in env_leaves(settings_cls).items()
    }
    lines = []
    # An unknown key first: it usually explains the "missing" error beside it.
    errors = sorted(exc.errors(include_url=False), key=lambda e: e.get("type") != "extra_forbidden")
    for error in errors[:_MAX_ERRORS]:
        loc = tuple(error.get("loc", ()))
        # The setting (leaf) the error is in, and the variable that sets it.
        leaf = next(
            (loc[:n] for n in range(len(loc), 0, -1) if tuple(map(str, loc[:n])) in by_path),
            (),
        )
        variable, field = by_path.get(tuple(map(str, leaf)), ("", None))
        secret = field is not None and _unwrap(field.annotation) is SecretStr
        if variable and variable in env:
            where = variable + _location(loc)[len(_location(leaf)) :]
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
