"""Training configs: dataclasses loaded from YAML, with CLI overrides, validated before any work.

Every problem is collected — unknown keys, wrong types, impossible values,
missing paths — and reported together in one :class:`ConfigError`, so a run
never dies an hour in on a typo.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """An invalid training config; ``problems`` lists everything that is wrong."""

    def __init__(self, source: str, problems: list[str]):
        self.problems = problems
        super().__init__(f"invalid config {source}:\n" + "\n".join(f"  - {p}" for p in problems))


def _coerce(name: str, kind, value, problems: list[str]):
    """Check ``value`` against a field's type hint, converting ints to floats where a float is expected (and
    numbers YAML 1.1 reads as strings, such as ``3e-5``: it wants ``3.0e-5``)."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            trial: list[str] = []
            result = _coerce(name, option, value, trial)
            if not trial:
                return result
        problems.append(f"{name}: expected {kind}, got {value!r}")
        return value
    if origin in (list, tuple):
        (item,) = typing.get_args(kind)[:1] or (Any,)
        if not isinstance(value, (list, tuple)):
            problems.append(f"{name}: expected a list, got {value!r}")
            return value
        return [_coerce(f"{name}[{i}]", item, v, problems) for i, v in enumerate(value)]
    if kind is Any:
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    if kind is bool and not isinstance(value, bool):
        problems.append(f"{name}: expected true/false, got {value!r}")
        return value
    if kind in (int, float, str) and (not isinstance(value, kind) or isinstance(value, bool)):
        problems.append(f"{name}: expected {kind.__name__}, got {value!r}")
    return value


def _parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ConfigError("overrides", [f"override {text!r} is not key=value"])
    key, raw = text.split("=", 1)
    return key.strip(), yaml.safe_load(raw)


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Build ``cls`` from a YAML file plus ``key=value`` overrides; validate all of it.

    ``cls`` may define ``problems(self) -> list[str]`` for value checks (ranges,
    paths); they run after the type checks.
    """
    source = str(path) if path else "(defaults)"
    data: dict = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(source, [f"config file not found: {path}"]) from None
        except yaml.YAMLError as exc:
            raise ConfigError(source, [f"not valid YAML: {exc}"]) from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(source, ["the top level must be a mapping of field: value"])
        data = dict(loaded or {})
    for override in overrides or []:
        key, value = _parse_override(override)
        data[key] = value

    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    problems = [f"unknown key {k!r} (known: {', '.join(fields)})" for k in data if k not in fields]
    values = {}
    for name, field in fields.items():
        if name in data:
            values[name] = _coerce(name, hints[name], data[name], problems)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            problems.append(f"{name}: required")
    if problems:
        raise ConfigError(source, problems)
    config = cls(**values)
    check = getattr(config, "problems", None)
    if check is not None and (value_problems := check()):
        raise ConfigError(source, value_problems)
    return config


def save_config(config, path: Path) -> None:
    path.write_text(yaml.safe_dump(dataclasses.asdict(config), sort_keys=False), encoding="utf-8")


def positive(config, *names: str) -> list[str]:
    """Problems for fields that must be > 0."""
    return [f"{n}: must be > 0, got {getattr(config, n)}" for n in names if not getattr(config, n) > 0]
