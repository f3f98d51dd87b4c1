"""Options defined once and shared by every command, and the output helpers."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy import Engine

from governor import config as config_mod
from governor.clock import Clock, system_clock
from governor.config import Config
from governor.db import make_engine, require_head
from governor.errors import Ambiguous, GovernorError

F = TypeVar("F", bound=Callable[..., Any])

# exit codes a cron job or CI can act on
EXIT_OK, EXIT_ERROR, EXIT_INPUT, EXIT_GUARD, EXIT_NOT_FOUND = 0, 1, 2, 3, 4
EXIT_PARTIAL, EXIT_FINDINGS = 5, 6


@dataclass
class Ctx:
    config_path: str
    as_json: bool
    actor: str
    clock: Clock = system_clock
    # whether this command answers in JSON, known once its own --json is parsed, so that
    # a failure can answer in JSON too
    json_errors: bool = False
    _config: Config | None = field(default=None, repr=False)
    _engine: Engine | None = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = config_mod.load(self.config_path)
        return self._config

    def use_config(self, path: Path, config: Config) -> None:
        self.config_path, self._config, self._engine = str(path), config, None

    def engine(self, at_head: bool = True) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.config.database_url)
        if at_head:
            require_head(self._engine)
        return self._engine


pass_ctx = click.make_pass_decorator(Ctx)


def use_json(ctx: Ctx, flag: bool | None) -> bool:
    return ctx.as_json if flag is None else flag


def _note_json(cctx: click.Context, _param: click.Parameter, flag: bool | None) -> bool | None:
    ctx = cctx.find_object(Ctx)
    if ctx is not None:
        ctx.json_errors = use_json(ctx, flag)
    return flag


# eager: resolved before any other option can fail, so even that failure answers in JSON
json_option = click.option("--json", "as_json", is_flag=True, default=None, is_eager=True,
                           callback=_note_json,
                           help="Print JSON for scripts instead of tables.")


def not_blank(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """The audit log is only evidence if each entry says why and who: "" or " " would
    satisfy required=True and record nothing, so refuse it, and store the text stripped."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        raise click.BadParameter("must not be blank: it is recorded in the audit log",
                                 param=param)
    return text


def audited_option(name: str, required: bool = True,
                   help: str = "Recorded in the audit log.") -> Callable[[F], F]:
    return click.option(name, required=required, callback=not_blank, help=help)


def reason_option(required: bool = True,
                  help: str = "Why; recorded in the audit log.") -> Callable[[F], F]:
    return audited_option("--reason", required, help)


def _default(o: Any) -> Any:
    if isinstance(o, datetime | date):
        return o.isoformat()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=_default))


def exit_code_of(exc: GovernorError | click.ClickException) -> int:
    if isinstance(exc, click.ClickException):
        return EXIT_INPUT if exc.exit_code == 2 else exc.exit_code
    return exc.exit_code


def error_json(exc: GovernorError | click.ClickException) -> dict[str, Any]:
    """A failure as the one JSON object a script reads from stdout: the message stderr
    shows (written for people, so no secrets and no traceback) and the exit code."""
    code = exit_code_of(exc)
    data: dict[str, Any] = {
        "status": "aborted" if code == EXIT_GUARD else "error", "exit_code": code,
        "error": exc.format_message() if isinstance(exc, click.ClickException) else str(exc),
    }
    if isinstance(exc, Ambiguous):
        data["candidates"] = exc.candidates
    return data


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
    """A plain aligned table; cells are made single-line so a hostile name can't
    forge rows or move the cursor. Times are shown in governor.timezone, saying which
    (`--at` without an offset is read in it: a time copied from a table means the
    same instant)."""
    obj = click.get_current_context(silent=True)
    ctx = obj.find_object(Ctx) if obj is not None else None
    # the config as the command loaded it; a command that read none shows UTC
    zone = ctx._config.zone if ctx is not None and ctx._config is not None else UTC
    cells = [[_clean(c, zone) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    click.echo("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for r in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def _clean(value: Any, zone: tzinfo) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        local = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(zone)
        return f"{local:%Y-%m-%d %H:%M} {local.tzname() or ''}".rstrip()
    text = str(value)
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def warn(message: str) -> None:
    click.echo(message, err=True)

