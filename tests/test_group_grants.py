"""Access through directory groups and SSO app seats becomes grants like any other."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from governor.config import parse
from governor.errors import ConfigError
from governor.records import (
    AccessPath,
    AccountAccess,
    Criticality,
    DirectoryAccount,
    Grant,
    Person,
    PersonStatus,
    SocialAccount,
    SourceKind,
    WorkerType,
)
from governor.roles import Role
from governor.snapshot import Snapshot
from governor.sources import CONNECTORS

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


def directory(tmp_path: Path, mapping: dict[str, list[str]]) -> list[object]:
    path = tmp_path / "dir.csv"
    path.write_text("login,email,employee_id,status,groups\n"
                    "jdoe,,E1,active,Social-X-Publishers;staff\n"
                    "asmith,asmith@corp.example,,active,staff\n")
    cls = CONNECTORS["directory_file"]
    settings = {**{k: o.default for k, o in cls.options.items()}, "path": str(path),
                "group_grants": mapping}
    assert cls.kinds(settings) == frozenset({SourceKind.DIRECTORY, SourceKind.GRANTS})
    return list(cls("okta", settings, tmp_path).fetch())


def test_group_members_hold_the_mapped_grants(tmp_path: Path) -> None:
    records = directory(tmp_path, {"social-x-publishers": ["publisher x:@brand",
                                                           "publisher tool:hootsuite"]})
    grants = [r for r in records if isinstance(r, Grant)]
    assert [(g.account, g.principal, g.role, g.via, g.via_detail) for g in grants] == [
        ("x:@brand", "jdoe", Role.PUBLISHER, AccessPath.SSO_GROUP, "Social-X-Publishers"),
        ("tool:hootsuite", "jdoe", Role.PUBLISHER, AccessPath.SSO_GROUP, "Social-X-Publishers"),
    ]
    people = [Person("E1", "john.doe@corp.example", "John Doe", PersonStatus.LEFT,
                     WorkerType.EMPLOYEE)]
    accounts = [SocialAccount(f"{p}:@brand", p, "@brand", AccountAccess.SSO_TOOL,
                              Criticality.HIGH, tool="hootsuite") for p in ("x", "facebook")]
    snap = Snapshot.build(
        NOW, persons=[("hr", p) for p in people],
        directory=[("okta", r) for r in records if isinstance(r, DirectoryAccount)],
        grants=[("okta", g) for g in grants], accounts=[("inv", a) for a in accounts])
    # "jdoe" is no email: it is E1 because the directory account says so
    held = sorted((h.grant.account, h.match.employee_id) for h in snap.grants_by_person["E1"])
    assert held == [("facebook:@brand", "E1"), ("x:@brand", "E1"), ("x:@brand", "E1")]
    assert "tool:hootsuite" not in snap.grants_by_account


def test_bad_mapping_is_a_config_error(tmp_path: Path) -> None:
    raw = {"sources": {"okta": {"type": "directory_file", "path": "d.csv",
                                "group_grants": {"g": ["publisher brand"]}}}}
    with pytest.raises(ConfigError, match=r"sources\.okta\.group_grants\.g\[0\]: .*ROLE"):
        parse(raw, tmp_path / "governor.toml")
    raw["sources"]["okta"]["group_grants"] = {"g": ["boss x:@brand"]}
    with pytest.raises(ConfigError, match="unknown role 'boss'"):
        parse(raw, tmp_path / "governor.toml")
