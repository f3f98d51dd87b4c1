"""What governor knows of the social platforms themselves: their names, and which
account names on them ignore case.

A platform name is part of every account key (``x:@northwind``) and picks the role
preset a grants export is read with, so a misspelt one is never harmless: its grants
match no inventory account and its roles are read with no preset. So a name governor
does not know is accepted only as a new platform, never when it looks like a slip for
one it knows.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Collection, Iterable, Iterator

from governor.records import Credential, Grant, Record

# The platforms governor has role presets for (governor.roles.PLATFORM_ROLE_MAPS; the
# management tools there are not platforms).
KNOWN = ("facebook", "instagram", "linkedin", "tiktok", "x", "youtube")
# A platform's former name is a slip for its current one: X was called Twitter until 2023.
FORMER = {"twitter": "x"}
_SPACING = re.compile(r"[\s._-]+")


def suggestion(name: str) -> str | None:
    """The known platform ``name`` most likely means, when it is not one itself: the
    successor of a former name, or a near miss ('instgram', 'you tube', 'twiter')."""
    low = name.strip().lower()
    if low in KNOWN:
        return None
    if low in FORMER:
        return FORMER[low]
    squeezed = {_SPACING.sub("", n): n for n in (*KNOWN, *FORMER)}
    # 0.8: one slip in a name of five letters or more; never a one-letter name (x)
    close = difflib.get_close_matches(_SPACING.sub("", low), list(squeezed), n=1, cutoff=0.8)
    if not close:
        return None
    meant = squeezed[close[0]]
    return FORMER.get(meant, meant)


def hint(name: str) -> str:
    """' (did you mean 'x'?)' for a near miss or former name, else ''."""
    near = suggestion(name)
    if near is None:
        return ""
    if name.strip().lower() in FORMER:
        return f" (did you mean {near!r}? {name.strip()!r} is its former name)"
    return f" (did you mean {near!r}?)"


def problem(name: str, declared: Collection[str] = ()) -> str | None:
    """Why ``name`` cannot be taken as a platform, or None. A platform governor knows,
    or one a grants source declares (its ``platform``, with a role_map), is taken as
    it is; so is any other name (a new platform: pinterest, threads), unless it is a
    former name or a near miss of a known one."""
    low = name.strip().lower()
    if low in KNOWN or low in declared or suggestion(low) is None:
        return None
    return (f"unknown platform {name.strip()!r}{hint(name)}; known: {', '.join(KNOWN)}. A "
            "new platform may take any other name, or this one when a grants source declares "
            "it as its platform (with a role_map)")


# ---- case ---------------------------------------------------------------------------------
# On these platforms an account name is a username, unique whatever its case: @NorthWind
# is @northwind (X, formerly Twitter; Instagram; TikTok).
_CASELESS = frozenset({"x", "twitter", "instagram", "tiktok"})
AT_NAMES = _CASELESS  # ... whose usernames are the same with or without their "@"


def caseless(platform: str, handle: str) -> bool:
    """Does ``handle`` name the same account whatever its case?

    X, Instagram and TikTok handles: always. YouTube and Facebook: only a handle written
    '@name' (a YouTube handle, a Facebook username); a channel or Page name is a display
    name, which two accounts may share in different case. LinkedIn: a page's vanity name
    or URL ('northwind-traders'), which has no spaces; a page name ('Northwind
    Traders') is a display name."""
    if platform in _CASELESS:
        return True
    if platform in ("youtube", "facebook"):
        return handle.startswith("@")
    if platform == "linkedin":
        return not any(c.isspace() for c in handle)
    return False


def fold(key: str) -> str:
    """The key as a comparison of case-insensitive account names sees it."""
    platform, _, handle = key.partition(":")
    return f"{platform.lower()}:{handle.lower()}"


def same_username(key: str) -> str:
    """``fold``, and on X, Instagram and TikTok without a leading "@": a username is the
    same written with or without it, so an inventory listing both lists one account
    twice. (Grants and vault items keep the spelling they are stored under: mapping
    "x:northwind" onto the inventory's "x:@northwind" would end the history of every
    grant stored without it, resolve its findings as fixed, and drop their exceptions.
    Such a grant's account is an unknown account, and unknown-account says so.)"""
    folded = fold(key)
    platform, _, handle = folded.partition(":")
    return f"{platform}:{handle.removeprefix('@')}" if platform in AT_NAMES else folded


class AccountNames:
    """The inventory's spelling of every account whose name ignores case, so that a grant
    or vault item written @NorthWind reaches x:@northwind. The inventory's key stays the
    one everything is stored and reported under: data that already matches keeps its
    keys. Accounts the inventory does not list keep their spelling."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._by_fold: dict[str, str] = {}
        for key in sorted(keys):
            platform, _, handle = key.partition(":")
            if caseless(platform, handle):
                self._by_fold.setdefault(fold(key), key)
        # each distinct account text seen, resolved once: two million grants name a few
        # thousand accounts, so a grant costs one dict lookup
        self._seen: dict[str, str] = {}

    def __call__(self, account: str) -> str:
        found = self._seen.get(account)
        if found is None:
            found = self._seen[account] = self._resolve(account)
        return found

    def _resolve(self, account: str) -> str:
        platform, _, handle = account.partition(":")
        if not caseless(platform.lower(), handle):
            return account
        return self._by_fold.get(fold(account), account)

    def digest(self) -> str:
        """Changes when any spelling this would apply changes: an export read under other
        spellings must be read again, not skipped as unchanged."""
        text = "\n".join(f"{k}\t{v}" for k, v in sorted(self._by_fold.items()))
        return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()

    def apply(self, records: Iterable[Record]) -> Iterator[Record]:
        """``records`` with every grant's and vault item's accounts in the inventory's
        spelling (a new record where one changes; records are treated as immutable)."""
        seen, resolve = self._seen, self._resolve
        for rec in records:
            if type(rec) is Grant:
                # inline, not self(): a method call per grant cost more than the lookup
                account = rec.account
                to = seen.get(account)
                if to is None:
                    to = seen[account] = resolve(account)
                if to != account:
                    rec = Grant(to, rec.principal, rec.raw_role, rec.role, rec.via,
                                rec.via_detail, rec.granted_at, rec.last_active)
            elif type(rec) is Credential:
                accounts = tuple(sorted({self(a) for a in rec.accounts}))
                if accounts != rec.accounts:
                    rec = Credential(rec.item_id, rec.title, accounts, rec.readers,
                                     rec.reader_groups, rec.password_changed_at,
                                     rec.totp_in_vault, rec.fingerprint,
                                     rec.expanded_groups)
            yield rec
