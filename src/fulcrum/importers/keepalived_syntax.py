"""keepalived.conf syntax: statements, nested `{}` blocks, `!`/`#` comments, quoted
strings and `include` (globs, relative to the including file). Read by keepalived.py."""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

MAX_INCLUDE_DEPTH = 8


class KeepalivedSyntaxError(ValueError):
    """A file keepalived itself would not read: `file:line: reason`."""


@dataclass
class Statement:
    """One keyword line; a block (`keyword args {`) has children."""

    words: list[str]
    where: str  # file:line
    children: list[Statement] | None = None

    @property
    def keyword(self) -> str:
        return self.words[0] if self.words else ""

    @property
    def args(self) -> list[str]:
        return self.words[1:]


def split_line(text: str, where: str) -> list[str]:
    """Words of one line: `{` and `}` are words of their own, double quotes group,
    `#` and `!` outside quotes start a comment."""
    words: list[str] = []
    current: list[str] = []
    quoted = False
    in_word = False
    for char in text:
        if quoted:
            if char == '"':
                quoted = False
            else:
                current.append(char)
            continue
        if char == '"':
            quoted = in_word = True
        elif char in "#!":
            break
        elif char in "{}" or char.isspace():
            if in_word:
                words.append("".join(current))
                current, in_word = [], False
            if char in "{}":
                words.append(char)
        else:
            current.append(char)
            in_word = True
    if quoted:
        raise KeepalivedSyntaxError(f"{where}: unterminated quoted string")
    if in_word:
        words.append("".join(current))
    return words


def read_lines(path: Path, depth: int = 0) -> list[tuple[list[str], str]]:
    """Every line of `path` as words, with `include` (a glob, relative to the including
    file's directory) replaced by the lines of the files it names."""
    if depth > MAX_INCLUDE_DEPTH:
        raise KeepalivedSyntaxError(f"{path}: includes nested more than {MAX_INCLUDE_DEPTH} deep (a loop?)")
    try:
        text = path.read_text()
    except OSError as err:
        raise KeepalivedSyntaxError(f"{path}: {err.strerror or err}") from err
    lines: list[tuple[list[str], str]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        where = f"{path}:{number}"
        words = split_line(raw, where)
        if words[:1] == ["include"]:
            if len(words) != 2:
                raise KeepalivedSyntaxError(f"{where}: include takes one file name or pattern")
            pattern = words[1] if words[1].startswith("/") else str(path.parent / words[1])
            matches = sorted(glob.glob(pattern))
            if not matches and not glob.has_magic(pattern):
                raise KeepalivedSyntaxError(f"{where}: include {words[1]}: no such file")
            for included in matches:
                lines.extend(read_lines(Path(included), depth + 1))
        elif words:
            lines.append((words, where))
    return lines


def parse(lines: list[tuple[list[str], str]]) -> list[Statement]:
    """Lines to a tree: `keyword args {` opens a block, `}` closes it; a block may open
    and close on one line (`unicast_peer { 198.18.0.2 }`)."""
    root: list[Statement] = []
    stack: list[Statement] = []
    for words, where in lines:
        pending: list[str] = []
        for word in [*words, "\n"]:
            siblings = stack[-1].children if stack else root
            assert siblings is not None
            if word == "{":
                block = Statement(pending, where, [])
                siblings.append(block)
                stack.append(block)
                pending = []
            elif word == "}":
                if pending:
                    siblings.append(Statement(pending, where))
                    pending = []
                if not stack:
                    raise KeepalivedSyntaxError(f"{where}: '}}' closes nothing")
                stack.pop()
            elif word == "\n":
                if pending:
                    siblings.append(Statement(pending, where))
            else:
                pending.append(word)
    if stack:
        raise KeepalivedSyntaxError(f"{stack[-1].where}: block {' '.join(stack[-1].words)!r} is not closed")
    return root


def parse_file(path: str | Path) -> list[Statement]:
    return parse(read_lines(Path(path)))
