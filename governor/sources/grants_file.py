"""Grants export (CSV, JSON or JSON Lines): who holds which role on which social account.

Fields: account, principal, role, granted_at, last_active, via_detail. ``account`` is the
inventory key (``x:@northwind``) or, with ``platform`` set, the bare handle. Raw roles
are normalised onto the ladder through ``role_map``, then the platform's preset; a
role neither knows stops the run with its line, so a new vendor role is never guessed.
A platform governor has no preset for (a new one: pinterest) takes its roles from
``role_map`` only: read with no preset, X's "Contributor" (who publishes) would pass for
the ladder's contributor (who drafts). A platform name that is a slip for a known one
('twitter', 'instgram') is refused unless a source declares it on purpose
(governor.platforms).
``via`` says how this source's grants give access (a platform role, a management-tool
seat, an SSO group).
"""

from __future__ import annotations

import difflib
import functools
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from governor import platforms
from governor.options import Option, OptionError
from governor.records import AccessPath, Grant, SourceKind
from governor.roles import PLATFORM_ROLE_MAPS, Role, check_labels, has_preset, normalise
from governor.sources._common import MATCH_EMPLOYEE_IDS, FileConnector, file_options
from governor.sources._tabular import SENTINEL_YEARS, Row, Table
from governor.sources.base import register

FIELDS = ("account", "principal", "role", "granted_at", "last_active", "via_detail")


@register
class GrantsFile(FileConnector):
    type = "grants_file"
    kind = SourceKind.GRANTS
    description = "Grants export file: roles held on social accounts or management-tool seats"
    options = {
        **file_options(FIELDS, "grants export", instants=True),
        "platform": Option("str", "", "Platform of every row, when the account column holds "
                           "bare handles; also picks the role preset (facebook, instagram, "
                           "linkedin, tiktok, x, youtube). Any other name is a new platform, "
                           "whose roles come from role_map only: it must name every role the "
                           "export holds (the ladder's names are not guessed). Without a "
                           "role_map, a name that is none of these stops governor, with "
                           "'did you mean' for a slip ('twiter', or 'twitter' for x); with "
                           "one, the name is declared on purpose, for the inventory too.",
                           example="x"),
        "role_map": Option("dict[str,str]", {}, "Raw role -> owner, admin, publisher, "
                           "moderator, contributor or analyst; overrides the platform preset.",
                           example={"Community Manager": "moderator"}),
        "via": Option("str", "direct", "How these grants give access.",
                      choices=tuple(p.value for p in AccessPath if p != AccessPath.VAULT)),
        "tool": Option("str", "", "The management tool these seats are in (via = tool_seat); "
                       "picks the role preset (hootsuite, sproutsocial). Any other tool "
                       "reads its roles from role_map only, which must name every role the "
                       "export holds (the ladder's names are not guessed).",
                       example="hootsuite"),
        "match_employee_ids": MATCH_EMPLOYEE_IDS,
    }

    @classmethod
    def validate(cls, settings: dict[str, Any], key: str) -> None:
        super().validate(settings, key)
        check_labels(settings["role_map"], f"{key}.role_map")
        if settings["via"] == "tool_seat" and not settings["tool"]:
            raise OptionError(f"{key}.tool", "required when via = 'tool_seat'")
        tool = settings["tool"].strip()
        if tool and not has_preset(tool) and not settings["role_map"]:
            # a tool's "Editor" may publish or may only draft: governor does not guess
            raise OptionError(f"{key}.tool", f"no role preset for the tool {tool!r}"
                              f"{_tool_hint(tool)}; presets: {', '.join(TOOLS)}. Another "
                              "tool needs every role its export holds in role_map")
        platform = settings["platform"].strip()
        if platform and not has_preset(platform) and not settings["role_map"]:
            # nothing could read its roles: the source is misspelt or not finished
            raise OptionError(f"{key}.platform", f"no role preset for {platform!r}"
                              f"{platforms.hint(platform)}; presets: "
                              f"{', '.join(platforms.KNOWN)}. Another platform needs every "
                              "role its export holds in role_map")

    @classmethod
    def platforms(cls, settings: dict[str, Any]) -> frozenset[str]:
        platform = settings["platform"].strip().lower()
        return frozenset({platform} if platform else ())

    def fetch(self) -> Iterator[Grant]:
        s = self.settings
        self.require_file()
        table = Table(self.path, s["columns"], ("account", "principal", "role"), s["format"],
                      known=FIELDS, zone=self.zone, delimiter=s["delimiter"])
        self.read_table = table
        self._overrides = {k.strip().lower(): Role.parse(v) for k, v in s["role_map"].items()}
        self._platform = s["platform"].strip().lower()
        self._via = AccessPath(s["via"])
        self._tool: str | None = s["tool"] or None
        self._roles: dict[tuple[str, str], Role] = {}
        # this source's own platform passed the config's check; others the config declares
        self._declared = self.context.platforms | self.platforms(s)
        if table.is_csv:
            yield from self._fetch_csv(table)
            return
        for row in table.rows():
            # The loader rejects a second row for the same grant; at tells it where.
            self.at = (table.display, row.line)
            yield self._grant(row)

    def _grant(self, row: Row) -> Grant:
        """One row, every check applied: the reference path and the source of errors."""
        account = row.req("account")
        platform = self._platform
        if platform and not account.lower().startswith(platform + ":"):
            named, colon, _ = account.partition(":")
            if colon and (named.strip().lower() in platforms.KNOWN
                          or platforms.suggestion(named) is not None):
                # "twitter:@northwind" in an X export is x:@northwind misspelt, not an
                # account called "twitter:@northwind" (its owner's grant would end)
                raise row.fail("account", f"{account!r} names the platform {named!r}"
                                          f"{platforms.hint(named)}, but this source's "
                                          f"platform is {platform!r}")
            account = f"{platform}:{account}"
        plat, sep, handle = account.partition(":")
        if not sep or not handle:
            raise row.fail("account", f"{account!r} is not platform:handle (or set platform)")
        raw_role = row.req("role")
        return Grant(account=f"{plat.lower()}:{handle}", principal=row.req("principal"),
                     raw_role=raw_role, role=self._role(row, plat.lower(), raw_role),
                     via=self._via, via_detail=row.text("via_detail") or self._tool,
                     granted_at=row.instant("granted_at", self.zone),
                     last_active=row.instant("last_active", self.zone))

    def _role(self, row: Row, plat: str, raw_role: str) -> Role:
        # cached per (platform, raw role): the fast path reads every later row of a pair
        # from the cache, so the checks here run once per distinct pair
        role = self._roles.get((plat, raw_role))
        if role is None:
            wrong = platforms.problem(plat, self._declared)
            if wrong is not None:
                raise row.fail("account", wrong)
            role = self._normalise(row, plat, raw_role)
            self._roles[(plat, raw_role)] = role
        return role

    def _normalise(self, row: Row, plat: str, raw_role: str) -> Role:
        source = self._tool or plat
        if not has_preset(source):
            # no preset, so no guessing from the ladder's names: role_map says, or nothing
            role = self._overrides.get(raw_role.strip().lower())
            if role is None:
                near = _tool_hint(source) if self._tool else platforms.hint(plat)
                raise row.fail("role", f"role {raw_role!r} is not mapped for {source}, "
                                       f"which has no role preset{near}; add it to role_map")
            return role
        try:
            return normalise(source, raw_role, self._overrides)
        except ValueError:
            raise row.fail("role", f"role {raw_role!r} is not mapped for {source}; add it "
                                   "to role_map") from None

    def _fetch_csv(self, table: Table) -> Iterator[Grant]:
        # Two million rows: read well-formed ones with precomputed column positions and
        # hand anything unusual (blank, odd date, unmapped role) to _grant, which either
        # reads it the long way or raises the exact error.
        cells_iter = table.cells()
        first = next(cells_iter, None)
        if first is None:
            return
        pos = [table.position(f) for f in ("account", "principal", "role", "granted_at",
                                           "last_active", "via_detail")]
        ia, ip, ir, ig, il, iv = pos
        assert ia is not None and ip is not None and ir is not None  # required columns
        prefix = self._platform + ":" if self._platform else ""
        roles, via, tool, display = self._roles, self._via, self._tool, table.display
        for line, cells in itertools.chain((first,), cells_iter):
            self.at = (display, line)
            account, principal, raw_role = cells[ia].strip(), cells[ip].strip(), cells[ir].strip()
            plat, sep, handle = account.partition(":")
            if prefix and not account.lower().startswith(prefix):
                sep = ""  # bare handle: the long way adds the platform
            role = roles.get((plat, raw_role))
            try:
                if not (principal and sep and handle and role) or plat != plat.lower():
                    raise ValueError
                granted = _instant(cells[ig]) if ig is not None else None
                active = _instant(cells[il]) if il is not None else None
            except ValueError:
                yield self._grant(Row(table, line, cells))
                continue
            detail = cells[iv].strip() if iv is not None else ""
            yield Grant(account, principal, raw_role, role, via, detail or tool, granted,
                        active)


# The management tools governor has role presets for (the rest of PLATFORM_ROLE_MAPS).
TOOLS = tuple(sorted(set(PLATFORM_ROLE_MAPS) - set(platforms.KNOWN)))


def _tool_hint(name: str) -> str:
    """' (did you mean 'hootsuite'?)' for a near miss of a tool governor knows, else ''."""
    squeezed = name.strip().lower().replace(" ", "").replace("-", "").replace("_", "")
    close = difflib.get_close_matches(squeezed, TOOLS, n=1, cutoff=0.8)
    return f" (did you mean {close[0]!r}?)" if close else ""


@functools.lru_cache(maxsize=1 << 16)
def _instant(text: str) -> datetime | None:
    """The common ISO 8601 case; ValueError sends the row the long way. Cached: exports
    repeat instants, and the grants that share one then share one object."""
    text = text.strip()
    if not text:
        return None
    value = datetime.fromisoformat(text)
    if value.tzinfo is None or value.year in SENTINEL_YEARS:
        # naive (read in the source's zone), or "no date": the reference path decides
        raise ValueError
    return value if value.tzinfo is UTC else value.astimezone(UTC)
