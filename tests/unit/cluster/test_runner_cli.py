"""The engine's process entry point refuses bad configuration before touching anything."""

from fulcrum.cluster.runner import main


def test_usage(capsys):
    assert main([]) == 2
    assert "usage" in capsys.readouterr().err


def test_missing_file(tmp_path, capsys):
    assert main([str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml" in capsys.readouterr().err


def test_file_without_cluster_section(tmp_path, capsys):
    path = tmp_path / "f.toml"
    path.write_text('[services.web]\nlisten = [":80"]\npool = "web"\n')
    assert main([str(path)]) == 2
    assert "cluster: required" in capsys.readouterr().err


def test_invalid_router_names_its_key_path(tmp_path, capsys):
    path = tmp_path / "f.toml"
    path.write_text('[cluster.virtual_routers.web]\nvrid = 300\ninterface = "eth0"\nvips = ["198.18.0.10/24"]\n')
    assert main([str(path)]) == 2
    assert "cluster.virtual_routers.web.vrid" in capsys.readouterr().err
