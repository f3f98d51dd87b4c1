from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from governor.records import SourceKind
from governor.roles import Role
from governor.rules._common import holder, more
from governor.rules.base import Outcome, Result, Rule, Severity, register
from governor.snapshot import Snapshot


@register
class UnknownAccount(Rule):
    id = "unknown-account"
    title = "A source reports access to a social account the inventory does not list"
    severity = Severity.MEDIUM
    rationale = ("Governance starts from the list of accounts: one nobody registered has no "
                 "owner, criticality, 2FA record or review, and every account rule passes it "
                 "by. It is a typo in an export or its mapping, or a shadow account opened "
                 "outside the process; either way its holders are unwatched.")
    remediation = ("Add the account to the inventory (owner, criticality, how people get in), "
                   "or correct the export, the vault item or the platform mapping; if it "
                   "should not exist, remove the access and close or reclaim the account.")
    controls = ("SOC2 CC6.1", "ISO27001 A.5.15", "ISO27001 A.5.18")
    needs = frozenset({SourceKind.INVENTORY, SourceKind.GRANTS, SourceKind.VAULT})
    requires = frozenset({SourceKind.INVENTORY})
    requires_any = frozenset({SourceKind.GRANTS, SourceKind.VAULT})
    source_in_subject = ("",)

    def evaluate(self, snap: Snapshot, params: dict[str, Any]) -> Iterator[Result]:
        # one result per source and account: a typo repeats on every row of an export
        held: dict[tuple[str, str], dict[str, Role]] = {}
        for h in snap.grants:
            if h.account not in snap.accounts:
                who = held.setdefault((h.source, h.account), {})
                name = holder(snap, h.principal, h.match)
                if name not in who or h.role > who[name]:
                    who[name] = h.role
        # a vault login for an unlisted account: its readers hold all of it, unwatched
        items: dict[tuple[str, str], list[str]] = {}
        for hc in snap.credentials:
            for acct in hc.credential.accounts:
                if acct not in snap.accounts:
                    items.setdefault((hc.source, acct), []).append(hc.credential.item_id)
                    who = held.setdefault((hc.source, acct), {})
                    for principal, match in hc.readers:
                        who[holder(snap, principal, match)] = Role.OWNER
        for (source, account), who in sorted(held.items()):
            tool = account[5:] if account.startswith("tool:") else None
            names = sorted(who, key=lambda n: (-who[n], n))
            logins = sorted(items.get((source, account), ()))
            what = (f"seats on management tool {tool!r}, which no inventory account names "
                    f"as its tool" if tool is not None else
                    f"access to {account}, which the inventory does not list")
            if logins:
                what = (f"the shared login of {account} (vault item "
                        f"{more(logins, 2)}), which the inventory does not list")
            yield Result(
                subject=f"{source}|{account}",
                outcome=Outcome.FAIL,
                message=(f"{source} reports {what}: "
                         + (more(names) if names else "no reader is known")),
                evidence={"source": source, "holders": [
                    {"holder": n, "role": who[n].label} for n in names],
                    **({"items": logins} if logins else {})},
                account=account,
            )
