"""What governor knows of the social platforms themselves: their names.

A platform name is part of every account key (``x:@northwind``) and picks the role
preset a grants export is read with, so a misspelt one is never harmless: its grants
match no inventory account and its roles are read with no preset. So a name governor
does not know is accepted only as a new platform, never when it looks like a slip for
one it knows.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection

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
