"""The sync section: one secret source, a private secret file, host:port addresses."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fulcrum.config.sync import SyncSettings

BASE = {"listen": "198.18.0.1:7946", "peers": ["[fd00:f0c::2]:7946"]}


def test_addresses_are_normalised_and_the_node_id_defaults_to_the_host_name():
    settings = SyncSettings.model_validate({**BASE, "peers": ["[FD00:F0C::2]:7946"], "secret": "x" * 16})
    assert settings.peers == ["[fd00:f0c::2]:7946"]
    assert settings.node_id()  # the host name
    assert SyncSettings.model_validate({**BASE, "node": "lb0", "secret": "x" * 16}).node_id() == "lb0"


@pytest.mark.parametrize("extra, reason", [
    ({}, "exactly one of secret and secret_file"),
    ({"secret": "x" * 16, "secret_file": "/k"}, "exactly one of secret and secret_file"),
    ({"secret": "short"}, "at least 16 characters"),
    ({"secret": "x" * 16, "listen": "7946"}, "host:port"),
    ({"secret": "x" * 16, "peers": []}, "at least 1 item"),
    ({"secret": "x" * 16, "tls_cert": "/c.pem", "tls_key": "/c.key"}, "all of tls_cert, tls_key and tls_ca"),
])
def test_invalid_settings_say_why(extra, reason):
    with pytest.raises(ValidationError, match=reason):
        SyncSettings.model_validate({**BASE, **extra})


def test_a_secret_file_must_be_private(tmp_path):
    key = tmp_path / "sync.key"
    key.write_text("sixteen or more bytes\n")
    settings = SyncSettings.model_validate({**BASE, "secret_file": str(key)})
    key.chmod(0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        settings.read_secret()
    key.chmod(0o600)
    assert settings.read_secret() == b"sixteen or more bytes"
    key.write_text("short")
    with pytest.raises(ValueError, match="shorter than 16"):
        settings.read_secret()


def _synced(sticky, tls=False):
    from fulcrum.config.load import load_dict

    sync = {"listen": "127.0.0.1:7000", "peers": ["127.0.0.1:7001"], "secret": "s" * 20}
    if tls:
        sync.update(tls_cert="/etc/fulcrum/node.pem", tls_key="/etc/fulcrum/node.key", tls_ca="/etc/fulcrum/ca.pem")
    return load_dict({"services": {"web": {"listen": ["127.0.0.1:8080"], "pool": "app", "mode": "http"}},
                      "pools": {"app": {"servers": ["127.0.0.1:9001"], "sticky": sticky}}, "sync": sync})


def test_secrets_in_the_shared_configuration_need_tls_for_sync():
    from fulcrum.config.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        _synced({"mode": "insert", "secret": "cookie-key-0123456789"})
    assert caught.value.problems == [("sync", "the shared configuration holds secrets (pools.app.sticky.secret) "
                                              "that config sync would send readable: set sync.tls_cert, tls_key "
                                              "and tls_ca (mutual TLS)")]
    _synced({"mode": "insert", "secret": "cookie-key-0123456789"}, tls=True)  # encrypted: fine
    _synced({"mode": "insert"})  # no secret: fine
