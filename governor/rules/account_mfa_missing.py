from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from governor.records import AccountAccess, SourceKind
from governor.rules.base import Outcome, Result, Rule, Severity, register
from governor.snapshot import Snapshot


@register
class AccountMfaMissing(Rule):
    id = "account-mfa-missing"
    title = "A social account reached by a shared login has no second factor"
    severity = Severity.HIGH
    rationale = ("A shared login is one password known to several people; without the "
                 "account's own 2FA, any leak of it (phishing, reuse, a leaver) is a takeover.")
    remediation = ("Turn on the platform's two-factor authentication for the account and keep "
                   "the TOTP seed in the vault item, not on one person's phone.")
    controls = ("SOC2 CC6.1", "ISO27001 A.5.17", "ISO27001 A.8.5")
    needs = frozenset({SourceKind.INVENTORY, SourceKind.VAULT})
    requires = frozenset({SourceKind.INVENTORY})

    def evaluate(self, snap: Snapshot, params: dict[str, Any]) -> Iterator[Result]:
        items: dict[str, list[str]] = defaultdict(list)  # account key -> vault items opening it
        for hc in snap.credentials:
            for acct in hc.credential.accounts:
                items[acct].append(hc.credential.item_id)
        for key, account in snap.accounts.items():
            opened_by = sorted(set(items.get(key, ())))
            if account.access is not AccountAccess.SHARED_LOGIN and not opened_by:
                continue
            if account.account_2fa:
                continue
            how = (f"vault item {', '.join(opened_by)}" if opened_by else "a shared login")
            evidence = {"access": account.access.value, "vault_items": opened_by,
                        "account_2fa": account.account_2fa, "owner": account.owner}
            if account.account_2fa is None:
                yield Result(subject=key, outcome=Outcome.UNKNOWN,
                             message=(f"{key} is reached by {how} but the inventory does not "
                                      "record whether the account has 2FA"),
                             evidence=evidence, account=key)
            else:
                yield Result(subject=key, outcome=Outcome.FAIL,
                             message=f"{key} is reached by {how} and has no 2FA turned on",
                             evidence=evidence, account=key)
