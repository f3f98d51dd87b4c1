"""Password-vault export (JSON, or CSV): shared logins for social accounts.

JSON: ``{"exported_at": ..., "groups": {"social-team": ["a@corp", ...]},
"records": [{"id", "title", "accounts": [...], "readers": ["a@corp", "group:social-team"],
"password_changed_at", "totp_in_vault", "fingerprint"}]}``. CSV has the same fields with
lists separated by ``list_separator`` (and no groups). Readers named ``group:X`` are
expanded through the export's groups; groups it does not define are kept by name and
expanded later through directory groups.

``fingerprint`` is optional and must be a keyed fingerprint (``hmac-sha256:<64 hex>``,
computed by the export with a key governor never sees). Anything else is refused, and
the refused value is never echoed: it may be a password pasted by mistake. The same
holds for a refused password_changed_at or totp_in_vault (a shifted column).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from governor import platforms
from governor.errors import DataError
from governor.lookalike import fold
from governor.options import Option
from governor.records import Credential, SourceKind
from governor.sources._common import MATCH_EMPLOYEE_IDS, FileConnector, file_options
from governor.sources._tabular import Table
from governor.sources.base import register

FIELDS = ("id", "title", "accounts", "readers", "password_changed_at", "totp_in_vault",
          "fingerprint")
# a digest's own length: SHA-256 64 hex digits, SHA-512 128 (not anything between)
FINGERPRINT = re.compile(r"^hmac-sha(?:256:[0-9a-f]{64}|512:[0-9a-f]{128})$")


@register
class VaultFile(FileConnector):
    type = "vault_file"
    kind = SourceKind.VAULT
    description = "Password-vault export: shared logins, who can read them, rotation"
    options = {
        **file_options(FIELDS, "vault export", instants=True),
        "list_separator": Option("str", ";", "Separates accounts and readers in a CSV cell."),
        "match_employee_ids": MATCH_EMPLOYEE_IDS,
    }


    def fetch(self) -> Iterator[Credential]:
        s = self.settings
        self.require_file()
        table = Table(self.path, s["columns"], ("id", "accounts", "readers"), s["format"],
                      known=FIELDS, no_secrets=True, zone=self.zone, delimiter=s["delimiter"])
        self.read_table = table
        sep = s["list_separator"]
        rows = table.rows()
        groups: dict[str, tuple[str, ...]] | None = None
        seen: dict[str, int] = {}
        for row in rows:
            self.at = (table.display, row.line)  # where the loader's checks point
            if groups is None:
                groups = self._groups(table)
            item = row.req("id")
            if item in seen:
                raise row.fail("id", f"duplicate item id {item!r} (first on line {seen[item]})")
            seen[item] = row.line
            accounts = row.list("accounts", sep)
            if not accounts:
                raise row.fail("accounts", "names no account")
            for acct in accounts:
                platform, _, handle = acct.partition(":")
                if not platform.strip() or not handle.strip():
                    # "x:" tied the login to an account named by nothing
                    raise row.fail("accounts", f"{acct!r} is not platform:handle")
                # 'twitter:@northwind_uk' would tie the login to no inventory account
                wrong = platforms.problem(acct.partition(":")[0], self.context.platforms)
                if wrong is not None:
                    raise row.fail("accounts", f"{acct!r}: {wrong}")
            readers: set[str] = set()
            via_groups: list[str] = []
            expanded: set[str] = set()
            for reader in row.list("readers", sep):
                if reader.lower().startswith("group:"):
                    name = reader[6:].strip()
                    if not name:
                        raise row.fail("readers", f"{reader!r} names no group")
                    via_groups.append(name)
                    if name in groups:
                        expanded.add(name)
                        readers.update(fold(m) for m in groups[name])
                else:
                    readers.add(fold(reader))
            fingerprint = row.text("fingerprint")
            if fingerprint is not None and not FINGERPRINT.match(fingerprint.lower()):
                raise row.fail("fingerprint", "is not a keyed fingerprint "
                                              "(hmac-sha256:<hex>); value not shown")
            yield Credential(
                item_id=item,
                title=row.text("title") or item,
                accounts=tuple(sorted({_account(a) for a in accounts})),
                readers=tuple(sorted(readers)),
                reader_groups=tuple(sorted(set(via_groups))),
                # refused values beside secrets are not repeated (see the docstring)
                password_changed_at=row.instant("password_changed_at", self.zone,
                                                shown=False),
                totp_in_vault=row.boolean("totp_in_vault", shown=False),
                fingerprint=fingerprint.lower() if fingerprint else None,
                expanded_groups=tuple(sorted(expanded)),
            )

    def _groups(self, table: Table) -> dict[str, tuple[str, ...]]:
        raw = table.meta.get("groups", {})
        if not isinstance(raw, dict) or not all(
                isinstance(v, list) and all(isinstance(m, str) for m in v) for v in raw.values()):
            raise DataError(table.display, None, "groups", "expected a table of name -> "
                                                           "list of member emails")
        return {k: tuple(v) for k, v in raw.items()}


def _account(text: str) -> str:
    platform, _, handle = text.strip().partition(":")
    return f"{platform.lower()}:{handle}"
