"""What `fulcrum check` must refuse because `fulcrum run` would fail on it (issue 7, item 14)
or because it would make one configuration cost unbounded work (item 10: mh's table)."""

from __future__ import annotations

from typing import Any

import pytest

from fulcrum.config.errors import ConfigError
from fulcrum.config.load import load_dict
from fulcrum.config.schedulers import table_size_for


def two_services(first: str, second: str) -> dict[str, Any]:
    pool = {"servers": ["127.0.0.1:9001"], "health": {"kind": "none"}}
    return {"services": {"a": {"listen": [first], "pool": "p"}, "b": {"listen": [second], "pool": "p"}},
            "pools": {"p": pool}}


@pytest.mark.parametrize(("first", "second", "reason"), [
    ("127.0.0.1:8080", "0.0.0.0:8080", "overlaps 127.0.0.1:8080 of service 'a'"),
    ("0.0.0.0:8080", "127.0.0.1:8080", "overlaps 0.0.0.0:8080 of service 'a'"),
    ("[::]:8080", "[::1]:8080", "overlaps [::]:8080 of service 'a'"),
    ("127.0.0.1:8080", "127.0.0.1:8080", "already used by service 'a'"),
])
def test_listen_addresses_that_cannot_both_be_bound_are_refused(first: str, second: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_dict(two_services(first, second))
    assert [(path, why) for path, why in caught.value.problems if reason in why] \
        and caught.value.problems[0][0] == "services.b.listen[0]"


@pytest.mark.parametrize(("first", "second"), [
    ("0.0.0.0:8080", "[::]:8080"),  # IPv6 listeners are IPV6_V6ONLY: separate sockets
    ("127.0.0.1:8080", "127.0.0.2:8080"),
    ("0.0.0.0:8080", "0.0.0.0:8081"),
    ("127.0.0.1:8080", "[::1]:8080"),
])
def test_listen_addresses_that_can_be_bound_side_by_side_are_accepted(first: str, second: str) -> None:
    load_dict(two_services(first, second))


def test_the_pen_control_port_counts_as_a_listener() -> None:
    data = two_services("0.0.0.0:8080", "0.0.0.0:8081")
    data["control"] = {"pen_port": "127.0.0.1:8081"}
    with pytest.raises(ConfigError, match="control.pen_port"):
        load_dict(data)


@pytest.mark.parametrize("size", [1000000007, 1048573 + 10, 10**30 + 57])
def test_an_oversized_maglev_table_is_refused_before_anything_is_allocated(size: int) -> None:
    with pytest.raises(ValueError, match="table_size: .* out of range"):
        table_size_for(3, size)


def test_the_model_names_the_maglev_table_size_field() -> None:
    # 1048583 is prime and just above the bound: accepted (8 MB allocated) before the fix
    data = two_services("0.0.0.0:8080", "0.0.0.0:8081")
    data["pools"]["p"].update(scheduler="mh", options={"table_size": 1048583})
    with pytest.raises(ConfigError) as caught:
        load_dict(data)
    assert caught.value.problems[0][0] == "pools.p.options"
    assert "mh option table_size: 1048583 is out of range" in caught.value.problems[0][1]
