"""Each file connector on small files written here: column and value maps, formats and
line numbers, and what each field becomes in the canonical records."""

from __future__ import annotations

import errno
import json
import os
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import demo_env, run_cli
from test_bad_input import dump, upgraded

from governor import config
from governor.errors import DataError, SourceError
from governor.options import OptionError, apply
from governor.records import (
    AccessPath,
    AccountAccess,
    Attestation,
    Credential,
    Criticality,
    DirectoryAccount,
    DirectoryStatus,
    Grant,
    MfaFactor,
    Person,
    PersonStatus,
    RecoveryContact,
    SocialAccount,
    WorkerType,
)
from governor.roles import Role
from governor.sources import CONNECTORS, Connector
from governor.sources.base import Check

MTIME = datetime(2026, 11, 20, 5, 0, tzinfo=UTC)


def configure(ctype: str, **raw: Any) -> dict[str, Any]:
    """Settings exactly as the config loader makes them (defaults filled, cross-checked)."""
    cls = CONNECTORS[ctype]
    settings = apply(cls.options, raw, "sources.t")
    cls.validate(settings, "sources.t")
    return settings


def connector(tmp_path: Path, ctype: str, name: str, content: str | bytes,
              **raw: Any) -> Connector:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    os.utime(path, (MTIME.timestamp(), MTIME.timestamp()))
    return CONNECTORS[ctype]("t", configure(ctype, path=name, **raw), tmp_path)


def fetch(tmp_path: Path, ctype: str, name: str, content: str | bytes, **raw: Any) -> list[Any]:
    return list(connector(tmp_path, ctype, name, content, **raw).fetch())


def fails(tmp_path: Path, ctype: str, name: str, content: str | bytes, **raw: Any) -> str:
    with pytest.raises(DataError) as info:
        fetch(tmp_path, ctype, name, content, **raw)
    return str(info.value).replace(str(tmp_path) + os.sep, "")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_every_connector_module_registers_one_type() -> None:
    import pkgutil

    import governor.sources as package

    modules = {m.name for m in pkgutil.iter_modules(package.__path__)
               if not m.name.startswith("_") and m.name != "base"}
    assert {c.__module__.rsplit(".", 1)[1] for c in CONNECTORS.values()} == modules
    assert {"directory_file", "grants_file", "hr_file", "inventory_file",
            "vault_file"} <= set(CONNECTORS)


# ---- HR -------------------------------------------------------------------------------------
HR_CSV = """\
worker_id,name,email,aliases,status,worker_category,title,department,manager,hire_date,end_date
E1,Ann Lee,Ann.Lee@Corp.example,ann@corp.example; a.lee@corp.example ;,ACTIVE,Employee,CEO,Exec,,2014-03-03,
E2,Bo Chan,bo.chan+tiktok@corp.example,,terminated - VOLUNTARY,agency temp,,Comms,E1,01/02/2020,0000-00-00
E3,Cy Dunn,cy@corp.example,,On Leave,FTE,,Comms,E1,,31/12/2026
E4,Di Eze,di@corp.example,,Pre-hire,Working Student,,,,2026-12-01,
"""
HR_SETTINGS: dict[str, Any] = {
    "columns": {"employee_id": "worker_id", "worker_type": "worker_category",
                "job_title": "title"},
    "status_map": {"Terminated - Voluntary": "LEFT"},
    "worker_type_map": {"Agency Temp": "agency"},
    "date_formats": ["%Y-%m-%d", "%d/%m/%Y"],
}


def test_hr_csv_with_column_map_value_maps_and_date_formats(tmp_path: Path) -> None:
    people = fetch(tmp_path, "hr_file", "hr.csv", HR_CSV, **HR_SETTINGS)
    assert people == [
        Person("E1", "ann.lee@corp.example", "Ann Lee", PersonStatus.ACTIVE, WorkerType.EMPLOYEE,
               aliases=("ann@corp.example", "a.lee@corp.example"), hire_date=date(2014, 3, 3),
               end_date=None, manager=None, department="Exec", job_title="CEO"),
        # plus-addressing is kept: correlation decides what it means, not the reader
        Person("E2", "bo.chan+tiktok@corp.example", "Bo Chan", PersonStatus.LEFT,
               WorkerType.AGENCY, hire_date=date(2020, 2, 1), end_date=None, manager="E1",
               department="Comms"),
        Person("E3", "cy@corp.example", "Cy Dunn", PersonStatus.LEAVE, WorkerType.EMPLOYEE,
               hire_date=None, end_date=date(2026, 12, 31), manager="E1", department="Comms"),
        Person("E4", "di@corp.example", "Di Eze", PersonStatus.PENDING, WorkerType.INTERN,
               hire_date=date(2026, 12, 1)),
    ]


@pytest.mark.parametrize("cell", ["", "0000-00-00", "00/00/0000", "N/A", "null", "-",
                                  "9999-12-31", "0001-01-01"])
def test_hr_null_dates(tmp_path: Path, cell: str) -> None:
    text = ("employee_id,email,name,status,worker_type,end_date\n"
            f"E1,a@corp.example,A,active,employee,{cell}\n")
    [person] = fetch(tmp_path, "hr_file", "hr.csv", text)
    assert person.end_date is None


def test_hr_alias_separator_and_unknown_columns_ignored(tmp_path: Path) -> None:
    text = ("employee_id,email,name,status,worker_type,aliases,shoe_size\n"
            "E1,a@corp.example,A,active,employee,A1@Corp.example|a2@corp.example,44\n")
    [person] = fetch(tmp_path, "hr_file", "hr.csv", text, alias_separator="|")
    assert person.aliases == ("a1@corp.example", "a2@corp.example")


def test_hr_tsv(tmp_path: Path) -> None:
    text = ("employee_id\temail\tname\tstatus\tworker_type\n"
            "E1\ta@corp.example\tAnn, Lee\tactive\tcontractor\n")
    [person] = fetch(tmp_path, "hr_file", "hr.tsv", text)
    assert (person.name, person.worker_type) == ("Ann, Lee", WorkerType.CONTRACTOR)


def test_hr_csv_with_bom_and_quoted_multiline_cell(tmp_path: Path) -> None:
    text = ("\ufeffemployee_id,email,name,status,worker_type\n"
            'E1,a@corp.example,"Ann\nLee",active,employee\n'
            "E2,b@corp.example,Bo,sabbatical,employee\n")
    assert fails(tmp_path, "hr_file", "hr.csv", text) == (
        "hr.csv:4: status: unknown value 'sabbatical'; map it in sources.t.status_map "
        "(known: active, deceased, inactive, leave, leaver, left, loa, on leave, pending, "
        "pre-hire, prehire, resigned, retired, terminated)")


HR_JSON = """\
{"exported_at": "2026-11-20T05:00:00Z",
 "records": [
  {"id": "E1", "mail": "a@corp.example", "name": "Ann", "status": "Active",
   "worker_type": "Employee", "aliases": ["A@Alias.example", " "], "end_date": null},
  {"id": "E2", "mail": "b@corp.example", "name": "Bo", "status": "Leaver",
   "worker_type": "Contractor", "end_date": "2026-10-31"},
  {"id": "E3", "mail": "c@corp.example", "name": "Cy", "status": "active",
   "worker_type": "employee", "hire_date": "31.12.2020"}
 ]}
"""


def test_hr_json_records_and_line_numbers(tmp_path: Path) -> None:
    conn = connector(tmp_path, "hr_file", "hr.json", HR_JSON.replace("31.12.2020", ""),
                     columns={"employee_id": "id", "email": "mail"})
    people = list(conn.fetch())
    assert [(p.employee_id, p.status, p.worker_type, p.aliases, p.end_date) for p in people] == [
        ("E1", PersonStatus.ACTIVE, WorkerType.EMPLOYEE, ("a@alias.example",), None),
        ("E2", PersonStatus.LEFT, WorkerType.CONTRACTOR, (), date(2026, 10, 31)),
        ("E3", PersonStatus.ACTIVE, WorkerType.EMPLOYEE, (), None),
    ]
    # the record starting on line 7 is the one named
    assert fails(tmp_path, "hr_file", "hr.json", HR_JSON,
                 columns={"employee_id": "id", "email": "mail"}) == (
        "hr.json:7: hire_date: date '31.12.2020' does not match %Y-%m-%d")


def test_a_key_twice_in_a_json_record_is_refused(tmp_path: Path) -> None:
    """Review: json keeps the last of a key written twice, silently: a second
    "readers" in a vault item replaced the first and a leaver's shared login resolved
    as fixed; a second "end_date" in an HR record won. Refused with the record's line
    and the field, in a JSON array, in JSON lines and in the wrapper itself."""
    cols = {"employee_id": "id", "email": "mail"}
    twice = HR_JSON.replace('"end_date": "2026-10-31"}',
                            '"end_date": "2026-10-31", "end_date": null}')
    assert fails(tmp_path, "hr_file", "hr.json", twice, columns=cols) == (
        "hr.json:5: end_date: the key 'end_date' appears twice in one object: each may "
        "appear once")
    assert fails(tmp_path, "hr_file", "hr.json", twice.replace('"mail": "b@', '"id": "X", '
                                                               '"mail": "b@'), columns=cols
                 ) == ("hr.json:5: employee_id (column 'id'): the key 'id' appears twice in "
                       "one object: each may appear once")
    wrapper = HR_JSON.replace('{"exported_at"', '{"records": [], "exported_at"')
    assert fails(tmp_path, "hr_file", "hr.json", wrapper, columns=cols) == (
        "hr.json:1: records: the key 'records' appears twice in one object: each may "
        "appear once")
    line = ('{"employee_id": "E1", "email": "a@corp.example", "name": "A", "status": "active",'
            ' "worker_type": "employee", "status": "left"}\n')
    assert fails(tmp_path, "hr_file", "hr.jsonl", "\n" + line) == (
        "hr.jsonl:2: status: the key 'status' appears twice in one object: each may appear "
        "once")
    vault = ('[{"id": "v1", "accounts": ["x:@a"], "readers": ["a@corp.example"], '
             '"readers": []}]')
    assert fails(tmp_path, "vault_file", "vault.json", vault) == (
        "vault.json:1: readers: the key 'readers' appears twice in one object: each may "
        "appear once")


def test_hr_json_array_names_the_record_line(tmp_path: Path) -> None:
    text = ('[\n'
            '  {"employee_id": "E1", "email": "a@corp.example", "name": "A",\n'
            '   "status": "active", "worker_type": "employee"},\n'
            '\n'
            '  {"employee_id": "E2", "email": "b@corp.example", "name": "B",\n'
            '   "status": "active"}\n'
            ']\n')
    assert fails(tmp_path, "hr_file", "hr.json", text) == (
        "hr.json:5: worker_type: missing key 'worker_type'")


def test_hr_json_lines(tmp_path: Path) -> None:
    good = ('{"employee_id": "E1", "email": "a@corp.example", "name": "A", "status": "active",'
            ' "worker_type": "employee"}\n')
    [person] = fetch(tmp_path, "hr_file", "hr.jsonl", "\n" + good + "\n")
    assert person.employee_id == "E1"
    bad = good.replace('"E1"', '"E2"').replace('"employee"}', '"robot"}')
    assert fails(tmp_path, "hr_file", "hr.jsonl", good + "\n" + bad) == (
        "hr.jsonl:3: worker_type: unknown value 'robot'; map it in sources.t.worker_type_map "
        "(known: agency, contingent, contractor, employee, freelancer, fte, full-time, intern, "
        "part-time, vendor, working student)")
    assert fails(tmp_path, "hr_file", "hr.jsonl", good + '{"employee_id": \n') == (
        "hr.jsonl:2: not JSON: Expecting value: column 17")


def test_hr_declared_format_overrides_the_extension(tmp_path: Path) -> None:
    text = ('{"employee_id": "E1", "email": "a@corp.example", "name": "A", "status": "active",'
            ' "worker_type": "employee"}\n')
    [person] = fetch(tmp_path, "hr_file", "hr.export", text, format="jsonl")
    assert person.employee_id == "E1"
    assert fails(tmp_path, "hr_file", "hr.export", text) == (
        "hr.export: cannot tell the format from '.export'; set format")


@pytest.mark.parametrize(("row", "error"), [
    ("E1,a@corp.example,A,active,employee,2020-13-01",
     "hr.csv:3: hire_date (column 'start'): date '2020-13-01' does not match %Y-%m-%d"),
    ("E1,not-an-email,A,active,employee,",
     "hr.csv:3: email: 'not-an-email' is not an email address"),
    ("E1,a@corp.example,,active,employee,", "hr.csv:3: name: is empty"),
    ("E0,a@corp.example,A,active,employee,",
     "hr.csv:3: employee_id: duplicate employee id 'E0' (first on line 2)"),
    ("E1,a@corp.example,A,active", "hr.csv:3: expected 6 fields, found 4"),
    # the last line: the parser gave up on the line the record started on
    ('E1,"a@corp.example,A,active,employee,',
     "hr.csv:3: malformed CSV record: unexpected end of data"),
])
def test_hr_bad_rows_name_file_line_and_field(tmp_path: Path, row: str, error: str) -> None:
    text = ("employee_id,email,name,status,worker_type,start\n"
            "E0,z@corp.example,Z,active,employee,2020-01-01\n" + row + "\n")
    assert fails(tmp_path, "hr_file", "hr.csv", text, columns={"hire_date": "start"}) == error


HR_TWO = ('[{"employee_id": "E0", "email": "z@corp.example", "name": "Z", "status": '
           '"active", "worker_type": "employee"},\n{"employee_id": %s, "email": '
           '"a@corp.example", "name": %s, "status": "active", "worker_type": "employee"}]\n')


@pytest.mark.parametrize(("eid", "name", "error"), [
    ("true", '"A"', "hr.json:2: employee_id: expected text, got a boolean"),
    ("false", '"A"', "hr.json:2: employee_id: expected text, got a boolean"),
    ('"E1"', "true", "hr.json:2: name: expected text, got a boolean"),
    ("1042.0", '"A"', "hr.json:2: employee_id: expected text, got a number with a fraction "
                      "or exponent (write it as text)"),
    ("1e3", '"A"', "hr.json:2: employee_id: expected text, got a number with a fraction "
                   "or exponent (write it as text)"),
    ('["E1"]', '"A"', "hr.json:2: employee_id: expected text, got a list"),
    ('{"id": "E1"}', '"A"', "hr.json:2: employee_id: expected text, got an object"),
], ids=["true", "false", "name-true", "float", "exponent", "list", "object"])
def test_hr_json_text_fields_refuse_booleans_and_fractions(
        tmp_path: Path, eid: str, name: str, error: str) -> None:
    # a boolean was stored as the text "True" (and 1042.0 as "1042.0"), exit 0
    assert fails(tmp_path, "hr_file", "hr.json", HR_TWO % (eid, name)) == error


def test_hr_json_integer_id_reads_as_its_digits(tmp_path: Path) -> None:
    people = fetch(tmp_path, "hr_file", "hr.json", HR_TWO % ("1042", '"A"'))
    assert [p.employee_id for p in people] == ["E0", "1042"]


def test_hr_value_map_targets_are_checked_with_their_key_path() -> None:
    with pytest.raises(OptionError) as info:
        configure("hr_file", path="hr.csv", status_map={"Gone": "departed"})
    assert info.value.key == "sources.t.status_map.Gone"
    assert str(info.value) == "'departed' is not one of active, leave, left, pending"


def test_hr_missing_file_is_a_source_error_not_bad_data(tmp_path: Path) -> None:
    conn = CONNECTORS["hr_file"]("t", configure("hr_file", path="gone.csv"), tmp_path)
    with pytest.raises(SourceError, match="gone.csv: file not found"):
        list(conn.fetch())


# Every file path a connector reads, by format: (connector type, file name, settings).
FILE_PATHS = [
    ("hr_file", "hr.csv", {}), ("hr_file", "hr.tsv", {}), ("hr_file", "hr.json", {}),
    ("hr_file", "hr.jsonl", {}), ("directory_file", "directory.json", {}),
    ("directory_file", "directory.csv", {}), ("grants_file", "x.csv", {"platform": "x"}),
    ("grants_file", "x.jsonl", {"platform": "x"}), ("vault_file", "vault.json", {}),
    ("vault_file", "vault.csv", {}), ("inventory_file", "accounts.toml", {}),
    ("inventory_file", "accounts.yaml", {}),
]


@pytest.mark.parametrize(("ctype", "name", "raw"), FILE_PATHS,
                         ids=[f"{c}-{n}" for c, n, _ in FILE_PATHS])
def test_a_directory_in_place_of_the_file_is_bad_input_naming_the_key(
        tmp_path: Path, ctype: str, name: str, raw: dict[str, Any]) -> None:
    # a directory does not stand where an export was written by accident: the path
    # names the wrong thing, which a source failed with EISDIR every night hid
    (tmp_path / name).mkdir()
    conn = CONNECTORS[ctype]("t", configure(ctype, path=name, **raw), tmp_path)
    # reconcile fingerprints a source before reading it: that must not raise either
    assert conn.fingerprint() is None
    with pytest.raises(DataError) as info:
        list(conn.fetch())
    assert str(info.value) == (f"{tmp_path / name}: sources.t.path: is a directory, not an "
                               "export file; name the file itself")
    assert conn.check() == [Check("open", False, str(info.value))]


class _FailingDisk:
    """An open file whose first line reads and whose next read fails with EIO."""

    def __init__(self, first: str) -> None:
        self.first: str | None = first

    def __enter__(self) -> _FailingDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __iter__(self) -> _FailingDisk:
        return self

    def __next__(self) -> str:
        if self.first is not None:
            line, self.first = self.first, None
            return line
        raise OSError(errno.EIO, "Input/output error")

    def read(self, size: int = -1) -> str:
        raise OSError(errno.EIO, "Input/output error")


@pytest.mark.parametrize(("ctype", "name", "raw"), FILE_PATHS,
                         ids=[f"{c}-{n}" for c, n, _ in FILE_PATHS])
def test_a_read_error_part_way_is_a_source_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ctype: str, name: str,
        raw: dict[str, Any]) -> None:
    conn = CONNECTORS[ctype]("t", configure(ctype, path=name, **raw), tmp_path)
    # a CSV header that has every column, so the reader gets past it to the failing read
    header = {"hr_file": "employee_id,email,name,status,worker_type\n",
              "directory_file": "login,status\n", "grants_file": "account,principal,role\n",
              "vault_file": "id,accounts,readers\n"}[ctype] if name.endswith("sv") else "\n"
    if name.endswith(".tsv"):
        header = header.replace(",", "\t")
    monkeypatch.setattr(Path, "open", lambda *a, **k: _FailingDisk(header))
    with pytest.raises(SourceError) as info:
        list(conn.fetch())
    assert str(info.value) == f"{tmp_path / name}: cannot read: Input/output error (EIO)"


def test_a_directory_in_place_of_a_demo_export_stops_the_run_writing_nothing(
        demo_dir: Path, db_url: str) -> None:
    cfg = str(demo_dir / "governor.toml")
    upgraded(demo_dir, db_url)
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=demo_env(db_url)).code == 0
    before = dump(db_url)

    (demo_dir / "x_team.csv").unlink()
    (demo_dir / "x_team.csv").mkdir()
    out = run_cli("-c", cfg, "reconcile", "--no-report", env=demo_env(db_url))
    assert (out.code, out.out, out.err) == (
        2, "", f"governor: {demo_dir / 'x_team.csv'}: sources.x_team.path: is a directory, "
               "not an export file; name the file itself\n")
    assert dump(db_url) == before


def test_non_utf8_byte_names_its_own_line_and_field(tmp_path: Path) -> None:
    rows = "".join(f"E{i},p{i}@corp.example,P{i},active,employee\n" for i in range(3000))
    text = ("employee_id,email,name,status,worker_type\n" + rows).encode()
    text += b"E9,x@corp.example,Jos\xe9,active,employee\n"
    # the text layer decodes ahead in blocks: the reader's own position would be wrong
    assert fails(tmp_path, "hr_file", "hr.csv", text) == "hr.csv:3002: name: not UTF-8 text"
    data = b'{"employee_id": "E1"}\n{"employee_id": "E\xff"}\n'
    assert fails(tmp_path, "hr_file", "hr.jsonl", data) == "hr.jsonl:2: not UTF-8 text"
    data = b'[\n{"employee_id": "E1"},\n{"employee_id": "E\xff"}\n]'
    assert fails(tmp_path, "hr_file", "hr.json", data) == "hr.json:3: not UTF-8 text"


# ---- directory ------------------------------------------------------------------------------
DIR_CSV = """\
login,email,employee_id,status,mfa_factors,groups,last_login
Ann@Corp.example,Ann@Corp.example,E1,ACTIVE,totp:active;sms:active,Everyone;social,2026-11-19T18:02:11Z
bo@corp.example,,E2,PROVISIONED,token:software:totp;token:software:totp:PENDING_ACTIVATION,,
cy@corp.example,cy@corp.example,,LOCKED_OUT,,Everyone,2026-11-01T09:00:00
di@corp.example,,,deactivated,Okta_Verify:not_setup,,
"""


def test_directory_csv_factors_groups_and_status_words(tmp_path: Path) -> None:
    accounts = fetch(tmp_path, "directory_file", "dir.csv", DIR_CSV,
                     factor_map={"okta_verify": "push"})
    assert accounts == [
        DirectoryAccount("ann@corp.example", DirectoryStatus.ACTIVE, "ann@corp.example", "E1",
                         mfa=(MfaFactor("totp", "active"), MfaFactor("sms", "active")),
                         mfa_read_at=MTIME, groups=("Everyone", "social"),
                         last_login=utc(2026, 11, 19, 18, 2, 11)),
        # Okta's type names hold colons; a trailing status word is split off
        DirectoryAccount("bo@corp.example", DirectoryStatus.ACTIVE, None, "E2",
                         mfa=(MfaFactor("totp", "active"), MfaFactor("totp", "pending")),
                         mfa_read_at=MTIME),
        # an empty cell: nothing enrolled (not unknown); a naive time is UTC
        DirectoryAccount("cy@corp.example", DirectoryStatus.LOCKED, "cy@corp.example", None,
                         mfa=(), mfa_read_at=MTIME, groups=("Everyone",),
                         last_login=utc(2026, 11, 1, 9)),
        DirectoryAccount("di@corp.example", DirectoryStatus.DEPROVISIONED,
                         mfa=(MfaFactor("push", "inactive"),), mfa_read_at=MTIME),
    ]
    assert not accounts[2].mfa and accounts[2].mfa is not None
    assert [f.strength.value for f in accounts[0].mfa or ()] == ["strong", "weak"]


def test_directory_without_a_factor_column_reports_mfa_unknown(tmp_path: Path) -> None:
    text = "login,status,groups\na@corp.example,active,x|y\n"
    [account] = fetch(tmp_path, "directory_file", "dir.csv", text, list_separator="|")
    assert (account.mfa, account.mfa_read_at, account.groups) == (None, None, ("x", "y"))


def test_directory_json_factor_objects(tmp_path: Path) -> None:
    text = """\
{"exported_at": "2026-11-20T05:00:00Z", "records": [
  {"login": "a@corp.example", "status": "ACTIVE", "employeeNumber": "E1",
   "factors": [{"type": "push", "provider": "OKTA", "status": "ACTIVE"},
               {"type": "sms", "status": "NOT_SETUP"}, {"type": "fido2", "status": "active"},
               "call:active"],
   "groups": ["Everyone", "social"], "mfa_read_at": "2026-11-18T05:00:00Z"},
  {"login": "b@corp.example", "status": "SUSPENDED", "factors": []},
  {"login": "c@corp.example", "status": "STAGED"},
  {"login": "d@corp.example", "status": "active", "factors": null}
]}
"""
    accounts = fetch(tmp_path, "directory_file", "dir.json", text,
                     columns={"employee_id": "employeeNumber", "mfa_factors": "factors"})
    assert [(a.login, a.status, a.employee_id, a.mfa, a.mfa_read_at, a.groups)
            for a in accounts] == [
        ("a@corp.example", DirectoryStatus.ACTIVE, "E1",
         (MfaFactor("push", "active"), MfaFactor("sms", "inactive"),
          MfaFactor("webauthn", "active"), MfaFactor("call", "active")),
         utc(2026, 11, 18, 5), ("Everyone", "social")),
        ("b@corp.example", DirectoryStatus.SUSPENDED, None, (), MTIME, ()),
        # a record without the key, or with null, did not report factors: unknown
        ("c@corp.example", DirectoryStatus.STAGED, None, None, None, ()),
        ("d@corp.example", DirectoryStatus.ACTIVE, None, None, None, ()),
    ]
    mfa = accounts[0].mfa
    assert mfa is not None and [f.provider for f in mfa] == ["OKTA", None, None, None]


@pytest.mark.parametrize(("cell", "error"), [
    ("carrier-pigeon:active", "dir.csv:2: mfa_factors: unknown factor type 'carrier-pigeon'; "
                              "map it in factor_map"),
    ("totp:revoked", "dir.csv:2: mfa_factors: unknown factor type 'totp:revoked'; "
                     "map it in factor_map"),
])

def test_directory_unknown_factor(tmp_path: Path, cell: str, error: str) -> None:
    text = f"login,status,mfa_factors\na@corp.example,active,{cell}\n"
    assert fails(tmp_path, "directory_file", "dir.csv", text) == error


def test_a_factor_object_without_a_status_is_bad_input_not_active(tmp_path: Path) -> None:
    # read as active, a pending or disabled factor would pass user-mfa-missing
    text = '[{"login": "a@corp.example", "status": "active", "factors": [{"type": "fido2"}]}]'
    assert fails(tmp_path, "directory_file", "dir.json", text,
                 columns={"mfa_factors": "factors"}) == (
        "dir.json:1: mfa_factors (column 'factors'): factor 'fido2' has no status")


def test_directory_errors_name_the_configured_column(tmp_path: Path) -> None:
    text = '[{"login": "a@corp.example", "status": "active", "factors": [{"type": "totp",' \
           ' "status": "broken"}]}]'
    assert fails(tmp_path, "directory_file", "dir.json", text,
                 columns={"mfa_factors": "factors"}) == (
        "dir.json:1: mfa_factors (column 'factors'): unknown factor status 'broken'")
    text = "login,status\na@corp.example,active\nA@corp.example,active\n"
    assert fails(tmp_path, "directory_file", "dir.csv", text) == (
        "dir.csv:3: login: duplicate login 'a@corp.example' (first on line 2)")
    text = "login,status\na@corp.example,frozen\n"
    assert fails(tmp_path, "directory_file", "dir.csv", text).startswith(
        "dir.csv:2: status: unknown value 'frozen'; map it in sources.t.status_map (known: ")


# ---- inventory ------------------------------------------------------------------------------
INV_TOML = """\
[[accounts]]
platform = "X"
handle = "@northwind"
criticality = "Critical"
owner = "E1"
owner_team = "Comms"
access = "sso_tool"
tool = "hootsuite"
account_2fa = true
grants_source = "x_team"
recovery_email = "Social@Corp.example"
recovery_email_owner = "E1"
recovery_phone = "+1 206 555 0100"
recovery_phone_kind = "personal"
recovery_phone_owner = "E2"
attested_by = "E1"
attested_at = 2026-10-05
next_due = 2027-01-05
notes = "main account"

[[accounts]]
platform = "tiktok"
handle = "@northwind"
criticality = "low"
access = "shared_login"
"""
INV_YAML = """\
# the same inventory as YAML
accounts:
  - platform: X
    handle: "@northwind"
    criticality: Critical
    owner: E1
    owner_team: Comms
    access: sso_tool
    tool: hootsuite
    account_2fa: true
    grants_source: x_team
    recovery_email: Social@Corp.example
    recovery_email_owner: E1
    recovery_phone: "+1 206 555 0100"
    recovery_phone_kind: personal
    recovery_phone_owner: E2
    attested_by: E1
    attested_at: 2026-10-05
    next_due: 2027-01-05
    notes: main account

  - platform: tiktok
    handle: "@northwind"
    criticality: low
    access: shared_login
"""
INVENTORY = [
    SocialAccount(
        key="x:@northwind", platform="x", handle="@northwind", access=AccountAccess.SSO_TOOL,
        criticality=Criticality.CRITICAL, owner="E1", owner_team="Comms", tool="hootsuite",
        account_2fa=True,
        recovery_email=RecoveryContact("social@corp.example", "corporate", "E1"),
        recovery_phone=RecoveryContact("+1 206 555 0100", "personal", "E2"),
        grants_source="x_team",
        attestation=Attestation("E1", date(2026, 10, 5), date(2027, 1, 5))),
    SocialAccount(key="tiktok:@northwind", platform="tiktok", handle="@northwind",
                  access=AccountAccess.SHARED_LOGIN, criticality=Criticality.LOW),
]


@pytest.mark.parametrize(("name", "text"), [("accounts.toml", INV_TOML),
                                            ("accounts.yaml", INV_YAML),
                                            ("accounts.yml", INV_YAML)])
def test_inventory_toml_and_yaml_read_the_same(tmp_path: Path, name: str, text: str) -> None:
    assert fetch(tmp_path, "inventory_file", name, text) == INVENTORY


def test_inventory_yaml_errors_name_the_key_line(tmp_path: Path) -> None:
    bad = INV_YAML.replace("criticality: low", "criticality: severe")
    assert fails(tmp_path, "inventory_file", "a.yaml", bad) == (
        "a.yaml:24: accounts[1].criticality: 'severe' is not one of critical, high, medium, low")
    bad = INV_YAML.replace("    tool: hootsuite\n", "    tool: hootsuite\n    tol: x\n")
    assert fails(tmp_path, "inventory_file", "a.yaml", bad) == (
        "a.yaml:10: accounts[0].tol: unknown key")
    bad = INV_YAML.replace("criticality: low", "criticality: [low")
    assert fails(tmp_path, "inventory_file", "a.yaml", bad).startswith(
        "a.yaml:25: not valid YAML: ")


def test_inventory_yaml_guesses_nothing(tmp_path: Path) -> None:
    """Review: YAML 1.1 read owner 01001 as the octal number 513 and let a key written
    twice win silently; an impossible date was a traceback. A number is the text it was
    written as, a key twice and a date that is none are errors with their line, and
    0000-00-00 is no date, as in every export."""
    (account, _) = fetch(tmp_path, "inventory_file", "a.yaml",
                         INV_YAML.replace("owner: E1", "owner: 01001"))
    assert account.owner == "01001"
    twice = INV_YAML.replace("criticality: low", "criticality: low\n    criticality: high")
    assert fails(tmp_path, "inventory_file", "b.yaml", twice) == (
        "b.yaml:25: not valid YAML: the key 'criticality' is written twice")
    bad = INV_YAML.replace("next_due: 2027-01-05", "next_due: 2026-02-30")
    assert fails(tmp_path, "inventory_file", "c.yaml", bad) == (
        "c.yaml:19: not valid YAML: '2026-02-30' is not a date (day is out of range for "
        "month)")
    none = INV_YAML.replace("next_due: 2027-01-05", "next_due: 0000-00-00")
    assert fetch(tmp_path, "inventory_file", "d.yaml", none) == fetch(
        tmp_path, "inventory_file", "e.yaml", INV_YAML.replace("    next_due: 2027-01-05\n", ""))


@pytest.mark.parametrize("none", ['"0000-00-00"', '""'])
def test_an_inventory_date_of_zeros_or_blank_is_none(tmp_path: Path, none: str) -> None:
    """Review: blank and 0000-00-00 dates are null in every export; the TOML inventory
    refused them ("expected a date")."""
    assert fetch(tmp_path, "inventory_file", "a.toml",
                 INV_TOML.replace("next_due = 2027-01-05", f"next_due = {none}")) == fetch(
        tmp_path, "inventory_file", "b.toml", INV_TOML.replace("next_due = 2027-01-05\n", ""))


def test_vault_does_not_repeat_a_refused_date_or_flag(tmp_path: Path) -> None:
    # a column shifted by one puts the next cell, a password here, where a date belongs
    text = "id,accounts,readers,password_changed_at\nv1,x:@a,a@corp.example,Hunter2Secret!\n"
    assert fails(tmp_path, "vault_file", "vault.csv", text) == (
        "vault.csv:2: password_changed_at: the value (not shown) is not an ISO 8601 date-time")
    text = "id,accounts,readers,totp_in_vault\nv1,x:@a,a@corp.example,Hunter2Secret!\n"
    assert "Hunter2" not in fails(tmp_path, "vault_file", "vault.csv", text)


@pytest.mark.parametrize(("change", "error"), [
    (("criticality = \"low\"", "criticality = \"severe\""),
     "24: accounts[1].criticality: 'severe' is not one of critical, high, medium, low"),
    (("access = \"shared_login\"", "acess = \"shared_login\""), "25: accounts[1].acess: unknown key"),
    (("account_2fa = true", "account_2fa = \"yes\""),
     "9: accounts[0].account_2fa: expected true or false (omit it when unknown)"),
    (("recovery_phone_kind = \"personal\"", "recovery_phone_kind = \"mine\""),
     "14: accounts[0].recovery_phone_kind: 'mine' is not one of corporate, personal, shared"),
    (("attested_at = 2026-10-05", "attested_at = \"October\""),
     "17: accounts[0].attested_at: expected a date (YYYY-MM-DD)"),
    (("attested_by = \"E1\"\n", ""),
     # a missing key: the line of its entry's header
     "1: accounts[0].attested_by: attested_by and attested_at go together"),
    (("platform = \"tiktok\"", "platform = \"x\""),
     "23: accounts[1].handle: x:@northwind is listed twice (also accounts[0])"),
    (("handle = \"@northwind\"\ncriticality = \"low\"", "criticality = \"low\""),
     "21: accounts[1].handle: required key is missing"),
])
def test_inventory_toml_errors_name_the_key_path_and_line(tmp_path: Path, change: tuple[str, str],
                                                 error: str) -> None:
    assert change[0] in INV_TOML
    bad = INV_TOML.replace(*change)
    assert fails(tmp_path, "inventory_file", "accounts.toml", bad) == f"accounts.toml:{error}"


def test_inventory_not_a_list_of_accounts(tmp_path: Path) -> None:
    assert fails(tmp_path, "inventory_file", "a.toml", "[accounts]\nplatform = 'x'\n") == (
        "a.toml: accounts: expected a list of [[accounts]]")
    assert fails(tmp_path, "inventory_file", "a.toml", "accounts = [\n").startswith(
        "a.toml: not valid TOML: ")
    assert fails(tmp_path, "inventory_file", "a.toml", b"# caf\xe9\n[[accounts]]\n") == (
        "a.toml:1: not UTF-8 text")
    assert fails(tmp_path, "inventory_file", "a.yaml",
                 b"accounts:\n  - platform: x\n    handle: \"@caf\xe9\"\n") == (
        "a.yaml:3: not UTF-8 text")


# ---- grants ---------------------------------------------------------------------------------
def test_grants_bare_handles_platform_preset_and_ladder_names(tmp_path: Path) -> None:
    text = """\
account,principal,role,granted_at,last_active
@northwind,maya@corp.example,Owner,2019-02-11T10:00:00Z,2026-11-19T16:20:00Z
@northwind,grace.liu+x@corp.example,contributor,2021-01-18T14:12:00,
X:@northwind_help,svc-bot,ANALYST,,
@northwind_help,ops@corp.example,Moderator,,
"""
    grants = fetch(tmp_path, "grants_file", "x.csv", text, platform="x")
    assert grants == [
        Grant("x:@northwind", "maya@corp.example", "Owner", Role.OWNER,
              granted_at=utc(2019, 2, 11, 10), last_active=utc(2026, 11, 19, 16, 20)),
        # X's "Contributor" publishes without approval: the preset says publisher
        Grant("x:@northwind", "grace.liu+x@corp.example", "contributor", Role.PUBLISHER,
              granted_at=utc(2021, 1, 18, 14, 12)),
        Grant("x:@northwind_help", "svc-bot", "ANALYST", Role.ANALYST),
        # not in X's preset: the ladder's own name
        Grant("x:@northwind_help", "ops@corp.example", "Moderator", Role.MODERATOR),
    ]


@pytest.mark.parametrize("zero", ["0000-00-00 00:00:00", "0000-00-00T00:00:00Z",
                                  "0000-00-00T00:00:00.000+00:00"])
def test_a_zero_instant_is_none(tmp_path: Path, zero: str) -> None:
    """Review: blank and 0000-00-00 dates are null; with a time of day they were refused
    as "not an ISO 8601 date-time" (a grants export's last_active, a directory's last
    login)."""
    text = f"account,principal,role,granted_at,last_active\n@n,a@corp.example,Owner,{zero},{zero}\n"
    assert fetch(tmp_path, "grants_file", "x.csv", text, platform="x") == [
        Grant("x:@n", "a@corp.example", "Owner", Role.OWNER)]


def test_an_account_naming_another_platform_in_a_platform_export_is_refused(
        tmp_path: Path) -> None:
    """Review: 'twitter:@northwind' in an X export was stored as the account
    'x:twitter:@northwind': the owner's grant on x:@northwind ended."""
    text = "account,principal,role\n@n,a@corp.example,Owner\ntwitter:@n,b@corp.example,Owner\n"
    assert fails(tmp_path, "grants_file", "x.csv", text, platform="x") == (
        "x.csv:3: account: 'twitter:@n' names the platform 'twitter' (did you mean 'x'? "
        "'twitter' is its former name), but this source's platform is 'x'")
    text = "account,principal,role\ninstagram:@n,b@corp.example,Owner\n"
    assert fails(tmp_path, "grants_file", "x.csv", text, platform="x").startswith(
        "x.csv:2: account: 'instagram:@n' names the platform 'instagram', but")
    # a Page name with a colon in it is a name
    text = "account,principal,role\nNorthwind: Kitchen,b@corp.example,Admin\n"
    assert [g.account for g in fetch(tmp_path, "grants_file", "fb.csv", text,
                                     platform="facebook")] == ["facebook:Northwind: Kitchen"]


def test_grants_role_map_overrides_the_preset_case_insensitively(tmp_path: Path) -> None:
    text = """\
page,email,access,added
Northwind Page,a@corp.example,Full control,2019-02-11T10:20:00Z
Northwind Page,b@corp.example,PARTIAL ACCESS,
Northwind Page,c@corp.example,community manager,
"""
    grants = fetch(tmp_path, "grants_file", "fb.csv", text, platform="facebook",
                   columns={"account": "page", "principal": "email", "role": "access",
                            "granted_at": "added"},
                   role_map={"Partial Access": "contributor", "Community Manager": "approver"})
    assert [(g.account, g.principal, g.raw_role, g.role, g.via) for g in grants] == [
        ("facebook:Northwind Page", "a@corp.example", "Full control", Role.ADMIN,
         AccessPath.DIRECT),
        ("facebook:Northwind Page", "b@corp.example", "PARTIAL ACCESS", Role.CONTRIBUTOR,
         AccessPath.DIRECT),
        ("facebook:Northwind Page", "c@corp.example", "community manager", Role.MODERATOR,
         AccessPath.DIRECT),
    ]
    assert grants[0].granted_at == utc(2019, 2, 11, 10, 20)


def test_grants_tool_seats_use_the_tool_preset(tmp_path: Path) -> None:
    text = """\
account,principal,role,via_detail
x:@northwind,a@corp.example,Super Admin,
Facebook:Northwind Page,b@corp.example,Can publish,
instagram:@northwind,c@corp.example,Read only,team:Social
"""
    grants = fetch(tmp_path, "grants_file", "hs.csv", text, via="tool_seat", tool="hootsuite")
    assert [(g.account, g.role, g.via, g.via_detail) for g in grants] == [
        ("x:@northwind", Role.ADMIN, AccessPath.TOOL_SEAT, "hootsuite"),
        ("facebook:Northwind Page", Role.PUBLISHER, AccessPath.TOOL_SEAT, "hootsuite"),
        ("instagram:@northwind", Role.ANALYST, AccessPath.TOOL_SEAT, "team:Social"),
    ]


def test_a_tool_without_a_preset_reads_roles_from_role_map_only(tmp_path: Path) -> None:
    # a tool governor has no preset for: its "Editor" may publish or only draft, and its
    # "Admin" may be the billing contact; the ladder's names are not guessed
    with pytest.raises(OptionError) as info:
        configure("grants_file", path="g.csv", via="tool_seat", tool="buffer")
    assert (info.value.key, str(info.value)) == (
        "sources.t.tool", "no role preset for the tool 'buffer'; presets: hootsuite, "
        "sproutsocial. Another tool needs every role its export holds in role_map")
    with pytest.raises(OptionError) as info:
        configure("grants_file", path="g.csv", via="tool_seat", tool="hootsuit")
    assert "no role preset for the tool 'hootsuit' (did you mean 'hootsuite'?)" in str(
        info.value)
    text = "account,principal,role\nx:@northwind,a@corp.example,Editor\n" \
           "x:@northwind,b@corp.example,Admin\n"
    assert fails(tmp_path, "grants_file", "buf.csv", text, via="tool_seat", tool="buffer",
                 role_map={"Admin": "admin"}) == (
        "buf.csv:2: role: role 'Editor' is not mapped for buffer, which has no role "
        "preset; add it to role_map")
    grants = fetch(tmp_path, "grants_file", "buf.csv", text, via="tool_seat", tool="buffer",
                   role_map={"editor": "contributor", "admin": "admin"})
    assert [(g.principal, g.role, g.via_detail) for g in grants] == [
        ("a@corp.example", Role.CONTRIBUTOR, "buffer"), ("b@corp.example", Role.ADMIN, "buffer")]


def test_grants_json_and_jsonl(tmp_path: Path) -> None:
    text = """\
{"exported_at": "2026-11-20T05:10:00Z",
 "records": [
  {"account": "@nw", "principal": "a@corp.example", "role": "Full control"},
  {"account": "@nw", "principal": "b@corp.example", "role": "Partial access"}
 ]}
"""
    assert fails(tmp_path, "grants_file", "ig.json", text, platform="instagram") == (
        "ig.json:4: role: role 'Partial access' is not mapped for instagram; add it to role_map")
    grants = fetch(tmp_path, "grants_file", "ig.json", text, platform="instagram",
                   role_map={"partial access": "publisher"})
    assert [(g.account, g.role) for g in grants] == [("instagram:@nw", Role.ADMIN),
                                                     ("instagram:@nw", Role.PUBLISHER)]
    lines = '{"account": "tiktok:@nw", "principal": "a", "role": "Operator"}\n'
    [grant] = fetch(tmp_path, "grants_file", "tt.jsonl", lines)
    assert (grant.account, grant.role) == ("tiktok:@nw", Role.PUBLISHER)


@pytest.mark.parametrize(("row", "error"), [
    ("@northwind,a@corp.example,Owner", "g.csv:2: account: '@northwind' is not platform:handle "
                                        "(or set platform)"),
    ("x:,a@corp.example,Owner", "g.csv:2: account: 'x:' is not platform:handle "
                                "(or set platform)"),
    ("x:@northwind,,Owner", "g.csv:2: principal: is empty"),
    ("x:@northwind,a@corp.example,Intern Helper",
     "g.csv:2: role: role 'Intern Helper' is not mapped for x; add it to role_map"),
    ("x:@northwind,a@corp.example,Owner,yesterday",
     "g.csv:2: granted_at: 'yesterday' is not an ISO 8601 date-time"),
])
def test_grants_bad_rows(tmp_path: Path, row: str, error: str) -> None:
    text = "account,principal,role,granted_at\n" + row + ("," if row.count(",") == 2 else "")
    assert fails(tmp_path, "grants_file", "g.csv", text + "\n") == error


def test_grants_settings_are_cross_checked() -> None:
    with pytest.raises(OptionError) as info:
        configure("grants_file", path="g.csv", via="tool_seat")
    assert (info.value.key, str(info.value)) == ("sources.t.tool",
                                                 "required when via = 'tool_seat'")
    with pytest.raises(OptionError) as info:
        configure("grants_file", path="g.csv", role_map={"Boss": "chief"})
    assert info.value.key == "sources.t.role_map.Boss"
    assert str(info.value).startswith("unknown role 'chief'; expected one of analyst")
    with pytest.raises(OptionError) as info:
        configure("grants_file", path="g.csv", via="vault")
    assert info.value.key == "sources.t.via"


def test_grants_connector_points_at_the_row_it_last_yielded(tmp_path: Path) -> None:
    text = "account,principal,role\nx:@a,p,owner\nx:@a,q,admin\n"
    conn = connector(tmp_path, "grants_file", "g.csv", text)
    it = iter(conn.fetch())
    next(it)
    assert conn.at == (str(tmp_path / "g.csv"), 2)
    next(it)
    assert conn.at == (str(tmp_path / "g.csv"), 3)


# ---- vault ----------------------------------------------------------------------------------
FP = "hmac-sha256:" + "0123456789abcdef" * 4
VAULT_JSON = f"""\
{{
  "exported_at": "2026-11-20T05:15:00Z",
  "groups": {{"Social Team": ["Ann@Corp.example", "bo@corp.example"]}},
  "records": [
    {{"id": "v1", "title": "TikTok login", "accounts": ["TikTok:@northwind", "tiktok:@northwind"],
      "readers": ["group:Social Team", "cy@corp.example", "BO@corp.example"],
      "password_changed_at": "2026-09-02T09:14:00Z", "totp_in_vault": true,
      "fingerprint": "{FP.upper().replace("HMAC-SHA256", "hmac-sha256")}"}},
    {{"id": "v2", "accounts": ["x:@northwind_uk"], "readers": ["group:Agency", "d@corp.example"],
      "totp_in_vault": "no"}}
  ]
}}
"""


def test_vault_json_expands_groups_and_keeps_keyed_fingerprints(tmp_path: Path) -> None:
    creds = fetch(tmp_path, "vault_file", "vault.json", VAULT_JSON)
    assert creds == [
        Credential("v1", "TikTok login", ("tiktok:@northwind",),
                   ("ann@corp.example", "bo@corp.example", "cy@corp.example"),
                   reader_groups=("Social Team",),
                   password_changed_at=utc(2026, 9, 2, 9, 14), totp_in_vault=True,
                   fingerprint=FP, expanded_groups=("Social Team",)),
        # a group the export does not define is kept by name (expanded later, through the
        # directory's groups, and said not to be expanded here); the title defaults to the id
        Credential("v2", "v2", ("x:@northwind_uk",), ("d@corp.example",),
                   reader_groups=("Agency",), totp_in_vault=False, expanded_groups=()),
    ]


def test_vault_csv_lists(tmp_path: Path) -> None:
    text = ("id,title,accounts,readers,totp_in_vault,fingerprint\n"
            f"v1,X,x:@a;X:@b,a@corp.example; group:Ops,,{FP}\n"
            "v2,Y,youtube:Channel,,unknown,\n")
    creds = fetch(tmp_path, "vault_file", "vault.csv", text)
    assert [(c.item_id, c.accounts, c.readers, c.reader_groups, c.totp_in_vault, c.fingerprint)
            for c in creds] == [
        ("v1", ("x:@a", "x:@b"), ("a@corp.example",), ("Ops",), None, FP),
        ("v2", ("youtube:Channel",), (), (), None, None),
    ]


@pytest.mark.parametrize("value", ["Hunter2-Summer!2026", "hmac-sha256:Hunter2-Summer!2026",
                                   "sha256:" + "ab" * 32, "hmac-sha256:" + "ab" * 16])
def test_vault_refuses_anything_but_a_keyed_fingerprint_without_echoing_it(
        tmp_path: Path, value: str) -> None:
    text = f"id,accounts,readers,fingerprint\nv1,x:@a,a@corp.example,{value}\n"
    error = fails(tmp_path, "vault_file", "vault.csv", text)
    assert error == ("vault.csv:2: fingerprint: is not a keyed fingerprint (hmac-sha256:<hex>); "
                     "value not shown")
    secret = value.rpartition(":")[2]
    assert secret not in error


@pytest.mark.parametrize(("change", "error"), [
    (('"id": "v2"', '"id": "v1"'), "vault.json:9: id: duplicate item id 'v1' (first on line 5)"),
    (('["x:@northwind_uk"]', '[]'), "vault.json:9: accounts: names no account"),
    (('["x:@northwind_uk"]', '["northwind_uk"]'),
     "vault.json:9: accounts: 'northwind_uk' is not platform:handle"),
    (('"totp_in_vault": "no"', '"totp_in_vault": "maybe"'),
     "vault.json:9: totp_in_vault: the value (not shown) is not yes/no"),
    (('"Social Team": [', '"Social Team": "x", "y": ['),
     "vault.json: groups: expected a table of name -> list of member emails"),
])
def test_vault_bad_records(tmp_path: Path, change: tuple[str, str], error: str) -> None:
    assert change[0] in VAULT_JSON
    assert fails(tmp_path, "vault_file", "vault.json", VAULT_JSON.replace(*change)) == error


def test_grant_options_name_real_options() -> None:
    for name, cls in CONNECTORS.items():
        for key in cls.grant_options:
            assert key in cls.options, (name, key)


@pytest.mark.parametrize("cell", ["9999-12-31T18:59:59-05:00", "9999-12-31T23:59:59Z",
                                  "0001-01-01T00:30:00-01:00", "0001-01-01T00:00:00Z",
                                  "9999-12-31T12:00:00"])
def test_grants_sentinel_instants_are_no_instant(tmp_path: Path, cell: str) -> None:
    # "never" written as the calendar's last or first day: past any arithmetic on it
    text = f"account,principal,role,granted_at,last_active\n@nw,a@corp.example,Admin,,{cell}\n"
    [g] = fetch(tmp_path, "grants_file", "x.csv", text, platform="x")
    assert g.last_active is None


@pytest.mark.parametrize("cell", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:30:00+01:00"])
@pytest.mark.parametrize("name", ["x.csv", "x.jsonl"])
def test_grants_instants_outside_utc_are_bad_input(tmp_path: Path, cell: str,
                                                   name: str) -> None:
    # no instant at all: no serialiser writes it for "never" (an offset date-time must
    # exist in UTC), and read as a placeholder it was stored as NULL without a word
    if name == "x.csv":
        text = f"account,principal,role,granted_at,last_active\n@nw,a@corp.example,Admin,,{cell}\n"
        line = 2
    else:
        text = ('{"account": "@nw", "principal": "a@corp.example", "role": "Admin", '
                f'"last_active": "{cell}"}}\n')
        line = 1
    assert fails(tmp_path, "grants_file", name, text, platform="x") == (
        f"{name}:{line}: last_active: '{cell}' is not an instant (in UTC it falls before "
        "year 1 or after 9999); leave it empty when there is none")


def test_a_byte_order_mark_is_accepted_in_every_text_format(tmp_path: Path) -> None:
    # spreadsheet tools and Windows editors write one; CSV and JSON took it already
    bom = "\ufeff"
    rows = fetch(tmp_path, "hr_file", "hr.jsonl", bom + '{"employee_id": "E1", "email": '
                 '"a@corp.example", "name": "A", "status": "active", "worker_type": '
                 '"employee"}\n')
    assert [p.employee_id for p in rows] == ["E1"]
    cfg = tmp_path / "governor.toml"
    cfg.write_text(bom + '[governor]\nreport_dir = "r"\n', encoding="utf-8")
    assert config.load(cfg).report_dir == (tmp_path / "r").resolve()


def test_rows_of_empty_cells_a_spreadsheet_leaves_below_the_data_are_skipped(
        tmp_path: Path) -> None:
    # Excel writes ",,,,,,,,,," for rows below the data that once held something; they
    # carry no record. A row with any value is still checked in full.
    text = HR_CSV + ",,,,,,,,,,\n , ,,,,,,,,,\n,,,\n"
    people = fetch(tmp_path, "hr_file", "hr.csv", text, **HR_SETTINGS)
    assert [p.employee_id for p in people] == ["E1", "E2", "E3", "E4"]
    with pytest.raises(DataError) as bad:
        fetch(tmp_path, "hr_file", "hr2.csv", HR_CSV + ",,,,Active,,,,,,\n", **HR_SETTINGS)
    assert bad.value.line == 6
    grants = fetch(tmp_path, "grants_file", "g.csv",
                   "account,principal,role\nx:@a,ann@corp.example,Admin\n,,\n", )
    assert len(grants) == 1


def test_connectors_keep_a_kelvin_sign_as_correlation_does(tmp_path: Path) -> None:
    """str.lower() turns a Kelvin sign "K" (U+212A) into "k": a vault reader, a directory
    login or an HR address spelt with one became someone else's own address before
    correlation (which keeps it apart) ever saw it."""
    kelvin = "maya.o\u212aafor@corp.example"
    vault = ('{"records": [{"id": "v1", "accounts": ["x:@a"], "readers": ["' + kelvin
             + '", "Bo@corp.example"]}]}')
    [cred] = fetch(tmp_path, "vault_file", "vault.json", vault)
    assert cred.readers == ("bo@corp.example", kelvin)
    [acct] = fetch(tmp_path, "directory_file", "dir.csv",
                   f"login,status,email\n{kelvin.upper()},active,{kelvin}\n")
    assert acct.login == "maya.o\u212aafor@corp.example" and acct.email == kelvin
    [p] = fetch(tmp_path, "hr_file", "hr.csv", "employee_id,name,email,aliases,status,"
                "worker_type\nE1,Maya,MAYA@corp.example," + kelvin + ",active,employee\n")
    assert (p.email, p.aliases) == ("maya@corp.example", (kelvin,))


@pytest.mark.parametrize(("name", "content", "column"), [
    ("vault.csv", "Title,id,accounts,readers,Password,OTPAuth\n"
                  "X,v1,x:@a,a@corp.example,Hunter2-Summer!2026,otpauth://totp/x?secret=JBSW\n",
     "OTPAuth"),
    ("vault.json", '{"records": [{"id": "v1", "accounts": ["x:@a"], "readers": ["a@corp.'
                   'example"], "password": "Hunter2-Summer!2026"}]}', "password"),
    # Bitwarden's CSV names
    ("vault.csv", "id,accounts,readers,login_password,login_totp\n"
                  "v1,x:@a,a@corp.example,Hunter2-Summer!2026,JBSW\n", "login_password"),
])
def test_a_vault_export_carrying_secrets_is_refused_without_reading_them(
        tmp_path: Path, name: str, content: str, column: str) -> None:
    """A 1Password-style export keeps its Password and OTPAuth columns: governor ignored
    them, so nobody was told a file of the brand's passwords lay where it reads."""
    with pytest.raises(DataError) as info:
        fetch(tmp_path, "vault_file", name, content)
    message = str(info.value)
    assert f"the export holds a {column!r}" in message and "No value was read" in message
    assert "Hunter2" not in message and "JBSW" not in message


def test_a_semicolon_export_is_read_with_its_delimiter_and_named_without_it(
        tmp_path: Path) -> None:
    # review: a ';' export (spreadsheets in many European locales) could not be read, and
    # the error said "missing column 'employee_id'"
    content = ("employee_id;name;email;status;worker_type\n"
               "E1;Zoë Weiß;zoe@corp.example;active;employee\n")
    message = fails(tmp_path, "hr_file", "hr.csv", content)
    assert message == ("hr.csv:1: the header reads as one column, 'employee_id;name;email;"
                       "status;worker_type': the file looks separated by ';'; set the "
                       "source's delimiter = ';'")
    [p] = fetch(tmp_path, "hr_file", "hr.csv", content, delimiter=";")
    assert (p.employee_id, p.name, p.email) == ("E1", "Zoë Weiß", "zoe@corp.example")
    with pytest.raises(OptionError, match="one of"):
        fetch(tmp_path, "hr_file", "hr.csv", content, delimiter=";;")


@pytest.mark.parametrize("name", ["vault.csv", "vault.json"])
def test_a_secret_column_mapped_onto_a_field_is_refused_too(tmp_path: Path, name: str
                                                            ) -> None:
    # review: columns = { title = "login_password" } read the passwords as titles,
    # stored and printed in every report
    content = ("id,accounts,readers,login_password\nv1,x:@a,a@corp.example,Hunter2-x\n"
               if name.endswith(".csv") else
               '{"records": [{"id": "v1", "accounts": ["x:@a"], "readers": ["a@corp.'
               'example"], "login_password": "Hunter2-x"}]}')
    message = fails(tmp_path, "vault_file", name, content,
                    columns={"title": "login_password"})
    assert "the export holds a 'login_password'" in message and "Hunter2" not in message
    # a column about a secret, read as such a field, is what it says
    ok = content.replace("login_password", "Password Last Changed").replace(
        "Hunter2-x", "2026-09-01T00:00:00Z")
    [item] = fetch(tmp_path, "vault_file", name, ok,
                   columns={"password_changed_at": "Password Last Changed"})
    assert item.password_changed_at == utc(2026, 9, 1)


@pytest.mark.parametrize(("extra", "where"), [
    ('"login": {"username": "a", "password": "Hunter2-Summer!2026"}', "login.password"),
    ('"fields": [{"name": "Password", "value": "Hunter2-Summer!2026"}]', "fields[0]"),
    ('"notes": "otpauth://totp/X?secret=JBSWY3DP"', "notes"),
])
def test_a_vault_record_holding_a_secret_below_its_keys_is_refused(
        tmp_path: Path, extra: str, where: str) -> None:
    """Bitwarden's JSON nests the password and TOTP seed under "login"; custom fields
    and notes hold them too. Only top-level keys had been looked at."""
    content = ('{"records": [{"id": "v1", "accounts": ["x:@a"], "readers": ["a@corp.'
               'example"], ' + extra + '}]}')
    with pytest.raises(DataError) as info:
        fetch(tmp_path, "vault_file", "vault.json", content)
    message = str(info.value)
    assert f": {where}: the export holds a secret there" in message, message
    assert "Hunter2" not in message and "JBSW" not in message


@pytest.mark.parametrize("stated", [1795150800, 1795150800000, "Fri, 20 Nov 2026 05:00:00 GMT",
                                    "2026-11-20T05:00:00Z", "2026-11-20T06:00:00+01:00"])
def test_an_exports_stated_time_is_read_as_exporters_write_it(tmp_path: Path,
                                                             stated: object) -> None:
    """Review: an exported_at in Unix time or RFC 2822, ignored before, stopped the run
    once freshness came to read it."""
    from governor.sources._tabular import Table

    path = tmp_path / "d.json"
    path.write_text(json.dumps({"exported_at": stated,
                                "records": [{"login": "a", "status": "ACTIVE"}]}))
    table = Table(path, {}, ("login", "status"))
    assert len(list(table.rows())) == 1
    assert table.exported_at == datetime(2026, 11, 20, 5, 0, tzinfo=UTC)


def test_an_rfc_2822_time_at_minus_zero_is_utc() -> None:
    """Review: "-0000" (RFC 2822: UTC, the sender's zone unknown) was read in the
    organisation's zone."""
    import tempfile
    from zoneinfo import ZoneInfo

    from governor.sources._tabular import Table

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "d.json"
        path.write_text(json.dumps({"exported_at": "Fri, 20 Nov 2026 05:00:00 -0000",
                                    "records": [{"login": "a", "status": "ACTIVE"}]}))
        table = Table(path, {}, ("login", "status"), zone=ZoneInfo("America/Los_Angeles"))
        list(table.rows())
    assert table.exported_at == datetime(2026, 11, 20, 5, 0, tzinfo=UTC)

