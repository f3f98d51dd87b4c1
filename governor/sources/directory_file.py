"""Directory export (CSV, JSON or JSON Lines) of SSO accounts: status, MFA, groups.

Fields: login, email, employee_id, status, mfa_factors, groups, last_login, mfa_read_at.
``mfa_factors`` is ``type:status`` items separated by ``list_separator`` in CSV
(``totp:active;sms:active``) or a list of {"type", "status"} objects in JSON. A file
with no mfa_factors column reports MFA as unknown; an empty cell means none enrolled.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from governor.clock import earliest
from governor.lookalike import fold
from governor.options import Option
from governor.records import (
    FACTOR_TYPES,
    DirectoryAccount,
    DirectoryStatus,
    Grant,
    MfaFactor,
    SourceKind,
)
from governor.sources._common import FileConnector, check_map_targets, file_options, lowered
from governor.sources._groups import GROUP_GRANTS, GroupGrants
from governor.sources._groups import validate as validate_group_grants
from governor.sources._tabular import Row, Table
from governor.sources.base import register

FIELDS = ("login", "email", "employee_id", "status", "mfa_factors", "groups", "last_login",
          "mfa_read_at")
STATUS_WORDS = frozenset(s.value for s in DirectoryStatus)
FACTOR_STATUS = frozenset({"active", "pending", "inactive"})
DEFAULT_STATUS = {"provisioned": "active", "recovery": "active", "password_expired": "active",
                  "locked_out": "locked", "enabled": "active", "deactivated": "deprovisioned"}
# Okta's factorType names and common synonyms.
DEFAULT_FACTOR = {"token:software:totp": "totp", "token:hotp": "hotp", "token:hardware": "token",
                  "token": "token", "signed_nonce": "push", "fido2": "webauthn",
                  "voice": "call", "authenticator": "totp", "yubikey": "token"}
DEFAULT_FACTOR_STATUS = {"pending_activation": "pending", "enrolled": "active",
                         "not_setup": "inactive", "disabled": "inactive"}


@register
class DirectoryFile(FileConnector):
    type = "directory_file"
    kind = SourceKind.DIRECTORY
    grant_options = ("group_grants",)
    description = "Directory (SSO) export file: accounts, status, MFA factors, groups"
    options = {
        **file_options(FIELDS, "directory export", instants=True),
        "status_map": Option("dict[str,str]", {}, "Extra account status words -> "
                             + ", ".join(sorted(STATUS_WORDS)) + "."),
        "factor_map": Option("dict[str,str]", {}, "Extra MFA factor type names -> "
                             + ", ".join(sorted(FACTOR_TYPES)) + "."),
        "list_separator": Option("str", ";", "Separates groups and factors in a CSV cell."),
        "group_grants": GROUP_GRANTS,
    }

    @classmethod
    def validate(cls, settings: dict[str, Any], key: str) -> None:
        super().validate(settings, key)
        check_map_targets(settings, key, "status_map", STATUS_WORDS)
        check_map_targets(settings, key, "factor_map", FACTOR_TYPES)
        validate_group_grants(settings["group_grants"], f"{key}.group_grants")


    def fetch(self) -> Iterator[DirectoryAccount | Grant]:
        s = self.settings
        self.require_file()
        table = Table(self.path, s["columns"], ("login", "status"), s["format"], known=FIELDS,
                      zone=self.zone, delimiter=s["delimiter"])
        self.read_table = table
        statuses = {**{w: w for w in STATUS_WORDS}, **DEFAULT_STATUS, **lowered(s["status_map"])}
        factors = {**{f: f for f in FACTOR_TYPES}, **DEFAULT_FACTOR, **lowered(s["factor_map"])}
        sep = s["list_separator"]
        fresh, first = self.freshness(), True
        seen: dict[str, int] = {}
        via_groups = GroupGrants.parse(s["group_grants"])
        for row in table.rows():
            if first:
                # a JSON wrapper's exported_at is known once its first record is read:
                # MFA read no later than the export says it was made
                fresh, first = earliest(fresh, self.exported_at()), False
            login = fold(row.req("login"))
            if login in seen:
                raise row.fail("login",
                               f"duplicate login {login!r} (first on line {seen[login]})")
            seen[login] = row.line
            self.at = (table.display, row.line)
            email = row.text("email")
            mfa = self._factors(row, factors, sep)
            account = DirectoryAccount(
                login=login,
                status=DirectoryStatus(row.mapped("status", statuses, STATUS_WORDS,
                                                  f"sources.{self.name}.status_map")),
                email=fold(email) if email else None,
                employee_id=row.text("employee_id"),
                mfa=mfa,
                mfa_read_at=((row.instant("mfa_read_at", self.zone) or fresh)
                             if mfa is not None else None),
                groups=row.list("groups", sep),
                last_login=row.instant("last_login", self.zone),
            )
            yield account
            yield from via_groups.grants(login, account.groups)

    @staticmethod
    def _factors(row: Row, types: dict[str, str], sep: str) -> tuple[MfaFactor, ...] | None:
        column = row.table.columns.get("mfa_factors", "mfa_factors")
        if row.table.is_csv and column not in row.table.index:
            return None
        value = row.raw("mfa_factors")
        if value is None:
            return None if not row.table.is_csv else ()
        items: list[tuple[str, str, str | None]] = []
        if isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    if item.get("status") in (None, ""):
                        # an object that leaves its status out says nothing about it: read
                        # as active it would hide a pending or disabled factor (fail open)
                        raise row.fail("mfa_factors", f"factor {item.get('type', '')!r} has "
                                                      "no status")
                    provider = item.get("provider")
                    items.append((str(item.get("type", "")), str(item["status"]),
                                  str(provider).upper() if provider else None))
                elif isinstance(item, str):
                    items.append((*_split_factor(item), None))
                else:
                    raise row.fail("mfa_factors", "expected objects or 'type:status' strings")
        elif isinstance(value, str):
            items = [(*_split_factor(part.strip()), None)
                     for part in value.split(sep) if part.strip()]
        else:
            raise row.fail("mfa_factors", "expected a list or a separated string")
        out = []
        for t, st, provider in items:
            ftype = types.get(t.strip().lower())
            if ftype is None:
                raise row.fail("mfa_factors", f"unknown factor type {t!r}; map it in factor_map")
            fstatus = st.strip().lower()
            fstatus = DEFAULT_FACTOR_STATUS.get(fstatus, fstatus)
            if fstatus not in FACTOR_STATUS:
                raise row.fail("mfa_factors", f"unknown factor status {st!r}")
            out.append(MfaFactor(ftype, fstatus, provider))
        return tuple(out)


def _split_factor(text: str) -> tuple[str, str]:
    # Okta's type names hold colons themselves ("token:software:totp"), so the status is
    # only the last part when it is a status word.
    head, _, tail = text.rpartition(":")
    if head and tail.lower() in FACTOR_STATUS | DEFAULT_FACTOR_STATUS.keys():
        return head, tail
    return text, "active"
