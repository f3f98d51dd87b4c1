"""Principals that look like someone's address but are not (homoglyphs).

A grant to "mаya.okafor@corp.example" with a Cyrillic "а" matches nobody, so it is an
orphan, and it is printed exactly like Maya's own address: a reviewer reads it as hers.
That is how a lookalike account keeps a role unnoticed. `skeleton` folds the common
lookalikes (compatibility forms, and the Cyrillic and Greek letters drawn like Latin
ones, after Unicode's confusables data) so such a principal can be named as imitating
the address it folds to, and `unusual` names the characters that do not belong.
"""

from __future__ import annotations

import unicodedata

# Cyrillic and Greek letters that render as Latin ones in common fonts (lower-cased
# input): the subset of Unicode's confusables.txt that matters for addresses and handles
_LATIN = str.maketrans({
    "а": "a", "в": "b", "е": "e", "ё": "e", "һ": "h", "і": "i", "ї": "i", "ј": "j",
    "к": "k", "ӏ": "l", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "ѕ": "s",
    "т": "t", "у": "y", "х": "x", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ү": "y",
    "α": "a", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t",
    "υ": "u", "χ": "x", "ϲ": "c", "ӽ": "x",
    # Latin letters drawn like others: a dotless i (Turkish "ı"), a dotless j, script g
    # and a, small capitals; and the dot str.lower() leaves of a Turkish "İ" ("i̇")
    "ı": "i", "ȷ": "j", "ɡ": "g", "ɑ": "a", "ɩ": "i", "ɪ": "i", "ᴏ": "o", "ʏ": "y",
    "\u0307": "",
    # Armenian letters drawn like Latin ones
    "ո": "n", "ս": "u", "օ": "o", "հ": "h", "զ": "q", "ց": "g",
    "\u200b": "", "\u200c": "", "\u200d": "", "\u2060": "", "\ufeff": "",
})


# The characters outside ASCII that str.lower() turns into ASCII: the Kelvin sign
# (U+212A, drawn as K) alone. A test walks every code point to keep this whole.
KELVIN = "\u212a"


def fold(text: str) -> str:
    """A principal or address as governor compares it, without case: str.lower(), but
    a character lower() would turn into ASCII without being ASCII is kept. Lowered,
    "maya.o\u212aafor@corp.example" (a Kelvin sign for the K) is Maya's own address: a
    grant to it was credited to her, and the lookalike held its role unseen. Kept, it
    matches nobody, and orphan-grant names the address it imitates.

    Composed (NFC) first: "tomás" written with a combining accent (as macOS exports
    write it) is the same text as with the precomposed letter, and was an orphan
    imitating its owner's address. Composing never makes ASCII of what was not: the
    three characters it would (the Kelvin sign among them) are kept."""
    if not text.isascii():
        text = composed(text)
    if KELVIN in text:
        return KELVIN.join(part.lower() for part in text.split(KELVIN))
    return text.lower()


# The characters outside ASCII that NFC turns into ASCII (canonical singletons): the
# Greek question mark (";"), the Greek varia ("`") and the Kelvin sign ("K"). A test
# walks every code point to keep this whole.
NFC_TO_ASCII = frozenset({"\u037e", "\u1fef", KELVIN})


def composed(text: str) -> str:
    """``text`` composed (NFC), but for the characters NFC would turn into ASCII."""
    if text.isascii():
        return text
    if NFC_TO_ASCII.isdisjoint(text):
        return unicodedata.normalize("NFC", text)
    out: list[str] = []
    start = 0
    for i, c in enumerate(text):
        if c in NFC_TO_ASCII:
            out += (unicodedata.normalize("NFC", text[start:i]), c)
            start = i + 1
    out.append(unicodedata.normalize("NFC", text[start:]))
    return "".join(out)


def skeleton(text: str) -> str:
    """What ``text`` reads as: compatibility forms folded (NFKC: fullwidth and styled
    letters), lookalike letters mapped to Latin, invisible characters and spaces
    dropped."""
    # no address holds a space: one that looks like none (a no-break space) is dropped
    return "".join(unicodedata.normalize("NFKC", text).lower().translate(_LATIN).split())


def unusual(text: str, shown: int = 3) -> str:
    """The characters of ``text`` outside ASCII, named: "U+0430 CYRILLIC SMALL LETTER A"."""
    odd = sorted({c for c in text if not c.isascii()}, key=text.index)
    names = [f"U+{ord(c):04X} {unicodedata.name(c, 'unnamed')}" for c in odd[:shown]]
    return ", ".join(names) + (f" (+{len(odd) - shown} more)" if len(odd) > shown else "")
