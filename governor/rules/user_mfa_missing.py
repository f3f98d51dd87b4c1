from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from governor.options import Option
from governor.records import FactorStrength, SourceKind
from governor.roles import Role
from governor.rules._common import more, who
from governor.rules.base import Outcome, Result, Rule, Severity, register
from governor.snapshot import Snapshot


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
    skips_leavers = True
    params = {
        "max_age_days": Option("int", 30, "MFA data read longer ago than this many days is too "
                               "old to judge by (the result is unknown).", min=1, max=365),
    }

    def evaluate(self, snap: Snapshot, params: dict[str, Any]) -> Iterator[Result]:
        # too old once now - max age > the last read, i.e. a microsecond after read + age
        max_age = timedelta(days=params["max_age_days"], microseconds=1)
        for eid, person in snap.persons.items():
            grants = snap.grants_by_person.get(eid, ())
            creds = snap.credentials_by_person.get(eid, ())
            if not grants and not creds or snap.has_left(person, snap.leaver_grace):
                continue  # nothing to reach; a leaver is leaver-holds-access's business
            # MFA first: most people have a strong factor, and then nothing they hold
            # needs describing (two million grants' worth of text otherwise)
            held = snap.directory_by_person.get(eid, [])
            reported = [h for h in held if h.account.mfa is not None]
            read = [h.account.mfa_read_at for h in reported if h.account.mfa_read_at]
            missing = ("no directory account" if not held
                       else "no MFA factors reported for their directory account"
                       if not reported else None)
            if missing is None and read and snap.reached(max(read) + max_age):
                missing = f"MFA data last read {snap.local_day(max(read)).isoformat()}, too old"
            factors = [] if missing is not None else [
                (h.account.login, f) for h in reported for f in h.account.mfa or () if f.active]
            if missing is None and any(f.strength is FactorStrength.STRONG for _, f in factors):
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
            if missing is not None:
                yield Result(
                    subject=eid, outcome=Outcome.UNKNOWN,
                    message=f"{name}, but MFA cannot be judged: {missing}",
                    evidence={**base, "missing": missing,
                              "logins": [h.account.login for h in held]},
                    person=eid, account=account)
                continue
            logins = ", ".join(h.account.login for h in reported)
            weak = sorted({f.type for _, f in factors})
            yield Result(
                subject=eid, outcome=Outcome.FAIL,
                message=(f"{name} but directory account {logins} has only weak MFA "
                         f"({', '.join(weak)})" if weak else
                         f"{name} but directory account {logins} has no active MFA factor"),
                evidence={**base, "logins": [h.account.login for h in reported],
                          "active_factors": [{"login": login, "type": f.type}
                                             for login, f in factors],
                          # how old the MFA fact is: a budgeted directory reads it in turns
                          "mfa_read_at": max(read).isoformat() if read else None},
                severity=Severity.MEDIUM if weak else None,
                person=eid, account=account)
