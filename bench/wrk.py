"""Run wrk and read its report."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

_UNIT_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_TIME = r"([\d.]+)(us|ms|s|m|h)"


class WrkError(RuntimeError):
    pass


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    requests_per_second: float
    p99_ms: float
    socket_errors: int  # connect + read + write + timeout
    bad_status: int  # "Non-2xx or 3xx responses"

    @property
    def errors(self) -> int:
        return self.socket_errors + self.bad_status


def _to_ms(number: str, unit: str) -> float:
    return float(number) * _UNIT_SECONDS[unit] * 1000.0


def parse(report: str) -> WrkResult:
    """Read wrk 4's text output (run with --latency)."""
    total = re.search(r"(\d+) requests in " + _TIME, report)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", report)
    p99 = re.search(r"^\s+99%\s+" + _TIME, report, re.MULTILINE)
    if not (total and rate and p99):
        raise WrkError("unexpected wrk output:\n" + report.strip())
    socket_errors = 0
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", report)
    if errors:
        socket_errors = sum(int(n) for n in errors.groups())
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", report)
    return WrkResult(
        requests=int(total.group(1)),
        seconds=_to_ms(total.group(2), total.group(3)) / 1000.0,
        requests_per_second=float(rate.group(1)),
        p99_ms=_to_ms(p99.group(1), p99.group(2)),
        socket_errors=socket_errors,
        bad_status=int(bad.group(1)) if bad else 0,
    )


def command(port: int, threads: int, connections: int, seconds: int, close: bool) -> list[str]:
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency",
            "--timeout", "5s"]
    if close:
        argv += ["-H", "Connection: close"]
    return [*argv, f"http://127.0.0.1:{port}/"]


def run(argv: list[str], seconds: float) -> WrkResult:
    """Run wrk to completion; it is killed if it overruns its duration by 30 seconds."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        raise WrkError(f"wrk did not finish within {seconds + 30:.0f}s") from exc
    if done.returncode != 0:
        output = (done.stderr.strip() or done.stdout.strip()).splitlines()[:1]
        raise WrkError(f"wrk exited with {done.returncode}: {' '.join(output)}")
    return parse(done.stdout)
