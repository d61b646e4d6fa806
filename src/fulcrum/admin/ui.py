"""The web UI: server-rendered pages (Jinja2) with htmx for the live status.

Pages: login, status (refreshing itself), server actions, configuration forms (from
the model, forms.py) with a diff before applying, versions with rollback. Every
action is a command of the command table run on the node, as in the API. Every form
works without JavaScript too; htmx only refreshes the status table."""

from __future__ import annotations

import difflib
import hashlib
import json
import secrets
import time
from typing import Any
from urllib.parse import quote

import jinja2
import tomli_w
from aiohttp import web
from pydantic import BaseModel

from fulcrum.admin import forms
from fulcrum.admin.node_client import NodeError, NodeUnreachable
from fulcrum.admin.server import COOKIE, WEB, Caller, caller_of, client_address, state_of
from fulcrum.config.errors import ConfigError
from fulcrum.config.load import load_dict
from fulcrum.config.model import Config, Pool, Service
from fulcrum.control.status_table import duration

ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(WEB / "templates"),
                         autoescape=True, trim_blocks=True, lstrip_blocks=True)


def _bytes(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(value)


ENV.filters["bytes"] = _bytes
ENV.filters["ago"] = duration  # as `fulcrum ctl status` writes durations
ENV.filters["when"] = lambda t: time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))

ACTIONS = {"drain": "server.drain", "disable": "server.disable", "enable": "server.enable",
           "weight": "server.weight"}


def add_routes(app: web.Application) -> None:
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login_post)
    app.router.add_post("/logout", logout)
    app.router.add_get("/", status_page)
    app.router.add_get("/ui/status", status_fragment)
    app.router.add_post("/ui/server", server_action)
    app.router.add_get("/config", config_page)
    app.router.add_get("/config/edit/{section}", edit_page)
    app.router.add_post("/config/edit/{section}", edit_post)
    app.router.add_post("/config/delete/{kind:service|pool}/{name}", delete_post)
    app.router.add_post("/config/apply", apply_post)
    app.router.add_get("/versions", versions_page)
    app.router.add_get("/versions/{version:\\d+}", version_page)
    app.router.add_post("/versions/{version:\\d+}/rollback", rollback_post)


def page(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    caller: Caller | None = request.get("caller")
    session = caller.session if caller is not None else None
    flash = ""
    if session is not None:
        flash, session.flash = session.flash, ""
    body = ENV.get_template(template).render(
        user=caller.user if caller else None, csrf=session.csrf if session else "",
        flash=flash, path=request.path, **context)
    return web.Response(text=body, status=status, content_type="text/html")


def _back(request: web.Request, where: str, message: str) -> web.StreamResponse:
    session = caller_of(request).session
    if session is not None:
        session.flash = message
    raise web.HTTPSeeOther(where)


# -- login -----------------------------------------------------------------------------------

async def login_page(request: web.Request) -> web.Response:
    return page(request, "login.html")


async def login_post(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    client = client_address(request)
    now = time.monotonic()
    wait = state.limiter.retry_after(client, now)
    if wait:
        response = page(request, "login.html", 429,
                        error=f"Too many failed logins from this address; try again in {wait:.0f} s.")
        response.headers["Retry-After"] = str(max(1, round(wait)))
        return response
    form = await request.post()
    user, password = str(form.get("user", "")), str(form.get("password", ""))
    if not user or not await state.check_password(user, password, now):
        state.limiter.failed(client, now)
        from fulcrum.admin.server import log

        log.warning("admin: failed login from %s: a wrong password for user %r (form)", client, user)
        return page(request, "login.html", 401, error="Wrong user name or password.", user_given=user)
    state.limiter.succeeded(client)
    sid, _ = state.sessions.create(user, now)
    from fulcrum.admin.server import log

    log.info("admin: user %s logged in from %s", user, client)
    response = web.HTTPSeeOther("/")
    response.set_cookie(COOKIE, sid, httponly=True, samesite="Strict", secure=state.secure, path="/")
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    state_of(request).sessions.drop(request.cookies.get(COOKIE))
    response = web.HTTPSeeOther("/login")
    response.del_cookie(COOKIE, path="/")
    raise response


# -- status -----------------------------------------------------------------------------------

async def _status(request: web.Request) -> dict[str, Any] | None:
    try:
        return await state_of(request).node.status()
    except NodeUnreachable:
        return None


async def status_page(request: web.Request) -> web.Response:
    status = await _status(request)
    return page(request, "status.html", status=200 if status else 503, info=status,
                rates=_rates(request, status))


async def status_fragment(request: web.Request) -> web.Response:
    status = await _status(request)
    return page(request, "status_table.html", info=status, rates=_rates(request, status))


RATE_WINDOW = (2.0, 30.0)  # rates over the oldest sample at least 2 s and at most 30 s old


def _counts(status: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """(connections + requests, bytes both ways) per service and per pool/server."""
    counts = {f"service {name}": (s["connections"] + s["requests"], s["bytes_in"] + s["bytes_out"])
              for name, s in status["services"].items()}
    for pool, info in status["pools"].items():
        for server in info["servers"]:
            counts[f"server {pool}/{server['key']}"] = (server["connections"] + server["requests"],
                                                        server["bytes_in"] + server["bytes_out"])
    return counts


def _rates(request: web.Request, status: dict[str, Any] | None) -> dict[str, tuple[float, float]]:
    """Per service and server: (connections or requests per second, bytes per second), from
    the status samples this admin process has seen (HAProxy's stats page shows rates too)."""
    if status is None:
        return {}
    samples = state_of(request).samples
    now = time.monotonic()
    samples.append((now, _counts(status)))
    while samples and now - samples[0][0] > RATE_WINDOW[1]:
        samples.popleft()
    base = next(((t, c) for t, c in samples if now - t >= RATE_WINDOW[0]), None)
    if base is None:
        return {}
    elapsed, current = now - base[0], samples[-1][1]
    return {key: ((value[0] - base[1][key][0]) / elapsed, (value[1] - base[1][key][1]) / elapsed)
            for key, value in current.items() if key in base[1]}


async def server_action(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    action, server = str(form.get("action", "")), str(form.get("server", ""))
    command = ACTIONS.get(action)
    if command is None or "/" not in server:
        return _back(request, "/", "Choose a server and an action.")
    pool, index = server.split("/", 1)
    args: dict[str, Any] = {"server": index, "pool": pool}
    if action == "weight":
        args["weight"] = str(form.get("weight", "")).strip()
    caller = caller_of(request)
    try:
        await state_of(request).node.run(command, args, by=caller.by)
    except (NodeError, NodeUnreachable) as err:
        return _back(request, "/", f"{command} refused: {err}")
    state_of(request).log_change(caller, f"{command} {server} {args.get('weight', '')}".rstrip())
    return _back(request, "/", f"{command} {server}{' ' + args['weight'] if action == 'weight' else ''}: done.")


# -- configuration ------------------------------------------------------------------------------

async def _running(request: web.Request) -> dict[str, Any]:
    try:
        config: dict[str, Any] = await state_of(request).node.run("config.show")
    except NodeUnreachable as err:
        raise web.HTTPServiceUnavailable(text=str(err)) from err
    return config


async def config_page(request: web.Request) -> web.Response:
    return page(request, "config.html", config=await _running(request))


def _form(section: str, data: dict[str, Any], new_name: str | None = None) -> tuple[str, list[forms.Node]]:
    """(title, form nodes) of one editable section of the configuration."""
    if section == "global":
        return "Global settings", forms.walk(Config, data, [], skip=("services", "pools", "cluster", "sync", "admin"))
    if section == "cluster":
        info = Config.model_fields["cluster"]
        return "Cluster", [forms._field(info.annotation, data.get("cluster"), ["cluster"], "cluster",
                                        info.description or "")]
    kind, _, name = section.partition(":")
    models: dict[str, type[BaseModel]] = {"service": Service, "pool": Pool, "new-service": Service,
                                          "new-pool": Pool}
    model = models.get(kind, Config)
    if kind in ("service", "pool"):
        entries = data.get(f"{kind}s") or {}
        if name not in entries:
            raise web.HTTPNotFound(text=f"no {kind} named {name!r}")
        return f"{kind.title()} {name}", forms.walk(model, entries[name], [f"{kind}s", name])
    if kind in ("new-service", "new-pool"):
        plural = kind[4:] + "s"
        entry = (data.get(plural) or {}).get(new_name) if new_name else None
        return f"New {kind[4:]}", forms.walk(model, entry, [plural, new_name or "__new"])
    raise web.HTTPNotFound(text=f"no section {section!r}")


async def edit_page(request: web.Request) -> web.Response:
    section = request.match_info["section"]
    title, nodes = _form(section, await _running(request))
    return page(request, "edit.html", title=title, nodes=nodes, section=section,
                is_new=section.startswith("new-"), problems=[], new_name="")


def _read_section(section: str, nodes: list[forms.Node], form: dict[str, str],
                  data: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The whole configuration with the posted section put in (not validated yet)."""
    candidate = json.loads(json.dumps(data))
    if section in ("global", "cluster"):
        return forms.read(nodes, form, candidate), None
    kind, _, name = section.partition(":")
    if kind.startswith("new-"):
        plural = kind[4:] + "s"
        new_name = form.get("__name", "").strip()
        candidate.setdefault(plural, {})
        if new_name:
            candidate[plural][new_name] = forms.read(nodes, form, {})
        return candidate, new_name
    plural = f"{kind}s"
    candidate[plural][name] = forms.read(nodes, form, candidate[plural][name])
    return candidate, None


async def edit_post(request: web.Request) -> web.Response:
    section = request.match_info["section"]
    running = await _running(request)
    _, nodes = _form(section, running)
    posted = {k: str(v) for k, v in (await request.post()).items()}
    candidate, new_name = _read_section(section, nodes, posted, running)
    problems: list[tuple[str, str]] = []
    if section.startswith("new-"):
        plural = section[4:] + "s"
        if not new_name:
            problems.append(("__name", "required"))
        elif new_name in (running.get(plural) or {}):
            problems.append(("__name", f"there is already a {section[4:]} named {new_name!r}"))
    if not problems:
        try:
            load_dict(candidate)
        except ConfigError as err:
            problems = err.problems
    if problems:
        title, nodes = _form(section, candidate, new_name)
        name_error = next((reason for where, reason in problems if where == "__name"), None)
        unplaced = forms.place_errors(nodes, [p for p in problems if p[0] != "__name"])
        return page(request, "edit.html", 422, title=title, nodes=nodes, section=section,
                    is_new=section.startswith("new-"), problems=unplaced, new_name=new_name or "",
                    name_error=name_error)
    return _preview(request, running, candidate, f"edit of {section}")


def _digest(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _toml(data: dict[str, Any]) -> str:
    return tomli_w.dumps(load_dict(data).model_dump(mode="json", exclude_none=True))


def _diff(old: dict[str, Any], new: dict[str, Any], old_name: str, new_name: str) -> list[str]:
    return list(difflib.unified_diff(_toml(old).splitlines(), _toml(new).splitlines(),
                                     old_name, new_name, lineterm="", n=3))


def _preview(request: web.Request, running: dict[str, Any], candidate: dict[str, Any], what: str) -> web.Response:
    session = caller_of(request).session
    diff = _diff(running, candidate, "running", "proposed")
    pending_id = secrets.token_urlsafe(12)
    if session is not None:
        if len(session.pending) > 20:
            session.pending.pop(next(iter(session.pending)))
        session.pending[pending_id] = {"config": candidate, "base": _digest(running), "what": what}
    return page(request, "preview.html", diff=diff, pending=pending_id, what=what)


async def delete_post(request: web.Request) -> web.Response:
    kind, name = request.match_info["kind"], request.match_info["name"]
    running = await _running(request)
    candidate = json.loads(json.dumps(running))
    if name not in (candidate.get(f"{kind}s") or {}):
        raise web.HTTPNotFound(text=f"no {kind} named {name!r}")
    del candidate[f"{kind}s"][name]
    try:
        load_dict(candidate)
    except ConfigError as err:
        return page(request, "message.html", 422, title=f"{kind.title()} {name} cannot be removed",
                    problems=err.problems)
    return _preview(request, running, candidate, f"removal of {kind} {name}")


async def apply_post(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    caller = caller_of(request)
    session = caller.session
    pending = session.pending.pop(str(form.get("pending", "")), None) if session else None
    if pending is None:
        return page(request, "message.html", 409, title="Nothing to apply",
                    problems=[("", "this change was applied, cancelled or has expired; edit again")])
    running = await _running(request)
    if _digest(running) != pending["base"]:
        return page(request, "message.html", 409, title="The configuration changed meanwhile",
                    problems=[("", "someone else changed it after your preview; edit again")])
    state = state_of(request)
    try:
        result = await state.node.run("config.apply", {"config": pending["config"],
                                                       "why": f"{pending['what']} by {caller.by}"}, by=caller.by)
    except NodeError as err:
        state.reloads["rejected"] = state.reloads.get("rejected", 0) + 1
        return page(request, "message.html", 422, title="Not applied",
                    problems=err.problems or [("", str(err))])
    except NodeUnreachable as err:
        return page(request, "message.html", 503, title="Not applied", problems=[("", str(err))])
    state.reloads["applied"] = state.reloads.get("applied", 0) + 1
    state.log_change(caller, f"config.apply ({pending['what']})")
    version = result.get("version") if isinstance(result, dict) else None
    return _back(request, "/config", f"Applied ({pending['what']})" + (f": version {version}." if version else "."))


# -- versions ---------------------------------------------------------------------------------

async def versions_page(request: web.Request) -> web.Response:
    try:
        versions = await state_of(request).node.run("config.versions")
    except NodeError as err:
        return page(request, "versions.html", versions=[], error=str(err))
    return page(request, "versions.html", versions=list(reversed(versions)), error=None)


async def version_page(request: web.Request) -> web.Response:
    version = int(request.match_info["version"])
    try:
        old = await state_of(request).node.run("config.version", {"version": version})
    except NodeError as err:
        raise web.HTTPNotFound(text=str(err)) from err
    running = await _running(request)
    return page(request, "version.html", version=version,
                diff=_diff(running, old, "running", f"version {version}"))


async def rollback_post(request: web.Request) -> web.StreamResponse:
    version = int(request.match_info["version"])
    caller = caller_of(request)
    state = state_of(request)
    try:
        result = await state.node.run("config.rollback", {"version": version}, by=caller.by)
    except (NodeError, NodeUnreachable) as err:
        return page(request, "message.html", 422, title=f"Not rolled back to version {version}",
                    problems=getattr(err, "problems", None) or [("", str(err))])
    state.reloads["applied"] = state.reloads.get("applied", 0) + 1
    state.log_change(caller, f"config.rollback {version}")
    now = result.get("version") if isinstance(result, dict) else None
    return _back(request, "/versions", f"Rolled back to version {version}" + (f" (now version {now})." if now else "."))


__all__ = ["add_routes", "quote"]
