"""Renaming a source: its history, findings, exceptions and open offboarding carried over.

A source's name is part of what governor keeps about it: every history row, the feed
guard's reads, the keys of findings whose subject names it (an orphan grant in x_team),
the exceptions on those findings, links, and the steps of open offboarding cases. Only
renaming the section in the config made the old name's findings resolve as "source
removed" and reappear under the new one as new (first seen reset, exceptions lost), and
started the renamed feed without a guard baseline. `rename_source` rewrites the old
name everywhere, in the caller's transaction, so the next run reads the new name as the
source it always was; the audit log keeps the rename (history is relabelled, not lost).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Update, func, select, update
from sqlalchemy.orm import Session

from governor import audit
from governor.config import Config
from governor.errors import InputError
from governor.findings import key_of
from governor.models import (
    OBSERVED,
    Finding,
    ObsSocialAccount,
    OffboardStep,
    PrincipalLink,
    PrincipalMatch,
    RiskException,
    Run,
    SourceRead,
)
from governor.rules import RULES


@dataclass
class Renamed:
    old: str
    new: str
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows relabelled
    findings: int = 0  # findings whose key changed
    exceptions: int = 0
    steps: int = 0


def renamed_subject(rule_id: str, subject: str, account: str | None, person: str | None,
                    old: str, new: str) -> str | None:
    """The subject a finding of `rule_id` has under the new source name, or None when
    its subject does not name the source. Each rule says what precedes the name
    (`Rule.source_in_subject`), in terms of the finding's own account and person, so a
    Page called "News | old" is never taken for the source."""
    rule = RULES.get(rule_id)
    for prefix in rule.source_in_subject if rule is not None else ():
        if ("{account}" in prefix and account is None) or (
                "{person}" in prefix and person is None):
            continue
        head = prefix.format(account=account, person=person)
        if subject == head + old or subject.startswith(head + old + "|"):
            return head + new + subject[len(head) + len(old):]
    return None


def rename_source(session: Session, config: Config, old: str, new: str, now: datetime,
                  actor: str, reason: str) -> Renamed:
    _check(session, config, old, new)
    done = Renamed(old, new)

    def relabel(name: str, stmt: Update) -> None:
        done.rows[name] = cast(CursorResult[Any], session.execute(stmt)).rowcount

    for model in OBSERVED:
        relabel(model.__tablename__,
                update(model).where(model.source == old).values(source=new))
    # the inventory's pointer to the source that reports an account's grants
    relabel("obs_social_account.grants_source", update(ObsSocialAccount).where(
        ObsSocialAccount.grants_source == old).values(grants_source=new))
    relabel("source_read", update(SourceRead).where(SourceRead.name == old).values(name=new))
    for table in (PrincipalMatch, PrincipalLink):
        relabel(table.__tablename__,
                update(table).where(table.source == old).values(source=new))
    _runs(session, old, new)
    keys = _findings(session, old, new, done)
    rekeyed: dict[str, str] = {}  # exception id -> its new finding key, for audit verify
    for exc in session.scalars(select(RiskException).where(
            RiskException.finding_key.in_(sorted(keys)))):
        exc.finding_key = keys[exc.finding_key]
        rekeyed[str(exc.id)] = exc.finding_key
        done.exceptions += 1
    _steps(session, old, new, done)
    audit.record(session, now, actor, "source.renamed", subject=f"{old} -> {new}",
                 reason=reason, detail={"rows": done.rows, "findings_rekeyed": done.findings,
                                        "exceptions": done.exceptions,
                                        "exception_keys": rekeyed,
                                        "offboard_steps": done.steps})
    return done


def _check(session: Session, config: Config, old: str, new: str) -> None:
    if old == new:
        raise InputError(f"{old!r} and {new!r} are the same name")
    if new not in config.sources:
        raise InputError(f"{new!r} is not a source in the config: rename [sources.{old}] to "
                         f"[sources.{new}] there first, then run this before the next "
                         "reconcile")
    if old in config.sources:
        raise InputError(f"{old!r} is still a source in the config: rename its section to "
                         f"[sources.{new}] first")
    last = session.execute(select(SourceRead.type).where(SourceRead.name == old)
                           .order_by(SourceRead.id.desc()).limit(1)).first()
    if last is None:
        raise InputError(f"the store has no reads of a source {old!r}: nothing to rename")
    if last.type != config.sources[new].type:
        raise InputError(f"{old!r} was read as {last.type} and {new!r} is a "
                         f"{config.sources[new].type}: a rename keeps one source's history; "
                         "a source of another type starts its own")
    first = session.scalar(select(func.min(SourceRead.run_id)).where(SourceRead.name == new))
    if first is not None:
        raise InputError(f"{new!r} already has history (first read in run {first}): a rename "
                         "must come before the first reconcile under the new name")


def _runs(session: Session, old: str, new: str) -> None:
    """Past runs' summaries name the sources they read: the feed guard's baseline looks
    for the runs forced to accept a source's level by its name."""
    like = f'%"{old}"%'
    for run in session.scalars(select(Run).where(Run.summary.like(like))):
        summary: dict[str, Any] = json.loads(run.summary or "{}")
        for name in ("sources", "mfa_enrolled"):  # per source: counts
            counts = summary.get(name)
            if isinstance(counts, dict) and old in counts:
                summary[name] = {new if k == old else k: v for k, v in counts.items()}
        for name in ("failed", "guard_accepted", "mfa_accepted"):
            listed = summary.get(name)
            if isinstance(listed, list):
                summary[name] = [new if s == old else s for s in listed]
        run.summary = json.dumps(summary)


def _findings(session: Session, old: str, new: str, done: Renamed) -> dict[str, str]:
    """Relabel the deciding sources of every finding and re-key those whose subject
    names the source; returns old key -> new key."""
    keys: dict[str, str] = {}
    for f in session.scalars(select(Finding).where(Finding.sources.like(f'%"{old}"%'))):
        deciding = json.loads(f.sources)
        if old in deciding:
            f.sources = json.dumps([new if s == old else s for s in deciding])
        subject = renamed_subject(f.rule_id, f.subject, f.account, f.person, old, new)
        if subject is not None:
            keys[f.key] = key_of(f.rule_id, subject)
            f.subject, f.key = subject, keys[f.key]
            done.findings += 1
    return keys


def _steps(session: Session, old: str, new: str, done: Renamed) -> None:
    """Offboarding steps act through their source by name, and a case's plan is matched
    to its steps by key ("role:x_team:..."): an open case must still find both."""
    for st in session.scalars(select(OffboardStep).where(OffboardStep.source == old)):
        st.source = new
        kind, sep, rest = st.key.partition(":")
        if sep and (rest == old or rest.startswith(old + ":")):
            st.key = f"{kind}:{new}{rest[len(old):]}"
        done.steps += 1
