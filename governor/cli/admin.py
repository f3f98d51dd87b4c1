"""init, db, link, exception, audit, rules, sources, report: the supporting commands."""

from __future__ import annotations

import contextlib
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from governor import audit, db, decisions, starter, state
from governor.cli.common import (
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
from governor.clock import day_end, last_day
from governor.db import sessions, transaction
from governor.errors import GovernorError, InputError, NotFound
from governor.findings import (
    accepted_through,
    active_exception,
    exception_facts,
    exceptions_then,
    through,
)
from governor.lookalike import fold
from governor.models import (
    AuditEntry,
    Finding,
    ObsCredential,
    ObsDirectoryAccount,
    ObsGrant,
    PrincipalLink,
    PrincipalMatch,
    RiskException,
    Run,
)
from governor.queries import resolve_person
from governor.rules import RULES
from governor.sources import CONNECTORS
from governor.timeline import forward_only

MAX_EXCEPTION_DAYS = 366  # an accepted risk is revisited at least yearly


def _now(ctx: Ctx, session: Session, what: str) -> datetime:
    """The time a writer records, read in its transaction (after the writers' lock, so
    after any run it waited for) and refused if it is before the last run's start:
    an entry in the audit log, an exception or a link is read in sequence with the
    runs around it (see governor.timeline)."""
    now = ctx.clock()
    forward_only(session, now, what)
    return now


@click.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path),
                default=Path("governor.toml"))
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(path: Path, force: bool) -> None:
    """Write a commented starter config."""
    if path.exists() and not force:
        # a usage mistake, nothing written: exit 2, as for any other refused argument
        raise InputError(f"{path} exists; use --force to overwrite it")
    # `init deploy/prod/governor.toml` names where the config should live; make it so
    created = not path.parent.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(starter.render(), encoding="utf-8")
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        raise InputError(f"cannot write {path}: {where}{exc.strerror or exc}") from exc
    click.echo(f"wrote {path}" + (f" (created the folder {path.parent})" if created else ""))


@click.group(name="db")
def db_group() -> None:
    """Database schema (Alembic migrations)."""


@db_group.command()
@click.option("--revision", default="head", show_default=True)
@pass_ctx
def upgrade(ctx: Ctx, revision: str) -> None:
    """Apply migrations up to REVISION."""
    engine = ctx.engine(at_head=False)
    # an existing store's schema change is on record, with who made it
    db.upgrade(engine, revision, audit_as=(ctx.actor, ctx.clock()))
    click.echo(f"database at {db.current(engine)}")


@db_group.command()
@click.argument("revision")
@click.option("--yes", is_flag=True, help="Confirm that the data of the tables it drops goes "
              "with them.")
@pass_ctx
def downgrade(ctx: Ctx, revision: str, yes: bool) -> None:
    """Revert migrations down to REVISION ('base' for an empty database)."""
    if not yes:
        # the audit log is append-only against every statement but DROP TABLE
        raise click.UsageError(
            f"a downgrade to {revision} drops the tables of the migrations it reverts, with "
            "their data ('base': everything, the audit log and all history included); pass "
            "--yes if that is what you want, after a backup")
    engine = ctx.engine(at_head=False)
    db.downgrade(engine, revision, audit_as=(ctx.actor, ctx.clock()))
    click.echo(f"database at {db.current(engine) or 'base'}")


@db_group.command()
@pass_ctx
def current(ctx: Ctx) -> None:
    """Show the schema revision and the code's head."""
    engine = ctx.engine(at_head=False)
    click.echo(f"database: {db.current(engine) or 'empty'}; code head: "
               f"{', '.join(db.heads(engine))}")


@db_group.command()
@pass_ctx
def check(ctx: Ctx) -> None:
    """Fail if the models and the migrations disagree (alembic check)."""
    engine = ctx.engine(at_head=True)
    heads = db.heads(engine)
    if len(heads) != 1:
        raise GovernorError(f"expected one migration head, found {len(heads)}: {heads}")
    db.check(engine)
    click.echo("models and migrations agree; one head")


@click.command()
@click.argument("source")
@click.argument("principal")
@click.argument("who")
@reason_option(help="Why this principal is this person (audited).")
@json_option
@pass_ctx
def link(ctx: Ctx, source: str, principal: str, who: str, reason: str,
         as_json: bool | None) -> None:
    """Say by hand that PRINCIPAL in SOURCE ('*' for any) is the person WHO."""
    if source != "*" and source not in ctx.config.sources:
        raise NotFound(f"no source {source!r} in {ctx.config_path}")
    low = fold(principal)
    for d in ctx.config.principals:
        # correlation reads a declaration before any link: this one would never be read
        if fold(d.principal) == low and d.source in ("*", source):
            raise InputError(
                f"{d.source}/{d.principal} is declared a {d.kind} account in "
                f"{ctx.config_path} ([[principals]]), and a declaration comes before any "
                "link: remove the declaration to link the principal to a person")
    with transaction(ctx.engine()) as s:
        now = _now(ctx, s, "a link")
        eid = resolve_person(s, who).employee_id
        auto = _automatic_matches(s, source, low)
        other = next((m for m in auto if m.employee_id != eid), None)
        if other is not None:
            raise InputError(
                f"{other.source}/{principal} already matches {other.employee_id} "
                f"({other.reason}) as of the last reconcile; an employee id or email match "
                f"comes before any link, so a link to {eid} would change nothing. Fix the "
                "HR or directory data, or declare the principal in [[principals]] instead")
        for old in s.scalars(select(PrincipalLink).where(
                PrincipalLink.source == source, PrincipalLink.principal == low,
                PrincipalLink.ended_at.is_(None))):
            old.ended_at, old.ended_by, old.end_reason = now, ctx.actor, f"replaced: {reason}"
        s.add(PrincipalLink(source=source, principal=low, employee_id=eid,
                            reason=reason, actor=ctx.actor, created_at=now))
        audit.record(s, now, ctx.actor, "link.added", subject=f"{source}/{principal}",
                     reason=reason, detail={"employee_id": eid})
        reported = _ever_reported(s, source, low)
    if not reported:
        # kept: a link may be made before the principal first shows up; but a typo would
        # wait for a principal that never comes, and its real one stay an orphan
        who = "no source has ever" if source == "*" else f"source {source} has never"
        warn(f"warning: {who} reported the principal {principal!r} (compared without "
             "case): the link waits until one does; check its spelling")
    if auto:
        # named per source: under '*' the link still decides sources that match no one
        said = (f"linked {source}/{principal} to {eid}; in {auto[0].source} it already "
                f"matches {eid} ({auto[0].reason}), which comes first: there the link is "
                "used only if that match goes away")
    else:
        said = f"linked {source}/{principal} to {eid}; the next reconcile uses it"
    if use_json(ctx, as_json):
        emit_json({"source": source, "principal": principal, "employee_id": eid,
                   "principal_reported": reported,
                   "already_matches": [{"source": m.source, "employee_id": m.employee_id,
                                        "reason": m.reason} for m in auto],
                   "message": said})
        return
    click.echo(said)


# the tiers before links (correlate.py): a link never overrides one of these
_AUTOMATIC = ("employee_id", "email", "alias", "plus_address")


def _automatic_matches(session: Session, source: str, low: str) -> list[PrincipalMatch]:
    """The last run's unique matches of a principal that a link would come after. A
    principal the store has not seen yet has none: the link is kept for when it is."""
    q = select(PrincipalMatch).where(PrincipalMatch.principal == low,
                                     PrincipalMatch.status == "matched",
                                     PrincipalMatch.method.in_(_AUTOMATIC))
    if source != "*":
        q = q.where(PrincipalMatch.source == source)
    return list(session.scalars(q.order_by(db.bytewise(PrincipalMatch.source))))


def _ever_reported(session: Session, source: str, low: str) -> bool:
    """Has ``source`` ('*': any source) ever reported the principal ``low`` (folded) as a
    grant holder, directory login or vault reader, now or in its history?"""
    def scoped(q: Any, model: Any) -> Any:
        return q if source == "*" else q.where(model.source == source)

    for q, model in ((select(PrincipalMatch.id).where(PrincipalMatch.principal == low),
                      PrincipalMatch),
                     (select(ObsGrant.id).where(ObsGrant.principal_lc == low), ObsGrant),
                     (select(ObsDirectoryAccount.id).where(ObsDirectoryAccount.login == low),
                      ObsDirectoryAccount)):
        if session.scalar(scoped(q, model).limit(1)) is not None:
            return True
    # readers are a JSON list per vault item; a vault holds hundreds of items, not millions
    readers = scoped(select(ObsCredential.readers), ObsCredential)
    return any(low in {fold(r) for r in json.loads(text)} for text in session.scalars(readers))


@click.command()
@click.argument("source")
@click.argument("principal")
@reason_option()
@pass_ctx
def unlink(ctx: Ctx, source: str, principal: str, reason: str) -> None:
    """End a link made with `governor link`."""
    with transaction(ctx.engine()) as s:
        now = _now(ctx, s, "a link")
        rows = list(s.scalars(select(PrincipalLink).where(
            PrincipalLink.source == source, PrincipalLink.principal == fold(principal),
            PrincipalLink.ended_at.is_(None))))
        if not rows:
            raise NotFound(f"no active link for {source}/{principal}")
        for r in rows:
            r.ended_at, r.ended_by, r.end_reason = now, ctx.actor, reason
        audit.record(s, now, ctx.actor, "link.ended", subject=f"{source}/{principal}",
                     reason=reason)
    click.echo(f"ended the link for {source}/{principal}")


def _same_person(a: str, b: str) -> bool:
    """The same name, or the same mailbox name where either is an address ("alice" and
    "alice@corp.example": an OS user records, approvers are often given by email), a
    plus tag aside ("alice+ok@corp.example" is alice's mailbox too)."""
    def name(who: str) -> str:
        return who.strip().casefold().partition("@")[0].partition("+")[0]
    return a.strip().casefold() == b.strip().casefold() or (
        ("@" in a or "@" in b) and name(a) == name(b) != "")


@click.group()
def exception() -> None:
    """Accepted risks: one finding, a reason, an approver, an expiry."""


def _finding(session: Session, ref: str) -> Finding:
    q = select(Finding).where(Finding.id == int(ref)) if ref.isdigit() else \
        select(Finding).where(Finding.key == ref)
    # locked, so two concurrent `exception add`s on one finding cannot both see it free
    f = session.scalar(q.with_for_update())
    if f is None:
        raise NotFound(f"no finding {ref!r} (give its id or key, see `governor findings`)")
    return f


@exception.command("add")
@click.argument("finding")
@reason_option(help="Why the risk is accepted.")
@audited_option("--approver", help="Who accepted it: someone other than the actor.")
@click.option("--expires", required=True, type=click.DateTime(["%Y-%m-%d"]),
              help=f"Last day it holds (YYYY-MM-DD, at most {MAX_EXCEPTION_DAYS} days ahead).")
@pass_ctx
def exception_add(ctx: Ctx, finding: str, reason: str, approver: str, expires: datetime) -> None:
    """Accept the risk of one FINDING (id or key), through the day given to --expires.

    The approver must be someone other than the actor who records it."""
    if _same_person(approver, ctx.actor):
        # segregation of duties: an accepted risk is evidence that a second person agreed;
        # one person both recording and approving it is the control an auditor tests for
        raise click.BadParameter(
            f"the approver must be someone other than who records the exception (both are "
            f"{approver!r}); have the approver's decision recorded by someone else, whose "
            "name --actor or GOVERNOR_ACTOR gives", param_hint="--approver")
    zone = ctx.config.zone
    # the risk is accepted through the last day, to midnight after it where the
    # organisation is (midnight UTC ended it at 16:00 on that day in California)
    too_far = click.BadParameter(f"at most {MAX_EXCEPTION_DAYS} days ahead",
                                 param_hint="--expires")
    try:
        until = day_end(expires.date(), zone)
    except OverflowError:
        # 9999-12-31 has no midnight after it: far past the limit in any case
        raise too_far from None
    with transaction(ctx.engine()) as s:
        now = _now(ctx, s, "an exception")
        if until <= now:
            raise click.BadParameter("must be in the future", param_hint="--expires")
        if until - now > timedelta(days=MAX_EXCEPTION_DAYS):
            raise too_far
        f = _finding(s, finding)
        if f.status == "resolved":
            raise InputError(f"finding {f.id} is resolved; nothing to accept")
        held = active_exception(s, f.key, now)
        if held is not None:
            # one accepted risk per finding: a second would outlive a revoke of either
            # and leave `exception list` unable to say which one holds
            raise InputError(
                f"finding {f.id} already has active exception {held.id} (approver "
                f"{held.approver}, {accepted_through(held.expires_at, zone)}); to "
                f"replace it, revoke it first: governor exception revoke {held.id} "
                "--reason '...'")
        e = RiskException(finding_key=f.key, reason=reason, approver=approver,
                          expires_at=until, created_by=ctx.actor, created_at=now)
        s.add(e)
        f.status = "excepted"
        s.flush()
        audit.record(s, now, ctx.actor, "exception.added", subject=f.key, reason=reason,
                     detail={"exception": e.id, "approver": approver,
                             "expires": until.isoformat()})
    click.echo(f"exception {e.id}: {f.key} accepted {accepted_through(until, zone)} "
               f"(approver {approver})")


@exception.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include revoked and expired ones.")
@json_option
@pass_ctx
def exception_list(ctx: Ctx, show_all: bool, as_json: bool | None) -> None:
    """List accepted risks."""
    now, zone = ctx.clock(), ctx.config.zone
    with sessions(ctx.engine())() as s:
        rows = list(s.scalars(select(RiskException).order_by(RiskException.id)))

    def st(e: RiskException) -> str:
        return "revoked" if e.revoked_at else "expired" if e.expires_at <= now else "active"

    # every active one, even several on one finding (a store written before add refused it)
    rows = [e for e in rows if show_all or st(e) == "active"]

    if use_json(ctx, as_json):
        # last_day: the day --expires was given, the risk held to its end (expires_at);
        # a revoked one says when, by whom and why, as the audit log does
        emit_json([{**exception_facts(e, zone), "finding": e.finding_key, "status": st(e),
                    "revoked_at": e.revoked_at, "revoked_by": e.revoked_by,
                    "revoke_reason": e.revoke_reason} for e in rows])
        return
    # only --all lists revoked ones: their columns would be empty otherwise
    ended = ("revoked at", "revoked by", "revoke reason") if show_all else ()
    table([(e.id, st(e), e.finding_key, e.approver, e.created_by,
            through(e.expires_at, zone), e.reason,
            *((e.revoked_at, e.revoked_by, e.revoke_reason) if show_all else ()))
           for e in rows],
          ("id", "status", "finding", "approver", "recorded by", "accepted through", "reason",
           *ended))


@exception.command("revoke")
@click.argument("exception_id", type=int)
@reason_option()
@pass_ctx
def exception_revoke(ctx: Ctx, exception_id: int, reason: str) -> None:
    """Revoke an accepted risk; its finding opens again."""
    with transaction(ctx.engine()) as s:
        now = _now(ctx, s, "an exception")
        e = s.get(RiskException, exception_id)
        if e is None:
            raise NotFound(f"no active exception {exception_id}")
        if e.revoked_at is not None:
            raise NotFound(f"no active exception {exception_id}: it was revoked on "
                           f"{e.revoked_at:%Y-%m-%d} by {e.revoked_by}")
        if e.expires_at <= now:
            # an expired exception accepts nothing any more: a revoke would log a decision
            # that changed nothing, and read as if the risk had been held until today
            raise NotFound(f"no active exception {exception_id}: it has expired (its last "
                           f"day was {last_day(e.expires_at, ctx.config.zone)}), so there is "
                           "nothing to revoke; the first run after the expiry reopens its "
                           "finding")
        e.revoked_at, e.revoked_by, e.revoke_reason = now, ctx.actor, reason
        s.flush()
        f = s.scalar(select(Finding).where(Finding.key == e.finding_key))
        if f is not None and f.status == "excepted" and \
                active_exception(s, e.finding_key, now) is None:
            f.status = "open"
        audit.record(s, now, ctx.actor, "exception.revoked", subject=e.finding_key,
                     reason=reason, detail={"exception": e.id})
    click.echo(f"revoked exception {exception_id}")


@click.group(name="audit")
def audit_group() -> None:
    """The append-only audit log."""


@audit_group.command()
@click.option("--report", "reports", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A report file to check (repeatable): that its bytes are those of a file "
                   "a run recorded writing (any name: a copy counts), and for a nightly JSON "
                   "report that the log still holds the head it copied. Default: the report "
                   "directory's nightly-latest.json and nightly-latest.html, where there.")
@pass_ctx
def verify(ctx: Ctx, reports: tuple[Path, ...]) -> None:
    """Check the hash chain (nothing removed, reordered or rewritten), that the log still
    holds the newest entry a nightly report recorded (nothing cut off its end), and that
    report files are byte for byte what governor wrote (the SHA-256 each run records)."""
    files = list(reports) or [p for p in (ctx.config.report_dir / n
                                          for n in audit.LATEST_NAMES) if p.is_file()]
    claims = {path: audit.file_claim(path, _sha256(path)) for path in files}
    # each report's copy of the head, read with the rest of what it says of itself
    anchors = [(c.anchor[0], c.anchor[1], path.name) for path, c in claims.items()
               if c.anchor is not None]
    with sessions(ctx.engine())() as s:
        v = audit.verify(s, anchors)
        changed = decisions.mismatches(s) if not v.problem else []
        verdicts = {} if v.problem else {
            path: audit.file_verdict(s, claim) for path, claim in claims.items()}
    if v.problem:
        raise GovernorError(f"audit log broken after {v.entries - 1} good entries: {v.problem}")
    if changed:
        # the chain holds, but a decision in force is not the one it records
        raise GovernorError("audit log intact, but decisions in force differ from it: "
                            + "; ".join(changed[:5])
                            + (f" (+{len(changed) - 5} more)" if len(changed) > 5 else ""))
    altered = [_altered(path, claims[path].sha256, f) for path, f in verdicts.items()
               if f.status == "changed"]
    if altered:
        raise GovernorError("audit log intact, but " + "; ".join(altered))
    held = {a[2] for a in anchors}
    for path, f in verdicts.items():
        if not reports or f.status == "intact" or f.status == "unrecorded" and \
                path.name in held:
            continue
        # checked against nothing: passing it would read as "this file agrees"
        what = {"uncommitted": "it is a report of a run that never committed, set aside by "
                               "governor (the next run does so for a run killed before "
                               "its commit)",
                "unrecorded": "its run recorded no digests (written before governor "
                              "recorded them) and it holds no audit head"}.get(
            f.status, "holds no audit head, no audit entry records a file with its "
                      "contents, and nothing in it or its name says it is a governor report")
        raise InputError(f"{path}: {what}; nothing was checked against it")
    click.echo(f"audit log intact: {v.entries} entries"
               + "".join(f"; holds entry {e}, the newest when {w} was written"
                         for e, _, w in anchors)
               + "".join(_intact(path, f) if f.record is not None else
                         f"; {path.name}'s bytes are not on record (its run wrote no "
                         "digests: before governor recorded them)"
                         for path, f in verdicts.items()
                         if f.status == "intact" or reports and f.status == "unrecorded"))


_WROTE = {"run.completed": "{subject} wrote",
          "report.rewritten": "`report nightly --replace` wrote for {subject}",
          "report.restored": "`report nightly` restored for {subject}",
          "offboard.receipt": "`offboard` wrote as the receipt of {subject}"}


def _wrote(rec: audit.FileRecord) -> str:
    return _WROTE.get(rec.action, "{subject}").format(subject=rec.subject or "a run")


def _intact(path: Path, f: audit.FileVerdict) -> str:
    """'; nightly-7.html is byte for byte what run 7 wrote (audit entry 31)', naming the
    file where a copy is renamed, and a newer file of the same name where there is one."""
    assert f.record is not None
    rec = f.record
    what = "what" if rec.name == path.name else f"{rec.name}, what"
    newer = (f"; a newer {rec.name} was recorded since ({_wrote(f.newer)}, audit entry "
             f"{f.newer.entry})" if f.newer is not None else "")
    return f"; {path.name} is byte for byte {what} {_wrote(rec)} (audit entry {rec.entry})" \
        + newer


def _altered(path: Path, sha: str, f: audit.FileVerdict) -> str:
    said = (f"{_wrote(f.record)} {f.record.name} with {f.record.sha256} (audit entry "
            f"{f.record.entry})" if f.record is not None else f.why)
    return (f"{path} is not the file governor wrote: its SHA-256 is {sha}, and {said}: it "
            "was changed after it was written, or is not governor's")


def _sha256(path: Path) -> str:
    from governor.reports.digest import of_file

    try:
        return of_file(path)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None


@audit_group.command("list")
@click.option("--limit", default=50, show_default=True)
@json_option
@pass_ctx
def audit_list(ctx: Ctx, limit: int, as_json: bool | None) -> None:
    """Show the newest audit entries."""
    with sessions(ctx.engine())() as s:
        rows = list(s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)))
    if use_json(ctx, as_json):
        emit_json([{"id": e.id, "at": e.at, "actor": e.actor, "action": e.action,
                    "subject": e.subject, "reason": e.reason} for e in rows])
        return
    table([(e.id, e.at, e.actor, e.action, e.subject or "", e.reason or "") for e in rows],
          ("id", "at", "actor", "action", "subject", "reason"))


@click.command()
@json_option
@pass_ctx
def rules(ctx: Ctx, as_json: bool | None) -> None:
    """The rule catalogue."""
    if use_json(ctx, as_json):
        emit_json([{"id": r.id, "title": r.title, "severity": r.severity.value,
                    "rationale": r.rationale, "remediation": r.remediation,
                    "controls": list(r.controls), "needs": sorted(k.value for k in r.needs),
                    "requires": sorted(k.value for k in r.requires),
                    "requires_any": sorted(k.value for k in r.requires_any),
                    "params": {k: o.default for k, o in r.params.items()}}
                   for r in sorted(RULES.values(), key=lambda r: r.id)])
        return
    table([(r.id, r.severity.value, ", ".join(r.controls), r.title)
           for r in sorted(RULES.values(), key=lambda r: r.id)],
          ("id", "severity", "controls", "title"))


@click.group(invoke_without_command=True)
@click.pass_context
def sources(cctx: click.Context) -> None:
    """The connector types a config can use (`sources rename`: rename a source)."""
    if cctx.invoked_subcommand is None:
        table([(t, c.kind.value, c.description) for t, c in sorted(CONNECTORS.items())],
              ("type", "kind", "description"))


@sources.command("rename")
@click.argument("old")
@click.argument("new")
@reason_option(help="Why the source is renamed (audited).")
@pass_ctx
def sources_rename(ctx: Ctx, old: str, new: str, reason: str) -> None:
    """Carry source OLD's history, findings, exceptions, links and open offboarding steps
    over to NEW, after [sources.OLD] was renamed [sources.NEW] in the config and before
    the next reconcile. Without it the old name's findings resolve as "source removed"
    and come back as new under NEW, losing their first-seen dates and exceptions."""
    from governor.rename import rename_source

    with transaction(ctx.engine()) as s:
        done = rename_source(s, ctx.config, old, new, _now(ctx, s, "a rename"), ctx.actor,
                             reason)
    click.echo(f"renamed source {old} to {new}: {sum(done.rows.values())} rows, "
               f"{done.findings} findings re-keyed, {done.exceptions} exceptions, "
               f"{done.steps} offboarding steps")
    click.echo("if the account inventory names it as an account's grants source, change "
               f"grants_source = \"{old}\" there to \"{new}\" too")


@click.group()
def report() -> None:
    """Write reports again from the store."""


@report.command()
@click.option("--replace", is_flag=True,
              help="Write it even where the run's report files exist (needs --reason).")
@reason_option(required=False)
@pass_ctx
def nightly(ctx: Ctx, replace: bool, reason: str | None) -> None:
    """Write the latest run's nightly report again from the store.

    Only the files of it that are missing (those still there are kept as they are),
    unless --replace --reason: a run's report is the evidence of its night. What is
    written again says when, by whom and why, and the audit log records it."""
    from governor.reports import reverted_on_error
    from governor.reports.build import nightly_report
    from governor.reports.nightly import LATEST, file_names, write_nightly

    if replace and not reason:
        raise click.UsageError("--replace needs --reason: replacing a run's report is audited")
    out_dir = ctx.config.report_dir
    paths: dict[str, Path] = {}
    # outermost, so a commit that fails after the files are placed puts back what was
    # there (the run's earlier report, the latest copies) and removes what was not
    with contextlib.ExitStack() as undo, transaction(ctx.engine()) as s:
        r = s.scalar(select(Run).where(Run.status.in_(("ok", "partial")))
                     .order_by(Run.id.desc()).limit(1))
        if r is None:
            raise NotFound("no completed run yet: run `governor reconcile`")
        names = file_names(r.id)
        there = sorted(n for n in names.values() if (out_dir / n).exists())
        if len(there) == len(names) and not replace:
            raise GovernorError(
                f"run {r.id}'s report is already in {out_dir} ({', '.join(there)}): a "
                "run's report is the evidence of its night and is not rewritten. To "
                "write it again from the store as it is now, pass --replace --reason "
                "'...' (audited; the report will say so).")
        # some files gone: restore just those, never touching the evidence still there
        restore = ([f for f, n in names.items() if n not in there]
                   if there and not replace else None)
        now = _now(ctx, s, "a report")
        snap = state.snapshot(s, ctx.config, r.started_at,
                              {n: True for n in ctx.config.sources})
        # the findings as the run left them: exceptions added or revoked since not applied
        # a run that carried an earlier one's results says so in every copy of its report
        carried = json.loads(r.summary or "{}").get("reused_run")
        rep = nightly_report(s, ctx.config, r, snap, exceptions_then=exceptions_then(s, r),
                             carried_from_run=carried if isinstance(carried, int) else None)
        rep.rewritten = {"at": now, "actor": ctx.actor, "reason": reason}
        undo.enter_context(reverted_on_error(out_dir, [*names.values(), *LATEST.values()]))
        # recorded after writing, with what each written file is (audit verify --report)
        if restore is None:
            paths = write_nightly(rep, out_dir)
            audit.record(s, now, ctx.actor, "report.rewritten", subject=f"run {r.id}",
                         reason=reason, detail={"replaced": there,
                                                "report_files": rep.file_digests})
        else:
            # a missing latest copy comes back too, and is listed
            paths = write_nightly(rep, out_dir, only=restore)
            written = sorted(p.name for p in paths.values())
            audit.record(s, now, ctx.actor, "report.restored", subject=f"run {r.id}",
                         reason=reason, detail={"written": written, "kept": there,
                                                "report_files": rep.file_digests})
    if restore is not None:
        click.echo(f"restored: {', '.join(sorted(p.name for p in paths.values()))}")
    click.echo(f"report: {out_dir / names['html']}")


COMMANDS = [init, db_group, link, unlink, exception, audit_group, rules, sources, report]
