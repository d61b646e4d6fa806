"""`fulcrum check` as a command: secrets redacted, -q, a certificate that does not load, what
`fulcrum run` would fail on (issue 7, item 14); the man page generated from the CLI is current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tomli_w

from fulcrum.config.advice import REDACTED
from tests.support import run_fulcrum
from tests.unit.ops.test_check_advice import config

ROOT = Path(__file__).resolve().parents[2]


def test_check_cli_redacts_warns_and_is_quiet_with_q(tmp_path: Path) -> None:
    cfg = tmp_path / "f.toml"
    cfg.write_text(tomli_w.dumps(config()))
    result = run_fulcrum("check", "-c", str(cfg))
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout and f'secret = "{REDACTED}"' in result.stdout
    assert "warning: pools.p.sticky.secret:" in result.stderr
    quiet = run_fulcrum("check", "-q", "-c", str(cfg))
    assert quiet.returncode == 0 and quiet.stdout == "" and "warning: pools.p:" in quiet.stderr


def test_check_refuses_a_certificate_that_does_not_load(tmp_path: Path) -> None:
    bad = tmp_path / "bad.crt"
    bad.write_text("nope\n")
    data = config()
    data["services"]["web"]["http"] = {"tls": {"certificates": [{"cert": str(bad), "key": str(bad)}]}}
    cfg = tmp_path / "f.toml"
    cfg.write_text(tomli_w.dumps(data))
    result = run_fulcrum("check", "-q", "-c", str(cfg))
    assert result.returncode == 2
    assert "services.web.http.tls.certificates[0]" in result.stderr and "bad.crt" in result.stderr


def test_man_page_is_generated_from_the_cli() -> None:
    """Every command and option of the CLI is in the generated page (`make man` refreshes the
    committed copy the wheel ships; `make deb` generates its own from the installed CLI)."""
    import click

    from fulcrum.cli.main import main

    fresh = subprocess.run([sys.executable, "-m", "fulcrum.cli.manpage"], capture_output=True, text=True,
                           timeout=30, check=True).stdout
    assert fresh.startswith(".TH FULCRUM 1")
    ctx = click.Context(main)
    for name in main.list_commands(ctx):
        assert f".SS {name}\n" in fresh
    assert "--json" in fresh and "--interval" in fresh  # options of subcommands too
    committed = (ROOT / "packaging" / "man" / "fulcrum.1").read_text()
    assert committed.startswith(".TH FULCRUM 1") and ".SS reload" in committed


def test_check_refuses_what_run_would_fail_on(tmp_path: Path) -> None:
    path = tmp_path / "f.toml"
    path.write_text('[services.a]\nlisten = ["127.0.0.1:8080"]\npool = "p"\n'
                    '[services.b]\nlisten = ["0.0.0.0:8080"]\npool = "p"\n'
                    '[pools.p]\nservers = ["127.0.0.1:9001"]\n')
    done = run_fulcrum("check", "-c", str(path))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "fulcrum: services.b.listen[0]: 0.0.0.0:8080 overlaps 127.0.0.1:8080 of service 'a': "
        "0.0.0.0 already means every IPv4 address on port 8080, so both cannot be bound"]
