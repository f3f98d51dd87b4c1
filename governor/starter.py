"""`governor init`: a starter config written from the same declarations that validate it,
so every key it shows is real, says what reads it, and states its default and bounds."""

from __future__ import annotations

import dataclasses
import json
import textwrap
from typing import Any

from governor.config import (
    FEED_GUARD_OPTIONS,
    GOVERNOR_OPTIONS,
    OFFBOARD_OPTIONS,
    PRINCIPAL_OPTIONS,
    REPORT_OPTIONS,
    RULE_COMMON,
    SOURCE_COMMON,
)
from governor.options import Option
from governor.rules import RULES
from governor.sources import CONNECTORS

EXAMPLE_SOURCES: list[tuple[str, str, dict[str, Any]]] = [
    ("hr", "hr_file", {"path": "data/hr.csv"}),
    ("directory", "directory_file", {"path": "data/directory.json"}),
    ("inventory", "inventory_file", {"path": "accounts.toml"}),
    ("x_roles", "grants_file", {"path": "data/x_roles.csv", "platform": "x"}),
    ("hootsuite", "grants_file", {"path": "data/hootsuite.csv", "via": "tool_seat",
                                  "tool": "hootsuite"}),
    ("vault", "vault_file", {"path": "data/vault.json"}),
    ("ad", "ldap_directory", {"enabled": False}),
    ("okta_live", "okta", {"enabled": False}),
]


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}"
                                for k, v in value.items()) + " }"
    raise TypeError(type(value).__name__)


def _bounds(o: Option) -> str:
    parts = []
    if o.choices:
        parts.append("one of " + ", ".join(repr(c) for c in o.choices if c != ""))
    lo, hi = (None if b is None else f"{b:,.0f}" if b == int(b) else f"{b:g}"
              for b in (o.min, o.max))
    if lo is not None or hi is not None:
        parts.append(f"from {lo}" if hi is None else f"{lo} to {hi}" if lo else f"up to {hi}")
    return "; ".join(parts)


def _comment(text: str, indent: str = "") -> list[str]:
    return textwrap.wrap(text, 88, initial_indent=f"# {indent}",
                         subsequent_indent=f"#   {indent}", break_on_hyphens=False)


def _option(out: list[str], key: str, o: Option, reader: str, values: dict[str, Any],
            prefix: str = "") -> None:
    bounds = _bounds(o)
    out.extend(_comment(f"{key} ({o.type}; read by {reader}): {o.help}"
                        + (f" Bounds: {bounds}." if bounds else "")))
    if key in values:
        out.append(f"{prefix}{key} = {toml_value(values[key])}")
    elif o.required:
        out.append(f"{prefix}{key} = {toml_value(o.example)}  # required")
    else:
        shown = o.example if o.example is not None and o.default in ("", [], {}) else None
        out.append(f"# {key} = {toml_value(o.default)}"
                   + (f"   (e.g. {toml_value(shown)})" if shown is not None else ""))


def _options(out: list[str], schema: dict[str, Option], reader: str,
             values: dict[str, Any] | None = None) -> None:
    for key, o in schema.items():
        _option(out, key, o, reader, values or {})
    out.append("")


def render() -> str:
    out = [
        "# governor configuration (TOML). Validated on every command: an unknown or",
        "# mistyped key stops governor with its key path. Relative paths are relative to",
        "# this file. Secrets never go here: give a database password through",
        "# GOVERNOR_DATABASE_URL in the environment.",
        "",
        "[governor]",
    ]
    _options(out, GOVERNOR_OPTIONS, "every command")
    out.append("[feed_guard]")
    _options(out, FEED_GUARD_OPTIONS, "reconcile, before any finding changes")
    out.append("[report]")
    _options(out, REPORT_OPTIONS, "the nightly report")
    out.append("[offboard]")
    _options(out, OFFBOARD_OPTIONS, "offboard")
    out.append("# ---- sources: one [sources.NAME] table each; `type` picks the connector ----")
    out.extend(_comment("Types: " + "; ".join(f"{t}: {c.description}"
                                              for t, c in sorted(CONNECTORS.items()))))
    out.append("")
    # the connector types are registered after config.py is imported: list them here
    source_type = dataclasses.replace(SOURCE_COMMON["type"], choices=tuple(sorted(CONNECTORS)))
    for name, stype, values in EXAMPLE_SOURCES:
        connector = CONNECTORS[stype]
        out.append(f"[sources.{name}]")
        _option(out, "type", source_type, "every command", {"type": stype})
        values = dict(values)  # the table above is shared: render twice, same text
        enabled = values.pop("enabled", True)
        _option(out, "enabled", SOURCE_COMMON["enabled"], "reconcile, doctor and offboard",
                {} if enabled else {"enabled": False})
        if not enabled:
            out[-1] += "  # an example: fill it in, then remove this line"
        _options(out, connector.options, f"the {stype} connector", values)
    out.append("# ---- rules: every rule is on with its defaults; a [rules.ID] table changes that")
    for rule_id, rule in sorted(RULES.items()):
        out.append(f"# [rules.{rule_id}]  ({rule.severity.value}) {rule.title}")
        for key, o in {**RULE_COMMON, **rule.params}.items():
            bounds = _bounds(o)
            out.extend(_comment(f"{key} = {toml_value(o.default)}: {o.help}"
                                + (f" Bounds: {bounds}." if bounds else ""), "  "))
    out.append("")
    out.append("# ---- non-human principals: one [[principals]] table per service, API or bot")
    out.append("# account a source reports, so correlation does not take it for an orphan ----")
    out.append("# [[principals]]")
    for key, o in PRINCIPAL_OPTIONS.items():
        _option(out, key, o, "correlation, in reconcile and the access queries", {}, "# ")
    return "\n".join(out) + "\n"
