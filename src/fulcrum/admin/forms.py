"""HTML forms generated from the one config model, and form posts read back into it.

Pure: no I/O, no HTML (the templates draw the tree). Every form of the web UI is a walk
of a pydantic model class beside the data of the running configuration: a field
becomes a checkbox (bool), a choice (Literal), lines (a list of scalars, or of models
written as text such as listen addresses), `key = value` lines (a dict of scalars), a
group (a nested section; an optional one gets a "set" checkbox), rows (a list of
sections, e.g. servers: each with "remove", plus one blank row to add) or named
entries (a dict of sections, e.g. virtual routers). Nothing here decides what is
valid: the posted values go back into the configuration dict as text and the model
validates them, and its errors (key paths) are shown at the input with that path."""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from fulcrum.config.errors import format_path

Path = list[str | int]


@dataclass
class Node:
    kind: str  # text, bool, choice, lines, pairs, group, rows, entries
    path: Path
    label: str
    help: str = ""
    value: Any = None
    optional: bool = False
    choices: list[str] = field(default_factory=list)
    options: list[Any] = field(default_factory=list)  # choice: the Literal's own values (2, not "2")
    children: list[Node] = field(default_factory=list)  # group: fields; rows/entries: one group each
    present: bool = True  # optional group: set or not
    key: str | int | None = None  # rows: the index; entries: the name; None for the blank one
    error: str | None = None

    @property
    def name(self) -> str:
        """The input's name: the key path as JSON (names of pools may hold dots)."""
        return json.dumps(self.path)

    @property
    def id(self) -> str:
        return "f-" + format_path(self.path).replace(".", "-").replace("[", "-").replace("]", "")

    def marker(self, what: str) -> str:
        """Name of a control input of this node (remove, add, set, new entry's name)."""
        return json.dumps([*self.path, f"__{what}"])


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(the type without Annotated and None, whether None is allowed)."""
    optional = False
    while True:
        origin = get_origin(annotation)
        if origin is typing.Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            optional = optional or len(members) < len(get_args(annotation))
            if len(members) != 1:
                return members, optional  # e.g. IPv4Address | IPv6Address: written as text
            annotation = members[0]
        else:
            return annotation, optional


def _is_section(annotation: Any) -> bool:
    """A nested model drawn as fields (not one written as text, like Endpoint)."""
    return (isinstance(annotation, type) and issubclass(annotation, BaseModel)
            and "_as_text" not in annotation.__pydantic_decorators__.model_serializers)


def _default(info: FieldInfo) -> Any:
    if info.is_required():
        return None
    value = info.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | dict):
        return value
    return value


def walk(model: type[BaseModel], data: Mapping[str, Any] | None, path: Path,
         skip: tuple[str, ...] = ()) -> list[Node]:
    """The fields of `model` with the values in `data` (None: a blank one, defaults shown)."""
    nodes = []
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        value = data.get(name) if data is not None else _default(info)
        nodes.append(_field(info.annotation, value, [*path, name], name, info.description or ""))
    return nodes


def _field(annotation: Any, value: Any, path: Path, label: str, help: str) -> Node:
    kind, optional = _unwrap(annotation)
    if kind is bool:
        return Node("bool", path, label, help, bool(value), optional)
    if get_origin(kind) is Literal:
        options = list(get_args(kind))
        return Node("choice", path, label, help, value, optional, [str(c) for c in options], options=options)
    if _is_section(kind):
        node = Node("group", path, label, help, optional=optional, present=value is not None)
        node.children = walk(kind, value if isinstance(value, dict) else None, path)
        return node
    origin = get_origin(kind)
    if origin is list:
        (item,) = get_args(kind)
        item_kind, _ = _unwrap(item)
        if _is_section(item_kind):
            node = Node("rows", path, label, help, optional=optional)
            for index, entry in enumerate(value or []):
                node.children.append(_entry(item_kind, entry, [*path, index], f"{label} {index}", index))
            node.children.append(_entry(item_kind, None, [*path, len(value or [])], f"new {label}", None))
            return node
        return Node("lines", path, label, help, "\n".join(str(v) for v in value or []), optional)
    if origin is dict:
        _, item = get_args(kind)
        item_kind, _ = _unwrap(item)
        if _is_section(item_kind):
            node = Node("entries", path, label, help, optional=optional)
            for key, entry in (value or {}).items():
                node.children.append(_entry(item_kind, entry, [*path, key], str(key), key))
            node.children.append(_entry(item_kind, None, [*path, "__new"], f"new {label}", None))
            return node
        return Node("pairs", path, label, help,
                    "\n".join(f"{k} = {_text(v)}" for k, v in (value or {}).items()), optional)
    return Node("text", path, label, help, "" if value is None else _text(value), optional)


def _entry(model: type[BaseModel], data: Any, path: Path, label: str, key: str | int | None) -> Node:
    node = Node("group", path, label, key=key)
    node.children = walk(model, data, path)
    return node


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# -- reading a post back ------------------------------------------------------------------------

def read(nodes: list[Node], form: Mapping[str, str], data: dict[str, Any]) -> dict[str, Any]:
    """`data` (a section of the configuration, as a dict) with the posted values put in."""
    out = dict(data)
    for node in nodes:
        name = node.path[-1]
        result = _read(node, form, out.get(str(name)))
        if result is _ABSENT:
            out.pop(str(name), None)
        else:
            out[str(name)] = result
    return out


_ABSENT = object()


def _read(node: Node, form: Mapping[str, str], old: Any) -> Any:
    if node.kind == "bool":
        return node.name in form
    if node.kind in ("text", "choice"):
        given = form.get(node.name)
        if given is None:
            return old if old is not None else _ABSENT
        given = given.strip()
        if given == "":
            return None if node.optional else _ABSENT  # absent: the default, or "required"
        # a Literal compares values: the choice "3" means the option 3
        return next((option for option in node.options if str(option) == given), given)
    if node.kind == "lines":
        given = form.get(node.name)
        if given is None:
            return old
        return [line.strip() for line in given.replace(",", "\n").splitlines() if line.strip()]
    if node.kind == "pairs":
        given = form.get(node.name)
        if given is None:
            return old
        pairs: dict[str, Any] = {}
        for line in given.splitlines():
            key, sep, value = line.partition("=")
            if line.strip():
                pairs[key.strip()] = _scalar(value.strip()) if sep else ""
        return pairs
    if node.kind == "group":
        if node.optional and node.marker("set") not in form:
            return None
        return read(node.children, form, old if isinstance(old, dict) else {})
    if node.kind == "rows":
        rows = []
        for child in node.children:
            if child.key is None:
                if child.marker("add") in form:
                    rows.append(read(child.children, form, {}))
            elif child.marker("remove") not in form:
                index = int(child.key)
                previous = old[index] if isinstance(old, list) and index < len(old) else {}
                rows.append(read(child.children, form, previous))
        return rows
    if node.kind == "entries":
        entries: dict[str, Any] = {}
        for child in node.children:
            if child.key is None:
                new_name = form.get(child.marker("name"), "").strip()
                if new_name:
                    entries[new_name] = read(child.children, form, {})
            elif child.marker("remove") not in form:
                previous = old.get(child.key, {}) if isinstance(old, dict) else {}
                entries[str(child.key)] = read(child.children, form, previous)
        return entries
    raise ValueError(f"unknown form node kind {node.kind!r}")


def _scalar(text: str) -> Any:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip('"')


# -- errors at their fields ------------------------------------------------------------------------

def place_errors(nodes: list[Node], problems: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Attach each (key path, reason) to the node with that path, or the nearest enclosing
    one. Returns the problems no field on this form holds (shown above the form)."""
    by_path: dict[str, Node] = {}

    def index(node: Node) -> None:
        by_path[format_path(node.path)] = node
        for child in node.children:
            index(child)

    for node in nodes:
        index(node)
    unplaced = []
    for where, reason in problems:
        target, probe = None, where
        while probe:
            target = by_path.get(probe)
            if target is not None:
                break
            cut = max(probe.rfind("."), probe.rfind("["))
            probe = probe[:cut] if cut > 0 else ""
        if target is None:
            unplaced.append((where, reason))
            continue
        suffix = where[len(probe):].lstrip(".")
        message = f"{suffix}: {reason}" if suffix else reason
        target.error = f"{target.error}; {message}" if target.error else message
    return unplaced
