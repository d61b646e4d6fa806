"""Read a TOML file (or a dict) into the one model, with errors that name key paths."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from fulcrum.config.cluster import reference_problems
from fulcrum.config.errors import ConfigError
from fulcrum.config.kernel import service_problems
from fulcrum.config.model import Config, Endpoint, Http, Pool
from fulcrum.config.schedulers import option_problem
from fulcrum.config.types import is_ipv6


def load_file(path: str | Path) -> Config:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ConfigError.at(str(path), err.strerror or str(err)) from err
    try:
        text = raw.decode("utf-8")  # TOML is UTF-8 (toml.io, "Spec")
    except UnicodeDecodeError as err:
        raise ConfigError.at(str(path), f"not a TOML file: byte {err.start} is not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError.at(str(path), f"not valid TOML: {err}") from err
    except RecursionError:
        raise ConfigError.at(str(path), "not valid TOML: arrays or tables nested too deeply") from None
    return load_dict(data)


def load_dict(data: dict[str, Any]) -> Config:
    try:
        config = Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError.from_validation(err) from err
    except RecursionError:
        raise ConfigError.at("configuration", "values nested too deeply") from None
    check_references(config)
    return config


def check_references(config: Config) -> None:
    """Rules that span sections: a service's pool exists, a listen address is used once."""
    problems = _listen_overlaps(config)
    for name, service in config.services.items():
        if service.pool not in config.pools:
            problems.append((f"services.{name}.pool", f"no pool named {service.pool!r}"))
        problems.extend(service_problems(name, service, config.pools.get(service.pool)))
        if service.mode == "tcp" and service.http != Http():  # settings that would do nothing
            problems.append((f"services.{name}.http", "only used by a service with mode = 'http'"))
        for i, route in enumerate(service.http.routes):
            if route.pool not in config.pools:
                problems.append((f"services.{name}.http.routes[{i}].pool", f"no pool named {route.pool!r}"))
    for name, service in config.services.items():
        pool = config.pools.get(service.pool)
        if service.mode == "tcp" and pool is not None and pool.sticky.mode in ("cookie", "insert"):
            problems.append((f"pools.{service.pool}.sticky.mode",
                             f"{pool.sticky.mode!r} needs HTTP, but tcp service {name!r} uses this pool; use 'source' or 'none'"))
    for name, pool in config.pools.items():
        problems.extend(_scheduler_options(name, pool))
    if config.sync is not None and config.sync.tls_cert is None:
        from fulcrum.config.split import (
            shared_secrets,  # split.py reads configurations with load_dict
        )

        secrets = shared_secrets(config)
        if secrets:
            problems.append(("sync", f"the shared configuration holds secrets ({', '.join(secrets)}) that config "
                                     "sync would send readable: set sync.tls_cert, tls_key and tls_ca (mutual TLS)"))
    if config.cluster is not None:
        problems.extend(reference_problems(config.cluster, set(config.pools)))
    if problems:
        raise ConfigError(problems)


WILDCARDS = {"0.0.0.0": "IPv4", "::": "IPv6"}


def _listen_overlaps(config: Config) -> list[tuple[str, str]]:
    """Two listen addresses on one port that `run` could not both bind: the same address, or
    a wildcard (0.0.0.0, ::) and any address of its family. IPv6 listeners are IPV6_V6ONLY
    (proxy/listener.py), so `0.0.0.0:P` and `[::]:P` do not overlap. The pen control port
    is a listener too. TCP and UDP ports are apart: IPVS users run `-t` and `-u` services on
    one VIP:port (DNS on 53)."""
    bound: list[tuple[str, Endpoint, str, str]] = []  # (key path, endpoint, owner, protocol)
    for name, service in config.services.items():
        bound += [(f"services.{name}.listen[{i}]", e, f"service {name!r}", service.protocol)
                  for i, e in enumerate(service.listen)]
    if config.control.pen_port is not None:
        bound.append(("control.pen_port", config.control.pen_port, "the pen control port", "tcp"))
    problems = []
    for index, (where, endpoint, _, protocol) in enumerate(bound):
        for _, earlier, owner, earlier_protocol in bound[:index]:
            if earlier.port != endpoint.port or is_ipv6(earlier.host) != is_ipv6(endpoint.host) \
                    or earlier_protocol != protocol:
                continue
            if earlier.host == endpoint.host:
                problems.append((where, f"{endpoint} is already used by {owner}"))
                break
            wildcard = next((h for h in (earlier.host, endpoint.host) if h in WILDCARDS), None)
            if wildcard is not None:
                problems.append((where, f"{endpoint} overlaps {earlier} of {owner}: {wildcard} "
                                        f"already means every {WILDCARDS[wildcard]} address on port "
                                        f"{endpoint.port}, so both cannot be bound"))
                break
    return problems


def _scheduler_options(name: str, pool: Pool) -> list[tuple[str, str]]:
    """The pool's scheduler options as its scheduler checks them: a bad option (a
    non-prime mh table_size, say) is a configuration error, not a failure at start."""
    problem = option_problem(pool.scheduler, pool.options, len(pool.servers))
    return [(f"pools.{name}.options", problem)] if problem else []
