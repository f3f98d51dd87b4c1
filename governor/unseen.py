"""Characters a terminal, an editor or a browser acts on rather than shows, and how
governor writes them instead: as visible \\uXXXX text (as JSON would escape them).

C0 and C1 controls (ESC starts the escape sequences `cat report.csv` would run) and
the bidirectional overrides that make text read in another order than it is stored (a
"Trojan Source" principal). One definition for the CSV, JSON and HTML reports and for
every line the command line prints; tab and line feed are kept everywhere, a carriage
return in a report's quoted CSV cell too, but not on a terminal, where it lets a name
overwrite the line it is on.
"""

from __future__ import annotations

import re

_CLASS = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069"
UNSEEN = re.compile(f"[{_CLASS}]")  # in report files
TERMINAL = re.compile(f"[\r{_CLASS}]")  # on a terminal


def visible(match: re.Match[str]) -> str:
    """The replacement for one such character: visible, not acted on."""
    return f"\\u{ord(match.group()):04x}"
