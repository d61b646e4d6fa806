"""Whole-file replacement that a crash cannot tear: the one `atomic_write` of fulcrum.

A leaf: it imports nothing of fulcrum, so every layer may use it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path: str | os.PathLike[str], body: bytes | str, mode: int = 0o600) -> None:
    """Replace `path` with `body`: readers see the old file or the new one, never half of
    one, and the new one survives a power cut. The temporary file is in the same directory
    (a rename within one file system is atomic), flushed and fsynced before the rename, and
    the directory is fsynced after it (the rename itself is durable). The rename never
    follows a symlink at `path` (control/confine.py relies on that)."""
    target = Path(path)
    data = body.encode() if isinstance(body, str) else body
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    except OSError as err:  # name the file asked for, not the temporary one
        raise OSError(err.errno, err.strerror, str(target)) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
