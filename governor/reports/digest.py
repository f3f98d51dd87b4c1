"""SHA-256 of every report file governor writes, for the audit log.

A run's audit entry records the digest of each file it wrote, so `governor audit verify
--report FILE` can tell an auditor that a report is byte for byte what governor wrote
(the log itself being hash-chained). A nightly report is over a gigabyte at two million
grants: the bytes are hashed on a thread of their own as they are written (hashlib lets
go of the GIL for large buffers), so on a second core the digest costs the run no wall
time. The queue between them is bounded: a slow disk or hasher holds the writer back
instead of letting the queue grow.
"""

from __future__ import annotations

import hashlib
import io
import queue
import threading
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

CHUNK = 1 << 17  # what the writer hands over at a time
_QUEUED = 4  # chunks waiting at most, per file: 512 KB


class Digest:
    """The SHA-256 of bytes fed to it, worked out on its own thread."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=_QUEUED)
        self._thread = threading.Thread(target=self._run, name="report-digest", daemon=True)
        self._thread.start()
        self._open = True
        self._hex: str | None = None

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            self._sha.update(chunk)

    def update(self, data: ReadableBuffer) -> None:
        self._queue.put(bytes(data))  # a copy: the writer's buffer is reused

    def close(self) -> None:
        """No more bytes; the thread ends once it has hashed what it holds."""
        if self._open:
            self._open = False
            self._queue.put(None)

    def hexdigest(self) -> str:
        if self._hex is None:
            self.close()
            self._thread.join()
            self._hex = self._sha.hexdigest()
        return self._hex


class _Hashing(io.RawIOBase):
    """A file opened for writing whose bytes are also fed to a Digest."""

    def __init__(self, file: BinaryIO, digest: Digest) -> None:
        self._file, self._digest = file, digest

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer) -> int:
        n = self._file.write(data)
        view = memoryview(data)
        self._digest.update(view[:n] if n is not None else view)
        return len(view) if n is None else n

    def fileno(self) -> int:
        return self._file.fileno()

    def close(self) -> None:
        if not self.closed:
            try:
                self._file.close()
            finally:
                self._digest.close()
                super().close()


def hashing_text(path: Path, newline: str | None) -> tuple[io.TextIOWrapper, Digest]:
    """``path`` opened for UTF-8 text writing, and the digest of what is written."""
    digest = Digest()
    try:
        raw = _Hashing(open(path, "wb", buffering=0), digest)  # noqa: SIM115 - closed by the caller
    except BaseException:
        digest.close()
        raise
    return io.TextIOWrapper(io.BufferedWriter(raw, buffer_size=CHUNK), encoding="utf-8",
                            newline=newline), digest


def of_file(path: Path) -> str:
    """The SHA-256 of a file already written."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
