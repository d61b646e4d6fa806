"""Every example configuration shipped in the package is valid, and so is every TOML block
of the README, so the docs never point a reader at a file `fulcrum check` would refuse."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

import fulcrum
from fulcrum.config.load import load_dict, load_file
from fulcrum.config.split import local_part, shared_part

EXAMPLES = Path(fulcrum.__file__).parent / "examples"  # a namespace package: no __init__.py
FILES = sorted(EXAMPLES.glob("*.toml"))
README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_examples_are_found() -> None:
    names = {path.name for path in FILES}
    assert {"demo.toml", "http.toml", "cluster-lb0.toml", "cluster-lb1.toml", "kernel-nat.toml",
            "kernel-fullnat.toml", "kernel-dsr.toml"} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_example_validates(path: Path) -> None:
    config = load_file(path)
    assert config.services or config.cluster is not None


def test_the_two_cluster_nodes_share_everything_but_their_local_settings() -> None:
    # What docs/cluster.md promises for the pair: config sync would find nothing to change,
    # and the nodes differ in priority, so one of them is the master.
    lb0, lb1 = (load_file(EXAMPLES / f"cluster-{node}.toml") for node in ("lb0", "lb1"))
    assert shared_part(lb0) == shared_part(lb1)
    assert local_part(lb0) != local_part(lb1)
    assert lb0.cluster is not None and lb1.cluster is not None
    for name, router in lb0.cluster.virtual_routers.items():
        peer = lb1.cluster.virtual_routers[name]
        assert router.priority > peer.priority
        if router.unicast_peers:
            assert router.unicast_src in peer.unicast_peers and peer.unicast_src in router.unicast_peers


def test_every_toml_block_of_the_readme_validates() -> None:
    # The README's snippets are whole files a reader copies; each must pass `fulcrum check`.
    blocks = re.findall(r"```toml\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 3
    for block in blocks:
        config = load_dict(tomllib.loads(block))
        assert config.services
