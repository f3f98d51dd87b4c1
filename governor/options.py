"""Declared options: one definition drives config validation, defaults and `governor init`.

Each connector and rule declares the keys it reads as ``Option``s, so an unknown or
mistyped key is caught with its key path, and the starter config documents every key
(what reads it, its bounds) from the same place the code reads it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

REQUIRED: Any = object()


class OptionError(ValueError):
    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(message)


@dataclass(frozen=True)
class Option:
    type: str  # str | int | float | bool | list[str] | dict[str,str] | dict[str,list[str]]
    default: Any
    help: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None
    example: Any = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def check(self, key: str, value: Any) -> Any:
        t = self.type
        if t == "str":
            if not isinstance(value, str):
                raise OptionError(key, f"expected a string, got {_kind(value)}")
            if self.choices and value not in self.choices:
                raise OptionError(key, f"{value!r} is not one of "
                                       + ", ".join(c or '"" (empty)' for c in self.choices))
        elif t in ("int", "float"):
            ok = isinstance(value, int) or (t == "float" and isinstance(value, float))
            if isinstance(value, bool) or not ok:
                raise OptionError(key, f"expected a{'n integer' if t == 'int' else ' number'}, "
                                       f"got {_kind(value)}")
            if isinstance(value, float) and not math.isfinite(value):
                # TOML has nan and inf; every comparison with nan is false, so a bound
                # check passes it and a guard using it never trips
                raise OptionError(key, f"expected a number, got {value}")
            if self.min is not None and value < self.min:
                raise OptionError(key, f"{value} is below the minimum {self.min:g}")
            if self.max is not None and value > self.max:
                raise OptionError(key, f"{value} is above the maximum {self.max:g}")
        elif t == "bool":
            if not isinstance(value, bool):
                raise OptionError(key, f"expected true or false, got {_kind(value)}")
        elif t == "list[str]":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise OptionError(key, "expected a list of strings")
        elif t == "dict[str,str]":
            if not isinstance(value, dict):
                raise OptionError(key, f"expected a table, got {_kind(value)}")
            for k, v in value.items():
                if not isinstance(v, str):
                    raise OptionError(f"{key}.{k}", f"expected a string, got {_kind(v)}")
                if self.choices and k not in self.choices:
                    raise OptionError(f"{key}.{k}", f"unknown key; expected one of "
                                                    f"{', '.join(self.choices)}")
        elif t == "dict[str,list[str]]":
            if not isinstance(value, dict):
                raise OptionError(key, f"expected a table, got {_kind(value)}")
            for k, v in value.items():
                if not isinstance(v, list) or not all(isinstance(i, str) for i in v):
                    raise OptionError(f"{key}.{k}", "expected a list of strings")
        else:  # pragma: no cover - a programming error in a declaration
            raise AssertionError(f"unknown option type {t}")
        return value


def _kind(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)


def apply(schema: Mapping[str, Option], raw: Mapping[str, Any], path: str,
          ignore: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Validate ``raw`` against ``schema``; return it with defaults filled in.

    Raises OptionError with the full key path (``path.key``) of the first problem.
    """
    out: dict[str, Any] = {}
    for key in raw:
        if key not in schema and key not in ignore:
            near = _nearest(key, schema)
            hint = f" (did you mean {near!r}?)" if near else ""
            raise OptionError(f"{path}.{key}", f"unknown key{hint}")
    for key, opt in schema.items():
        if key in raw:
            out[key] = opt.check(f"{path}.{key}", raw[key])
        elif opt.required:
            raise OptionError(f"{path}.{key}", "required key is missing")
        else:
            out[key] = opt.default
    return out


def _nearest(key: str, schema: Mapping[str, Option]) -> str | None:
    import difflib

    found = difflib.get_close_matches(key, list(schema), n=1, cutoff=0.75)
    return found[0] if found else None


def one_spelling(mapping: Mapping[str, str], path: str) -> None:
    """Config check for a value map whose words are matched without case or surrounding
    spaces: two keys that are one word so (``"Terminated"`` and ``"terminated "``) and
    map it differently would leave the last to win, silently."""
    seen: dict[str, tuple[str, str]] = {}
    for raw, target in mapping.items():
        word = raw.strip().lower()
        first = seen.setdefault(word, (raw, target))
        if first[1].strip().lower() != target.strip().lower():
            raise OptionError(f"{path}.{raw}", (
                f"is {first[0]!r} written another way (words are matched without case or "
                f"surrounding spaces), which maps to {first[1]!r}, not {target!r}: keep one"))

