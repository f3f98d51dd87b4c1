"""The feed guards: why a run must stop before any finding changes.

A source that returns nothing, far fewer records than its recent good reads, or far
fewer of the same ones (guard_trips); a source the last run read that the config no
longer has or switches off (removed_sources); too many people with access turning
leavers at once (leaver_surge); a directory export that lost its MFA column, at once
(mfa_loss) or over several nights (mfa_decline). Each says why in a line an operator
can act on; `reconcile --force --reason` passes them, on record.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Iterator
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from governor import state
from governor.config import Config
from governor.models import (
    Finding,
    ObsCredential,
    ObsDirectoryAccount,
    ObsPerson,
    Run,
    SourceRead,
)
from governor.queries import escape_like, row_has_left
from governor.records import WEAK_FACTORS, DirectoryStatus, SourceKind
from governor.rules._common import more
from governor.snapshot import Snapshot

if TYPE_CHECKING:
    from governor.reconcile import SourceOutcome


def last_good(session: Session, name: str) -> SourceRead | None:
    return session.scalar(
        select(SourceRead).join(Run, Run.id == SourceRead.run_id)
        .where(SourceRead.name == name, SourceRead.status == "ok",
               Run.status.in_(("ok", "partial")))
        .order_by(SourceRead.id.desc()).limit(1))


GUARD_RUNS = 7  # how many recent good reads the feed guard compares with


def feed_baseline(session: Session, name: str) -> int | None:
    """The most records a source returned in its last GUARD_RUNS good reads, back to and
    including the last forced run that accepted this source's new level. Comparing with
    the last run alone let a feed shrink by 25% a night, every night, unguarded; a run
    forced for another source (or for the clock) accepts nothing of this one."""
    # reads, not reruns: an unchanged export skipped by its fingerprint repeats the
    # count before it, and seven same-day reruns would push the real history out
    reads = session.execute(
        select(SourceRead.count, Run.forced, Run.summary)
        .join(Run, Run.id == SourceRead.run_id)
        .where(SourceRead.name == name, SourceRead.status == "ok",
               SourceRead.unchanged.is_not(True), Run.status.in_(("ok", "partial")))
        .order_by(SourceRead.id.desc()).limit(GUARD_RUNS)).all()
    most: int | None = None
    for count, forced, summary in reads:
        most = count if most is None else max(most, count)
        if forced and name in _accepted(summary):
            break  # an operator accepted this source's level then
    if most is None:  # only unchanged reads in the window: the same count as before
        last = last_good(session, name)
        most = last.count if last is not None else None
    return most


def _accepted(summary: str | None) -> list[str]:
    try:
        found = json.loads(summary or "{}").get("guard_accepted", [])
    except (ValueError, AttributeError):
        return []
    return found if isinstance(found, list) else []


def guard_trips(config: Config, outcomes: list[SourceOutcome]) -> dict[str, str]:
    """Source name -> why the run must stop for it: it returned nothing, far fewer
    records than recently, or far fewer of the same records (a change of identifiers,
    E1 -> E0001, returns as many records and makes every one of them new; a cut export
    topped up with rows under new identifiers hides its loss from the count)."""
    max_drop, floor = config.feed_guard["max_drop"], config.feed_guard["min_baseline"]
    problems = {}
    for o in outcomes:
        if not o.ok:
            continue
        gone = ("; the people it no longer lists would count as having left"
                if o.kind == SourceKind.HR.value else "")
        if o.count == 0 and o.baseline != 0:
            # (a level of none that an operator accepted with --force is the baseline:
            # a source not in use yet stays empty without stopping every night)
            problems[o.name] = (f"{o.name}: returned no records"
                                + (f" (recent good runs: up to {o.baseline})"
                                   if o.baseline else ""))
        elif o.baseline and o.baseline >= floor and o.count < o.baseline * (1 - max_drop):
            drop = 1 - o.count / o.baseline
            problems[o.name] = (f"{o.name}: returned {o.count} records, {drop:.0%} fewer "
                                f"than the {o.baseline} of its recent good runs (limit "
                                f"{max_drop:.0%})" + gone)
        elif o.baseline and o.baseline >= floor and o.vanished > o.baseline * max_drop:
            # what vanished counts, not what the net count says: new records in place of
            # the lost ones are the same people under other identifiers, or other rows
            # topping up a cut export (ordinary churn stays under the limit)
            swapped = o.fresh > o.baseline * max_drop
            problems[o.name] = (f"{o.name}: {o.vanished} of the records it returned last "
                                f"time are gone ({o.vanished / o.baseline:.0%} of "
                                f"{o.baseline}; limit {max_drop:.0%}) though it returned "
                                f"{o.count}"
                                + (": did its identifiers change?" if swapped else
                                   f", {o.fresh} of them new") + gone)
    return problems


def readers_lost(session: Session, config: Config, outcomes: list[SourceOutcome],
                 run_id: int, at: datetime) -> dict[str, str]:
    """Source name -> why the run must stop for it: a vault source whose items, still
    returned, lost more than feed_guard.max_drop of the readers (people and groups)
    they had at its last read. An export job that leaves every item's readers out
    returns as many items as before and passes guard_trips, and each leaver's shared
    login would resolve as fixed. Items no longer returned are guard_trips' business.
    A reader who has left is not counted as lost: taking them off is what governor asks
    for, and in a small vault one such removal was a third of its readers."""
    max_drop, floor = config.feed_guard["max_drop"], config.feed_guard["min_baseline"]
    out = {}
    left: set[str] | None = None  # their addresses, read when a reader went
    for o in outcomes:
        if not o.ok or o.unchanged or o.kind != SourceKind.VAULT.value:
            continue
        c = ObsCredential
        rows = session.execute(select(c.nk, c.first_run_id, c.ended_run_id, c.readers,
                                      c.reader_groups).where(
            c.source == o.name, or_(c.ended_run_id.is_(None), c.ended_run_id == run_id)))
        before: dict[str, set[tuple[str, str]]] = {}
        now: dict[str, set[tuple[str, str]]] = {}
        for nk, first, ended, readers, groups in rows:
            held = {*(("reader", r.lower()) for r in json.loads(readers)),
                    *(("group", g.lower()) for g in json.loads(groups))}
            if first < run_id:
                before[nk] = held
            if ended is None:
                now[nk] = held
        baseline = sum(len(h) for h in before.values())
        went = [r for nk, held in before.items() if nk in now for r in held - now[nk]]
        if went and left is None:
            left = _left_addresses(session, {name for _, name in went}, at, config.zone)
        lost = sum(1 for kind, name in went if kind != "reader" or name not in (left or ()))
        if baseline and baseline >= floor and lost > baseline * max_drop:
            out[o.name] = (f"{o.name}: {lost} of the {baseline} readers (people and groups) "
                           f"its items had at its last read are gone from items it still "
                           f"returns, people who have left aside ({lost / baseline:.0%}; "
                           f"limit {max_drop:.0%}): did the "
                           "export leave out readers? Their shared logins would count as "
                           "no longer held")
    return out


def _left_addresses(session: Session, names: set[str], at: datetime, zone: tzinfo
                    ) -> set[str]:
    """Those of ``names`` (readers gone, lower-cased) that are the work email of someone
    who has left (queries.row_has_left), or whom HR lists no longer (their rows all
    ended). By the email index: a reader named by an alias counts as lost."""
    live: dict[str, bool] = {}  # employee id -> has left, by their current row
    emails: dict[str, str] = {}  # employee id -> their email among the names
    for o in session.scalars(select(ObsPerson).where(ObsPerson.email.in_(sorted(names)))):
        emails[o.employee_id] = (o.email or "").lower()
        if o.ended_at is None:
            live[o.employee_id] = row_has_left(o, at, zone)
    return {email for eid, email in emails.items() if live.get(eid, True)}


# Fields an export job can drop or empty while every record still comes back, and what
# their loss would do: per kind of source, the model its rows are in. A JSON-list column
# (aliases, groups) is empty as "[]"; the others as NULL.
_WATCHED_FIELDS: dict[str, tuple[type[ObsPerson] | type[ObsDirectoryAccount],
                                  dict[str, str]]] = {
    SourceKind.HR.value: (ObsPerson, {
        "end_date": "people past their last day whom HR still lists as active would count "
                    "as staff",
        "email": "their people would no longer match the accounts they hold",
        "aliases": "their people would no longer match the accounts they hold under an "
                   "alias"}),
    SourceKind.DIRECTORY.value: (ObsDirectoryAccount, {
        "email": "its accounts would no longer match their people",
        "employee_id": "its accounts would no longer match their people",
        "aliases": "its accounts would no longer match their people by alias",
        "groups": "access through its groups (SSO group roles, management tool seats, vault "
                  "items shared with a group) would count as gone"}),
}
_LISTED = frozenset({"aliases", "groups"})


def _holds(model: type[ObsPerson] | type[ObsDirectoryAccount], name: str
           ) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """(has the field, has it not) as SQL for one watched field."""
    column = getattr(model, name)
    if name in _LISTED:
        return column != "[]", column == "[]"
    return column.is_not(None), column.is_(None)


def fields_emptied(session: Session, config: Config, outcomes: list[SourceOutcome],
                   run_id: int) -> dict[str, str]:
    """Source name -> why the run must stop for it: an HR or directory source whose
    records, still returned, lost a field (an end date, an email, an employee id, their
    aliases or groups) in more than feed_guard.max_drop of those that had it at its last
    read. An export job that empties a column returns every record and passes
    guard_trips; each leaver's findings would then resolve as fixed. Records no longer
    returned are guard_trips' business."""
    max_drop, floor = config.feed_guard["max_drop"], config.feed_guard["min_baseline"]
    out: dict[str, str] = {}
    for o in outcomes:
        watched = _WATCHED_FIELDS.get(o.kind)
        if not o.ok or o.unchanged or watched is None:
            continue
        model, effects = watched
        lines = []
        for name, effect in effects.items():
            has, lacks = _holds(model, name)
            # changed records only: the versions this run ended that had the field (few
            # on most nights: asked first), then those it began, by natural key
            ended = {nk: status for nk, status in session.execute(
                select(model.nk, model.status).where(
                    model.source == o.name, model.ended_at.is_not(None),
                    model.ended_run_id == run_id, has))}
            if not ended:
                continue
            had = session.scalar(select(func.count()).where(
                model.source == o.name, model.first_run_id < run_id, has,
                or_(model.ended_run_id.is_(None), model.ended_run_id == run_id)))
            if not had or had < floor or len(ended) <= had * max_drop:
                continue  # not enough changed at all to trip
            # with its status unchanged: an account disabled and taken out of its groups
            # (offboarding), a rehire's end date cleared, is a change of the person's,
            # where an export that lost a column changes nothing else
            lost = sum(1 for nk, status in session.execute(
                select(model.nk, model.status).where(
                    model.source == o.name, model.ended_at.is_(None),
                    model.first_run_id == run_id, lacks)) if ended.get(nk) == status)
            if lost > had * max_drop:
                lines.append(f"{lost} of the {had} records that had {name} at its last read "
                             f"have none now ({lost / had:.0%}; limit {max_drop:.0%}): "
                             f"{effect}")
        if lines:
            out[o.name] = (f"{o.name}: " + "; ".join(lines)
                           + ". Did the export leave a column out or empty?")
    return out


def removed_sources(session: Session, config: Config, prev: Run | None) -> dict[str, str]:
    """Source name -> why the run must stop for it: the last run read it, and the config
    no longer has it or switches it off. Its findings would resolve as "source removed"
    and what it reports stop counting (a switched-off HR source makes its people
    nobody, their access orphans). On purpose, that is --force --reason, on record; a
    config cut short or deployed from the wrong branch is a stop, not a quiet night."""
    if prev is None:
        return {}
    out = {}
    for name in sorted(set(session.scalars(select(SourceRead.name).where(
            SourceRead.run_id == prev.id)))):
        sc = config.sources.get(name)
        if sc is not None and sc.enabled or not state.had_data(session, name):
            continue  # never read well, it holds nothing and decides nothing: no loss
        how = "is switched off (enabled = false)" if sc is not None else \
            "is no longer in the config"
        # which of them no other source reports again is known only after the rules run
        n = session.scalar(select(func.count(Finding.id)).where(
            Finding.status != "resolved",
            Finding.sources.like(f'%{escape_like(json.dumps(name))}%', escape="\\")))
        out[name] = (f"{name}: read by run {prev.id}, now {how}: what it reports would stop "
                     f"counting, and of the {n} open findings of rules it feeds, those no "
                     "other source reports again would resolve as \"source removed\", "
                     "unchecked (renaming it is `governor sources rename`)")
    return out


def leaver_surge(config: Config, snap: Snapshot, new: list[str],
                 previous: datetime | None) -> tuple[str, list[str]] | None:
    """Why the run must stop because too many people with access became leavers since
    the last run, or None. The source counts can all pass while a third of the staff
    turn leavers (an HR export split in two and the second file not yet configured, a
    mass status change): each would get a finding and an offboarding case, acted on
    where offboard.auto_execute allows. The first run is a baseline, as for cases.
    ``new``: offboard.sweep.new_leavers, worked out once for this and the sweep."""
    if previous is None:
        return None
    holders = len(snap.grants_by_person.keys() | snap.credentials_by_person.keys())
    share, floor = config.feed_guard["max_new_leavers"], config.feed_guard["min_new_leavers"]
    if len(new) <= max(floor, share * holders):
        return None
    who = "person who holds access counts" if len(new) == 1 else "people who hold access count"
    return (f"{len(new)} {who} as having left since the last run "
            f"({len(new) / max(holders, 1):.0%} of the {holders} who hold any; limit "
            f"{share:.0%}, and never {floor} or fewer): {more(sorted(new))}", sorted(new))


def mfa_loss(session: Session, config: Config, outcomes: list[SourceOutcome], run_id: int,
             now: datetime, previous: datetime | None
             ) -> tuple[list[str], dict[str, list[str]]] | None:
    """Why the run must stop because too many of a directory source's accounts lost
    their MFA since its last read, one line per such source, and every login that lost
    it (per source); or None. A directory export whose MFA column an export job dropped
    or emptied returns as many accounts as before and passes every count, and each
    person who can publish would get a user-mfa-missing finding (and whatever acts on
    it would follow): a mass loss of MFA facts is a broken feed, as a leaver surge is.
    So is an export that kept only the weak factors (SMS, voice, email): the accounts
    whose only strong factor it dropped have lost MFA as the rules count it.

    Per source and over all its accounts, matched to a person or not: the question is
    whether this source's export broke, which correlation does not change (and a
    broken export may have emptied the ids that match accounts to people as well).
    Another directory that never reports MFA (LDAP) neither trips it nor dilutes it.
    An account loses its MFA when the last read showed an active factor and this one
    shows a lower level (_mfa_level: none active or none at all (unknown), or only weak
    ones where there was a strong one), while it is still listed and can sign in:
    factors removed from a deprovisioned or suspended account are what offboarding
    looks like, and an account no longer listed is the count check's business.

    Cheap on purpose: an ordinary night reads a handful of rows. Only the rows this run
    ended are read: history ends an account's row when its factors change, at this
    run's start (the (source, ended_at) index finds them), and an export read unchanged
    ends none (a run that reads nothing again does not get here). The rows that
    replaced them are looked up by login only when more than min_mfa_loss of them had a
    factor; how many accounts had one at all (the source's current rows, counted by
    distinct factor list) only when the losses could pass the share. The first run is a
    baseline, as for leavers."""
    if previous is None:
        return None
    share, floor = config.feed_guard["max_mfa_loss"], config.feed_guard["min_mfa_loss"]
    directories = set(state.enabled(config, SourceKind.DIRECTORY))
    obs = ObsDirectoryAccount
    # source -> login -> its level at the last read, and (factors, status) of the row
    # that replaced it (None: no longer listed), for the accounts that had a factor then
    # and whose row this run ended
    had: dict[str, dict[str, tuple[int, tuple[str | None, str] | None]]] = {}
    for o in outcomes:
        # no more can have lost it than rows it ended (of every kind it yields)
        if o.name not in directories or not o.ok or o.unchanged or o.ended <= floor:
            continue
        # on both sides of the share, only accounts that could sign in at the last read:
        # a suspended account's factors are not a loss when it returns without them, and
        # deprovisioned accounts keeping theirs must not water the share down
        ended: dict[str, tuple[int, tuple[str | None, str] | None]] = {
            login: (_mfa_level(stored), None) for login, stored, was in session.execute(
                select(obs.login, obs.mfa, obs.status).where(
                    obs.source == o.name, obs.ended_at >= now, obs.ended_run_id == run_id))
            if _LIVE.get(was, True) and _mfa_level(stored)}
        if len(ended) <= floor:
            continue
        had[o.name] = ended
        for login, stored, status, _, _ in _rows_of(session, o.name, sorted(ended),
                                                    obs.ended_at.is_(None),
                                                    obs.first_run_id == run_id):
            ended[login] = (ended[login][0], (stored, status))
    lines: list[str] = []
    logins: dict[str, list[str]] = {}
    for name, of in had.items():
        lost = {login: after for login, (level, after) in sorted(of.items())
                if after is not None and _LIVE.get(after[1], True)
                and _mfa_level(after[0]) < level}
        # no more than the share of those that changed: under it whatever the rest had
        if len(lost) <= floor or len(lost) <= share * len(of):
            continue
        # the accounts this read left as they were, with a factor then as now
        kept = _with_factor(session, obs.source == name, obs.ended_at.is_(None),
                            obs.first_run_id < run_id)
        total = len(of) + kept
        if len(lost) <= share * total:
            continue
        logins[name] = list(lost)
        lines.append(f"{name}: {len(lost)} accounts that had an active MFA factor at its "
                     f"last read have {_lost_what(list(lost.values()))} now "
                     f"({len(lost) / total:.0%} of the {total} that had one; limit "
                     f"{share:.0%}, and never {floor} or fewer): {more(list(lost))}")
    return (lines, logins) if lines else None


def _lost_what(after: list[tuple[str | None, str]]) -> str:
    """What the accounts that lost MFA have now, for the guard's message."""
    unreported = sum(stored is None for stored, _ in after)
    weak = sum(_mfa_level(stored) == _WEAK for stored, _ in after)
    kinds = [(len(after) - weak - unreported, "no active MFA factor"),
             (weak, "only weak factors (SMS, voice, email, security question) where they "
                    "had a strong one"),
             (unreported, "no MFA factors reported")]
    said = [(n, what) for n, what in kinds if n]
    if len(said) == 1:
        return said[0][1]
    return "less MFA (" + ", ".join(f"{n} {what}" for n, what in said) + ")"


def mfa_decline(session: Session, config: Config, outcomes: list[SourceOutcome],
                skip: Collection[str] = ()) -> tuple[dict[str, int], dict[str, str],
                                                     dict[str, list[str]]]:
    """The MFA-loss check (mfa_loss) over several nights: per directory source read again
    this run, how many accounts that can sign in have an active factor (kept in the
    run's summary, which marks the runs that read it); and, where more than
    feed_guard.max_mfa_loss of the accounts that had MFA at one of its window's reads
    (its last GUARD_RUNS) have less now (and more than min_mfa_loss of them), why the
    run must stop and every login that lost it.

    mfa_loss compares with the last read alone; a loss spread over nights (a fifth of
    the factors gone each night from a failing export) passes it every night, as a feed
    shrinking by a quarter a night would pass a count check against the night before.
    Counts alone cannot tell: new enrolments in the same nights hide losses from them,
    offboarding lowers them, and accounts back from suspension without factors do not
    raise what was lost. So accounts are compared one by one, as in mfa_loss: each
    account's most MFA at any of the window's reads while it could sign in (an account
    that enrolled, or moved to a strong factor, during the window counts from there)
    against what it has now, if it could sign in all along since. Only accounts whose
    row ended since the window began can have less, and an ordinary night ends few:
    those rows are read by the (source, ended_run_id) index, then their rows since by
    login; the source's current rows are counted only when the losses could pass the
    share. As for feed_baseline, the window starts again at a run forced past this
    check for the source ("mfa_accepted" in its summary). ``skip``: sources mfa_loss
    stopped for already."""
    share, floor = config.feed_guard["max_mfa_loss"], config.feed_guard["min_mfa_loss"]
    directories = set(state.enabled(config, SourceKind.DIRECTORY))
    obs = ObsDirectoryAccount
    counted = {o.name: _with_factor(session, obs.source == o.name, obs.ended_at.is_(None))
               for o in outcomes if o.name in directories and o.ok and not o.unchanged}
    lines: dict[str, str] = {}
    logins: dict[str, list[str]] = {}
    for name, runs in sorted(_mfa_window(session, set(counted) - set(skip)).items()):
        since, newest = runs[0], runs[-1]
        # login -> the most MFA it had at one of the window's reads while it could sign
        # in, and the last such read. Only a version that has ended since the window
        # began can stand for an account with less now; history by run, not by time: a
        # clock pulled back, or two runs at one instant, would read the wrong versions.
        best: dict[str, tuple[int, int, int]] = {}  # + the run that ended that row
        for login, stored, was, first, last in session.execute(
                select(obs.login, obs.mfa, obs.status, obs.first_run_id, obs.ended_run_id)
                .where(obs.source == name, obs.ended_run_id > since,
                       obs.first_run_id <= newest)):
            level = _mfa_level(stored) if _LIVE.get(was, True) else _NONE
            read = max((r for r in runs if first <= r and (last is None or r < last)),
                       default=None)
            if level and read is not None and last is not None \
                    and (level, read) > best.get(login, (0, 0, 0))[:2]:
                best[login] = (level, read, last)
        if len(best) <= floor:
            continue  # every account that lost some is among these
        # login -> its rows since the window began: (first run, run that ended it or
        # None, could sign in, MFA level)
        since_then: dict[str, list[tuple[int, int | None, bool, int]]] = {}
        for login, stored, status, started, ended in _rows_of(
                session, name, sorted(best), obs.first_run_id > since):
            since_then.setdefault(login, []).append(
                (started, ended, _LIVE.get(status, True), _mfa_level(stored)))
        # login -> (level now, the run its current row began), for accounts still listed
        # that could sign in all along since their most MFA: each row since began in the
        # run that ended the one before. A row that could not (suspended, deactivated),
        # or a run that listed the account not at all, is offboarding and return (or an
        # account made again), not a lost factor.
        still: dict[str, tuple[int, int]] = {}
        for login, (_, _, ended) in best.items():
            expect: int | None = ended
            now_row: tuple[int, int] | None = None
            for started, last, live, level in sorted(
                    (v for v in since_then.get(login, ()) if v[0] >= ended),
                    key=lambda v: v[0]):
                if started != expect or not live:
                    break
                expect, now_row = last, (level, started)
            else:
                if expect is None and now_row is not None:
                    still[login] = now_row
        lost = sorted(login for login, (level, _) in still.items() if level < best[login][0])
        if len(lost) <= floor or len(lost) <= share * len(still):
            continue
        # and those the window left as they were, with a factor then as now (current
        # rows begun by the window's last read; those of accounts counted above already
        # are taken off)
        again = sum(1 for level, started in still.values() if level and started <= newest)
        total = len(still) + _with_factor(session, obs.source == name,
                                          obs.ended_at.is_(None),
                                          obs.first_run_id <= newest) - again
        if len(lost) <= share * total:
            continue
        weak = sum(still[login][0] == _WEAK for login in lost)
        reads = f"run {since}" if since == newest else f"runs {since} to {newest}"
        logins[name] = lost
        lines[name] = (f"{name}: {len(lost)} of the {total} accounts that had an active MFA "
                       f"factor at one of its recent reads ({reads}) and can still sign in "
                       f"have less now ({len(lost) / total:.0%}; limit {share:.0%}, and "
                       f"never {floor} or fewer"
                       + (f"; {weak} of them only weak factors where they had a strong one"
                          if weak else "")
                       + f"): {more(lost)}; did the export lose them over several nights?")
    return counted, lines, logins


def _rows_of(session: Session, source: str, logins: list[str], *where: ColumnElement[bool]
             ) -> Iterator[tuple[str, str | None, str, int, int | None]]:
    """(login, factors, status, first run, ending run) of ``source``'s directory rows for
    ``logins`` that ``where`` picks. Asked by login alone, a few hundred a query, so the
    login index is the one used (SQLite plans without statistics, and (source, ended_at)
    would walk every current row per login); the source is checked here."""
    obs = ObsDirectoryAccount
    for i in range(0, len(logins), 500):
        for login, of, stored, status, first, last in session.execute(
                select(obs.login, obs.source, obs.mfa, obs.status, obs.first_run_id,
                       obs.ended_run_id).where(obs.login.in_(logins[i:i + 500]), *where)):
            if of == source:
                yield login, stored, status, first, last


def _mfa_window(session: Session, names: set[str]) -> dict[str, list[int]]:
    """Per source, the runs of its window, oldest first: its own last GUARD_RUNS runs
    that read it (those whose summary counts it in mfa_enrolled), back to the last run
    forced past the check for it. Each source's own window: a directory re-read less
    often than another keeps its seven reads however many runs read only the other."""
    window: dict[str, list[int]] = {}
    done: set[str] = set()
    rows = session.execute(
        select(Run.id, Run.summary).where(
            Run.status.in_(("ok", "partial")), Run.summary.like('%"mfa_enrolled"%'))
        .order_by(Run.id.desc()).limit(_MFA_RUNS_READ))
    for run_id, summary in rows:
        if done >= names:
            break
        try:
            data = json.loads(summary or "{}")
        except ValueError:
            continue
        then, accepted = data.get("mfa_enrolled"), data.get("mfa_accepted") or []
        for name in names - done:
            n = then.get(name) if isinstance(then, dict) else None
            if not isinstance(n, int) or isinstance(n, bool):
                continue
            window.setdefault(name, []).insert(0, run_id)
            if len(window[name]) >= GUARD_RUNS or isinstance(accepted, list) \
                    and name in accepted:
                done.add(name)  # a full window, or an operator accepted its level then
    return window


# how far back mfa_decline looks for a source's counting runs (a bound on the summaries
# one run reads: years of nightly runs of another directory)
_MFA_RUNS_READ = 400


_LIVE = {s.value: s.live for s in DirectoryStatus}
_LIVE_VALUES = sorted(v for v, live in _LIVE.items() if live)
_NONE, _WEAK, _STRONG = 0, 1, 2  # _mfa_level's answers, in order


@functools.lru_cache(maxsize=4096)  # a directory's factor lists repeat
def _mfa_level(stored: str | None) -> int:
    """How much MFA a stored factor list (history's JSON [[type, status, provider?]])
    gives: _STRONG with an active strong factor, _WEAK with active weak ones only (SMS,
    voice, email: records.WEAK_FACTORS, as the rules judge them), _NONE with none
    active or none reported (None)."""
    if stored is None:
        return _NONE
    level = _NONE
    for factor in json.loads(stored):
        if factor[1] == "active":
            if factor[0] not in WEAK_FACTORS:
                return _STRONG
            level = _WEAK
    return level


def _with_factor(session: Session, *where: ColumnElement[bool]) -> int:
    """How many accounts that can sign in, of those `where` picks, have an active
    factor: counted per distinct stored factor list (a directory has a few hundred) and
    judged by _mfa_level, not by matching the stored text."""
    obs = ObsDirectoryAccount
    return sum(n for stored, n in session.execute(
        select(obs.mfa, func.count()).where(*where, obs.status.in_(_LIVE_VALUES))
        .group_by(obs.mfa)) if _mfa_level(stored))

