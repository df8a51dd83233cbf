"""Settings declared once, as dataclasses, and checked against that declaration.

A dataclass says which settings exist (its fields), what each takes (the field's type
annotation) and its default; ``__post_init__`` adds the checks a type cannot express
(a range, a relation between two fields). :func:`build` turns a mapping from a config or
budget into such a dataclass, naming the first setting that does not fit: an unknown
name (with the accepted ones), a value of the wrong type, or what ``__post_init__``
refuses. The run config, the budgets, every generator family's knobs and the harness
options are declared this way, so a check can never fall behind the code it guards.

Supported annotations: ``int``, ``float`` (an int is taken as a float), ``bool``, ``str``,
``Any``, ``Literal[...]``, ``X | None``, unions, ``tuple[X, ...]`` (a YAML list),
``list[X]``, ``Mapping[str, X]`` / ``dict[str, X]`` and nested dataclasses.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import os
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypeVar, Union

from synthlens.errors import SettingError, join_key

T = TypeVar("T")

#: Field metadata that keeps a field out of the settings a mapping may name.
INTERNAL = {"internal": True}


@functools.cache
def hints(cls: type) -> dict[str, Any]:
    """The resolved type annotations of a dataclass (cached: resolving is slow)."""
    return typing.get_type_hints(cls)


def setting_fields(cls: type) -> tuple[dataclasses.Field[Any], ...]:
    """The fields of ``cls`` a mapping may set (``init`` fields not marked internal)."""
    return tuple(f for f in dataclasses.fields(cls)
                 if f.init and not f.metadata.get("internal", False))


def names(cls: type) -> tuple[str, ...]:
    """The setting names ``cls`` declares, in declaration order."""
    return tuple(f.name for f in setting_fields(cls))


def defaults(cls: type) -> dict[str, Any]:
    """Each setting's default (fields without one are left out)."""
    out = {}
    for f in setting_fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def check_names(given: Iterable[str], accepted: Iterable[str], what: str,
                key: str = "") -> None:
    """Refuse the first name of ``given`` that is not in ``accepted``."""
    accepted = tuple(accepted)
    for name in given:
        if name not in accepted:
            raise SettingError(join_key(key, str(name)), f"unknown {what}", sorted(accepted))


def build(cls: type[T], values: Mapping[str, Any] | None, key: str = "", *,
          what: str = "setting", extra: Mapping[str, Any] | None = None) -> T:
    """``cls(**values)`` with every name and value checked against the declaration.

    ``key`` is where ``values`` sit (for the messages); ``what`` names a setting in the
    unknown-name message (``"parameter of dcgan"``); ``extra`` passes fields that are
    already built (not checked here, e.g. internal ones).
    """
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise SettingError(key, f"expected a mapping of settings, got {values!r}")
    check_names(values, names(cls), what, key)
    kwargs: dict[str, Any] = dict(extra or {})
    types_ = hints(cls)
    for f in setting_fields(cls):
        if f.name in values:
            kwargs[f.name] = coerce(types_[f.name], values[f.name], join_key(key, f.name))
        elif (f.name not in kwargs and f.default is dataclasses.MISSING
              and f.default_factory is dataclasses.MISSING):
            raise SettingError(join_key(key, f.name), "missing: this setting is required")
    try:
        return cls(**kwargs)
    except SettingError as error:
        raise error.within(key) from None


def update(instance: T, values: Mapping[str, Any], key: str = "", *,
           what: str = "setting") -> T:
    """A copy of the dataclass ``instance`` with ``values`` checked and applied."""
    assert dataclasses.is_dataclass(instance) and not isinstance(instance, type)
    current = {f.name: getattr(instance, f.name) for f in setting_fields(type(instance))}
    check_names(values, current, what, key)
    types_ = hints(type(instance))
    changed = {name: coerce(types_[name], value, join_key(key, name))
               for name, value in values.items()}
    try:
        return type(instance)(**{**current, **changed})
    except SettingError as error:
        raise error.within(key) from None


def coerce(hint: Any, value: Any, key: str) -> Any:
    """``value`` checked against the annotation ``hint`` (lists become tuples where a
    tuple is declared, ints become floats where a float is)."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None:
            if type(None) in options:
                return None
            raise SettingError(key, f"must be set: expected {describe(hint)}")
        for option in options:
            if option is type(None):
                continue
            try:
                return coerce(option, value, key)
            except SettingError:
                continue
        raise SettingError(key, f"expected {describe(hint)}, got {value!r}")
    if origin is Literal:
        choices = typing.get_args(hint)
        if any(value == c and type(value) is type(c) for c in choices):
            return value
        raise SettingError(key, f"{value!r} is not a choice", [repr(c) for c in choices])
    if dataclasses.is_dataclass(hint):
        return build(hint, value, key)  # type: ignore[arg-type]
    if origin in (tuple, list):
        args = typing.get_args(hint)
        if not isinstance(value, list | tuple):
            raise SettingError(key, f"expected {describe(hint)}, got {value!r}")
        item = args[0] if args else Any
        if origin is tuple and args and (len(args) != 2 or args[1] is not Ellipsis):
            raise TypeError(f"{key}: only tuple[X, ...] annotations are supported")
        items = [coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, collections.abc.Mapping) or hint in (dict, Mapping):
        args = typing.get_args(hint)
        item = args[1] if len(args) == 2 else Any
        if not isinstance(value, Mapping):
            raise SettingError(key, f"expected {describe(hint)}, got {value!r}")
        out = {}
        for name, v in value.items():
            if not isinstance(name, str):
                raise SettingError(key, f"keys must be names, got {name!r}")
            out[name] = coerce(item, v, join_key(key, name))
        return out
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, os.PathLike):  # a path is a string setting
            return os.fspath(value)
    else:
        raise TypeError(f"{key}: unsupported annotation {hint!r}")
    raise SettingError(key, f"expected {describe(hint)}, got {value!r}")


def describe(hint: Any) -> str:
    """An annotation in words (``an integer``, ``a list of integers``, ``'vq' or 'kl'``)."""
    origin = typing.get_origin(hint)
    words = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
             type(None): "null"}
    if hint in words:
        return words[hint]
    if hint is Any:
        return "any value"
    if origin in (Union, types.UnionType):
        return " or ".join(describe(a) for a in typing.get_args(hint))
    if origin is Literal:
        return " or ".join(repr(c) for c in typing.get_args(hint))
    if origin in (tuple, list):
        args = typing.get_args(hint)
        inner = describe(args[0]) if args else "any value"
        return f"a list of {inner.removeprefix('an ').removeprefix('a ')}s"
    if origin in (dict, collections.abc.Mapping) or hint in (dict, Mapping):
        return "a mapping"
    if dataclasses.is_dataclass(hint):
        return "a mapping of settings"
    return str(hint)


def plain(value: Any) -> Any:
    """A dataclass (or what it holds) as plain YAML/JSON data: mappings become dicts,
    tuples lists; a dataclass with a ``to_dict`` method is asked for its own form."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        to_dict = getattr(value, "to_dict", None)
        if callable(to_dict):
            return to_dict()
        return {f.name: plain(getattr(value, f.name)) for f in setting_fields(type(value))}
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value
