"""offboard: plan (default) or carry out removing one person's access everywhere."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import click
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from governor import audit, queries
from governor.cli.common import (
    EXIT_PARTIAL,
    Ctx,
    audited_option,
    emit_json,
    json_option,
    pass_ctx,
    reason_option,
    table,
    use_json,
    warn,
)
from governor.db import sessions, transaction
from governor.errors import InputError, NotFound
from governor.models import ObsCredential, OffboardCase
from governor.offboard import cases, receipt
from governor.offboard.plan import Plan, build, end_date_text, plan_limits
from governor.queries import resolve_person
from governor.reports import reverted_on_error


class _PersonFirst(click.Group):
    """`governor offboard jdoe` means `governor offboard run jdoe`; the subcommands
    (status, done, waive, receipt) keep their names."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # an option first (`offboard --execute jdoe`) is run's too: the group has none
        # but --help
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # the plan-and-execute options belong to the hidden run command: shown here too,
        # or `offboard --help` hid --execute, --ticket, --new-owner and --force
        super().format_options(ctx, formatter)
        run = self.commands["run"]
        rows = [r for p in run.get_params(ctx) if isinstance(p, click.Option)
                and "--help" not in p.opts and (r := p.get_help_record(ctx)) is not None]
        with formatter.section("Options of `governor offboard USER`"):
            formatter.write_dl(rows)


@click.group(cls=_PersonFirst)
def offboard() -> None:
    """Remove one person's access everywhere: `governor offboard USER [--execute]`.

    Without --execute nothing changes: the plan is printed. With it, a case is opened
    (or the open one resumed) and its automatic steps run in a safe order, each
    journaled before and after, so running the same command again after a crash
    finishes the case without repeating a step."""


def _unknown(s: Session) -> list[dict[str, Any]]:
    """Vault items shared with a group nobody expands: no plan can say whether the person
    reads them (queries.unexpanded_groups), so the plan says so."""
    return queries.unexpanded_groups(s, s.scalars(select(ObsCredential).where(
        ObsCredential.ended_at.is_(None), ObsCredential.reader_groups != "[]")), None, None)


def _print_unknown(plan: Plan, unknown: list[dict[str, Any]]) -> None:
    if unknown:
        click.echo(f"not known: whether {plan.name} reads these vault items, shared with a "
                   "group no directory source lists; check the group in the vault, and if "
                   "they are in it remove them and rotate the password:")
        for u in unknown:
            click.echo(f"  {u['item']} ({', '.join(u['accounts'])}) through group "
                       f"{u['group']}")


def _print_plan(plan: Plan) -> None:
    click.echo(f"{plan.name} ({plan.employee_id}), HR status {plan.status}"
               + (f"; {end_date_text(plan.end_date, plan.end_date_basis)}"
                  if plan.end_date else "")
               + f"; new owner: {plan.new_owner or 'none (use --new-owner)'}")
    table([(s.seq, "auto" if s.automatic else "manual", s.kind, s.account or "",
            "critical" if s.critical else "", s.instruction) for s in plan.steps],
          ("order", "how", "step", "account", "", "instruction"))
    if plan.protected:
        click.echo("protected, not touched: " + ", ".join(plan.protected))
    for name in plan.unwatched:
        click.echo(f"warning: source {name} names {plan.name} but is switched off or no "
                   "longer in the config: nothing is planned from what it reports")


@offboard.command("run", hidden=True)
@click.argument("user")
@click.option("--execute", is_flag=True, help="Carry out the automatic steps.")
@click.option("--new-owner", help="Who takes over accounts the person owns (default: manager).")
@reason_option(required=False,
               help="Why (recorded); with --force, why the limit does not apply.")
@click.option("--ticket", help="Ticket reference for the record.")
@click.option("--force", is_flag=True, help="Go past a safety limit (a person HR lists as "
              "active, or more accounts than offboard.max_accounts); needs --reason.")
@json_option
@pass_ctx
@click.pass_context
def run_cmd(cctx: click.Context, ctx: Ctx, user: str, execute: bool, new_owner: str | None,
            reason: str | None, ticket: str | None, force: bool, as_json: bool | None) -> None:
    engine = ctx.engine()
    with sessions(engine)() as s:
        plan = build(s, ctx.config, user, new_owner, now=ctx.clock())
        existing = cases.open_case_of(s, plan.employee_id)
        unknown = _unknown(s)
    as_json = use_json(ctx, as_json)
    if not execute:
        if as_json:
            emit_json({"plan": plan.as_dict(), "open_case": existing.id if existing else None,
                       "unexpanded_groups": unknown})
        else:
            _print_plan(plan)
            _print_unknown(plan, unknown)
            click.echo("\nplan only: nothing was changed (add --execute to act)")
        return
    # checked whenever steps are about to run, a case already open too (one a run opened,
    # one someone opened by hand for a person HR has since taken back)
    if force and not reason:
        raise click.UsageError("--force needs --reason (it is recorded in the audit log)")
    limits = plan_limits(plan, ctx.config, ctx.clock())
    if limits and not (force and reason):
        raise InputError("not executed: " + "; ".join(limits)
                         + ". Rerun with --force --reason '...' if this is right.")
    if existing is None:
        with transaction(engine) as s:
            # asked again holding the writers' lock: two --execute started together
            # opened two cases, and a step closed in one stayed to do in the other
            existing = cases.open_case_of(s, plan.employee_id)
            if existing is None:
                # Not refused for a clock behind the last run (timeline.py), unlike other
                # writers: removing a leaver's access must never wait for a clock fix. The
                # receipt's times are then as wrong as the clock; `audit verify` holds.
                now = ctx.clock()
                case_id = cases.open_case(s, plan, now, ctx.actor, trigger="manual",
                                          reason=reason, ticket=ticket, forced=bool(limits),
                                          force_reason=reason if limits else None).id
    if existing is not None:
        case_id = existing.id
        if new_owner and plan.new_owner != existing.new_owner:
            # its ownership steps were written with the owner named when it opened
            raise InputError(f"case {case_id} is open with {existing.new_owner or 'no new owner'}"
                             " as the new owner: --new-owner applies when a case opens (note "
                             "who took over in the ownership step: `governor offboard done "
                             f"{case_id} STEP --note ...`)")
        if ticket and existing.ticket not in (None, ticket):
            raise InputError(f"case {case_id} is already filed under ticket "
                             f"{existing.ticket!r}, not {ticket!r}")
        if ticket and existing.ticket is None:
            # a ticket given when resuming is the record's too, not dropped in silence
            with transaction(engine) as s:
                case = s.get(OffboardCase, case_id)
                if case is not None:
                    case.ticket = ticket
                    audit.record(s, ctx.clock(), ctx.actor, "offboard.ticket",
                                 subject=f"case {case_id}", detail={"ticket": ticket})
        if limits:
            with transaction(engine) as s:
                audit.record(s, ctx.clock(), ctx.actor, "offboard.forced",
                             subject=f"case {case_id}", reason=reason,
                             detail={"limits": limits})
        if not as_json:
            click.echo(f"resuming case {case_id}")
    outcomes = cases.execute(engine, ctx.config, case_id, ctx.clock, ctx.actor)
    data, paths = _receipt(ctx, engine, case_id)
    failed = [o for o in outcomes if o.state == "failed"]
    busy = [o for o in outcomes if o.state == cases.BUSY]
    if as_json:
        emit_json({"case": case_id, "outcomes": [o.__dict__ for o in outcomes],
                   "status": data["status"], "receipt": {k: str(v) for k, v in paths.items()},
                   "unexpanded_groups": unknown})
    else:
        if outcomes:
            table([(o.key, o.state, o.detail) for o in outcomes], ("step", "state", "detail"))
        else:
            click.echo("no automatic steps to carry out")
        manual = [st for st in data["steps"] if st["state"] not in cases.FINISHED]
        click.echo(f"\ncase {case_id}: {data['status']}; {len(manual)} step(s) still to do "
                   f"(see `governor offboard status {plan.employee_id}`)")
        click.echo(f"receipt: {paths['html']}")
        _print_unknown(plan, unknown)
        for o in failed:
            warn(f"step {o.key} failed: {o.detail}")
        for o in busy:
            warn(f"step {o.key} not carried out here: {o.detail}")
    cctx.exit(EXIT_PARTIAL if failed or busy else 0)


@offboard.command()
@click.argument("user", required=False)
@json_option
@pass_ctx
def status(ctx: Ctx, user: str | None, as_json: bool | None) -> None:
    """Open cases and their steps (or one person's latest case)."""
    with sessions(ctx.engine())() as s:
        q = select(OffboardCase).order_by(OffboardCase.id)
        if user:
            eid = resolve_person(s, user).employee_id
            q = q.where(OffboardCase.employee_id == eid)
        else:
            q = q.where(OffboardCase.status == "open")
        found = list(s.scalars(q))
        if user and found:
            found = found[-1:]
        view: list[dict[str, Any]] = [
            {"case": c.id, "employee_id": c.employee_id, "name": c.person_name,
             "status": c.status, "opened_at": c.opened_at,
             "steps": [{"id": st.id, "key": st.key, "kind": st.kind, "automatic": st.automatic,
                        "state": st.state, "instruction": st.instruction,
                        "error": st.error} for st in cases.steps_of(s, c.id)]}
            for c in found]
    if user and not view:
        raise NotFound(f"no offboarding case for {user}")
    if use_json(ctx, as_json):
        emit_json(view)
        return
    for c in view:
        click.echo(f"case {c['case']}: {c['name']} ({c['employee_id']}), {c['status']}")
        table([(st["id"], st["state"], "auto" if st["automatic"] else "manual",
                st["error"] or st["instruction"]) for st in c["steps"]],
              ("step", "state", "how", "instruction / error"))
        click.echo("")
    if not view:
        click.echo("no open offboarding cases")


@offboard.command()
@click.argument("case_id", type=int)
@click.argument("step")
@audited_option("--note", help="What was done, for the record.")
@pass_ctx
def done(ctx: Ctx, case_id: int, step: str, note: str) -> None:
    """Record a manual step as done (STEP: its id or key)."""
    st = cases.settle(ctx.engine(), case_id, step, ctx.clock, ctx.actor, note=note,
                      config=ctx.config)
    click.echo(f"step {st.id} done")


@offboard.command()
@click.argument("case_id", type=int)
@click.argument("step")
@reason_option(help="Why this step is not needed (recorded).")
@pass_ctx
def waive(ctx: Ctx, case_id: int, step: str, reason: str) -> None:
    """Waive a step, with a reason."""
    st = cases.settle(ctx.engine(), case_id, step, ctx.clock, ctx.actor, waive_reason=reason)
    click.echo(f"step {st.id} waived")


@offboard.command("receipt")
@click.argument("case_id", type=int)
@json_option
@pass_ctx
def receipt_cmd(ctx: Ctx, case_id: int, as_json: bool | None) -> None:
    """Write a case's receipt (HTML and JSON) for the auditor; the audit log records what
    each file is, so `governor audit verify --report FILE` can check a copy of it."""
    data, paths = _receipt(ctx, ctx.engine(), case_id)
    if use_json(ctx, as_json):
        emit_json({**data, "files": {k: str(v) for k, v in paths.items()}})
        return
    click.echo(f"receipt: {paths['html']}")


def _receipt(ctx: Ctx, engine: Engine, case_id: int) -> tuple[dict[str, Any], dict[str, Path]]:
    """A case's receipt, written and recorded in one transaction: if the commit fails, the
    files are taken back (what was there before goes back in place)."""
    out_dir = ctx.config.report_dir
    with contextlib.ExitStack() as undo, transaction(engine) as s:
        now = ctx.clock()
        data = receipt.receipt(s, ctx.config, case_id, now)
        undo.enter_context(reverted_on_error(out_dir, receipt.file_names(case_id).values()))
        paths = receipt.write(s, data, out_dir, now, ctx.actor)
    return data, paths


COMMANDS = [offboard]
