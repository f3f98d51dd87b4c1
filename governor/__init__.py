"""governor: access governance and audit for an organisation's social media accounts."""

import functools
import hashlib
from pathlib import Path

__version__ = "0.1.0"


@functools.cache
def code_digest() -> str:
    """A digest of governor's own modules. Work kept from an earlier run (an export's
    stored records, a night's results) is reused only by the same code: a patched rule
    or connector, or a development checkout between versions, keeps the version number.
    About half a megabyte, read once per process."""
    h = hashlib.blake2b(digest_size=16)
    root = Path(__file__).parent
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0")
        try:
            h.update(path.read_bytes())
        except OSError:
            h.update(b"?")
    return h.hexdigest()
