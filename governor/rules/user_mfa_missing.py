from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from governor.options import Option
from governor.records import FactorStrength, MfaFactor, SourceKind
from governor.roles import Role
from governor.rules._common import more, who
from governor.rules.base import Outcome, Result, Rule, Severity, register
from governor.snapshot import HeldAccount, Snapshot


@register
class UserMfaMissing(Rule):
    id = "user-mfa-missing"
    title = "A person who can publish has no strong MFA on their directory account"
    severity = Severity.HIGH
    rationale = ("A phished or reused password alone then lets anyone post as the brand. "
                 "SMS, voice and email factors are SIM-swappable or phishable, so they count "
                 "only as weak (medium).")
    remediation = ("Enrol an authenticator app, push or security key on the person's directory "
                   "account and enforce it for the management tool; remove weak factors.")
    controls = ("SOC2 CC6.1", "ISO27001 A.5.17", "ISO27001 A.8.5")
    needs = frozenset({SourceKind.HR, SourceKind.DIRECTORY, SourceKind.GRANTS,
                       SourceKind.VAULT})
    requires = frozenset({SourceKind.HR})
    requires_any = frozenset({SourceKind.GRANTS, SourceKind.VAULT})
    skips_leavers = True
    params = {
        "max_age_days": Option("int", 30, "MFA data read longer ago than this many days is too "
                               "old to judge by (the result is unknown).", min=1, max=365),
    }

    def evaluate(self, snap: Snapshot, params: dict[str, Any]) -> Iterator[Result]:
        # too old once now - max age > the last read, i.e. a microsecond after read + age
        max_age = timedelta(days=params["max_age_days"], microseconds=1)
        # A source that reports factors for some accounts and not others left those
        # unread (a budgeted directory reads them in turns): unknown. One that reports
        # them for none (LDAP) knows nothing of MFA, and its accounts are left out unless
        # no account of the person says anything.
        reporting = {h.source for h in snap.directory if h.account.mfa is not None}
        for eid, person in snap.persons.items():
            grants = snap.grants_by_person.get(eid, ())
            creds = snap.credentials_by_person.get(eid, ())
            if not grants and not creds or snap.has_left(person, snap.leaver_grace):
                continue  # nothing to reach; a leaver is leaver-holds-access's business
            # MFA first: most people have a strong factor, and then nothing they hold
            # needs describing (two million grants' worth of text otherwise)
            held = snap.directory_by_person.get(eid, [])
            verdict = _judge(snap, held, reporting, max_age)
            if verdict is None:
                continue
            publish = Role.PUBLISHER
            places = {(-g.role, g.account) for g in (h.grant for h in grants)
                      if g.role >= publish}
            reach = sorted([(role, acct, f"{Role(-role).label} on {acct}")
                            for role, acct in places]
                           + [(-Role.OWNER, acct, f"the shared login of {acct}")
                              for acct in {a for hc in creds for a in hc.credential.accounts}])
            if not reach:
                continue
            holds = [text for _, _, text in reach]
            account = reach[0][1]  # where the most is at stake
            base = {"holds": holds, "accounts": sorted({acct for _, acct, _ in reach})}
            name = f"{who(person)} holds {more(holds, 2)}"
            unjudged = [f"{h.account.login} ({why})" for h, why in verdict.unknown]
            if not verdict.failing:
                missing = verdict.missing or "; ".join(unjudged)
                yield Result(
                    subject=eid, outcome=Outcome.UNKNOWN,
                    message=f"{name}, but MFA cannot be judged: {missing}",
                    evidence={**base, "missing": missing,
                              "logins": [h.account.login for h in held],
                              **({"unjudged": unjudged} if unjudged else {})},
                    person=eid, account=account)
                continue
            # the worst account decides: one with no active factor at all is the way in
            bare = [h for h, factors in verdict.failing if not factors]
            shown = bare or [h for h, _ in verdict.failing]
            factors = [(h.account.login, f) for h, fs in verdict.failing for f in fs]
            weak = [] if bare else sorted({f.type for _, f in factors})
            logins = ", ".join(h.account.login for h in shown)
            also = f"; cannot judge {more(unjudged, 1)}" if unjudged else ""
            read = [h.account.mfa_read_at for h in shown if h.account.mfa_read_at]
            yield Result(
                subject=eid, outcome=Outcome.FAIL,
                message=(f"{name} but directory account {logins} has only weak MFA "
                         f"({', '.join(weak)}){also}" if weak else
                         f"{name} but directory account {logins} has no active MFA "
                         f"factor{also}"),
                evidence={**base, "logins": [h.account.login for h in shown],
                          "active_factors": [{"login": login, "type": f.type}
                                             for login, f in factors],
                          **({"unjudged": unjudged} if unjudged else {}),
                          # how old the MFA fact is: a budgeted directory reads it in turns
                          "mfa_read_at": min(read).isoformat() if read else None},
                severity=Severity.MEDIUM if weak else None,
                person=eid, account=account)


@dataclass(slots=True)
class _Verdict:
    """What a person's directory accounts say about their MFA, when it is not a pass."""

    # accounts without a strong active factor, each with its active (weak) factors
    failing: list[tuple[HeldAccount, list[MfaFactor]]] = field(default_factory=list)
    unknown: list[tuple[HeldAccount, str]] = field(default_factory=list)  # (account, why)
    missing: str | None = None  # why nothing at all can be judged


def _judge(snap: Snapshot, held: list[HeldAccount], reporting: set[str],
           max_age: timedelta) -> _Verdict | None:
    """None when every account that can sign in has a strong active factor. Only those
    accounts count: a suspended, disabled or deprovisioned account's factors protect
    nothing, and any live account without one is a way in. Each is judged on its own
    data and its own age: a fresh read of one account vouches for no other."""
    if not held:
        return _Verdict(missing="no directory account")
    live = [h for h in held if h.account.status.live]
    if not live:
        return _Verdict(missing="no directory account that can sign in ("
                        + more([f"{h.account.login} is {h.account.status.value}"
                                for h in held]) + ")")
    judged = [h for h in live if h.account.mfa is not None or h.source in reporting]
    if not judged:
        return _Verdict(missing="no MFA factors reported for their directory account")
    failing: list[tuple[HeldAccount, list[MfaFactor]]] = []
    unknown: list[tuple[HeldAccount, str]] = []
    for h in judged:
        acct = h.account
        if acct.mfa is None:
            unknown.append((h, "no MFA factors reported"))
        elif acct.mfa_read_at is not None and snap.reached(acct.mfa_read_at + max_age):
            day = snap.local_day(acct.mfa_read_at).isoformat()
            unknown.append((h, f"MFA data last read {day}, too old"))
        else:
            active = [f for f in acct.mfa if f.active]
            if not any(f.strength is FactorStrength.STRONG for f in active):
                failing.append((h, active))
    return _Verdict(failing, unknown) if failing or unknown else None
