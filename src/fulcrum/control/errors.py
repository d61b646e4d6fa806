"""The command table's error: a leaf, so the table (commands.py) and what translates
other languages into its calls (pen_commands.py) both raise it without importing each
other."""

from __future__ import annotations


class CommandError(Exception):
    """A command could not run: unknown name, bad argument, unknown server."""
