"""One reconciliation: read every source, keep it as history, correlate, evaluate the
rules, update findings, write the nightly report. All in the caller's one transaction:
any error before the end leaves the store as it was."""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import json
import os
import re
import resource
import time
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from governor import audit, findings, history, reuse, state
from governor.clock import Clock, as_utc, earliest
from governor.config import Config
from governor.db import indexes_deferred, refresh_statistics, sessions, transaction
from governor.errors import (
    ClockWentBack,
    FeedGuardTripped,
    GovernorError,
    NotFound,
    OutputError,
    SourceError,
)
from governor.guards import (
    feed_baseline,
    fields_emptied,
    guard_trips,
    last_good,
    leaver_surge,
    mfa_decline,
    mfa_loss,
    readers_lost,
    removed_sources,
)
from governor.models import (
    ObsCredential,
    ObsDirectoryAccount,
    ObsGrant,
    ObsPerson,
    ObsSocialAccount,
    OffboardCase,
    OffboardStep,
    Run,
    SourceRead,
)
from governor.offboard import cases as offboard_cases
from governor.offboard.plan import build as build_plan
from governor.offboard.plan import plan_limits
from governor.offboard.sweep import new_leavers
from governor.offboard.sweep import reverify as offboard_reverify
from governor.offboard.sweep import sweep as offboard_sweep
from governor.offboard.sweep import unverified_since as offboard_unverified
from governor.platforms import AccountNames
from governor.records import SourceKind
from governor.reports import digest, reverted_on_error
from governor.reports.build import nightly_report
from governor.reports.data import MatrixFile
from governor.reports.nightly import LATEST, file_names, write_nightly
from governor.reports.retention import prune as prune_reports
from governor.rules import RULES
from governor.rules.base import Rule, Severity
from governor.snapshot import Snapshot
from governor.sources import CONNECTORS, Connector, SourceContext
from governor.timeline import forward_only, pull_back


@dataclass
class SourceOutcome:
    name: str
    type: str
    kind: str
    ok: bool
    count: int = 0
    added: int = 0
    ended: int = 0
    updated: int = 0
    vanished: int = 0  # records the last read had that this one did not return
    fresh: int = 0  # records this read returned that the last one did not have
    freshness: datetime | None = None
    error: str | None = None
    baseline: int | None = None  # what the feed guard compares with: feed_baseline()
    unchanged: bool = False  # same fingerprint as the last good read: not re-read
    digest: str | None = None  # fingerprint of what was read; None when it cannot tell


@dataclass
class RunResult:
    run_id: int
    status: str  # ok | partial
    started_at: datetime
    finished_at: datetime
    sources: list[SourceOutcome]
    stats: findings.FindingStats
    counts: dict[str, dict[str, int]]
    report: dict[str, Path] = field(default_factory=dict)
    forced: bool = False
    problems: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase
    cases_opened: list[int] = field(default_factory=list)  # offboarding, for new leavers
    # cases the sweep gave a reopened or an added step (auto_execute acts on them too)
    cases_to_act: list[int] = field(default_factory=list)
    steps_reopened: list[str] = field(default_factory=list)  # "done" but still in place
    steps_observed_gone: list[str] = field(default_factory=list)  # gone without governor
    steps_added: list[str] = field(default_factory=list)  # access found after a case opened
    reused_run: int | None = None  # the run whose evaluation this one carried forward


@dataclass(frozen=True)
class RunOptions:
    actor: str
    force: bool = False  # go past the feed guard (--force)
    # go on with a clock behind the last run (--clock-was-ahead): a separate consent, so
    # an override meant for the clock never also accepts a feed that lost half its rows
    clock_was_ahead: bool = False
    reason: str | None = None
    write_report: bool = True
    reuse: bool = True  # False: evaluate even when nothing changed (--reevaluate)


@dataclass(frozen=True)
class _Reuse:
    """The last run's evaluation, still valid for this one."""

    run_id: int
    horizon: str | None
    matrix: MatrixFile | None


@dataclass
class Prefetched:
    """A remote source read before the run took the writers' lock."""

    connector: Connector
    records: list[Any]
    error: str | None  # SourceError: unreachable, its last good data is kept


def prefetch(engine: Engine, config: Config, clock: Clock) -> dict[str, Prefetched]:
    """Read every enabled remote source (LDAP, Okta) before the run's transaction: a run
    holds the writers' lock from its start, and a directory read can take hours (a first
    Okta factor sweep) or hang on a stopped server, while `offboard --execute`,
    `exception add` and `link` wait for that lock. Their records are held in memory
    (a directory's accounts, not two million grants). What they ask of the store (the
    last good read, prior MFA facts) is read in a session of its own."""
    out: dict[str, Prefetched] = {}
    remote = [(n, sc) for n, sc in config.sources.items()
              if sc.enabled and CONNECTORS[sc.type].remote]
    if not remote:
        return out
    with sessions(engine)() as session:
        for name, sc in remote:
            connector = CONNECTORS[sc.type](name, sc.settings, config.base_dir)
            prev = last_good(session, name)
            connector.prepare(SourceContext(
                now=clock(), last_good_read=prev.read_at if prev else None,
                prior_directory=functools.partial(state.prior_directory, session, name),
                platforms=config.platforms(), sources=state.source_kinds(config)))
            try:
                out[name] = Prefetched(connector, list(connector.fetch()), None)
            except SourceError as exc:
                out[name] = Prefetched(connector, [], str(exc))
    return out


def read_sources(session: Session, config: Config, run_id: int, now: datetime,
                 prefetched: Mapping[str, Prefetched] | None = None) -> list[SourceOutcome]:
    tables = [t.__table__ for t in (ObsPerson, ObsDirectoryAccount, ObsSocialAccount,
                                    ObsGrant, ObsCredential)]
    written: dict[str, tuple[int, int]] = {}
    with indexes_deferred(session.connection(), *tables):  # type: ignore[arg-type]
        out = _read_each(session, config, run_id, now, written, prefetched or {})
    session.flush()
    refresh_statistics(session.connection(), written)
    return out


# Grants and vault items name social accounts: they are stored under the inventory's
# spelling of each (platforms.AccountNames), so the inventory is read before them.
_NAMING = frozenset({SourceKind.GRANTS, SourceKind.VAULT})


def _read_each(session: Session, config: Config, run_id: int, now: datetime,
               written: dict[str, tuple[int, int]],
               prefetched: Mapping[str, Prefetched]) -> list[SourceOutcome]:
    """Read every enabled source, the inventory first; `written` gathers, per history
    table, the rows this run wrote and the records it read. Outcomes and their
    source_read rows are in config order."""
    sources = [(n, sc) for n, sc in config.sources.items() if sc.enabled]
    # sorted() is stable: config order within each group
    order = sorted(sources, key=lambda s: SourceKind.INVENTORY not in state.kinds_of(
        config, s[0]))
    declared = config.platforms()
    kinds = state.source_kinds(config)
    # What a connector checks its records against besides its own settings: the config's
    # platforms and sources (an inventory's grants_source must name one). An export read
    # unchanged under another config was never checked against it: renaming a source
    # the inventory still names only failed the night that file next changed.
    context = json.dumps([sorted(declared), sorted((n, sorted(k)) for n, k in kinds.items())])
    names: AccountNames | None = None
    out: dict[str, tuple[SourceOutcome, SourceRead]] = {}
    for name, sc in order:
        pre = prefetched.get(name)
        connector = pre.connector if pre is not None else CONNECTORS[sc.type](
            name, sc.settings, config.base_dir)
        naming = None
        if state.kinds_of(config, name) & _NAMING:
            # this run's inventory where it was read, its last good data where not
            names = naming = names or state.account_names(session, config)
        prev = last_good(session, name)
        o = SourceOutcome(name, sc.type, connector.kind.value, ok=True,
                          baseline=feed_baseline(session, name))
        digest = connector.fingerprint()
        if digest is not None:
            digest = hashlib.blake2b(f"{digest}/{context}".encode(), digest_size=32).hexdigest()
        if digest is not None and naming is not None:
            # an unchanged export is still read again when the inventory's spelling of
            # an account it may name has changed
            digest = hashlib.blake2b(f"{digest}/{naming.digest()}".encode(),
                                     digest_size=32).hexdigest()
        if prev is not None and digest is not None and prev.digest == digest:
            # Byte-identical export, same settings, same governor: the stored current
            # rows are exactly what fetch() would yield, so there is nothing to write.
            o.count, o.unchanged = prev.count, True
        else:
            if pre is None:
                connector.prepare(SourceContext(
                    now=now, last_good_read=prev.read_at if prev else None,
                    prior_directory=functools.partial(state.prior_directory, session, name),
                    platforms=declared, sources=kinds,
                    prior_accounts=functools.partial(state.prior_account_keys, session,
                                                     name)))
            nested = session.begin_nested()
            try:
                if pre is not None and pre.error is not None:
                    raise SourceError(pre.error)
                records = iter(pre.records) if pre is not None else connector.fetch()
                by_kind = history.load_source(
                    session.connection(), connector.kinds(sc.settings), name,
                    naming.apply(records) if naming is not None else records, connector,
                    run_id, now, prev.read_at if prev else None)
            except SourceError as exc:
                # Unreachable, not malformed: keep its last good data, skip its cleanup.
                nested.rollback()
                o.ok, o.error, digest = False, str(exc), None
            else:
                nested.commit()
                for kind, stats in by_kind.items():
                    table = history.SHAPES[kind].table
                    n, total = written.get(table, (0, 0))
                    written[table] = (n + stats.added + stats.ended + stats.updated,
                                      total + stats.count)
                    o.count += stats.count
                    o.added += stats.added
                    o.ended += stats.ended
                    o.vanished += stats.vanished
                    o.fresh += stats.fresh
                    o.updated += stats.updated
        # an export that says when it was made is no fresher than that (an old one copied
        # into place tonight has a new file time); a skipped unchanged one says what it
        # said when it was read
        stated = (prev.exported_at if o.unchanged and prev is not None
                  else connector.exported_at() if o.ok else None)
        o.freshness = earliest(stated, connector.freshness())
        o.digest = digest
        out[name] = (o, SourceRead(run_id=run_id, name=name, type=sc.type, kind=o.kind,
                                   status="ok" if o.ok else "failed", count=o.count,
                                   freshness=o.freshness, exported_at=stated, read_at=now,
                                   error=o.error,
                                   added=o.added, ended=o.ended, updated=o.updated,
                                   digest=digest, unchanged=o.unchanged))
    session.add_all([out[n][1] for n, _ in sources])
    return [out[n][0] for n, _ in sources]


def evaluate(session: Session, run_id: int, now: datetime, snap: Snapshot, config: Config,
             ok: dict[str, bool], actor: str, overridden_before: OverridesBefore | None = None,
             retuned_rules: Collection[str] = ()) -> findings.FindingStats:
    """Run every enabled rule and merge its results before the next one runs: only one
    rule's results are held at a time. `overridden_before` is the previous run's
    severity overrides, to tell why a finding's severity changed; `retuned_rules` the
    rules whose parameters it ran with differently (retuned), to tell a fix from a
    rule let through."""
    merge = findings.Merge(session, run_id, now)
    disabled = []
    leaver = RULES["leaver-holds-access"]
    snap.leaver_grace = timedelta(
        hours=_rule_settings(config, leaver.id, leaver)[2]["grace_hours"])
    for rule_id, rule in sorted(RULES.items()):
        enabled, severity, params = _rule_settings(config, rule_id, rule)
        if not enabled:
            disabled.append(rule_id)
            continue
        deciding = [n for k in rule.needs for n in state.enabled(config, k)]
        cause = severity_cause(rule_id, severity, overridden_before)
        results = rule.results(snap, params)
        if rule_id == reuse.REUSE_RULE:
            results = reuse.continue_reuse(session, results)  # a few per vault: held
        merge.add(findings.Evaluated(rule, severity, results, deciding,
                                     severity_cause=cause))
    # people who count as left now: findings about them that only staff rules made
    # resolve as "person left", not "fixed" (leaver-holds-access reports them instead),
    # and a leaver rule's about someone not among them as "person back"
    left = {eid for eid, p in snap.persons.items() if snap.has_left(p, snap.leaver_grace)}
    # "back" is not having left at all, whatever grace a leaver rule gives: someone
    # within leaver-holds-access's grace is still gone (a rotation seen then is a fix)
    gone = {eid for eid, p in snap.persons.items() if snap.has_left(p)}
    return merge.finish(ok, disabled, actor, left, retuned_rules, gone)


def retuned(before: Any, after: dict[str, dict[str, Any]]) -> set[str]:
    """Rules whose parameters differ between two runs' settings (rule_settings); none
    where the earlier run kept none to compare with."""
    if not isinstance(before, dict):
        return set()
    return {rule_id for rule_id, now in after.items()
            if isinstance(before.get(rule_id), dict)
            and before[rule_id].get("params") != now.get("params")}


@dataclass(frozen=True)
class OverridesBefore:
    """The previous run's severity overrides (rule id -> severity), and whether that is
    all of them: a run before governor kept them shows only those that differ from the
    rule's default in its effective settings (one equal to the default cannot be told
    from none)."""

    overrides: dict[str, str]
    complete: bool


def severity_overrides(config: Config) -> dict[str, str]:
    """Rule id -> the severity the config forces on every finding of that rule."""
    out = {}
    for rule_id, rule in sorted(RULES.items()):
        _enabled, severity, _params = _rule_settings(config, rule_id, rule)
        if severity is not None:
            out[rule_id] = severity.value
    return out


def overrides_before(summary: dict[str, Any]) -> OverridesBefore | None:
    """The severity overrides a run's summary records; None when it records no rule
    settings at all (a first run, or one before governor kept them)."""
    kept = summary.get("severity_overrides")
    if isinstance(kept, dict):
        return OverridesBefore({k: v for k, v in kept.items() if isinstance(v, str)}, True)
    rules = summary.get("rules")
    if not isinstance(rules, dict):
        return None
    differ = {rule_id: s["severity"] for rule_id, s in rules.items()
              if rule_id in RULES and isinstance(s, dict) and isinstance(s.get("severity"), str)
              and s["severity"] != RULES[rule_id].severity.value}
    return OverridesBefore(differ, False)


def severity_cause(rule_id: str, override: Severity | None,
                   before: OverridesBefore | None) -> str | None:
    """Why a finding of this rule that comes out of the run with another severity does:
    the config when an override sets it now (added or changed since it was last
    evaluated: with the same one it could not differ) or set it in the previous run
    (removed since); the rule's own result when neither; None when the previous run's
    overrides cannot be told."""
    if override is not None:
        return findings.SEVERITY_CONFIG
    if before is None:
        return None
    if rule_id in before.overrides:
        return findings.SEVERITY_CONFIG
    return "rule" if before.complete else None


def _rule_settings(config: Config, rule_id: str, rule: Rule
                   ) -> tuple[bool, Severity | None, dict[str, Any]]:
    """Whether a rule runs, its severity override and its parameters (defaults filled in)."""
    rc = config.rule(rule_id)
    return (rc is None or rc.enabled, Severity(rc.severity) if rc and rc.severity else None,
            {**rule.defaults(), **(rc.params if rc else {})})


def rule_settings(config: Config) -> dict[str, dict[str, Any]]:
    """Every rule's effective settings, as the run summary keeps them (JSON data, so the
    next run compares like with like): enabled, severity, parameters."""
    out = {}
    for rule_id, rule in sorted(RULES.items()):
        enabled, severity, params = _rule_settings(config, rule_id, rule)
        out[rule_id] = {"enabled": enabled, "severity": (severity or rule.severity).value,
                        "params": params}
    found: dict[str, dict[str, Any]] = json.loads(json.dumps(out, sort_keys=True, default=str))
    return found


def _flat(settings: Any) -> dict[str, Any]:
    """One rule's settings as {"enabled": ..., "severity": ..., "params.NAME": ...}."""
    if not isinstance(settings, dict):
        return {}  # the rule did not exist on that side
    params = settings.get("params")
    return {**{k: v for k, v in settings.items() if k != "params"},
            **({f"params.{k}": v for k, v in params.items()} if isinstance(params, dict)
               else {})}


def audit_rule_changes(session: Session, now: datetime, actor: str, prev: Run | None,
                       before: Any, after: dict[str, dict[str, Any]]) -> None:
    """One config.rules_changed entry when the rules' effective settings differ from those
    of the previous completed run: a changed severity, parameter or switch changes what
    the findings say, and the config file keeps no history of its own. A previous run
    that recorded none (the first run, or one before governor kept them) is not
    compared: there is nothing to tell a change from."""
    if prev is None or not isinstance(before, dict) or before == after:
        return
    changed: dict[str, dict[str, list[Any]]] = {}
    for rule_id in sorted(set(before) | set(after)):
        old, new = _flat(before.get(rule_id)), _flat(after.get(rule_id))
        diff = {k: [old.get(k), new.get(k)] for k in sorted(set(old) | set(new))
                if old.get(k) != new.get(k)}
        if diff:
            changed[rule_id] = diff  # {"params.max_days": [90, 60]}: before, after
    audit.record(session, now, actor, "config.rules_changed", subject=", ".join(changed),
                 reason=f"rule settings differ from those of run {prev.id}",
                 detail={"since_run": prev.id, "changed": changed})


def _previous(session: Session, run_id: int) -> tuple[Run | None, dict[str, Any]]:
    """The last run that completed before this one, and its summary."""
    prev = session.scalar(select(Run).where(
        Run.status.in_(("ok", "partial")), Run.id < run_id).order_by(Run.id.desc()).limit(1))
    try:
        found = json.loads(prev.summary) if prev is not None and prev.summary else {}
    except ValueError:
        return prev, {}
    return prev, found if isinstance(found, dict) else {}


def _reusable(session: Session, prev: Run | None, summary: dict[str, Any],
              evaluation: str | None, now: datetime, opts: RunOptions) -> _Reuse | None:
    """The last run's evaluation when this run would repeat it exactly: the same data,
    links, declared principals, configuration and governor (`evaluation`), every source
    read then and now, `now` not before that run (only a run forced past the clock
    check gets here so) nor at or past the first time limit its answers depended on, no
    offboarding step done since that the data must confirm, and its access matrix still
    on disk when a report is due."""
    if not opts.reuse or evaluation is None or prev is None or prev.status != "ok":
        return None
    if summary.get("evaluation") != evaluation or now < prev.started_at:
        return None
    horizon = summary.get("horizon")
    if horizon is not None and (not isinstance(horizon, str)
                                or now >= datetime.fromisoformat(horizon)):
        return None
    kept = summary.get("matrix")
    matrix = None
    if isinstance(kept, dict) and isinstance(kept.get("file"), str) \
            and isinstance(kept.get("rows"), int) and Path(kept["file"]).is_file():
        sha = kept.get("sha256")
        matrix = MatrixFile(Path(kept["file"]), kept["rows"],
                            sha if isinstance(sha, str) else None)
    if opts.write_report and (matrix is None or matrix.sha256 is None
                              or not _as_written(matrix.path, matrix.sha256)):
        return None
    if offboard_unverified(session, prev.started_at):
        return None
    return _Reuse(prev.id, horizon, matrix)


def _as_written(path: Path, sha256: str) -> bool:
    """Is the earlier matrix file still the bytes that run wrote? An edited one would be
    linked as this run's matrix, and its first rows rendered into an HTML report whose
    own digest then vouches for them (a leaver's rows cut out, say)."""
    try:
        return digest.of_file(path) == sha256
    except OSError:
        return False  # gone or unreadable: evaluate again


class _Phases:
    """Wall time per phase of a run, reported with it (and read by the benchmark)."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self._last = time.perf_counter()

    def done(self, name: str) -> None:
        now = time.perf_counter()
        self.times[name] = round(now - self._last, 3)
        # peak RSS so far (MB), so a benchmark can tell which phase set the peak
        self.times[f"{name}_peak_mb"] = round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        self._last = now


def _clock_check(session: Session, now: datetime, opts: RunOptions) -> str | None:
    """Refuse a clock behind the last run (timeline.forward_only), unless
    --clock-was-ahead says the clock is right now: a clock that ran ahead for one night
    would otherwise stop every run until real time caught up. Returns what was
    overridden, to audit."""
    try:
        forward_only(session, now, "a run")
    except ClockWentBack as exc:
        if opts.clock_was_ahead and opts.reason:
            return str(exc)
        raise ClockWentBack(f"{exc}; if it is right now (it was ahead before), rerun with "
                            "--clock-was-ahead --reason '...'") from None
    return None


def _stop(problems: list[str], surge: list[str], mfa: list[str]) -> NoReturn:
    """The feed guard's stop, naming every check that tripped: the sources' counts, then
    the leavers they would make, then the directories' lost MFA."""
    checks = [*problems, *surge, *mfa]
    parts = [*(["the feeds"] if problems else []),
             *(["the HR export (a missing file, end dates)"] if surge else []),
             *(["the directory export's MFA factors (a column dropped or emptied)"]
               if mfa else [])]
    what = " and ".join([", ".join(parts[:-1]), parts[-1]] if len(parts) > 2 else parts)
    raise FeedGuardTripped(
        "feed guard stopped the run before any finding changed:\n  " + "\n  ".join(checks)
        + f"\nCheck {what}; if the change is real, rerun with --force --reason '...'"
        + ("; one --force passes every stop above" if len(checks) > 1 else ""))


def next_run_id(session: Session) -> int:
    """The id the next run takes: one more than the last stored, on every engine. A
    PostgreSQL sequence moves on for a run taken back (a feed guard's stop, bad input),
    so its run ids skipped where SQLite's did not, and a gap looks like a run deleted.
    Read holding the writers' lock (audit.lock), so two runs never take one id."""
    taken = (session.scalar(select(func.max(Run.id))) or 0) + 1
    if session.get_bind().dialect.name == "postgresql":
        # the sequence goes on from here, for a row written without an id
        session.execute(text("SELECT setval(pg_get_serial_sequence('run', 'id'), :n)"),
                        {"n": taken})
    return taken


def run(session: Session, config: Config, clock: Clock, opts: RunOptions,
        prefetched: Mapping[str, Prefetched] | None = None) -> RunResult:
    phases = _Phases()
    audit.lock(session)
    base = audit.head(session)  # the report keeps it: see NightlyReport.audit_base
    # the time is read holding the writers' lock, so a run that waited for another one
    # reads it after that one's start; a clock that still says earlier went back, and
    # is refused before the run row or anything else is written
    now = clock()
    went_back = _clock_check(session, now, opts)
    r = Run(id=next_run_id(session), started_at=now, status="running", actor=opts.actor,
            forced=False)
    session.add(r)
    session.flush()
    if went_back:
        r.forced, r.force_reason = True, opts.reason
        # what the fast clock stamped in the future comes back to now, on record
        audit.record(session, now, opts.actor, "run.forced", subject=f"run {r.id}",
                     reason=opts.reason, detail={"clock_went_back": went_back,
                                                 "pulled_back": pull_back(session, now)})
    outcomes = read_sources(session, config, r.id, now, prefetched)
    phases.done("read_sources")
    prev, prev_summary = _previous(session, r.id)
    if prev is None and outcomes and not any(o.ok for o in outcomes):
        # a first run that read nothing (the starter config as written, paths not yet
        # filled in) would only put a run of "could not decide" in a new store
        raise GovernorError(
            "no source could be read, and the store has no earlier run: nothing was "
            "recorded (" + "; ".join(f"{o.name}: {o.error}" for o in outcomes) + "). Point "
            "each source at its export or switch it off (enabled = false), and check them "
            "with `governor doctor`")
    trips = guard_trips(config, outcomes)
    for name, why in (*readers_lost(session, config, outcomes, r.id, now).items(),
                      *fields_emptied(session, config, outcomes, r.id).items(),
                      *removed_sources(session, config, prev).items()):
        trips[name] = f"{trips[name]}; {why}" if name in trips else why
    problems = list(trips.values())
    # Unforced, a stop waits for the leaver count below (nothing changes before it): one
    # --force passes every stop, so the message before it names all of them (a shrunken
    # HR export trips both, and the leavers it makes are the graver news).
    stop = bool(problems) and not opts.force
    if problems and opts.force:
        r.forced, r.force_reason = True, opts.reason
        audit.record(session, now, opts.actor, "run.forced", subject=f"run {r.id}",
                     reason=opts.reason, detail={"feed_guard": problems})
    ok = {o.name: o.ok for o in outcomes}
    # Correlation depends only on what the sources hold, the links and the declared
    # principals; when none of them changed since the last run, it is already stored.
    correlation = state.correlation_key(session, config, {o.name: o.digest for o in outcomes})
    evaluation = state.evaluation_key(correlation, config)
    rules = rule_settings(config)
    audit_rule_changes(session, now, opts.actor, prev, prev_summary.get("rules"), rules)
    before_zone = prev_summary.get("timezone")
    if prev is not None and isinstance(before_zone, str) and before_zone != config.timezone:
        # every end date's deadline moves with it: findings can resolve or open on this
        # alone, so the change is on record beside them
        audit.record(session, now, opts.actor, "config.timezone_changed",
                     subject="governor.timezone", reason=f"differs from run {prev.id}'s",
                     detail={"since_run": prev.id, "before": before_zone,
                             "after": config.timezone})
    reuse = _reusable(session, prev, prev_summary, evaluation, now, opts)
    snap: Snapshot | None = None
    # directory sources' accounts with an active factor, and those an operator accepted
    # a fall of (mfa_decline): none when the evaluation is carried forward
    enrolled: dict[str, int] = {}
    mfa_accepted: list[str] = []
    if reuse is not None:
        if stop:
            _stop(problems, [], [])
        # Nothing the rules read has changed and no time limit they depend on has been
        # reached: evaluating again would give the same results, so they are carried.
        stats = findings.carry_forward(session, r.id, reuse.run_id, now, opts.actor)
        phases.done("carry_forward")
        swept = offboard_reverify(session, now)
    else:
        snap = state.snapshot(session, config, now, ok)
        phases.done("snapshot")
        since = prev.started_at if prev is not None else None
        # per leaver a look at their HR history: asked once, for the guard and the sweep
        leavers = new_leavers(session, snap, prev, state.enabled(config, SourceKind.HR),
                              prev_summary)
        surge = leaver_surge(config, snap, leavers, since)
        lost = mfa_loss(session, config, outcomes, r.id, now, since)
        # sources mfa_loss stops for are said already, with their logins
        enrolled, declined, gone = mfa_decline(session, config, outcomes,
                                               lost[1] if lost else ())
        if stop or ((surge or lost or declined) and not opts.force):
            _stop(problems, [surge[0]] if surge else [],
                  [*(lost[0] if lost else []), *declined.values()])
        def forced_past(lines: list[str], detail: dict[str, Any]) -> None:
            problems.extend(lines)
            r.forced, r.force_reason = True, opts.reason
            audit.record(session, now, opts.actor, "run.forced", subject=f"run {r.id}",
                         reason=opts.reason, detail=detail)

        if surge:
            # every one of them on record, not the first three the message names
            forced_past([surge[0]], {"leaver_surge": surge[0], "leavers": surge[1]})
        if lost:
            # every login, per source; the lines under "feed_guard", as the report reads
            # what a run was forced past
            forced_past(lost[0], {"feed_guard": lost[0], "mfa_loss": lost[1]})
        if declined:
            forced_past(list(declined.values()), {"feed_guard": list(declined.values()),
                                                  "mfa_decline": gone})
        # the next runs' window of counts starts again where an operator accepted one
        mfa_accepted = sorted({*(lost[1] if lost else ()), *declined})
        if correlation is None or correlation != prev_summary.get("correlation"):
            state.save_matches(session, snap, r.id, [n for n, sc in config.sources.items()
                                                     if not sc.enabled])
        snap.settle()
        phases.done("save_matches")
        stats = evaluate(session, r.id, now, snap, config, ok, opts.actor,
                         overrides_before(prev_summary) if prev is not None else None,
                         retuned(prev_summary.get("rules"), rules) if prev is not None else ())
        phases.done("rules_and_findings")
        swept = offboard_sweep(session, config, snap, now, opts.actor, leavers, r.id)
    phases.done("offboarding")
    r.status = "ok" if all(ok.values()) else "partial"
    r.finished_at = clock()
    c = findings.counts(session, r.id)
    result = RunResult(r.id, r.status, now, r.finished_at, outcomes, stats, c,
                       forced=r.forced, problems=problems, timings=phases.times,
                       cases_opened=swept.opened, steps_reopened=swept.reopened,
                       steps_observed_gone=swept.observed, steps_added=swept.added,
                       cases_to_act=sorted(swept.to_act),
                       reused_run=reuse.run_id if reuse is not None else None)
    matrix = reuse.matrix if reuse is not None else None
    digests: dict[str, str] = {}
    if opts.write_report:
        report = nightly_report(session, config, r, snap, matrix_from=matrix, counted=c,
                                carried_from_run=result.reused_run, audit_base=base)
        # written before the commit so a report failure fails the run; if anything after
        # fails, this run's files are taken back (below, or in job() when the commit
        # itself fails) and job() puts the last run's latest copies back
        _never_over_evidence(session, config.report_dir, r.id)
        result.report = write_nightly(report, config.report_dir)
        r.report_path = str(result.report.get("html", ""))
        digests = report.file_digests
        matrix = MatrixFile(result.report["matrix_csv"].resolve(), report.matrix_written or 0,
                            digests.get(result.report["matrix_csv"].name))
        phases.done("report")
    try:
        # after the report: the matrix asks who has left, which notes time limits too
        horizon = reuse.horizon if reuse is not None else (
            snap.horizon.isoformat() if snap is not None and snap.horizon is not None
            else None)
        r.summary = json.dumps({
            "counts": c, "sources": {o.name: o.count for o in outcomes},
            "failed": [o.name for o in outcomes if not o.ok], "correlation": correlation,
            "evaluation": evaluation, "horizon": horizon, "rules": rules,
            # "rules" holds each rule's effective severity, which cannot tell an override
            # equal to the default from none: the next run's report says why a
            # finding's severity changed from these
            "severity_overrides": severity_overrides(config),
            "timezone": config.timezone,
            # sources whose new level an operator accepted (feed_baseline starts there)
            "guard_accepted": sorted(trips) if r.forced else [],
            # only where counted: a run that read no directory again (an unchanged
            # rerun) takes no place in mfa_decline's window
            **({"mfa_enrolled": enrolled} if enrolled else {}),
            "mfa_accepted": mfa_accepted,
            "reused_run": reuse.run_id if reuse is not None else None,
            "matrix": {"file": str(matrix.path), "rows": matrix.rows,
                       "sha256": matrix.sha256} if matrix else None})
        detail: dict[str, Any] = {"status": r.status, "counts": c,
                                  "failed_sources": [o.name for o in outcomes if not o.ok],
                                  "carried_from_run": result.reused_run}
        if digests:
            # what each report file is, byte for byte: `audit verify --report` checks one
            detail["report_files"] = digests
        audit.record(session, r.finished_at, opts.actor, "run.completed",
                     subject=f"run {r.id}", detail=detail)
        session.flush()
    except BaseException:
        _take_back(result.report)
        raise
    return result


def _take_back(report: dict[str, Path]) -> None:
    """Remove a run's own report files (its latest copies are job()'s to restore)."""
    for fmt, path in report.items():
        if fmt not in LATEST:
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """A run allocates millions of small, acyclic, long-lived objects (records, grants,
    matches). The cyclic collector's full passes over them free nothing and, at two
    million grants, cost more than the work itself; reference counting still frees
    everything that is not in a cycle, and the collector runs again after the run."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _never_over_evidence(session: Session, out_dir: Path, run_id: int) -> None:
    """A run's report files are new: the store never gives a run id twice. Files of the
    same id already there were written from another store (a trial SQLite file and then
    PostgreSQL on one report_dir) or before this database was restored from a backup;
    they are another night's evidence and are not overwritten (the run fails, nothing
    written; `report nightly --replace` is the audited way to rewrite a report)."""
    there = sorted(n for n in file_names(run_id).values() if (out_dir / n).exists())
    if there:
        raise OutputError(f"{out_dir} already holds run {run_id}'s report ({', '.join(there)}),"
                          " written from another database, before this one was restored, or "
                          "by a run killed (SIGKILL, a power cut) after placing its report "
                          "and before its commit: governor does not overwrite evidence. Move "
                          "those files away, or give this store a report_dir of its own")
    # the latest copies are replaced every night, but only this store's: another's would
    # then name entries this log never had, and `audit verify` there would cry tampering
    latest = out_dir / LATEST["latest_json"]
    anchor = audit.report_anchor(latest) if latest.is_file() else None
    why = ("it names another store" if latest.is_file() and not _ours(session, latest)
           else None if anchor is None or audit.holds(session, anchor)
           else f"its audit head, entry {anchor[0]}, is not in this store's log")
    if why is not None:
        raise OutputError(f"{latest} is another database's latest report ({why}): governor "
                          "does not overwrite evidence. Give this store a report_dir of its "
                          "own, or move that folder's files away")


# A staged report file or a kept latest copy this old was left by a process that died
# (SIGKILL, a power cut): writing a report takes seconds, a full-size one minutes.
LEFT_BEHIND = 3600.0


# governor's own staged files (reports.OutputSet stages NAME as .NAME.<random>.tmp): a
# run's report and matrix, an offboarding receipt (offboard-N.json and .html)
_STAGED = (".nightly-*.tmp", ".access-matrix-*.tmp", ".offboard-*.tmp")


def recover_report_dir(session: Session, out_dir: Path, now: datetime, actor: str) -> None:
    """Tidy what a run killed mid-write left in ``out_dir`` (under the writers' lock):
    governor's staged files (``.nightly-*.tmp`` and the like) are removed; kept copies of
    the latest report (``.nightly-latest.*.keep``) go back in place when the latest copy
    there now is not this store's (the killed run's, never committed) and the kept one
    is, and are removed otherwise. The report files of a run this store never committed
    (killed after placing them: SQLite gives its id again, and no run writes over
    another's report) are moved aside, kept as found. Audited when anything was done."""
    if not out_dir.is_dir():
        return
    moved = _set_aside_uncommitted(session, out_dir, now)
    cutoff = time.time() - LEFT_BEHIND  # file times are the file system's, not the clock's
    stale = [p for pattern in (*_STAGED, ".nightly-latest.*.keep")
             for p in out_dir.glob(pattern) if p.is_file() and p.stat().st_mtime < cutoff]
    if not stale and not moved:
        return
    keeps: dict[str, list[Path]] = {}
    for p in stale:
        if p.suffix == ".keep":
            keeps.setdefault(p.name[1:].rsplit(".", 2)[0], []).append(p)
    latest = out_dir / LATEST["latest_json"]
    now_there = audit.report_anchor(latest) if latest.is_file() else None
    # a kept copy that holds no head was written when the log was empty: a first run's
    ours = [k for k in keeps.get(LATEST["latest_json"], []) if _ours(session, k)
            and ((a := audit.report_anchor(k)) is None or audit.holds(session, a))]
    restore = bool(ours) and (now_there is None or not audit.holds(session, now_there))
    restored = []
    for name, paths in keeps.items():
        if restore:
            newest = max(paths, key=lambda p: p.stat().st_mtime)
            os.replace(newest, out_dir / name)
            restored.append(name)
    removed = [p.name for p in stale if p.exists()]
    for p in stale:
        p.unlink(missing_ok=True)
    audit.record(session, now, actor, "report.recovered", subject=str(out_dir),
                 reason="left by a run that was killed while writing its report",
                 detail={"removed": sorted(removed), "restored": sorted(restored),
                         "set_aside": moved})


_REPORT_JSON = re.compile(r"nightly-(\d+)\.json")


def _set_aside_uncommitted(session: Session, out_dir: Path, now: datetime) -> list[str]:
    """Report files of a run this store never committed: killed between placing its
    report and committing (see _uncommitted). Renamed NAME.uncommitted-<time>, not
    deleted: they are what that run saw. The latest copies it placed go aside with
    them (recover_report_dir then puts back the ones it kept). Another store's are left
    alone, for the run to refuse."""
    last = session.scalar(select(Run).order_by(Run.id.desc()).limit(1))
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    out: list[str] = []
    for path in sorted(out_dir.glob("nightly-*.json")):
        found = _REPORT_JSON.fullmatch(path.name)
        if found is None or not _uncommitted(session, path, last, int(found[1])):
            continue
        for name in file_names(int(found[1])).values():
            if (out_dir / name).exists():
                os.replace(out_dir / name, out_dir / f"{name}{audit.SET_ASIDE}{stamp}")
                out.append(name)
    latest = out_dir / LATEST["latest_json"]
    run_id = audit.report_fields(latest, "run_id").get("run_id") if latest.is_file() else None
    if isinstance(run_id, int) and _uncommitted(session, latest, last, run_id):
        for name in LATEST.values():
            if (out_dir / name).exists():
                os.replace(out_dir / name, out_dir / f"{name}{audit.SET_ASIDE}{stamp}")
                out.append(name)
    return out


def _uncommitted(session: Session, path: Path, last: Run | None, run_id: int) -> bool:
    """Is the nightly JSON report at ``path`` (of run ``run_id``) one of this store's
    that was never committed? Its run comes after the store's last one and started
    after it (time only goes forward in one store), and the log's head it copied is
    this store's, or, where the killed run had written entries of its own before its
    report (an offboarding case it opened), the head its run began on is."""
    if last is not None and run_id <= last.id or not _ours(session, path):
        return False
    started = audit.report_fields(path, "started_at").get("started_at")
    try:
        at = datetime.fromisoformat(started.replace("Z", "+00:00")) \
            if isinstance(started, str) else None
    except ValueError:
        at = None
    before = as_utc(last.started_at) if last is not None else None
    if at is None or (before is not None and at <= before):
        return False
    anchor = audit.report_anchor(path)
    if anchor is None or audit.holds(session, anchor):
        return True
    base = audit.report_base(path)
    if base is None:  # the run began on an empty log: is this store's empty still?
        return audit.head(session) is None
    return audit.holds(session, base)


def _ours(session: Session, path: Path) -> bool:
    """Could this nightly JSON report be this store's? Not when it names another store,
    unless this store's log holds the head it copied: a schema taken down past 0014 and
    up again has a new id (the one before went with its table) and the same log. One
    written before reports named theirs (migration 0014) is judged by its anchors."""
    theirs = audit.report_store(path)
    if theirs is None or theirs == audit.store_id(session):
        return True
    anchor = audit.report_anchor(path)
    return anchor is not None and audit.holds(session, anchor)


def job(engine: Engine, config: Config, clock: Clock, opts: RunOptions) -> RunResult:
    """A whole run as one transaction, with the aborted-run record a feed guard leaves."""
    result: RunResult | None = None
    fetched = prefetch(engine, config, clock)  # before the lock: see prefetch
    with transaction(engine) as session:
        recover_report_dir(session, config.report_dir, clock(), opts.actor)
    try:
        # a commit that fails after the report is placed puts the last run's latest
        # copies back (the run's own files are removed below)
        with _collector_paused(), reverted_on_error(config.report_dir, LATEST.values()), \
                transaction(engine) as session:
            result = run(session, config, clock, opts, fetched)
    except FeedGuardTripped as exc:
        with transaction(engine) as session:
            audit.lock(session)
            now = clock()
            r = Run(id=next_run_id(session), started_at=now, finished_at=now,
                    status="aborted", actor=opts.actor, forced=False, error=str(exc))
            session.add(r)
            session.flush()
            audit.record(session, now, opts.actor, "run.aborted", subject=f"run {r.id}",
                         reason="feed guard", detail={"error": str(exc)})
        raise
    except BaseException:
        if result is not None:  # the commit failed after the report was written
            _take_back(result.report)
        raise
    # a step the sweep reopened or added is one a run may act on, as in a case it opened
    _auto_execute(engine, config, clock, opts.actor,
                  sorted({*result.cases_opened, *result.cases_to_act}))
    if config.report["keep_days"]:
        # after the run's own commit: a failed run never deletes evidence
        with transaction(engine) as session:
            prune_reports(session, config.report_dir, config.report["keep_days"],
                          result.started_at, opts.actor)
    return result


def _auto_execute(engine: Engine, config: Config, clock: Clock, actor: str,
                  case_ids: list[int]) -> None:
    """Carry out, for cases this run opened or gave a step to do (reopened, or added for
    access found later), only the step kinds config lets a run do on its own
    (offboard.auto_execute; none by default). After the commit: the journal
    needs transactions of its own."""
    allowed = set(config.offboard["auto_execute"])
    if not allowed or not case_ids:
        return

    def permitted(step: OffboardStep) -> bool:
        ctype = config.sources[step.source].type if step.source in config.sources else ""
        short = "ldap" if ctype == "ldap_directory" else ctype
        return f"{ctype}.{step.kind}" in allowed or f"{short}.{step.kind}" in allowed

    for case_id in case_ids:
        with transaction(engine) as session:
            case = session.get(OffboardCase, case_id)
            if case is None:
                continue
            # the limits a person running it would have to force: a run forces nothing
            now = clock()
            try:
                limits = plan_limits(build_plan(session, config, case.employee_id, now=now),
                                     config, now)
            except NotFound:
                continue  # nobody the store knows as them any more: nothing to plan from
            if limits:
                audit.record(session, clock(), actor, "offboard.auto_withheld",
                             subject=f"case {case_id}", detail={"limits": limits})
                continue
        offboard_cases.execute(engine, config, case_id, clock, actor, permitted)
