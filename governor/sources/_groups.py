"""Access that comes through directory groups or SSO app assignments, as grants.

Config maps a group (or an app) to the grants its members hold, each written
``ROLE ACCOUNT``: ``publisher x:@northwind``, or ``publisher tool:hootsuite`` for a seat
on every account the inventory says that tool manages. Directory connectors (file,
LDAP, Okta) yield these grants next to the accounts, so SSO-group access is reconciled
like any other grant: leavers, orphans, excess privilege, history.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from governor import platforms
from governor.options import Option, OptionError
from governor.records import AccessPath, Grant
from governor.roles import Role

GROUP_GRANTS = Option(
    "dict[str,list[str]]", {},
    "Directory group -> the grants its members hold, each 'ROLE ACCOUNT' ('publisher "
    "x:@northwind'; 'publisher tool:hootsuite' means every account that tool manages). "
    "Groups match case-insensitively as the directory names them (CN, name or DN).",
    example={"social-x-publishers": ["publisher x:@northwind"]})


def parse_item(item: str) -> tuple[Role, str]:
    role, _, account = item.strip().partition(" ")
    account = account.strip()
    if ":" not in account:
        raise ValueError(f"{item!r} is not 'ROLE platform:handle' or 'ROLE tool:NAME'")
    platform, _, handle = account.partition(":")
    return Role.parse(role), f"{platform.lower()}:{handle}"


def validate(mapping: dict[str, list[str]], key: str) -> None:
    for group, items in mapping.items():
        for i, item in enumerate(items):
            try:
                _, account = parse_item(item)
            except ValueError as exc:
                raise OptionError(f"{key}.{group}[{i}]", str(exc)) from None
            platform = account.partition(":")[0]
            # 'twiter:@northwind' would be a grant on an account no inventory lists
            wrong = None if platform == "tool" else platforms.problem(platform)
            if wrong is not None:
                raise OptionError(f"{key}.{group}[{i}]", wrong)


@dataclass(frozen=True)
class GroupGrants:
    by_group: dict[str, tuple[tuple[Role, str], ...]]
    via: AccessPath = AccessPath.SSO_GROUP

    @classmethod
    def parse(cls, mapping: dict[str, list[str]],
              via: AccessPath = AccessPath.SSO_GROUP) -> GroupGrants:
        return cls({g.strip().lower(): tuple(parse_item(i) for i in items)
                    for g, items in mapping.items()}, via)

    def __bool__(self) -> bool:
        return bool(self.by_group)

    def grants(self, principal: str, groups: Iterable[str]) -> Iterator[Grant]:
        """The grants one member holds through the groups (or apps) it is in."""
        for group in groups:
            for role, account in self.by_group.get(group.lower(), ()):
                yield Grant(account=account, principal=principal, raw_role=f"member of {group}",
                            role=role, via=self.via, via_detail=group)
