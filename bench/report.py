"""Tables and ratios from the measurements of one run; JSON and Markdown output.

One table per mode and traffic kind. In each mode fulcrum is compared with the peers that
do the same work: tcp with HAProxy (mode tcp) and pen, http with HAProxy (mode http) and
Apache mod_proxy_balancer."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# mode -> the peer families fulcrum's rows are divided by, in column order
PEERS = {"tcp": ("haproxy", "pen"), "http": ("haproxy", "apache")}


@dataclass
class Measurement:
    mode: str  # "tcp" or "http"
    traffic: str  # "keep-alive" or "close"
    balancer: str
    family: str
    parallelism: int
    requests: int = 0
    requests_per_second: float = 0.0
    p99_ms: float = 0.0
    errors: int = 0  # wrk's socket errors: connect, read, write, timeout
    non_2xx: int = 0  # wrk's "Non-2xx or 3xx responses": the balancer answered, but not with success
    cpu_seconds: float = 0.0  # user + sys
    cpu_sys_seconds: float = 0.0
    processes: int = 0  # in the balancer's process tree at the end of the run
    failure: str | None = None  # why there are no figures

    @property
    def cpu_us_per_request(self) -> float | None:
        if self.failure or not self.requests:
            return None
        return self.cpu_seconds / self.requests * 1e6


def medians(every: list[Measurement]) -> list[Measurement]:
    """Per mode, traffic kind and balancer, the round with the median CPU per request,
    in the order they were first measured.

    A whole round is picked (not a median per column) so that its figures stay
    consistent with each other; the lower middle one for an even count. A balancer
    that failed in every round keeps its first failure."""
    groups: dict[tuple[str, str, str], list[Measurement]] = {}
    for row in every:
        groups.setdefault((row.mode, row.traffic, row.balancer), []).append(row)
    picked = []
    for rounds in groups.values():
        good = sorted((r for r in rounds if r.failure is None),
                      key=lambda r: r.cpu_us_per_request or 0.0)
        picked.append(good[(len(good) - 1) // 2] if good else rounds[0])
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
    """fulcrum/peer for CPU per request and requests/s, for the peers of the row's mode
    (fulcrum rows only; `rows` are those of one table)."""
    if row.family != "fulcrum" or row.failure:
        return {}
    found: dict[str, float | None] = {}
    for family in PEERS[row.mode]:
        peer = _peer(rows, family, row.parallelism)
        found[f"cpu_vs_{family}"] = _ratio(row.cpu_us_per_request,
                                          peer.cpu_us_per_request if peer else None)
        found[f"rps_vs_{family}"] = _ratio(row.requests_per_second,
                                          peer.requests_per_second if peer else None)
    return found


BASE_HEADERS = ["balancer", "req/s", "p99 ms", "CPU µs/req", "sys %", "procs", "errors",
                "non-2xx"]


def headers(mode: str) -> list[str]:
    return (BASE_HEADERS + [f"CPU ×{peer}" for peer in PEERS[mode]]
            + [f"req/s ×{peer}" for peer in PEERS[mode]])


def _cells(rows: list[Measurement], row: Measurement) -> list[str]:
    width = len(headers(row.mode))
    if row.failure:
        return [row.balancer, "failed"] + ["-"] * (width - 2)
    found = ratios(rows, row)

    def ratio(key: str) -> str:
        value = found.get(key)
        return f"{value:.2f}" if value is not None else "-"

    return [row.balancer, f"{row.requests_per_second:,.0f}", f"{row.p99_ms:.2f}",
            f"{row.cpu_us_per_request:.1f}",
            f"{100 * row.cpu_sys_seconds / row.cpu_seconds:.0f}" if row.cpu_seconds else "-",
            str(row.processes), str(row.errors), str(row.non_2xx),
            *(ratio(f"cpu_vs_{peer}") for peer in PEERS[row.mode]),
            *(ratio(f"rps_vs_{peer}") for peer in PEERS[row.mode])]


def text_table(rows: list[Measurement]) -> str:
    """One table: rows of one mode and traffic kind."""
    head = headers(rows[0].mode)
    body = [_cells(rows, row) for row in rows]
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
    lines = []
    for line in [head, *body]:
        lines.append("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(line, widths, strict=True))).rstrip())
    return "\n".join(lines)


def markdown_table(rows: list[Measurement]) -> str:
    head = headers(rows[0].mode)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" + "---:|" * (len(head) - 1)]
    lines += ["| " + " | ".join(_cells(rows, row)) + " |" for row in rows]
    return "\n".join(lines)


# issue 3 §8: in http mode fulcrum's CPU per request at most 1.5 x HAProxy's, below Apache's
HTTP_TARGETS: tuple[tuple[str, str, Callable[[float], bool]], ...] = (
    ("haproxy", "≤ 1.5", lambda ratio: ratio <= 1.5),
    ("apache", "< 1", lambda ratio: ratio < 1.0),
)


def http_targets(rows: list[Measurement]) -> list[str]:
    """One line per fulcrum http row: its CPU ratios to the peers beside the target."""
    lines = []
    for title, table_rows in by_table(rows).items():
        for row in table_rows:
            if row.mode != "http" or row.family != "fulcrum" or row.failure:
                continue
            found = ratios(table_rows, row)
            parts = []
            for peer, bound, met in HTTP_TARGETS:
                value = found.get(f"cpu_vs_{peer}")
                if value is not None:
                    verdict = "met" if met(value) else "NOT met"
                    parts.append(f"CPU ×{peer} {value:.2f} (target {bound}: {verdict})")
            if parts:
                lines.append(f"{title}, {row.balancer}: " + "; ".join(parts))
    return lines


def failures(rows: list[Measurement]) -> list[str]:
    """One line per failed measurement, for below the tables."""
    return [f"{row.balancer} ({row.mode} {row.traffic}) failed: {row.failure}"
            for row in rows if row.failure]


def by_table(rows: list[Measurement]) -> dict[str, list[Measurement]]:
    """Rows grouped per table, titled "<mode> <traffic>", in measurement order."""
    grouped: dict[str, list[Measurement]] = {}
    for row in rows:
        grouped.setdefault(f"{row.mode} {row.traffic}", []).append(row)
    return grouped


def as_json(rows: list[Measurement], every_round: list[Measurement],
            settings: dict[str, Any]) -> str:
    measurements = []
    for traffic_rows in by_table(rows).values():
        for row in traffic_rows:
            measurements.append({**asdict(row), "cpu_us_per_request": row.cpu_us_per_request,
                                 **ratios(traffic_rows, row)})
    rounds = [{**asdict(row), "cpu_us_per_request": row.cpu_us_per_request} for row in every_round]
    return json.dumps({"settings": settings, "measurements": measurements, "rounds": rounds},
                      indent=2) + "\n"


def as_markdown(rows: list[Measurement], settings: dict[str, Any]) -> str:
    parts = [f"# fulcrum benchmark, {settings['date']}", "",
             f"wrk {settings['wrk']}; {settings['backends']} nginx backends (1 worker each); "
             f"{settings['cpus']} CPUs; {settings['host']}; fulcrum {settings.get('fulcrum_source', '?')}; "
             f"median of {settings['rounds']} "
             f"round(s); load average {settings['load_average_at_start']} at start, "
             f"{settings['load_average_at_end']} at end.", "",
             "CPU µs/req: user+sys time of all the balancer's processes and threads during the "
             "run, divided by requests served; sys %: the kernel's share of it; procs: processes "
             "in the balancer's tree (threads are not counted); errors: wrk's socket errors; "
             "non-2xx: answers that were not 2xx or 3xx. ×haproxy, ×pen, ×apache: fulcrum's figure "
             "divided by the peer's (haproxy with the same thread count as fulcrum's workers "
             "when measured).",
             ""]
    for title, table_rows in by_table(rows).items():
        parts += [f"## {title}", "", markdown_table(table_rows), ""]
    targets = http_targets(rows)
    if targets:
        parts += ["## http target (issue 3 §8)", "", *(f"- {line}" for line in targets), ""]
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
