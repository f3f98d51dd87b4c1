"""Options and helpers shared by the file connectors."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from governor.options import REQUIRED, Option, OptionError

FORMATS = ("auto", "csv", "json", "jsonl")


def file_options(fields: tuple[str, ...], what: str) -> dict[str, Option]:
    return {
        "path": Option("str", REQUIRED, f"The {what} file (relative to the config file).",
                       example=f"data/{what.replace(' ', '_')}.csv"),
        "format": Option("str", "auto", "File format; auto goes by the file extension "
                         "(.csv/.tsv, .json, .jsonl).", choices=FORMATS),
        "columns": Option("dict[str,str]", {}, "Map a field to the file's own column or key "
                          "name where they differ. Fields: " + ", ".join(fields) + ".",
                          choices=fields),
    }


def resolve(base_dir: Path, path: str) -> Path:
    return (base_dir / path).resolve()


def lowered(mapping: dict[str, str]) -> dict[str, str]:
    return {k.strip().lower(): v.strip().lower() for k, v in mapping.items()}


def check_map_targets(settings: dict[str, Any], key: str, option: str,
                      allowed: frozenset[str]) -> None:
    for raw, target in settings[option].items():
        if target.strip().lower() not in allowed:
            raise OptionError(f"{key}.{option}.{raw}", f"{target!r} is not one of "
                                                        + ", ".join(sorted(allowed)))


def mtime(path: Path) -> datetime | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
    except OSError:
        return None
