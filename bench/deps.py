"""Install the Debian packages the benchmark runs, when their programs are missing.

Services must not start on install (they would take ports 80 and the like on the host),
so a policy-rc.d that refuses every start is put in place for the install when the
machine does not already have one, and removed afterwards."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

# program -> Debian package that provides it
PROGRAMS = {"nginx": "nginx-light", "haproxy": "haproxy", "pen": "pen", "wrk": "wrk",
            "apache2": "apache2"}
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
APT_TIMEOUT = 900.0


def which(program: str) -> str | None:
    return shutil.which(program, path=SEARCH_PATH)


def missing_packages(programs: Iterable[str] = PROGRAMS) -> list[str]:
    return [PROGRAMS[program] for program in programs if which(program) is None]


def _apt(*args: str) -> bool:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        done = subprocess.run(["apt-get", *args], env=env, timeout=APT_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def ensure_installed(programs: Iterable[str] = PROGRAMS) -> None:
    """Install the packages of those `programs` that are missing, or raise SystemExit."""
    programs = list(programs)
    packages = missing_packages(programs)
    if not packages:
        return
    if os.geteuid() != 0:
        raise SystemExit(f"missing Debian packages {' '.join(packages)}; install them as root")
    if which("apt-get") is None:
        raise SystemExit(f"missing packages {' '.join(packages)} and no apt-get to install them")
    print(f"installing {' '.join(packages)} with apt-get", flush=True)
    own_policy = not POLICY_RC_D.exists()
    if own_policy:
        POLICY_RC_D.write_text("#!/bin/sh\n# fulcrum bench: do not start services on install\nexit 101\n")
        POLICY_RC_D.chmod(0o755)
    try:
        install = ("install", "-y", "-q", "--no-install-recommends", *packages)
        if not _apt(*install) and not (_apt("update", "-q") and _apt(*install)):
            raise SystemExit(f"apt-get could not install {' '.join(packages)}")
    finally:
        if own_policy:
            POLICY_RC_D.unlink(missing_ok=True)
    still = missing_packages(programs)
    if still:
        raise SystemExit(f"still missing after install: {' '.join(still)}")
