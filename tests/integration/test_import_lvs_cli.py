"""`fulcrum import ipvsadm|piranha` through the command line: warnings on stderr with
file:line, `fulcrum check` accepts what they write, a refused file exits 2 with one line
naming it and writes nothing; `fulcrum ipvsadm` without a node to ask exits 2."""

from __future__ import annotations

from pathlib import Path

from tests.support import run_fulcrum

FIXTURES = Path(__file__).parents[1] / "fixtures" / "lvs"


def test_ipvsadm_save_file_imports_and_checks(tmp_path: Path) -> None:
    out = tmp_path / "fulcrum.toml"
    rules = FIXTURES / "ipvsadm.rules"
    converted = run_fulcrum("import", "ipvsadm", str(rules), "-o", str(out))
    assert converted.returncode == 0, converted.stderr
    assert f"warning: {rules}:17: -f 1: fulcrum has no firewall-mark services" in converted.stderr
    assert "Traceback" not in converted.stderr
    checked = run_fulcrum("check", "-c", str(out))
    assert checked.returncode == 0, checked.stderr
    assert 'topology = "nat"' in checked.stdout and 'protocol = "udp"' in checked.stdout


def test_piranha_imports_one_file_per_node(tmp_path: Path) -> None:
    lvs_cf = FIXTURES / "lvs.cf"
    for node in ("primary", "backup"):
        out = tmp_path / f"{node}.toml"
        converted = run_fulcrum("import", "piranha", str(lvs_cf), "-o", str(out), "--node", node)
        assert converted.returncode == 0, converted.stderr
        assert f"warning: {lvs_cf}:73: virtual ftp: active = 0: left out" in converted.stderr
        checked = run_fulcrum("check", "-c", str(out))
        assert checked.returncode == 0, checked.stderr
    assert "priority = 150" in (tmp_path / "primary.toml").read_text()
    assert "priority = 100" in (tmp_path / "backup.toml").read_text()


def test_refused_files_exit_2_with_one_line(tmp_path: Path) -> None:
    rules = tmp_path / "bad.rules"
    rules.write_text("-A -t 198.18.0.100:80 -s wlc\n-a -t 198.18.0.100:80 -r 198.18.0.21:80 -m -w lots\n")
    out = tmp_path / "out.toml"
    result = run_fulcrum("import", "ipvsadm", str(rules), "-o", str(out))
    assert result.returncode == 2
    assert result.stderr.strip() == f"fulcrum: {rules}:2: -w lots: must be a whole number 0..65535"
    assert not out.exists()
    lvs_cf = tmp_path / "lvs.cf"
    lvs_cf.write_text((FIXTURES / "lvs.cf").read_text())
    result = run_fulcrum("import", "piranha", str(lvs_cf), "-o", str(out), "--node", "lb7")
    assert result.returncode == 2
    assert "--node lb7" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_ipvsadm_listing_needs_a_node(tmp_path: Path) -> None:
    missing = tmp_path / "fulcrum.sock"
    result = run_fulcrum("ipvsadm", "-L", "-n", "--socket", str(missing))
    assert result.returncode == 1
    assert result.stderr.strip().startswith(f"fulcrum ipvsadm: {missing}: no control socket there")
    result = run_fulcrum("ipvsadm", "-L", "-n", "--stats", "-c", "--socket", str(missing))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
