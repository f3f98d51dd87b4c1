"""A kind of data a rule requires that no source supplies is reported, run by run, as
that rule's UNKNOWN finding: never a silent pass. It resolves once a source of that kind
has been read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import demo_env, run_cli

from governor.records import SourceKind
from governor.rules import RULES

HR_RULES = sorted(r for r, rule in RULES.items() if SourceKind.HR in rule.requires)


def findings(cfg: str) -> list[dict[str, Any]]:
    out = run_cli("-c", cfg, "findings", "--status", "all", "--json", env=demo_env())
    assert out.code == 0, out.err
    found: list[dict[str, Any]] = json.loads(out.out)
    return found


def test_no_hr_source_makes_every_rule_that_needs_it_unknown(demo_dir: Path) -> None:
    config = demo_dir / "governor.toml"
    full = config.read_text(encoding="utf-8")
    start, end = full.index("[sources.hr]"), full.index("[sources.okta]")
    config.write_text(full[:start] + full[end:], encoding="utf-8")
    cfg = str(config)
    assert run_cli("-c", cfg, "db", "upgrade", env=demo_env()).code == 0
    assert run_cli("-c", cfg, "reconcile", env=demo_env()).code == 0

    unknown = {f["rule"]: f for f in findings(cfg) if f["outcome"] == "unknown"
               and f["key"].endswith(":no-data|hr")}
    assert sorted(unknown) == HR_RULES and len(HR_RULES) >= 8
    assert all(f["status"] == "open" and "no HR data" in f["message"]
               for f in unknown.values())
    # nor is anything guessed: no person is an orphan or a leaver without HR
    assert not [f for f in findings(cfg) if f["rule"] in ("orphan-grant", "leaver-holds-access")
                and f["outcome"] == "fail"]
    report = json.loads((demo_dir / "reports" / "nightly-1.json").read_text(encoding="utf-8"))
    assert {f["key"] for f in report["unknown"]} >= {f"{r}:no-data|hr" for r in HR_RULES}

    config.write_text(full, encoding="utf-8")  # HR configured and read: decided again
    assert run_cli("-c", cfg, "reconcile", env=demo_env()).code == 0
    now = {f["key"]: f["status"] for f in findings(cfg)}
    assert all(now[f"{r}:no-data|hr"] == "resolved" for r in HR_RULES)
    assert any(f["rule"] == "leaver-holds-access" and f["outcome"] == "fail"
               and f["status"] == "open" for f in findings(cfg))


def test_the_catalogue_says_what_each_rule_requires() -> None:
    out = run_cli("rules", "--json")
    assert out.code == 0, out.err
    listed = {r["id"]: r for r in json.loads(out.out)}
    assert set(listed) == set(RULES)
    for rule_id, rule in RULES.items():
        assert listed[rule_id]["requires"] == sorted(k.value for k in rule.requires)
        assert set(listed[rule_id]["requires"]) <= set(listed[rule_id]["needs"])
