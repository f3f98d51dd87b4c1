"""reconcile and demo: the main job."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from dataclasses import replace
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import click
from sqlalchemy.engine import make_url

from governor import db
from governor.cli.common import (
    EXIT_FINDINGS,
    EXIT_PARTIAL,
    Ctx,
    emit_json,
    json_option,
    pass_ctx,
    reason_option,
    table,
    use_json,
    warn,
)
from governor.clock import fixed_clock, parse_instant, system_clock
from governor.config import load as load_config
from governor.errors import InputError
from governor.reconcile import RunOptions, RunResult, job
from governor.rules.base import Severity

SEVERITIES = [s.value for s in Severity]
# The counts' sections in the summary table's columns; severity_changed heads "sev-changed"
COUNTED = ("new", "open", "resolved", "severity_changed", "unknown", "excepted")
# under the table, not a column of it: a finding newly undecided is among the unknown
DEMO_NOW = "2026-11-20T12:00:00+00:00"  # the sample organisation's dates are relative to it


def _summary(result: RunResult) -> dict[str, Any]:
    return {
        "run": result.run_id, "status": result.status, "forced": result.forced,
        "forced_past": result.problems,
        "started_at": result.started_at, "finished_at": result.finished_at,
        "counts": result.counts,
        # counts' severity_changed is by the severity they have now; which way they went:
        "severity_changed": {"raised": result.stats.severity_raised,
                             "lowered": result.stats.severity_lowered},
        # the findings among the new ones that are back because their exception ended
        "reopened": {"expired": result.stats.reopened_by_expiry,
                     "revoked": result.stats.reopened_by_revoke},
        "sources": [{"name": o.name, "type": o.type, "ok": o.ok, "count": o.count,
                     "unchanged": o.unchanged, "added": o.added, "ended": o.ended,
                     "updated": o.updated,
                     "error": o.error, "freshness": o.freshness} for o in result.sources],
        "report": {k: str(v) for k, v in result.report.items()},
        "timings": result.timings,
        "reused_run": result.reused_run,
        # what the run changed in offboarding cases (step keys; cases by id)
        "offboarding": {"cases_opened": result.cases_opened,
                        "steps_reopened": result.steps_reopened,
                        "steps_added": result.steps_added,
                        "steps_observed_gone": result.steps_observed_gone},
    }


def _print(result: RunResult) -> None:
    table([(o.name, o.type, "FAILED" if not o.ok else "unchanged" if o.unchanged else "ok",
            o.count, o.added, o.ended, o.error or "") for o in result.sources],
          ("source", "type", "status", "records", "added", "ended", "error"))
    click.echo("")
    rows = []
    for sev in SEVERITIES:
        row = [sev] + [result.counts.get(k, {}).get(sev, 0) for k in COUNTED]
        if any(row[1:]):
            rows.append(row)
    if rows:
        table(rows, ("severity", "new", "open", "resolved", "sev-changed", "unknown", "excepted"))
    else:
        click.echo("no findings")
    raised, lowered = result.stats.severity_raised, result.stats.severity_lowered
    if raised or lowered:
        # a finding that stays open with another severity is neither new nor resolved:
        # said here, or a critical turned low would pass unnoticed
        n = raised + lowered
        click.echo(f"\nseverity changed: {n} finding{'s' if n != 1 else ''} still open or "
                   f"accepted ({raised} raised, {lowered} lowered)"
                   + ("; the report lists each, before and after, and why"
                      if result.report else ""))
    undecided = sum(result.counts.get("newly_undecided", {}).values())
    if undecided:
        # a violation its rule can no longer see is neither resolved nor new: said
        # here, or a source gone quiet would hide it in the unknown column
        click.echo(f"\nnewly undecided: {undecided} finding{'s' if undecided != 1 else ''} "
                   "the rules could not decide this run, new or a violation before (among "
                   "the unknown: the data they need is missing)")
    expired, revoked = result.stats.reopened_by_expiry, result.stats.reopened_by_revoke
    if expired or revoked:
        # accepted risks that are risks again: new in the table above, said apart here
        n = len(expired) + len(revoked)
        click.echo(f"\nreopened: {n} finding{'s' if n != 1 else ''} whose exception ended "
                   f"({len(expired)} expired, {len(revoked)} revoked), among the new"
                   + ("; the report says which exception, and when" if result.report else ""))
    for keys, what in ((result.steps_reopened, "recorded finished, but its access is still "
                        "reported: to do again"),
                       (result.steps_added, "added to a case: access found after it was "
                        "opened")):
        # offboarding work this run found undone: said where the operator looks
        if keys:
            click.echo(f"\noffboarding: {len(keys)} step{'s' if len(keys) != 1 else ''} "
                       f"{what} (`governor offboard status`)")
            for key in keys:
                click.echo(f"  {key}")
    click.echo(f"\nrun {result.run_id}: {result.status}"
               + (" (forced past the feed guard)" if result.problems
                  else " (run with the clock behind the last run)" if result.forced else ""))
    for problem in result.problems:
        # what --force let through, said where the operator looks: they may have forced
        # for one source and this names every stop that the same flag passed
        click.echo(f"  forced past: {problem}")
    if result.reused_run is not None:
        click.echo(f"nothing the rules read has changed since run {result.reused_run} and no "
                   f"time limit was reached: its results were carried forward "
                   f"(--reevaluate evaluates anyway)")
    if result.report:
        click.echo(f"report: {result.report.get('html')}")


def _exit_code(result: RunResult, fail_on: str | None) -> int:
    if fail_on:
        floor = Severity(fail_on)
        # an unknown is a rule that could not decide: a gate passing on it is a silent pass
        if any(result.counts.get(section, {}).get(s.value, 0)
               for section in ("open", "unknown") for s in Severity.at_least(floor)):
            return EXIT_FINDINGS
    return EXIT_PARTIAL if result.status == "partial" else 0


def _run(ctx: Ctx, force: bool, reason: str | None, fail_on: str | None, report: bool,
         as_json: bool, reuse: bool = True, clock_was_ahead: bool = False) -> int:
    for flag, given in (("--force", force), ("--clock-was-ahead", clock_was_ahead)):
        if given and not reason:
            raise click.UsageError(f"{flag} needs --reason (it is recorded in the audit log)")
    if reason and not (force or clock_was_ahead):
        # a reason alone overrides nothing and would be recorded nowhere: said, not dropped
        raise click.UsageError("--reason goes with --force or --clock-was-ahead (it is why "
                               "they are right); without either nothing is overridden")
    engine = ctx.engine()
    result = job(engine, ctx.config, ctx.clock,
                 RunOptions(actor=ctx.actor, force=force, reason=reason, write_report=report,
                            reuse=reuse, clock_was_ahead=clock_was_ahead))
    if as_json:
        emit_json(_summary(result))
    else:
        _print(result)
    # on stderr in both modes: a script reading --json, or --fail-on's exit 6, still says it
    for name in (o.name for o in result.sources if not o.ok):
        warn(f"warning: source {name} failed; its findings were kept, none resolved")
    return _exit_code(result, fail_on)


@click.command()
@click.option("--force", is_flag=True, help="Go on although the feed guard tripped.")
@click.option("--clock-was-ahead", is_flag=True,
              help="Go on although the last run started later than now: the clock is right "
                   "now and was ahead then. Does not pass the feed guard (that is --force).")
@reason_option(required=False, help="Why --force or --clock-was-ahead is right (audited).")
@click.option("--fail-on", type=click.Choice(SEVERITIES),
              help="Exit 6 when an open finding, or an undecided (unknown) one, is at or "
                   "above this severity (before 5 for a failed source: --json's status "
                   "still says partial).")
@click.option("--no-report", is_flag=True, help="Skip writing the nightly report.")
@click.option("--reevaluate", is_flag=True,
              help="Evaluate every rule even when nothing they read has changed since the "
                   "last run (by default its results are then carried forward).")
@json_option
@pass_ctx
@click.pass_context
def reconcile(cctx: click.Context, ctx: Ctx, force: bool, clock_was_ahead: bool,
              reason: str | None, fail_on: str | None, no_report: bool, reevaluate: bool,
              as_json: bool | None) -> None:
    """Run one reconciliation end to end (all or nothing)."""
    cctx.exit(_run(ctx, force, reason, fail_on, not no_report, use_json(ctx, as_json),
                   reuse=not reevaluate, clock_was_ahead=clock_was_ahead))


@click.command()
@click.option("--dir", "where", type=click.Path(file_okay=False, path_type=Path),
              default=Path("governor-demo"), show_default=True,
              help="Where to put the sample organisation, its database and report.")
@click.option("--keep", is_flag=True, help="Keep the demo database from an earlier demo.")
@click.option("--database-url", default=None, help="Load the demo into this database instead "
              "of the SQLite file in --dir (GOVERNOR_DATABASE_URL is not used: it names your "
              "own store).")
@json_option
@pass_ctx
@click.pass_context
def demo(cctx: click.Context, ctx: Ctx, where: Path, keep: bool, database_url: str | None,
         as_json: bool | None) -> None:
    """Reconcile the bundled sample organisation (Northwind Traders) into SQLite."""
    if where.is_dir() and any(where.iterdir()) and not (where / "PLANTED.md").is_file():
        # the demo copies its files over whatever is there: an operator's own
        # governor.toml or hr.csv must not be the price of trying it
        raise InputError(f"{where} holds files and is not an earlier demo's folder; the "
                         "demo would overwrite them: choose another --dir")
    where.mkdir(parents=True, exist_ok=True)
    bundled = resources.files("governor.demo")
    for item in bundled.iterdir():
        if item.is_file() and item.name.rsplit(".", 1)[-1] in ("csv", "json", "toml", "yaml",
                                                               "md"):
            with resources.as_file(item) as src:
                shutil.copyfile(src, where / item.name)
    # always its own SQLite file: a GOVERNOR_DATABASE_URL in the environment names the
    # operator's store, which must not be loaded with Northwind Traders
    own = f"sqlite:///{(where / 'governor-demo.db').resolve()}"
    cfg = replace(load_config(where / "governor.toml"), database_url=database_url or own)
    if not keep and database_url is None:  # a fresh demo each time
        for suffix in ("", "-wal", "-shm"):
            Path(cfg.database_url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
        # and its reports with it: they are the old database's, whose run ids start again
        # (a run never writes over another's report)
        if cfg.report_dir.resolve().is_relative_to(where.resolve()):
            shutil.rmtree(cfg.report_dir, ignore_errors=True)
    ctx.use_config(where / "governor.toml", cfg)
    if ctx.clock is system_clock and not os.environ.get("GOVERNOR_NOW"):
        ctx.clock = fixed_clock(parse_instant(DEMO_NOW))
        # exported that morning, as a nightly job's would be: copied today, the files
        # read as produced after the demo's run ("newer than the run") in its report
        exported = (parse_instant(DEMO_NOW) - timedelta(hours=7)).timestamp()
        for item in where.iterdir():
            if item.suffix in (".csv", ".json", ".toml", ".yaml") and item.is_file():
                os.utime(item, (exported, exported))
    db.upgrade(ctx.engine(at_head=False))
    as_json = use_json(ctx, as_json)
    code = _run(ctx, False, None, None, True, as_json)
    if not as_json:
        # the config names the demo's SQLite file: loaded elsewhere, the commands need
        # the URL too (a password in it is not repeated)
        url = "" if database_url is None else "GOVERNOR_DATABASE_URL=" + (
            "'<the --database-url given>' " if make_url(database_url).password
            else f"{shlex.quote(database_url)} ")
        # the command as it was run (.venv/bin/governor when the venv is not active)
        me = shlex.quote(sys.argv[0]) if Path(sys.argv[0]).name == "governor" else "governor"
        click.echo(f"\nThe sample organisation and its config are in {where}/ "
                   f"(as of {DEMO_NOW[:10]}); try:\n"
                   f"  {url}{me} -c {where}/governor.toml findings\n"
                   f"  {url}{me} -c {where}/governor.toml whohas x:@northwind\n")
    cctx.exit(code)


COMMANDS = [reconcile, demo]
