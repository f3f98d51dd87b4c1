"""The `governor` command line. Commands are thin: they parse, call one job, print."""

from __future__ import annotations

import io
import os
import signal
import sys
import threading
from typing import Any, TextIO

import click
from sqlalchemy import exc as sa_exc

from governor.audit import default_actor
from governor.cli import admin, doctor, offboard, query, runs
from governor.cli.common import EXIT_ERROR, Ctx, emit_json, error_json, exit_code_of, not_blank
from governor.db import UNUSABLE_URL
from governor.errors import GovernorError, StoreError
from governor.unseen import TERMINAL, visible


class _Governor(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            try:
                return super().invoke(ctx)
            except sa_exc.SQLAlchemyError as exc:
                refused = _store_refused(exc)
                if refused is None:
                    raise  # anything else from the store is a bug: keep its traceback
                raise refused from None
        except (GovernorError, click.ClickException) as exc:
            # only here is the command's Ctx still at hand; main() writes stderr and exits
            if isinstance(ctx.obj, Ctx) and ctx.obj.json_errors:
                emit_json(error_json(exc))
            raise


def _store_refused(exc: sa_exc.SQLAlchemyError) -> StoreError | None:
    """The store could not be reached or used (down, wrong host or password, locked, no
    such file, a URL or driver it cannot use): the operator's to fix, said in one line.
    Never the URL itself: it may carry a password."""
    # a DBAPI error with no statement was raised connecting: a bad connection option
    # (connect_timeout=abc) is the operator's to fix too, not a bug
    dbapi = exc if isinstance(exc, sa_exc.DBAPIError) else None
    if dbapi is not None and (
            isinstance(dbapi, sa_exc.OperationalError | sa_exc.InterfaceError)
            or dbapi.statement is None):
        why = str(dbapi.orig or dbapi).strip().splitlines() or ["no reason given"]
        if why[0] == "database is locked":
            # SQLite gave up waiting (busy_timeout) for another writer's transaction
            return StoreError("the database is locked by another governor writer (a "
                              "reconcile still reading its sources?); nothing was written: "
                              "try again once it has finished")
        return StoreError(f"the database refused: {why[0]}")
    if isinstance(exc, sa_exc.NoSuchModuleError):
        return StoreError(f"the database URL names a dialect or driver governor cannot load "
                          f"({exc}); governor supports sqlite:/// and postgresql://")
    if isinstance(exc, sa_exc.ArgumentError):
        return StoreError(UNUSABLE_URL)
    return None


@click.group(cls=_Governor, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-c", "--config", "config_path", envvar="GOVERNOR_CONFIG",
              default="governor.toml", show_default=True, help="Config file (TOML).")
@click.option("--json", "as_json", is_flag=True, help="JSON output for scripts.")
@click.option("--actor", default=None, callback=not_blank, help="Who is acting, for the "
              "audit log (default: GOVERNOR_ACTOR, else the OS user).")
@click.version_option(package_name="governor")
@click.pass_context
def cli(ctx: click.Context, config_path: str, as_json: bool, actor: str | None) -> None:
    """Access governance and audit for an organisation's social media accounts.

    Exit codes: 0 ok; 1 error; 2 bad input or usage (nothing written); 3 the feed guard
    stopped the run; 4 not found or ambiguous; 5 the run finished but a source failed;
    6 findings (open or unknown) at or above --fail-on.
    """
    ctx.obj = Ctx(config_path=config_path, as_json=as_json,
                  # a blank GOVERNOR_ACTOR counts as unset, never as a nameless actor
                  actor=actor or os.environ.get("GOVERNOR_ACTOR", "").strip() or default_actor())


for module in (runs, query, admin, doctor, offboard):
    for command in module.COMMANDS:
        cli.add_command(command)


class _Harmless(io.TextIOBase):
    """stdout or stderr, with what a terminal would act on written as visible \\uXXXX
    text: names, handles, reasons and errors come from sources and people, and `governor
    person` printed an HR name's escape sequences raw. In --json output the same text is
    a JSON escape of the same character, so the document reads back unchanged."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(TERMINAL.sub(visible, text))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._stream, "encoding", None) or "utf-8"

    def writable(self) -> bool:
        return True

    @property
    def unfiltered(self) -> TextIO:
        """The stream itself, for governor's own drawing that is no data (a progress
        bar's carriage returns and cursor codes)."""
        return self._stream


EXIT_TERMINATED = 128 + signal.SIGTERM  # as a shell reports a process SIGTERM ended


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM (what systemd and most schedulers send to stop a job) ends governor as an
    error does: a run's transaction rolls back and its staged and placed report files
    are taken back, instead of the process vanishing with them half-written."""
    raise SystemExit(EXIT_TERMINATED)


def main() -> None:
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Harmless(out), _Harmless(err)
    # only the main thread may set a handler (main() called from elsewhere keeps its own)
    before = (signal.signal(signal.SIGTERM, _terminated)
              if threading.current_thread() is threading.main_thread() else None)
    try:
        _main()
    except SystemExit as exc:
        if exc.code == EXIT_TERMINATED:
            print("governor: terminated (SIGTERM); whatever was not yet committed was rolled "
                  "back", file=err)
        raise
    finally:
        sys.stdout, sys.stderr = out, err
        if before is not None:
            signal.signal(signal.SIGTERM, before)


def _main() -> None:
    try:
        code = cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(EXIT_ERROR)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exit_code_of(exc))
    except GovernorError as exc:
        click.echo(f"governor: {exc}", err=True)
        sys.exit(exit_code_of(exc))
    # without standalone mode click hands back ctx.exit()'s code instead of exiting
    sys.exit(code if isinstance(code, int) else 0)
