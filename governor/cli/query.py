"""findings, whohas, person: read-only questions."""

from __future__ import annotations

import difflib
import json
from datetime import date, datetime, tzinfo
from typing import Any

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from governor import queries
from governor.cli.common import Ctx, emit_json, json_option, pass_ctx, table, use_json
from governor.clock import parse_shown
from governor.db import sessions
from governor.errors import NotFound
from governor.findings import (
    accepted_through,
    active_exceptions,
    exception_facts,
    lapsed_exceptions,
    status_now,
    through,
)
from governor.models import Finding, RiskException
from governor.rules import RULES
from governor.rules.base import Severity
from governor.state import policy

SEVERITIES = [s.value for s in Severity]


@click.command()
@click.option("--severity", type=click.Choice(SEVERITIES), help="At or above this severity.")
@click.option("--rule", "rule_id", help="Only this rule id.")
@click.option("--status", type=click.Choice(["open", "resolved", "excepted", "all"]),
              default="open", show_default=True,
              help="As of now: a finding whose exception has expired is open, though only "
                   "the next run records it so.")
@click.option("--outcome", type=click.Choice(["fail", "unknown", "all"]), default="all",
              show_default=True, help="fail: violations; unknown: rules that could not decide.")
@click.option("--person", help="Only findings about this person (employee id, email, alias "
              "or login, as `governor person` takes).")
@json_option
@pass_ctx
def findings(ctx: Ctx, severity: str | None, rule_id: str | None, status: str, outcome: str,
             person: str | None, as_json: bool | None) -> None:
    """List findings (default: open ones, worst first)."""
    q = select(Finding)
    if status != "all":
        # an expired exception leaves its finding stored excepted until the next run
        q = q.where(Finding.status.in_(_STORED[status]))
    if outcome != "all":
        q = q.where(Finding.outcome == outcome)
    if rule_id:
        q = q.where(Finding.rule_id == rule_id)
    if severity:
        q = q.where(Finding.severity.in_([s.value for s in Severity.at_least(Severity(severity))]))
    rank = {s.value: s.rank for s in Severity}
    now, zone = ctx.clock(), ctx.config.zone
    with sessions(ctx.engine())() as session:
        if rule_id:
            _check_rule(session, rule_id)
        eid = _person_id(ctx, session, person) if person else None
        if eid is not None:
            q = q.where(Finding.person == eid)
        held = active_exceptions(session, now)
        found = [(f, status_now(f.status, f.key, held)) for f in session.scalars(q)]
        rows = sorted(((f, st) for f, st in found if status in ("all", st)),
                      key=lambda r: (-rank.get(r[0].severity, 0), r[0].rule_id, r[0].key))
        lapsed = lapsed_exceptions(session, [f.key for f, st in rows if st != f.status])
    # the exception that holds each excepted finding now, or that lapsed on an open one
    excs = {f.key: e for f, _ in rows if (e := held.get(f.key) or lapsed.get(f.key))}
    if use_json(ctx, as_json):
        emit_json([_finding_json(f, st, excs.get(f.key), zone, now) for f, st in rows])
        return
    # "rule disabled", "source removed" or "rule settings changed" is no fix: say which,
    # as the report does
    why = ("resolution",) if status in ("resolved", "all") else ()
    # who accepted each risk, and through when, where accepted risks are listed
    accepted = ("exception", "approver", "accepted through") if status == "excepted" else ()
    table([(f.id, f.severity, f.rule_id, f.outcome if f.outcome != "fail" else "",
            st + ("*" if st != f.status else ""), *((f.resolution,) if why else ()),
            *(_accepted_cells(excs[f.key], zone) if accepted else ()), f.message)
           for f, st in rows],
          ("id", "severity", "rule", "outcome", "status", *why, *accepted, "message"))
    for f, st in rows:
        if st != f.status:
            click.echo(f"* finding {f.id}: {_lapsed_note(excs.get(f.key), zone)}")
    # whom --person resolved to: an address or alias names them only indirectly
    click.echo(f"\n{len(rows)} finding(s)" + (f" about {eid}" if eid else ""))


# the stored statuses a status filter reads (findings.status_now decides what they are now)
_STORED = {"open": ("open", "excepted"), "excepted": ("excepted",), "resolved": ("resolved",)}


def _finding_json(f: Finding, status: str, e: RiskException | None, zone: tzinfo,
                  now: datetime) -> dict[str, Any]:
    out = {"id": f.id, "key": f.key, "rule": f.rule_id, "severity": f.severity,
           "outcome": f.outcome, "status": status, "message": f.message,
           "person": f.person, "account": f.account,
           "evidence": json.loads(f.evidence), "first_seen": f.first_seen_at,
           "last_seen": f.last_seen_at, "resolved_at": f.resolved_at,
           "resolution": f.resolution, "exception": None, "note": None,
           # resolved before and back: how often, and when and how it was last resolved
           "recurrence": None if not f.times_reopened else {
               "times": f.times_reopened, "last_resolved_at": f.last_resolved_at,
               "last_resolution": f.last_resolution}}
    if e is not None and status != "resolved":
        out["exception"] = {**exception_facts(e, zone), "status": "revoked" if e.revoked_at
                            else "expired" if e.expires_at <= now else "active"}
        if status != f.status:
            out["note"] = _lapsed_note(e, zone)
    return out


def _accepted_cells(e: RiskException, zone: tzinfo) -> tuple[Any, ...]:
    return e.id, e.approver, through(e.expires_at, zone)


def _lapsed_note(e: RiskException | None, zone: tzinfo) -> str:
    """Why a finding still stored excepted lists as open: its exception has ended and
    the next run reopens it (and reports it among what changed)."""
    if e is None:  # not reached: a finding is excepted only by an exception
        return "no exception holds it any more; the next run reopens it"
    if e.revoked_at is not None:  # not reached either: a revoke reopens it at once
        return f"exception {e.id} was revoked; the next run reopens it"
    return (f"exception {e.id} expired, accepted {accepted_through(e.expires_at, zone)}; "
            "the next run reopens it")


def _person_id(ctx: Ctx, session: Session, who: str) -> str:
    """The employee id findings name ``who`` by, resolved as `governor person` does: an
    email or a lower-cased id matched nothing before, and "0 finding(s)" read as a clean
    bill for someone who holds plenty. Nobody, or more than one person: exit 4."""
    try:
        return queries.resolve_person(session, who, None, policy(ctx.config),
                                      ctx.config.zone, _reading(ctx)).employee_id
    except NotFound:
        # an id the store's findings still name, though HR no longer lists anyone by it
        if session.scalar(select(Finding.id).where(Finding.person == who.strip())
                          .limit(1)) is not None:
            return who.strip()
        raise


def _check_rule(session: Session, rule_id: str) -> None:
    """A mistyped id would otherwise filter every finding out and look like a clean bill.
    An id no longer registered is still accepted while the store holds its findings."""
    if rule_id in RULES or session.scalar(
            select(Finding.id).where(Finding.rule_id == rule_id).limit(1)) is not None:
        return
    near = difflib.get_close_matches(rule_id.lower(), list(RULES), n=1, cutoff=0.6)
    hint = f"did you mean {near[0]!r}?" if near else f"rules: {', '.join(sorted(RULES))}"
    raise click.BadParameter(f"no rule {rule_id!r} ({hint})", param_hint="--rule")


at_option = click.option("--at", "at", help="As it was at this time (ISO 8601), from history.")


def _reading(ctx: Ctx) -> list[str]:
    """The sources the config reads: a removed or renamed one's rows are its last word,
    not what holds now (queries.watched)."""
    return [name for name, sc in ctx.config.sources.items() if sc.enabled]


def _instant(ctx: Ctx, at: str | None) -> datetime | None:
    """--at as an aware instant, or None without it. Without an offset it is the
    organisation's local time (governor.timezone), as a person typing it means."""
    if not at:
        return None
    try:
        # as typed (ISO 8601), or as a table shows a time ("2026-11-20 13:00 CET")
        when = parse_shown(at, ctx.config.zone)
    except ValueError as exc:
        raise click.BadParameter(f"{at!r} is not an ISO 8601 time nor one as governor "
                                 f"shows them ({exc})", param_hint="--at") from None
    if when > ctx.clock():
        raise click.BadParameter(f"{at!r} is in the future: history tells only what was",
                                 param_hint="--at")
    return when


def _require_history(session: Session, when: datetime | None, question: str) -> None:
    if when is None:
        return
    start = queries.history_start(session)
    if start is None or when < start:
        # the store knows nothing before its first run: "nothing" would be a false answer
        raise NotFound(f"no history before {start.isoformat()} (governor's first run): "
                       f"{question} at {when.isoformat()} is not known"
                       if start is not None else "no run yet: there is no history")


@click.command()
@click.argument("account")
@at_option
@json_option
@pass_ctx
def whohas(ctx: Ctx, account: str, at: str | None, as_json: bool | None) -> None:
    """Who can reach one social account (platform:handle or handle), and how."""
    when = _instant(ctx, at)
    with sessions(ctx.engine())() as session:
        _require_history(session, when, f"who could reach {account}")
        key, holders, failed, unwatched = queries.whohas(
            session, account, when, policy(ctx.config), ctx.config.zone, _reading(ctx))
    if use_json(ctx, as_json):
        emit_json({"account": key, "at": when, "holders": [h.__dict__ for h in holders],
                   "failed_sources": [f.as_json() for f in failed],
                   "unwatched_sources": unwatched})
        return
    click.echo(f"{key}{' as of ' + when.isoformat() if when else ''}:")
    _failed_lines([f.as_json() for f in failed])
    for name in unwatched:
        click.echo(f"warning: source {name} names this account but "
                   + ("was not read then (switched off or removed from the config)"
                      if when else "is switched off or no longer in the config")
                   + ": what it holds is not shown")
    for h in holders:
        if h.match == queries.UNEXPANDED:
            click.echo(f"warning: vault item {h.via} is shared with {h.principal}, which no "
                       "directory source lists and the export does not expand: who reads "
                       "it through that group is not known")
    table([(h.principal, h.employee_id or "", h.name or "",
            (h.person_status or h.match) + _ends(ctx, h.end_date, when),
            h.role, h.raw_role, h.path, h.via or "", h.source, h.since) for h in holders],
          ("principal", "person", "name", "status", "role", "raw role", "path", "via",
           "source", "seen since"))


def _failed_lines(failed: list[dict[str, Any]]) -> None:
    """One line per source the answer rests on whose latest read failed: what is shown
    for it is its last good data, not what the source says today."""
    for f in failed:
        data_from, error = f["data_from"], f["error"]
        click.echo(f"warning: source {f['source']}'s latest read failed "
                   f"({f['failed_at'].isoformat()}{': ' + error if error else ''}); "
                   + (f"its data here is from its last good read, {data_from.isoformat()}"
                      if data_from is not None else "it has never been read well"))


def _ends(ctx: Ctx, end: date | None, when: datetime | None) -> str:
    """HR's end date beside the status it has not acted on yet: one that has passed
    reads "ended" (the rules count an employee or intern past it as a leaver), so it is
    not taken for a departure still to come."""
    if end is None:
        return ""
    today = (when or ctx.clock()).astimezone(ctx.config.zone).date()
    return f", ended {end}" if end < today else f", ends {end}"


@click.command()
@click.argument("who")
@at_option
@json_option
@pass_ctx
def person(ctx: Ctx, who: str, at: str | None, as_json: bool | None) -> None:
    """Everything one person holds (email, alias, employee id or directory login)."""
    when = _instant(ctx, at)
    principals = policy(ctx.config)
    with sessions(ctx.engine())() as session:
        _require_history(session, when, f"what {who} could reach")
        p = queries.resolve_person(session, who, when, principals, ctx.config.zone,
                                   _reading(ctx))
        info = queries.person_access(session, p.employee_id, when, principals,
                                     ctx.config.zone, _reading(ctx), now=ctx.clock())
    if use_json(ctx, as_json):
        emit_json({**info, "at": when})
        return
    click.echo(f"{info['name']} ({info['employee_id']}, {info['email'] or 'no email'})"
               f"{' as of ' + when.isoformat() if when else ''}: "
               f"{info['worker_type']}, {info['status']}"
               + _ends(ctx, info["end_date"], when))
    click.echo(f"  {info['job_title'] or '-'}, {info['department'] or '-'}")
    _failed_lines(info["failed_sources"])
    for name in info["unwatched_sources"]:
        click.echo(f"warning: source {name} names them but "
                   + ("was not read then (switched off or removed from the config)"
                      if when else "is switched off or no longer in the config")
                   + ": what they hold there is not shown")
    click.echo()
    click.echo("Directory accounts:")
    table([(d["source"], d["login"], d["status"],
            _factors(d["mfa"]), len(d["groups"]))
           for d in info["directory"]], ("source", "login", "status", "mfa", "groups"))
    click.echo("\nAccess:")
    # as whom, and why governor thinks it is them: two grants on one account can come
    # from two principals matched in different ways
    table([(g["account"], g["role"], g["raw_role"], g["path"], g["via"] or "", g["source"],
            g["principal"], g["matched_by"]) for g in info["grants"]]
          + [(a, "owner", "shared login", "vault", v["item"], v["source"], v["reader"], "")
             for v in info["vault"] for a in v["accounts"]],
          ("account", "role", "raw role", "path", "via", "source", "as", "matched by"))
    if info["unexpanded_groups"]:
        # no answer about one person can rule these out
        click.echo("\nVault items shared with a group no directory source lists (whether "
                   "they read them is not known):")
        table([(a, u["item"], u["group"], u["source"]) for u in info["unexpanded_groups"]
               for a in u["accounts"]], ("account", "item", "group", "source"))
    if info["findings"]:
        # findings are not versioned: with --at these are still today's
        click.echo("\nOpen findings now:" if when else "\nOpen findings:")
        table([(f["severity"], f["status"], f["message"]) for f in info["findings"]],
              ("severity", "status", "message"))


def _factors(mfa: list[list[str]] | None) -> str:
    # Stored as [type, status] or [type, status, provider]: the provider is written
    # only when the source reports one, so rows of both lengths are in the store.
    if mfa is None:
        return "not reported"
    return ", ".join(f"{f[0]}:{f[1]}" + (f" ({f[2]})" if len(f) > 2 and f[2] else "")
                     for f in mfa) or "none"


COMMANDS = [findings, whohas, person]
