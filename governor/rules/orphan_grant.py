from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from governor.correlate import Match, MatchStatus
from governor.lookalike import skeleton, unusual
from governor.records import SourceKind
from governor.rules._common import left_on, who
from governor.rules.base import Outcome, Result, Rule, Severity, register
from governor.snapshot import Snapshot


@register
class OrphanGrant(Rule):
    id = "orphan-grant"
    title = "Access held by a principal that belongs to no person"
    severity = Severity.HIGH
    rationale = ("A role or a vault login nobody in HR answers for cannot be reviewed, "
                 "offboarded or held to account; it is how former staff, agencies and "
                 "forgotten test logins keep the brand's keys. A service account is fine only "
                 "while a current employee owns it.")
    remediation = ("Remove the access, or link the principal to its person with `governor "
                   "link`, or declare it as a non-human principal with a current owner.")
    controls = ("SOC2 CC6.1", "SOC2 CC6.2", "ISO27001 A.5.16", "ISO27001 A.5.18")
    # the directory too: a login it lists is no orphan, and it expands reader groups
    needs = frozenset({SourceKind.HR, SourceKind.GRANTS, SourceKind.VAULT,
                       SourceKind.DIRECTORY})
    requires = frozenset({SourceKind.HR})
    requires_any = frozenset({SourceKind.GRANTS, SourceKind.VAULT})
    source_in_subject = ("grant|{account}|",)

    def evaluate(self, snap: Snapshot, params: dict[str, Any]) -> Iterator[Result]:
        owner_problem: dict[str, str | None] = {}  # owner ref -> why it fails, per run

        def problem(match: Match) -> str | None:
            """Why a principal is an orphan, or None when it is accounted for."""
            if match.status is MatchStatus.UNMATCHED:
                return match.reason or "matches no person in HR"
            if match.status is not MatchStatus.NONHUMAN:
                return None
            ref = (match.owner or "").strip()
            if ref not in owner_problem:
                owner = snap.person(ref) if ref else None
                owner_problem[ref] = (
                    "declared non-human with no owner" if not ref
                    else f"declared non-human owned by {ref}, who is not in HR" if owner is None
                    else f"declared non-human owned by {who(owner)}, who left{left_on(owner)}"
                    if snap.has_left(owner) else None)
            return owner_problem[ref]

        folded: dict[str, str] = {}  # skeleton -> HR address, built at the first need

        def imitated(principal: str, match: Match) -> str | None:
            """The HR address an unmatched non-ASCII principal is drawn like, if any."""
            if match.status is not MatchStatus.UNMATCHED or principal.isascii():
                return None
            if not folded:
                corr = snap.correlator
                folded.update((skeleton(a), a) for a in (*corr.by_email, *corr.by_alias))
            return folded.get(skeleton(principal))

        def odd(principal: str, match: Match, why: str) -> tuple[str, Severity | None,
                                                                  dict[str, Any]]:
            """A lookalike of someone's address is the worst orphan: a reviewer reads it
            as theirs. Any other non-ASCII principal has its odd characters named."""
            copy = imitated(principal, match)
            if copy is not None:
                return (f"{why}; it is drawn like {copy} but is not that address "
                        f"({unusual(principal)})", Severity.CRITICAL,
                        {"imitates": copy, "characters": unusual(principal)})
            if not principal.isascii():
                return (f"{why} (its address holds {unusual(principal)})", _severity(match),
                        {"characters": unusual(principal)})
            return why, _severity(match), {}

        matched = MatchStatus.MATCHED
        for h in snap.grants:
            if h.match.status is matched:
                continue  # nearly every grant: no call, no lookup
            why = problem(h.match)
            if why is None:
                continue
            g = h.grant
            why, severity, more = odd(g.principal, h.match, why)
            yield Result(
                subject=f"grant|{g.account}|{h.source}|{g.principal.lower()}",
                outcome=Outcome.FAIL,
                message=(f"{g.principal} holds {g.role.label} on {g.account} (from {h.source})"
                         f" but {why}"),
                evidence=_evidence(h.match, why, source=h.source, role=g.role.label,
                                   raw_role=g.raw_role, path=g.via.value, via=g.via_detail,
                                   **more),
                severity=severity,
                account=g.account,
            )
        for hc in snap.credentials:
            c = hc.credential
            for principal, match in hc.readers:
                why = problem(match)
                if why is None:
                    continue
                why, severity, more = odd(principal, match, why)
                yield Result(
                    subject=f"vault|{c.item_id}|{principal.lower()}",
                    outcome=Outcome.FAIL,
                    message=(f"{principal} can read vault item {c.title!r} ({c.item_id}) for "
                             f"{', '.join(c.accounts) or 'no listed account'} but {why}"),
                    evidence=_evidence(match, why, source=hc.source, item_id=c.item_id,
                                       accounts=list(c.accounts),
                                       reader_groups=list(c.reader_groups), **more),
                    severity=severity,
                    account=c.accounts[0] if c.accounts else None,
                )


def _severity(match: Match) -> Severity | None:
    return Severity.MEDIUM if match.status is MatchStatus.NONHUMAN else None


def _evidence(match: Match, why: str, **extra: Any) -> dict[str, Any]:
    return {"match": match.status.value, "reason": why, "owner": match.owner, **extra}
