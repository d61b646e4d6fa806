"""Configuration errors: every problem names its key path and the reason."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pydantic import ValidationError
from pydantic_core import ErrorDetails

Loc = Sequence[int | str]


def format_path(loc: Loc) -> str:
    """`("pools", "web", "servers", 1, "port")` -> `pools.web.servers[1].port`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


class ConfigError(Exception):
    """One or more configuration problems, each as (key path, reason)."""

    exit_status = 2

    def __init__(self, problems: Iterable[tuple[str, str]]):
        self.problems = list(problems)
        super().__init__("\n".join(f"{path}: {reason}" for path, reason in self.problems))

    @classmethod
    def at(cls, path: str, reason: str) -> ConfigError:
        return cls([(path, reason)])

    @classmethod
    def from_validation(cls, err: ValidationError, prefix: Loc = ()) -> ConfigError:
        problems = []
        for item in err.errors():
            loc = [*prefix, *_clean_loc(item["loc"])]
            problems.append((format_path(loc), _clean_message(item)))
        return cls(problems)


def _clean_loc(loc: Loc) -> list[int | str]:
    # Union members and tagged choices add their own names to the location
    # ("function-before[...]", "str", "Server"); they are not config keys.
    out: list[int | str] = []
    for part in loc:
        if isinstance(part, str) and ("[" in part or part in _UNION_TAGS):
            continue
        out.append(part)
    return out


_UNION_TAGS = {"str", "int", "float", "dict", "Server", "list"}


def _clean_message(item: ErrorDetails) -> str:
    msg = str(item["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    if item["type"] == "extra_forbidden":
        return "unknown key"
    if item["type"] == "missing":
        return "required"
    return msg
