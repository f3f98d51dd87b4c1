"""Renaming a source keeps its history, findings, exceptions and offboarding steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli, sql_rows
from test_lifecycle import DAY2, setup, shrink, url_of
from test_rules import (
    NOW,
    Role,
    account,
    cred,
    directory,
    grant,
    leaver,
    mail,
    person,
)

from governor.records import WorkerType
from governor.rename import renamed_subject
from governor.rules import RULES
from governor.snapshot import Snapshot

KINDS = ("hr", "dir", "inv", "grants", "vault")


def _snapshot(suffix: str) -> Snapshot:
    """One organisation with something for nearly every rule, each source's name ending
    in `suffix`; a Page whose name holds the separator and a source name as text."""
    page = "facebook:News | grants_a"
    shared = mail("E5")
    return Snapshot.build(
        NOW,
        persons=[("hr" + suffix, p) for p in (
            leaver("E2"), person("E1"), person("E3", worker=WorkerType.INTERN),
            person("E4", aliases=(shared,)), person("E5"))],
        directory=[("dir" + suffix, d) for d in (
            directory("E2"), directory("E1"), directory("E3"),
            directory("E9", login=shared))],
        accounts=[("inv" + suffix, a) for a in (account(), account(page))],
        grants=[("grants" + suffix, g) for g in (
            grant(mail("E2"), Role.OWNER), grant(mail("E3"), Role.ADMIN),
            grant(mail("E3"), Role.ADMIN, page), grant("ghost@x.com", acct=page),
            grant(shared, acct=page), grant(mail("E1"), last_active=None),
            grant(mail("E1"), acct="x:@unlisted"),
            grant(mail("E1"), last_active=NOW.replace(year=2020), acct=page))],
        credentials=[("vault" + suffix, c) for c in (
            cred("item1", mail("E2"), "nobody@x", mail("E3")),
            cred("item2", mail("E1"), accounts=("x:@vaulted",)))])


def _subjects(snap: Snapshot) -> dict[str, list[tuple[str, str | None, str | None]]]:
    out: dict[str, list[tuple[str, str | None, str | None]]] = {}
    for rule_id, rule in RULES.items():
        out[rule_id] = sorted((r.subject, r.account, r.person)
                              for r in rule.results(snap, rule.defaults()))
    return out


def test_every_rule_says_where_its_subjects_name_a_source() -> None:
    # the same organisation under other source names: renaming each source in the first
    # one's subjects must give exactly the second one's, for every registered rule
    before, after = _subjects(_snapshot("_a")), _subjects(_snapshot("_b"))
    changed: set[str] = set()
    for rule_id, results in before.items():
        renamed = []
        for subject, acct, who in results:
            for kind in KINDS:
                subject = renamed_subject(rule_id, subject, acct, who, kind + "_a",
                                          kind + "_b") or subject
            renamed.append((subject, acct, who))
        assert sorted(renamed) == after[rule_id], rule_id
        if renamed != results:
            changed.add(rule_id)
    assert changed == {r for r in RULES if RULES[r].source_in_subject}, changed


def test_a_page_named_like_a_source_is_not_renamed() -> None:
    subject = "grant|facebook:News | x_team|x_team|ghost@x.com"
    assert renamed_subject("orphan-grant", subject, "facebook:News | x_team", None, "x_team",
                           "x_platform") == "grant|facebook:News | x_team|x_platform|ghost@x.com"
    assert renamed_subject("orphan-grant", "grant|x:@n|other|p", "x:@n", None, "x_team",
                           "x_platform") is None


def _rename_in_config(demo_dir: Path) -> None:
    config = demo_dir / "governor.toml"
    config.write_text(config.read_text().replace("[sources.x_team]", "[sources.x_platform]")
                      .replace('source = "x_team"', 'source = "x_platform"'))
    inventory = demo_dir / "accounts.toml"
    inventory.write_text(inventory.read_text().replace('grants_source = "x_team"',
                                                       'grants_source = "x_platform"'))


EXCESS = "excess-privilege:I2002|x:@northwind|x_team|jack.morrison@northwind.example"
ORPHAN = "orphan-grant:grant|x:@northwind_help|x_team|svc-socialbot@northwind.example"


def test_a_renamed_source_keeps_its_findings_exceptions_steps_and_guard(
        demo_dir: Path, db_url: str) -> None:
    cfg, env = setup(demo_dir, db_url)
    url = url_of(demo_dir, env)
    at = {**env, "GOVERNOR_NOW": DAY2}
    assert run_cli("-c", cfg, "exception", "add", EXCESS, "--reason", "covering the launch",
                   "--approver", "ciso", "--expires", "2026-12-31", env=at).code == 0
    opened = run_cli("-c", cfg, "offboard", "I2002", "--execute", "--force", "--reason",
                     "internship ended early", env=at)
    assert opened.code in (0, 5), opened.err
    # a night at DAY2 first, so what time alone opens (a leaver's grace ending) is open
    assert run_cli("-c", cfg, "reconcile", "--no-report", env=at).code == 0
    at = {**env, "GOVERNOR_NOW": "2026-11-21T13:00:00+00:00"}
    before = dict(sql_rows(url, "SELECT key, first_seen_at FROM finding"))
    _rename_in_config(demo_dir)
    out = run_cli("-c", cfg, "sources", "rename", "x_team", "x_platform", "--reason",
                  "one name per platform", env=at)
    assert out.code == 0, out.err
    assert "findings re-keyed" in out.out
    night = run_cli("-c", cfg, "reconcile", "--no-report", "--json", env=at)
    assert night.code == 0, night.err
    counts = json.loads(night.out)["counts"]
    assert not any(counts.get("new", {}).values()), counts
    assert not any(counts.get("resolved", {}).values()), counts
    after = dict(sql_rows(url, "SELECT key, first_seen_at FROM finding"))
    renamed = {k.replace("|x_team|", "|x_platform|").replace("unknown-account:x_team|",
                                                              "unknown-account:x_platform|"): v
               for k, v in before.items()}
    assert after == renamed
    assert sql_rows(url, "SELECT status FROM finding WHERE key = '"
                    + EXCESS.replace("x_team", "x_platform") + "'") == [("excepted",)]
    steps = [k for (k,) in sql_rows(url, "SELECT key FROM offboard_step WHERE source = "
                                         "'x_platform'")]
    assert steps and all("x_team" not in k for k in steps)
    assert sql_rows(url, "SELECT count(*) FROM offboard_step WHERE source = 'x_team'") == [(0,)]
    (entry,) = sql_rows(url, "SELECT subject, reason FROM audit_log "
                             "WHERE action = 'source.renamed'")
    assert entry == ("x_team -> x_platform", "one name per platform")
    # the re-keyed exception is still the one the audit log recorded
    verified = run_cli("-c", cfg, "audit", "verify", env=at)
    assert verified.code == 0, verified.err
    # the feed guard knows the renamed feed's level: 7 of 11 rows is a drop
    shrink(demo_dir / "x_team.csv", 7)
    guarded = run_cli("-c", cfg, "reconcile", "--no-report",
                      env={**env, "GOVERNOR_NOW": "2026-11-22T12:00:00+00:00"})
    assert guarded.code == 3 and "x_platform: returned 7 records" in guarded.err, guarded.err


@pytest.mark.parametrize(("edit", "args", "message"), [
    (False, ("x_team", "x_platform"), "'x_platform' is not a source in the config"),
    (True, ("x_team", "x_team"), "are the same name"),
    (True, ("linkedin_admins", "x_platform"), "'linkedin_admins' is still a source"),
    (True, ("nothing", "x_platform"), "the store has no reads of a source 'nothing'"),
])
def test_a_rename_that_cannot_be_right_is_refused_and_writes_nothing(
        demo_dir: Path, edit: bool, args: tuple[str, str], message: str) -> None:
    cfg, env = setup(demo_dir)
    url = url_of(demo_dir, env)
    if edit:
        _rename_in_config(demo_dir)
    before = sql_rows(url, "SELECT count(*) FROM audit_log")
    out = run_cli("-c", cfg, "sources", "rename", *args, "--reason", "r", env=env)
    assert out.code == 2 and message in out.err, out.err
    assert sql_rows(url, "SELECT count(*) FROM audit_log") == before
    assert sql_rows(url, "SELECT count(*) FROM obs_grant WHERE source = 'x_team'") != [(0,)]


def test_a_rename_after_the_new_name_was_read_is_refused(demo_dir: Path) -> None:
    cfg, env = setup(demo_dir)
    _rename_in_config(demo_dir)
    # the reconcile stops first, pointing at the command that relabels the history
    stopped = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert stopped.code == 3 and "x_team: read by run 1, now is no longer in the config" \
        in stopped.err and "`governor sources rename`" in stopped.err, stopped.err
    assert run_cli("-c", cfg, "reconcile", "--no-report", "--force", "--reason", "r",
                   env={**env, "GOVERNOR_NOW": DAY2}).code == 0
    out = run_cli("-c", cfg, "sources", "rename", "x_team", "x_platform", "--reason", "r",
                  env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 2 and "'x_platform' already has history (first read in run 3)" \
        in out.err, out.err


def test_a_rename_to_a_source_of_another_type_is_refused(demo_dir: Path) -> None:
    cfg, env = setup(demo_dir)
    config = demo_dir / "governor.toml"
    block = config.read_text().split("[sources.x_team]\n")[1].split("\n\n")[0]
    config.write_text(config.read_text().replace(
        "[sources.x_team]\n" + block,
        '[sources.x_platform]\ntype = "vault_file"\npath = "x-vault.json"'))
    config.write_text(config.read_text().replace('source = "x_team"', 'source = "*"'))
    out = run_cli("-c", cfg, "sources", "rename", "x_team", "x_platform", "--reason", "r",
                  env=env)
    assert out.code == 2 and "'x_team' was read as grants_file and 'x_platform' is a " \
        "vault_file" in out.err, out.err


def test_an_inventory_still_naming_the_old_source_is_caught_at_the_next_run(
        demo_dir: Path) -> None:
    """The inventory file was skipped as unchanged, so it was never checked against the
    renamed config: the first later edit of accounts.toml broke some other night."""
    cfg, env = setup(demo_dir)
    config = demo_dir / "governor.toml"
    config.write_text(config.read_text().replace("[sources.x_team]", "[sources.x_platform]")
                      .replace('source = "x_team"', 'source = "x_platform"'))
    assert run_cli("-c", cfg, "sources", "rename", "x_team", "x_platform", "--reason", "r",
                   env=env).code == 0
    out = run_cli("-c", cfg, "reconcile", "--no-report", env={**env, "GOVERNOR_NOW": DAY2})
    assert out.code == 2, out.err
    assert "grants_source: 'x_team' is not a source in the config" in out.err, out.err
