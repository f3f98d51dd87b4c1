"""What a nightly report is made of; built by reconcile from the database, rendered by
reports.nightly. Plain data so the renderers can be tested without a database.

Not frozen: building a frozen dataclass costs a setattr call per field, and the access
matrix has one of these per grant."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple


@dataclass(slots=True)
class EarlierRead:
    """A source's read in an earlier run whose records this run used."""

    run_id: int
    read_at: datetime
    count: int
    freshness: datetime | None  # when the data then read was produced


@dataclass(slots=True)
class SourceLine:
    name: str
    type: str
    kind: str
    status: str  # ok | failed | skipped
    count: int  # what this run's read returned: 0 when it failed
    freshness: datetime | None  # when the data this run read was produced
    error: str | None
    changes: dict[str, int]  # added / ended / unchanged record counts
    unchanged: bool = False  # the export was the one last read: not read again
    # Where the records in use come from when not from this run's own read: a failed
    # source's last good read, or the read that loaded an unchanged export. None for a
    # fresh read, and for a failed source that was never read well (no data in use).
    data_from: EarlierRead | None = None


@dataclass(slots=True)
class FindingLine:
    key: str
    rule_id: str
    title: str  # the rule's title
    severity: str
    outcome: str  # fail | unknown
    status: str  # open | resolved | excepted
    message: str
    evidence: dict[str, Any]
    remediation: str
    controls: tuple[str, ...]
    person: str | None
    account: str | None
    first_seen: datetime
    last_seen: datetime
    resolved_at: datetime | None = None
    exception: dict[str, Any] | None = None  # reason, approver, expires for excepted ones
    # Why a resolved finding resolved (findings.py): "fixed", or "rule disabled" and
    # "source removed", which are not fixes: nobody looks any more, "person left" (a
    # staff-only rule's finding about a leaver), "person back" (a leaver rule's finding
    # about someone who no longer counts as left), or "rule settings changed" (its rule's
    # parameters changed: let through, or fixed). None unless resolved.
    resolution: str | None = None
    # Set when the report's run changed the severity of this finding, which stayed live:
    # what it was before, and why it changed ("config": the rules.<rule>.severity
    # override; "rule": the rule's result; None: not known).
    severity_before: str | None = None
    severity_cause: str | None = None
    # Set when the report's run reopened this finding because its exception ended: which
    # exception, "expired" or "revoked", "because" (that in words), expires / last_day,
    # and revoked_at / revoked_by / revoke_reason. None otherwise.
    reopened: dict[str, Any] | None = None
    # Set for a finding that was resolved and came back (a result reopened it under its
    # key): "times" it did, and "last_resolved_at" / "last_resolution", when and how it
    # was last resolved (None where that predates their keeping). None otherwise.
    recurrence: dict[str, Any] | None = None


# One finding as the writers that stream every finding take it, in FindingLine's field
# order: (key, rule_id, title, severity, outcome, status, message, evidence, remediation,
# controls, person, account, first_seen, last_seen, resolved_at, exception, resolution,
# severity_before, severity_cause, reopened, recurrence),
# with the evidence as JSON text (passed through as stored, never decoded and re-encoded)
# and the timestamps as the store returns them (text on SQLite, datetime on PostgreSQL).
FindingRow = tuple[Any, ...]


class MatrixRow(NamedTuple):
    """A tuple, so the CSV writer takes it as it is: the matrix has a row per grant."""

    account: str
    platform: str
    criticality: str
    principal: str
    person: str | None  # employee id, when matched
    person_name: str | None
    person_status: str | None  # active / left / ...
    match: str  # matched | unmatched | ambiguous | nonhuman | unexpanded (a reader group)
    role: str  # ladder label
    raw_role: str
    path: str  # direct | sso_group | tool_seat | vault
    via: str | None  # group, tool or vault item ("item (group name)": read through a group)
    source: str


@dataclass(frozen=True)
class MatrixFile:
    """An access-matrix CSV already written, and how many rows it holds."""

    path: Path
    rows: int
    sha256: str | None = None  # as recorded when it was written; None: not recorded


@dataclass
class NightlyReport:
    run_id: int
    started_at: datetime
    finished_at: datetime
    status: str  # ok | partial (a source failed); forced_reason says a run was forced
    actor: str
    forced_reason: str | None
    organisation: str
    sources: list[SourceLine]
    # opened (or reopened) in this run: violations, and any finding, unknown too, that
    # an exception's end brought back
    new: list[FindingLine]
    resolved: list[FindingLine]  # resolved in this run
    open: list[FindingLine]  # every open fail, worst first
    unknown: list[FindingLine]  # rules that could not decide, open
    excepted: list[FindingLine]
    counts: dict[str, dict[str, int]]  # {"new": {"critical": 1, ...}, "open": ..., ...}
    # still live, with another severity than before the run (by the one it has now)
    severity_changed: list[FindingLine] = field(default_factory=list)
    # opened unknown in this run, or a violation before that its rule could not decide
    # now (the data it needs has gone): neither new nor resolved, and no pass
    newly_undecided: list[FindingLine] = field(default_factory=list)
    # The matrix can be millions of rows: a callable that streams it, called once per
    # output format, ordered by account then principal.
    matrix: Callable[[], Iterator[MatrixRow]] = field(repr=False, default=lambda: iter(()))
    # Set when this run's matrix is an earlier run's, unchanged: that file is taken as
    # this run's CSV instead of writing two million rows again (`matrix` then reads it).
    matrix_from: MatrixFile | None = None
    matrix_written: int | None = None  # set by write_nightly: rows in the matrix CSV
    # set by write_nightly: each file it wrote (its name) -> SHA-256, for the audit log
    file_digests: dict[str, str] = field(default_factory=dict)
    carried_from_run: int | None = None  # the run whose evaluation this one carried
    # Set when the report is written again after its run (`governor report nightly`):
    # when, by whom and why, so the file never passes for what the run itself wrote.
    rewritten: dict[str, Any] | None = None
    # What --force (or --clock-was-ahead) let this run past, one line each, from the
    # run.forced entries of the audit log: the reason alone does not say what it passed
    forced_past: list[str] = field(default_factory=list)
    # The audit log's newest entry (id, chain hash) when the report was built: a copy of
    # the chain's head outside the database, so `governor audit verify` can tell
    # entries cut off its end, which the chain alone cannot show.
    audit_head: tuple[int, str] | None = None
    # The log's head when the run began, before its own entries: a run killed after
    # placing its report and before its commit left a head this store never kept, but
    # a base it does, which tells its files from another store's (reconcile's recovery)
    audit_base: tuple[int, str] | None = None
    # The id of the store that wrote it (audit.store_id): reports in a folder two stores
    # write to are told apart by it, a first run's too (its log was empty: no head)
    store_id: str | None = None
    matrix_html_max_rows: int = 5000
    # Offboarding cases still open (those this run opened first): case, employee id,
    # name, trigger, opened, steps total / finished / failed, new in this run.
    offboarding: list[dict[str, Any]] = field(default_factory=list)
    # Cards per section (and per severity) in the HTML; the JSON and CSV have them all.
    findings_html_max: int = 200
    # A large organisation has hundreds of thousands of findings. When ``stream`` is
    # given, stream(section) yields every finding of a section, worst first, straight
    # from the store for the JSON and CSV, and write_nightly fills the lists above from
    # that same pass with only what the HTML shows (findings_html_max per section, per
    # severity for open); ``totals`` gives each section's full size. Without it the
    # lists are complete.
    stream: Callable[[str], Iterator[FindingRow]] | None = field(repr=False, default=None)
    totals: dict[str, int] = field(default_factory=dict)
    # How many findings of the resolved section resolved each way ("fixed": 3, "rule
    # disabled": 120), most first; write_nightly counts them as it writes that section.
    resolutions: dict[str, int] = field(default_factory=dict)
    # How many of the severity_changed section went up and down ("raised": 2, "lowered":
    # 1); counted by write_nightly like `resolutions`.
    severity_moves: dict[str, int] = field(default_factory=dict)
    # How many of the new findings came back because their exception ended ("expired":
    # 1, "revoked": 2); counted by write_nightly like `resolutions`.
    reopened: dict[str, int] = field(default_factory=dict)
    # new findings that had been resolved and came back (a result reopened them)
    came_back: int = 0
