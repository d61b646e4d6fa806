"""Tables and ratios from the measurements of one run; JSON and Markdown output."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass
class Measurement:
    traffic: str  # "keep-alive" or "close"
    balancer: str
    family: str
    parallelism: int
    requests: int = 0
    requests_per_second: float = 0.0
    p99_ms: float = 0.0
    errors: int = 0
    cpu_seconds: float = 0.0  # user + sys
    cpu_sys_seconds: float = 0.0
    processes: int = 0  # in the balancer's process tree at the end of the run
    failure: str | None = None  # why there are no figures

    @property
    def cpu_us_per_request(self) -> float | None:
        if self.failure or not self.requests:
            return None
        return self.cpu_seconds / self.requests * 1e6


def medians(every: list[Measurement], labels: list[str], traffic: list[str]) -> list[Measurement]:
    """Per balancer and traffic kind, the round with the median CPU per request.

    A whole round is picked (not a median per column) so that its figures stay
    consistent with each other; the lower middle one for an even count. A balancer
    that failed in every round keeps its first failure."""
    picked = []
    for kind in traffic:
        for label in labels:
            rounds = [r for r in every if r.traffic == kind and r.balancer == label]
            good = sorted((r for r in rounds if r.failure is None),
                          key=lambda r: r.cpu_us_per_request or 0.0)
            if good:
                picked.append(good[(len(good) - 1) // 2])
            elif rounds:
                picked.append(rounds[0])
    return picked


def _peer(rows: list[Measurement], family: str, parallelism: int) -> Measurement | None:
    """The peer row to compare against: same parallelism if measured, else the first one."""
    candidates = [r for r in rows if r.family == family and r.failure is None]
    for row in candidates:
        if row.parallelism == parallelism:
            return row
    return candidates[0] if candidates else None


def _ratio(mine: float | None, theirs: float | None) -> float | None:
    if mine is None or not theirs:
        return None
    return mine / theirs


def ratios(rows: list[Measurement], row: Measurement) -> dict[str, float | None]:
    """fulcrum/HAProxy and fulcrum/pen for CPU per request and requests/s (fulcrum rows only)."""
    if row.family != "fulcrum" or row.failure:
        return {}
    found: dict[str, float | None] = {}
    for family in ("haproxy", "pen"):
        peer = _peer(rows, family, row.parallelism)
        found[f"cpu_vs_{family}"] = _ratio(row.cpu_us_per_request,
                                          peer.cpu_us_per_request if peer else None)
        found[f"rps_vs_{family}"] = _ratio(row.requests_per_second,
                                          peer.requests_per_second if peer else None)
    return found


HEADERS = ["balancer", "req/s", "p99 ms", "CPU µs/req", "sys %", "procs", "errors",
           "CPU ×haproxy", "CPU ×pen", "req/s ×haproxy", "req/s ×pen"]


def _cells(rows: list[Measurement], row: Measurement) -> list[str]:
    if row.failure:
        return [row.balancer, "failed"] + ["-"] * (len(HEADERS) - 2)
    found = ratios(rows, row)

    def ratio(key: str) -> str:
        value = found.get(key)
        return f"{value:.2f}" if value is not None else "-"

    return [row.balancer, f"{row.requests_per_second:,.0f}", f"{row.p99_ms:.2f}",
            f"{row.cpu_us_per_request:.1f}",
            f"{100 * row.cpu_sys_seconds / row.cpu_seconds:.0f}" if row.cpu_seconds else "-",
            str(row.processes), str(row.errors),
            ratio("cpu_vs_haproxy"), ratio("cpu_vs_pen"),
            ratio("rps_vs_haproxy"), ratio("rps_vs_pen")]


def text_table(rows: list[Measurement]) -> str:
    body = [_cells(rows, row) for row in rows]
    widths = [max(len(line[i]) for line in [HEADERS, *body]) for i in range(len(HEADERS))]
    lines = []
    for line in [HEADERS, *body]:
        lines.append("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(line, widths, strict=True))).rstrip())
    return "\n".join(lines)


def markdown_table(rows: list[Measurement]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" + "---:|" * (len(HEADERS) - 1)]
    lines += ["| " + " | ".join(_cells(rows, row)) + " |" for row in rows]
    return "\n".join(lines)


def failures(rows: list[Measurement]) -> list[str]:
    """One line per failed measurement, for below the tables."""
    return [f"{row.balancer} ({row.traffic}) failed: {row.failure}" for row in rows if row.failure]


def by_traffic(rows: list[Measurement]) -> dict[str, list[Measurement]]:
    grouped: dict[str, list[Measurement]] = {}
    for row in rows:
        grouped.setdefault(row.traffic, []).append(row)
    return grouped


def as_json(rows: list[Measurement], every_round: list[Measurement],
            settings: dict[str, Any]) -> str:
    measurements = []
    for traffic_rows in by_traffic(rows).values():
        for row in traffic_rows:
            measurements.append({**asdict(row), "cpu_us_per_request": row.cpu_us_per_request,
                                 **ratios(traffic_rows, row)})
    rounds = [{**asdict(row), "cpu_us_per_request": row.cpu_us_per_request} for row in every_round]
    return json.dumps({"settings": settings, "measurements": measurements, "rounds": rounds},
                      indent=2) + "\n"


def as_markdown(rows: list[Measurement], settings: dict[str, Any]) -> str:
    parts = [f"# fulcrum benchmark, {settings['date']}", "",
             f"wrk {settings['wrk']}; {settings['backends']} nginx backends (1 worker each); "
             f"{settings['cpus']} CPUs; {settings['host']}; median of {settings['rounds']} "
             f"round(s); load average {settings['load_average_at_start']} at start, "
             f"{settings['load_average_at_end']} at end.", "",
             "CPU µs/req: user+sys time of all the balancer's processes and threads during the "
             "run, divided by requests served; sys %: the kernel's share of it; procs: processes "
             "in the balancer's tree (threads are not counted). ×haproxy and ×pen: fulcrum's figure divided by "
             "the peer's (haproxy with the same thread count as fulcrum's workers when measured).",
             ""]
    for traffic, traffic_rows in by_traffic(rows).items():
        parts += [f"## {traffic}", "", markdown_table(traffic_rows), ""]
    parts += [f"- {note}" for note in failures(rows)]
    return "\n".join(parts)


def write(results_dir: Path, rows: list[Measurement], every_round: list[Measurement],
          settings: dict[str, Any]) -> list[Path]:
    """Write <stamp>.json/.md and latest.json/.md; return the paths written."""
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = settings["date"].replace(":", "").replace("-", "").replace(" ", "-")
    written = []
    for name in (stamp, "latest"):
        for suffix, text in ((".json", as_json(rows, every_round, settings)), (".md", as_markdown(rows, settings))):
            path = results_dir / f"{name}{suffix}"
            path.write_text(text)
            written.append(path)
    return written
