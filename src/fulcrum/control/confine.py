"""Paths an unauthenticated interface may write: only inside one configured directory.

pen's control port has no authentication (as pen's), so `write FILE` and `web_stats FILE`
from any local user must not reach files outside `control.pen_dir`. A path is refused when
it has a `..` component, when it is absolute and outside the directory, or when a symlink
(in a directory on the way or as the file itself) leads outside. The file is then replaced
by rename (fulcrum.files.atomic_write), which never follows a symlink at the target. The
directory itself must be writable only by fulcrum's user; that is the operator's part."""

from __future__ import annotations

import os

from fulcrum.control.commands import CommandError


def confined_path(directory: str | None, requested: str, what: str) -> str:
    """`requested` (absolute, or relative to `directory`) as a real path inside `directory`,
    or CommandError naming why not."""
    if not directory:
        raise CommandError(f"{what}: this control port may not write files (set control.pen_dir to allow a directory)")
    if not requested or "\0" in requested:
        raise CommandError(f"{what}: no file name")
    if ".." in requested.split("/"):
        raise CommandError(f"{what}: {requested!r}: '..' is not allowed")
    root = os.path.realpath(directory)
    candidate = os.path.realpath(os.path.join(root, requested))  # follows every symlink on the way
    if os.path.commonpath([root, candidate]) != root or candidate == root:
        raise CommandError(f"{what}: {requested!r} is outside {directory} (control.pen_dir)")
    return candidate
