"""The nightly report: what changed, what is wrong, who holds what, how fresh the data was.

`write_nightly` writes, for run N:

- nightly-N.html: for people (self-contained, print-friendly; the access matrix capped
  at `report.matrix_html_max_rows` rows);
- nightly-N.json: for scripts (everything but the matrix rows), schema governor.nightly/1;
  each source says what this run read and, in `data_from`, the earlier read whose data
  the run used instead (a failed source's last good read, an unchanged export's read);
- nightly-N.csv: one row per finding per section (new, newly_undecided, resolved,
  severity_changed, open, unknown, excepted), columns FINDING_COLUMNS. Columns are only
  ever appended, so a consumer reading by position keeps working: evidence (the
  finding's evidence as the one-line JSON text the store holds), then resolution (why a
  resolved finding resolved: fixed, rule disabled, source removed, person left, person
  back, rule settings changed; empty
  for the others), then severity_before and
  severity_cause (for a finding whose severity the run changed: what it was, and why:
  "config: rules.<rule>.severity", "rule" or "unknown"; empty for the others), then
  exception_id, exception_created_by, exception_created_at and exception_last_day (for an
  accepted risk: which exception, who recorded it and when, and the day --expires gave),
  then reopened_because (for a finding the run reopened because its exception expired or
  was revoked: which, when, and by whom and why for a revoke), then times_reopened,
  last_resolved_at and last_resolution (for a finding that was resolved and came back:
  how often, and when and how it was last resolved; empty for the others);
- access-matrix-N.csv: every matrix row, streamed;

and refreshes nightly-latest.html / nightly-latest.json. All files appear together or
not at all. Given `only`, it writes just those of the run's files (restoring the ones
that went missing) and leaves every other file as it is.
"""

from __future__ import annotations

import csv
import functools
import json
import os
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from itertools import groupby, islice
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any, TextIO

from governor.clock import as_utc
from governor.findings import SEVERITY_CONFIG, severity_key
from governor.reports import (
    _FORMULA_START,
    atomic_outputs,
    csv_line,
    environment,
    harmless_json,
    iso_utc,
    jsonable,
    safe_cell,
)
from governor.reports.data import FindingLine, FindingRow, MatrixRow, NightlyReport, SourceLine
from governor.unseen import UNSEEN, visible

SCHEMA = "governor.nightly/1"

SEVERITY_ORDER = ("critical", "high", "medium", "low", "info")
# Sections of the findings CSV and of counts, in the order the report shows them: what
# changed (new, resolved, a severity changed), then what is.
SECTIONS = ("new", "newly_undecided", "resolved", "severity_changed", "open", "unknown",
            "excepted")
SUMMARY_ROWS = ("new", "newly_undecided", "open", "resolved", "severity_changed", "unknown",
                "excepted")

FINDING_COLUMNS = (
    "section", "key", "rule", "severity", "outcome", "status", "person", "account",
    "message", "first_seen", "last_seen", "remediation", "title", "resolved_at",
    "exception_reason", "exception_approver", "exception_expires", "evidence",
    "resolution", "severity_before", "severity_cause", "exception_id",
    "exception_created_by", "exception_created_at", "exception_last_day", "reopened_because",
    "times_reopened", "last_resolved_at", "last_resolution",
)
MATRIX_COLUMNS = MatrixRow._fields

PATH_LABELS = {
    "direct": "direct role",
    "sso_group": "SSO group",
    "tool_seat": "management tool seat",
    "vault": "vault item",
}


# Copies of the newest run's report under fixed names, for bookmarks and dashboards.
LATEST = {"latest_html": "nightly-latest.html", "latest_json": "nightly-latest.json"}


def file_names(run_id: int) -> dict[str, str]:
    return {
        "html": f"nightly-{run_id}.html",
        "json": f"nightly-{run_id}.json",
        "csv": f"nightly-{run_id}.csv",
        "matrix_csv": f"access-matrix-{run_id}.csv",
    }


def write_nightly(report: NightlyReport, out_dir: Path,
                  only: Collection[str] | None = None) -> dict[str, Path]:
    """Write the run's report files into `out_dir`; returns format -> path, for html,
    json, csv, matrix_csv and the latest_html / latest_json copies (everything written,
    so a caller that must take the run back can remove all of it).

    `only` names the formats (keys of file_names) to write, the others being kept: those
    are still rendered, as each needs what writing another reads, but to nowhere; the
    latest copies are then written only where missing, so no existing file is touched.

    The matrix is read once per format that needs it (the CSV, then the HTML's first
    rows) and streamed, never held whole.
    """
    out_dir = Path(out_dir)
    names = file_names(report.run_id)
    wanted = set(names) if only is None else set(only)
    with atomic_outputs(out_dir) as out:
        def target(fmt: str, newline: str | None = None) -> AbstractContextManager[TextIO]:
            if fmt in wanted:
                return out.open(names[fmt], newline=newline)
            return open(os.devnull, "w", encoding="utf-8", newline=newline)

        if report.matrix_from is not None:
            if "matrix_csv" in wanted:
                out.take(report.matrix_from.path, names["matrix_csv"],
                         report.matrix_from.sha256)
            matrix_rows = report.matrix_from.rows
        else:
            with target("matrix_csv", newline="") as fh:
                matrix_rows = write_matrix_csv(report.matrix(), fh)
        report.matrix_written = matrix_rows
        with target("csv", newline="") as csv_fh, target("json") as json_fh:
            write_findings(report, csv_fh, json_fh, matrix_rows=matrix_rows,
                           matrix_csv=names["matrix_csv"])
        with target("html") as fh:
            write_html(report, fh, matrix_rows=matrix_rows, matrix_csv=names["matrix_csv"])
        for fmt, latest in (("html", LATEST["latest_html"]), ("json", LATEST["latest_json"])):
            if only is None:
                out.copy(names[fmt], latest)
            elif not (out_dir / latest).exists():
                if fmt in wanted:
                    out.copy(names[fmt], latest)
                else:
                    out.take(out_dir / names[fmt], latest)
        written = set(out.paths())
        # for the audit log: what each file is, byte for byte (see reports.digest)
        report.file_digests = out.digests()
    return {fmt: out_dir / name for fmt, name in (*names.items(), *LATEST.items())
            if name in written}


# -- CSV -------------------------------------------------------------------------------


def write_matrix_csv(rows: Iterable[MatrixRow], fh: TextIO) -> int:
    """Stream every matrix row to `fh`; returns how many were written. Exactly what
    csv.writer writes (minimal quoting, CRLF), in batches of lines."""
    fh.write(csv_line([safe_cell(c) for c in MATRIX_COLUMNS]) + "\r\n")
    count = 0
    batch: list[str] = []
    try:
        for row in rows:
            count += 1
            batch.append(matrix_line(row))
            if len(batch) >= 10000:
                fh.write("\r\n".join(batch) + "\r\n")
                batch.clear()
        if batch:
            fh.write("\r\n".join(batch) + "\r\n")
    finally:
        _close(rows)
    return count


def matrix_line(row: MatrixRow) -> str:
    """csv_line of a matrix row's safe cells, the same text, for two million rows: the
    account's cells (account, platform, criticality) and the grant's (the holder's
    status, match, role, raw role, path, via, source) come from few values and are
    worked out once each; the holder's own (principal, person, name) are checked here."""
    runs = _RUNS
    if len(runs) > 65536:
        runs.clear()
    account, platform, criticality, principal, person, name = row[:6]
    where = ("matrix-account", account, platform, criticality)
    try:
        lead, = runs[where]
    except KeyError:
        lead, = runs[where] = (f"{_const(account)},{_const(platform)},{_const(criticality)},",)
    how = ("matrix-grant", *row[6:])
    try:
        tail, = runs[how]
    except KeyError:
        tail, = runs[how] = (",".join(_const(v) for v in row[6:]),)
    line = (f"{lead}{principal if _plain(principal) else _cell(principal)},"
            f"{person if _plain(person) else _cell(person)},"
            f"{name if _plain(name) else _cell(name)},{tail}")
    if (principal.isprintable() and (person is None or person.isprintable())
            and (name is None or name.isprintable())) or not UNSEEN.search(line):
        return line
    return UNSEEN.sub(visible, line)


# optional columns: an empty cell was None (a match always has a text of its own)
_NONE_IF_EMPTY = tuple(f in ("person", "person_name", "person_status", "via")
                       for f in MatrixRow._fields)


def read_matrix_csv(path: Path) -> Iterator[MatrixRow]:
    """The rows of a matrix CSV that write_matrix_csv wrote, as rows again: an empty
    optional cell is None and a neutralised formula cell loses its apostrophe. (A value
    that itself began with an apostrophe and a formula character cannot be told from a
    neutralised one; no such principal, name or handle has been seen.)"""
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        next(reader, None)  # the header
        for cells in reader:
            values = [None if not v and none else
                      v[1:] if len(v) > 1 and v[0] == "'" and v[1] in _FORMULA_START else v
                      for v, none in zip(cells, _NONE_IF_EMPTY, strict=True)]
            yield MatrixRow._make(values)


def section(report: NightlyReport, name: str) -> Iterator[FindingRow]:
    """Every finding of one section: streamed from the store when the report can."""
    if report.stream is not None:
        return report.stream(name)
    return (finding_row(f) for f in getattr(report, name))


def finding_row(f: FindingLine) -> FindingRow:
    return (f.key, f.rule_id, f.title, f.severity, f.outcome, f.status, f.message,
            json.dumps(jsonable(f.evidence), ensure_ascii=False, allow_nan=False),
            f.remediation, f.controls, f.person, f.account, f.first_seen, f.last_seen,
            f.resolved_at, f.exception, f.resolution, f.severity_before, f.severity_cause,
            f.reopened, f.recurrence)


@functools.lru_cache(maxsize=65536)
def when(value: datetime | str | None) -> str:
    """A stored timestamp as ISO 8601 UTC text. Cached: most findings of a run share the
    run's own instants."""
    return iso_utc(as_utc(value))


def total(report: NightlyReport, name: str) -> int:
    return report.totals.get(name, len(getattr(report, name)))


def finding_sections(report: NightlyReport) -> Iterator[tuple[str, FindingRow]]:
    for name in SECTIONS:
        for finding in section(report, name):
            yield name, finding


def csv_cells(name: str, f: FindingRow) -> list[str]:
    """One row of the findings CSV, as cells: ``name`` is the section. What the CSV says
    of a finding, plainly; csv_finding_line writes the same line faster."""
    exc = f[15]
    # safe_cell inlined for the common cells (text, or None for an empty one): this
    # runs once per finding, hundreds of thousands of times. The evidence (f[7]) is the
    # JSON text as stored, never decoded: it is already what the cell should hold.
    return ["" if v is None else ("'" + v if v and v[0] in _FORMULA_START else v)
            if type(v) is str else safe_cell(v) for v in (
                name, f[0], f[1], f[3], f[4], f[5], f[10], f[11], f[6],
                when(f[12]), when(f[13]), f[8], f[2], when(f[14]),
                *((None, None, None) if exc is None else
                  (exc.get("reason"), exc.get("approver"), exc.get("expires"))), f[7],
                f[16], f[17], severity_cause_text(f[1], f[17], f[18]),
                *((None, None, None, None) if exc is None else
                  (exc.get("id"), exc.get("created_by"), exc.get("created_at"),
                   exc.get("last_day"))), f[19] and f[19].get("because"),
                *((None, None, None) if f[20] is None else
                  (str(f[20]["times"]), f[20]["last_resolved_at"], f[20]["last_resolution"])))]


def _cell(value: Any) -> str:
    """One CSV cell as csv_line writes it: safe_cell's text, quoted where it must be."""
    v: str
    if type(value) is not str:
        v = "" if value is None else safe_cell(value)
    elif value and value[0] in _FORMULA_START:
        v = "'" + value
    else:
        v = value
    if '"' in v or "," in v or "\n" in v or "\r" in v:
        return '"' + v.replace('"', '""') + '"'
    return v


# Cells drawn from a few values (a rule's title and remediation, the section, severity,
# outcome and status words, the run's instants): each value's cell text is worked out
# once and looked up after, not checked and quoted again for every finding.
_CELLS: dict[Any, str] = {}
# runs of such cells together, by the values they come from
_RUNS: dict[tuple[Any, ...], tuple[str, ...]] = {}


def _const(v: Any) -> str:
    try:
        return _CELLS[v]
    except KeyError:
        if len(_CELLS) > 65536:  # bounded: a report's instants can be many
            _CELLS.clear()
        # shown harmless here, once: a line is then checked only in its other cells
        text = _CELLS[v] = UNSEEN.sub(visible, _cell(v))
        return text


def _plain(v: Any) -> bool:
    """Whether `v` is text that is its own cell as it is (most cells are)."""
    return type(v) is str and not ('"' in v or "," in v or "\n" in v or "\r" in v
                                   or (v and v[0] in _FORMULA_START))


def csv_finding_line(name: str, f: FindingRow) -> str:
    """csv_line(csv_cells(name, f)), the same text: this runs once per finding, hundreds
    of thousands of times, and most of a row's cells repeat from row to row."""
    if len(_RUNS) > 65536:
        _RUNS.clear()
    exc, c, cells = f[15], _const, _RUNS
    # cells from a few values each (the section, rule, severity, outcome and status; the
    # rule's remediation and title; the instants, mostly the run's own) are looked up
    kind = (name, f[1], f[3], f[4], f[5], f[8], f[2])
    try:
        lead, rule, texts = cells[kind]
    except KeyError:
        lead, rule, texts = cells[kind] = (f"{c(name)},",
                                           f"{c(f[1])},{c(f[3])},{c(f[4])},{c(f[5])},",
                                           f"{c(f[8])},{c(f[2])},")
    seen = ("seen", f[12], f[13], f[14])
    try:
        first_last, resolved = cells[seen]
    except KeyError:
        first_last, resolved = cells[seen] = (f"{c(when(f[12]))},{c(when(f[13]))},",
                                              f"{c(when(f[14]))},")
    change = ("change", f[1], f[16], f[17], f[18])
    try:
        changed, = cells[change]
    except KeyError:
        changed, = cells[change] = (f"{c(f[16])},{c(f[17])},"
                                    f"{c(severity_cause_text(f[1], f[17], f[18]))},",)
    if exc is None:
        mid, tail = ",,,", ",,,,"
    else:
        mid = (f"{_cell(exc.get('reason'))},{_cell(exc.get('approver'))},"
               f"{_cell(exc.get('expires'))},")
        tail = (f"{_cell(exc.get('id'))},{_cell(exc.get('created_by'))},"
                f"{_cell(exc.get('created_at'))},{_cell(exc.get('last_day'))},")
    key, person, account, message = f[0], f[10], f[11], f[6]
    line = (f"{lead}{key if _plain(key) else _cell(key)},{rule}"
            f"{person if _plain(person) else _cell(person)},"
            f"{account if _plain(account) else _cell(account)},"
            f"{message if _plain(message) else _cell(message)},"
            f"{first_last}{texts}{resolved}{mid}{_cell(f[7])},{changed}{tail}"
            f"{'' if f[19] is None else _cell(f[19].get('because'))}"
            f"{',,,' if f[20] is None else _recurrence_cells(f[20])}")
    # the cells looked up are harmless already (_const): the others are checked, each a
    # C-speed pass, and the line rewritten only where one holds a character to show
    if (exc is None and f[19] is None and f[20] is None and key.isprintable()
            and message.isprintable() and f[7].isprintable()
            and (person is None or person.isprintable())
            and (account is None or account.isprintable())) or not UNSEEN.search(line):
        return line
    return UNSEEN.sub(visible, line)


def _recurrence_cells(r: dict[str, Any]) -> str:
    return (f",{_cell(str(r['times']))},{_cell(r['last_resolved_at'])},"
            f"{_cell(r['last_resolution'])}")


def severity_cause_text(rule_id: str, before: str | None, cause: str | None) -> str | None:
    """Why a finding's severity changed, as the CSV says it: the config key path of the
    override that changed it, "rule" (its own result did), or "unknown"; None (an empty
    cell) for a finding whose severity the run did not change."""
    if before is None:
        return None
    if cause == SEVERITY_CONFIG:
        return f"config: {severity_key(rule_id)}"
    return cause or "unknown"


# -- JSON ------------------------------------------------------------------------------


def _dumps(value: Any) -> str:
    return harmless_json(json.dumps(value, ensure_ascii=False, allow_nan=False))


def finding_json(f: FindingRow) -> str:
    """One finding as a JSON object, FindingLine's fields in order, the same text
    json.dumps(ensure_ascii=False) gives. The evidence is spliced in as the text the
    store holds (valid JSON, keys sorted when written); every other value is a string or
    null, encoded by the json module's own string encoder, and each rule's texts once."""
    rule = _rule_json(f[1], f[2], f[8], tuple(f[9]))
    exc = "null" if f[15] is None else _dumps(jsonable(f[15]))
    enc = encode_basestring  # key, severity, outcome, status and message are never null
    text = (f'{{"key": {enc(f[0])}, "rule_id": {rule[0]}, "title": {rule[1]}, '
            f'"severity": {enc(f[3])}, "outcome": {enc(f[4])}, "status": {enc(f[5])}, '
            f'"message": {enc(f[6])}, "evidence": {f[7]}, "remediation": {rule[2]}, '
            f'"controls": {rule[3]}, "person": {_str(f[10])}, "account": {_str(f[11])}, '
            f'"first_seen": {_when_json(f[12])}, "last_seen": {_when_json(f[13])}, '
            f'"resolved_at": {_when_json(f[14])}, "exception": {exc}, '
            f'"resolution": {_str(f[16])}, "severity_change": {_severity_change_json(f)}, '
            f'"reopened": {"null" if f[19] is None else _dumps(jsonable(f[19]))}, '
            f'"recurrence": {"null" if f[20] is None else _dumps(f[20])}}}')
    return harmless_json(text)


def _severity_change_json(f: FindingRow) -> str:
    """null, or what the finding's severity was before the run that changed it, and why
    (a config override's key path when that was it)."""
    if f[17] is None:
        return "null"
    return _dumps({"before": f[17], "after": f[3], "cause": f[18],
                   "config_key": severity_key(f[1]) if f[18] == SEVERITY_CONFIG else None})


@functools.lru_cache(maxsize=65536)
def _when_json(value: datetime | str | None) -> str:
    return _str(when(value) or None)


def _str(value: str | None) -> str:
    return "null" if value is None else encode_basestring(value)


@functools.lru_cache(maxsize=256)
def _rule_json(rule_id: str, title: str, remediation: str, controls: tuple[str, ...]
               ) -> tuple[str, str, str, str]:
    return (_str(rule_id), _str(title), _str(remediation), _dumps(list(controls)))


def report_json(report: NightlyReport, *, matrix_rows: int, matrix_csv: str) -> dict[str, Any]:
    """The report as JSON data, keys in a fixed order (data mappings sorted). Holds every
    finding: write_findings streams instead."""
    return {
        "schema": SCHEMA,
        "run_id": report.run_id,
        "organisation": report.organisation,
        "started_at": jsonable(report.started_at),
        "finished_at": jsonable(report.finished_at),
        # "forced" as before for a forced run (what readers of the report take it to
        # say); run_status says whether it was also partial (a source failed)
        "status": "forced" if report.forced_reason is not None else report.status,
        "run_status": report.status,
        "actor": report.actor,
        "forced_reason": report.forced_reason,
        "forced_past": report.forced_past,
        "carried_from_run": report.carried_from_run,
        "rewritten": jsonable(report.rewritten),
        # early in the file, so `audit verify` reads it without parsing every finding
        "store_id": report.store_id,
        "audit_head": None if report.audit_head is None else {
            "entry": report.audit_head[0], "hash": report.audit_head[1]},
        "audit_base": None if report.audit_base is None else {
            "entry": report.audit_base[0], "hash": report.audit_base[1]},
        "counts": jsonable(report.counts),
        "sources": [_source_json(s, report.started_at) for s in report.sources],
        **{name: [json.loads(finding_json(f)) for f in section(report, name)]
           for name in SECTIONS},
        "offboarding": jsonable(report.offboarding),
        "matrix": {"rows": matrix_rows, "csv": matrix_csv},
    }


def _source_json(s: SourceLine, at: datetime) -> dict[str, Any]:
    out = {field.name: jsonable(getattr(s, field.name)) for field in fields(SourceLine)}
    earlier = s.data_from
    out["data_from"] = None if earlier is None else {
        "run_id": earlier.run_id, "read_at": jsonable(earlier.read_at),
        "count": earlier.count, "freshness": jsonable(earlier.freshness),
        "age_seconds": age_seconds(earlier.freshness, at)}
    return out


def write_findings(report: NightlyReport, csv_fh: TextIO, json_fh: TextIO, *,
                   matrix_rows: int, matrix_csv: str) -> None:
    """The findings CSV and the JSON document together, reading each section from the
    store once for both (a section can hold hundreds of thousands of findings)."""
    csv_fh.write(csv_line([safe_cell(c) for c in FINDING_COLUMNS]) + "\r\n")
    batch: list[str] = []
    streamed = report.stream is not None
    shown = _Shown(max(report.findings_html_max, 0))
    # counted on the way, for the HTML: it shows only the first resolved findings, and a
    # thousand "rule disabled" among them must not pass for a thousand fixes
    resolutions: dict[str, int] = {}
    moves = {"raised": 0, "lowered": 0}  # likewise: a severity lowered is no fix either
    # new findings an exception's end brought back, by how it ended: the HTML may show
    # only the first new findings, and an auditor asks how many came back unaccepted
    reopened = {"expired": 0, "revoked": 0}
    came_back = [0]

    def both(name: str) -> Iterator[FindingRow]:
        keep = shown.keeper(name)
        for f in section(report, name):
            if name == "resolved":
                why = f[16] or "not recorded"
                resolutions[why] = resolutions.get(why, 0) + 1
            elif name == "new" and f[19] is not None:
                reopened[f[19]["ended"]] = reopened.get(f[19]["ended"], 0) + 1
            elif name == "new" and f[20] is not None:
                came_back[0] += 1  # resolved before, and a result opened it again
            elif name == "severity_changed" and f[17] is not None:
                moves["raised" if severity_rank(f[3]) < severity_rank(f[17])
                      else "lowered"] += 1
            batch.append(csv_finding_line(name, f))
            if len(batch) >= 5000:
                csv_fh.write("\r\n".join(batch) + "\r\n")
                batch.clear()
            if streamed:
                keep(f)
            yield f

    _write_json(report, json_fh, both, matrix_rows=matrix_rows, matrix_csv=matrix_csv)
    if batch:
        csv_fh.write("\r\n".join(batch) + "\r\n")
    report.resolutions = dict(sorted(resolutions.items(), key=lambda kv: (-kv[1], kv[0])))
    report.severity_moves = {k: n for k, n in moves.items() if n}
    report.reopened = {k: n for k, n in reopened.items() if n}
    report.came_back = came_back[0]
    if streamed:
        for name in SECTIONS:
            setattr(report, name, [finding_line_of(f) for f in shown.rows[name]])


class _Shown:
    """The findings the HTML shows, taken from the pass that streams every finding (worst
    first) for the JSON and CSV: the first `cap` of each section, of each severity for
    the open ones. Asking the store for them again cost a sorted scan per section and
    severity (~0.5 s at a quarter of a million findings)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.rows: dict[str, list[FindingRow]] = {name: [] for name in SECTIONS}

    def keeper(self, name: str) -> Callable[[FindingRow], None]:
        rows, cap = self.rows[name], self.cap
        if name != "open":
            def keep(f: FindingRow) -> None:
                if len(rows) < cap:
                    rows.append(f)
            return keep
        per_severity: dict[str, int] = {}

        def keep_open(f: FindingRow) -> None:
            n = per_severity.get(f[3], 0)
            if n < cap:
                per_severity[f[3]] = n + 1
                rows.append(f)
        return keep_open


_EPOCH = datetime.min.replace(tzinfo=UTC)


def finding_line_of(f: FindingRow) -> FindingLine:
    """A streamed finding as the HTML renders it (evidence decoded, instants aware UTC)."""
    return FindingLine(key=f[0], rule_id=f[1], title=f[2], severity=f[3], outcome=f[4],
                       status=f[5], message=f[6], evidence=json.loads(f[7]),
                       remediation=f[8], controls=tuple(f[9]), person=f[10], account=f[11],
                       first_seen=as_utc(f[12]) or _EPOCH, last_seen=as_utc(f[13]) or _EPOCH,
                       resolved_at=as_utc(f[14]), exception=f[15], resolution=f[16],
                       severity_before=f[17], severity_cause=f[18], reopened=f[19],
                       recurrence=f[20])


def _write_json(report: NightlyReport, fh: TextIO,
                rows: Callable[[str], Iterable[FindingRow]], *, matrix_rows: int,
                matrix_csv: str) -> None:
    """report_json's document, written a finding at a time (bounded memory), each
    section's findings from ``rows``.
    json.dumps without indent runs the C encoder; json.dump(indent=...) is pure Python
    and took minutes on a few hundred thousand findings."""
    head = report_json(replace(report, stream=lambda _name: iter(()), new=[], resolved=[],
                               newly_undecided=[], severity_changed=[], open=[], unknown=[],
                               excepted=[]),
                       matrix_rows=matrix_rows, matrix_csv=matrix_csv)
    first = True
    fh.write("{")
    for key, value in head.items():
        fh.write(("" if first else ", ") + _dumps(key) + ": ")
        first = False
        if key not in SECTIONS:
            fh.write(_dumps(value))
            continue
        fh.write("[")
        for i, f in enumerate(rows(key)):
            fh.write((", " if i else "") + finding_json(f))
        fh.write("]")
    fh.write("}\n")


# -- HTML ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MatrixGroup:
    account: str
    platform: str
    criticality: str
    rows: list[MatrixRow]


@dataclass(frozen=True, slots=True)
class SeverityGroup:
    severity: str
    findings: list[FindingLine]  # at most findings_html_max of them
    total: int


def write_html(report: NightlyReport, fh: TextIO, *, matrix_rows: int, matrix_csv: str) -> None:
    limit = max(report.matrix_html_max_rows, 0)
    shown: list[MatrixRow] = []
    if limit:
        rows = report.matrix()
        try:
            shown = list(islice(rows, limit))
        finally:
            _close(rows)
    context = html_context(report, shown=shown, matrix_rows=matrix_rows, matrix_csv=matrix_csv)
    for chunk in environment().get_template("nightly.html.j2").generate(context):
        fh.write(chunk)


def html_context(report: NightlyReport, *, shown: list[MatrixRow], matrix_rows: int,
                 matrix_csv: str) -> dict[str, Any]:
    severities = severity_columns(report)
    summary = []
    for section in SUMMARY_ROWS:
        counts = report.counts.get(section, {})
        cells = [counts.get(s, 0) for s in severities]
        summary.append({"section": section.replace("_", " "), "cells": cells,
                        "total": sum(cells)})
    cap = max(report.findings_html_max, 0)
    shown_findings = {name: getattr(report, name)[:cap]
                      for name in ("new", "newly_undecided", "resolved", "severity_changed",
                                   "unknown", "excepted")}
    open_groups = group_by_severity(report.open, cap, report.counts.get("open")
                                    if report.stream is not None else None)
    # only cards that are on the page can be linked to from "what changed"
    detailed = {f.key for g in open_groups for f in g.findings}
    detailed |= {f.key for name in ("unknown", "excepted") for f in shown_findings[name]}
    return {
        "report": report,
        "shown": shown_findings,
        "omitted": {name: total(report, name) - len(shown_findings[name])
                    for name in shown_findings},
        "totals": {name: total(report, name) for name in SECTIONS},
        "findings_csv": f"nightly-{report.run_id}.csv",
        "severities": severities,
        "summary": summary,
        "open_groups": open_groups,
        "detailed": detailed,
        "matrix_groups": group_matrix(shown),
        "matrix_shown": len(shown),
        "matrix_total": max(matrix_rows, len(shown)),
        "matrix_omitted": max(matrix_rows - len(shown), 0),
        "matrix_csv": matrix_csv,
        "path_labels": PATH_LABELS,
        "sources": [source_view(s, report.started_at) for s in report.sources],
        "schema": SCHEMA,
        "severity_key": severity_key,
    }


def severity_rank(severity: str) -> int:
    try:
        return SEVERITY_ORDER.index(severity)
    except ValueError:
        return len(SEVERITY_ORDER)


def severity_columns(report: NightlyReport) -> list[str]:
    """Every standard severity, worst first, then any other the data uses."""
    seen = {s for counts in report.counts.values() for s in counts}
    for name in SECTIONS:
        seen.update(f.severity for f in getattr(report, name))
    extra = sorted(seen - set(SEVERITY_ORDER))
    return [*SEVERITY_ORDER, *extra]


def group_by_severity(findings: Iterable[FindingLine], cap: int | None = None,
                      totals: dict[str, int] | None = None) -> list[SeverityGroup]:
    """Open findings by severity; ``totals`` gives each group's full size when the list
    holds only a slice of it."""
    ordered = sorted(findings, key=lambda f: (severity_rank(f.severity), f.severity))
    members = {sev: list(group) for sev, group in groupby(ordered, key=lambda f: f.severity)}
    # a severity with findings but none of them shown (findings_html_max = 0) is a group
    # too: the page must not say "no open findings" above a count of them
    sizes = {sev: len(m) for sev, m in members.items()} | {
        sev: n for sev, n in (totals or {}).items() if n}
    return [SeverityGroup(sev, members.get(sev, [])[:cap] if cap is not None
                          else members.get(sev, []), size)
            for sev, size in sorted(sizes.items(), key=lambda s: (severity_rank(s[0]), s[0]))]


def group_matrix(rows: Iterable[MatrixRow]) -> list[MatrixGroup]:
    """Consecutive rows of one account together (the matrix comes ordered by account)."""
    groups = []
    for account, group in groupby(rows, key=lambda r: r.account):
        members = list(group)
        first = members[0]
        groups.append(MatrixGroup(account, first.platform, first.criticality, members))
    return groups


def source_view(s: SourceLine, at: datetime) -> dict[str, Any]:
    """A row of the Sources table: the records and freshness of the data the run used,
    which for a failed source are its last good read's, not the nothing it read now."""
    earlier = s.data_from
    failed = s.status != "ok"
    count, freshness = (s.count, s.freshness) if not failed else (
        (earlier.count, earlier.freshness) if earlier else (0, None))
    return {
        "name": s.name, "type": s.type, "kind": s.kind,
        "status": "unchanged" if s.unchanged and not failed else s.status,
        "failed": failed, "count": count, "freshness": freshness,
        "age": data_age(freshness, at) if not failed or earlier else "no data",
        "data_from": earlier, "error": s.error, "added": s.changes.get("added", 0),
        "ended": s.changes.get("ended", 0),
    }


def age_seconds(freshness: datetime | None, at: datetime) -> int | None:
    """Seconds from when the data was produced to the run's start (negative: after it)."""
    return None if freshness is None else int((_utc(at) - _utc(freshness)).total_seconds())


def data_age(freshness: datetime | None, at: datetime) -> str:
    """How old a source's data was when the run started ("2 d 3 h", "45 min")."""
    seconds = age_seconds(freshness, at)
    if seconds is None:
        return "unknown"
    if seconds < 0:
        return "newer than the run"
    minutes, _ = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min"


def _utc(value: datetime) -> datetime:
    """Naive datetimes are UTC by convention (SQLite hands them back naive)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _close(rows: object) -> None:
    """Close a generator (releasing its cursor) when a reader stops early or fails."""
    close = getattr(rows, "close", None)
    if callable(close):
        close()
