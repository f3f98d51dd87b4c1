"""A kind of data a rule requires that no source supplies is reported, run by run, as
that rule's UNKNOWN finding: never a silent pass. It resolves once a source of that kind
has been read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import demo_env, reconcile_demo, run_cli

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


def test_a_violation_its_rule_can_no_longer_decide_is_under_what_changed(
        demo_dir: Path) -> None:
    """@northwind_uk has no account-level 2FA. When the inventory stops saying either way,
    the finding turns unknown: it is neither resolved nor new, and was only in the
    unknown count. It is listed as newly undecided in the run that lost the data, and
    only in that run."""
    cfg, env = str(demo_dir / "governor.toml"), demo_env()
    assert run_cli("-c", cfg, "db", "upgrade", env=env).code == 0
    first = run_cli("-c", cfg, "reconcile", "--json", env=env)
    assert first.code == 0, first.err
    (key,) = [f["key"] for f in findings(cfg)
              if f["rule"] == "account-mfa-missing" and f["account"] == "x:@northwind_uk"]
    assert [f["outcome"] for f in findings(cfg) if f["key"] == key] == ["fail"]

    inventory = demo_dir / "accounts.toml"
    body = inventory.read_text(encoding="utf-8")
    marker = 'access = "shared_login"\naccount_2fa = false\nrecovery_email = "sam.'
    assert body.count(marker) == 1
    inventory.write_text(body.replace(marker, 'access = "shared_login"\nrecovery_email = '
                                      '"sam.'), encoding="utf-8")
    day2 = {**env, "GOVERNOR_NOW": "2026-11-21T12:00:00+00:00"}
    second = run_cli("-c", cfg, "reconcile", env=day2)
    assert second.code == 0, second.err
    assert "newly undecided: 1 finding " in second.out, second.out
    (f,) = [f for f in findings(cfg) if f["key"] == key]
    assert (f["status"], f["outcome"]) == ("open", "unknown")
    report = json.loads((demo_dir / "reports" / "nightly-2.json").read_text(encoding="utf-8"))
    assert [x["key"] for x in report["newly_undecided"]] == [key]
    assert key not in {x["key"] for x in report["new"]}
    assert sum(report["counts"]["newly_undecided"].values()) == 1
    html = (demo_dir / "reports" / "nightly-2.html").read_text(encoding="utf-8")
    assert "Newly undecided (1)" in html
    rows = (demo_dir / "reports" / "nightly-2.csv").read_text(encoding="utf-8").splitlines()
    assert sum(r.startswith(f"newly_undecided,{key},") for r in rows) == 1

    day3 = {**env, "GOVERNOR_NOW": "2026-11-22T12:00:00+00:00"}
    third = run_cli("-c", cfg, "reconcile", env=day3)
    assert third.code == 0 and "newly undecided" not in third.out
    report = json.loads((demo_dir / "reports" / "nightly-3.json").read_text(encoding="utf-8"))
    assert report["newly_undecided"] == [] and report["unknown"] != []


def test_no_grants_nor_vault_makes_the_rules_about_holders_unknown(demo_dir: Path) -> None:
    """HR, the directory and the inventory, and no export of who holds what: the leaver
    and orphan rules found nothing, which read as nobody holding anything."""
    config = demo_dir / "governor.toml"
    full = config.read_text(encoding="utf-8")
    config.write_text(full[:full.index("# X team members")], encoding="utf-8")
    inventory = demo_dir / "accounts.toml"
    inventory.write_text("\n".join(line for line in inventory.read_text().splitlines()
                                   if not line.startswith("grants_source")), encoding="utf-8")
    cfg = str(config)
    assert run_cli("-c", cfg, "db", "upgrade", env=demo_env()).code == 0
    assert run_cli("-c", cfg, "reconcile", env=demo_env()).code == 0
    unknown = {f["rule"] for f in findings(cfg) if f["outcome"] == "unknown"
               and f["key"].endswith(":no-data|grants+vault")}
    # the directory is there: those that can judge by it alone are not unknown
    holders = {r for r, rule in RULES.items() if rule.requires_any == {SourceKind.GRANTS,
                                                                      SourceKind.VAULT}}
    assert unknown == holders >= {"leaver-holds-access", "orphan-grant", "unknown-account",
                                  "excess-privilege", "user-mfa-missing"}
    message = next(f["message"] for f in findings(cfg)
                   if f["key"] == "leaver-holds-access:no-data|grants+vault")
    assert "there is no grants or vault data" in message


def test_a_violation_whose_data_the_feed_stopped_giving_is_not_resolved_as_fixed(
        demo_dir: Path) -> None:
    """Victor's YouTube role is dormant. The export then leaves his last activity blank:
    dormancy is one unknown per account and feed, under its own key, and his finding
    resolved as "fixed" though nothing was seen fixed. It stays open now; removing the
    grant still resolves it."""
    cfg, env = reconcile_demo(demo_dir)
    key = ("dormant-grant:youtube:Northwind Traders|youtube_permissions|"
           "victor.adebayo@northwind.example")
    status = {f["key"]: f["status"] for f in findings(cfg)}
    assert status[key] == "open"
    grants = demo_dir / "youtube_permissions.csv"
    body = grants.read_text(encoding="utf-8")
    line = ("Northwind Traders,victor.adebayo@northwind.example,Viewer,2024-01-09T09:00:00Z,"
            "2026-03-02T10:15:00Z\n")
    assert body.count(line) == 1
    grants.write_text(body.replace(line, line.replace(",2026-03-02T10:15:00Z", ",")),
                      encoding="utf-8")
    day2 = {**env, "GOVERNOR_NOW": "2026-11-21T12:00:00+00:00"}
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=day2).code == 0
    status = {f["key"]: (f["status"], f["resolution"]) for f in findings(cfg)}
    assert status[key] == ("open", None)
    assert status["dormant-grant:youtube:Northwind Traders|youtube_permissions|"
                  "no-activity-data"][0] == "open"
    grants.write_text(body.replace(line, ""), encoding="utf-8")
    day3 = {**env, "GOVERNOR_NOW": "2026-11-22T12:00:00+00:00"}
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=day3).code == 0
    assert {f["key"]: f["resolution"] for f in findings(cfg)}[key] == "fixed"
