"""Grants export (CSV, JSON or JSON Lines): who holds which role on which social account.

Fields: account, principal, role, granted_at, last_active, via_detail. ``account`` is the
inventory key (``x:@northwind``) or, with ``platform`` set, the bare handle. Raw roles
are normalised onto the ladder through ``role_map``, then the platform's preset; a
role neither knows stops the run with its line, so a new vendor role is never guessed.
``via`` says how this source's grants give access (a platform role, a management-tool
seat, an SSO group).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from governor.options import Option, OptionError
from governor.records import AccessPath, Grant, SourceKind
from governor.roles import Role, normalise
from governor.sources._common import file_options, mtime, resolve
from governor.sources._tabular import Table
from governor.sources.base import Connector, register

FIELDS = ("account", "principal", "role", "granted_at", "last_active", "via_detail")


@register
class GrantsFile(Connector):
    type = "grants_file"
    kind = SourceKind.GRANTS
    description = "Grants export file: roles held on social accounts or management-tool seats"
    options = {
        **file_options(FIELDS, "grants export"),
        "platform": Option("str", "", "Platform of every row, when the account column holds "
                           "bare handles; also picks the role preset.", example="x"),
        "role_map": Option("dict[str,str]", {}, "Raw role -> owner, admin, publisher, "
                           "moderator, contributor or analyst; overrides the platform preset.",
                           example={"Community Manager": "moderator"}),
        "via": Option("str", "direct", "How these grants give access.",
                      choices=tuple(p.value for p in AccessPath if p != AccessPath.VAULT)),
        "tool": Option("str", "", "The management tool these seats are in (via = tool_seat).",
                       example="hootsuite"),
    }

    @classmethod
    def validate(cls, settings: dict[str, Any], key: str) -> None:
        for raw, target in settings["role_map"].items():
            try:
                Role.parse(target)
            except ValueError as exc:
                raise OptionError(f"{key}.role_map.{raw}", str(exc)) from None
        if settings["via"] == "tool_seat" and not settings["tool"]:
            raise OptionError(f"{key}.tool", "required when via = 'tool_seat'")

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.path = resolve(self.base_dir, self.settings["path"])

    def freshness(self) -> datetime | None:
        return mtime(self.path)

    def fetch(self) -> Iterator[Grant]:
        s = self.settings
        table = Table(self.path, s["columns"], ("account", "principal", "role"), s["format"])
        overrides = {k.strip().lower(): Role.parse(v) for k, v in s["role_map"].items()}
        platform = s["platform"].strip().lower()
        via = AccessPath(s["via"])
        tool = s["tool"] or None
        roles: dict[tuple[str, str], Role] = {}
        for row in table.rows():
            account = row.req("account")
            if platform and not account.lower().startswith(platform + ":"):
                account = f"{platform}:{account}"
            plat, sep, handle = account.partition(":")
            if not sep or not handle:
                raise row.fail("account", f"{account!r} is not platform:handle (or set platform)")
            account = f"{plat.lower()}:{handle}"
            principal = row.req("principal")
            raw_role = row.req("role")
            role = roles.get((plat, raw_role))
            if role is None:
                try:
                    role = normalise(tool or plat, raw_role, overrides)
                except ValueError:
                    raise row.fail("role", f"role {raw_role!r} is not mapped for "
                                           f"{tool or plat}; add it to role_map") from None
                roles[(plat, raw_role)] = role
            # The loader rejects a second row for the same grant; at tells it where.
            self.at = (table.display, row.line)
            yield Grant(account=account, principal=principal, raw_role=raw_role, role=role,
                        via=via, via_detail=row.text("via_detail") or tool,
                        granted_at=row.instant("granted_at"),
                        last_active=row.instant("last_active"))
