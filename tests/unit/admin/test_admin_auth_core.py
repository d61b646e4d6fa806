"""Password hashes, tokens, sessions and the failed-login limiter (pure)."""

from __future__ import annotations

import pytest

from fulcrum.admin.auth import (
    LoginLimiter,
    Sessions,
    VerifiedCache,
    csrf_ok,
    hash_password,
    token_digest,
    token_user,
    verify_password,
)
from fulcrum.config.admin import check_hash_format, check_token_format
from fulcrum.config.errors import ConfigError
from fulcrum.config.load import load_dict


def test_scrypt_hash_verifies_only_its_password_and_is_salted() -> None:
    stored = hash_password("s3cret-pass", n=2**10)
    assert stored.startswith("scrypt$1024$8$1$") and check_hash_format(stored) is None
    assert verify_password("s3cret-pass", stored) and not verify_password("s3cret-pasS", stored)
    assert hash_password("s3cret-pass", n=2**10) != stored
    assert not verify_password("x", "plain-text")


def test_malformed_hashes_and_digests_are_named() -> None:
    assert check_hash_format("md5$abc") is not None
    assert check_hash_format("scrypt$1000$8$1$AA$AA") is not None  # N not a power of two
    assert check_token_format("sha256$" + "0" * 63) is not None
    digest = token_digest("tok")
    assert check_token_format(digest) is None
    assert token_user("tok", {"ci": digest}) == "ci" and token_user("tik", {"ci": digest}) is None


def test_the_model_refuses_a_plain_password_at_its_key() -> None:
    base = {"services": {"w": {"listen": ["127.0.0.1:1"], "pool": "p"}},
            "pools": {"p": {"servers": ["127.0.0.1:2"]}}}
    with pytest.raises(ConfigError) as err:
        load_dict({**base, "admin": {"users": {"alice": "hunter2"}}})
    assert err.value.problems[0][0] == "admin.users"
    with pytest.raises(ConfigError):
        load_dict({**base, "admin": {}})  # nobody could log in
    config = load_dict({**base, "admin": {"listen": ["3636", "[::1]:3637"], "tokens": {"ci": token_digest("t")}}})
    assert config.admin is not None and config.admin.listen == ["127.0.0.1:3636", "[::1]:3637"]


def test_sessions_expire_when_idle_and_carry_a_csrf_token() -> None:
    sessions = Sessions(timeout=60)
    sid, session = sessions.create("alice", now=0)
    assert sessions.get(sid, 59) is session and sessions.get(sid, 100) is session  # touched at 59
    assert sessions.get(sid, 161) is None and sessions.get("nope", 0) is None
    assert csrf_ok(session, session.csrf) and not csrf_ok(session, None) and not csrf_ok(session, "x")


def test_limiter_refuses_after_n_failures_within_the_window() -> None:
    limiter = LoginLimiter(failures=3, window=60)
    for t in (0, 1, 2):
        assert limiter.retry_after("a", t) == 0
        limiter.failed("a", t)
    assert limiter.retry_after("a", 3) == 57 and limiter.retry_after("b", 3) == 0
    assert limiter.retry_after("a", 60.5) == 0  # the oldest failure left the window
    limiter.succeeded("a")
    assert limiter.retry_after("a", 3) == 0


def test_verified_cache_forgets_when_the_hash_changes_or_time_passes() -> None:
    cache = VerifiedCache(ttl=10)
    cache.remember("alice", "pw", "h1", now=0)
    assert cache.hit("alice", "pw", "h1", 5)
    assert not cache.hit("alice", "pw", "h2", 5) and not cache.hit("alice", "pw2", "h1", 5)
    assert not cache.hit("alice", "pw", "h1", 11)


def test_admin_passwd_reads_stdin_and_prints_a_line_that_verifies() -> None:
    import tomllib

    from click.testing import CliRunner

    from fulcrum.cli.main import main

    done = CliRunner().invoke(main, ["admin", "passwd", "bob"], input="a long password\n")
    assert done.exit_code == 0, done.output
    line = done.output.strip().splitlines()[-1]
    stored = tomllib.loads(line)["bob"]
    assert verify_password("a long password", stored) and not verify_password("a long passwore", stored)
    short = CliRunner().invoke(main, ["admin", "passwd"], input="short\n")
    assert short.exit_code == 1 and "at least 8" in short.output and "Traceback" not in short.output
    token = CliRunner().invoke(main, ["admin", "token", "ci"])
    assert token.exit_code == 0 and check_token_format(tomllib.loads(token.output.splitlines()[-1])["ci"]) is None
