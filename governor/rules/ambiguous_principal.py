from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from governor.correlate import Match, MatchStatus
from governor.records import SourceKind
from governor.rules._common import more, who
from governor.rules.base import Outcome, Result, Rule, Severity, register
from governor.snapshot import Snapshot


@register
class AmbiguousPrincipal(Rule):
    id = "ambiguous-principal"
    title = "A principal matches more than one person"
    severity = Severity.MEDIUM
    rationale = ("When two people share an email or alias, governor will not guess whose "
                 "access it is, so that access escapes leaver, MFA and privilege checks until "
                 "someone decides.")
    remediation = ("Fix the duplicate email or alias in HR, or link the principal to the right "
                   "person with `governor link`.")
    controls = ("SOC2 CC6.1", "ISO27001 A.5.16")
    needs = frozenset({SourceKind.HR, SourceKind.DIRECTORY, SourceKind.GRANTS,
                       SourceKind.VAULT})
    requires = frozenset({SourceKind.HR})
    requires_any = frozenset({SourceKind.DIRECTORY, SourceKind.GRANTS,
                              SourceKind.VAULT})
    source_in_subject = ("grant|{account}|", "directory|")

    def evaluate(self, snap: Snapshot, params: dict[str, Any]) -> Iterator[Result]:
        def candidates(match: Match) -> str:
            return more([who(snap.persons[c]) if c in snap.persons else c
                         for c in match.candidates])

        def evidence(match: Match, **extra: Any) -> dict[str, Any]:
            return {"candidates": list(match.candidates), "reason": match.reason,
                    "method": match.method, **extra}

        for h in snap.grants:
            if h.match.status is MatchStatus.AMBIGUOUS:
                g = h.grant
                yield Result(
                    subject=f"grant|{g.account}|{h.source}|{g.principal.lower()}",
                    outcome=Outcome.FAIL,
                    message=(f"{g.principal} holds {g.role.label} on {g.account} (from "
                             f"{h.source}) but matches several people: {candidates(h.match)}"),
                    evidence=evidence(h.match, source=h.source, role=g.role.label),
                    account=g.account,
                )
        for hc in snap.credentials:
            c = hc.credential
            for principal, match in hc.readers:
                if match.status is MatchStatus.AMBIGUOUS:
                    yield Result(
                        subject=f"vault|{c.item_id}|{principal.lower()}",
                        outcome=Outcome.FAIL,
                        message=(f"{principal} can read vault item {c.title!r} ({c.item_id}) "
                                 f"but matches several people: {candidates(match)}"),
                        evidence=evidence(match, source=hc.source, item_id=c.item_id,
                                          accounts=list(c.accounts)),
                        account=c.accounts[0] if c.accounts else None,
                    )
        for ha in snap.directory:
            if ha.match.status is MatchStatus.AMBIGUOUS:
                a = ha.account
                yield Result(
                    subject=f"directory|{ha.source}|{a.login.lower()}",
                    outcome=Outcome.FAIL,
                    message=(f"directory account {a.login} in {ha.source} matches several "
                             f"people: {candidates(ha.match)}"),
                    evidence=evidence(ha.match, source=ha.source, login=a.login,
                                      status=a.status.value),
                )
