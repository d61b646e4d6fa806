"""Forms generated from the model and posts read back (pure)."""

from __future__ import annotations

from fulcrum.admin import forms
from fulcrum.config.errors import ConfigError
from fulcrum.config.load import load_dict
from fulcrum.config.model import Pool

BASE = {"services": {"web": {"listen": ["127.0.0.1:8080"], "pool": "web"}},
        "pools": {"web": {"servers": ["127.0.0.1:9001", "127.0.0.1:9002"]}}}


def running() -> dict:
    return load_dict(BASE).model_dump(mode="json")


def by_label(nodes: list[forms.Node], *labels: str) -> forms.Node:
    node = None
    for label in labels:
        node = next(n for n in (nodes if node is None else node.children) if n.label == label)
    assert node is not None
    return node


def form_of(nodes: list[forms.Node]) -> dict[str, str]:
    """What a browser would post for the form as drawn (unchanged values)."""
    out: dict[str, str] = {}

    def visit(node: forms.Node) -> None:
        if node.kind == "bool":
            if node.value:
                out[node.name] = "1"
        elif node.kind in ("text", "choice", "lines", "pairs"):
            out[node.name] = "" if node.value is None else str(node.value)
        elif node.kind == "group" and node.optional and node.present:
            out[node.marker("set")] = "1"
        for child in node.children:
            visit(child)

    for node in nodes:
        visit(node)
    return out


def test_a_pool_form_reads_back_unchanged() -> None:
    data = running()
    nodes = forms.walk(Pool, data["pools"]["web"], ["pools", "web"])
    assert by_label(nodes, "scheduler").kind == "text"
    assert by_label(nodes, "sticky", "mode").choices == ["none", "source", "cookie", "insert"]
    assert by_label(nodes, "servers").kind == "rows" and len(by_label(nodes, "servers").children) == 3
    assert by_label(nodes, "emergency").optional and not by_label(nodes, "emergency").present
    back = forms.read(nodes, form_of(nodes), data["pools"]["web"])
    assert load_dict({**data, "pools": {"web": back}}) == load_dict(data)


def test_edits_rows_and_errors_land_at_their_fields() -> None:
    data = running()
    nodes = forms.walk(Pool, data["pools"]["web"], ["pools", "web"])
    posted = form_of(nodes)
    weight = by_label(nodes, "servers", "servers 0", "weight")
    posted[weight.name] = "abc"
    posted[by_label(nodes, "servers", "servers 1").marker("remove")] = "1"
    new = by_label(nodes, "servers", "new servers")
    posted[new.marker("add")] = "1"
    posted[by_label(nodes, "servers", "new servers", "address").name] = "127.0.0.1"
    posted[by_label(nodes, "servers", "new servers", "port").name] = "9003"
    back = forms.read(nodes, posted, data["pools"]["web"])
    assert [s["port"] for s in back["servers"]] == ["9001", "9003"]  # text: the model converts
    try:
        load_dict({**data, "pools": {"web": back}})
    except ConfigError as err:
        problems = err.problems
    else:
        raise AssertionError("a weight of abc was accepted")
    assert problems == [("pools.web.servers[0].weight", problems[0][1])]
    again = forms.walk(Pool, back, ["pools", "web"])
    assert forms.place_errors(again, problems) == []
    placed = by_label(again, "servers", "servers 0", "weight")
    assert placed.error and placed.value == "abc"  # what was typed stays in the field


def test_unplaceable_errors_are_returned_for_the_top_of_the_form() -> None:
    nodes = forms.walk(Pool, running()["pools"]["web"], ["pools", "web"])
    assert forms.place_errors(nodes, [("services.web.pool", "no pool named 'x'")]) == [
        ("services.web.pool", "no pool named 'x'")]


def test_every_section_form_renders_and_reads_back_unchanged_with_a_cluster() -> None:
    from fulcrum.admin import ui

    data = load_dict({**BASE, "cluster": {"virtual_routers": {"vip1": {
        "vrid": 51, "interface": "eth0", "priority": 150, "vips": ["198.18.0.10/24"],
        "unicast_peers": ["198.18.0.3"], "track": {"pools": [{"pool": "web", "weight": -60}]}}}}}).model_dump(mode="json")
    for section in ("global", "cluster", "service:web", "pool:web", "new-service", "new-pool"):
        title, nodes = ui._form(section, data)
        html = ui.ENV.get_template("edit.html").render(title=title, nodes=nodes, section=section, csrf="t",
                                                       is_new=section.startswith("new-"), problems=[],
                                                       new_name="", path="/config", user="u", flash="")
        assert "<form" in html and title in html
        if not section.startswith("new-"):
            back, _ = ui._read_section(section, nodes, form_of(nodes), data)
            assert load_dict(back) == load_dict(data), section
    _, nodes = ui._form("cluster", data)
    vips = by_label(nodes, "cluster", "virtual_routers", "vip1", "vips")
    assert vips.kind == "lines" and vips.value == "198.18.0.10/24"
