"""Measures (does not test) VRRP failover as a client sees it: from killing the master's
runner to the first answer from the new master on the VIP, with a client polling the
VIP every 5 ms. Needs root; builds and removes its own namespaces like the tests.

    sudo .venv/bin/python tests/netns/measure_failover.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

from conftest import PREFIX, VIP4, VIP6, _build, _teardown, _unavailable
from vrrp_lab import POLLER, PORT, start_name_servers, start_runner, vrrp_toml


def wait(predicate, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(0.02)


def one_round(workdir: Path, advert: str, how: signal.Signals, vip: str, index: int) -> tuple[float, int]:
    """(seconds until lb1 answers, polls without an answer in between)."""
    prefix = f"{PREFIX}m{index}"
    lab = _build(prefix, workdir)
    try:
        runner = start_runner(lab["lb0"], workdir, vrrp_toml(200, advert))
        start_runner(lab["lb1"], workdir, vrrp_toml(100, advert))
        for name in ("lb0", "lb1"):
            start_name_servers(lab[name], workdir)
        wait(lambda: lab["lb0"].has_address(vip), 15)
        poller_script = workdir / "poller.py"
        poller_script.write_text(POLLER)
        poller = lab["client"].popen(sys.executable, str(poller_script), vip, str(PORT), "20",
                                     stdout=subprocess.PIPE)
        # The poller prints its first answer; wait for "lb0" before killing.
        first = poller.stdout.readline().decode().split()  # type: ignore[union-attr]
        while first[1] != "lb0":
            first = poller.stdout.readline().decode().split()  # type: ignore[union-attr]
        time.sleep(1.0)
        killed = time.monotonic()
        runner.send_signal(how)
        changes = []
        for line in poller.stdout:  # type: ignore[union-attr]
            stamp, answer = line.decode().split()
            changes.append((float(stamp), answer))
            if answer == "lb1":
                break
        poller.kill()
        failover = changes[-1][0] - killed
        return failover, sum(1 for _, answer in changes if answer == "-")
    finally:
        _teardown(prefix, list(lab.nodes.values()))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    reason = _unavailable()
    if reason:
        print(f"skipped: {reason}")
        return 0
    index = 0
    print(f"{'advert':>7} {'signal':>8} {'vip':>14}  failover seconds (min / median / max), rounds={args.rounds}")
    for advert, expected in (("1s", 3 + 156 / 256), ("50ms", 0.15 + 156 * 0.05 / 256)):
        for how in (signal.SIGKILL, signal.SIGTERM):
            for vip in (VIP4, VIP6):
                times = []
                for _ in range(args.rounds):
                    with TemporaryDirectory() as tmp:
                        index += 1
                        seconds, _ = one_round(Path(tmp), advert, how, vip, index)
                        times.append(seconds)
                print(f"{advert:>7} {how.name:>8} {vip:>14}  {min(times):.3f} / "
                      f"{statistics.median(times):.3f} / {max(times):.3f}"
                      f"   (RFC master-down interval {expected:.3f})", flush=True)
    return 0


if __name__ == "__main__":
    os.chdir(Path(__file__).resolve().parents[2])
    sys.exit(main())
