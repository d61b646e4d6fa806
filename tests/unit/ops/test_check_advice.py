"""`fulcrum check`'s advice: secrets redacted, warnings about likely mistakes; packaging metadata
(the command itself and the man page: tests/integration/test_check_cli.py)."""

from __future__ import annotations

from pathlib import Path

from fulcrum.config.advice import REDACTED, redacted, warnings
from fulcrum.config.load import load_dict

ROOT = Path(__file__).resolve().parents[3]


def config(**extra: object) -> dict:  # type: ignore[type-arg]
    data = {
        "services": {"web": {"listen": ["203.0.113.9:80", "127.0.0.1:8080", "0.0.0.0:81"], "pool": "p",
                             "mode": "http"}},
        "pools": {"p": {"servers": ["127.0.0.1:9000"], "health": {"kind": "none"},
                        "sticky": {"mode": "insert"}},
                  "q": {"servers": ["127.0.0.1:9000", "127.0.0.1:9001"],
                        "sticky": {"mode": "insert", "secret": "hunter2"}}},
    }
    data.update(extra)
    return data


def test_redaction_hides_every_secret_and_keeps_file_names() -> None:
    dump = {"pools": {"q": {"sticky": {"secret": "hunter2", "cookie": "ROUTEID"}}},
            "sync": {"secret": "k", "secret_file": "/etc/fulcrum/sync.key"},
            "admin": {"users": [{"name": "ops", "password_hash": "scrypt$..."}], "api_tokens": ["t0k"]},
            "cluster": {"virtual_routers": {"v": {"authentication": {"type": "pass", "password": "pw"}}}}}
    out = redacted(dump)
    assert out["pools"]["q"]["sticky"] == {"secret": REDACTED, "cookie": "ROUTEID"}
    assert out["sync"] == {"secret": REDACTED, "secret_file": "/etc/fulcrum/sync.key"}
    assert out["admin"]["users"][0]["password_hash"] == REDACTED and out["admin"]["api_tokens"] == REDACTED
    assert out["cluster"]["virtual_routers"]["v"]["authentication"]["password"] == REDACTED


def test_warnings_name_the_setting() -> None:
    found = dict(warnings(load_dict(config()), is_local=lambda host: host == "127.0.0.1"))
    assert "services.web.listen[0]" in found  # 203.0.113.9: not here, not a VIP
    assert "services.web.listen[1]" not in found and "services.web.listen[2]" not in found
    assert "pools.p.sticky.secret" in found and "pools.q.sticky.secret" not in found
    assert "pools.p" in found and "pools.q" not in found  # one server, no health check
    # a VIP of this node's cluster section is fine though not (yet) local
    data = config(cluster={"virtual_routers": {"v": {"vrid": 1, "interface": "eth0", "priority": 100,
                                                     "vips": ["203.0.113.9/24"]}}})
    assert "services.web.listen[0]" not in dict(warnings(load_dict(data), is_local=lambda host: False))


def test_packaging_metadata_and_shipped_files() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "MIT"  # an SPDX expression, not the deprecated table
    assert project["project"]["license-files"] == ["LICENSE"] and "MIT License" in (ROOT / "LICENSE").read_text()
    shipped = [f for files in project["tool"]["setuptools"]["data-files"].values() for f in files]
    assert {"packaging/systemd/fulcrum.service", "packaging/ocf/fulcrum", "packaging/man/fulcrum.1"} <= set(shipped)
    assert all((ROOT / f).is_file() for f in shipped)
    assert "dist/" in (ROOT / ".gitignore").read_text().split()
