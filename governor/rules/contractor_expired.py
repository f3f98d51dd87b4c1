from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from governor.records import AccessPath, Credential, SourceKind, WorkerType
from governor.rules._common import more, who
from governor.rules.base import Outcome, Result, Rule, Severity, register
from governor.snapshot import Snapshot

_TEMPORARY = (WorkerType.CONTRACTOR, WorkerType.AGENCY)


@register
class ContractorExpired(Rule):
    id = "contractor-expired"
    title = "A contractor or agency person holds access past their end date, or with none"
    severity = Severity.HIGH
    rationale = ("Temporary staff rarely show up in leaver processes: HR often keeps them "
                 "active after the engagement ends, so an end date is the only thing that "
                 "makes their access expire.")
    remediation = ("Confirm the engagement with the person's manager: record a new end date "
                   "in HR, or offboard them with `governor offboard <person>`.")
    controls = ("SOC2 CC6.2", "ISO27001 A.5.18", "ISO27001 A.5.15")
    needs = frozenset({SourceKind.HR, SourceKind.GRANTS, SourceKind.VAULT,
                       SourceKind.DIRECTORY})
    requires = frozenset({SourceKind.HR})
    requires_any = frozenset({SourceKind.GRANTS, SourceKind.VAULT,
                              SourceKind.DIRECTORY})
    skips_leavers = True

    def evaluate(self, snap: Snapshot, params: dict[str, Any]) -> Iterator[Result]:
        known = _passwords_known(snap)
        for eid, person in snap.persons.items():
            if person.worker_type not in _TEMPORARY:
                continue
            end = person.end_date
            if end is not None and not snap.reached(snap.end_instant(end)):
                continue
            if snap.has_left(person, snap.leaver_grace):
                continue  # leaver-holds-access owns this
            access = snap.access_of(eid)
            # Removing their roles is not the end of it while HR keeps them active: an SSO
            # account that can sign in, or a shared password they read and nobody changed
            # since, is access still (a leaver's would be leaver-sso-active's and
            # shared-secret-not-rotated's, but HR does not say they left).
            live = [h for h in snap.directory_by_person.get(eid, ()) if h.account.status.live]
            passwords = known.get(eid, [])
            if not (access or live or passwords):
                continue
            holds = sorted({f"the shared login of {a.account}" if a.path is AccessPath.VAULT
                            else f"{a.role.label} on {a.account}" for a in access})
            holds += sorted(f"directory account {h.account.login} ({h.source}, "
                            f"{h.account.status.value})" for h in live)
            holds += sorted(f"the password of vault item {c.title!r} ({c.item_id}), unchanged "
                            "since they could read it" for c in passwords)
            why = f"their end date {end.isoformat()} has passed" if end else "HR has no end date"
            yield Result(
                subject=eid,
                outcome=Outcome.FAIL,
                message=(f"{person.worker_type.value} {who(person)} holds {more(holds, 2)} but "
                         f"{why}"),
                evidence={"worker_type": person.worker_type.value,
                          "end_date": end.isoformat() if end else None,
                          "status": person.status.value, "manager": person.manager,
                          "holds": holds, "accounts": sorted(
                              {a.account for a in access}
                              | {a for c in passwords for a in c.accounts})},
                person=eid,
                account=min((a.account for a in access), default=min(
                    (a for c in passwords for a in c.accounts), default=None)),
            )


def _passwords_known(snap: Snapshot) -> dict[str, list[Credential]]:
    """Employee id -> the vault items they could read in an earlier version and whose
    password has not changed since they lost it (the item's fingerprint the same as then,
    or its change dated before that moment, or not dated). One pass over the items."""
    out: dict[str, list[Credential]] = {}
    by_item = {hc.credential.item_id: hc.credential for hc in snap.credentials}
    for item, former in snap.former_readers.items():
        c = by_item.get(item)
        if c is None:
            continue
        for was, match in former:
            eid = match.employee_id
            if eid is None or not match.matched:
                continue
            if was.fingerprint is not None and c.fingerprint is not None:
                same = was.fingerprint == c.fingerprint
            else:
                changed = c.password_changed_at
                same = changed is None or snap.ahead(changed) or (
                    was.lost_at is not None and changed < was.lost_at)
            if same and c not in out.get(eid, ()):
                out.setdefault(eid, []).append(c)
    return out
