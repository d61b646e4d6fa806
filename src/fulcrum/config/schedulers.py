"""The scheduler names a pool may use, and the checks of their options: what the model
needs to know of fulcrum/balance/ without importing it.

Each name is one module under fulcrum/balance/ (balance/registry.py imports it on first
use). The schedulers read their options with the functions below, so what the model
refuses and what a scheduler would refuse are one rule (tests/unit/config/
test_scheduler_options.py builds every scheduler to check they agree)."""

from __future__ import annotations

from collections.abc import Mapping

Options = Mapping[str, object]

# name -> module under fulcrum.balance that registers it
SCHEDULERS: dict[str, str] = {
    # IPVS
    "rr": "rr",
    "wrr": "wrr",
    "lc": "lc",
    "wlc": "wlc",
    "sed": "sed",
    "nq": "nq",
    "sh": "sh",
    "dh": "dh",
    "mh": "maglev",
    "fo": "fo",
    "ovf": "ovf",
    "lblc": "lblc",
    "lblcr": "lblcr",
    # mod_proxy_balancer
    "byrequests": "byrequests",
    "bytraffic": "bytraffic",
    "bybusyness": "bybusyness",
    # weighted random (nftables numgen random)
    "random": "random",
    # power of two random choices
    "random2": "random2",
    # pen
    "hash": "hash",
    "weight": "weight",
    "prio": "prio",
}


def known_schedulers() -> set[str]:
    return set(SCHEDULERS)


def option_number(options: Options, name: str, default: float) -> float:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"option {name}: must be a positive number, not {value!r}")
    return float(value)


def option_int(options: Options, name: str, default: int) -> int:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"option {name}: must be a positive integer, not {value!r}")
    return value


# -- mh: the Maglev table size (balance/maglev.py; kernel/buckets.py ships the same table)

# IPVS's CONFIG_IP_VS_MH_TAB_INDEX primes (each near a power of two), up to 2^20.
PRIMES = (251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071, 262139, 524287,
          1048573)
DEFAULT_TABLE_SIZE = 65521
MAX_TABLE_SIZE = PRIMES[-1]  # a table of 2^20 slots serves 10,000 servers at 100 slots each
SLOTS_PER_SERVER = 100


def is_prime(number: int) -> bool:
    if number < 2:
        return False
    divisor = 2
    while divisor * divisor <= number:
        if number % divisor == 0:
            return False
        divisor += 1
    return True


def table_size_for(servers: int, requested: object = None) -> int:
    """The table size M to use, or ValueError saying why `requested` will not do."""
    needed = SLOTS_PER_SERVER * servers
    if requested is None:
        for prime in PRIMES:
            if prime >= DEFAULT_TABLE_SIZE and prime > needed:
                return prime
        raise ValueError(f"mh: {servers} servers need a table larger than {PRIMES[-1]}")
    if isinstance(requested, bool) or not isinstance(requested, int):
        raise ValueError(f"mh option table_size: {requested!r} is not an integer")
    if not SLOTS_PER_SERVER < requested <= MAX_TABLE_SIZE:
        # checked before anything is allocated or factored: 1000000007 would be 8 GB of table
        raise ValueError(f"mh option table_size: {requested} is out of range; give a prime "
                         f"from {SLOTS_PER_SERVER + 1} to {MAX_TABLE_SIZE} (IPVS's largest)")
    if not is_prime(requested):
        raise ValueError(f"mh option table_size: {requested} is not prime (Maglev needs a "
                         f"prime so every server's permutation reaches every slot)")
    if requested <= needed:
        raise ValueError(f"mh option table_size: {requested} is too small for {servers} "
                         f"servers; it must be more than {SLOTS_PER_SERVER} x servers = {needed}")
    return requested


def option_problem(scheduler: str, options: Options, servers: int) -> str | None:
    """What is wrong with the `options` of a pool of `servers` servers run by `scheduler`
    (None: nothing): the checks the scheduler makes when it is built. Options a
    scheduler does not read are ignored, as the scheduler ignores them."""
    try:
        if scheduler == "lblcr":
            option_number(options, "set_expiry", 1.0)
        if scheduler in ("lblc", "lblcr"):
            option_number(options, "table_size", 1.0)
            option_number(options, "expiry", 1.0)
        elif scheduler in ("sh", "dh"):
            option_int(options, "table_size", 1)
        elif scheduler == "mh":
            table_size_for(servers, options.get("table_size"))
    except ValueError as err:
        return str(err)
    return None
