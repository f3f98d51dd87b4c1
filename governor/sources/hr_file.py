"""HR export (CSV, JSON or JSON Lines): who works here, as what, and until when.

One row per person. Fields (rename with ``columns``): employee_id, email, aliases
(separated by ``alias_separator``), name, status, worker_type, hire_date, end_date,
manager, department, job_title. Status and worker-type words are mapped through
``status_map`` / ``worker_type_map`` (case-insensitive) onto governor's own words; dates
are read with ``date_formats``, and blank or 0000-00-00 dates are null.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

from governor.lookalike import fold
from governor.options import Option, OptionError
from governor.records import Person, PersonStatus, SourceKind, WorkerType
from governor.sources._common import FileConnector, check_map_targets, file_options, lowered
from governor.sources._tabular import Table
from governor.sources.base import register

FIELDS = ("employee_id", "email", "aliases", "name", "status", "worker_type", "hire_date",
          "end_date", "manager", "department", "job_title")
REQUIRED_FIELDS = ("employee_id", "email", "name", "status", "worker_type")

STATUS_WORDS = frozenset(s.value for s in PersonStatus)
WORKER_WORDS = frozenset(w.value for w in WorkerType)

DEFAULT_STATUS = {"active": "active", "terminated": "left", "resigned": "left",
                  "leaver": "left", "left": "left", "inactive": "left", "retired": "left",
                  "deceased": "left", "on leave": "leave", "leave": "leave", "loa": "leave",
                  "pending": "pending", "pre-hire": "pending", "prehire": "pending"}
DEFAULT_WORKER = {"employee": "employee", "fte": "employee", "full-time": "employee",
                  "part-time": "employee", "contractor": "contractor",
                  "contingent": "contractor", "freelancer": "contractor", "intern": "intern",
                  "working student": "intern", "agency": "agency", "vendor": "agency"}


@register
class HrFile(FileConnector):
    type = "hr_file"
    kind = SourceKind.HR
    description = "HR export file: people, status, worker type, end dates"
    options = {
        **file_options(FIELDS, "HR export"),
        "status_map": Option("dict[str,str]", {}, "Extra status words -> active, leave, left "
                             "or pending (added to the built-in ones).",
                             example={"Terminated - Voluntary": "left"}),
        "worker_type_map": Option("dict[str,str]", {}, "Extra worker-type words -> employee, "
                                  "contractor, intern or agency.",
                                  example={"Temp": "contractor"}),
        "date_formats": Option("list[str]", ["%Y-%m-%d"], "strptime formats tried in order.",
                               example=["%Y-%m-%d", "%d/%m/%Y"]),
        "alias_separator": Option("str", ";", "Separates several aliases in one cell."),
    }

    @classmethod
    def validate(cls, settings: dict[str, Any], key: str) -> None:
        super().validate(settings, key)
        check_map_targets(settings, key, "status_map", STATUS_WORDS)
        check_map_targets(settings, key, "worker_type_map", WORKER_WORDS)
        _check_date_formats(settings["date_formats"], f"{key}.date_formats")

    def fetch(self) -> Iterator[Person]:
        s = self.settings
        self.require_file()
        table = Table(self.path, s["columns"], REQUIRED_FIELDS, s["format"], known=FIELDS,
                      zone=self.zone, delimiter=s["delimiter"])
        self.read_table = table
        statuses = {**DEFAULT_STATUS, **lowered(s["status_map"])}
        workers = {**DEFAULT_WORKER, **lowered(s["worker_type_map"])}
        formats, sep = s["date_formats"], s["alias_separator"]
        seen: dict[str, int] = {}
        for row in table.rows():
            self.at = (table.display, row.line)  # where the loader's checks point
            eid = row.req("employee_id")
            if eid in seen:
                raise row.fail("employee_id",
                               f"duplicate employee id {eid!r} (first on line {seen[eid]})")
            seen[eid] = row.line
            email = row.text("email")
            if email is not None and "@" not in email:
                raise row.fail("email", f"{email!r} is not an email address")
            hired, ends = row.date("hire_date", formats), row.date("end_date", formats)
            if hired is not None and ends is not None and ends < hired:
                # a rehire whose old end date HR kept, or a wrong hire date: read either
                # way, one makes an active employee a leaver (a critical finding and an
                # offboarding case), the other hides a leaver; HR must say which
                raise row.fail("end_date", f"{ends.isoformat()} is before the hire date "
                                           f"{hired.isoformat()}: clear an earlier "
                                           "employment's end date, or correct the hire date")
            yield Person(
                employee_id=eid,
                email=fold(email) if email else None,
                name=row.req("name"),
                status=PersonStatus(row.mapped("status", statuses, STATUS_WORDS,
                                               f"sources.{self.name}.status_map")),
                worker_type=WorkerType(row.mapped("worker_type", workers, WORKER_WORDS,
                                                  f"sources.{self.name}.worker_type_map")),
                aliases=tuple(fold(a) for a in row.list("aliases", sep)),
                hire_date=hired,
                end_date=ends,
                manager=row.text("manager"),
                department=row.text("department"),
                job_title=row.text("job_title"),
            )


# a day and month above 12 and a four-digit year: a format that drops or confuses any of
# them reads it back as another day
_PROBE = date(2026, 11, 23)


def _check_date_formats(formats: list[str], key: str) -> None:
    """Each format must read back the date it writes. Checked here, not at the first row:
    a format that cannot work was reported against the HR file's data ("does not match"),
    and an empty list as matching nothing at all."""
    if not formats:
        raise OptionError(key, "is empty; list at least one strptime format, e.g. "
                               "['%Y-%m-%d']")
    for i, fmt in enumerate(formats):
        try:
            written = _PROBE.strftime(fmt)
            read = datetime.strptime(written, fmt).date()
        except ValueError as exc:
            raise OptionError(f"{key}[{i}]", f"{fmt!r} is not a strptime format ({exc})"
                              ) from None
        if read != _PROBE:
            raise OptionError(f"{key}[{i}]", f"{fmt!r} does not read a whole date: it "
                              f"writes {_PROBE.isoformat()} as {written!r}, which reads back "
                              f"as {read.isoformat()}; a format needs the year, month and day")
