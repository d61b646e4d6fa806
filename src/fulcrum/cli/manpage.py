"""fulcrum(1), generated from the click CLI itself so the page never drifts from `--help`.

    python -m fulcrum.cli.manpage > packaging/man/fulcrum.1     (make man)

A test regenerates it and compares, so a changed option without `make man` fails CI."""

from __future__ import annotations

import sys

import click

from fulcrum import __version__

SEE_ALSO = "pen(1), haproxy(1), keepalived(8), ipvsadm(8), systemd.service(5)"


def _roff(text: str) -> str:
    """Escape text for roff: backslashes, and a leading dot or quote on a line."""
    out = []
    for line in text.replace("\\", "\\e").splitlines():
        if line.startswith((".", "'")):
            line = "\\&" + line
        out.append(line)
    return "\n".join(out)


def _options(command: click.Command, ctx: click.Context) -> list[str]:
    lines = []
    for param in command.get_params(ctx):
        if not isinstance(param, click.Option):
            continue
        record = param.get_help_record(ctx)
        if record is None:
            continue
        names, help_text = record
        lines += [".TP", f"\\fB{_roff(names)}\\fR", _roff(help_text or "")]
    return lines


def _command(command: click.Command, path: list[str], parent: click.Context | None) -> list[str]:
    ctx = click.Context(command, info_name=path[-1], parent=parent)
    lines: list[str] = []
    if len(path) > 1:
        usage = " ".join(command.collect_usage_pieces(ctx))
        lines += [f".SS {_roff(' '.join(path[1:]))}", f"\\fB{_roff(' '.join(path))}\\fR {_roff(usage)}",
                  ".PP", _roff(command.help or command.short_help or ""), *_options(command, ctx)]
    if isinstance(command, click.Group):
        for name in sorted(command.list_commands(ctx)):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                lines += _command(sub, [*path, name], ctx)
    return lines


def render(main: click.Group) -> str:
    ctx = click.Context(main, info_name="fulcrum")
    lines = [
        f'.TH FULCRUM 1 "" "fulcrum {__version__}" "User Commands"',
        ".SH NAME",
        "fulcrum \\- " + _roff((main.help or "").split(":", 1)[-1].strip()),
        ".SH SYNOPSIS",
        "\\fBfulcrum\\fR \\fICOMMAND\\fR [\\fIOPTIONS\\fR] [\\fIARGS\\fR]...",
        ".SH DESCRIPTION",
        _roff(main.help or ""),
        ".PP",
        "Each command takes \\fB\\-h\\fR for its own help. Signals to a running node: SIGHUP reloads the "
        "configuration and reopens the log files, SIGTERM drains and stops, SIGUSR1 logs the status.",
        ".SH OPTIONS",
        *_options(main, ctx),
        ".SH COMMANDS",
        *_command(main, ["fulcrum"], None),
        ".SH FILES",
        ".TP", "/etc/fulcrum/fulcrum.toml", "the configuration (\\fBfulcrum schema\\fR prints its JSON schema)",
        ".TP", "/run/fulcrum/control.sock", "the control socket \\fBfulcrum ctl\\fR uses by default",
        ".SH EXIT STATUS",
        "0 success; 1 a runtime failure (a port in use, a node that refused a reload); 2 an invalid "
        "configuration or command line.",
        ".SH SEE ALSO",
        SEE_ALSO,
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    from fulcrum.cli.main import main

    sys.stdout.write(render(main))
