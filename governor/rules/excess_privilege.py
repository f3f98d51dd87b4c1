from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from governor.options import Option
from governor.records import AccessPath, SourceKind, WorkerType
from governor.roles import Role, check_labels
from governor.rules._common import who
from governor.rules.base import Outcome, Result, Rule, Severity, register
from governor.snapshot import Snapshot

MAX_ROLE = {WorkerType.INTERN.value: Role.CONTRIBUTOR.label,
            WorkerType.AGENCY.value: Role.CONTRIBUTOR.label,
            WorkerType.CONTRACTOR.value: Role.PUBLISHER.label,
            WorkerType.EMPLOYEE.value: Role.OWNER.label}


@register
class ExcessPrivilege(Rule):
    id = "excess-privilege"
    title = "A role above what the person's kind of work or team allows"
    severity = Severity.MEDIUM
    rationale = ("Least privilege: interns and agency staff draft for approval, contractors "
                 "publish at most, and only the owning team may hold the owner role that can "
                 "remove every admin. Whoever can read a shared login holds the account "
                 "outright: for this check it is the owner role.")
    remediation = ("Lower the role on the platform or tool to the one the job needs, or move "
                   "ownership to the account's owner team; take a reader whose kind of work "
                   "may not hold the whole account off the vault item (and rotate it).")
    controls = ("SOC2 CC6.1", "SOC2 CC6.3", "ISO27001 A.5.15", "ISO27001 A.8.2")
    # the directory too: who a login is, and who is in a vault item's reader group
    needs = frozenset({SourceKind.HR, SourceKind.GRANTS, SourceKind.INVENTORY,
                       SourceKind.VAULT, SourceKind.DIRECTORY})
    requires = frozenset({SourceKind.HR})
    requires_any = frozenset({SourceKind.GRANTS, SourceKind.VAULT})
    source_in_subject = ("{person}|{account}|",)
    params = {
        "max_role": Option("dict[str,str]", dict(MAX_ROLE),
                           "Highest role each worker type may hold (" +
                           ", ".join(r.label for r in Role) + "); types left out keep the "
                           "default.", choices=tuple(t.value for t in WorkerType),
                           example={"contractor": "contributor"}),
    }

    @classmethod
    def validate(cls, params: dict[str, Any], key: str) -> None:
        check_labels(params["max_role"], f"{key}.max_role")

    def evaluate(self, snap: Snapshot, params: dict[str, Any]) -> Iterator[Result]:
        limits = {kind: Role.parse(label)
                  for kind, label in {**MAX_ROLE, **params["max_role"]}.items()}
        limit_of: dict[str, Role] = {}  # employee id -> their worker type's highest role
        owner_of: dict[str, str | None] = {}  # account key -> its owner's employee id
        top, vault = Role.OWNER, AccessPath.VAULT
        for h in snap.grants:
            g = h.grant
            eid = h.match.employee_id
            # vault access is judged from the vault's items (_readers), not twice
            if eid is None or g.via is vault or not h.match.matched:
                continue
            limit = limit_of.get(eid)
            if limit is None:
                found = snap.persons.get(eid)
                if found is None:
                    continue
                limit = limit_of[eid] = limits[found.worker_type.value]
            if g.role <= limit and g.role is not top:
                continue  # the common case, decided without a dictionary lookup more
            person = snap.persons[eid]
            reasons = []
            undecided = None  # the team check, when HR gives no department to check
            if g.role > limit:
                reasons.append(f"the {person.worker_type.value} limit is {limit.label}")
            account = snap.accounts.get(g.account)
            if g.role is Role.OWNER:
                outside, undecided = _team_check(snap, g.account, eid, owner_of)
                reasons += [outside] if outside else []
            if not reasons and undecided is None:
                continue
            yield Result(
                subject=f"{eid}|{g.account}|{h.source}|{g.principal.lower()}",
                outcome=Outcome.FAIL if reasons else Outcome.UNKNOWN,
                message=(f"{who(person)} holds {g.role.label} on {g.account} (from {h.source})"
                         + (f" but {'; '.join(reasons)}" if reasons else
                            f": cannot tell whether they may, {undecided}")),
                evidence={"role": g.role.label, "raw_role": g.raw_role,
                          "worker_type": person.worker_type.value, "max_role": limit.label,
                          "department": person.department,
                          "owner_team": account.owner_team if account else None,
                          "principal": g.principal, "path": g.via.value, "via": g.via_detail,
                          "source": h.source, "reasons": reasons,
                          **({"missing": undecided} if undecided else {})},
                person=eid,
                account=g.account,
            )
        yield from self._readers(snap, limits, limit_of, owner_of)

    @staticmethod
    def _readers(snap: Snapshot, limits: dict[str, Role], limit_of: dict[str, Role],
                 owner_of: dict[str, str | None]) -> Iterator[Result]:
        """Readers of a shared login: it is full control of every account it opens (as
        user-mfa-missing and offboarding take it), so each reader holds the top role
        there, judged against their kind of work's limit and the account's owner team
        (one reader outside it is no shared password, and still holds the account)."""
        top = Role.OWNER
        for hc in snap.credentials:
            c = hc.credential
            if not c.accounts:
                continue
            seen: set[str] = set()  # one result per person, however many of their addresses
            for principal, match in hc.readers:
                eid = match.employee_id
                if eid is None or not match.matched or eid in seen:
                    continue
                seen.add(eid)
                person = snap.persons.get(eid)
                if person is None:
                    continue
                limit = limit_of.get(eid)
                if limit is None:
                    limit = limit_of[eid] = limits[person.worker_type.value]
                over = ([f"the {person.worker_type.value} limit is {limit.label}"]
                        if top > limit else [])
                for acct in c.accounts:
                    outside, undecided = _team_check(snap, acct, eid, owner_of)
                    reasons = over + ([outside] if outside else [])
                    if not reasons and undecided is None:
                        continue
                    account = snap.accounts.get(acct)
                    yield Result(
                        subject=f"{eid}|{acct}|{hc.source}|{c.item_id}",
                        outcome=Outcome.FAIL if reasons else Outcome.UNKNOWN,
                        message=(f"{who(person)} can read the shared login of {acct} (vault "
                                 f"item {c.item_id} in {hc.source}), which is full control "
                                 f"({top.label})"
                                 + (f", but {'; '.join(reasons)}" if reasons else
                                    f": cannot tell whether they may, {undecided}")),
                        evidence={"role": top.label, "raw_role": "shared login",
                                  "worker_type": person.worker_type.value,
                                  "max_role": limit.label, "department": person.department,
                                  "owner_team": account.owner_team if account else None,
                                  "principal": principal, "path": AccessPath.VAULT.value,
                                  "via": c.item_id, "source": hc.source, "reasons": reasons,
                                  **({"missing": undecided} if undecided else {})},
                        person=eid,
                        account=acct,
                    )


def _team_check(snap: Snapshot, key: str, eid: str, owner_of: dict[str, str | None]
                ) -> tuple[str | None, str | None]:
    """(why ``eid`` may not hold the owner role of account ``key``, kept to its owner
    team; why that cannot be told): both None when they may (no owner team, their own
    account, their team). ``owner_of``: account -> its owner's employee id, filled as
    asked (a platform's owners are many grants on few accounts)."""
    account = snap.accounts.get(key)
    if account is None or not account.owner_team:
        return None, None
    if key not in owner_of:
        owner = snap.person(account.owner)
        owner_of[key] = owner.employee_id if owner is not None else None
    if owner_of[key] == eid:
        return None, None
    department = snap.persons[eid].department
    if not _team(department):  # no department is missing data, not another team
        return None, (f"owner is kept to the {account.owner_team} team and HR gives no "
                      "department for them")
    if _team(department) == _team(account.owner_team):
        return None, None
    return (f"owner is kept to the {account.owner_team} team and they are in {department}",
            None)


def _team(name: str | None) -> str:
    return (name or "").strip().casefold()
