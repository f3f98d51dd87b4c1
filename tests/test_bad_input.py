"""Bad input through the real CLI on a copy of the sample organisation.

A malformed source file or config stops `governor reconcile` with exit code 2 and one
line naming the file, line and field (config: the key path), and leaves the database
exactly as it was: no run, no audit entry, no observation. A source that cannot be read
at all is not bad input: the run goes on (exit 5) with that source marked failed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import demo_env, run_cli
from sqlalchemy import create_engine, inspect, text

from governor.sources import CONNECTORS

LATER = "2026-11-21T12:00:00+00:00"
PASSWORD = "Hunter2-Summer!2026"
OBS = ("obs_person", "obs_directory_account", "obs_social_account", "obs_grant",
       "obs_credential")


# ---- helpers ------------------------------------------------------------------------------
def dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {name: [tuple(r) for r in conn.execute(text(f'SELECT * FROM "{name}" '
                                                               "ORDER BY 1"))]
                    for name in sorted(inspect(conn).get_table_names())}
    finally:
        engine.dispose()


def sqlite_url(org: Path) -> str:
    return f"sqlite:///{org / 'governor-demo.db'}"


def upgraded(org: Path, url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Create the schema; return the (empty) state."""
    out = run_cli("-c", str(org / "governor.toml"), "db", "upgrade", env=demo_env(url))
    assert out.code == 0, out.err
    state = dump(url)
    # the schema's own rows: its revision, and the store's id
    assert {name for name, rows in state.items() if rows} == {"alembic_version", "store_meta"}
    assert {"run", "source_read", "audit_log", "finding", *OBS} <= set(state)
    return state


def replace(path: Path, old: str | bytes, new: str | bytes) -> None:
    data = path.read_bytes()
    old_b = old.encode() if isinstance(old, str) else old
    new_b = new.encode() if isinstance(new, str) else new
    assert data.count(old_b) == 1, f"{old!r} is not in {path.name} exactly once"
    path.write_bytes(data.replace(old_b, new_b))


def line(path: Path, number: int) -> str:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)[number - 1]


def yaml_inventory(org: Path, change: Callable[[list[dict[str, Any]]], None],
                   key: str) -> int:
    """Swap the TOML inventory for the same accounts as YAML, after ``change``; return the
    line of ``key`` in the second entry."""
    import tomllib

    accounts = tomllib.loads((org / "accounts.toml").read_text())["accounts"]
    change(accounts)
    body = yaml.safe_dump({"accounts": accounts}, sort_keys=False)
    (org / "accounts.yaml").write_text(body)
    replace(org / "governor.toml", 'path = "accounts.toml"', 'path = "accounts.yaml"')
    lines = body.splitlines()
    second = [i for i, t in enumerate(lines) if t.startswith("- ")][1]
    return next(i for i, t in enumerate(lines[second:], second + 1)
                if t[2:].startswith(f"{key}:"))


def assert_untouched(url: str, before: dict[str, list[tuple[Any, ...]]]) -> None:
    after = dump(url)
    assert after == before
    for table in ("run", "source_read", "audit_log", "finding", *OBS):
        assert after[table] == [], table


# ---- bad source data ------------------------------------------------------------------------
@dataclass(frozen=True)
class Bad:
    id: str
    file: str
    edit: Callable[[Path], Any]  # breaks the copy of the org; may return an expected line
    error: str  # stderr after "governor: <org>/"


def edit(file: str, old: str | bytes, new: str | bytes) -> Callable[[Path], None]:
    return lambda org: replace(org / file, old, new)


def append_copy(file: str, number: int) -> Callable[[Path], None]:
    def do(org: Path) -> None:
        path = org / file
        path.write_text(path.read_text() + line(path, number))
    return do


def drop_key(file: str, key: str, near: str) -> Callable[[Path], None]:
    def do(org: Path) -> None:
        text_ = (org / file).read_text()
        start = text_.index(near)
        cut = text_.index(f'"{key}": ', start)
        end = text_.index(", ", cut) + 2
        (org / file).write_text(text_[:cut] + text_[end:])
    return do


HR_KNOWN_STATUS = ("active, deceased, inactive, leave, leaver, left, loa, on leave, pending, "
                   "pre-hire, prehire, resigned, retired, terminated, terminated - involuntary, "
                   "terminated - voluntary")

BAD_DATA = [
    # PostgreSQL refuses both (a traceback, exit 1); SQLite kept them, and a principal
    # with a NUL in it is an orphan that shows as someone's address
    Bad("hr-name-holds-nul", "hr.csv", edit("hr.csv", "Maya Okafor", "Maya\x00Okafor"),
        "hr.csv:4: name: the hr record's name holds a NUL character (\\x00)"),
    Bad("grants-principal-holds-nul", "x_team.csv",
        edit("x_team.csv", "@northwind,maya.okafor@", "@northwind,\x00maya.okafor@"),
        "x_team.csv:2: principal: the grants record's principal holds a NUL character "
        "(\\x00)"),
    Bad("inventory-phone-too-long", "accounts.toml",
        edit("accounts.toml", '"+44 7700 900123"', '"+44 7700 900123' + " ext. 1" * 10 + '"'),
        "accounts.toml:55: accounts[2].recovery_phone: is 85 characters long; governor "
        "keeps at most 64"),
    Bad("hr-department-too-long", "hr.csv",
        edit("hr.csv", "Head of Social Media,Communications,",
             "Head of Social Media," + "Communications " * 20 + ","),
        "hr.csv:4: department: the hr record's department is 299 characters long; governor "
        "keeps at most 255"),
    Bad("csv-row-wrong-field-count", "hr.csv",
        edit("hr.csv", "Head of Social Media,Communications,",
             "Head of Social Media,Communications,extra,"),
        "hr.csv:4: expected 11 fields, found 12"),
    # an optional column renamed in the export would read as empty on every row (nobody
    # ends: every leaver finding resolves), so it must be named, not ignored
    Bad("csv-optional-column-renamed", "hr.csv",
        edit("hr.csv", ",hire_date,end_date", ",hire_date,End Date"),
        "hr.csv:1: end_date: no column 'end_date', but 'End Date' looks like it: rename it, "
        "or map it: columns = {{ end_date = 'End Date' }}"),
    # a typo is no better: Kevin's critical leaver findings resolved as "fixed"
    Bad("csv-optional-column-mistyped", "hr.csv",
        edit("hr.csv", ",hire_date,end_date", ",hire_date,end_dat"),
        "hr.csv:1: end_date: no column 'end_date', but 'end_dat' looks like it: rename it, "
        "or map it: columns = {{ end_date = 'end_dat' }}"),
    Bad("csv-activity-column-mistyped", "x_team.csv",
        edit("x_team.csv", ",granted_at,last_active", ",granted_at,last_actve"),
        "x_team.csv:1: last_active: no column 'last_active', but 'last_actve' looks like it: "
        "rename it, or map it: columns = {{ last_active = 'last_actve' }}"),
    Bad("json-optional-key-mistyped", "instagram_access.json",
        edit("instagram_access.json", '"granted_at": "2022-03-01T09:00:00Z", "last_active"',
             '"granted_at": "2022-03-01T09:00:00Z", "last_actve"'),
        "instagram_access.json:6: last_active: no key 'last_active', but 'last_actve' looks "
        "like it: rename it, or map it: columns = {{ last_active = 'last_actve' }}"),
    Bad("csv-mapped-column-missing", "hr.csv",
        edit("hr.csv", ",worker_category,title,", ",worker_category,role_title,"),
        "hr.csv:1: job_title: missing column 'title' (named in the source's columns)"),
    # matched exactly: "missing column 'role'" beside a 'Role' said nothing of why
    Bad("csv-required-column-in-other-case", "x_team.csv",
        edit("x_team.csv", "account,principal,role,", "account,principal,Role ,"),
        "x_team.csv:1: role: missing column 'role', but 'Role' looks like it (columns are "
        "matched exactly, case included): rename it, or map it: columns = {{ role = 'Role' }}"),
    Bad("csv-mapped-column-in-other-case", "hr.csv",
        edit("hr.csv", ",worker_category,title,", ",worker_category,Title,"),
        "hr.csv:1: job_title: missing column 'title' (named in the source's columns), but "
        "'Title' looks like it (columns are matched exactly, case included): rename it, or "
        "map it: columns = {{ job_title = 'Title' }}"),
    Bad("json-required-key-in-other-case", "instagram_access.json",
        edit("instagram_access.json", '"role": "Partial access", "granted_at": "2023-06-06',
             '"Role": "Partial access", "granted_at": "2023-06-06'),
        "instagram_access.json:7: role: missing key 'role', but 'Role' looks like it (keys are "
        "matched exactly, case included): rename it, or map it: columns = {{ role = 'Role' }}"),
    Bad("csv-duplicate-column", "x_team.csv",
        edit("x_team.csv", "account,principal,role,", "account,principal,account,"),
        "x_team.csv:1: column 'account' appears more than once in the header"),
    Bad("csv-missing-column", "hr.csv",
        edit("hr.csv", ",worker_category,", ",category,"),
        "hr.csv:1: worker_type: missing column 'worker_category'"),
    Bad("csv-unclosed-quote", "hr.csv",
        edit("hr.csv", "E1002,Daniel Brennan,", 'E1002,"Daniel Brennan,'),
        # the quote in line 15's title closes it; the parser gives up just after
        "hr.csv:5: malformed CSV record (an unclosed quote? the parser read on to line 15): "
        "',' expected after '\"'"),
    Bad("csv-unclosed-quote-to-end-of-file", "x_team.csv",
        edit("x_team.csv", "@northwind,daniel.brennan", '@northwind,"daniel.brennan'),
        "x_team.csv:3: malformed CSV record (an unclosed quote? the parser read on to line "
        "12): unexpected end of data"),
    Bad("csv-error-in-a-multi-line-record", "hr.csv",
        edit("hr.csv", ",Active,Employee,Head of Social Media,",
             ',Active,Robot,"Head of\nSocial Media",'),
        "hr.csv:4: worker_type (column 'worker_category'): unknown value 'Robot'; map it in "
        "sources.hr.worker_type_map (known: agency, agency temp, contingent, contractor, "
        "employee, freelancer, fte, full-time, intern, part-time, vendor, working student)"),
    Bad("csv-error-after-a-multi-line-record", "hr.csv",
        lambda org: (replace(org / "hr.csv", "Head of Social Media,", '"Head of\nSocial Media",'),
                     replace(org / "hr.csv", "socialteam@northwind.example,Active,Employee,Social",
                             "socialteam@northwind.example,Sabbatical,Employee,Social")),
        f"hr.csv:6: status: unknown value 'Sabbatical'; map it in "
        f"sources.hr.status_map (known: {HR_KNOWN_STATUS})"),
    Bad("hr-unknown-status-word", "hr.csv",
        edit("hr.csv", "daniel.brennan@northwind.example,socialteam@northwind.example,Active,",
             "daniel.brennan@northwind.example,socialteam@northwind.example,Sabbatical,"),
        f"hr.csv:5: status: unknown value 'Sabbatical'; map it in "
        f"sources.hr.status_map (known: {HR_KNOWN_STATUS})"),
    Bad("hr-unknown-worker-type", "hr.csv",
        edit("hr.csv", ",Active,Employee,Head of Social Media,",
             ",Active,Robot,Head of Social Media,"),
        "hr.csv:4: worker_type (column 'worker_category'): unknown value 'Robot'; map it in "
        "sources.hr.worker_type_map (known: agency, agency temp, contingent, contractor, "
        "employee, freelancer, fte, full-time, intern, part-time, vendor, working student)"),
    Bad("hr-date-does-not-parse", "hr.csv",
        edit("hr.csv", ",2019-02-04,", ",04.02.2019,"),
        "hr.csv:4: hire_date: date '04.02.2019' does not match %Y-%m-%d"),
    Bad("hr-date-that-does-not-exist", "hr.csv",
        edit("hr.csv", ",2019-02-04,", ",2019-02-31,"),
        "hr.csv:4: hire_date: date '2019-02-31' is not a real date (day is out of range for "
        "month)"),
    Bad("hr-end-date-before-hire-date", "hr.csv",
        edit("hr.csv", ",Head of Social Media,Communications,E1100,2019-02-04,",
             ",Head of Social Media,Communications,E1100,2019-02-04,2018-06-30"),
        "hr.csv:4: end_date: 2018-06-30 is before the hire date 2019-02-04: clear an "
        "earlier employment's end date, or correct the hire date"),
    Bad("hr-duplicate-employee-id", "hr.csv",
        edit("hr.csv", "E1002,Daniel Brennan", "E1001,Daniel Brennan"),
        "hr.csv:5: employee_id (column 'worker_id'): duplicate employee id 'E1001' "
        "(first on line 4)"),
    Bad("grants-duplicate-row", "x_team.csv", append_copy("x_team.csv", 3),
        "x_team.csv:13: duplicate grants record "
        "'x:@northwind / daniel.brennan@northwind.example / direct' (first on line 3): each "
        "may appear once"),
    # a slip for a platform governor knows: its accounts would be unknown ones, its
    # grants on no inventory account
    Bad("grants-row-platform-former-name", "hootsuite.csv",
        edit("hootsuite.csv", "x:@northwind,daniel.brennan", "twitter:@northwind,daniel.brennan"),
        "hootsuite.csv:3: account: unknown platform 'twitter' (did you mean 'x'? 'twitter' is "
        "its former name); known: facebook, instagram, linkedin, tiktok, x, youtube. A new "
        "platform may take any other name, or this one when a grants source declares it as "
        "its platform (with a role_map)"),
    Bad("inventory-platform-typo", "accounts.toml",
        edit("accounts.toml", 'platform = "x"\nhandle = "@northwind_help"',
             'platform = "twiter"\nhandle = "@northwind_help"'),
        "accounts.toml:29: accounts[1].platform: unknown platform 'twiter' (did you mean "
        "'x'?); known: facebook, instagram, linkedin, tiktok, x, youtube. A new platform may "
        "take any other name, or this one when a grants source declares it as its platform "
        "(with a role_map)"),
    # single-owner read "no grants data" for the account: the admins were never counted
    Bad("inventory-grants-source-typo", "accounts.toml",
        edit("accounts.toml", 'account_2fa = true\ngrants_source = "x_team"\nrecovery_email = '
             '"social-accounts@', 'account_2fa = true\ngrants_source = "x_teams"\n'
             'recovery_email = "social-accounts@'),
        "accounts.toml:16: accounts[0].grants_source: 'x_teams' is not a source in the "
        "config (did you mean 'x_team'?); name the [sources.NAME] that reports this "
        "account's grants"),
    Bad("inventory-grants-source-of-another-kind", "accounts.toml",
        edit("accounts.toml", 'account_2fa = true\ngrants_source = "x_team"\nrecovery_email = '
             '"social-accounts@', 'account_2fa = true\ngrants_source = "vault"\n'
             'recovery_email = "social-accounts@'),
        "accounts.toml:16: accounts[0].grants_source: 'vault' reports no grants (it supplies "
        "vault); name the [sources.NAME] that reports this account's grants"),
    Bad("vault-account-platform-former-name", "vault.json",
        edit("vault.json", '"accounts": ["x:@northwind_uk"]',
             '"accounts": ["Twitter:@northwind_uk"]'),
        "vault.json:30: accounts: 'Twitter:@northwind_uk': unknown platform 'Twitter' (did you "
        "mean 'x'? 'Twitter' is its former name); known: facebook, instagram, linkedin, "
        "tiktok, x, youtube. A new platform may take any other name, or this one when a "
        "grants source declares it as its platform (with a role_map)"),
    Bad("grants-unmapped-role", "x_team.csv",
        edit("x_team.csv", "priya.raman@northwind.example,Contributor",
             "priya.raman@northwind.example,Intern Helper"),
        "x_team.csv:4: role: role 'Intern Helper' is not mapped for x; add it to role_map"),
    Bad("grants-bad-instant", "linkedin_admins.csv",
        edit("linkedin_admins.csv", "p.raman@northwind.example,Content admin,2021-01-19T10:00:00Z",
             "p.raman@northwind.example,Content admin,19/01/2021"),
        "linkedin_admins.csv:4: granted_at (column 'assigned_on'): '19/01/2021' is not an "
        "ISO 8601 date-time"),
    # read as the placeholder "no date" (NULL), exit 0
    Bad("grants-instant-before-year-1-in-utc", "linkedin_admins.csv",
        edit("linkedin_admins.csv", "p.raman@northwind.example,Content admin,2021-01-19T10:00:00Z",
             "p.raman@northwind.example,Content admin,0001-01-01T00:00:00+01:00"),
        "linkedin_admins.csv:4: granted_at (column 'assigned_on'): '0001-01-01T00:00:00+01:00' "
        "is not an instant (in UTC it falls before year 1 or after 9999); leave it empty when "
        "there is none"),
    Bad("grants-instant-after-year-9999-in-utc", "x_team.csv",
        edit("x_team.csv", "Contributor,2021-01-18T14:12:00Z,2026-11-18T12:41:00Z",
             "Contributor,2021-01-18T14:12:00Z,9999-12-31T23:59:59-12:00"),
        "x_team.csv:4: last_active: '9999-12-31T23:59:59-12:00' is not an instant (in UTC it "
        "falls before year 1 or after 9999); leave it empty when there is none"),
    Bad("csv-non-utf8-byte", "x_team.csv",
        edit("x_team.csv", b"@northwind,daniel.brennan", b"@northwind,dani\xe9l.brennan"),
        "x_team.csv:3: principal: not UTF-8 text"),
    Bad("json-non-utf8-byte", "instagram_access.json",
        edit("instagram_access.json", b'"Grace Liu"', b'"Gr\xe2ce Liu"'),
        "instagram_access.json:7: not UTF-8 text"),
    Bad("json-invalid", "instagram_access.json",
        edit("instagram_access.json", '"grace.liu@northwind.example", ',
             '"grace.liu@northwind.example" '),
        "instagram_access.json:7: not JSON: Expecting ',' delimiter: line 7 column 81 "
        "(char 611)"),
    # json's message for it ends "at": without the position it said nothing
    Bad("json-control-character", "instagram_access.json",
        edit("instagram_access.json", '"Grace Liu"', '"Grace\tLiu"'),
        "instagram_access.json:7: not JSON: Invalid control character at: line 7 column 96 "
        "(char 626)"),
    Bad("json-record-missing-key", "instagram_access.json",
        drop_key("instagram_access.json", "role", "robin.fairweather"),
        "instagram_access.json:8: role: missing key 'role'"),
    # a CSV header would have said so at once; JSON records may leave a key out, and a
    # key the config names that none has read as empty everywhere: nobody's last login
    Bad("json-mapped-key-in-no-record-looks-like-one", "directory.json",
        edit("governor.toml", 'last_login = "lastLogin"', 'last_login = "lastSignIn"'),
        "directory.json: last_login: no record has the key 'lastSignIn' (named in the "
        "source's columns), but 'lastLogin' looks like it (keys are matched exactly, case "
        "included): rename it, or map it: columns = {{ last_login = 'lastLogin' }}"),
    # two letters swapped in a short key: difflib's ratio (0.8) let it read as no email
    Bad("json-short-key-letters-swapped", "directory.json",
        edit("directory.json", '"email": "jonathan.reyes@', '"emial": "jonathan.reyes@'),
        "directory.json:30: email: no key 'email', but 'emial' looks like it: rename it, or "
        "map it: columns = {{ email = 'emial' }}"),
    Bad("json-exported-at-does-not-parse", "vault.json",
        edit("vault.json", '"exported_at": "2026-11-20T05:15:00Z"',
             '"exported_at": "20/11/2026 05:15"'),
        "vault.json:2: exported_at: '20/11/2026 05:15' is not a date-time governor reads "
        "(ISO 8601, RFC 2822 or Unix time): give one, or leave exported_at out"),
    Bad("vault-account-without-handle", "vault.json",
        edit("vault.json", '"accounts": ["x:@northwind_uk"]', '"accounts": ["x:"]'),
        "vault.json:30: accounts: 'x:' is not platform:handle"),
    Bad("vault-reader-group-without-name", "vault.json",
        edit("vault.json", '"group:Social Team"', '"group: "'),
        "vault.json:12: readers: 'group:' names no group"),
    Bad("vault-fingerprint-of-no-digest-length", "vault.json",
        edit("vault.json", "hmac-sha256:028603cc639ec7d874a0b5c6afeebbc8aad20e959bd4bbfceb780e"
                           "34108ada2c", "hmac-sha256:" + "ab" * 50),
        "vault.json:12: fingerprint: is not a keyed fingerprint (hmac-sha256:<hex>); "
        "value not shown"),
    # `cat a.json b.json`: the second array went unread
    Bad("json-array-then-more", "instagram_access.json",
        lambda org: (org / "instagram_access.json").write_text(
            json.dumps(json.loads((org / "instagram_access.json").read_text())["records"])
            + "\n[]\n"),
        "instagram_access.json:2: more after the array of records: expected the end of the "
        "file (one JSON array, or one object with 'records')"),
    Bad("directory-unknown-factor", "directory.json",
        edit("directory.json", '"type": "push",\n          "provider": "OKTA",\n'
                               '          "status": "ACTIVE"\n        },\n        {\n'
                               '          "type": "webauthn"',
             '"type": "push",\n          "provider": "OKTA",\n'
             '          "status": "ACTIVE"\n        },\n        {\n'
             '          "type": "pigeon"'),
        "directory.json:5: mfa_factors (column 'factors'): unknown factor type 'pigeon'; map it "
        "in factor_map"),
    Bad("vault-fingerprint-is-a-password", "vault.json",
        edit("vault.json", "hmac-sha256:028603cc639ec7d874a0b5c6afeebbc8aad20e959bd4bbfceb780e"
                           "34108ada2c", PASSWORD),
        "vault.json:12: fingerprint: is not a keyed fingerprint (hmac-sha256:<hex>); "
        "value not shown"),
    Bad("toml-inventory-unknown-key", "accounts.toml",
        edit("accounts.toml", 'account_2fa = true\ngrants_source = "x_team"\n'
                              'recovery_email = "support-social',
             'account_2fa = true\ngrants_source = "x_team"\n'
             'recovery_mail = "support-social'),
        "accounts.toml:37: accounts[1].recovery_mail: unknown key"),
    Bad("toml-inventory-bad-criticality", "accounts.toml",
        edit("accounts.toml", 'handle = "@northwind_help"\ncriticality = "high"',
             'handle = "@northwind_help"\ncriticality = "severe"'),
        "accounts.toml:31: accounts[1].criticality: 'severe' is not one of critical, high, "
        "medium, low"),
    Bad("toml-inventory-bad-date", "accounts.toml",
        edit("accounts.toml", "attested_at = 2026-09-15", 'attested_at = "15/09/2026"'),
        "accounts.toml:40: accounts[1].attested_at: expected a date (YYYY-MM-DD)"),
    # the review-overdue rule added a day to it: an OverflowError traceback
    Bad("toml-inventory-next-due-placeholder", "accounts.toml",
        edit("accounts.toml", "next_due = 2026-12-15", "next_due = 9999-12-31"),
        "accounts.toml:41: accounts[1].next_due: 9999-12-31 is a placeholder, not a real "
        "date; give the date, or leave next_due out"),
    Bad("yaml-inventory-attested-at-placeholder", "accounts.yaml",
        lambda org: yaml_inventory(org, lambda a: a[1].update(attested_at="0001-01-01"),
                                   "attested_at"),
        "accounts.yaml:{line}: accounts[1].attested_at: 0001-01-01 is a placeholder, not a "
        "real date; give the date, or leave attested_at out"),
    # read as an export of unknown format, or with a format set as a source that failed
    # (EISDIR) every night: the config is what to fix
    Bad("source-path-is-a-directory", "governor.toml",
        lambda org: ((org / "exports").mkdir(),
                     replace(org / "governor.toml", 'path = "x_team.csv"',
                             'path = "exports"\nformat = "csv"')),
        "exports: sources.x_team.path: is a directory, not an export file; name the file "
        "itself"),
    Bad("inventory-path-is-a-directory", "governor.toml",
        lambda org: ((org / "inventory").mkdir(),
                     replace(org / "governor.toml", 'path = "accounts.toml"',
                             'path = "inventory"')),
        "inventory: sources.inventory.path: is a directory, not an export file; name the "
        "file itself"),
    # the entries under a misspelt header were silently not in the inventory
    Bad("toml-inventory-unknown-top-level-key", "accounts.toml",
        edit("accounts.toml", '[[accounts]]\nplatform = "x"\nhandle = "@northwind"\n',
             '[[acounts]]\nplatform = "x"\nhandle = "@northwind"\n'),
        "accounts.toml:7: acounts: entries under an unknown key (did you mean 'accounts'?); "
        "the inventory reads [[accounts]] only"),
    Bad("yaml-inventory-unknown-top-level-key", "accounts.yaml",
        lambda org: (yaml_inventory(org, lambda a: None, "platform"),
                     (org / "accounts.yaml").write_text((org / "accounts.yaml").read_text()
                                                        + "owners:\n- login: me\n"),
                     len((org / "accounts.yaml").read_text().splitlines()) - 1)[-1],
        "accounts.yaml:{line}: owners: entries under an unknown key; the inventory reads "
        "[[accounts]] only"),
    Bad("toml-inventory-quoted-key", "accounts.toml",
        edit("accounts.toml", 'handle = "@northwind_help"\ncriticality = "high"',
             'handle = "@northwind_help"\n"criticallity" = "high"'),
        "accounts.toml:31: accounts[1].criticallity: unknown key"),
    Bad("toml-inventory-missing-key", "accounts.toml",
        edit("accounts.toml", 'handle = "@northwind_help"\ncriticality = "high"\n',
             'handle = "@northwind_help"\n'),
        "accounts.toml:28: accounts[1].criticality: required key is missing"),
    Bad("yaml-inventory-unknown-key", "accounts.yaml",
        lambda org: yaml_inventory(org, lambda a: a[1].update(ownr="E1002"), "ownr"),
        "accounts.yaml:{line}: accounts[1].ownr: unknown key"),
    Bad("yaml-inventory-bad-criticality", "accounts.yaml",
        lambda org: yaml_inventory(org, lambda a: a[1].update(criticality="severe"),
                                   "criticality"),
        "accounts.yaml:{line}: accounts[1].criticality: 'severe' is not one of critical, high, "
        "medium, low"),
    Bad("yaml-inventory-bad-date", "accounts.yaml",
        lambda org: yaml_inventory(org, lambda a: a[1].update(attested_at="15/09/2026"),
                                   "attested_at"),
        "accounts.yaml:{line}: accounts[1].attested_at: expected a date (YYYY-MM-DD)"),
    Bad("yaml-inventory-missing-key", "accounts.yaml",
        lambda org: yaml_inventory(org, lambda a: a[1].pop("criticality"), "platform"),
        "accounts.yaml:{line}: accounts[1].criticality: required key is missing"),
]
CORE = {"csv-row-wrong-field-count", "hr-unknown-status-word", "grants-duplicate-row",
        "vault-fingerprint-is-a-password", "yaml-inventory-bad-criticality",
        "hr-name-holds-nul", "grants-principal-holds-nul", "hr-department-too-long"}


def run_bad(org: Path, url: str, case: Bad) -> None:
    before = upgraded(org, url)
    at = case.edit(org)
    out = run_cli("-c", str(org / "governor.toml"), "reconcile", env=demo_env(url))
    error = case.error.format(line=at)
    assert (out.code, out.out, out.err) == (2, "", f"governor: {org / error}\n")
    assert PASSWORD not in out.out + out.err
    assert not (org / "reports").exists()
    assert_untouched(url, before)


@pytest.mark.parametrize("case", BAD_DATA, ids=[c.id for c in BAD_DATA])
def test_bad_data_exits_2_naming_file_line_and_field(demo_dir: Path, case: Bad) -> None:
    run_bad(demo_dir, sqlite_url(demo_dir), case)


@pytest.mark.parametrize("case", [c for c in BAD_DATA if c.id in CORE],
                         ids=[c.id for c in BAD_DATA if c.id in CORE])
def test_bad_data_leaves_every_database_untouched(demo_dir: Path, db_url: str,
                                                  case: Bad) -> None:
    run_bad(demo_dir, db_url, case)


def test_the_edits_break_only_what_they_mean_to(demo_dir: Path) -> None:
    # the unbroken copy reconciles cleanly, so each failure above is its own edit's
    url = sqlite_url(demo_dir)
    upgraded(demo_dir, url)
    out = run_cli("-c", str(demo_dir / "governor.toml"), "reconcile", "--no-report",
                  env=demo_env(url))
    assert out.code == 0, out.err


# ---- bad config ------------------------------------------------------------------------------
@dataclass(frozen=True)
class BadConfig:
    id: str
    old: str
    new: str
    error: str  # after "governor: <config path>: "


BAD_CONFIG = [
    BadConfig("unknown-section", "[governor]\n", "[sourcez]\nx = 1\n\n[governor]\n",
              "sourcez: unknown section; expected one of governor, feed_guard, report, offboard, "
              "sources, rules, principals"),
    BadConfig("mistyped-source-key", 'path = "hr.csv"', 'pathh = "hr.csv"',
              "sources.hr.pathh: unknown key (did you mean 'path'?)"),
    BadConfig("mistyped-governor-key", 'database = "sqlite', 'databse = "sqlite',
              "governor.databse: unknown key (did you mean 'database'?)"),
    BadConfig("mistyped-rule-param", "dormant_days = 90", "dormant_day = 90",
              "rules.dormant-grant.dormant_day: unknown key (did you mean 'dormant_days'?)"),
    BadConfig("wrong-type", "max_admins = 3", 'max_admins = "3"',
              "rules.too-many-admins.max_admins: expected an integer, got a string"),
    BadConfig("wrong-type-bool", "[sources.vault]\n", '[sources.vault]\nenabled = "yes"\n',
              "sources.vault.enabled: expected true or false, got a string"),
    BadConfig("out-of-bounds", "[rules.leaver-holds-access]",
              "[feed_guard]\nmax_drop = 2\n\n[rules.leaver-holds-access]",
              "feed_guard.max_drop: 2 is above the maximum 1"),
    BadConfig("below-minimum", "grace_hours = 24", "grace_hours = -1",
              "rules.leaver-holds-access.grace_hours: -1 is below the minimum 0"),
    BadConfig("unknown-source-type", 'type = "vault_file"', 'type = "vault_fil"',
              "sources.vault.type: unknown source type 'vault_fil'; known: "
              + ", ".join(sorted(CONNECTORS))),
    BadConfig("source-without-type", 'type = "vault_file"\n', "",
              "sources.vault.type: required key is missing"),
    BadConfig("source-without-path", 'path = "vault.json"\n', "",
              "sources.vault.path: required key is missing"),
    # review: an export read twice counts its records twice, and a second inventory
    # with other values decided the rules silently
    BadConfig("one-file-two-sources", "[sources.vault]\n",
              '[sources.vault2]\ntype = "vault_file"\npath = "./vault.json"\n\n'
              "[sources.vault]\n",
              "sources.vault.path: 'vault.json' is read by sources.vault2 already: an export "
              "is one source"),
    BadConfig("unknown-rule-id", "[rules.dormant-grant]", "[rules.dormant-grants]",
              "rules.dormant-grants: unknown rule id; see `governor rules`"),
    BadConfig("invalid-max-role", 'contractor = "publisher"', 'contractor = "boss"',
              "rules.excess-privilege.max_role.contractor: unknown role 'boss'; expected one "
              "of analyst, contributor, moderator, publisher, admin, owner"),
    BadConfig("unknown-max-role-worker-type", 'employee = "owner" }',
              'employee = "owner", alien = "analyst" }',
              "rules.excess-privilege.max_role.alien: unknown key; expected one of employee, "
              "contractor, intern, agency"),
    BadConfig("bad-status-map-target", '"Agency Temp" = "agency"', '"Agency Temp" = "temp"',
              "sources.hr.worker_type_map.Agency Temp: 'temp' is not one of agency, "
              "contractor, employee, intern"),
    # matched without case or spaces: the last won, and two leavers' status read active
    BadConfig("status-map-one-word-twice", '"Terminated - Involuntary" = "left" }',
              '"Terminated - Involuntary" = "left", "terminated - voluntary " = "active" }',
              "sources.hr.status_map.terminated - voluntary : is 'Terminated - Voluntary' "
              "written another way (words are matched without case or surrounding spaces), "
              "which maps to 'left', not 'active': keep one"),
    BadConfig("role-map-one-word-twice", '"Partial access" = "publisher"',
              '"Partial access" = "publisher", "partial ACCESS" = "analyst"',
              "sources.instagram_access.role_map.partial ACCESS: is 'Partial access' written "
              "another way (words are matched without case or surrounding spaces), which maps "
              "to 'publisher', not 'analyst': keep one"),
    # matched no address: every recovery email on the company's domain counted as personal
    BadConfig("org-domain-with-at", 'org_domains = ["northwind.example"]',
              'org_domains = ["@northwind.example"]',
              "governor.org_domains[0]: '@northwind.example': write the domain without '@' "
              "('northwind.example')"),
    BadConfig("org-domain-blank", 'org_domains = ["northwind.example"]',
              'org_domains = ["northwind.example", " "]',
              "governor.org_domains[1]: is empty; give a domain such as 'corp.example'"),
    BadConfig("empty-report-dir", 'report_dir = "reports"', 'report_dir = ""',
              "governor.report_dir: is empty; name the folder for reports (relative to the "
              "config file)"),
    # PostgreSQL refused it mid-run: a traceback
    BadConfig("source-name-too-long", "[sources.vault]\n", f"[sources.{'v' * 129}]\n",
              f"sources.{'v' * 129}: the source's name is 129 characters long; governor keeps "
              "at most 128"),
    BadConfig("source-type-not-a-string", 'type = "vault_file"', "type = 5",
              "sources.vault.type: expected a string, got an integer"),
    BadConfig("bad-role-map-target", '"Partial access" = "publisher"',
              '"Partial access" = "poster"',
              "sources.instagram_access.role_map.Partial access: unknown role 'poster'; "
              "expected one of analyst, contributor, moderator, publisher, admin, owner"),
    BadConfig("unknown-column-field", 'job_title = "title" }', 'job = "title" }',
              "sources.hr.columns.job: unknown key; expected one of employee_id, email, "
              "aliases, name, status, worker_type, hire_date, end_date, manager, department, "
              "job_title"),
    BadConfig("bad-format-choice", 'path = "directory.json"',
              'path = "directory.json"\nformat = "xml"',
              "sources.okta.format: 'xml' is not one of auto, csv, json, jsonl"),
    # read with no preset, X's "Contributor" (who publishes) passed for a contributor
    BadConfig("grants-platform-former-name", 'platform = "x"', 'platform = "twitter"',
              "sources.x_team.platform: no role preset for 'twitter' (did you mean 'x'? "
              "'twitter' is its former name); presets: facebook, instagram, linkedin, tiktok, "
              "x, youtube. Another platform needs every role its export holds in role_map"),
    BadConfig("grants-platform-typo", 'platform = "tiktok"', 'platform = "tiktk"',
              "sources.tiktok_members.platform: no role preset for 'tiktk' (did you mean "
              "'tiktok'?); presets: facebook, instagram, linkedin, tiktok, x, youtube. "
              "Another platform needs every role its export holds in role_map"),
    BadConfig("tool-seat-without-tool", 'via = "tool_seat"\ntool = "hootsuite"\n',
              'via = "tool_seat"\n', "sources.hootsuite.tool: required when via = 'tool_seat'"),
    BadConfig("unknown-timezone", 'org_domains = ["northwind.example"]',
              'org_domains = ["northwind.example"]\ntimezone = "America/Los_Angles"',
              "governor.timezone: 'America/Los_Angles' is not an IANA time zone name (did "
              "you mean 'America/Los_Angeles'?)"),
    BadConfig("unknown-source-timezone", 'path = "x_team.csv"',
              'path = "x_team.csv"\ntimezone = "Pacific Time"',
              "sources.x_team.timezone: 'Pacific Time' is not an IANA time zone name (e.g. "
              "'America/Los_Angeles', 'UTC')"),
    # str.split("") raised ValueError at the first row holding a list: a traceback
    BadConfig("empty-alias-separator", 'worker_type_map = { "Agency Temp" = "agency" }',
              'worker_type_map = { "Agency Temp" = "agency" }\nalias_separator = ""',
              "sources.hr.alias_separator: is empty; a separator is at least one character "
              "(the default is ';')"),
    BadConfig("empty-vault-list-separator", 'path = "vault.json"',
              'path = "vault.json"\nlist_separator = ""',
              "sources.vault.list_separator: is empty; a separator is at least one character "
              "(the default is ';')"),
    BadConfig("empty-directory-list-separator", 'path = "directory.json"',
              'path = "directory.json"\nlist_separator = ""',
              "sources.okta.list_separator: is empty; a separator is at least one character "
              "(the default is ';')"),
    # blamed on hr.csv:2 ("does not match "), and an invalid directive on the data too
    BadConfig("empty-date-formats", 'worker_type_map = { "Agency Temp" = "agency" }',
              'worker_type_map = { "Agency Temp" = "agency" }\ndate_formats = []',
              "sources.hr.date_formats: is empty; list at least one strptime format, e.g. "
              "['%Y-%m-%d']"),
    BadConfig("invalid-date-format", 'worker_type_map = { "Agency Temp" = "agency" }',
              'worker_type_map = { "Agency Temp" = "agency" }\n'
              'date_formats = ["%Y-%m-%d", "%Q"]',
              "sources.hr.date_formats[1]: '%Q' is not a strptime format ('Q' is a bad "
              "directive in format '%Q')"),
    BadConfig("date-format-without-a-year", 'worker_type_map = { "Agency Temp" = "agency" }',
              'worker_type_map = { "Agency Temp" = "agency" }\ndate_formats = ["%d/%m"]',
              "sources.hr.date_formats[0]: '%d/%m' does not read a whole date: it writes "
              "2026-11-23 as '23/11', which reads back as 1900-11-23; a format needs the "
              "year, month and day"),
    BadConfig("empty-source-path", 'path = "x_team.csv"', 'path = " "',
              "sources.x_team.path: is empty; name the export file (relative to the config "
              "file)"),
    # exit 1 as a store error when a command opened it
    BadConfig("unsupported-database", 'database = "sqlite:///governor-demo.db"',
              'database = "mysql://db.northwind.example/governor"',
              "governor.database: 'mysql' databases are not supported; governor supports "
              "sqlite:///PATH and postgresql://HOST/DATABASE"),
    BadConfig("database-old-postgres-scheme", 'database = "sqlite:///governor-demo.db"',
              'database = "postgres://db.northwind.example/governor"',
              "governor.database: write postgresql://, not the old postgres:// scheme (which "
              "SQLAlchemy no longer takes)"),
    BadConfig("database-not-a-url", 'database = "sqlite:///governor-demo.db"',
              'database = "not a url"',
              "governor.database: is not a database URL (the value is not shown); governor "
              "supports sqlite:///PATH and postgresql://HOST/DATABASE"),
    BadConfig("principal-missing-reason",
              'reason = "Customer-care auto-reply bot on @northwind_help"\n', "",
              "principals[1].reason: required key is missing"),
]


@pytest.mark.parametrize("case", BAD_CONFIG, ids=[c.id for c in BAD_CONFIG])
def test_bad_config_exits_2_naming_the_key_path(demo_dir: Path, case: BadConfig) -> None:
    url = sqlite_url(demo_dir)
    before = upgraded(demo_dir, url)
    cfg = demo_dir / "governor.toml"
    replace(cfg, case.old, case.new)
    out = run_cli("-c", str(cfg), "reconcile", env=demo_env(url))
    assert (out.code, out.out, out.err) == (2, "", f"governor: {cfg}: {case.error}\n")
    assert_untouched(url, before)


def test_config_that_is_not_toml(demo_dir: Path, db_url: str) -> None:
    before = upgraded(demo_dir, db_url)
    cfg = demo_dir / "governor.toml"
    replace(cfg, "max_admins = 3", "max_admins = ")
    out = run_cli("-c", str(cfg), "reconcile", env=demo_env(db_url))
    assert out.code == 2
    assert out.err.startswith(f"governor: {cfg}: not valid TOML: Invalid value (at line ")
    assert_untouched(db_url, before)


def test_missing_config_file(tmp_path: Path) -> None:
    out = run_cli("-c", str(tmp_path / "nope.toml"), "reconcile")
    assert (out.code, out.err) == (2, f"governor: {tmp_path / 'nope.toml'}: config file "
                                      "not found (write one with `governor init`)\n")


def test_config_path_that_is_a_directory(tmp_path: Path) -> None:
    out = run_cli("-c", str(tmp_path), "reconcile")
    assert (out.code, out.err) == (2, f"governor: {tmp_path}: is a directory, not a config "
                                      "file (name the TOML file itself)\n")


def test_a_query_against_a_database_that_is_not_there_creates_none(demo_dir: Path) -> None:
    cfg = demo_dir / "governor.toml"
    replace(cfg, 'database = "sqlite:///governor-demo.db"', 'database = "sqlite:///nothere.db"')
    for command in (["findings"], ["whohas", "x:@northwind"], ["reconcile"]):
        out = run_cli("-c", str(cfg), *command)
        assert out.code == 1 and out.err == (
            f"governor: no database at {demo_dir / 'nothere.db'}: run `governor db upgrade` "
            "to create it (or check governor.database)\n"), out.err
    assert not (demo_dir / "nothere.db").exists()


def test_a_database_url_naming_a_file_that_is_no_database(demo_dir: Path) -> None:
    # sqlite3 raised "file is not a database" as a traceback from every command
    other = demo_dir / "hr.csv"
    before = other.read_bytes()
    env = demo_env(f"sqlite:///{other}")
    cfg = str(demo_dir / "governor.toml")
    for command in (["db", "upgrade"], ["db", "current"], ["findings"], ["reconcile"]):
        out = run_cli("-c", cfg, *command, env=env)
        assert (out.code, out.err) == (1, f"governor: {other} is not a governor SQLite "
                                          "database (SQLite: file is not a database); check "
                                          "governor.database or GOVERNOR_DATABASE_URL\n"
                                       ), command
    assert other.read_bytes() == before
    assert sorted(p.name for p in demo_dir.glob("hr.csv*")) == ["hr.csv"]


# ---- bad input after good runs ----------------------------------------------------------------
@pytest.mark.parametrize("case", [c for c in BAD_DATA if c.id in (
    "grants-duplicate-row", "vault-fingerprint-is-a-password", "hr-date-does-not-parse")],
    ids=lambda c: c.id)
def test_bad_rerun_leaves_the_last_good_state_unchanged(demo_dir: Path, db_url: str,
                                                        case: Bad) -> None:
    cfg = str(demo_dir / "governor.toml")
    upgraded(demo_dir, db_url)
    first = run_cli("-c", cfg, "reconcile", "--no-report", env=demo_env(db_url))
    assert first.code == 0, first.err
    before = dump(db_url)
    assert len(before["run"]) == 1 and before["audit_log"] and before["obs_grant"]
    statuses = sorted((f.key, f.status) for f in _findings(db_url))
    assert statuses and {s for _, s in statuses} == {"open"}

    # a later clock, so anything this run wrote would differ from the first run's rows
    case.edit(demo_dir)
    again = run_cli("-c", cfg, "reconcile", env={**demo_env(db_url), "GOVERNOR_NOW": LATER})
    assert (again.code, again.out) == (2, "")
    assert again.err == f"governor: {demo_dir / case.error}\n"
    assert dump(db_url) == before
    assert sorted((f.key, f.status) for f in _findings(db_url)) == statuses
    assert not (demo_dir / "reports").exists()


@dataclass
class _Finding:
    key: str
    status: str
    subject: str
    sources: list[str]
    last_run_id: int
    resolved_run_id: int | None


def _findings(url: str) -> list[_Finding]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [_Finding(r.key, r.status, r.subject, json.loads(r.sources), r.last_run_id,
                             r.resolved_run_id)
                    for r in conn.execute(text("SELECT key, status, subject, sources, "
                                               "last_run_id, resolved_run_id FROM finding"))]
    finally:
        engine.dispose()


# ---- a source that cannot be read is not bad input -------------------------------------------
def test_missing_source_file_is_partial_not_bad_input(demo_dir: Path, db_url: str) -> None:
    cfg = str(demo_dir / "governor.toml")
    upgraded(demo_dir, db_url)
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=demo_env(db_url)).code == 0
    before = {f.key: f for f in _findings(db_url)}
    x_team = [f for f in before.values() if "|x_team|" in f.subject]
    assert len(x_team) >= 2 and all(f.status == "open" for f in x_team)
    grants_before = dump(db_url)["obs_grant"]

    (demo_dir / "x_team.csv").unlink()
    out = run_cli("-c", cfg, "reconcile", "--no-report", env=demo_env(db_url))
    assert out.code == 5, out.err
    assert out.err == "warning: source x_team failed; its findings were kept, none resolved\n"
    assert "run 2: partial" in out.out

    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            runs = conn.execute(text("SELECT id, status FROM run ORDER BY id")).all()
            reads = conn.execute(text("SELECT name, status, count, error FROM source_read "
                                      "WHERE run_id = 2 AND status <> 'ok'")).all()
            completed = conn.execute(text("SELECT count(*) FROM audit_log "
                                          "WHERE action = 'run.completed'")).scalar()
    finally:
        engine.dispose()
    assert [tuple(r) for r in runs] == [(1, "ok"), (2, "partial")]
    assert [tuple(r) for r in reads] == [
        ("x_team", "failed", 0, f"{demo_dir / 'x_team.csv'}: file not found")]
    assert completed == 2
    # the failed source keeps its last good grants: nothing of it ended
    assert dump(db_url)["obs_grant"] == grants_before

    after = {f.key: f for f in _findings(db_url)}
    assert set(after) == set(before)
    for f in x_team:
        assert (after[f.key].status, after[f.key].last_run_id) == ("open", 2)
    depending = [f for f in after.values() if "x_team" in f.sources]
    assert depending and all(f.status == "open" and f.resolved_run_id is None
                             for f in depending)
    assert [f.key for f in after.values() if f.resolved_run_id == 2] == []


def test_a_json_export_may_leave_out_a_mapped_key_none_of_its_records_has(
        demo_dir: Path) -> None:
    """Review: many JSON exporters drop null keys, and a night when nobody has an end
    date (or none has a last login) is ordinary: a key the config maps that no record
    has stops the run only when a key like it is there (a rename, a typo)."""
    url = sqlite_url(demo_dir)
    upgraded(demo_dir, url)
    replace(demo_dir / "governor.toml", 'last_login = "lastLogin"',
            'last_login = "lastSignInAt"')
    path = demo_dir / "directory.json"
    data = json.loads(path.read_text())
    for record in data["records"]:
        record.pop("lastLogin", None)
    path.write_text(json.dumps(data))
    out = run_cli("-c", str(demo_dir / "governor.toml"), "reconcile", "--no-report",
                  env=demo_env(url))
    assert out.code == 0, out.err


def test_an_inventory_may_keep_its_own_keys_beside_its_accounts(demo_dir: Path) -> None:
    """Review: a version number, or a YAML anchor the entries refer to, is the file's own
    business; only entries under a key governor does not read are refused."""
    url = sqlite_url(demo_dir)
    upgraded(demo_dir, url)
    inventory = demo_dir / "accounts.toml"
    inventory.write_text("version = 2\n" + inventory.read_text())
    out = run_cli("-c", str(demo_dir / "governor.toml"), "reconcile", "--no-report",
                  env=demo_env(url))
    assert out.code == 0, out.err
    yaml_inventory(demo_dir, lambda a: None,
                   "platform")
    body = (demo_dir / "accounts.yaml").read_text()
    (demo_dir / "accounts.yaml").write_text(
        "x-recovery: &recovery social-accounts@northwind.example\n" + body.replace(
            "recovery_email: social-accounts@northwind.example",
            "recovery_email: *recovery", 1))
    out = run_cli("-c", str(demo_dir / "governor.toml"), "reconcile", "--no-report",
                  env={**demo_env(url), "GOVERNOR_NOW": LATER})
    assert out.code == 0, out.err

