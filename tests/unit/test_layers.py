"""The house is layered: no import cycle between the packages under src/fulcrum.

Every module is read as source (nothing is imported), and every import counts — at module level
and inside functions alike — except the body of an ``if TYPE_CHECKING:`` block, which never runs.
A unit is a top-level package (``fulcrum.cluster``, with everything below it) or a top-level module
(``fulcrum.node``); ``fulcrum`` itself (its ``__init__``) is the unit ``fulcrum``. The layers are
listed in src/fulcrum/README.md (its ```layers block): every unit is in exactly one layer, and every
import goes to a unit of a strictly lower layer.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import fulcrum

SRC = Path(fulcrum.__file__).resolve().parent

# The one config model sits at the bottom: it imports nothing of fulcrum outside itself.
MODEL_PACKAGE = "config"


def _unit_of_file(path: Path) -> tuple[str, list[str]]:
    """(unit, dotted package of the module) for a file under SRC."""
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        package = parts[:-1]
    else:
        package = parts[:-1]
    unit = parts[0] if len(parts) > 1 or parts[0] != "__init__" else "fulcrum"
    return unit, package


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    if isinstance(test, ast.Attribute):
        return test.attr == "TYPE_CHECKING"
    return False


def _imported_modules(tree: ast.AST, package: list[str]) -> list[tuple[str, int]]:
    """Absolute dotted names of every import that runs (module level or in a function),
    with its line."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append((alias.name, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ["fulcrum", *package]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((module, node.lineno))
            # `from fulcrum import config` names a package, not a name in fulcrum/__init__
            for alias in node.names:
                found.append((f"{module}.{alias.name}", node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _unit_of_module(dotted: str) -> str | None:
    """The unit a dotted name belongs to, or None outside fulcrum."""
    parts = dotted.split(".")
    if parts[0] != "fulcrum":
        return None
    if len(parts) == 1:
        return "fulcrum"
    head = parts[1]
    if (SRC / head).is_dir() or (SRC / f"{head}.py").is_file():
        return head
    return "fulcrum"  # a name defined in fulcrum/__init__.py


def import_graph() -> dict[str, dict[str, list[str]]]:
    """unit -> imported unit -> ["file:line", ...] for every edge between different units."""
    graph: dict[str, dict[str, list[str]]] = {}
    for path in sorted(SRC.rglob("*.py")):
        unit, package = _unit_of_file(path)
        graph.setdefault(unit, {})
        tree = ast.parse(path.read_text(), filename=str(path))
        for module, line in _imported_modules(tree, package):
            target = _unit_of_module(module)
            if target is None or target == unit:
                continue
            where = f"{path.relative_to(SRC.parent)}:{line}"
            graph[unit].setdefault(target, []).append(where)
    return graph


def find_cycles(graph: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """The strongly connected components with more than one unit (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = [0]

    def strongconnect(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return sorted(components)


def _describe(component: list[str], graph: dict[str, dict[str, list[str]]]) -> str:
    members = set(component)
    lines = [" ↔ ".join(component) + ":"]
    for src in component:
        for dst, where in sorted(graph[src].items()):
            if dst in members:
                lines.append(f"  {src} → {dst}: {', '.join(where[:3])}")
    return "\n".join(lines)


def readme_layers() -> dict[str, int]:
    """unit -> layer number, from the ```layers block of src/fulcrum/README.md (lines
    `NUMBER  unit, unit, ...  # comment`)."""
    text = (SRC / "README.md").read_text()
    block = re.search(r"^```layers\n(.*?)^```", text, re.S | re.M)
    assert block, "src/fulcrum/README.md has no ```layers block"
    layers: dict[str, int] = {}
    for line in block.group(1).splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        number, _, names = line.partition(" ")
        for name in names.split(","):
            name = name.strip()
            assert name not in layers, f"{name} is in two layers of the README"
            layers[name] = int(number)
    return layers


def test_no_cycle_between_packages() -> None:
    graph = import_graph()
    cycles = find_cycles(graph)
    assert not cycles, "import cycles between packages:\n" + "\n".join(
        _describe(c, graph) for c in cycles
    )


def test_imports_go_down_the_layers_of_the_readme() -> None:
    graph = import_graph()
    layers = readme_layers()
    missing = sorted(set(graph) - set(layers))
    assert not missing, f"units not placed in src/fulcrum/README.md's layers: {missing}"
    stale = sorted(set(layers) - set(graph))
    assert not stale, f"src/fulcrum/README.md's layers name units that do not exist: {stale}"
    upward = [f"{src} (layer {layers[src]}) → {dst} (layer {layers[dst]}): {', '.join(where[:3])}"
              for src in sorted(graph) for dst, where in sorted(graph[src].items())
              if layers[dst] >= layers[src]]
    assert not upward, "imports that do not go down the layers:\n" + "\n".join(upward)


def test_config_model_imports_nothing_of_fulcrum() -> None:
    graph = import_graph()
    outside = {dst: where for dst, where in graph[MODEL_PACKAGE].items()}
    assert not outside, f"fulcrum.{MODEL_PACKAGE} imports other parts of fulcrum: {outside}"


def test_the_walk_sees_imports_in_functions_and_skips_type_checking() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from fulcrum.node import Node\n"
        "else:\n"
        "    import fulcrum.logs\n"
        "def f():\n"
        "    from fulcrum.cli import main\n"
        "    from . import sibling\n"
    )
    names = {m for m, _ in _imported_modules(tree, ["cluster"])}
    assert "fulcrum.node" not in names
    assert {"fulcrum.logs", "fulcrum.cli.main", "fulcrum.cluster.sibling"} <= names
    graph = {"a": {"b": ["x"]}, "b": {"c": ["y"]}, "c": {"a": ["z"]}, "d": {"a": ["w"]}}
    assert find_cycles(graph) == [["a", "b", "c"]]
