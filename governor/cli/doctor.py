"""doctor: can every configured source, and the store, be reached with these settings?"""

from __future__ import annotations

import dataclasses

import click

from governor import db, state
from governor.cli.common import EXIT_PARTIAL, Ctx, emit_json, json_option, pass_ctx, table, use_json
from governor.errors import GovernorError
from governor.sources import CONNECTORS, Check


def _database(ctx: Ctx) -> list[Check]:
    try:
        engine = ctx.engine(at_head=False)
        have, want = db.current(engine), db.heads(engine)
    except Exception as exc:  # noqa: BLE001 - any driver error is the answer here
        return [Check("connect", False, f"{type(exc).__name__}: {_first_line(exc)}")]
    if have is not None and not db.known(engine, have):
        return [Check("connect", True, engine.dialect.name),
                Check("schema", False, str(db.newer_store(engine, have)))]
    if have not in want:
        return [Check("connect", True, engine.dialect.name),
                Check("schema", False, f"at {have or 'nothing'}, needs {want[0]}: run "
                                       "`governor db upgrade`")]
    return [Check("connect", True, engine.dialect.name), Check("schema", True, have or "")]


def _first_line(exc: BaseException) -> str:
    # driver messages can quote the URL; keep the first line and never the password part
    return str(exc).splitlines()[0] if str(exc) else ""


@click.command()
@json_option
@pass_ctx
@click.pass_context
def doctor(cctx: click.Context, ctx: Ctx, as_json: bool | None) -> None:
    """Reach every configured source, authenticate and read one page; say exactly why not.

    Exits 5 when any source or the database fails."""
    results: list[tuple[str, str, list[Check]]] = [("(store)", "database", _database(ctx))]
    platforms = ctx.config.platforms()
    for name, sc in ctx.config.sources.items():
        if not sc.enabled:
            results.append((name, sc.type, [Check("enabled", True, "disabled: not checked")]))
            continue
        connector = CONNECTORS[sc.type](name, sc.settings, ctx.config.base_dir)
        # as reconcile reads it: a platform another source declares is not a typo here
        connector.prepare(dataclasses.replace(connector.context, platforms=platforms,
                                              sources=state.source_kinds(ctx.config)))
        try:
            checks = connector.check()
        except GovernorError as exc:
            checks = [Check("setup", False, str(exc))]
        results.append((name, sc.type, checks))
    failed = [name for name, _, checks in results if not all(c.ok for c in checks)]
    if use_json(ctx, as_json):
        emit_json([{"source": n, "type": t, "ok": n not in failed,
                    "checks": [{"step": c.step, "ok": c.ok, "detail": c.detail} for c in cs]}
                   for n, t, cs in results])
    else:
        table([(n, t, c.step, "ok" if c.ok else "FAILED", c.detail)
               for n, t, cs in results for c in cs],
              ("source", "type", "step", "status", "detail"))
        click.echo("\nall sources reachable" if not failed else
                   f"\n{len(failed)} failed: {', '.join(failed)}")
    cctx.exit(EXIT_PARTIAL if failed else 0)


COMMANDS = [doctor]
